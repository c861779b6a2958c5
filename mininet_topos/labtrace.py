"""A lab run as a flow trace: the traffic the lab measured, in ``sidestep replay``'s format.

Why: a lab run and its replay should be comparable transfer for transfer, so the
trace is built from what the traffic generators recorded on the hosts, not from
what the scenario planned.  A run folder of ``sidestep lab`` (``<out>/<policy>/scenario``,
written by ``mininet_topos.live``) holds:

* ``worker<R>.json``: each training worker's ring connection (local and remote
  ``IP:port``) and, per iteration, when its all-reduce began (after the barrier
  and the compute gap) and the bytes it sent;
* ``background.json``: each hotspot flow's hosts, ports, launch time and report file;
* ``burst<i>.json`` (``mininet_topos.burst send --out``): every "on" phase's start and bytes;
* ``iperf<i>.txt`` (``iperf3 -i 1 --forceflush``): the long flow's bytes, from the
  sender's summary line, or the sum of its one-second lines when iperf3 was stopped
  before it printed one (iperf3 rounds to three digits: within 0.5 %).

Rows: one training flow per worker and iteration (``job`` ``train``, ``iter`` i,
the connection's fixed ports); iteration 0 starts when it did in the lab, and
iteration i waits on every flow of iteration i-1 plus the compute gap the worker
measured (the barrier's milliseconds are left out).  One background flow per
burst phase (the burst connection's ports, so a pinned path applies to all its
phases) and one per long iperf3 flow.  Times count from the first transfer.

    .venv/bin/python -m mininet_topos.labtrace RUN_DIR [--k 4] [--link-mbps 10] -o FLOWS.csv
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
from typing import Any, Dict, List, Optional, Sequence, Tuple

from controller.commands.outputs import output_file_problem
from controller.flowtrace import TraceFlow, save_flow_trace
from mininet_topos.fattree_spec import fat_tree

TRAINING_JOB = "train"


class LabTraceError(ValueError):
    """A run folder that does not hold what a flow trace needs; the message names the file."""


def _load(path: str) -> Dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except OSError as exc:
        raise LabTraceError("%s: cannot read: %s" % (path, exc.strerror or exc)) from None
    except ValueError as exc:
        raise LabTraceError("%s: not valid JSON: %s" % (path, exc)) from None
    if not isinstance(data, dict):
        raise LabTraceError("%s: not a JSON object" % path)
    return data


def _endpoint(path: str, text: object, host_of_ip: Dict[str, str]) -> Tuple[str, int]:
    """``"10.0.0.3:41000"`` -> (host name, port)."""
    if not isinstance(text, str) or ":" not in text:
        raise LabTraceError("%s: expected IP:port, got %r" % (path, text))
    ip, port = text.rsplit(":", 1)
    if ip not in host_of_ip:
        raise LabTraceError("%s: %s is not a host of this fat-tree" % (path, ip))
    return host_of_ip[ip], int(port)


def _worker_files(run_dir: str) -> List[str]:
    names = [n for n in os.listdir(run_dir) if n.startswith("worker") and n.endswith(".json")]
    return [os.path.join(run_dir, n) for n in sorted(names, key=lambda n: int(n[6:-5]) if n[6:-5].isdigit() else -1)]


def _training(run_dir: str, host_of_ip: Dict[str, str]) -> List[Dict[str, Any]]:
    """Per worker: (src, sport, dst, dport) and its iterations."""
    workers = []
    for path in _worker_files(run_dir):
        data = _load(path)
        if not data.get("ok", False):
            raise LabTraceError("%s: the worker failed (%s); its iterations are incomplete" % (path, data.get("error")))
        conn = data.get("connection") or {}
        src, sport = _endpoint(path, conn.get("local"), host_of_ip)
        dst, dport = _endpoint(path, conn.get("remote"), host_of_ip)
        its = data.get("iterations")
        if not isinstance(its, list) or not its:
            raise LabTraceError("%s: no iterations" % path)
        for it in its:
            for key in ("start_s", "compute_s", "bytes_sent"):
                if not isinstance(it.get(key), (int, float)):
                    raise LabTraceError("%s: iteration %s has no numeric %r" % (path, it.get("index"), key))
        workers.append({"rank": int(data.get("rank", len(workers))), "src": src, "sport": sport, "dst": dst,
                        "dport": dport, "iterations": its})
    return workers


def _background(run_dir: str) -> List[Dict[str, Any]]:
    """Per background transfer: hosts, ports, start time (epoch s), bytes, id."""
    path = os.path.join(run_dir, "background.json")
    if not os.path.exists(path):
        return []
    listing = _load(path).get("flows")
    if not isinstance(listing, list):
        raise LabTraceError("%s: 'flows' is not a list" % path)
    out = []
    for i, bg in enumerate(listing):
        try:
            out += _one_background(run_dir, i, bg)
        except LabTraceError:
            raise
        except (KeyError, TypeError, ValueError) as exc:
            raise LabTraceError("%s: background flow %d: missing or bad %s" % (path, i, exc)) from None
    return out


def _one_background(run_dir: str, i: int, bg: Dict[str, Any]) -> List[Dict[str, Any]]:
    """The transfers of background flow ``i`` of ``background.json``, from its report file."""
    report = os.path.join(run_dir, str(bg["report"]))
    base = {"src": bg["src"], "dst": bg["dst"], "sport": int(bg["src_port"]), "dport": int(bg["dst_port"])}
    out = []
    if bg.get("kind") == "long":
        sent = iperf3_sent_bytes(report)
        if sent > 0:
            out.append(dict(base, id="long%d" % i, start=float(bg["launched_s"]), bytes=float(round(sent))))
    else:
        data = _load(report)
        for ph in data.get("phases") or []:
            if ph.get("phase") == "on" and (ph.get("bytes") or 0) > 0:
                out.append(dict(base, id="burst%d.p%d" % (i, int(ph["index"])), start=float(ph["start_s"]),
                                bytes=float(ph["bytes"])))
    return out


_IPERF_LINE = re.compile(r"^\[\s*\d+\]\s+[\d.]+-[\d.]+\s+sec\s+([\d.]+)\s+([KMGT]?)Bytes\b(.*)$")
_UNIT = {"": 1, "K": 1024, "M": 1024 ** 2, "G": 1024 ** 3, "T": 1024 ** 4}   # iperf3's byte units


def iperf3_sent_bytes(path: str) -> float:
    """Bytes an iperf3 client sent, from its text report (``-i 1 --forceflush``)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            lines = fh.read().splitlines()
    except OSError as exc:
        raise LabTraceError("%s: cannot read: %s" % (path, exc.strerror or exc)) from None
    intervals = 0.0
    for line in lines:
        m = _IPERF_LINE.match(line.strip())
        if not m:
            continue
        value = float(m.group(1)) * _UNIT[m.group(2)]
        if m.group(3).rstrip().endswith("sender"):
            return value
        if not m.group(3).rstrip().endswith("receiver"):
            intervals += value
    return intervals


def lab_run_flows(run_dir: str, k: int = 4, link_mbps: float = 10.0) -> List[TraceFlow]:
    """The flow trace of one lab run folder (see the module doc), sorted by start time then flow_id."""
    if not os.path.isdir(run_dir):
        raise LabTraceError("%s is not a folder" % run_dir)
    host_of_ip = {h.ip: h.name for h in fat_tree(k, link_mbps).hosts}
    workers = _training(run_dir, host_of_ip)
    background = _background(run_dir)
    if not workers and not background:
        raise LabTraceError("%s holds no worker<R>.json and no background.json: not a lab run folder" % run_dir)
    starts = [w["iterations"][0]["start_s"] + w["iterations"][0]["compute_s"] for w in workers]
    t0 = min(starts + [b["start"] for b in background])
    flows: List[TraceFlow] = []
    for w in workers:
        for j, it in enumerate(w["iterations"]):
            deps: Tuple[str, ...] = ()
            start, gap = 0.0, 0.0
            if j == 0:
                start = round(it["start_s"] + it["compute_s"] - t0, 6)
            else:
                deps = tuple("%s.i%d.w%d" % (TRAINING_JOB, j - 1, v["rank"]) for v in workers)
                gap = round(float(it["compute_s"]), 6)
            flows.append(TraceFlow("%s.i%d.w%d" % (TRAINING_JOB, j, w["rank"]), start, w["src"], w["dst"],
                                   float(it["bytes_sent"]), cls="training", job=TRAINING_JOB, iter=j,
                                   src_port=w["sport"], dst_port=w["dport"], deps=deps, gap_s=gap))
    for b in background:
        flows.append(TraceFlow(b["id"], round(b["start"] - t0, 6), b["src"], b["dst"], b["bytes"],
                               cls="background", src_port=b["sport"], dst_port=b["dport"]))
    return sorted(flows, key=lambda f: (f.start_s, f.flow_id))


def write_lab_trace(run_dir: str, path: str, k: int = 4, link_mbps: float = 10.0) -> int:
    """Write ``lab_run_flows`` to ``path`` (whole or not at all); returns the number of flows."""
    return save_flow_trace(path, lab_run_flows(run_dir, k, link_mbps))


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m mininet_topos.labtrace", description=__doc__.splitlines()[0])
    ap.add_argument("run_dir", metavar="RUN_DIR", help="a lab run folder, e.g. LAB_OUT/ecmp/scenario")
    ap.add_argument("--k", type=int, default=4)
    ap.add_argument("--link-mbps", type=float, default=10.0)
    ap.add_argument("-o", "--output", required=True, metavar="FLOWS.csv")
    ap.add_argument("--force", action="store_true", help="replace an existing FLOWS.csv")
    args = ap.parse_args(argv)
    problem = output_file_problem(args.output, "-o", force=args.force, example="flows.csv")
    if problem:
        print("labtrace: error: %s" % problem, file=sys.stderr)
        return 2
    try:
        n = write_lab_trace(args.run_dir, args.output, args.k, args.link_mbps)
    except (LabTraceError, ValueError, OSError) as exc:
        print("labtrace: error: %s" % exc, file=sys.stderr)
        return 2
    print("wrote %d flows to %s; replay with: sidestep replay %s --k %d --link-mbps %g --out DIR"
          % (n, args.output, args.output, args.k, args.link_mbps), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
