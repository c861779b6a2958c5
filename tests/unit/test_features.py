"""Features on hand-made series: a sine, a square wave, a constant, NaN gaps."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from hypothesis.extra.numpy import arrays

from models.features import (FEATURE_NAMES, FEATURES, detect_periods, fill_gaps, make_features,
                             persistence, sliding_windows)

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
