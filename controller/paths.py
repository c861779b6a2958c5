"""The equal-cost paths between hosts, and ECMP's choice among them, cached per fabric.

Why its own module: the planner, the simulator, the live runtime and the
``plan`` command all ask the same two questions (which shortest paths join
these hosts, and which one does the 5-tuple hash pick), at every tick and for
every new connection.  Answering them fast on large fabrics needs a cache that
follows topology changes; that is this module's one job.  The planner keeps
its per-path index in the same object (``planner_index``), so that one object
per fabric carries everything a tick reuses.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Dict, List, Optional, Sequence, Tuple

import numpy as np

from controller import ecmp_arrays
from controller.ecmp import FiveTuple, ecmp_choice, ecmp_hash
from controller.fabric import Fabric, FabricError, Path

if TYPE_CHECKING:  # pragma: no cover - names for the type checker only
    from controller.planner import _PathIndex

__all__ = ["EqualCostPaths"]


class EqualCostPaths:
    """``Fabric.paths`` computed on the switch graph, cached per (ingress, egress) switch.

    Why: ``Fabric.paths`` runs a breadth-first search over every node, hosts
    included, for each host pair (about 18 ms per pair at k=16, 140 ms at
    k=32).  Hosts are single-homed leaves, so the equal-cost paths between two
    hosts are those between their edge switches; this computes distances to an
    egress switch once and shares them among all its host pairs.  Results equal
    ``Fabric.paths`` (same paths, same order); anything unusual (a
    multi-homed or detached host, a non-host endpoint) falls back to it.  The
    cache follows ``fabric.version``, so topology changes invalidate it.
    The object holds state: make one per fabric and keep it across ticks.

    ``compiled``: whether ``ecmp_paths`` and the paths of a pair come from
    the compiled walk down the path counts (``controller.ecmp_arrays``); None =
    when Numba is installed.  The paths are the same either way.  Off by
    default: the live app's fabrics are small, and a first use would load (on
    a fresh checkout, compile) the kernels inside its event loop; replay and
    the simulator ask for None.
    """

    def __init__(self, fabric: Fabric, *, compiled: Optional[bool] = False) -> None:
        if compiled and not ecmp_arrays.available():
            raise ValueError("compiled ECMP picks were asked for but Numba is not installed "
                             "(pip install -e '.[fast]')")
        self.compiled = ecmp_arrays.available() if compiled is None else compiled
        self.fabric = fabric
        self._version = -1
        self._adj: Dict[str, List[str]] = {}
        self._dist: Dict[str, Dict[str, int]] = {}
        self._segs: Dict[Tuple[str, str], List[Tuple[str, ...]]] = {}
        self._counts: Dict[str, Dict[str, int]] = {}   # target -> node -> shortest paths to it
        self._hops: Dict[Tuple[str, str], List[Tuple[str, int]]] = {}   # (node, target) -> _next_hops
        self._attach: Dict[str, Optional[str]] = {}
        self._arrays: Optional[ecmp_arrays.SwitchArrays] = None   # ecmp_paths' compiled picks
        self.planner_index: Optional["_PathIndex"] = None  # plan_reroutes' per-path index (see _index_for)

    def _sync(self) -> None:
        if self._version == self.fabric.version:
            return
        graph = self.fabric.graph
        adj: Dict[str, List[str]] = {}
        for sw in self.fabric.switches():
            adj[sw] = sorted(n for n in graph.neighbors(sw)
                             if self.fabric.is_switch(n) and graph.edges[sw, n]["up"])
        self._adj = adj
        self._dist.clear()
        self._segs.clear()
        self._counts.clear()
        self._hops.clear()
        self._attach.clear()
        self._arrays = None
        self._version = self.fabric.version

    def _attachment(self, host: str) -> Optional[str]:
        if host in self._attach:
            return self._attach[host]
        found: Optional[str] = None
        if self.fabric.is_host(host):
            graph = self.fabric.graph
            nbrs = list(graph.neighbors(host))
            if len(nbrs) == 1 and graph.edges[host, nbrs[0]]["up"] and self.fabric.is_switch(nbrs[0]):
                found = nbrs[0]
        self._attach[host] = found
        return found

    def _distances(self, target: str) -> Dict[str, int]:
        dist = self._dist.get(target)
        if dist is None:
            dist = {target: 0}
            frontier = [target]
            adj = self._adj
            while frontier:
                nxt = []
                for node in frontier:
                    d = dist[node] + 1
                    for nbr in adj[node]:
                        if nbr not in dist:
                            dist[nbr] = d
                            nxt.append(nbr)
                frontier = nxt
            self._dist[target] = dist
        return dist

    def _segments(self, a: str, b: str) -> List[Tuple[str, ...]]:
        """The shortest switch paths from ``a`` to ``b``, sorted.

        Built from the neighbours' own segments toward ``b`` (kept too), so the
        edge switches of a pod share their aggregation switches' work: replay
        meets hundreds of new edge pairs in its first simulated seconds.
        """
        key = (a, b)
        segs = self._segs.get(key)
        if segs is None:
            dist = self._distances(b)
            if a == b:
                segs = [(a,)]
            elif a not in dist:
                segs = []
            else:
                want = dist[a] - 1
                segs = [(a,) + seg for nbr in self._adj[a] if dist.get(nbr) == want
                        for seg in self._segments(nbr, b)]
                segs.sort()
            self._segs[key] = segs
        return segs

    def _count(self, a: str, b: str) -> int:
        """How many shortest switch paths run from ``a`` to ``b`` (``len(self._segments(a, b))``)."""
        counts = self._counts.setdefault(b, {})
        got = counts.get(a)
        if got is None:
            dist = self._distances(b)
            if a == b:
                got = 1
            elif a not in dist:
                got = 0
            else:
                want = dist[a] - 1
                got = sum(self._count(nbr, b) for nbr in self._adj[a] if dist.get(nbr) == want)
            counts[a] = got
        return got

    def _segment_at(self, a: str, b: str, h: int) -> Tuple[str, ...]:
        """``self._segments(a, b)[h]`` without building the others.

        The segments are sorted, and since the switches' neighbour lists are
        sorted they come grouped by next hop in that order: walk down, skipping
        whole groups by their counts.
        """
        hops = self._hops
        node, seg = a, [a]
        while node != b:
            nxt = hops.get((node, b))
            if nxt is None:
                nxt = self._next_hops(node, b)
            for nbr, c in nxt:
                if h < c:
                    node = nbr
                    break
                h -= c
            seg.append(node)
        return tuple(seg)

    def _next_hops(self, node: str, b: str) -> List[Tuple[str, int]]:
        """The neighbours of ``node`` one hop closer to ``b``, in order, each with its path count to ``b``.

        Kept per (switch, target), and built only for the switches a walk meets
        (at k=16 a target's walks from a few edge switches meet a quarter of the
        switches): replay picks the paths of thousands of connections before it
        starts, and their walks share their switches.
        """
        got = self._hops.get((node, b))
        if got is None:
            dist = self._distances(b)
            want = dist[node] - 1
            got = [(nbr, self._count(nbr, b)) for nbr in self._adj[node] if dist.get(nbr) == want]
            self._hops[(node, b)] = got
        return got

    def __call__(self, src: str, dst: str) -> List[Path]:
        self._sync()
        a, b = self._attachment(src), self._attachment(dst)
        if a is None or b is None or src == dst:
            return self.fabric.paths(src, dst)
        segs = self._segs.get((a, b))
        if segs is None and self.compiled:
            # every segment by the compiled walk: at k=32 a pair has 256, and building them from
            # the neighbours' segments was ~14 ms per pair (most of a k=32 planning round)
            arrays = self._switch_arrays()
            got = arrays.all_segments(a, b)
            if arrays.exact:
                segs = self._segs[(a, b)] = got
        if segs is None:
            segs = self._segments(a, b)
        if not segs:
            raise FabricError("no path from %s to %s over links that are up" % (src, dst))
        return [(src,) + seg + (dst,) for seg in segs]

    def pair_segments(self, src: str, dst: str
                      ) -> Optional[Tuple[str, str, np.ndarray, "ecmp_arrays.SwitchArrays"]]:
        """``self(src, dst)`` as the compiled walk's switch indices: (src's switch, dst's switch,
        one row per path in the same order, the arrays they index), or None when the walk does
        not give that list (not compiled, a count too big, hosts not on one switch each, no path).
        """
        self._sync()
        if not self.compiled:
            return None
        a, b = self._attachment(src), self._attachment(dst)
        if a is None or b is None or src == dst:
            return None
        arrays = self._switch_arrays()
        got = arrays.all_segment_indices(a, b)
        if not len(got) or not arrays.exact:
            return None
        return a, b, got, arrays

    def ecmp_path(self, five: FiveTuple) -> Path:
        """``ecmp_choice(five, self(five.src, five.dst))``, building only the chosen path.

        Why: replay of short random flows meets a new host pair at almost every
        arrival, and building all 16 paths of a k=8 pair to keep one was a
        tenth of its run time.  The segments are the paths minus their hosts,
        in the same order, so the hash picks the same one.  Unless the pair's
        segments are built already, not even they are: their number comes from
        path counts and the chosen one from ``_segment_at`` (building every
        segment of each new edge-switch pair was a tenth of a k=8 training replay).
        """
        self._sync()
        return self._pick(five)

    def _pick(self, five: FiveTuple) -> Path:
        """``ecmp_path`` on a synced index."""
        src, dst = five.src, five.dst
        a, b = self._attachment(src), self._attachment(dst)
        if a is None or b is None or src == dst:
            return ecmp_choice(five, self.fabric.paths(src, dst))
        segs = self._segs.get((a, b))
        if segs is not None:
            if not segs:
                raise FabricError("no path from %s to %s over links that are up" % (src, dst))
            return (src,) + ecmp_choice(five, segs) + (dst,)
        n = self._count(a, b)
        if n == 0:
            raise FabricError("no path from %s to %s over links that are up" % (src, dst))
        return (src,) + self._segment_at(a, b, ecmp_hash(five) % n) + (dst,)

    def ecmp_paths(self, fives: Sequence[FiveTuple]) -> List[Optional[Path]]:
        """``ecmp_path`` of each of ``fives``; None where there is no path (it would raise).

        Why: replay picks the paths of thousands of connections ahead of their
        flows, and a connection with no path then must not end the replay: its
        first start tries again and reports it.
        """
        self._sync()
        if self.compiled:
            picked = self._ecmp_paths_on_arrays(fives)
            if picked is not None:
                return picked
        self._segments_for_busy_pairs(fives)
        out: List[Optional[Path]] = []
        for five in fives:
            try:
                out.append(self._pick(five))
            except (FabricError, ValueError):
                out.append(None)
        return out

    def _switch_arrays(self) -> "ecmp_arrays.SwitchArrays":
        """The compiled walk's arrays for the synced fabric (made on first need)."""
        if self._arrays is None:
            self._arrays = ecmp_arrays.SwitchArrays(self._adj)
        return self._arrays

    def _ecmp_paths_on_arrays(self, fives: Sequence[FiveTuple]) -> Optional[List[Optional[Path]]]:
        """``ecmp_paths`` by the compiled walk (``controller.ecmp_arrays``); None if a path count is too big for it.

        Connections whose hosts do not each hang off one switch (or a host
        talking to itself) take ``_pick``, as they would anyway.
        """
        arrays = self._switch_arrays()
        at: List[int] = []
        starts: List[str] = []
        ends: List[str] = []
        hashes: List[int] = []
        attachment = self._attachment
        out: List[Optional[Path]] = [None] * len(fives)
        for j, five in enumerate(fives):
            a, b = attachment(five.src), attachment(five.dst)
            if a is None or b is None or five.src == five.dst:
                try:
                    out[j] = self._pick(five)
                except (FabricError, ValueError):
                    pass
                continue
            at.append(j)
            starts.append(a)
            ends.append(b)
            hashes.append(ecmp_hash(five))
        segs = arrays.segments(starts, ends, hashes)
        if not arrays.exact:
            return None
        for j, seg in zip(at, segs):
            if seg:
                five = fives[j]
                out[j] = (five.src,) + seg + (five.dst,)
        return out

    def _segments_for_busy_pairs(self, fives: Sequence[FiveTuple]) -> None:
        """Build the segments of the edge-switch pairs that ``fives`` meet often, so ``_pick`` indexes them.

        Why: a trace of short flows has many connections per pair of edge switches
        (129,643 connections over 1,024 pairs at k=8), and a walk down the path
        counts (``_segment_at``) per connection costs more than building the pair's
        few segments once.  A pair is built when it has at least an eighth as many
        connections here as segments, so the segments kept stay within ~8 per
        connection even at k=16 and beyond.  The pick is the same either way.
        """
        pairs: Dict[Tuple[str, str], int] = {}
        for five in fives:
            a, b = self._attachment(five.src), self._attachment(five.dst)
            if a is not None and b is not None:
                key = (a, b)
                pairs[key] = pairs.get(key, 0) + 1
        segs = self._segs
        for (a, b), n in pairs.items():
            if (a, b) not in segs and 8 * n >= self._count(a, b):
                self._segments(a, b)
