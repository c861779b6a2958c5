"""Natural demand of elephant flows (Hedera's demand estimator, Al-Fares et al., NSDI 2010, sec. 4.2).

A TCP flow's measured rate on a congested path is its share of the
bottleneck, not what it would take on an idle path: placing flows by their
measured rates packs them back onto the same links.  The estimator asks what
each flow would get if only the hosts' links limited it (max-min fair between
senders and receivers), which is what the planner should make room for.
"""
from __future__ import annotations

from typing import Dict, Hashable, Mapping, Sequence, Tuple

FlowEnds = Tuple[Hashable, str, str]  # (flow id, source host, destination host)


def estimate_demands(flows: Sequence[FlowEnds], capacity_bps: Mapping[str, float],
                     max_rounds: int = 100) -> Dict[Hashable, float]:
    """Host-limited max-min demand per flow, in bit/s.

    ``capacity_bps[host]`` is the host's link rate (both directions).  Senders
    split their rate equally among their unconverged flows; a receiver that is
    oversubscribed caps the flows it limits at an equal share of what the
    sender-limited flows leave.  Repeats until nothing changes.
    """
    demand: Dict[Hashable, float] = {fid: 0.0 for fid, _, _ in flows}
    converged: Dict[Hashable, bool] = {fid: False for fid, _, _ in flows}
    by_src: Dict[str, list] = {}
    by_dst: Dict[str, list] = {}
    for fid, src, dst in flows:
        by_src.setdefault(src, []).append(fid)
        by_dst.setdefault(dst, []).append(fid)
    for _ in range(max_rounds):
        changed = False
        for src, fids in by_src.items():
            done = sum(demand[f] for f in fids if converged[f])
            open_ = [f for f in fids if not converged[f]]
            if not open_:
                continue
            share = max(0.0, capacity_bps[src] - done) / len(open_)
            for f in open_:
                if abs(demand[f] - share) > 1e-6:
                    demand[f] = share
                    changed = True
        for dst, fids in by_dst.items():
            cap = capacity_bps[dst]
            if sum(demand[f] for f in fids) <= cap * (1 + 1e-9):
                continue
            limited = list(fids)
            while True:
                share = cap / len(limited)
                smaller = [f for f in limited if demand[f] < share]
                if not smaller:
                    break
                for f in smaller:  # sender-limited: they keep their demand
                    cap -= demand[f]
                    limited.remove(f)
                if not limited:
                    break
            if not limited:
                continue
            share = cap / len(limited)
            for f in limited:
                if abs(demand[f] - share) > 1e-6 or not converged[f]:
                    demand[f] = share
                    converged[f] = True
                    changed = True
        if not changed:
            break
    return demand
