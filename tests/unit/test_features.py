"""Features on hand-made series: a sine, a square wave, a constant, NaN gaps."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from hypothesis.extra.numpy import arrays

from models.features import (FEATURE_NAMES, FEATURES, MIN_ACF, MIN_PERIOD, autocorrelation, detect_periods,
                             fill_gaps, make_features, persistence, seasonal_position, sliding_windows, value_at)

T = np.arange(96)
SINE = 0.5 + 0.4 * np.sin(2 * np.pi * T / 12)
SQUARE = ((T % 10) < 4).astype(float) * 0.9 + 0.05
CONST = np.full(96, 0.3)


def col(F, name):
    return F[:, FEATURE_NAMES.index(name)]


def test_every_feature_is_documented_once():
    assert len(FEATURE_NAMES) == len(set(FEATURE_NAMES)) == len(FEATURES)
    assert all(FEATURES[n] for n in FEATURE_NAMES)


def test_period_of_sine_and_square_wave():
    p1, s1, _, _ = detect_periods(np.vstack([SINE, SQUARE]), max_period=47)
    assert p1[0] == pytest.approx(12, abs=0.3)
    assert p1[1] == pytest.approx(10, abs=0.3)
    assert (s1 > 0.9).all()


def test_fractional_period_is_found():
    # a 7.5 s iteration polled every second; each sample averages its interval, as counters do
    fine = np.arange(960) / 10.0
    x = ((fine % 7.5) < 3).astype(float).reshape(96, 10).mean(axis=1)
    p1, _, _, _ = detect_periods(x[None, :], max_period=47)
    assert p1[0] == pytest.approx(7.5, abs=0.4)


def test_constant_has_no_period_and_zero_changes():
    F = make_features(CONST[None, :], horizon=2)
    assert col(F, "period")[0] == 0
    assert col(F, "last")[0] == pytest.approx(0.3)
    changes = [n for n in FEATURE_NAMES if n not in ("last",)]
    assert np.allclose(F[0, [FEATURE_NAMES.index(n) for n in changes]], 0.0)


def test_square_wave_seasonal_value_foresees_the_edge():
    # window ends on the last "on" sample: two samples later the wave is off
    x = SQUARE[:94]          # t = 93: 93 % 10 = 3 -> on; t = 95 -> off
    F = make_features(x[None, :], horizon=2)
    assert col(F, "last")[0] == pytest.approx(0.95)
    assert col(F, "season1")[0] + col(F, "last")[0] == pytest.approx(0.05, abs=0.1)


def test_sine_seasonal_value_is_the_future():
    x = SINE[:90]
    F = make_features(x[None, :], horizon=2)
    assert col(F, "season1")[0] + col(F, "last")[0] == pytest.approx(SINE[91], abs=0.05)


def test_nan_gaps_are_forward_filled_and_counted():
    x = SINE.copy()
    x[[0, 1, 30, 31, 32, 95]] = np.nan
    filled = fill_gaps(x[None, :])[0]
    assert filled[0] == filled[2] == x[2]
    assert filled[31] == x[29]
    assert filled[95] == x[94]
    F = make_features(x[None, :], horizon=2)
    assert np.isfinite(F).all()
    assert col(F, "nan_frac")[0] == pytest.approx(6 / 96)
    assert col(F, "period")[0] == pytest.approx(12, abs=0.5)
    assert persistence(x[None, :])[0] == x[94]


def test_all_nan_row_is_zero_and_finite():
    x = np.full((2, 96), np.nan)
    x[1] = SINE
    F = make_features(x, horizon=2)
    assert np.isfinite(F).all()
    assert col(F, "last")[0] == 0.0 and col(F, "nan_frac")[0] == 1.0


def test_vectorised_rows_equal_single_rows():
    X = np.vstack([SINE, SQUARE, CONST])
    F = make_features(X, horizon=2)
    for i in range(3):
        assert np.allclose(F[i], make_features(X[i:i + 1], horizon=2)[0])


def test_sliding_windows_targets():
    X, y, target = sliding_windows(np.arange(10.0), window=4, horizon=2)
    assert X.shape == (5, 4)
    assert list(X[0]) == [0, 1, 2, 3] and y[0] == 5 and target[0] == 5
    assert y[-1] == 9


@settings(max_examples=40, deadline=None)
@given(arrays(np.float64, st.tuples(st.integers(1, 5), st.integers(1, 40)),
              elements=st.one_of(st.floats(0, 2), st.just(np.nan))),
       st.integers(1, 4))
def test_features_are_finite_for_any_window(x, horizon):
    F = make_features(x, horizon)
    assert F.shape == (x.shape[0], len(FEATURE_NAMES))
    assert np.isfinite(F).all()


# --- the vectorised implementation against plain per-row definitions -------------------------

def _noisy_periodic_batch(w, seed=0):
    """Rows a link can show: noisy on/off jobs (one or two), a sine, noise, idle, gaps, all missing."""
    rng = np.random.default_rng(seed)
    t = np.arange(w)
    rows = []
    for _ in range(12):
        p, duty = rng.uniform(2.5, max(3.0, w / 3)), rng.uniform(0.2, 0.7)
        rows.append(((t + rng.uniform(0, p)) % p < duty * p) * rng.uniform(0.3, 1.0))
    for _ in range(6):
        p1, p2 = rng.uniform(3, max(4.0, w / 3), 2)
        rows.append(0.5 * ((t % p1) < p1 / 2) + 0.4 * ((t % p2) < p2 / 3))
    rows += [0.5 + 0.4 * np.sin(2 * np.pi * t / rng.uniform(3, max(4.0, w / 2))), rng.random(w),
             np.zeros(w), np.full(w, 0.3)]
    x = np.vstack(rows) + rng.normal(0, 0.01, (len(rows), w)) * (np.arange(len(rows)) < len(rows) - 2)[:, None]
    x[rng.random(x.shape) < 0.05] = np.nan
    x[-3] = np.nan
    return x


@pytest.mark.parametrize("w", [1, 2, 3, 5, 8, 17, 96])
def test_autocorrelation_equals_direct_sums(w):
    x = fill_gaps(_noisy_periodic_batch(w, seed=w))
    z = x - x.mean(axis=1, keepdims=True)
    r = np.array([[np.dot(row[:w - k], row[k:]) / (w - k) for k in range(w)] for row in z])
    var = r[:, :1]
    expected = np.where(var > 1e-12, r / np.where(var > 1e-12, var, 1.0), 0.0)
    for max_lag in sorted({0, w // 2, w - 1}):
        got = autocorrelation(x, max_lag)
        assert got.shape == (len(x), max_lag + 1)
        np.testing.assert_allclose(got, expected[:, :max_lag + 1], rtol=0, atol=1e-12)


def _periods_by_loop(acf, max_period):
    """The rules of ``detect_periods`` for one autocorrelation row, one lag at a time."""
    def refine(k):
        a, b, c = acf[k - 1], acf[k], acf[k + 1]
        denom = a - 2 * b + c
        return k + (min(max(0.5 * (a - c) / denom, -0.5), 0.5) if denom < -1e-12 else 0.0)

    first_neg = next((k for k in range(1, len(acf)) if acf[k] < 0), len(acf))
    cands = [k for k in range(MIN_PERIOD, max_period + 1)
             if k > first_neg and acf[k] >= acf[k - 1] and acf[k] > acf[k + 1]]
    top = max((acf[k] for k in cands), default=-np.inf)
    if not top >= MIN_ACF:
        return 0.0, 0.0, 0.0, 0.0
    lag1 = next(k for k in cands if acf[k] >= 0.8 * top)
    p1 = refine(lag1)
    scale = max(p1, 1.0)
    rest = [k for k in cands if abs(k / scale - np.rint(k / scale)) * scale > 1.0]
    top2 = max((acf[k] for k in rest), default=-np.inf)
    if not top2 >= MIN_ACF:
        return p1, acf[lag1], 0.0, 0.0
    lag2 = next(k for k in rest if acf[k] == top2)
    return p1, acf[lag1], refine(lag2), acf[lag2]


@pytest.mark.parametrize("w", [8, 9, 12, 24, 48, 96])
def test_detect_periods_equals_the_per_row_rules(w):
    x = fill_gaps(np.vstack([_noisy_periodic_batch(w, seed=w), SINE[:w], SQUARE[:w], CONST[:w]]))
    max_period = (w - 2) // 2
    acf = autocorrelation(x, max_period + 1)
    got = np.column_stack(detect_periods(x, max_period))
    expected = np.array([_periods_by_loop(row, max_period) for row in acf])
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)


def test_no_period_in_a_window_shorter_than_two_shortest_periods():
    x = fill_gaps(_noisy_periodic_batch(6))
    assert not np.column_stack(detect_periods(x, max_period=2)).any()


def test_value_at_interpolates_inside_the_window_only():
    x = np.random.default_rng(3).random((6, 10))
    pos = np.array([0.0, 3.25, 9.0, 9.5, -0.5, 8.75])
    got = value_at(x, pos, np.full(6, -1.0))
    expected = [x[0, 0], 0.75 * x[1, 3] + 0.25 * x[1, 4], x[2, 9], -1.0, -1.0, 0.25 * x[5, 8] + 0.75 * x[5, 9]]
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-15)


@pytest.mark.parametrize("horizon", [1, 2, 3])
def test_seasonal_features_equal_their_single_lookups(horizon):
    x = _noisy_periodic_batch(96, seed=horizon)
    F = make_features(x, horizon)
    f = fill_gaps(x)
    last, w = f[:, -1], f.shape[1]
    p1, p2 = col(F, "period"), col(F, "period2")
    pos1, pos2 = seasonal_position(w, p1, horizon, 1), seasonal_position(w, p1, horizon, 2)
    s1 = value_at(f, pos1, last)
    s2 = value_at(f, pos2, s1)
    smax = s1
    for j in range(1, horizon):
        smax = np.maximum(smax, value_at(f, pos1 - j, s1))
    pos_b = seasonal_position(w, p2, horizon, 1)
    sb = value_at(f, pos_b, s1)
    both = (p1 > 0) & (p2 > 0)
    sab = value_at(f, np.where(both, pos_b - p1, -1.0), np.nan)
    combo = np.where(both & np.isfinite(sab), s1 + sb - np.nan_to_num(sab), s1)
    expected = {"season1": s1 - last, "season2": s2 - last,
                "season_delta1": s1 - value_at(f, pos1 - horizon, s1),
                "season_delta2": s2 - value_at(f, pos2 - horizon, s2),
                "season_max": smax - last, "season_p2": sb - last, "season_combo": combo - last}
    assert (p1 > 0).sum() >= 10 and (p2 > 0).sum() >= 3      # the periodic paths are exercised
    for name, values in expected.items():
        np.testing.assert_array_equal(col(F, name), values, err_msg=name)


@pytest.mark.parametrize("w", [1, 2, 3, 5, 8, 96])
def test_batch_rows_equal_single_row_calls(w):
    # the batch differs from single rows only by rounding (BLAS and FFT batch sizes), never by a decision
    x = _noisy_periodic_batch(w, seed=10 + w)
    F = make_features(x, horizon=2)
    single = np.vstack([make_features(x[i:i + 1], horizon=2) for i in range(len(x))])
    np.testing.assert_allclose(F, single, rtol=0, atol=1e-12)


def test_memory_layout_does_not_change_features():
    x = _noisy_periodic_batch(120, seed=4)
    F = make_features(x[:, 24:], horizon=2)                 # a strided view
    np.testing.assert_allclose(make_features(np.ascontiguousarray(x[:, 24:]), 2), F, rtol=0, atol=1e-12)
    np.testing.assert_allclose(make_features(np.asfortranarray(x[:, 24:]), 2), F, rtol=0, atol=1e-12)
