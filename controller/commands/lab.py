"""``sidestep lab``: the live demo on a Mininet fat-tree (root).

Runs the training job under a hotspot once per policy (a fresh network each
time, same scenario), plus once without the hotspot as the reference, and
prints mean/p99 iteration time, throughput, reroutes and the ratio to the
no-hotspot run.  ``--repeat N`` runs all of that N times (rounds) and prints
each row's medians and the ratio's range.  Everything it wrote is in the
folder it names at the end.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from typing import Dict, List, Optional

POLICIES = ("ecmp", "reactive", "predictive")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true",
                        help="fewer, smaller iterations, no 'no collision' run; the no-hotspot reference runs in the "
                             "first policy's network (< 3 min)")
    parser.add_argument("--scenario", default="hotspot", help="hotspot (default), bursts, or none (the job alone)")
    parser.add_argument("--policies", default=",".join(POLICIES), help="comma-separated (default: all three)")
    parser.add_argument("--iterations", type=int, default=None, help="training iterations per run")
    parser.add_argument("--repeat", type=int, default=1, metavar="N",
                        help="run every row N times (rounds, each on fresh networks) and show each row's median "
                             "and range over the rounds (default 1; the lab's run-to-run spread is wide: docs/lab.md)")
    parser.add_argument("--model", default=None, help="forecaster model for predictive (default: shipped)")
    parser.add_argument("--out", default=None, help="output folder (default: out/lab-<time>)")
    parser.add_argument("--ofp-port", type=int, default=6653)
    parser.add_argument("--replay", metavar="FLOWS.csv", default=None,
                        help="play a flow trace into the lab instead of the training scenario, under predictive "
                             "(or the one policy --policies names)")
    parser.add_argument("--hedera", action="store_true",
                        help="run the Hedera protocol (stride/staggered/random patterns) instead")
    parser.add_argument("--link-mbps", type=float, default=10.0,
                        help="link rate for --hedera (default 10; lower keeps the emulator off its CPU limit)")


def _fail(message: str) -> int:
    print("sidestep lab: error: %s" % message, file=sys.stderr)
    return 2


def run(args: argparse.Namespace) -> int:
    from mininet_topos.lab import LabError, check_root, check_tools, ensure_ovs, port_free
    from mininet_topos.scenario import ScenarioError, build_scenario, without_collisions

    policies = [p.strip() for p in args.policies.split(",") if p.strip()]
    unknown = [p for p in policies if p not in POLICIES]
    if unknown or not policies:
        return _fail("unknown policy %s; choose from %s" % (",".join(unknown) or "''", ",".join(POLICIES)))
    if args.iterations is not None and args.iterations < 2:
        return _fail("--iterations must be >= 2")
    if args.repeat < 1:
        return _fail("--repeat must be >= 1, got %d" % args.repeat)
    if args.repeat > 1 and (args.replay is not None or args.hedera):
        return _fail("--repeat is for the training demo; --%s runs once (drop --repeat)"
                     % ("replay" if args.replay is not None else "hedera"))
    if not 0 < args.link_mbps <= 1000:
        return _fail("--link-mbps must be > 0 and <= 1000, got %g" % args.link_mbps)
    try:
        if args.replay is not None:
            from controller.tracefile import TraceError
            from mininet_topos.livereplay import LiveReplayError, load_trace
            try:
                load_trace(args.replay)  # refuse a bad trace before anything starts
            except (TraceError, LiveReplayError) as exc:
                return _fail(str(exc))
        elif not args.hedera:
            scenario = build_scenario(args.scenario, **_sizes(args))
            # the same traffic clear of the ring: what the best placement could do (not in --quick)
            clear = None if args.quick else without_collisions(scenario)
        check_root()
        check_tools()
        ensure_ovs()
        if not port_free(args.ofp_port, "0.0.0.0"):
            return _fail("OpenFlow port %d is already in use (another controller?); stop it or use --ofp-port"
                         % args.ofp_port)
    except (ScenarioError, LabError) as exc:
        return _fail(str(exc))
    out = os.path.abspath(args.out or os.path.join("out", "lab-%s" % time.strftime("%Y%m%d-%H%M%S")))
    if os.path.exists(out) and os.listdir(out):
        return _fail("output folder %s exists and is not empty; choose another --out" % out)
    os.makedirs(out, exist_ok=True)
    # Ctrl-C and SIGTERM (made a KeyboardInterrupt by ``controller.cli``) unwind through the Lab
    # context managers, which clean up.
    try:
        if args.replay is not None:
            from mininet_topos.livereplay import run_live_replay
            return run_live_replay(args.replay, out, ofp_port=args.ofp_port, model=args.model,
                                   policy=policies[0] if len(policies) == 1 else "predictive")
        if args.hedera:
            from mininet_topos.hedera import run_hedera
            return run_hedera(out, policies, ofp_port=args.ofp_port, model=args.model, quick=args.quick,
                              link_mbps=args.link_mbps)
        return _run_training(scenario, clear, policies, out, args)
    except LabError as exc:
        print("sidestep lab: error: %s\n(outputs so far are in %s)" % (exc, out), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("sidestep lab: interrupted; the lab was cleaned up (outputs so far in %s)" % out, file=sys.stderr)
        return 130


def _sizes(args: argparse.Namespace) -> dict:
    if args.quick:
        return {"iterations": args.iterations or 10, "message_bytes": 500_000, "compute_s": 0.3, "warmup": 3}
    return {"iterations": args.iterations or 20, "message_bytes": 1_000_000, "compute_s": 0.5, "warmup": 3}


def _run_training(scenario, clear, policies: List[str], out: str, args: argparse.Namespace) -> int:
    started = time.time()
    rows: List[dict] = []
    rounds = args.repeat
    for index in range(1, rounds + 1):
        round_out = out if rounds == 1 else os.path.join(out, "round%d" % index)
        if rounds > 1:
            print("sidestep lab: round %d of %d" % (index, rounds), file=sys.stderr)
        rows += _run_round(scenario, clear, policies, round_out, args, index if rounds > 1 else None)
    medians = median_rows(rows) if rounds > 1 else None
    table = format_table(medians or rows)
    summary = {"scenario": scenario.name, "description": scenario.description, "quick": bool(args.quick),
               "k": scenario.k, "link_mbps": scenario.bw_mbps, "workers": list(scenario.job.hosts),
               "message_bytes": scenario.job.message_bytes, "compute_s": scenario.job.compute_s,
               "iterations": scenario.job.iterations, "warmup": scenario.job.warmup, "repeat": rounds,
               "elapsed_s": time.time() - started, "runs": rows}
    if medians:
        summary["medians"] = medians
    with open(os.path.join(out, "summary.json"), "w") as handle:
        json.dump(summary, handle, indent=1)
    diagnostics = format_diagnostics(rows)
    with open(os.path.join(out, "table.txt"), "w") as handle:
        handle.write(table + "\n" + ("\n" + diagnostics + "\n" if diagnostics else ""))
    try:
        _plot([r for r in rows if r.get("round", 1) == 1], os.path.join(out, "iterations.png"),
              "" if rounds == 1 else " (round 1 of %d)" % rounds)
    except ImportError:
        pass
    print(table)
    if diagnostics:
        print("\n" + diagnostics)
    first = out if rounds == 1 else os.path.join(out, "round1")
    print("\nsidestep lab: %d runs in %.0f s; controller logs, link-load recordings (loads.csv), worker "
          "timings and iterations.png are in %s; each run as a flow trace: sidestep replay "
          "%s/%s/scenario/trace.csv --k %d --link-mbps %g --out DIR"
          % (len(rows), time.time() - started, out, first, policies[0], scenario.k, scenario.bw_mbps))
    return 0


def _run_round(scenario, clear, policies: List[str], out: str, args: argparse.Namespace,
               index: Optional[int]) -> List[dict]:
    """One round: the references and every policy, each on a fresh network; its rows (``index``: the round)."""
    from mininet_topos.live import run_scenario
    from mininet_topos.scenario import NO_COLLISION, build_scenario

    reference = build_scenario("none", **_sizes(args))
    results = []
    if clear is not None:
        print("sidestep lab: reference runs (no hotspot; the same hotspot traffic clear of the ring), ecmp ...",
              file=sys.stderr)
        results += run_scenario(clear, "ecmp", os.path.join(out, "reference"), ofp_port=args.ofp_port,
                                reference=reference, label=NO_COLLISION)
        ref_needed = None
    else:
        ref_needed = reference
    for policy in policies:
        print("sidestep lab: %s under the %s scenario ..." % (policy, scenario.name), file=sys.stderr)
        ref = ref_needed if policy == policies[0] else None
        results += run_scenario(scenario, policy, os.path.join(out, policy), ofp_port=args.ofp_port,
                                model=args.model, reference=ref)
    base = next(r for r in results if r.policy == "no hotspot")
    rows = []
    for r in results:
        row = {"run": r.policy, "scenario": r.scenario, "mean_iteration_s": r.mean_iteration_s,
               "p99_iteration_s": r.p99_iteration_s, "throughput_mbps": r.throughput_bps / 1e6,
               "reroutes": r.reroutes, "ratio_to_no_hotspot": r.mean_iteration_s / base.mean_iteration_s,
               "iterations": r.iterations, "update_latency_ms": r.update_latency_ms, "cpu": r.cpu,
               "tcp": r.tcp, "dir": r.out_dir}
        if index is not None:
            row["round"] = index
        rows.append(row)
    return rows


def median_rows(rows: List[dict]) -> List[dict]:
    """One row per run name (in first-seen order): medians over the rounds, and the ratio's range.

    Why medians: one configuration of this lab spreads from 1.05x to 1.38x
    between runs (docs/lab.md, "Does it matter?"), so a single round can
    rank the policies either way; the median of several is what a comparison
    should rest on, and the range shows how far to trust it.  Each ratio is
    to the no-hotspot run of its own round.
    """
    by_run: Dict[str, List[dict]] = {}      # first-seen order
    for r in rows:
        by_run.setdefault(r["run"], []).append(r)
    out = []
    for name, group in by_run.items():
        ratios = [g["ratio_to_no_hotspot"] for g in group]
        out.append({"run": name, "scenario": group[0]["scenario"], "rounds": len(group),
                    "mean_iteration_s": statistics.median(g["mean_iteration_s"] for g in group),
                    "p99_iteration_s": statistics.median(g["p99_iteration_s"] for g in group),
                    "throughput_mbps": statistics.median(g["throughput_mbps"] for g in group),
                    "reroutes": statistics.median(g["reroutes"] for g in group),
                    "ratio_to_no_hotspot": statistics.median(ratios),
                    "ratio_min": min(ratios), "ratio_max": max(ratios)})
    return out


def format_table(rows: List[dict]) -> str:
    """The results table; rows from ``median_rows`` add the ratio's range over the rounds."""
    spread = any("ratio_min" in r for r in rows)
    head = "%-12s %10s %10s %12s %9s %12s" % ("run", "mean it s", "p99 it s", "tput Mbit/s", "reroutes",
                                              "vs no-hot")
    if spread:
        head += " %13s" % ("range (%d)" % max(r["rounds"] for r in rows))
    lines = ([] if not spread else ["medians over rounds (each ratio to its own round's no-hotspot run):"]) \
        + [head, "-" * len(head)]
    for r in rows:
        line = "%-12s %10.2f %10.2f %12.2f %9g %11.2fx" % (
            r["run"], r["mean_iteration_s"], r["p99_iteration_s"], r["throughput_mbps"], r["reroutes"],
            r["ratio_to_no_hotspot"])
        if spread:
            line += " %13s" % ("%.2f-%.2fx" % (r["ratio_min"], r["ratio_max"]))
        lines.append(line)
    return "\n".join(lines)


def format_diagnostics(rows: List[dict]) -> str:
    """A second table: per run, the ring's TCP readings and the cores used during its job.

    Why under the results: a slow row on this lab is a slow path (queueing shows
    in the ring connections' smoothed RTT), losses (retransmissions) or the CPU
    (the userspace datapath forwards every packet in one thread of ovs-vswitchd
    on two cores; docs/lab.md, "Where the CPU goes").  "-" where a run has no
    reading; empty when no run has any.
    """
    if not any(r.get("cpu") or r.get("tcp") for r in rows):
        return ""

    def num(value: Optional[float], fmt: str = "%.2f") -> str:
        return "-" if value is None else fmt % value

    names = [r["run"] if "round" not in r else "%s #%d" % (r["run"], r["round"]) for r in rows]
    width = max([12] + [len(n) for n in names])
    head = "%-*s %8s %16s %10s %10s %11s" % (width, "run", "retrans", "srtt ms med/max", "ovs cores",
                                             "ctl cores", "busy cores")
    lines = ["where the time went (ring TCP over the counted iterations; cores during the job):", head,
             "-" * len(head)]
    for name, r in zip(names, rows):
        tcp = r.get("tcp") or {}
        cpu = r.get("cpu") or {}
        srtt = ("%.1f/%.1f" % (tcp["max_srtt_ms_median"], tcp["max_srtt_ms_max"])) if tcp else "-"
        lines.append("%-*s %8s %16s %10s %10s %11s" % (
            width, name, num(tcp.get("retrans"), "%d"), srtt, num(cpu.get("datapath_cores")),
            num(cpu.get("controller_cores")), num(cpu.get("machine_busy_cores"))))
    return "\n".join(lines)


def _plot(rows, path: str, note: str = "") -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for r in rows:
        with open(os.path.join(r["dir"], "job.json")) as handle:
            its = json.load(handle)["iteration_s"]
        ax.plot(range(1, len(its) + 1), its, marker="o", label=r["run"])
    ax.set_xlabel("iteration (after warm-up)")
    ax.set_ylabel("iteration time (s)")
    ax.set_title("Training-job iteration time per policy (k=4 fat-tree, live)%s" % note)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
