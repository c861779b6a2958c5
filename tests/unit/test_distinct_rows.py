"""Rows with the same bits found once (``models.distinct_rows``), against numpy's ``unique``."""
import numpy as np
import pytest

from models import distinct_rows


def first_copies_reference(X):
    """numpy's answer: for each row, the first row with the same bytes."""
    X = np.ascontiguousarray(X)
    _, first, inverse = np.unique(X.view(np.dtype((np.void, X.shape[1] * 8))).ravel(), return_index=True,
                                  return_inverse=True)
    return first[inverse.ravel()]


@pytest.mark.parametrize("compiled_twin", [False, True])
def test_first_copies_finds_rows_with_the_same_bits(compiled_twin):
    if compiled_twin and distinct_rows.first_copies is None:
        pytest.skip("Numba not installed or SIDESTEP_NO_JIT set")
    fn = distinct_rows.first_copies if compiled_twin else distinct_rows.first_copies_plain
    rng = np.random.default_rng(21)
    base = rng.choice([0.0, -0.0, 1.0, np.nan, np.inf], size=(40, 6))
    base[5] = base[4]
    base[6] = base[4]
    base[7] = np.where(base[4] == 0, -base[4], base[4])         # only a zero sign differs
    payload = base[8].copy()
    payload.view(np.uint64)[0] = 0x7FF8000000000001           # another NaN payload
    base[9] = payload
    for X in (base, base[rng.integers(0, 40, 300)], base[:1], base[:0], np.zeros((50, 1)), rng.random((30, 38))):
        X = np.ascontiguousarray(X)
        first = np.empty(len(X), dtype=np.int64)
        with np.errstate(over="ignore"):                      # the plain twin's uint64 hash wraps, as compiled
            distinct = fn(X.view(np.uint64), first)
        expected = first_copies_reference(X) if len(X) else np.zeros(0, dtype=np.int64)
        assert np.array_equal(first, expected)
        assert distinct == len(np.unique(expected))


def test_distinct_rows_maps_every_row_to_its_first_copy():
    rng = np.random.default_rng(5)
    base = rng.random((7, 96))
    base[3] = np.nan
    X = np.ascontiguousarray(base[rng.integers(0, 7, 500)])
    rows, slot = distinct_rows.distinct_rows(X)
    assert np.array_equal(rows, np.sort(np.unique(first_copies_reference(X))))
    assert np.array_equal(X[rows][slot].view(np.uint64), X.view(np.uint64))
    assert distinct_rows.distinct_rows(rng.random((20, 4))) is None      # nothing repeats
    assert distinct_rows.distinct_rows(np.zeros((1, 4))) is None
    assert distinct_rows.distinct_rows(np.zeros((0, 4))) is None
