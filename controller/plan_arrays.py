"""One planning round on arrays, for replay: ``plan_reroutes``' answer at a fraction of its cost.

Why: at k=8 a replay tick hands the planner about 1,000 connections, and
``plan_reroutes`` works on ``ActiveFlow`` objects, dicts keyed by links and
Python loops: with the records built for it, a round cost more than the
simulation of the second it plans for.  ``ArrayPlanner`` takes the same
state as arrays (link-index rows, demands, classes) and runs Hedera's Global
First Fit in one compiled loop; the joint search (when greedy leaves a hot
link) stays ``plan_reroutes``' own code, on the few flows it looks at.

It is not a second planner: it returns the same ``Reroute`` list as
``plan_reroutes`` (same flows, paths, order and reason text) or ``None``
when the round is outside what it replicates (a flow whose path is not one
of its pair's equal-cost paths, such as one stranded on a down link, or a
NaN), and the caller then calls ``plan_reroutes``.  The floats are the same because every
operation is: shares ``rate / capacity`` per link, ``u + share`` or
``max(u, share)`` on the flow's own path, path sums left to right from 0.0,
first-of-equals maxima, ``max(u - share, 0.0)`` then ``u + share`` for a
move, and tie-breaking keys ``(round(worst, 9), round(total, 9), path)``
with Python's correctly rounded ``round`` (``_round9``).
``tests/unit/test_plan_arrays.py`` checks the answers against
``plan_reroutes`` on random rounds and on recorded replay ticks.
"""
from __future__ import annotations

from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from controller.fabric import Fabric, Link, Path
from controller.jit import jit
from controller.paths import EqualCostPaths
from controller.planner import ActiveFlow, PlannerConfig, Reroute, _EPS, _fmt, _index_for

__all__ = ["ArrayPlanner"]


def _round9(x):
    """``round(x, 9)`` as CPython computes it (correctly rounded), for 0 <= x < 2**22; else NaN.

    CPython rounds the exact binary value of ``x * 10**9`` to an integer N
    (half to even) and returns the double nearest to N / 10**9.  Here the
    product is split exactly into ``p + e`` (Dekker's product; 10**9 has 30
    significant bits, so it needs no split), the sign of the fraction's
    distance to one half is read from ``p`` and ``e`` exactly, and N / 1e9 is
    one correctly rounded division.  Outside the range the caller falls back.
    """
    if not (x >= 0.0 and x < 4194304.0):
        return np.nan
    p = x * 1e9
    c = 134217729.0 * x                 # Veltkamp split of x: x = xh + xl exactly
    xh = c - (c - x)
    xl = x - xh
    e = (xh * 1e9 - p) + xl * 1e9       # exact: p + e == x * 10**9
    n0 = np.floor(p)
    d = (p - n0) - 0.5                  # exact: a multiple of ulp(p), |d| <= 0.5
    if d > 0.0 or (d == 0.0 and e > 0.0):
        n = n0 + 1.0
    elif d < 0.0 or (d == 0.0 and e < 0.0):
        n = n0
    elif n0 % 2.0 == 0.0:               # an exact half: to even
        n = n0
    else:
        n = n0 + 1.0
    return n / 1e9


def _greedy(util, hot, hysteresis, eps, budget, c_rate, c_rows, c_pair, c_cur, capx,
            t_links, t_caps, t_rows, t_pick, t_np, t_nu, t_rank, out):
    """Global First Fit over the candidates (priority order), on ``util`` in place.

    Mirrors ``_global_first_fit`` with ``_first_fit_move``'s ``_Choices`` route
    (see the module doc).  ``out`` rows receive (candidate, new path, worst,
    current peak, current bottleneck link id or -1) per move; returns the
    number of moves, or -1 when a NaN or an out-of-range rounding would need
    Python's own arithmetic (the caller then plans with ``plan_reroutes``).
    """
    n_c, width = c_rows.shape
    pad = capx.shape[0] - 1
    moved = np.zeros(n_c, dtype=np.bool_)
    max_u = t_links.shape[1]
    us = np.empty(max_u)
    loads = np.empty(max_u)
    shares = np.empty(max_u)
    worsts = np.empty(t_rows.shape[1])
    n_moves = 0
    progress = True
    while budget > 0 and progress:
        progress = False
        for c in range(n_c):
            if budget == 0:
                break
            if moved[c]:
                continue
            rate = c_rate[c]
            crosses = False                         # _Placer.crosses_hot
            for p in range(width):
                link = c_rows[c, p]
                if link == pad:
                    continue
                if util[link] > hot or rate / capx[link] > hot:
                    crosses = True
                    break
            if not crosses:
                continue
            g = c_pair[c]
            n_paths = t_np[g]
            j = c_cur[c]
            if n_paths < 2 and (n_paths == 0 or j == 0):
                continue
            nu = t_nu[g]                            # _Placer.loads
            for i in range(nu):
                u = util[t_links[g, i]]
                us[i] = u
                sh = rate / t_caps[g, i]
                shares[i] = sh
                loads[i] = u + sh
            for q in range(t_rows.shape[2]):
                i = t_rows[g, j, q]
                if i < 0:
                    continue
                loads[i] = shares[i] if shares[i] > us[i] else us[i]
            cur = 0.0                               # _Choices.bottleneck
            where = -1
            for q in range(t_rows.shape[2]):
                i = t_rows[g, j, q]
                if i < 0 or not t_pick[g, j, q]:
                    continue
                if where < 0 or loads[i] > cur:
                    cur = loads[i]
                    where = i
            if cur != cur:
                return -1
            if cur <= hot:
                continue
            ceiling = cur - hysteresis + eps
            low = np.inf                            # _Placer.best_of
            for k in range(n_paths):
                w = 0.0
                first = True
                for q in range(t_rows.shape[2]):
                    i = t_rows[g, k, q]
                    if i < 0 or not t_pick[g, k, q]:
                        continue
                    if first or loads[i] > w:
                        w = loads[i]
                        first = False
                worsts[k] = w
                if w != w:
                    return -1
                if k == 0 or w < low:
                    low = w
            if n_paths == 0 or low > ceiling:
                continue
            near = low + 1e-8                       # _Placer._rank over paths near the lowest
            best = -1
            best_w = 0.0
            best_rw = 0.0
            best_rt = 0.0
            for k in range(n_paths):
                w = worsts[k]
                if not w <= near:
                    continue
                total = 0.0
                for q in range(t_rows.shape[2]):
                    i = t_rows[g, k, q]
                    if i >= 0:
                        total += loads[i]
                rw = _round9_jit(w)
                rt = _round9_jit(total)
                if rw != rw or rt != rt:
                    return -1
                if best < 0 or rw < best_rw or (rw == best_rw and (rt < best_rt or (
                        rt == best_rt and t_rank[g, k] < t_rank[g, best]))):
                    best, best_w, best_rw, best_rt = k, w, rw, rt
            if best < 0 or best == j or best_w > ceiling:
                continue
            for q in range(t_rows.shape[2]):        # _move: off the old path, then onto the new one
                i = t_rows[g, j, q]
                if i < 0:
                    continue
                link = t_links[g, i]
                v = util[link] - shares[i]
                util[link] = 0.0 if 0.0 > v else v
            for q in range(t_rows.shape[2]):
                i = t_rows[g, best, q]
                if i < 0:
                    continue
                link = t_links[g, i]
                util[link] = util[link] + shares[i]
            moved[c] = True
            budget -= 1
            progress = True
            out[n_moves, 0] = c
            out[n_moves, 1] = best
            out[n_moves, 2] = best_w
            out[n_moves, 3] = cur
            out[n_moves, 4] = t_links[g, where] if where >= 0 else -1
            n_moves += 1
    return n_moves


def _max_on(values, mask):
    """The largest of ``values[mask]`` (0.0 if none): ``max`` over the variable links, as the planner takes it."""
    best = 0.0
    first = True
    for i in range(values.shape[0]):
        if mask[i] and (first or values[i] > best):
            best = values[i]
            first = False
    return best


def _joint(util, after, rates, pairs, curs, t_links, t_caps, t_rows, t_pick, t_np, t_rank, nodes,
           max_moves, eps, chosen):
    """``_joint_search`` for a chosen group, on arrays: (found, value, current peak, greedy's peak).

    ``util``: the utilization before greedy; ``after``: after greedy's moves
    (``_move``'s arithmetic, as greedy's own copy).  The variable links are
    those of the group's pairs a placement can change; loads start at ``util``
    minus the group's own shares (``max(u - s, 0.0)``, group order), options are
    each flow's current path, then the others by (peak, path), and the search
    is ``_branch_and_bound`` made iterative with the same operations in the same
    order (its loads are restored by subtraction, as there).  ``chosen`` receives
    each flow's path index when found.
    """
    n = rates.shape[0]
    n_links = util.shape[0]
    n_pos = t_rows.shape[2]
    max_paths = t_rows.shape[1]
    var = np.zeros(n_links, dtype=np.bool_)
    for g in range(n):
        p_ = pairs[g]
        for k in range(t_np[p_]):
            for q in range(n_pos):
                i = t_rows[p_, k, q]
                if i >= 0 and t_pick[p_, k, q]:
                    var[t_links[p_, i]] = True
    load = util.copy()
    for g in range(n):
        p_ = pairs[g]
        for q in range(n_pos):
            i = t_rows[p_, curs[g], q]
            if i < 0:
                continue
            link = t_links[p_, i]
            if var[link]:
                v = load[link] - rates[g] / t_caps[p_, i]
                load[link] = 0.0 if 0.0 > v else v
    floor = _max_on_jit(load, var)
    # options: per flow, path indices (current first, then the others by (peak, path order)), and touches
    n_opts = np.zeros(n, dtype=np.int64)
    opt_path = np.empty((n, max_paths), dtype=np.int64)
    peaks = np.empty(max_paths)
    t_link = np.full((n, max_paths, n_pos), -1, dtype=np.int64)
    t_share = np.zeros((n, max_paths, n_pos))
    for g in range(n):
        p_ = pairs[g]
        cur = curs[g]
        for k in range(t_np[p_]):           # each path's touches: (link, share) on its variable links
            w = 0
            for q in range(n_pos):
                i = t_rows[p_, k, q]
                if i < 0:
                    continue
                link = t_links[p_, i]
                if var[link]:
                    t_link[g, k, w] = link
                    t_share[g, k, w] = rates[g] / t_caps[p_, i]
                    w += 1
        for k in range(t_np[p_]):           # each other path's peak: max(load + share) over its touches
            if k == cur:
                continue
            pk = 0.0
            for w in range(n_pos):
                link = t_link[g, k, w]
                if link < 0:
                    break
                v = load[link] + t_share[g, k, w]
                if w == 0 or v > pk:
                    pk = v
            peaks[k] = pk
        others = np.empty(t_np[p_] - 1, dtype=np.int64)
        c = 0
        for k in range(t_np[p_]):
            if k != cur:
                others[c] = k
                c += 1
        for a in range(1, c):
            k = others[a]
            b = a - 1
            while b >= 0 and (peaks[others[b]] > peaks[k] or (peaks[others[b]] == peaks[k]
                                                               and t_rank[p_, others[b]] > t_rank[p_, k])):
                others[b + 1] = others[b]
                b -= 1
            others[b + 1] = k
        opt_path[g, 0] = cur
        for a in range(c):
            opt_path[g, a + 1] = others[a]
        n_opts[g] = c + 1
    for g in range(n):
        for w in range(n_pos):
            link = t_link[g, curs[g], w]
            if link >= 0:
                load[link] += t_share[g, curs[g], w]
    current = _max_on_jit(load, var)
    for g in range(n):
        for w in range(n_pos):
            link = t_link[g, curs[g], w]
            if link >= 0:
                load[link] -= t_share[g, curs[g], w]
    # _branch_and_bound, iteratively
    best_value = current
    best_bar = current - eps
    found = False
    left = nodes
    jn = np.zeros(n + 1, dtype=np.int64)
    peak_in = np.zeros(n + 1)
    moves_in = np.zeros(n + 1, dtype=np.int64)
    pick = np.zeros(n, dtype=np.int64)
    lvl = 0
    peak_in[0] = floor
    while lvl >= 0:
        j = jn[lvl]
        if lvl == n:
            if peak_in[n] < best_bar:
                best_value = peak_in[n]
                best_bar = best_value - eps
                found = True
                for g in range(n):
                    chosen[g] = opt_path[g, pick[g]]
        if lvl == n or j >= n_opts[lvl] or left <= 0:
            lvl -= 1                        # visit(lvl) returns: its caller takes its option back off
            if lvl >= 0:
                k = opt_path[lvl, pick[lvl]]
                for w in range(n_pos):
                    link = t_link[lvl, k, w]
                    if link >= 0:
                        load[link] -= t_share[lvl, k, w]
            continue
        jn[lvl] = j + 1
        left -= 1
        m = moves_in[lvl] + (1 if j > 0 else 0)
        if m > max_moves:
            continue
        k = opt_path[lvl, j]
        new_peak = peak_in[lvl]
        for w in range(n_pos):
            link = t_link[lvl, k, w]
            if link >= 0:
                v = load[link] + t_share[lvl, k, w]
                if v > new_peak:
                    new_peak = v
        if new_peak >= best_bar:
            continue
        for w in range(n_pos):
            link = t_link[lvl, k, w]
            if link >= 0:
                load[link] += t_share[lvl, k, w]
        pick[lvl] = j
        lvl += 1
        jn[lvl] = 0
        peak_in[lvl] = new_peak
        moves_in[lvl] = m
    if not found:
        return False, best_value, current, 0.0
    greedy_peak = _max_on_jit(after, var)
    return True, best_value, current, greedy_peak


def _current_paths(c_rows, c_pair, t_links, t_rows, t_np, pad, cur):
    """Per candidate, the index of its path among its pair's paths (-1: not one of them)."""
    n_c, width = c_rows.shape
    n_pos = t_rows.shape[2]
    for c in range(n_c):
        g = c_pair[c]
        cur[c] = -1
        for k in range(t_np[g]):
            same = True
            for p in range(max(width, n_pos)):
                link = c_rows[c, p] if p < width else pad
                i = t_rows[g, k, p] if p < n_pos else -1
                if link == pad or i < 0:
                    if not (link == pad and i < 0):
                        same = False
                    break
                if t_links[g, i] != link:
                    same = False
                    break
            if same:
                cur[c] = k
                break


_round9_jit = jit(_round9)
_max_on_jit = jit(_max_on) if _round9_jit is not None else _max_on
_greedy_jit = jit(_greedy) if _round9_jit is not None else None
_current_jit = jit(_current_paths)
_joint_jit = jit(_joint)
if _round9_jit is None:        # plain Python: the kernels call the plain round
    _round9_jit = _round9


class _PairTables:
    """Each host pair's equal-cost paths as arrays, built on first need and kept (one fabric version).

    Per pair: the union of its paths' links (global link ids, first-seen
    order, as ``_Choices``), their capacities, each path as positions into
    the union (-1 padded), which positions a placement can change (not in
    the pair's shared set), and each path's rank in tuple order (the last key
    of ``_rank``).
    """

    def __init__(self, index: "object", link_id: Dict[Link, int], n_hosts: int) -> None:
        self.index = index
        self.link_id = link_id
        self.n_hosts = n_hosts
        self._keys = np.zeros(0, dtype=np.int64)     # src * n_hosts + dst of the pairs built, sorted
        self._ids = np.zeros(0, dtype=np.int64)      # their table rows
        self._new: Dict[int, int] = {}               # key -> row, added since the last lookup
        self.paths: List[Optional[List[Path]]] = []  # per row, its paths (None: not built yet, see path)
        self._pairs: List[Tuple[str, str]] = []
        self._hops: Optional[Tuple[object, np.ndarray, np.ndarray]] = None   # (arrays, keys, link ids)
        self.links = np.zeros((0, 1), dtype=np.int64)
        self.caps = np.ones((0, 1))
        self.rows = np.full((0, 1, 1), -1, dtype=np.int64)
        self.pick = np.zeros((0, 1, 1), dtype=np.bool_)
        self.n_paths = np.zeros(0, dtype=np.int64)
        self.n_union = np.zeros(0, dtype=np.int64)
        self.rank = np.zeros((0, 1), dtype=np.int64)

    def add(self, src: str, dst: str, a: int, b: int, capx: np.ndarray) -> None:
        """Build the row of pair (src, dst), host numbers (a, b); ``capx``: capacity per link id.

        One dict lookup per hop, the rest whole-array: at k=16 a pair has 64
        paths and at k=32 256, and the per-hop Python loops that built the
        union and positions cost ~0.45 ms (k=16) and ~2 ms (k=32) per pair.
        """
        walked = self._walked_links(src, dst)
        alts: Optional[List[Path]] = None
        if walked is not None:                       # the paths in tuple order, as link ids
            n_paths, width = walked.shape
            ids = walked.ravel()
        else:
            alts = self.index.pair_paths(src, dst)   # raises FabricError as plan_reroutes would
            n_paths = len(alts)
            width = len(alts[0]) - 1 if n_paths else 1
            if any(len(path) - 1 != width for path in alts):
                raise ValueError("the equal-cost paths of %s -> %s differ in length" % (src, dst))
            hop = self.link_id.__getitem__
            ids = np.fromiter((hop(h) for path in alts for h in zip(path, path[1:])), dtype=np.int64,
                              count=n_paths * width)
        # the union in first-seen order (as _Choices): unique ids, ordered by first occurrence
        uniq, first, inverse = np.unique(ids, return_index=True, return_inverse=True)
        seen_order = np.argsort(first, kind="stable")
        union = uniq[seen_order]
        position = np.empty(len(uniq), dtype=np.int64)
        position[seen_order] = np.arange(len(uniq))
        rows = position[inverse.ravel()].reshape(n_paths, width)
        on_paths = np.bincount(rows.ravel(), minlength=len(union))      # a link is once per path at most
        if alts is None or all(alts[i] < alts[i + 1] for i in range(n_paths - 1)):
            rank = np.arange(n_paths)                # already in tuple order (the compiled walk's)
        else:
            rank = np.empty(n_paths, dtype=np.int64)
            rank[sorted(range(n_paths), key=alts.__getitem__)] = np.arange(n_paths)
        g = len(self.paths)
        self._fit(g + 1, max(1, len(union)), max(1, n_paths), max(1, width))
        self.paths.append(None if alts is None else list(alts))
        self._pairs.append((src, dst))
        self.links[g, :len(union)] = union
        self.caps[g, :len(union)] = capx[union]
        self.rows[g, :n_paths, :width] = rows
        self.pick[g, :n_paths, :width] = on_paths[rows] < n_paths      # not shared by every path
        self.rank[g, :n_paths] = rank
        self.n_paths[g] = n_paths
        self.n_union[g] = len(union)
        self._new[a * self.n_hosts + b] = g

    def path(self, g: int, j: int) -> Path:
        """Path ``j`` of table row ``g`` (the pair's ``pair_paths`` list, built on first need)."""
        got = self.paths[g]
        if got is None:
            got = self.paths[g] = list(self.index.pair_paths(*self._pairs[g]))
        return got[j]

    def _walked_links(self, src: str, dst: str) -> Optional[np.ndarray]:
        """The pair's paths as rows of link ids, straight from the compiled walk (None: it does not apply).

        Why: the walk gives switch numbers; turning them into name tuples and
        the tuples back into link ids was most of a pair's table at k=16 (64
        paths) and k=32 (256).  Switch-to-switch hops are looked up as sorted
        keys ``u * n + v``; the host links, one each end, by name.  The rows are
        those of ``pair_paths(src, dst)``, in its order (tuple order).
        """
        walk = getattr(getattr(self.index, "paths_fn", None), "pair_segments", None)
        got = walk(src, dst) if walk is not None else None
        if got is None:
            return None
        a, b, seg, arrays = got
        n = len(arrays.names)
        if self._hops is None or self._hops[0] is not arrays:
            index = arrays.index
            pairs = [(index[u] * n + index[v], i) for (u, v), i in self.link_id.items()
                     if u in index and v in index]
            keys = np.array([k for k, _ in pairs], dtype=np.int64)
            ids = np.array([i for _, i in pairs], dtype=np.int64)
            by_key = np.argsort(keys, kind="stable")
            self._hops = (arrays, keys[by_key], ids[by_key])
        _, keys, ids = self._hops
        first, last = self.link_id.get((src, a)), self.link_id.get((b, dst))
        if first is None or last is None or not len(keys):
            return None
        want = seg[:, :-1] * n + seg[:, 1:]
        at = np.minimum(np.searchsorted(keys, want), len(keys) - 1)
        if not (keys[at] == want).all():
            return None
        rows = np.empty((seg.shape[0], seg.shape[1] + 1), dtype=np.int64)
        rows[:, 0] = first
        rows[:, 1:-1] = ids[at]
        rows[:, -1] = last
        return rows

    def lookup(self, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
        """Table rows of the pairs (src, dst) (host numbers), -1 for a pair not built yet.

        A sorted key array, not a hosts x hosts table: that would be 512 MB at k=32.
        """
        if self._new:                                # pairs added since the last lookup
            keys = np.concatenate([self._keys, np.fromiter(self._new, dtype=np.int64, count=len(self._new))])
            ids = np.concatenate([self._ids, np.fromiter(self._new.values(), dtype=np.int64,
                                                         count=len(self._new))])
            by_key = np.argsort(keys, kind="stable")
            self._keys, self._ids = keys[by_key], ids[by_key]
            self._new.clear()
        keys = src * self.n_hosts + dst
        at = np.searchsorted(self._keys, keys)
        at[at == len(self._keys)] = 0
        found = self._keys[at] == keys if len(self._keys) else np.zeros(len(keys), dtype=bool)
        return np.where(found, self._ids[at] if len(self._ids) else -1, -1)
    def _fit(self, n: int, n_union: int, n_paths: int, n_pos: int) -> None:
        """Grow the tables to hold ``n`` pairs of these sizes (new entries padded)."""
        g, u = self.links.shape
        _, p, q = self.rows.shape
        size = max(g, 1)
        while size < n:
            size *= 2
        if size == g and n_union <= u and n_paths <= p and n_pos <= q:
            return
        u2, p2, q2 = max(u, n_union), max(p, n_paths), max(q, n_pos)
        links = np.zeros((size, u2), dtype=np.int64)
        caps = np.ones((size, u2))
        rows = np.full((size, p2, q2), -1, dtype=np.int64)
        pick = np.zeros((size, p2, q2), dtype=np.bool_)
        rank = np.zeros((size, p2), dtype=np.int64)
        n_paths_a = np.zeros(size, dtype=np.int64)
        n_union_a = np.zeros(size, dtype=np.int64)
        links[:g, :u] = self.links
        caps[:g, :u] = self.caps
        rows[:g, :p, :q] = self.rows
        pick[:g, :p, :q] = self.pick
        rank[:g, :p] = self.rank
        n_paths_a[:g] = self.n_paths
        n_union_a[:g] = self.n_union
        self.links, self.caps, self.rows, self.pick, self.rank = links, caps, rows, pick, rank
        self.n_paths, self.n_union = n_paths_a, n_union_a


class ArrayPlanner:
    """``plan_reroutes`` for one fabric and config, on arrays (see the module doc).

    ``links`` is the fabric's ``directed_links()`` order, the numbering of
    every array; a row of link ids is padded with ``len(links)``.  Keep one
    per control loop: the pair tables and the planner's path index persist
    across rounds and are rebuilt when the fabric's version changes.
    """

    def __init__(self, fabric: Fabric, paths: EqualCostPaths, config: PlannerConfig,
                 links: Sequence[Link], *, compiled: Optional[bool] = None) -> None:
        """``compiled``: None = the Numba kernels when installed; False = the same kernels as plain
        Python (slower than ``plan_reroutes``: for checks only); True requires Numba."""
        if compiled is None:
            compiled = _greedy_jit is not None
        if compiled and _greedy_jit is None:
            raise ValueError("the compiled array planner was asked for but Numba is not installed "
                             "(pip install -e '.[fast]')")
        self.compiled = compiled
        self._greedy = _greedy_jit if compiled else _greedy
        self._current = _current_jit if compiled else _current_paths
        self._joint_kernel = _joint_jit if compiled else _joint
        self.fabric = fabric
        self.paths = paths
        self.config = config
        self.links = list(links)
        self.pad = len(self.links)
        self.link_id = {link: i for i, link in enumerate(self.links)}
        self.capx = np.append([fabric.capacity_bps(a, b) for a, b in self.links], np.inf)
        hosts = sorted(set(fabric.hosts()))
        self.host_no = {h: i for i, h in enumerate(hosts)}
        self.n_hosts = len(hosts)
        # per link: its tail's and head's host number (-1: a switch)
        self.tail_host = np.array([self.host_no.get(a, -1) for a, _ in self.links] + [-1], dtype=np.int64)
        self.head_host = np.array([self.host_no.get(b, -1) for _, b in self.links] + [-1], dtype=np.int64)
        self._tables: Optional[_PairTables] = None
        self._version = -1

    def planning_util(self, measured: np.ndarray, forecast: Optional[np.ndarray], rows: np.ndarray,
                      rates: np.ndarray, order: np.ndarray) -> np.ndarray:
        """``_planning_utilization`` as an array over ``links`` (a missing link counts as 0.0, as there).

        ``measured``/``forecast``: per link, NaN for none.  For ``predictive``
        the flows' own demand is summed per link in flow_id order (``order``:
        the flows' positions sorted by flow_id), as ``flow_demand_utilization``.
        """
        util = np.where(measured >= 0.0, measured, 0.0)
        if self.config.policy != "predictive":
            return util
        if forecast is not None:
            util = np.where(forecast > util, forecast, util)
        sel = order[rates[order] > 0]
        if len(sel):
            srows = rows[sel]
            shares = rates[sel][:, None] / self.capx[srows]
            keep = srows != self.pad
            demand = np.bincount(srows[keep], weights=shares[keep], minlength=self.pad + 1)[:self.pad]
            util = np.where(demand > util, demand, util)
        return util

    def plan(self, rows: np.ndarray, rates: np.ndarray, training: np.ndarray, order: np.ndarray,
             util: np.ndarray, flow: Callable[[int], ActiveFlow], *,
             forecast: bool) -> Optional[List[Reroute]]:
        """The round's reroutes, or None (then call ``plan_reroutes``).

        ``rows``/``rates``/``training``: per flow its path's link ids, demand
        and class (the flows ``plan_reroutes`` would be given, none on a down link);
        ``order``: positions sorted by flow_id; ``util``: ``planning_util``;
        ``flow(k)``: flow k as an ``ActiveFlow``, asked only for the flows a
        reason or the joint search needs; ``forecast``: whether ``util`` holds a
        forecast (predictive without one names "measured" in its reasons, as
        ``plan_reroutes`` does).
        """
        cfg = self.config
        if cfg.policy == "ecmp":
            return []
        if len(rows) == 0:
            return []
        if self.fabric.version != self._version or self._tables is None:
            self._tables = _PairTables(_index_for(self.fabric, self.paths), self.link_id, self.n_hosts)
            self._version = self.fabric.version
        tables = self._tables
        # candidates (_candidates): movable elephants, then background last, demand descending, flow_id
        movable = training if not cfg.move_background else np.ones(len(rates), dtype=bool)
        if cfg.elephant_bps is not None:
            threshold = np.full(len(rates), cfg.elephant_bps)
        else:
            threshold = cfg.elephant_fraction * self.capx[rows[:, 0]]
        pick = (rates > 0) & movable & ~(rates < threshold)
        rank = np.empty(len(order), dtype=np.int64)
        rank[order] = np.arange(len(order))
        cand = np.flatnonzero(pick)
        cand = cand[np.lexsort((rank[cand], -rates[cand], ~training[cand]))]
        c_rows = np.ascontiguousarray(rows[cand])
        last = np.where(c_rows != self.pad, np.arange(c_rows.shape[1]), -1).max(axis=1)
        src = self.tail_host[c_rows[:, 0]]
        dst = self.head_host[c_rows[np.arange(len(cand)), last]]
        if len(cand) and ((src < 0) | (dst < 0)).any():
            return None
        c_pair = tables.lookup(src, dst)
        missing = np.flatnonzero(c_pair < 0)
        if len(missing):
            hosts = sorted(self.host_no)
            for a, b in sorted(set(zip(src[missing].tolist(), dst[missing].tolist()))):
                tables.add(hosts[a], hosts[b], a, b, self.capx)
            c_pair = tables.lookup(src, dst)
        cur = np.empty(len(cand), dtype=np.int64)
        self._current(c_rows, c_pair, tables.links, tables.rows, tables.n_paths, self.pad, cur)
        if (cur < 0).any():
            return None
        work = util.astype(float, copy=True)
        out = np.zeros((max(cfg.max_reroutes_per_tick, 1), 5))
        n_moves = self._greedy(work, cfg.hot_threshold, cfg.hysteresis, _EPS, cfg.max_reroutes_per_tick,
                              np.ascontiguousarray(rates[cand], dtype=float), c_rows, c_pair, cur, self.capx,
                              tables.links, tables.caps, tables.rows, tables.pick, tables.n_paths,
                              tables.n_union, tables.rank, out)
        if n_moves < 0:
            return None
        basis = "forecast" if cfg.policy == "predictive" and forecast else "measured"
        greedy: List[Reroute] = []
        for c, j, worst, peak, at in out[:n_moves].tolist():
            c, j, at = int(c), int(j), int(at)
            f = flow(int(cand[c]))
            new = tables.path(int(c_pair[c]), j)
            greedy.append(Reroute(f.flow_id, f.path, new, "%s: %s at %.2f (%s); new path peaks at %.2f"
                                  % (cfg.policy, _fmt(self.links[at] if at >= 0 else None), peak, basis,
                                     worst)))
        if cfg.joint_search_nodes > 0 and (work[:self.pad] > cfg.hot_threshold).any():
            joint = self._joint(util, work, cand, c_rows, c_pair, cur, rates, flow, basis)
            if joint is not None:
                return joint
        return greedy

    def _joint(self, util: np.ndarray, after: np.ndarray, cand: np.ndarray, c_rows: np.ndarray,
               c_pair: np.ndarray, cur: np.ndarray, rates: np.ndarray, flow: Callable[[int], ActiveFlow],
               basis: str) -> Optional[List[Reroute]]:
        """``_joint_placement`` on arrays (its answer replaces greedy's, or None).

        The group is the first ``joint_max_flows`` candidates that cross a hot
        link and whose bottleneck over the links a placement can change is
        above ``hot_threshold``, on the utilization before greedy (``util``);
        ``after`` is greedy's result, for the comparison.  The search is
        ``_joint``, the kernel, with ``_joint_search``'s arithmetic.
        """
        cfg = self.config
        hot = cfg.hot_threshold
        tables = self._tables
        utilx = np.append(util, 0.0)
        rate = rates[cand]
        share = rate[:, None] / self.capx[c_rows]              # 0.0 on the pad (capacity inf)
        u = utilx[c_rows]
        crosses = ((u > hot) | (share > hot)).any(axis=1)       # _Placer.crosses_hot
        own = np.where(share > u, share, u)                     # max(u, share) on the flow's own path
        width = c_rows.shape[1]
        choosable = np.zeros(c_rows.shape, dtype=bool)     # per position of the flow's own path
        picks = tables.pick[c_pair, cur][:, :width]
        choosable[:, :picks.shape[1]] = picks
        choosable &= c_rows != self.pad
        peak = np.where(choosable, own, -np.inf).max(axis=1)
        peak = np.where(choosable.any(axis=1), peak, 0.0)      # score's start value
        wanted = crosses & (tables.n_paths[c_pair] >= 2) & (peak > hot)
        group = np.flatnonzero(wanted)[:cfg.joint_max_flows]
        if not len(group):
            return None
        chosen = cur[group].copy()
        found, value, current, greedy_peak = self._joint_kernel(
            np.ascontiguousarray(util, dtype=float), after, np.ascontiguousarray(rate[group]), c_pair[group],
            cur[group], tables.links, tables.caps, tables.rows, tables.pick, tables.n_paths, tables.rank,
            cfg.joint_search_nodes, cfg.max_reroutes_per_tick, _EPS, chosen)
        if not found or value > current - cfg.hysteresis + _EPS or value >= greedy_peak - _EPS:
            return None
        moves = [(int(c), int(k)) for c, k, j in zip(group.tolist(), chosen.tolist(), cur[group].tolist()) if k != j]
        out = []
        for c, k in moves:
            f = flow(int(cand[c]))
            out.append(Reroute(f.flow_id, f.path, tables.path(int(c_pair[c]), k),
                               "%s: joint move of %d flows; peak %.2f -> %.2f (%s)"
                               % (cfg.policy, len(moves), current, value, basis)))
        return out
