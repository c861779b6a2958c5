"""The compiled ``make_features`` (Numba) gives ``make_features_numpy``'s output bit for bit.

Bit for bit means equal as float64 *and* as int64 (so -0.0 against +0.0 and NaN payloads
count): the shipped model is rebuilt byte-identically and replays must not change.
"""
import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from hypothesis.extra.numpy import arrays

from models import features
from models.features import FEATURE_NAMES, fill_gaps, make_features, make_features_numpy, persistence

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
needs_jit = pytest.mark.skipif(not features.COMPILED, reason="Numba not installed or SIDESTEP_NO_JIT set")

WINDOWS = [1, 2, 3, 7, 8, 9, 95, 96, 97, 128, 129, 200]
SPECIAL = [0.0, -0.0, 1.0, 0.5, 1e6, 1e300, -1e300, 1e-300, 5e-324, -5e-324, -1.0, 0.3]


def assert_same_bits(got, expected):
    got, expected = np.asarray(got), np.asarray(expected)
    assert got.dtype == expected.dtype == np.float64
    assert got.shape == expected.shape
    differ = got.view(np.int64) != expected.view(np.int64)
    if differ.ndim == 2 and differ.shape[1] == len(FEATURE_NAMES) and differ.any():
        cols = sorted({FEATURE_NAMES[c] for c in np.nonzero(differ)[1]})
        raise AssertionError("bits differ in %d cells, columns %s" % (int(differ.sum()), cols))
    assert not differ.any()
    assert np.array_equal(got, expected, equal_nan=True)


def check(x, horizon):
    """Compiled against numpy on one batch; returns the features."""
    with np.errstate(all="ignore"):          # numpy warns about inf - inf; the bits are what count
        got = make_features(x, horizon)
        assert_same_bits(got, make_features_numpy(x, horizon))
    return got


def col(F, name):
    return F[:, FEATURE_NAMES.index(name)]


def rows(w, seed):
    """A batch of the rows that matter: periodic loads (periods 2..40, one or two jobs), noise,
    constants, exact ties, signed zeros, large and tiny values, and NaN gaps of every shape."""
    rng = np.random.default_rng(seed)
    t = np.arange(w, dtype=float)
    out = []
    for p in (2, 3, 4, 5, 7, 10, 12, 17, 25, 40):
        out.append(0.5 + 0.4 * np.sin(2 * np.pi * t / p))
        out.append(((t % p) < max(1, p // 3)) * 0.9 + 0.05)
    for _ in range(8):
        p = rng.uniform(2.0, 40.0)
        out.append(((t + rng.uniform(0, p)) % p < rng.uniform(0.2, 0.7) * p) * rng.uniform(0.3, 1.0)
                   + rng.normal(0, 0.01, w))
    for _ in range(6):
        p1, p2 = rng.uniform(3.0, 40.0, 2)
        out.append(0.5 * ((t % p1) < p1 / 2) + 0.4 * ((t % p2) < p2 / 3))
    out += [rng.random(w), np.zeros(w), np.ones(w), np.full(w, 0.3),
            rng.choice([0.0, 0.5, 1.0], w),                         # exact ties everywhere
            np.where(rng.random(w) < 0.5, 0.0, -0.0),                # signed zeros only
            np.full(w, -0.0),
            rng.choice([0.0, -0.0, 0.25], w),
            rng.choice([-0.0, 0.25, 1.0], w),
            -rng.random(w), rng.random(w) * 1e6, rng.random(w) * 1e300, rng.random(w) * 1e-300,
            rng.choice(SPECIAL, w),
            ((t % 6) < 3) * 1.0 + np.where(rng.random(w) < 0.5, 0.0, -0.0),
            ((t % 8) < 4) * 1e300,
            ((t % 5) < 2) * 5e-324]
    x = np.vstack(out)
    gappy = x[rng.permutation(len(x))[:12]].copy()
    gappy[rng.random(gappy.shape) < 0.15] = np.nan
    lead, trail, single, empty = x[0].copy(), x[1].copy(), np.full(w, np.nan), np.full(w, np.nan)
    lead[:max(1, w // 3)] = np.nan
    trail[-max(1, w // 4):] = np.nan
    single[w // 2] = 0.7
    return np.vstack([x, gappy, lead, trail, single, empty])


@needs_jit
@pytest.mark.parametrize("horizon", [1, 2, 3, 4])
@pytest.mark.parametrize("w", WINDOWS)
def test_every_column_matches_on_every_kind_of_row(w, horizon):
    F = check(rows(w, seed=w * 10 + horizon), horizon)
    if w >= 48:          # long enough for the periodic paths to matter
        assert (col(F, "period") > 0).sum() >= 20
        assert (col(F, "period2") > 0).sum() >= 1
        assert (col(F, "phase_cos") != 0).sum() >= 20
        assert (col(F, "season1") != 0).sum() >= 20


@needs_jit
@pytest.mark.parametrize("w", [96, 129])
def test_large_batches_match(w):
    # big enough that numpy elides the temporary of f * conj(f) (>= 256 KiB), and several rows
    # per SIMD block everywhere
    x = np.vstack([rows(w, seed=s) for s in range(12)])
    assert x.shape[0] * (w + 1) * 16 >= 256 * 1024
    check(x, 2)


@needs_jit
def test_fabric_like_history_matches():
    from models.synth import SynthConfig, fabric_links, generate
    links = fabric_links(8)
    tr = generate(11, SynthConfig(k=8, duration_s=96 + 10), links=links)
    hist = tr.util[:, -96:].copy()
    hist[::50, -3:] = np.nan
    for horizon in (1, 2, 3):
        check(hist, horizon)


special_floats = st.one_of(st.sampled_from(SPECIAL + [np.nan, np.inf, -np.inf]),
                           st.floats(-2, 2), st.floats(allow_nan=True, allow_infinity=True))


@needs_jit
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(arrays(np.float64, st.tuples(st.integers(1, 6), st.integers(1, 200)), elements=special_floats),
       st.integers(1, 4))
def test_any_values_match(x, horizon):
    check(x, horizon)


@st.composite
def periodic_batches(draw):
    """One or two on/off (or sine) jobs with periods 2..40 plus noise, signed zeros and gaps."""
    w = draw(st.integers(1, 200))
    n = draw(st.integers(1, 5))
    t = np.arange(w, dtype=float)
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1)))
    batch = []
    for _ in range(n):
        p = draw(st.floats(2.0, 40.0))
        shape = draw(st.sampled_from(["square", "sine", "two"]))
        level = draw(st.sampled_from([1.0, 0.9, 1e-300, 1e300, 5e-324, 3.0]))
        if shape == "square":
            row = ((t % p) < draw(st.floats(0.1, 0.9)) * p) * level
        elif shape == "sine":
            row = (0.5 + 0.5 * np.sin(2 * np.pi * t / p)) * level
        else:
            q = draw(st.floats(2.0, 40.0))
            row = (0.5 * ((t % p) < p / 2) + 0.4 * ((t % q) < q / 3)) * level
        noise = draw(st.sampled_from([0.0, 0.001, 0.05]))
        row = row + rng.normal(0, noise, w) * level
        if draw(st.booleans()):
            row = np.where(row == 0, np.where(rng.random(w) < 0.5, 0.0, -0.0), row)
        gaps = draw(st.sampled_from([0.0, 0.05, 0.3]))
        row[rng.random(w) < gaps] = np.nan
        batch.append(row)
    return np.vstack(batch)


@needs_jit
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(periodic_batches(), st.integers(1, 4))
def test_periodic_loads_match(x, horizon):
    check(x, horizon)


# --- the ties numpy decides: a zero max/min when +0.0 and -0.0 are both in the range -----------

@needs_jit
def test_zero_max_with_both_zero_signs_goes_to_numpy():
    w = 20
    x = np.zeros((4, w))
    x[0, ::2] = -0.0                         # max and min of every range: 0 with both signs
    x[1, -3] = -0.0                          # only inside max4/min4 and the longer ranges
    x[2] = -0.0                              # all -0.0: no tie, the kernel answers
    x[3, :-16] = -1.0                        # min_w is -1; max_w 0 with only +0.0 (no tie)
    x[3, 0] = -0.0                           # ... but max_w's range now holds -0.0 too
    out = np.empty((4, len(FEATURE_NAMES)))
    ties = np.empty(4, dtype=np.int64)
    features._window_kernel_jit(x.copy(), np.empty_like(x), out, np.empty(4), ties, np.empty(4, dtype=np.int64),
                                np.empty(4, dtype=bool))
    assert list(ties) == [63, 63, 0, 16]
    for horizon in (1, 2, 4):
        check(x, horizon)


@needs_jit
@pytest.mark.parametrize("pattern, w, horizon", [
    ([-0.0, -0.0, -1.0, 0.0], 40, 4),
    ([-0.0, -0.0, 0.0, -1.0, 0.0], 60, 3),
    ([-0.0, -1.0, -0.0, 0.0, -0.0], 84, 4),
    ([-0.0, -1.0, -0.0, 1.0, 1.0, 0.0, -0.0], 48, 2),
])
def test_season_max_tie_goes_to_numpy(pattern, w, horizon, monkeypatch):
    # periodic rows (found by search) where season_max compares +0.0 with -0.0 and the sign
    # numpy's maximum picks survives into the column
    x = np.array(pattern)[np.arange(w) % len(pattern)][None, :]
    calls = []
    real = features.value_at
    monkeypatch.setattr(features, "value_at", lambda *a: calls.append(1) or real(*a))
    compiled = make_features(x, horizon)
    monkeypatch.setattr(features, "value_at", real)
    assert calls, "no +0.0/-0.0 tie in season_max: the numpy fallback was not exercised"
    assert_same_bits(compiled, make_features_numpy(x, horizon))


# --- the period rules on autocorrelations with exact ties --------------------------------------

def _exact_autocorrelations(rng, n, n_lags):
    """Autocorrelation rows of a few dyadic values: ties between neighbours, equal peaks, periods
    landing exactly on multiples (an FFT of real data almost never ties, these rules must still
    break ties as numpy does)."""
    values = np.array([-0.5, -0.25, 0.0, 0.25, 0.375, 0.5, 0.75, 0.875, 1.0])
    acf = rng.choice(values, size=(n, n_lags))
    for i in range(0, n, 3):                      # periodic rows: peaks every p lags, flat tops
        p = rng.integers(2, 12)
        j = np.arange(n_lags)
        acf[i] = np.where(j % p == 0, 1.0, np.where((j % p == 1) | (j % p == p - 1), rng.choice(values), -0.25))
    acf[:, 0] = 1.0
    return acf


@needs_jit
@pytest.mark.parametrize("w", [8, 12, 40, 96])
def test_period_rules_break_exact_ties_as_numpy(w, monkeypatch):
    rng = np.random.default_rng(w)
    horizon, n = 2, 600
    max_period = (w - horizon) // 2
    n_lags = max_period + 2
    acf = _exact_autocorrelations(rng, n, n_lags)
    # the FFT result these come from, exactly: r[j] / (w - j) / (r[0] / w) == acf[j]
    r = np.zeros((n, 2 * w))
    r[:, :n_lags] = acf * (w - np.arange(n_lags))
    raw = rng.random((n, w))
    out = np.zeros((n, len(FEATURE_NAMES)))
    out[:, 0] = raw[:, -1]
    scratch = [np.empty(n), np.empty(n, dtype=bool), np.empty(n), np.empty(n), np.empty(n, dtype=bool)]
    features._period_kernel_jit(raw, r, max_period, horizon, np.ones(n, dtype=np.int64), np.zeros(n, dtype=bool),
                                out, *scratch)
    monkeypatch.setattr(features, "autocorrelation", lambda x, max_lag: acf[:, :max_lag + 1])
    expected = np.column_stack(features.detect_periods(raw, max_period))
    got = out[:, [FEATURE_NAMES.index(k) for k in ("period", "acf_peak", "period2", "acf_peak2")]]
    assert_same_bits(got, expected)
    assert (expected[:, 0] > 0).sum() > n // 10 and (expected[:, 2] > 0).sum() > (n // 20 if w >= 40 else -1)


# --- the claims about numpy the kernels rely on, checked against numpy itself -----------------

@needs_jit
@pytest.mark.parametrize("n", list(range(1, 300)) + [511, 1000, 4097, 10000])
def test_row_sum_mean_and_std_are_numpys(n):
    rng = np.random.default_rng(n)
    x = rng.standard_normal((4, n)) * 10.0 ** rng.integers(-8, 8, (4, n))
    x[1] = rng.choice([0.0, -0.0], n)
    x[2] = np.round(x[2])
    sums = np.array([0.0 + features._pairwise_sum(row, 0, n) for row in x])
    assert_same_bits(sums, x.sum(axis=1))
    means = sums / n
    assert_same_bits(means, x.mean(axis=1))
    std = np.sqrt(np.array([0.0 + features._pairwise_sum((row - m) * (row - m), 0, n) for row, m in zip(x, means)]) / n)
    assert_same_bits(std, x.std(axis=1))


# --- public behaviour is the numpy path's -----------------------------------------------------

@needs_jit
@pytest.mark.parametrize("bad", [np.zeros(5), np.zeros((2, 0)), np.zeros((2, 3, 4))])
def test_bad_shapes_raise_the_same_error(bad):
    with pytest.raises(ValueError) as compiled:
        make_features(bad, 2)
    with pytest.raises(ValueError) as plain:
        make_features_numpy(bad, 2)
    assert str(compiled.value) == str(plain.value)


@needs_jit
@pytest.mark.parametrize("horizon", [0, -1, -3, True, np.int64(2), np.int32(3), 7, 50, 2.0, 2.5])
def test_any_horizon_behaves_as_numpy(horizon):
    x = rows(24, seed=3)
    with np.errstate(all="ignore"):
        try:
            expected = make_features_numpy(x, horizon)
        except Exception as exc:  # noqa: BLE001 - the same exception is the expected behaviour
            with pytest.raises(type(exc)) as compiled:
                make_features(x, horizon)
            assert str(compiled.value) == str(exc)
            return
        assert_same_bits(make_features(x, horizon), expected)


@needs_jit
def test_layouts_dtypes_and_empty_batches_match():
    x = rows(120, seed=5)
    full = np.nan_to_num(x, nan=0.25)
    views = [x[:, 24:], np.asfortranarray(x), x[::2, ::3], x[:, ::-1], x.T.copy().T, np.asfortranarray(full),
             full[:, 24:], np.lib.stride_tricks.sliding_window_view(x[3], 50), np.broadcast_to(x[-4], (5, 120))]
    ro = x.copy()
    ro.flags.writeable = False
    views.append(ro)
    for v in views:
        F = check(v, 2)
        assert F.flags.c_contiguous
    ints = np.random.default_rng(0).integers(0, 3, (6, 40))
    check(ints, 2)
    check(np.random.default_rng(1).random((6, 40)).astype(np.float32), 2)
    check(np.random.default_rng(2).random((6, 40)) > 0.5, 2)
    check(x.tolist(), 2)
    check(np.zeros((0, 96)), 2)


@needs_jit
def test_reused_buffers_change_no_value(monkeypatch):
    """The per-thread workspace (gap-filled matrix, FFT buffer) across shapes, with and without it,
    and results already handed out stay as they were."""
    big = np.vstack([rows(96, seed=s) for s in range(10)])
    # 168 / 169 rows of 96: f * conj(f) just below / at numpy's 256 KiB elision threshold
    batches = [big, rows(96, seed=20), big[::-1], rows(40, seed=21), big[:5], np.nan_to_num(big, nan=0.1), big,
               big[:168], big[:169], big[1:169]]
    kept = []
    for x in batches:
        kept.append((check(x, 2), x))
    with np.errstate(all="ignore"):
        for F, x in kept:
            assert_same_bits(F, make_features_numpy(x, 2))
    assert kept[0][0] is not kept[-1][0]
    monkeypatch.setattr(features, "_WORKSPACE_MAX_BYTES", 0)    # as for a training-sized batch
    check(big, 2)
    monkeypatch.setattr(features, "_WORKSPACE_MAX_BYTES", 64 << 20)
    monkeypatch.setattr(features, "_power_order", lambda n, w: None)   # no call matched the expression
    check(big[:300], 2)
    monkeypatch.setattr(features, "_FFT_HAS_OUT", False)        # numpy < 2.0: no rfft(out=)
    monkeypatch.setattr(features, "_WORKSPACE_MAX_BYTES", 64 << 20)
    check(big, 3)


@needs_jit
@pytest.mark.parametrize("n, distinct", [(768, 60), (768, 500), (300, 100), (300, 299), (170, 2), (5, 1)])
def test_repeated_rows_are_computed_once_with_the_same_bits(n, distinct, monkeypatch):
    """A batch whose rows repeat (as a fabric's idle links do) gets the whole batch's bits: the
    EWMAs' BLAS sums and the complex product's rounding follow the full batch, not the distinct rows
    (300 rows of 96 are above numpy's elision threshold, 100 below)."""
    pool = np.vstack([rows(96, seed=s) for s in range(14)])
    _, first = np.unique(pool.view(np.dtype((np.void, 96 * 8))).ravel(), return_index=True)
    pool = pool[np.sort(first)]             # distinct bits (rows() repeats its constant rows)
    rng = np.random.default_rng(n + distinct)
    chosen = pool[rng.choice(len(pool), distinct, replace=False)]
    x = chosen[np.concatenate([np.arange(distinct), rng.integers(0, distinct, n - distinct)])]
    x = np.ascontiguousarray(x[rng.permutation(n)])
    computed = []
    kernel = features._window_kernel_jit
    monkeypatch.setattr(features, "_window_kernel_jit",
                        lambda raw, *rest: computed.append(raw.shape[0]) or kernel(raw, *rest))
    check(x, 2)
    assert computed == [distinct]           # once per distinct row, not per row


@needs_jit
@pytest.mark.parametrize("gaps", [False, True])
def test_a_batch_too_large_for_the_workspace_merges_repeated_rows_too(gaps, monkeypatch):
    """A k=32 fabric's batch (49,152 links) is above the workspace's size: its repeated rows are
    still computed once, with the whole batch's bits (gap-free: the EWMAs read the input itself),
    and a batch above ``_POWER_TEST_MAX_BYTES`` (training) merges none."""
    pool = np.nan_to_num(np.vstack([rows(96, seed=s) for s in range(3)]), nan=0.25)
    _, first = np.unique(pool.view(np.dtype((np.void, 96 * 8))).ravel(), return_index=True)
    pool = pool[np.sort(first)][:40]
    if gaps:
        pool[::7, 10:14] = np.nan
        pool[3, :] = np.nan
    rng = np.random.default_rng(7)
    x = np.ascontiguousarray(np.vstack([pool, pool[rng.integers(0, len(pool), 400)], np.zeros((160, 96))])
                             [rng.permutation(600)])
    computed = []
    kernel = features._window_kernel_jit
    monkeypatch.setattr(features, "_window_kernel_jit",
                        lambda raw, *rest: computed.append(raw.shape[0]) or kernel(raw, *rest))
    monkeypatch.setattr(features, "_WORKSPACE_MAX_BYTES", 0)
    check(x, 2)
    assert computed == [len(np.unique(x.view(np.dtype((np.void, 96 * 8))).ravel()))] and computed[0] < 100
    monkeypatch.setattr(features, "_POWER_TEST_MAX_BYTES", 600 * 97 * 16 - 1)
    check(x, 3)
    assert computed[1:] == [600]


@pytest.mark.parametrize("n", [1, 2, 100, 168, 169, 170, 768])
def test_power_order_gives_the_bits_of_the_expression(n):
    """Whichever call ``_power_order`` picks reproduces ``f * np.conj(f)`` on other values than its probe."""
    w = 96
    x = np.vstack([rows(w, seed=s) for s in range(n // 60 + 1)])[:n]
    x = np.nan_to_num(x, nan=0.4, posinf=1.0, neginf=-1.0)
    with np.errstate(all="ignore"):
        f = np.fft.rfft(x - x.mean(axis=1, keepdims=True), n=2 * w, axis=1)
        expected = f * np.conj(f)
        order = features._power_order(n, w)
        assert order is not None
        got = features._power(f, np.empty_like(f), order)
    assert np.array_equal(got.view(np.int64), expected.view(np.int64))


@needs_jit
def test_threads_have_their_own_buffers():
    import threading

    batches = [np.vstack([rows(96, seed=10 * t + s) for s in range(4)]) for t in range(4)]
    with np.errstate(all="ignore"):
        expected = [make_features_numpy(x, 2) for x in batches]
    failures = []

    def work(t):
        with np.errstate(all="ignore"):
            for _ in range(15):
                got = make_features(batches[t], 2)
                if not np.array_equal(got.view(np.int64), expected[t].view(np.int64)):
                    failures.append(t)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not failures


@needs_jit
def test_input_is_not_modified():
    x = rows(96, seed=7)
    before = x.copy()
    with np.errstate(all="ignore"):
        make_features(x, 2)
    assert np.array_equal(x.view(np.int64), before.view(np.int64))


def test_no_jit_uses_numpy():
    code = ("import numpy as np; from models import features as f; assert not f.COMPILED; "
            "x = np.random.default_rng(0).random((5, 96)); "
            "assert np.array_equal(f.make_features(x, 2).view(np.int64), f.make_features_numpy(x, 2).view(np.int64)); "
            "print('ok')")
    env = dict(os.environ, SIDESTEP_NO_JIT="1")
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "ok"


@pytest.mark.parametrize("w", [1, 2, 5, 96])
def test_persistence_is_the_last_filled_column(w):
    rng = np.random.default_rng(w)
    x = rng.choice([np.nan, 0.0, -0.0, 0.5, np.inf], size=(60, w))
    x[0] = np.nan
    assert_same_bits(persistence(x), fill_gaps(x)[:, -1])
    assert_same_bits(persistence(x[:, ::-1]), fill_gaps(x[:, ::-1])[:, -1])
    assert persistence(np.zeros((0, w))).shape == (0,)
