"""``write_tick`` (replay's per-tick writer) writes what ``write_rows`` writes, row for row."""
import io

from hypothesis import given, settings, strategies as st

from controller.loadtrace import format_link, write_rows, write_tick

_VALUES = st.floats(min_value=0.0, max_value=1e12, allow_nan=False)


@settings(max_examples=60, deadline=None)
@given(t=st.floats(min_value=0.0, max_value=1e6, allow_nan=False),
       rows=st.lists(st.tuples(st.sampled_from(["s1", "e0_1", "h12"]), st.sampled_from(["s2", "a3_0", "c9"]),
                               st.floats(min_value=0.0, max_value=5.0, allow_nan=False), _VALUES,
                               st.sampled_from([1e7, 1e9, 4e10, 12345.0])), max_size=20))
def test_write_tick_matches_write_rows(t, rows):
    slow, fast = io.StringIO(), io.StringIO()
    n_slow = write_rows(slow, [(t, (a, b), u, nbytes, cap) for a, b, u, nbytes, cap in rows])
    n_fast = write_tick(fast, t, [format_link((a, b)) for a, b, *_ in rows], [r[4] for r in rows],
                        [r[2] for r in rows], [r[3] for r in rows])
    assert (n_fast, fast.getvalue()) == (n_slow, slow.getvalue())


def test_the_sampling_period_of_a_recording_that_missed_polls(tmp_path):
    """The plain median of the spacings read this 1 s recording (most polls missed) as 2 s."""
    from controller.loadtrace import read_link_loads
    times = [0, 2, 3, 6, 8, 9, 11, 12, 15, 17, 18, 20, 21]
    path = tmp_path / "loads.csv"
    path.write_text("t_s,link,util\n" + "".join("%d,e0_0->a0_0,0.5\n" % t for t in times))
    assert read_link_loads(str(path)).sampling_period_s() == 1.0
    jitter = [0.0, 1.02, 1.98, 3.01, 3.99, 5.0]
    path.write_text("t_s,link,util\n" + "".join("%g,e0_0->a0_0,0.5\n" % t for t in jitter))
    assert abs(read_link_loads(str(path)).sampling_period_s() - 1.0) < 0.03


def test_jittered_samples_that_share_a_grid_slot_are_averaged_not_dropped(tmp_path):
    from controller.loadtrace import read_link_loads
    from models.training import to_grid
    path = tmp_path / "loads.csv"
    path.write_text("t_s,link,util\n" + "".join("%g,e0_0->a0_0,%g\n" % (t, u) for t, u in
                                                  [(0, 0.0), (1, 0.1), (2, 0.2), (3.6, 0.3), (4, 0.4), (5, 0.5)]))
    grid = to_grid(read_link_loads(str(path)), 1.0)
    got = grid.util[0].tolist()
    assert got[:3] == [0.0, 0.1, 0.2] and got[3] != got[3] and abs(got[4] - 0.35) < 1e-12 and got[5] == 0.5
