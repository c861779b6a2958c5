"""Which rows of a matrix repeat another row bit for bit, so that per-row work runs once per distinct row.

Why: in a replay or a live fabric many links share their recent history (idle links, the
hops of one ring, both ends of a quiet path), and both the forecaster's features and its
trees compute each row from that row alone.  Equal bits in give equal bits out, so a
repeated row can take its first copy's result.  Bits, not values: -0.0 and 0.0, or NaNs
with different payloads, are different rows here, which only costs a merge.
"""
from __future__ import annotations

from typing import Optional, Tuple

import numpy as np

from controller.jit import jit as _jit

__all__ = ["distinct_rows", "first_copies", "first_copies_plain"]


def first_copies_plain(words: np.ndarray, first: np.ndarray) -> int:
    """``first[i]``: the lowest row index whose bits equal row ``i``'s (``words`` is X as uint64).

    Open addressing on a hash of each row's words; a hit is confirmed word by word, so
    equal hashes of different rows never merge them.  Returns the number of distinct rows.
    """
    n, m = words.shape
    size = 1
    while size < 2 * n:
        size *= 2
    table = np.full(size, -1, dtype=np.int64)
    mask = np.uint64(size - 1)
    distinct = 0
    for i in range(n):
        h = np.uint64(0xCBF29CE484222325)
        for j in range(m):
            h = (h ^ words[i, j]) * np.uint64(0x100000001B3)
        h ^= h >> np.uint64(29)
        slot = h & mask
        while True:
            k = table[slot]
            if k < 0:
                table[slot] = i
                first[i] = i
                distinct += 1
                break
            same = True
            for j in range(m):
                if words[k, j] != words[i, j]:
                    same = False
                    break
            if same:
                first[i] = k
                break
            slot = (slot + np.uint64(1)) & mask
    return distinct


first_copies = _jit(first_copies_plain)   # None without Numba (or with SIDESTEP_NO_JIT)


def distinct_rows(X: np.ndarray) -> Optional[Tuple[np.ndarray, np.ndarray]]:
    """``(rows, slot)`` with ``X[rows][slot]`` equal to ``X`` bit for bit, or None when no row repeats.

    ``rows``: the first copy of every distinct row, in order; ``slot[i]``: row ``i``'s place
    in ``rows``.  ``X`` must be a C-contiguous 2-D float64 array (viewed as words).
    """
    n = X.shape[0]
    if n < 2 or X.shape[1] == 0:
        return None
    first = np.empty(n, dtype=np.int64)
    if first_copies is not None:
        count = first_copies(X.view(np.uint64), first)
    else:
        with np.errstate(over="ignore"):                # the hash wraps, as the compiled one does
            count = first_copies_plain(X.view(np.uint64), first)
    if count == n:
        return None
    rows = np.flatnonzero(first == np.arange(n))
    place = np.empty(n, dtype=np.int64)
    place[rows] = np.arange(len(rows))
    return rows, place[first]
