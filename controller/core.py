"""The controller's decisions, as plain data in and plain commands out.

``controller/app.py`` turns OpenFlow events into calls on ``ControllerCore``
and executes the commands it returns; nothing here imports OS-Ken or Ryu,
opens a socket or reads a clock.  That keeps discovery, host learning, ARP,
ECMP forwarding and re-pinning testable with plain data, and identical under
``ryu-manager``, ``osken-manager`` and ``sidestep controller``.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Set, Tuple, Union

from controller.ecmp import PROTO_TCP, PROTO_UDP, FiveTuple, ecmp_choice
from controller.fabric import Fabric, FabricError, Link, Path, path_links
from controller.rules import (COOKIE_TAG_MASK, PRIORITY_CONTROL, RuleSpec, consistent_update, flow_match,
                              is_sidestep_cookie, make_cookie, path_rules)
from mininet_topos.fattree_spec import dpid_to_name, ip_to_host_name

LOG = logging.getLogger("sidestep.core")

ETH_TYPE_IP = 0x0800
ETH_TYPE_ARP = 0x0806
ETH_TYPE_LLDP = 0x88CC
ETH_TYPE_IPV6 = 0x86DD

PRIORITY_DROP_IPV6 = 50
DEMAND_DECAY_PER_POLL = 0.5    # an idle connection's remembered demand halves every poll


# ---------------------------------------------------------------- commands
@dataclass(frozen=True)
class InstallRule:
    dpid: int
    rule: RuleSpec
    flow_removed: bool = False


@dataclass(frozen=True)
class ControlRule:
    """A rule with a non-forwarding action: ``controller`` or ``drop``."""

    dpid: int
    match: Tuple[Tuple[str, object], ...]
    priority: int
    action: str  # "controller" | "drop"


@dataclass(frozen=True)
class DeleteRules:
    dpid: int
    cookie: int
    cookie_mask: int
    match: Tuple[Tuple[str, object], ...] = ()


@dataclass(frozen=True)
class PacketOut:
    dpid: int
    ports: Tuple[int, ...]
    data: bytes
    in_port: Optional[int] = None


@dataclass(frozen=True)
class ArpReply:
    """Answer an ARP request from the host table: the app builds the frame."""

    dpid: int
    port: int
    src_mac: str
    src_ip: str
    dst_mac: str
    dst_ip: str


@dataclass(frozen=True)
class SendLldp:
    dpid: int
    port: int


@dataclass(frozen=True)
class PathUpdate:
    """A consistent path change: the app runs ``ops`` in order, waiting for each barrier.

    ``ops`` come from ``rules.consistent_update``: adds egress-first with a
    barrier after each switch (ingress last), then deletes of old-only rules
    after their drain delay.
    """

    flow: FiveTuple
    ops: Tuple[object, ...]
    ingress: str
    dpids: Tuple[Tuple[str, int], ...]

    def dpid(self, switch: str) -> Optional[int]:
        return dict(self.dpids).get(switch)


Command = Union[InstallRule, ControlRule, DeleteRules, PacketOut, ArpReply, SendLldp, PathUpdate]


# ---------------------------------------------------------------- state
@dataclass
class SwitchState:
    dpid: int
    name: str
    connected_at: float
    ports: Dict[int, bool] = field(default_factory=dict)  # port -> up
    connected: bool = True


@dataclass
class HostEntry:
    name: str
    ip: str
    mac: str
    switch: str
    port: int


@dataclass
class InstalledFlow:
    flow_id: str
    five: FiveTuple
    path: Path
    version: int
    since_s: float
    cls: str = "background"
    rate_bps: float = 0.0        # measured from flow stats
    demand_bps: float = 0.0      # highest recent rate: what the planner places
    last_bytes: Optional[int] = None
    last_seen_s: Optional[float] = None
    last_cookie: Optional[int] = None  # the rule version ``last_bytes``/``last_seen_s`` were read from
    moves: int = 0
    last_move_s: Optional[float] = None
    # chosen while some switch was still being discovered: ECMP may have picked from part of its paths
    provisional: bool = False


@dataclass(frozen=True)
class PacketInfo:
    """What the app parsed out of a packet-in (only the fields we decide on)."""

    eth_type: int
    eth_src: str
    eth_dst: str
    data: bytes
    arp_op: Optional[int] = None
    arp_spa: Optional[str] = None
    arp_tpa: Optional[str] = None
    arp_sha: Optional[str] = None
    ipv4_src: Optional[str] = None
    ipv4_dst: Optional[str] = None
    ip_proto: Optional[int] = None
    src_port: int = 0
    dst_port: int = 0
    lldp_dpid: Optional[int] = None
    lldp_port: Optional[int] = None


@dataclass
class CoreCounters:
    packet_in: int = 0
    packet_in_lldp: int = 0
    packet_in_arp: int = 0
    packet_in_ip: int = 0
    arp_replies: int = 0
    arp_floods: int = 0
    flows_installed: int = 0
    reroutes: int = 0
    dropped_unknown_dst: int = 0
    rules_rewritten: int = 0


MAX_PINS = 65536
"""Pins kept for connections that are gone (a live connection's pin is never dropped)."""


class ControllerCore:
    """Discovery, host table, ARP and per-flow ECMP paths for one fabric.

    ``capacity_bps(a, b)`` says what each discovered link can carry: capacity
    comes from the configured fabric description, never from the switch.
    """

    def __init__(self, capacity_bps: Callable[[str, str], float], *, lldp_interval_s: float = 1.0,
                 link_timeout_s: Optional[float] = None, idle_timeout_s: int = 60,
                 classify: Optional[Callable[[FiveTuple], str]] = None, drain_s: float = 2.0,
                 failover: Optional[Callable[[Link], Mapping[FiveTuple, Path]]] = None) -> None:
        self.fabric = Fabric()
        # failover(cable) -> {five: path}: where to put flows of a failed cable (the runtime's
        # planner placement); flows it leaves out take ECMP's choice over the surviving paths
        self.failover = failover
        self.capacity_for = capacity_bps
        self.lldp_interval_s = lldp_interval_s
        self.link_timeout_s = link_timeout_s if link_timeout_s is not None else max(10.0, 10 * lldp_interval_s)
        self.idle_timeout_s = idle_timeout_s
        self.drain_s = drain_s
        self.classify = classify
        self.switches: Dict[int, SwitchState] = {}
        self.hosts: Dict[str, HostEntry] = {}          # host name -> entry
        self.hosts_by_ip: Dict[str, str] = {}
        self.link_seen: Dict[Link, float] = {}          # switch->switch, last LLDP time
        self.flows: Dict[FiveTuple, InstalledFlow] = {}
        self.pins: Dict[FiveTuple, Path] = {}            # planner decisions outlive rule timeouts
        self.counters = CoreCounters()
        self._next_lldp_s = 0.0
        self._newest_lldp_s = 0.0
        self._flow_seq = 0
        self._provisional: Set[FiveTuple] = set()   # flows placed before discovery settled

    # ---------------------------------------------------------- switches
    def name_of(self, dpid: int) -> str:
        return dpid_to_name(dpid)

    def dpid_of(self, name: str) -> Optional[int]:
        return self.fabric.dpid(name) if self.fabric.is_switch(name) else None

    def switch_connected(self, dpid: int, now_s: float) -> List[Command]:
        """A switch said hello: reset its control rules and start probing it."""
        name = self.name_of(dpid)
        state = self.switches.get(dpid)
        if state is None:
            state = SwitchState(dpid, name, now_s)
            self.switches[dpid] = state
        state.connected = True
        state.connected_at = now_s
        if not self.fabric.is_switch(name):
            self.fabric.add_switch(name, dpid=dpid)
        # Flows through this switch may have lost rules: let them be re-learned.
        for five, flow in list(self.flows.items()):
            if name in flow.path:
                del self.flows[five]
        cmds: List[Command] = [
            DeleteRules(dpid, 0, 0),
            ControlRule(dpid, (), 0, "controller"),
            ControlRule(dpid, (("eth_type", ETH_TYPE_LLDP),), PRIORITY_CONTROL, "controller"),
            ControlRule(dpid, (("eth_type", ETH_TYPE_ARP),), PRIORITY_CONTROL, "controller"),
            ControlRule(dpid, (("eth_type", ETH_TYPE_IPV6),), PRIORITY_DROP_IPV6, "drop"),
        ]
        return cmds

    def ports_described(self, dpid: int, ports: Iterable[Tuple[int, bool]], now_s: float) -> List[Command]:
        state = self.switches.get(dpid)
        if state is None:
            return []
        state.ports = {int(p): bool(up) for p, up in ports if 0 < int(p) < 0xFFFFFF00}
        return [SendLldp(dpid, p) for p, up in sorted(state.ports.items()) if up]

    def switch_disconnected(self, dpid: int, now_s: float) -> List[Command]:
        """A switch's control channel closed: treat it as every one of its cables failing.

        Why: with no channel its rules cannot be managed and its data plane may
        be dead, so traffic through it must move now, not when LLDP times out.
        """
        state = self.switches.get(dpid)
        if state is None:
            return []
        state.connected = False
        name = state.name
        for link in [l for l in self.link_seen if name in l]:
            del self.link_seen[link]
        # Flows from or to its own hosts have no other path: forgotten, re-learned when it is back.
        for five, flow in list(self.flows.items()):
            if name in (flow.path[1], flow.path[-2]):
                del self.flows[five]
        cmds: List[Command] = []
        if self.fabric.is_switch(name):
            # Its rules can no longer be managed and its data plane may be dead: every other flow
            # through it moves as if all its cables had failed at once (they come back with LLDP
            # when it reconnects).  Forgetting them instead left the rules upstream sending a
            # long-lived connection into it for good: its traffic kept them from idling out.
            nbrs = [n for n in self.fabric.graph.neighbors(name) if self.fabric.is_switch(n)]
            for nbr in nbrs:
                self.fabric.set_link_up(name, nbr, False)
            for nbr in nbrs:
                cmds.extend(self.link_down(name, nbr, now_s))
        return cmds

    def connected_switches(self) -> List[int]:
        return sorted(d for d, s in self.switches.items() if s.connected)

    # ---------------------------------------------------------- discovery
    def lldp_due(self, now_s: float) -> List[Command]:
        """Probe every up port of every connected switch every ``lldp_interval_s``."""
        cmds: List[Command] = []
        if now_s >= self._next_lldp_s:
            self._next_lldp_s = now_s + self.lldp_interval_s
            for dpid in self.connected_switches():
                for port, up in sorted(self.switches[dpid].ports.items()):
                    if up:
                        cmds.append(SendLldp(dpid, port))
        cmds.extend(self._expire_links(now_s))
        cmds.extend(self._rehash_provisional(now_s))
        return cmds

    def _rehash_provisional(self, now_s: float) -> List[Command]:
        """Once discovery has settled, move flows placed before it to ECMP's choice over every path.

        Why: a switch that (re)connects gets its links back one LLDP reply at a
        time, and its hosts' packets reach the controller meanwhile.  A flow
        placed between the first uplink's reply and the last took ECMP's pick
        among the paths known then, and kept it for as long as it sent: after a
        switch's reconnect its connections came back on other paths than before,
        all crowded onto the uplinks found first.  Pinned flows keep their pins.
        """
        if not self._provisional:
            return []
        if not self.settled(now_s):
            if len(self._provisional) > 2 * len(self.flows) + 64:
                # a switch that keeps flapping keeps discovery from settling: drop the gone flows
                self._provisional = {five for five in self._provisional if five in self.flows}
            return []
        pending, self._provisional = self._provisional, set()
        cmds: List[Command] = []
        for five in sorted(pending):
            flow = self.flows.get(five)
            if flow is None or not flow.provisional:
                continue  # forgotten or replaced since
            flow.provisional = False
            if five in self.pins:
                continue
            try:
                path = self.choose_path(five)
            except FabricError:
                continue  # no path now: its next packet-in says so
            if tuple(path) != tuple(flow.path):
                LOG.info("discovery settled: moving %s to %s", five.key(), "->".join(path))
                cmds.extend(self._move_unpinned(five, path, now_s))
        return cmds

    def _expire_links(self, now_s: float) -> List[Command]:
        """Remove links whose LLDP stopped while LLDP from other links kept arriving.

        Measured against the newest LLDP processed, not the clock: when the
        controller falls behind (a packet-in storm), every probe is late and
        no link is wrongly declared dead.  Real failures arrive sooner as port
        status messages.
        """
        cmds: List[Command] = []
        newest = self._newest_lldp_s
        stale = [l for l, t in self.link_seen.items() if newest - t > self.link_timeout_s]
        for a, b in stale:
            del self.link_seen[(a, b)]
            if (b, a) in self.link_seen:
                continue  # the other direction still answers
            if self.fabric.graph.has_edge(a, b):
                LOG.warning("link %s-%s: no LLDP for %.1f s, removing it", a, b, self.link_timeout_s)
                cmds.extend(self.link_down(a, b, now_s))
                self.fabric.remove_link(a, b)
        return cmds

    def lldp_received(self, dpid: int, in_port: int, src_dpid: int, src_port: int,
                      now_s: float) -> List[Command]:
        """One of our LLDP probes came back: the cable ``src`` -> ``dpid`` exists and is up.

        Why LLDP and not the configured topology alone: the fabric the planner
        routes on must be the one that is cabled, and a cable that comes back
        after a failure is only trusted once a probe has crossed it.
        """
        if src_dpid not in self.switches or dpid not in self.switches:
            return []
        a, b = self.name_of(src_dpid), self.name_of(dpid)
        self.link_seen[(a, b)] = now_s
        self._newest_lldp_s = max(self._newest_lldp_s, now_s)
        cmds: List[Command] = []
        # A host entry learned on this port before discovery settled was wrong.
        for host in [h for h in self.hosts.values() if (h.switch, h.port) in ((a, src_port), (b, in_port))]:
            LOG.warning("port %s:%d is a switch link; forgetting host %s learned there",
                        host.switch, host.port, host.name)
            cmds.extend(self._forget_host(host.name))
        if self.fabric.graph.has_edge(a, b) and self.fabric.port(a, b) == src_port \
                and self.fabric.port(b, a) == in_port:
            if not self.fabric.is_up(a, b):
                self.fabric.set_link_up(a, b, True)
            return cmds
        LOG.info("link discovered: %s:%d <-> %s:%d", a, src_port, b, in_port)
        self.fabric.add_link(a, src_port, b, in_port, self.capacity_for(a, b))
        return cmds

    def _is_switch_port(self, switch: str, port: int) -> bool:
        nbr = self.fabric.neighbor(switch, port)
        return nbr is not None and self.fabric.is_switch(nbr)

    def host_facing_ports(self, dpid: int, now_s: float) -> List[int]:
        """Ports that may face hosts: up, no LLDP neighbour, and discovery settled.

        Until a switch has been up for two LLDP rounds we cannot tell its
        host ports from its fabric ports, so we flood nothing there: flooding
        over a fat-tree's loops is a broadcast storm.
        """
        state = self.switches.get(dpid)
        if state is None or not state.connected:
            return []
        if now_s - state.connected_at < 2.5 * self.lldp_interval_s:
            return []
        return [p for p, up in sorted(state.ports.items())
                if up and not self._is_switch_port(state.name, p)]

    def settled(self, now_s: float) -> bool:
        return all(now_s - s.connected_at >= 2.5 * self.lldp_interval_s
                   for s in self.switches.values() if s.connected)

    # ---------------------------------------------------------- hosts
    def _learn_host(self, switch: str, port: int, ip: Optional[str], mac: str,
                    now_s: float) -> List[Command]:
        """Learn (or re-learn) a host from its ARP; returns the deletes of a moved host's old rules."""
        if not ip or ip == "0.0.0.0":
            return []
        dpid = self.dpid_of(switch)
        state = self.switches.get(dpid) if dpid is not None else None
        if state is None or self._is_switch_port(switch, port):
            return []
        if now_s - state.connected_at < 2.5 * self.lldp_interval_s:
            return []  # cannot yet tell host ports from fabric ports
        name = ip_to_host_name(ip)
        old = self.hosts.get(name)
        if old is not None and (old.switch, old.port, old.mac) == (switch, port, mac):
            if not self.fabric.is_up(name, switch):      # it speaks, so its cable is up
                self.fabric.set_link_up(name, switch, True)
            return []
        cmds: List[Command] = []
        if old is not None:
            LOG.info("host %s moved from %s:%d to %s:%d", name, old.switch, old.port, switch, port)
            cmds = self._forget_host(name)
        self.hosts[name] = HostEntry(name, ip, mac, switch, port)
        self.hosts_by_ip[ip] = name
        self.fabric.add_host(name, ip=ip, mac=mac)
        self.fabric.add_link(name, 0, switch, port, self.capacity_for(name, switch))
        LOG.info("host learned: %s ip=%s mac=%s at %s:%d", name, ip, mac, switch, port)
        return cmds

    def _forget_host(self, name: str) -> List[Command]:
        """Forget a host and its connections, and delete their rules.

        Why the deletes: the old rules keep matching the connections' packets
        (toward where the host was), and the traffic keeps them from idling
        out, so without the deletes the moved host would never be reached.
        """
        entry = self.hosts.pop(name, None)
        if entry is None:
            return []
        self.hosts_by_ip.pop(entry.ip, None)
        cmds: List[Command] = []
        for five in [f for f in self.flows if name in (f.src, f.dst)]:
            cmds.extend(self._delete_rules_of(self.flows.pop(five)))
        self.fabric.remove_node(name)
        return cmds

    def _delete_rules_of(self, flow: InstalledFlow) -> List[Command]:
        """Delete every version of ``flow``'s rules on the connected switches of its path."""
        try:
            match = flow_match(self.fabric, flow.five)
        except FabricError:
            return []
        cookie = make_cookie(flow.five, 0) & ~(0xFFFF << 32)      # the tag and the 5-tuple's hash
        mask = COOKIE_TAG_MASK | 0xFFFFFFFF                         # any path version
        cmds: List[Command] = []
        for sw in flow.path[1:-1]:
            dpid = self.dpid_of(sw)
            if dpid is not None and dpid in self.switches and self.switches[dpid].connected:
                cmds.append(DeleteRules(dpid, cookie, mask, match))
        return cmds

    # ---------------------------------------------------------- packet-in
    def packet_in(self, dpid: int, in_port: int, pkt: PacketInfo, now_s: float) -> List[Command]:
        """A packet no rule matched: LLDP (discovery), ARP (answered here, never flooded over the
        fabric) or the first IPv4 packet of a connection (routed: ECMP or its pin)."""
        self.counters.packet_in += 1
        state = self.switches.get(dpid)
        if state is None or not state.connected:
            return []
        if pkt.eth_type == ETH_TYPE_LLDP:
            self.counters.packet_in_lldp += 1
            if pkt.lldp_dpid is None or pkt.lldp_port is None:
                return []
            return self.lldp_received(dpid, in_port, pkt.lldp_dpid, pkt.lldp_port, now_s)
        if pkt.eth_type == ETH_TYPE_ARP:
            self.counters.packet_in_arp += 1
            return self._arp(state, in_port, pkt, now_s)
        if pkt.eth_type == ETH_TYPE_IP:
            self.counters.packet_in_ip += 1
            return self._ipv4(state, in_port, pkt, now_s)
        return []

    def _arp(self, state: SwitchState, in_port: int, pkt: PacketInfo, now_s: float) -> List[Command]:
        if self._is_switch_port(state.name, in_port):
            return []  # we never flood ARP over fabric links, so this is a stray copy
        cmds = self._learn_host(state.name, in_port, pkt.arp_spa, pkt.arp_sha or pkt.eth_src, now_s)
        if pkt.arp_op == 1:  # request
            target = self.hosts_by_ip.get(pkt.arp_tpa or "")
            if target is not None:
                entry = self.hosts[target]
                self.counters.arp_replies += 1
                return cmds + [ArpReply(state.dpid, in_port, entry.mac, entry.ip,
                                        pkt.arp_sha or pkt.eth_src, pkt.arp_spa or "")]
            return cmds + self._flood_to_hosts(pkt.data, state.dpid, in_port, now_s)
        if pkt.arp_op == 2:  # a host answered a request we flooded: deliver it
            target = self.hosts_by_ip.get(pkt.arp_tpa or "")
            if target is not None:
                entry = self.hosts[target]
                dpid = self.dpid_of(entry.switch)
                if dpid is not None:
                    return cmds + [PacketOut(dpid, (entry.port,), pkt.data)]
        return cmds

    def _flood_to_hosts(self, data: bytes, origin_dpid: int, origin_port: int, now_s: float) -> List[Command]:
        self.counters.arp_floods += 1
        cmds: List[Command] = []
        for dpid in self.connected_switches():
            ports = [p for p in self.host_facing_ports(dpid, now_s)
                     if not (dpid == origin_dpid and p == origin_port)]
            if ports:
                cmds.append(PacketOut(dpid, tuple(ports), data))
        return cmds

    def _ipv4(self, state: SwitchState, in_port: int, pkt: PacketInfo, now_s: float) -> List[Command]:
        src = self.hosts_by_ip.get(pkt.ipv4_src or "")
        dst = self.hosts_by_ip.get(pkt.ipv4_dst or "")
        # Hosts are learned from ARP only: every IPv4 sender has ARPed first, and
        # learning from IP would let one stray source address detach a real host.
        if src is None or dst is None:
            self.counters.dropped_unknown_dst += 1
            return []
        proto = pkt.ip_proto or 0
        ports = (pkt.src_port, pkt.dst_port) if proto in (PROTO_TCP, PROTO_UDP) else (0, 0)
        five = FiveTuple(src, dst, proto, ports[0], ports[1])
        flow = self.flows.get(five)
        cmds: List[Command] = []
        if flow is None or not self._path_ok(flow.path):
            try:
                flow, install = self._install_flow(five, now_s)
            except FabricError as exc:
                LOG.warning("no path for %s: %s", five.key(), exc)
                return []
            cmds.extend(install)
        # Send this packet on along the flow's path from where it is now.
        path = flow.path
        if not cmds and state.name in path[2:-1]:
            # A known flow reached the controller from a switch past its ingress: that switch has
            # lost its rule (a failed write, a barrier that timed out), and every later packet
            # would come here too.  Write it again.
            self.counters.rules_rewritten += 1
            for rule in path_rules(self.fabric, five, path, flow.version, idle_timeout=self.idle_timeout_s):
                if rule.switch == state.name:
                    cmds.append(InstallRule(state.dpid, rule, flow_removed=False))
        if state.name in path:
            i = path.index(state.name)
            cmds.append(PacketOut(state.dpid, (self.fabric.port(state.name, path[i + 1]),), pkt.data,
                                  in_port=in_port))
        return cmds

    def _path_ok(self, path: Path) -> bool:
        try:
            self.fabric.validate_path(path, path[0], path[-1])
        except FabricError:
            return False
        return all(self.dpid_of(n) is not None and self.switches[self.dpid_of(n)].connected
                   for n in path[1:-1])

    def choose_path(self, five: FiveTuple) -> Path:
        pinned = self.pins.get(five)
        if pinned is not None and self._path_ok(pinned):
            return pinned
        return ecmp_choice(five, self.fabric.paths(five.src, five.dst))

    def _install_flow(self, five: FiveTuple, now_s: float) -> Tuple[InstalledFlow, List[Command]]:
        path = self.choose_path(five)
        old = self.flows.get(five)
        version = (old.version + 1) if old is not None else 0
        self._flow_seq += 1
        cls = self.classify(five) if self.classify is not None else "background"
        flow = InstalledFlow("f%d" % self._flow_seq, five, path, version, now_s, cls,
                             provisional=not self.settled(now_s))
        if flow.provisional:
            self._provisional.add(five)
        self.flows[five] = flow
        self.counters.flows_installed += 1
        cmds: List[Command] = []
        rules = path_rules(self.fabric, five, path, version, idle_timeout=self.idle_timeout_s)
        for rule in rules:
            dpid = self.dpid_of(rule.switch)
            ingress = rule.switch == path[1]
            cmds.append(InstallRule(dpid, rule, flow_removed=ingress))
        return flow, cmds

    # ---------------------------------------------------------- flow lifecycle
    def flow_removed(self, dpid: int, cookie: int, match: Dict[str, object], timed_out: bool = True) -> None:
        """The ingress rule idled out: the connection is gone (its pin stays).

        Only a timeout of the flow's current ingress rule counts.  A rule this
        controller deleted (``timed_out`` False), or a rule of the same cookie
        left on another switch (a host that moved keeps the cookie: version 0
        both times), says nothing about the connection as it is now.
        """
        if not timed_out or not is_sidestep_cookie(cookie):
            return
        name = self.name_of(dpid)
        for five, flow in list(self.flows.items()):
            if make_cookie(five, flow.version) == cookie and flow.path[1] == name:
                del self.flows[five]
                return

    def flow_stats(self, dpid: int, entries: Sequence[Tuple[int, int, float]], now_s: float) -> None:
        """Per-flow byte counts from the ingress switch: (cookie, byte_count, duration_s).

        A rate comes from two readings of the same rule version.  A move
        replaces the ingress rule in place (``consistent_update``), and
        OpenFlow 1.3 restarts the replaced rule's duration while it copies its
        counters (unless OFPFF_RESET_COUNTS; Open vSwitch does both): a
        connection moved at the tick after its first reading then read as one
        poll's bytes over the difference of the two rules' ages, a fraction of
        a second (21.6 and 37.8 Mbit/s for 5 Mbit/s streams on 10 Mbit/s links
        in tests/integration; in a live Hedera run the planner saw a 4 Mbit/s
        link loaded 24.5 times over and moved flows off it).  The first reading
        of a new version only sets the baseline; the connection keeps its last
        rate until the next.
        A rule's own age gives a rate at its first reading only if the rule was
        added, not replaced: the connection has not moved.
        """
        by_cookie = {make_cookie(f.five, f.version): f for f in self.flows.values()}
        name = self.name_of(dpid)
        for cookie, nbytes, duration in entries:
            flow = by_cookie.get(cookie)
            if flow is None or flow.path[1] != name:
                continue
            rate = None
            if flow.last_bytes is not None and flow.last_seen_s is not None and flow.last_cookie == cookie \
                    and duration > flow.last_seen_s and nbytes >= flow.last_bytes:
                rate = (nbytes - flow.last_bytes) * 8.0 / (duration - flow.last_seen_s)
            elif flow.last_bytes is None and flow.moves == 0 and duration >= 0.5:
                # first sight of the connection's first rule: its own age gives a rate at once
                rate = nbytes * 8.0 / duration
            if rate is not None:
                flow.rate_bps = rate
                # Training bursts come and go: remember the burst rate through a
                # compute gap, but let a finished connection's load fade within seconds.
                flow.demand_bps = max(rate, flow.demand_bps * DEMAND_DECAY_PER_POLL)
            flow.last_bytes = nbytes
            flow.last_seen_s = duration
            flow.last_cookie = cookie

    # ---------------------------------------------------------- re-pinning
    def repin(self, five: FiveTuple, new_path: Path, now_s: float) -> List[Command]:
        """Pin a connection to ``new_path`` and, if it is live, move it without loss.

        The pin outlives the rules: the next burst of the same connection
        (after an idle timeout) is installed on the pinned path.
        """
        self.fabric.validate_path(new_path, five.src, five.dst)
        self._remember_pin(five, tuple(new_path))
        flow = self.flows.get(five)
        if flow is None or tuple(flow.path) == tuple(new_path):
            return []
        version = (flow.version + 1) & 0xFFFF
        ops = consistent_update(self.fabric, five, flow.path, new_path, version,
                                drain_s=self.drain_s, old_version=flow.version,
                                idle_timeout=self.idle_timeout_s)
        switches = set(flow.path[1:-1]) | set(new_path[1:-1])
        dpids = tuple(sorted((sw, self.dpid_of(sw)) for sw in switches))
        flow.path = tuple(new_path)
        flow.version = version
        flow.since_s = now_s            # REST's since_s: when this version was installed
        flow.moves += 1
        flow.last_move_s = now_s
        self.counters.reroutes += 1
        return [PathUpdate(five, tuple(ops), new_path[1], dpids)]

    def _move_unpinned(self, five: FiveTuple, new_path: Path, now_s: float) -> List[Command]:
        """``repin`` to ECMP's own pick, leaving no pin: once its rules idle out the connection is ECMP's again."""
        cmds = self.repin(five, new_path, now_s)
        self.pins.pop(five, None)
        return cmds

    def _remember_pin(self, five: FiveTuple, path: Path) -> None:
        """Keep ``five``'s pin, newest last; past ``MAX_PINS`` the oldest pins of gone connections go.

        Why a bound: a pin outlives its connection's rules (the next burst
        takes the pinned path), so with many short connections moved once each
        the pins grew for ever.  A dropped pin only means that connection, if
        it ever comes back, starts on ECMP's path and the planner judges it again.
        """
        self.pins.pop(five, None)
        self.pins[five] = path
        if len(self.pins) > MAX_PINS:
            for old in [f for f in self.pins if f not in self.flows][:len(self.pins) - MAX_PINS]:
                del self.pins[old]

    # ---------------------------------------------------------- port status
    def port_status(self, dpid: int, port: int, up: bool, now_s: float) -> List[Command]:
        """A port went up or down.  Down moves the cable's flows at once (``link_down``), so a
        failure costs one port-status message, not an LLDP timeout.  Up: a host cable is up again
        at once (hosts never answer LLDP); a switch cable when a probe, sent now, crosses it."""
        state = self.switches.get(dpid)
        if state is None:
            return []
        state.ports[port] = up
        nbr = self.fabric.neighbor(state.name, port)
        if nbr is None:
            return [SendLldp(dpid, port)] if up else []
        if up:
            # A switch link comes back when LLDP crosses it again; a host never answers LLDP,
            # so its cable is up again as soon as the port is (it stayed down for good before).
            if self.fabric.is_host(nbr) and not self.fabric.is_up(state.name, nbr):
                LOG.info("host link %s-%s up", state.name, nbr)
                self.fabric.set_link_up(state.name, nbr, True)
            return [SendLldp(dpid, port)]
        return self.link_down(state.name, nbr, now_s)

    def link_down(self, a: str, b: str, now_s: float) -> List[Command]:
        """Mark the cable down and move every flow that crossed it at once.

        Where ``failover`` places a flow (the planner's load-aware choice), it
        goes there and stays pinned, as after any planner move.  Every other
        flow takes ECMP's choice over the surviving paths, and a flow that was
        not pinned is left unpinned (ECMP's again once its rules idle out).
        """
        if not self.fabric.graph.has_edge(a, b):
            return []
        self.fabric.set_link_up(a, b, False)
        if self.fabric.is_host(a) or self.fabric.is_host(b):
            return []
        dead = {(a, b), (b, a)}
        crossing = [(five, flow) for five, flow in sorted(self.flows.items())
                    if not dead.isdisjoint(path_links(flow.path))]
        placed = dict(self.failover((a, b))) if crossing and self.failover is not None else {}
        cmds: List[Command] = []
        for five, flow in crossing:
            pinned = self.pins.pop(five, None)
            new_path = tuple(placed.get(five, ()))
            if new_path and new_path[0] == five.src and new_path[-1] == five.dst and self._path_ok(new_path):
                LOG.info("link %s-%s down: planner moves %s to %s", a, b, five.key(), "->".join(new_path))
                cmds.extend(self.repin(five, new_path, now_s))
                continue
            try:
                new_path = self.choose_path(five)
            except FabricError as exc:
                LOG.warning("flow %s lost its path and has no other: %s", five.key(), exc)
                continue
            LOG.info("link %s-%s down: moving %s to %s", a, b, five.key(), "->".join(new_path))
            if pinned is None:
                cmds.extend(self._move_unpinned(five, new_path, now_s))
            else:
                cmds.extend(self.repin(five, new_path, now_s))
        return cmds
