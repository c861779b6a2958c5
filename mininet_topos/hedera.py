"""The Hedera protocol, live: aggregate throughput per policy as a fraction of a non-blocking network.

Why this protocol: it is the standard yardstick for flow scheduling on a
fat-tree (Al-Fares et al., "Hedera: Dynamic Flow Scheduling for Data Center
Networks", NSDI 2010, section 6), and published peer experiments with Ryu apps
in Mininet use it, so Sidestep's numbers can be put next to theirs.

The protocol (k=4, 10 Mbit/s links, 16 hosts):

* every host sends one long TCP flow (iperf3, fixed client port so the
  5-tuple, hence the ECMP hash, is the same under every policy) and all 16
  start together;
* traffic patterns (``hedera_patterns``):

  - ``stride1``, ``stride2``, ``stride4``, ``stride8``: host index x
    (0-based, ``h1`` is 0) sends to host (x + i) mod 16.  With 2 hosts per
    edge and 4 per pod, stride-1 is half intra-edge and a quarter each
    intra-pod and inter-pod, stride-2 half intra-pod (other edge) and half
    inter-pod, stride-4 and stride-8 all cross the core;
  - ``stag_0.2_0.3``, ``stag_0.5_0.3``: Hedera's staggered(EdgeP, PodP): each
    host sends to another host on its edge switch with probability EdgeP, to
    another edge switch of its pod with probability PodP, otherwise to a
    host in another pod (uniformly within the chosen group);
  - ``random``: Hedera's "random": each host picks a destination uniformly
    among the other 15, independently, so several senders may share one
    receiver (its access link then limits them on every network, which
    the fraction-of-non-blocking cancels out).  Not a permutation: that is
    Hedera's separate "randbij" pattern, and the published peer figures
    quoted below are for "random".

  Every pattern is drawn from ``random.Random("<seed>:<name>")``, so the same
  seed gives the same flows under every policy and on every machine.
* each policy runs in ONE fresh lab (controller + Mininet) that plays every
  pattern in turn: servers on distinct ports per pattern (no TIME_WAIT
  clash between patterns), then all clients for ``duration_s`` seconds of
  which the first ``omit_s`` are left out of the measurement (``iperf3 -O``):
  that is the controller's time to measure and move flows, and it also
  hides ARP, flow setup by packet-in and TCP slow start;
* the throughput of a flow is what its receiver got (iperf3 ``-J``,
  ``end.sum_received.bits_per_second``); a pattern's aggregate is the sum
  over its 16 flows (Hedera's "aggregate bisection bandwidth");
* the reference is the same patterns on ``nonblocking``: one big switch
  with the same 16 host links (``mininet_topos.bigswitch``), run in the same
  lab machinery with policy ecmp; every cell is reported as a fraction of it.

How the planner is allowed to move these flows: the controller's config
declares all 16 hosts one training job (``training: {host_groups: [all
hosts]}``), so every flow is classified ``training`` and is a candidate, as
in Hedera, where every elephant is.  (The alternative, ``planner:
{move_background: true}``, would also let it move them; declaring them
training keeps the planner's default rules and exercises the classifier.)
The iperf3 control connections are tiny, under the elephant threshold, and
are never moved.
"""
from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Dict, List, Mapping, Optional, Sequence, Tuple

from mininet_topos.fattree_spec import FatTreeSpec, fat_tree

if TYPE_CHECKING:  # pragma: no cover - names for the type checker only
    from mininet_topos.lab import Lab

K = 4
LINK_MBPS = 10.0
SEED = 2010  # Hedera's year; any fixed seed works, it only has to be the same for every policy
NONBLOCKING = "nonblocking"
STAGGERED = ((0.2, 0.3), (0.5, 0.3))
QUICK_PATTERNS = ("stride8", "stag_0.2_0.3", "random")
SERVER_PORT_BASE = 5201
CLIENT_PORT_BASE = 21000     # below Linux's ephemeral range (32768-60999): no clash with iperf3's control connections
PORT_STRIDE = 100            # pattern i uses ports BASE + 100*i + flow index
SETTLE_S = 2.0               # between patterns: let queues drain and counters fall
LAB_OVERHEAD_S = 30.0        # start + stop of one lab (controller, Mininet, discovery), measured ~25 s

# Published peer figures on Hedera's random patterns (Ryu apps in Mininet), fraction of non-blocking.
PEER_RANDOM = (("ECMP", 0.68), ("a Ryu Hedera", 0.77), ("best peer app", 0.89))
GOAL = 0.95

Pair = Tuple[str, str]


# --------------------------------------------------------------------------
# patterns (pure)
# --------------------------------------------------------------------------
def stride_pattern(hosts: Sequence[str], i: int) -> List[Pair]:
    """Host x sends to host (x + i) mod n."""
    n = len(hosts)
    if i % n == 0:
        raise ValueError("stride %d sends every host to itself with %d hosts" % (i, n))
    return [(hosts[x], hosts[(x + i) % n]) for x in range(n)]


def staggered_pattern(spec: FatTreeSpec, rng: random.Random, edge_p: float, pod_p: float) -> List[Pair]:
    """Hedera's staggered(EdgeP, PodP): same edge w.p. EdgeP, same pod (other edge) w.p. PodP, else another pod."""
    if edge_p < 0 or pod_p < 0 or edge_p + pod_p > 1:
        raise ValueError("staggered needs EdgeP, PodP >= 0 with EdgeP + PodP <= 1")
    pairs: List[Pair] = []
    for h in spec.hosts:
        pod = spec.pod_of_host(h.name)
        same_edge = [o.name for o in spec.hosts if o.edge == h.edge and o.name != h.name]
        same_pod = [o.name for o in spec.hosts if spec.pod_of_host(o.name) == pod and o.edge != h.edge]
        other = [o.name for o in spec.hosts if spec.pod_of_host(o.name) != pod]
        u = rng.random()
        group = same_edge if u < edge_p else same_pod if u < edge_p + pod_p else other
        if not group:  # k=2 has one host per edge; fall back to the next wider group
            group = same_pod or other
        pairs.append((h.name, rng.choice(group)))
    return pairs


def random_pattern(hosts: Sequence[str], rng: random.Random) -> List[Pair]:
    """Each host sends to a uniformly random other host (receivers may repeat, as in Hedera)."""
    out = []
    for h in hosts:
        dst = rng.choice([o for o in hosts if o != h])
        out.append((h, dst))
    return out


def staggered_name(edge_p: float, pod_p: float) -> str:
    return "stag_%g_%g" % (edge_p, pod_p)


def hedera_patterns(k: int = K, seed: int = SEED) -> Dict[str, List[Pair]]:
    """name -> [(src, dst)] for every pattern, one flow per host; deterministic for (k, seed)."""
    spec = fat_tree(k, LINK_MBPS)
    hosts = spec.host_names()
    out: Dict[str, List[Pair]] = {}
    stride = 1
    while stride < len(hosts):
        out["stride%d" % stride] = stride_pattern(hosts, stride)
        stride *= 2
    for edge_p, pod_p in STAGGERED:
        name = staggered_name(edge_p, pod_p)
        out[name] = staggered_pattern(spec, random.Random("%d:%s" % (seed, name)), edge_p, pod_p)
    out["random"] = random_pattern(hosts, random.Random("%d:random" % seed))
    return out


def select_patterns(patterns: Mapping[str, List[Pair]], quick: bool) -> Dict[str, List[Pair]]:
    """All patterns, or the quick subset (stride-8, one staggered, random: about 5 minutes for 4 labs)."""
    if not quick:
        return dict(patterns)
    return {name: patterns[name] for name in QUICK_PATTERNS if name in patterns}


# --------------------------------------------------------------------------
# flows, timing, parsing, table (pure)
# --------------------------------------------------------------------------
@dataclass(frozen=True)
class FlowPlan:
    index: int
    src: str
    dst: str
    server_port: int
    client_port: int


def plan_flows(pattern_index: int, pairs: Sequence[Pair]) -> List[FlowPlan]:
    """Ports per flow: distinct within the run, fixed for a pattern so every policy sees the same 5-tuples."""
    if len(pairs) > PORT_STRIDE:
        raise ValueError("at most %d flows per pattern" % PORT_STRIDE)
    base = PORT_STRIDE * pattern_index
    return [FlowPlan(i, s, d, SERVER_PORT_BASE + base + i, CLIENT_PORT_BASE + base + i)
            for i, (s, d) in enumerate(pairs)]


@dataclass(frozen=True)
class Timing:
    duration_s: int   # each flow's whole life
    omit_s: int       # left out of the measurement (iperf3 -O)

    @property
    def measured_s(self) -> int:
        return self.duration_s - self.omit_s


def timing(quick: bool) -> Timing:
    return Timing(10, 3) if quick else Timing(16, 3)


def estimate_s(n_labs: int, n_patterns: int, t: Timing) -> float:
    """Rough wall time, printed before starting so nobody wonders whether it hangs."""
    return n_labs * (LAB_OVERHEAD_S + n_patterns * (t.duration_s + SETTLE_S + 3.0))


class IperfError(ValueError):
    """An iperf3 -J output without a receiver figure; the message is iperf3's own error if any."""


def parse_iperf3(text: str) -> float:
    """Receiver throughput (bit/s) of one iperf3 client run from its ``-J`` output."""
    try:
        data = json.loads(text)
    except ValueError:
        raise IperfError("not iperf3 JSON output: %r" % text[:200]) from None
    if not isinstance(data, dict):
        raise IperfError("not iperf3 JSON output: %r" % text[:200])
    if data.get("error"):
        raise IperfError("iperf3: %s" % data["error"])
    try:
        return float(data["end"]["sum_received"]["bits_per_second"])
    except (KeyError, TypeError, ValueError):
        raise IperfError("iperf3 output has no end.sum_received.bits_per_second") from None


def fractions(results: Mapping[str, Mapping[str, float]], reference: str = NONBLOCKING
              ) -> Dict[str, Dict[str, Optional[float]]]:
    """policy -> pattern -> aggregate / reference aggregate (None when the reference is missing or 0)."""
    ref = results.get(reference, {})
    out: Dict[str, Dict[str, Optional[float]]] = {}
    for policy, per in results.items():
        out[policy] = {}
        for pattern, bps in per.items():
            base = ref.get(pattern)
            out[policy][pattern] = bps / base if base else None
    return out


def mean_fraction(fracs: Mapping[str, Optional[float]]) -> Optional[float]:
    vals = [v for v in fracs.values() if v is not None]
    return sum(vals) / len(vals) if vals else None


def format_table(results: Mapping[str, Mapping[str, float]], policies: Sequence[str],
                 patterns: Sequence[str]) -> str:
    """Rows = patterns, columns = policies; each cell ``Mbit/s (fraction of nonblocking)``."""
    fr = fractions(results)
    width = 17
    head = "%-14s" % "pattern" + "".join("%*s" % (width, p) for p in policies)
    lines = [head, "-" * len(head)]
    for pattern in patterns:
        cells = []
        for p in policies:
            bps = results.get(p, {}).get(pattern)
            f = fr.get(p, {}).get(pattern)
            if bps is None:
                cells.append("%*s" % (width, "-"))
            else:
                cells.append("%*s" % (width, "%.1f (%s)" % (bps / 1e6, "%.2f" % f if f is not None else "-")))
        lines.append("%-14s" % pattern + "".join(cells))
    means = []
    for p in policies:
        m = mean_fraction({pat: fr.get(p, {}).get(pat) for pat in patterns})
        means.append("%*s" % (width, "%.2f" % m if m is not None else "-"))
    lines.append("%-14s" % "mean fraction" + "".join(means))
    return "\n".join(lines)


def format_footer(results: Mapping[str, Mapping[str, float]], policies: Sequence[str]) -> str:
    """Random-pattern fractions next to the published peer figures and Sidestep's goal."""
    fr = fractions(results)
    peers = ", ".join("%s %.0f%%" % (name, 100 * v) for name, v in PEER_RANDOM)
    ours = ", ".join("%s %s" % (p, "%.0f%%" % (100 * fr[p]["random"]) if fr.get(p, {}).get("random") is not None
                                else "-") for p in policies if p != NONBLOCKING)
    return ("random pattern, fraction of non-blocking: here %s\n"
            "published peer figures (Ryu apps in Mininet): %s; Sidestep's goal: >= %.0f%%"
            % (ours or "-", peers, 100 * GOAL))


# --------------------------------------------------------------------------
# the lab (needs root; run by the lead)
# --------------------------------------------------------------------------
def _listening(host, ports: Sequence[int]) -> bool:
    out = host.cmd("ss -ltnH")
    return all(":%d " % p in out for p in ports)


def run_pattern(lab: Lab, flows: Sequence[FlowPlan], run_dir: str, t: Timing) -> List[Dict[str, object]]:
    """One pattern in a running lab: 16 servers, then 16 clients together; per-flow results."""
    from mininet_topos.lab import LabError, wait_for
    from mininet_topos.live import _terminate

    os.makedirs(run_dir, exist_ok=True)
    log = open(os.path.join(run_dir, "iperf3.txt"), "ab")
    servers: List[subprocess.Popen] = []
    clients: List[subprocess.Popen] = []
    outs: List[str] = []
    try:
        by_dst: Dict[str, List[int]] = {}
        for f in flows:
            servers.append(lab.popen(f.dst, ["iperf3", "-s", "-1", "-p", str(f.server_port)],
                                     stdout=log, stderr=subprocess.STDOUT))
            by_dst.setdefault(f.dst, []).append(f.server_port)
        for dst, ports in by_dst.items():
            host = lab.host(dst)
            wait_for(lambda: _listening(host, ports), 15, "iperf3 servers on %s ports %s" % (dst, ports))
        for f in flows:
            path = os.path.join(run_dir, "flow%02d-%s-%s.json" % (f.index, f.src, f.dst))
            outs.append(path)
            with open(path, "wb") as handle:
                cmd = ["iperf3", "-c", lab.host(f.dst).IP(), "-p", str(f.server_port), "--cport",
                       str(f.client_port), "-t", str(t.measured_s), "-O", str(t.omit_s), "-J"]
                clients.append(lab.popen(f.src, cmd, stdout=handle, stderr=log))
        deadline = time.monotonic() + t.duration_s + 30
        for p in clients:
            try:
                p.wait(timeout=max(1.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                raise LabError("iperf3 clients still running %d s after their %d s test; see %s"
                               % (30, t.duration_s, run_dir)) from None
    finally:
        _terminate(clients + servers)
        log.close()
    rows: List[Dict[str, object]] = []
    for f, path in zip(flows, outs):
        with open(path, "r", errors="replace") as handle:
            text = handle.read()
        try:
            bps, err = parse_iperf3(text), None
        except IperfError as exc:
            bps, err = 0.0, str(exc)
        rows.append({"src": f.src, "dst": f.dst, "server_port": f.server_port, "client_port": f.client_port,
                     "bps": bps, "error": err})
    return rows


def controller_overrides(policy: str, hosts: Sequence[str], model: Optional[str],
                         link_mbps: float = LINK_MBPS) -> Dict[str, object]:
    """Controller config for one run: every host one training job, so the planner may move every flow."""
    over: Dict[str, object] = {"policy": policy, "poll_interval": 1.0, "record_flush_s": 1.0,
                               "link_mbps": link_mbps, "training": {"host_groups": [list(hosts)]}}
    if model:
        over["model"] = os.path.abspath(model)
    return over


def run_policy(policy: str, patterns: Mapping[str, List[Pair]], out_dir: str, t: Timing, *,
               ofp_port: int, model: Optional[str], link_mbps: float = LINK_MBPS) -> Dict[str, Dict[str, object]]:
    """One fresh lab for ``policy`` (``nonblocking`` = big switch + ecmp); every pattern in it."""
    from mininet_topos.lab import ControllerProcess, Lab

    big = policy == NONBLOCKING
    ctrl_policy = "ecmp" if big else policy
    os.makedirs(out_dir, exist_ok=True)
    hosts = fat_tree(K, LINK_MBPS).host_names()
    ctrl = ControllerProcess(out_dir, ofp_port=ofp_port, record=os.path.join(out_dir, "loads.csv"),
                             overrides=controller_overrides(ctrl_policy, hosts, model, link_mbps),
                             name="controller")
    results: Dict[str, Dict[str, object]] = {}
    with Lab(k=K, bw_mbps=link_mbps, out_dir=out_dir, ofp_port=ofp_port, controller=ctrl, big_switch=big) as lab:
        all_names = list(hedera_patterns(K, SEED))
        for name, pairs in patterns.items():
            index = all_names.index(name)  # ports depend on the pattern, not on the quick selection
            before = ctrl.get("/health")
            print("sidestep lab: hedera %s, pattern %s (%d s) ..." % (policy, name, t.duration_s), file=sys.stderr)
            rows = run_pattern(lab, plan_flows(index, pairs), os.path.join(out_dir, name), t)
            after = ctrl.get("/health")
            results[name] = {"aggregate_bps": sum(float(r["bps"]) for r in rows),
                             "failed_flows": sum(1 for r in rows if r["error"]),
                             "reroutes": int(after["reroutes_total"]) - int(before["reroutes_total"]),
                             "flows": rows}
            time.sleep(SETTLE_S)  # lab pacing between patterns, not a test synchronisation
    return results


def run_hedera(out: str, policies: Sequence[str], *, ofp_port: int = 6653, model: Optional[str] = None,
               quick: bool = False, seed: int = SEED, link_mbps: float = LINK_MBPS) -> int:
    """The whole protocol: nonblocking first, then each policy; writes out/hedera/{summary.json,table.txt}."""
    t = timing(quick)
    patterns = select_patterns(hedera_patterns(K, seed), quick)
    runs = [NONBLOCKING] + [p for p in policies if p != NONBLOCKING]
    root = os.path.join(out, "hedera")
    os.makedirs(root, exist_ok=True)
    print("sidestep lab: Hedera protocol, %d labs x %d patterns x %d s (about %.0f min)"
          % (len(runs), len(patterns), t.duration_s, estimate_s(len(runs), len(patterns), t) / 60), file=sys.stderr)
    started = time.time()
    per_policy: Dict[str, Dict[str, Dict[str, object]]] = {}
    aggregates: Dict[str, Dict[str, float]] = {}
    summary: Dict[str, object] = {
        "protocol": "hedera", "k": K, "link_mbps": link_mbps, "seed": seed, "quick": bool(quick),
        "duration_s": t.duration_s, "omit_s": t.omit_s, "measured_s": t.measured_s,
        "patterns": {n: [list(p) for p in pairs] for n, pairs in patterns.items()},
        "peer_random_fraction": dict(PEER_RANDOM), "goal_fraction": GOAL, "policies": per_policy,
    }

    def write() -> str:
        fr = fractions(aggregates)
        for pol, per in per_policy.items():
            for pat, cell in per.items():
                cell["fraction_of_nonblocking"] = fr.get(pol, {}).get(pat)
        summary["elapsed_s"] = time.time() - started
        table = format_table(aggregates, [r for r in runs if r in aggregates], list(patterns))
        table += "\n\n" + format_footer(aggregates, [r for r in runs if r in aggregates])
        summary["table"] = table
        with open(os.path.join(root, "summary.json"), "w") as handle:
            json.dump(summary, handle, indent=1)
        with open(os.path.join(root, "table.txt"), "w") as handle:
            handle.write(table + "\n")
        return table

    for policy in runs:
        per_policy[policy] = run_policy(policy, patterns, os.path.join(root, policy), t,
                                        ofp_port=ofp_port, model=model, link_mbps=link_mbps)
        aggregates[policy] = {n: float(c["aggregate_bps"]) for n, c in per_policy[policy].items()}
        write()  # partial results survive a later failure
    table = write()
    print(table)
    failed = sum(int(c["failed_flows"]) for per in per_policy.values() for c in per.values())
    print("\nsidestep lab: Hedera protocol done in %.0f s; per-flow iperf3 outputs, controller logs and "
          "link loads are in %s" % (time.time() - started, root))
    if failed:
        print("sidestep lab: error: %d iperf3 flows failed (counted as 0 bit/s); see the 'error' fields "
              "in %s" % (failed, os.path.join(root, "summary.json")), file=sys.stderr)
        return 1
    return 0
