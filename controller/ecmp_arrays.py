"""ECMP picks for a batch of connections on arrays: path counts per target switch, walked in a compiled loop.

Why: replay routes every connection of its trace ahead of the connection's first
flow (``EqualCostPaths.ecmp_paths``), and the dict-based path counts cost a
breadth-first search per target switch in Python.  At k=32 that was ~6.5 s
before the first event of a replay (512 targets, 1,280 switches), and at k=16
about half the time of a replay of short random flows.  Here each target's
distances and shortest-path counts are one array row, built by a compiled BFS,
and each connection's path is a compiled walk down those counts.

The pick is the same as ``EqualCostPaths._pick``: the switches are indexed in
name order, so a switch's neighbours in index order are its neighbours in name
order, the order in which the sorted segments are grouped by next hop.  The walk
skips whole groups by their path counts until the hash's index falls inside one
(``EqualCostPaths._segment_at``).  ``tests/unit/test_ecmp_arrays.py`` checks
the picks against ``Fabric.paths`` and against the dict-based walk.

Numba is optional: without it (or with ``SIDESTEP_NO_JIT=1``) ``available()``
is False and ``EqualCostPaths`` keeps its dict-based walk, which is the reference.
"""
from __future__ import annotations

import functools
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from controller.jit import jit

__all__ = ["SwitchArrays", "available"]

# path counts above this are left to the dict-based walk (Python ints do not overflow)
COUNT_LIMIT = 2 ** 62


def _target_tables(indptr, indices, targets, n):  # pragma: no cover - compiled by Numba; checked by the tests
    """Per target: each switch's hop distance to it (-1: unreachable) and its number of shortest paths to it.

    A BFS from the target: a switch's count is final when it leaves the queue
    (every switch one hop nearer the target has left before it), and it adds
    to each neighbour one hop farther.  Returns (dist, count, ok); ok is False
    when a count passed ``COUNT_LIMIT``.
    """
    t = targets.shape[0]
    dist = np.full((t, n), -1, dtype=np.int64)
    count = np.zeros((t, n), dtype=np.int64)
    queue = np.empty(n, dtype=np.int64)
    ok = True
    for i in range(t):
        b = targets[i]
        dist[i, b] = 0
        count[i, b] = 1
        queue[0] = b
        head = 0
        tail = 1
        while head < tail:
            u = queue[head]
            head += 1
            du = dist[i, u] + 1
            cu = count[i, u]
            for e in range(indptr[u], indptr[u + 1]):
                v = indices[e]
                if dist[i, v] < 0:
                    dist[i, v] = du
                    count[i, v] = cu
                    queue[tail] = v
                    tail += 1
                elif dist[i, v] == du:
                    if cu > COUNT_LIMIT - count[i, v]:     # the sum would pass the limit (or wrap)
                        ok = False
                        count[i, v] = COUNT_LIMIT
                    else:
                        count[i, v] += cu
    return dist, count, ok


def _walks(indptr, indices, dist, count, rows, starts, ends, hashes, out):  # pragma: no cover - compiled
    """Each connection's switch path: from ``starts[j]`` to ``ends[j]``, the ``hashes[j] % count``-th in name order.

    ``rows[j]``: the row of ``dist``/``count`` for ``ends[j]``.  Writes the
    switches into ``out[j]`` and returns their number per connection (0: no path).
    """
    m = starts.shape[0]
    lengths = np.zeros(m, dtype=np.int64)
    for j in range(m):
        r = rows[j]
        node = starts[j]
        b = ends[j]
        n_paths = count[r, node]
        if dist[r, node] < 0 or n_paths == 0:
            continue
        h = hashes[j] % n_paths
        k = 0
        out[j, 0] = node
        while node != b:
            want = dist[r, node] - 1
            for e in range(indptr[node], indptr[node + 1]):
                v = indices[e]
                if dist[r, v] == want:
                    c = count[r, v]
                    if h < c:
                        node = v
                        break
                    h -= c
            k += 1
            out[j, k] = node
        lengths[j] = k + 1
    return lengths


@functools.lru_cache(maxsize=None)
def _compiled() -> Optional[Tuple[Callable, Callable]]:
    """The two kernels compiled (loaded from Numba's disk cache), on first need: the live app never needs them."""
    tables, walks = jit(_target_tables), jit(_walks)
    return None if tables is None or walks is None else (tables, walks)


def available() -> bool:
    """Whether the compiled kernels exist (Numba installed and ``SIDESTEP_NO_JIT`` unset)."""
    return _compiled() is not None


class SwitchArrays:
    """The up switch-to-switch links of one fabric version as CSR arrays, and per-target path-count rows.

    ``adjacency``: switch -> its up switch neighbours, sorted by name (what
    ``EqualCostPaths`` keeps).  Rows for targets are built on first need and kept.
    """

    def __init__(self, adjacency: Dict[str, List[str]]) -> None:
        self.names = sorted(adjacency)
        self.index = {name: i for i, name in enumerate(self.names)}
        self._names = np.array(self.names, dtype=object)   # index -> name, gathered whole (see segments)
        indptr = np.zeros(len(self.names) + 1, dtype=np.int64)
        flat: List[int] = []
        for i, name in enumerate(self.names):
            flat.extend(self.index[nbr] for nbr in adjacency[name])   # name order is index order
            indptr[i + 1] = len(flat)
        self.indptr = indptr
        self.indices = np.array(flat, dtype=np.int64)
        n = len(self.names)
        self._row: Dict[int, int] = {}
        self._dist = np.zeros((0, n), dtype=np.int64)
        self._count = np.zeros((0, n), dtype=np.int64)
        self.exact = True           # False once a path count passed COUNT_LIMIT

    def _rows_for(self, targets: np.ndarray) -> np.ndarray:
        uniq, slot = np.unique(targets, return_inverse=True)      # a row per distinct target
        missing = [t for t in uniq.tolist() if t not in self._row]
        if missing:
            dist, count, ok = _compiled()[0](self.indptr, self.indices,
                                                 np.array(missing, dtype=np.int64), len(self.names))
            self.exact = self.exact and ok
            base = len(self._dist)
            self._dist = np.vstack([self._dist, dist])
            self._count = np.vstack([self._count, count])
            for i, t in enumerate(missing):
                self._row[t] = base + i
        return np.array([self._row[t] for t in uniq.tolist()], dtype=np.int64)[slot.ravel()]

    def _walk(self, a: np.ndarray, b: np.ndarray, hashes: Sequence[int], rows: Optional[np.ndarray] = None
              ) -> Tuple[np.ndarray, np.ndarray]:
        """The compiled walk from switches ``a`` to ``b`` (indices): (switch indices per segment, lengths).

        ``rows``: the targets' rows (``_rows_for(b)``), if the caller has them.
        """
        if rows is None:
            rows = self._rows_for(b)
        width = max(int(self._dist[rows, a].max()) + 1, 1)     # a path has dist + 1 switches
        out = np.zeros((len(a), width), dtype=np.int64)
        lengths = _compiled()[1](self.indptr, self.indices, self._dist, self._count, rows, a, b,
                                 np.asarray(hashes, dtype=np.int64), out)
        return out, lengths

    def segments(self, starts: Sequence[str], ends: Sequence[str], hashes: Sequence[int]
                 ) -> List[Tuple[str, ...]]:
        """Per connection, the switch segment its hash picks from ``starts[j]`` to ``ends[j]`` (() for none).

        Only when ``exact`` stays True are these the picks; the caller checks it.
        Needs the compiled kernels (``available()``).
        """
        index = self.index
        a = np.fromiter((index[s] for s in starts), dtype=np.int64, count=len(starts))
        b = np.fromiter((index[e] for e in ends), dtype=np.int64, count=len(ends))
        if not len(a):
            return []
        out, lengths = self._walk(a, b, hashes)
        # the names gathered as one object array, then cut to length: 2-3x faster than a name
        # lookup per switch (replay routes thousands of connections at its start)
        return [tuple(row[:k]) for row, k in zip(self._names[out].tolist(), lengths.tolist())]

    def all_segment_indices(self, start: str, end: str) -> np.ndarray:
        """``all_segments`` as switch indices, one row per segment (all of one length); (0, 0) for none.

        Why: a planner that numbers links wants each path's links, not its
        names (see ``plan_arrays._PairTables``).  As ``segments``, these hold
        only while ``exact`` stays True.
        """
        a, b = self.index[start], self.index[end]
        row = self._rows_for(np.array([b], dtype=np.int64))[0]
        n = int(self._count[row, a]) if self._dist[row, a] >= 0 else 0
        if n == 0 or not self.exact:
            return np.zeros((0, 0), dtype=np.int64)
        out, _ = self._walk(np.full(n, a, dtype=np.int64), np.full(n, b, dtype=np.int64), range(n),
                            np.full(n, row, dtype=np.int64))
        return out                                   # shortest paths: every row is dist + 1 long

    def all_segments(self, start: str, end: str) -> List[Tuple[str, ...]]:
        """Every shortest switch segment from ``start`` to ``end``, sorted (the walks of every index in turn).

        As ``segments``, these hold only while ``exact`` stays True.
        """
        return list(map(tuple, self._names[self.all_segment_indices(start, end)].tolist()))
