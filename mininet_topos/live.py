"""Runs a lab scenario for real: a fresh fat-tree per policy, the training job, the hotspots.

Used by ``sidestep lab``.  Every run gets a fresh network and controller
(the ``Lab`` context manager tears both down on success, failure or Ctrl-C);
results are worker timings measured on the hosts, not simulated.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence

from mininet_topos.cpuuse import CpuSnapshot
from mininet_topos.lab import ROOT, ControllerProcess, Lab, LabError, wait_for
from mininet_topos.labtrace import write_lab_trace
from mininet_topos.scenario import TRAIN_LISTEN_BASE, Scenario
from mininet_topos.trainjob import summarize

BACKGROUND_LEAD_S = 4.0  # hotspots start first, so the controller has measured them


@dataclass
class RunResult:
    policy: str
    scenario: str
    mean_iteration_s: float
    p99_iteration_s: float
    throughput_bps: float
    reroutes: int
    iterations: int
    out_dir: str
    update_latency_ms: Optional[float] = None
    cpu: Optional[Dict[str, Optional[float]]] = None   # cores used during the job (mininet_topos.cpuuse)
    tcp: Optional[Dict[str, float]] = None   # the ring connections' TCP readings (trainjob.summarize)


def _env() -> Dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _terminate(procs: Sequence[subprocess.Popen]) -> None:
    for p in procs:
        if p.poll() is None:
            try:
                p.send_signal(signal.SIGTERM)
            except OSError:
                pass
    deadline = time.monotonic() + 10
    for p in procs:
        try:
            p.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def start_background(lab: Lab, scenario: Scenario, out_dir: str, duration_s: float) -> List[subprocess.Popen]:
    """Servers first, then the senders: long iperf3 flows and periodic on/off bursts."""
    procs: List[subprocess.Popen] = []
    log = open(os.path.join(out_dir, "background.txt"), "ab")
    for bg in scenario.background:
        if bg.kind == "long":
            procs.append(lab.popen(bg.five.dst, ["iperf3", "-s", "-p", str(bg.five.dst_port), "-1"], stdout=log,
                                   stderr=subprocess.STDOUT))
        else:
            procs.append(lab.popen(bg.five.dst, [sys.executable, "-m", "mininet_topos.burst", "sink", "--port",
                                                 str(bg.five.dst_port), "-q"],
                                   stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, env=_env()))
    for bg in scenario.background:
        dst = lab.host(bg.five.dst)
        wait_for(lambda: ":%d " % bg.five.dst_port in dst.cmd("ss -ltnH"), 15,
                 "the background server on %s:%d" % (bg.five.dst, bg.five.dst_port))
    launched = []   # what mininet_topos.labtrace needs to turn this traffic into flow-trace rows
    for i, bg in enumerate(scenario.background):
        src, dst = lab.host(bg.five.src), lab.host(bg.five.dst)
        if bg.kind == "long":
            # text with a flush per second, not -J: iperf3 3.12 can crash in malloc writing its JSON
            # from the SIGTERM handler, and then writes nothing (seen in the lab)
            out = "iperf%d.txt" % i
            cmd = ["iperf3", "-c", dst.IP(), "-p", str(bg.five.dst_port), "--cport", str(bg.five.src_port),
                   "-t", str(int(duration_s)), "-i", "1", "--forceflush"]
            with open(os.path.join(out_dir, out), "wb") as report:
                started = time.time()
                procs.append(lab.popen(bg.five.src, cmd, stdout=report, stderr=log))
        else:
            out = "burst%d.json" % i
            cmd = [sys.executable, "-m", "mininet_topos.burst", "send", "--dst", dst.IP(), "--port",
                   str(bg.five.dst_port), "--src-port", str(bg.five.src_port), "--on-s", str(bg.on_s),
                   "--off-s", str(bg.off_s), "--rate-mbps", "0", "--duration-s", str(int(duration_s)), "-q",
                   "--out", os.path.join(out_dir, out)]
            started = time.time()
            procs.append(lab.popen(bg.five.src, cmd, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, env=_env()))
        launched.append({"kind": bg.kind, "src": bg.five.src, "dst": bg.five.dst, "src_port": bg.five.src_port,
                         "dst_port": bg.five.dst_port, "launched_s": started, "report": out})
    log.close()
    with open(os.path.join(out_dir, "background.json"), "w") as handle:
        json.dump({"format": "sidestep-lab-background/1", "flows": launched}, handle, indent=1)
    return procs


def run_job(lab: Lab, scenario: Scenario, out_dir: str, timeout_s: float) -> Dict[str, object]:
    """Start one worker per training host and wait for all; returns the job summary."""
    job = scenario.job
    peers = ",".join("%s:%d" % (lab.host(h).IP(), TRAIN_LISTEN_BASE + r) for r, h in enumerate(job.hosts))
    files, procs = [], []
    log = open(os.path.join(out_dir, "trainjob.txt"), "ab")
    for rank, name in enumerate(job.hosts):
        out = os.path.join(out_dir, "worker%d.json" % rank)
        files.append(out)
        conn = job.connections()[rank]
        cmd = [sys.executable, "-m", "mininet_topos.trainjob", "worker", "--rank", str(rank), "--peers", peers,
               "--iterations", str(job.iterations), "--message-bytes", str(job.message_bytes),
               "--compute-s", str(job.compute_s), "--out", out, "--src-port", str(conn.src_port), "-q"]
        procs.append(lab.popen(name, cmd, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, env=_env()))
    log.close()
    deadline = time.monotonic() + timeout_s
    try:
        for p in procs:
            p.wait(timeout=max(1.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        _terminate(procs)
        raise LabError("the training job did not finish within %.0f s; see %s" % (timeout_s, out_dir))
    bad = [f for f, p in zip(files, procs) if p.returncode != 0]
    if bad:
        raise LabError("training workers failed (%s); see %s/trainjob.txt"
                       % (", ".join(os.path.basename(b) for b in bad), out_dir))
    return summarize(files, warmup=job.warmup)


def run_with_background(lab: Lab, scenario: Scenario, run_dir: str, job_timeout_s: float,
                        controller_pid: Optional[int] = None) -> Dict[str, object]:
    """The scenario's background traffic first, then its training job; the job summary, with ``cpu``.

    The background starts ``BACKGROUND_LEAD_S`` before the job, so the hotspot
    has built and been measured when the job's first iteration begins, and is
    stopped however the job ends.
    """
    procs: List[subprocess.Popen] = []
    try:
        if scenario.background:
            procs = start_background(lab, scenario, run_dir, duration_s=job_timeout_s + BACKGROUND_LEAD_S)
            time.sleep(BACKGROUND_LEAD_S)  # let the hotspot build and be measured
        cpu_before = CpuSnapshot.take(controller_pid)
        summary = run_job(lab, scenario, run_dir, job_timeout_s)
        summary["cpu"] = cpu_before.shares(CpuSnapshot.take(controller_pid))
    finally:
        _terminate(procs)
    return summary


def run_scenario(scenario: Scenario, policy: str, out_dir: str, *, ofp_port: int = 6653,
                 poll_interval: float = 1.0, model: Optional[str] = None,
                 reference: Optional[Scenario] = None, job_timeout_s: float = 300.0,
                 label: Optional[str] = None) -> List[RunResult]:
    """One fresh network and controller; runs ``reference`` (no hotspot) first if given, then ``scenario``.

    ``label`` names the scenario's row (default: the policy, or "no hotspot"
    for a scenario without background traffic).
    """
    os.makedirs(out_dir, exist_ok=True)
    overrides: Dict[str, object] = {
        "policy": policy, "poll_interval": poll_interval, "record_flush_s": 1.0,
        "training": {"host_groups": [list(scenario.job.hosts)]},
    }
    if model:
        overrides["model"] = os.path.abspath(model)
    ctrl = ControllerProcess(out_dir, ofp_port=ofp_port, record=os.path.join(out_dir, "loads.csv"),
                             overrides=overrides, name="controller")
    results: List[RunResult] = []
    with Lab(k=scenario.k, bw_mbps=scenario.bw_mbps, out_dir=out_dir, ofp_port=ofp_port, controller=ctrl) as lab:
        runs = ([(reference, "reference")] if reference is not None else []) + [(scenario, "scenario")]
        for sc, tag in runs:
            run_dir = os.path.join(out_dir, tag)
            os.makedirs(run_dir, exist_ok=True)
            before = ctrl.get("/health")
            summary = run_with_background(lab, sc, run_dir, job_timeout_s,
                                          ctrl.proc.pid if ctrl.proc is not None else None)
            after = ctrl.get("/health")
            with open(os.path.join(run_dir, "job.json"), "w") as handle:
                json.dump(summary, handle, indent=1)
            try:   # the run as a flow trace, for `sidestep replay` (docs/replay.md)
                write_lab_trace(run_dir, os.path.join(run_dir, "trace.csv"), sc.k, sc.bw_mbps)
            except (ValueError, OSError) as exc:
                print("sidestep lab: no trace.csv for %s: %s" % (run_dir, exc), file=sys.stderr)
            if tag == "reference" or not sc.background:
                row = "no hotspot"
            else:
                row = label or policy
            results.append(RunResult(
                row, sc.name,
                float(summary["mean_iteration_s"]), float(summary["p99_iteration_s"]),
                float(summary["throughput_bps"]), int(after["reroutes_total"]) - int(before["reroutes_total"]),
                int(summary["iterations"]), run_dir,
                (after.get("path_updates") or {}).get("mean_ms"), summary["cpu"], summary.get("tcp")))
    return results
