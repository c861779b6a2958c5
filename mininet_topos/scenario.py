"""Lab scenarios as plain data: which hosts train, which ports they use, where the hotspots go.

Pure (no Mininet): the same ECMP hash the controller uses tells us, before
the lab starts, which core each training connection will take, so the
hotspot flows can be aimed at exactly those links.  That makes the "ECMP
collision" reproducible instead of a matter of luck.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Dict, List, Optional, Sequence, Set, Tuple

from controller.ecmp import PROTO_TCP, FiveTuple, ecmp_choice
from controller.fabric import Fabric, path_links
from mininet_topos.fattree_spec import FatTreeSpec, fat_tree

TRAIN_LISTEN_BASE = 7000
TRAIN_SRC_BASE = 47000
BG_DST_BASE = 5201
BURST_DST_BASE = 6001


class ScenarioError(ValueError):
    """A scenario that cannot be built; the message names the choice and the fix."""


@dataclass(frozen=True)
class TrainingJob:
    hosts: Tuple[str, ...]
    iterations: int
    message_bytes: int
    compute_s: float
    warmup: int

    def connections(self) -> List[FiveTuple]:
        """One long-lived TCP connection per ring hop: rank r -> rank r+1."""
        n = len(self.hosts)
        return [FiveTuple(self.hosts[r], self.hosts[(r + 1) % n], PROTO_TCP, TRAIN_SRC_BASE + r,
                          TRAIN_LISTEN_BASE + (r + 1) % n) for r in range(n)]


@dataclass(frozen=True)
class BackgroundFlow:
    """A long TCP flow (iperf3) or a periodic on/off burst sender aimed at one training hop."""

    five: FiveTuple
    kind: str                 # "long" | "burst"
    target: FiveTuple         # the training connection it collides with under ECMP
    shared_links: Tuple[Tuple[str, str], ...]
    on_s: float = 0.0
    off_s: float = 0.0
    rate_mbps: float = 0.0


@dataclass(frozen=True)
class Scenario:
    name: str
    k: int
    bw_mbps: float
    job: TrainingJob
    background: Tuple[BackgroundFlow, ...] = ()
    description: str = ""


SCENARIOS = ("hotspot", "bursts", "none")
NO_COLLISION = "no collision"


def _host(spec: FatTreeSpec, pod: int, edge: int, port: int) -> str:
    half = spec.k // 2
    return "h%d" % (pod * half * half + edge * half + port + 1)


def find_colliding_port(fabric: Fabric, src: str, dst: str, dst_port: int, target_path: Sequence[str],
                        start: int = 50000, tries: int = 4000) -> Tuple[int, Tuple[Tuple[str, str], ...]]:
    """A source port whose ECMP path from src to dst shares the target's core links."""
    core_links = {l for l in path_links(target_path) if fabric.is_switch(l[0]) and fabric.is_switch(l[1])
                  and not (l[0].startswith("e") or l[1].startswith("e"))}
    paths = fabric.paths(src, dst)
    for sport in range(start, start + tries):
        path = ecmp_choice(FiveTuple(src, dst, PROTO_TCP, sport, dst_port), paths)
        shared = tuple(sorted(core_links & set(path_links(path))))
        if len(shared) >= 2:
            return sport, shared
    raise ScenarioError("no source port in %d..%d makes %s->%s collide with %s"
                        % (start, start + tries, src, dst, "->".join(target_path)))


def build_scenario(name: str = "hotspot", *, k: int = 4, bw_mbps: float = 10.0, iterations: int = 12,
                   message_bytes: int = 1_000_000, compute_s: float = 0.5, warmup: int = 2,
                   burst_on_s: float = 3.0, burst_off_s: float = 3.0) -> Scenario:
    """The lab's training job plus hotspots aimed at it.

    * ``hotspot``: a long iperf3 flow on the same core links as two of the
      ring's hops (they collide under ECMP by construction), plus periodic
      on/off bursts (another job's all-reduce) on a third hop.
    * ``bursts``: only the periodic bursts, on every hop.
    * ``none``: the job alone (the no-hotspot reference).
    """
    if name not in SCENARIOS:
        raise ScenarioError("unknown scenario %r; choose one of %s" % (name, ", ".join(SCENARIOS)))
    if k != 4:
        raise ScenarioError("the lab scenarios are laid out for k=4, got k=%d" % k)
    spec = fat_tree(k, bw_mbps)
    fabric = Fabric.from_spec(spec)
    # one worker per pod, on each pod's first edge switch
    hosts = tuple(_host(spec, pod, 0, 0) for pod in range(k))
    job = TrainingJob(hosts, iterations, message_bytes, compute_s, warmup)
    background: List[BackgroundFlow] = []
    if name == "none":
        return Scenario(name, k, bw_mbps, job, (), "the training job alone")
    conns = job.connections()
    for i, conn in enumerate(conns):
        target = ecmp_choice(conn, fabric.paths(conn.src, conn.dst))
        src_pod = spec.pod_of_host(conn.src)
        dst_pod = spec.pod_of_host(conn.dst)
        # background from the pod's second edge switch, so it shares only fabric links
        bsrc = _host(spec, src_pod, 1, i % (k // 2))
        bdst = _host(spec, dst_pod, 1, (i + 1) % (k // 2))
        if name == "hotspot" and i < 2:
            dport = BG_DST_BASE + i
            sport, shared = find_colliding_port(fabric, bsrc, bdst, dport, target, start=50000 + 100 * i)
            background.append(BackgroundFlow(FiveTuple(bsrc, bdst, PROTO_TCP, sport, dport), "long",
                                             conn, shared))
        elif name == "bursts" or i == 2:
            dport = BURST_DST_BASE + i
            sport, shared = find_colliding_port(fabric, bsrc, bdst, dport, target, start=52000 + 100 * i)
            background.append(BackgroundFlow(FiveTuple(bsrc, bdst, PROTO_TCP, sport, dport), "burst",
                                             conn, shared, burst_on_s, burst_off_s, bw_mbps))
    desc = {"hotspot": "long iperf3 flows collide with two ring hops, periodic bursts with a third",
            "bursts": "periodic on/off bursts collide with every ring hop"}[name]
    return Scenario(name, k, bw_mbps, job, tuple(background), desc)


def ecmp_links(fabric: Fabric, five: FiveTuple) -> Set[Tuple[str, str]]:
    """The directed links ECMP gives ``five`` on the fabric with every cable up."""
    return set(path_links(ecmp_choice(five, fabric.paths(five.src, five.dst))))


def without_collisions(scenario: Scenario, start: int = 40000, tries: int = 4000) -> Scenario:
    """``scenario`` with each background flow on a source port whose ECMP path avoids the ring.

    Why: a hotspot scenario's background traffic costs the job something even
    where it shares no link with it (on the lab's userspace datapath every
    packet costs CPU on the same two cores).  The same traffic placed clear of
    the ring (its data and its ACKs) and of the other background flows is the
    best any placement could do here: the lab's counterpart of replay's
    ``ideal``.  The background's own ACKs go where ECMP puts them, as they do
    under every policy.  Ports are searched in order, so the result is the
    same every time.
    """
    if not scenario.background:
        raise ScenarioError("scenario %r has no background traffic to place" % scenario.name)
    fabric = Fabric.from_spec(fat_tree(scenario.k, scenario.bw_mbps))
    used: Set[Tuple[str, str]] = set()
    for conn in scenario.job.connections():
        used |= ecmp_links(fabric, conn) | ecmp_links(fabric, conn.reverse())
    placed: List[BackgroundFlow] = []
    for bg in scenario.background:
        for sport in range(start, start + tries):
            five = FiveTuple(bg.five.src, bg.five.dst, bg.five.proto, sport, bg.five.dst_port)
            links = ecmp_links(fabric, five)
            if not links & used:
                break
        else:
            raise ScenarioError("no source port in %d..%d puts %s->%s clear of the ring and the other "
                                "background flows" % (start, start + tries, bg.five.src, bg.five.dst))
        used |= links
        placed.append(replace(bg, five=five, shared_links=()))
    return replace(scenario, name=scenario.name + "-clear", background=tuple(placed),
                   description=scenario.description + "; here on paths clear of the ring")
