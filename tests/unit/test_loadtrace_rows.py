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
