"""The lab's hotspot scenario with every connection pinned to a chosen path (a script, not a test).

    sudo .venv/bin/python -m tests.bench.lab_placement [--placement data joint] [--policy ecmp] [--runs 2]

Why: the lab's planners were measured at 1.2-1.45x the no-hotspot iteration
time where the background traffic placed clear of the ring (``no collision``)
gave 1.08-1.22x, and the ring's ACK streams (the reverse 5-tuples, hashed on
their own) were suspected of the rest: they share links with other hops'
data.  This pins a placement through ``POST /pins`` before any traffic starts,
so the question "what would this placement give?" is answered by running it,
not by reasoning about queues.  Placements on the k=4 fat-tree:

* ``data``: every ring hop's data through each pod's first aggregation switch
  and core ``c0``, every background flow's data through the same aggregation
  switches and core ``c1``: no two data streams share a fabric link.  ACK
  streams go where ECMP hashes them (every hop's then shares links with
  other hops' data).
* ``joint``: ``data``, plus every ring hop's ACKs through the second
  aggregation switches and core ``c2`` and every background flow's ACKs
  through ``c3``: no ACK stream shares a fabric link with any data.  (A hop's
  ACKs still leave through the receiver's own host link, with the
  receiver's outgoing ring data: no placement can change that.)
* ``none``: no pins: the policy's own placement.

Each run is a fresh network and controller: the no-hotspot reference first,
then the hotspot scenario (the full demo's sizes), as ``sidestep lab`` runs a
policy.  Runs alternate between placements (the machine is shared and noisy);
one line per run, then per placement the median ratio to its own reference.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import urllib.error
from typing import Dict, List, Sequence, Tuple

from controller.ecmp import FiveTuple
from mininet_topos.fattree_spec import FatTreeSpec, fat_tree
from mininet_topos.lab import ControllerProcess, Lab, LabError
from mininet_topos.live import run_with_background
from mininet_topos.scenario import Scenario, build_scenario

SIZES = {"iterations": 20, "message_bytes": 1_000_000, "compute_s": 0.5, "warmup": 3}  # the full demo's
PLACEMENTS = ("data", "joint", "none")


def via(spec: FatTreeSpec, five: FiveTuple, agg: int, core: int) -> List[str]:
    """The path of an inter-pod connection through aggregation index ``agg`` and core ``core``."""
    src, dst = spec.host(five.src), spec.host(five.dst)
    return [src.name, src.edge, "a%d_%d" % (spec.pod_of_host(src.name), agg), "c%d" % core,
            "a%d_%d" % (spec.pod_of_host(dst.name), agg), dst.edge, dst.name]


def pins_for(placement: str, scenario: Scenario) -> List[Tuple[FiveTuple, List[str]]]:
    """The (connection, path) pins of a placement (see the module docstring)."""
    if placement == "none":
        return []
    spec = fat_tree(scenario.k, scenario.bw_mbps)
    pins = []
    for conn in scenario.job.connections():
        pins.append((conn, via(spec, conn, 0, 0)))
        if placement == "joint":
            pins.append((conn.reverse(), via(spec, conn.reverse(), 1, 2)))
    for bg in scenario.background:
        pins.append((bg.five, via(spec, bg.five, 0, 1)))
        if placement == "joint":
            pins.append((bg.five.reverse(), via(spec, bg.five.reverse(), 1, 3)))
    return pins


def pin(ctrl: ControllerProcess, five: FiveTuple, path: Sequence[str]) -> None:
    try:
        ctrl.post("/pins", {"src": five.src, "dst": five.dst, "path": list(path), "proto": five.proto,
                            "src_port": five.src_port, "dst_port": five.dst_port})
    except urllib.error.HTTPError as exc:
        raise LabError("POST /pins refused %s: %s" % (five, exc.read().decode("utf-8", "replace")))


def run_once(placement: str, policy: str, out_dir: str) -> Dict[str, float]:
    """One fresh lab: the reference, then the hotspot scenario with ``placement`` pinned."""
    reference = build_scenario("none", **SIZES)
    scenario = build_scenario("hotspot", **SIZES)
    ctrl = ControllerProcess(out_dir, record=os.path.join(out_dir, "loads.csv"), overrides={
        "policy": policy, "poll_interval": 1.0, "rest_allow_pin": True,
        "training": {"host_groups": [list(scenario.job.hosts)]}})
    got: Dict[str, float] = {}
    with Lab(k=scenario.k, bw_mbps=scenario.bw_mbps, out_dir=out_dir, controller=ctrl) as lab:
        lab.parallel_pingall()       # the controller learns every host, so pins can name them
        for five, path in pins_for(placement, scenario):
            pin(ctrl, five, path)
        for sc, tag in ((reference, "reference"), (scenario, "scenario")):
            run_dir = os.path.join(out_dir, tag)
            os.makedirs(run_dir, exist_ok=True)
            summary = run_with_background(lab, sc, run_dir, 300.0)   # as `sidestep lab` runs a row
            with open(os.path.join(run_dir, "job.json"), "w") as handle:
                json.dump(summary, handle, indent=1)
            got[tag] = float(summary["mean_iteration_s"])
            got[tag + "_srtt_ms"] = float((summary.get("tcp") or {}).get("max_srtt_ms_median") or "nan")
        with open(os.path.join(out_dir, "paths.json"), "w") as handle:
            json.dump(ctrl.get("/paths"), handle, indent=1)
    return got


def main(argv: Sequence[str] = ()) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--placement", nargs="+", default=["data", "joint"], choices=PLACEMENTS)
    ap.add_argument("--policy", default="ecmp", choices=["ecmp", "reactive", "predictive"],
                    help="the controller's policy (a planner may still move unpinned connections)")
    ap.add_argument("--runs", type=int, default=2, help="runs per placement, alternating")
    ap.add_argument("--out", default=None, help="folder for the runs' files (default: a new temp folder)")
    args = ap.parse_args(list(argv) or None)
    out = args.out or tempfile.mkdtemp(prefix="sidestep-placement-")
    ratios: Dict[str, List[float]] = {p: [] for p in args.placement}
    print("placement  policy      ref_s  hotspot_s  ratio  srtt_ms (median hop: ref / hotspot)")
    for i in range(args.runs):
        for placement in args.placement:
            got = run_once(placement, args.policy, os.path.join(out, "%s-%d" % (placement, i)))
            ratio = got["scenario"] / got["reference"]
            ratios[placement].append(ratio)
            print("%-10s %-10s %6.3f %10.3f %6.3f  %.1f / %.1f" % (
                placement, args.policy, got["reference"], got["scenario"], ratio,
                got["reference_srtt_ms"], got["scenario_srtt_ms"]), flush=True)
    for placement, values in ratios.items():
        print("%s: median %.3f over %d runs (%s)" % (placement, statistics.median(values), len(values),
                                                     ", ".join("%.3f" % v for v in values)))
    print("files: %s" % out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
