"""The OpenFlow shell of Sidestep: events in, core calls, OpenFlow messages out.

Load it with any of::

    sidestep controller [--config FILE]
    osken-manager controller/app.py          (OS-Ken 3.x)
    ryu-manager controller/app.py            (Ryu 4.34, Python <= 3.9)

Settings come from the file named by ``SIDESTEP_CONFIG`` (YAML) plus JSON
overrides in ``SIDESTEP_OVERRIDES``; ``sidestep controller`` sets both from
its options.  Every decision is made by the pure core
(``controller/core.py``, ``monitor.py``, ``planner.py``, ``models/runtime``);
this file only translates.
"""
import functools
import json
import logging
import os
import random
import struct
import sys
import time
from typing import Any, Callable, Optional

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _ROOT not in sys.path:  # ryu-manager/osken-manager load this file by path
    sys.path.insert(0, _ROOT)

from controller import compat  # noqa: E402
from controller.compat import (CONFIG_DISPATCHER, DEAD_DISPATCHER, MAIN_DISPATCHER,  # noqa: E402
                               arp, ethernet, hub, ipv4, lldp, ofp_event, ofproto_v1_3, packet,
                               set_ev_cls, tcp, udp)
from controller.config import ConfigError, load_config  # noqa: E402
from controller.core import (ArpReply, ControlRule, DeleteRules,  # noqa: E402
                             InstallRule, PacketInfo, PacketOut, PathUpdate, SendLldp)
from controller.listening import listening_on  # noqa: E402
from controller.runtime import ControllerRuntime  # noqa: E402
from controller.rules import COOKIE_TAG, OP_ADD, OP_BARRIER, OP_DELETE  # noqa: E402

LOG = logging.getLogger("sidestep.app")
LLDP_SRC_MAC = "02:51:de:00:00:01"
OFPMPF_REPLY_MORE = 1


def guarded(handler: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    """Log a failing handler with its switch and keep serving: one bad event never kills the app."""
    @functools.wraps(handler)
    def wrapper(self: Any, ev: Any) -> Any:
        try:
            return handler(self, ev)
        except Exception:  # pylint: disable=broad-except
            dp = getattr(getattr(ev, "msg", None), "datapath", None) or getattr(ev, "datapath", None)
            dpid = getattr(dp, "id", None)
            LOG.exception("handler %s failed (dpid=%s)", handler.__name__,
                          "0x%x" % dpid if dpid is not None else "?")
            self.runtime.handler_errors += 1
    return wrapper


class SidestepApp(compat.BaseApp):
    OFP_VERSIONS = [ofproto_v1_3.OFP_VERSION]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        try:
            config = load_config(os.environ.get("SIDESTEP_CONFIG") or None,
                                 json.loads(os.environ.get("SIDESTEP_OVERRIDES") or "{}"))
        except (ConfigError, ValueError) as exc:
            LOG.error("sidestep: %s", exc)
            raise SystemExit(2)
        ofp_port = compat.cfg.CONF.ofp_tcp_listen_port or 6653
        ofp_host = compat.cfg.CONF.ofp_listen_host or "0.0.0.0"
        if listening_on(ofp_host, ofp_port):
            LOG.error("sidestep: OpenFlow port %s is already in use (another controller?); "
                      "stop it or choose another port with --ofp-port", ofp_port)
            raise SystemExit(2)
        self.config = config
        self.runtime = ControllerRuntime(config, start_s=time.time())
        self.core = self.runtime.core
        self.datapaths = {}
        self._stats_parts = {}
        self._barrier_waiters = {}
        self._update_gen = {}       # 5-tuple -> number of its newest path update
        self._rng = random.Random(0)
        self.threads.append(hub.spawn(self._loop))
        if config.rest_port:
            self._start_rest(config.rest_host, config.rest_port)
        LOG.info("Sidestep %s on %s: policy=%s poll=%.2fs model=%s", compat.FRAMEWORK,
                 ofp_port, config.policy, config.poll_interval, self.runtime.predictor_name)

    # ------------------------------------------------------------ REST
    def _start_rest(self, host, port):
        from controller.api import make_wsgi_app
        try:
            pin = self._pin if self.config.rest_allow_pin else None
            server = hub.WSGIServer((host, port), make_wsgi_app(self.runtime.api_state(), pin=pin))
        except OSError as exc:
            LOG.error("sidestep: REST address %s:%d unavailable: %s", host, port, exc)
            raise SystemExit(2)
        self.threads.append(hub.spawn(server.serve_forever))
        LOG.info("REST API and /metrics on http://%s:%d/", host, port)

    def _pin(self, body):
        cmds, result = self.runtime.pin_request(body, time.time())
        self._execute(cmds)
        return result

    # ------------------------------------------------------------ main loop
    def _loop(self):
        while True:
            try:
                now = time.time()
                self._execute(self.core.lldp_due(now))
                for dpid in self.runtime.polls_due(now):
                    self._request_stats(dpid)
                self._execute(self.runtime.tick(now))
            except Exception:  # pylint: disable=broad-except
                LOG.exception("control loop iteration failed; continuing")
                self.runtime.handler_errors += 1
            hub.sleep(0.05)

    def _request_stats(self, dpid):
        dp = self.datapaths.get(dpid)
        if dp is None:
            return
        parser, ofp = dp.ofproto_parser, dp.ofproto
        dp.send_msg(parser.OFPPortStatsRequest(dp, 0, ofp.OFPP_ANY))
        if self.runtime.wants_flow_stats(dpid):
            dp.send_msg(parser.OFPFlowStatsRequest(dp, 0, ofp.OFPTT_ALL, ofp.OFPP_ANY, ofp.OFPG_ANY,
                                                   COOKIE_TAG << 48, 0xFFFF << 48))

    # ------------------------------------------------------------ commands -> OpenFlow
    def _execute(self, commands):
        for cmd in commands:
            if isinstance(cmd, PathUpdate):
                gen = self._update_gen.get(cmd.flow, 0) + 1
                self._update_gen[cmd.flow] = gen
                # finished updates leave the list: a controller that moves flows for days kept them all
                self.threads = [t for t in self.threads if not getattr(t, "dead", False)]
                self.threads.append(hub.spawn(self._run_update, cmd, gen))
                continue
            dp = self.datapaths.get(cmd.dpid)
            if dp is None:
                continue
            parser, ofp = dp.ofproto_parser, dp.ofproto
            if isinstance(cmd, InstallRule):
                rule = cmd.rule
                actions = [parser.OFPActionOutput(rule.out_port)]
                inst = [parser.OFPInstructionActions(ofp.OFPIT_APPLY_ACTIONS, actions)]
                flags = ofp.OFPFF_SEND_FLOW_REM if cmd.flow_removed else 0
                dp.send_msg(parser.OFPFlowMod(
                    dp, cookie=rule.cookie, command=ofp.OFPFC_ADD, idle_timeout=rule.idle_timeout,
                    hard_timeout=rule.hard_timeout, priority=rule.priority, flags=flags,
                    match=parser.OFPMatch(**rule.match_dict()), instructions=inst))
            elif isinstance(cmd, ControlRule):
                if cmd.action == "controller":
                    actions = [parser.OFPActionOutput(ofp.OFPP_CONTROLLER, ofp.OFPCML_NO_BUFFER)]
                    inst = [parser.OFPInstructionActions(ofp.OFPIT_APPLY_ACTIONS, actions)]
                else:
                    inst = []
                dp.send_msg(parser.OFPFlowMod(
                    dp, cookie=COOKIE_TAG << 48, command=ofp.OFPFC_ADD, priority=cmd.priority,
                    match=parser.OFPMatch(**dict(cmd.match)), instructions=inst))
            elif isinstance(cmd, DeleteRules):
                dp.send_msg(parser.OFPFlowMod(
                    dp, cookie=cmd.cookie, cookie_mask=cmd.cookie_mask, table_id=ofp.OFPTT_ALL,
                    command=ofp.OFPFC_DELETE, out_port=ofp.OFPP_ANY, out_group=ofp.OFPG_ANY,
                    match=parser.OFPMatch(**dict(cmd.match))))
            elif isinstance(cmd, PacketOut):
                actions = [parser.OFPActionOutput(p) for p in cmd.ports]
                in_port = cmd.in_port if cmd.in_port is not None else ofp.OFPP_CONTROLLER
                dp.send_msg(parser.OFPPacketOut(dp, buffer_id=ofp.OFP_NO_BUFFER, in_port=in_port,
                                                actions=actions, data=cmd.data))
            elif isinstance(cmd, ArpReply):
                pkt = packet.Packet()
                pkt.add_protocol(ethernet.ethernet(dst=cmd.dst_mac, src=cmd.src_mac, ethertype=0x0806))
                pkt.add_protocol(arp.arp(opcode=arp.ARP_REPLY, src_mac=cmd.src_mac, src_ip=cmd.src_ip,
                                         dst_mac=cmd.dst_mac, dst_ip=cmd.dst_ip))
                pkt.serialize()
                dp.send_msg(parser.OFPPacketOut(dp, buffer_id=ofp.OFP_NO_BUFFER, in_port=ofp.OFPP_CONTROLLER,
                                                actions=[parser.OFPActionOutput(cmd.port)], data=pkt.data))
            elif isinstance(cmd, SendLldp):
                dp.send_msg(parser.OFPPacketOut(dp, buffer_id=ofp.OFP_NO_BUFFER, in_port=ofp.OFPP_CONTROLLER,
                                                actions=[parser.OFPActionOutput(cmd.port)],
                                                data=lldp_frame(cmd.dpid, cmd.port)))

    def _barrier(self, dp, timeout_s=2.0):
        """Send a barrier and wait for its reply: the switch has applied everything before it."""
        parser = dp.ofproto_parser
        req = parser.OFPBarrierRequest(dp)
        dp.set_xid(req)
        event = hub.Event()
        self._barrier_waiters[(dp.id, req.xid)] = event
        try:
            dp.send_msg(req)
            return event.wait(timeout=timeout_s)
        finally:
            self._barrier_waiters.pop((dp.id, req.xid), None)

    @set_ev_cls(ofp_event.EventOFPBarrierReply, MAIN_DISPATCHER)
    @guarded
    def _barrier_reply(self, ev):
        event = self._barrier_waiters.get((ev.msg.datapath.id, ev.msg.xid))
        if event is not None:
            event.set()

    def _run_update(self, update, gen=None):
        """Run a consistent update: each switch confirms (barrier) before the one upstream of it.

        Updates of one connection can overlap (a planner move, then a cable of
        its new path fails while the first still waits on a barrier).  Each
        stops writing rules as soon as a newer one for the same connection has
        started, so its ingress rule can never land after the newer one's.  It
        then deletes nothing either: until the newer update's ingress rule is
        in, packets may still follow the rules it would delete.  Those rules
        idle out once no packet takes them.
        """
        try:
            start = time.time()
            deletes = []
            for op in update.ops:
                if op.kind == OP_DELETE:            # after the drain, switch by switch
                    deletes.append(op)
                    continue
                if gen is not None and self._update_gen.get(update.flow) != gen:
                    LOG.info("update of %s superseded by a newer one; stopping it", update.flow.key())
                    deletes = []
                    break
                dpid = update.dpid(op.switch)
                dp = self.datapaths.get(dpid)
                if dp is None:
                    LOG.warning("update of %s: switch %s is gone; the flow will be re-learned",
                                update.flow.key(), op.switch)
                    return
                if op.kind == OP_ADD:
                    self._execute([InstallRule(dpid, op.spec, flow_removed=op.switch == update.ingress)])
                elif op.kind == OP_BARRIER:
                    if not self._barrier(dp):
                        LOG.warning("update of %s: no barrier reply from %s within 2 s; continuing",
                                    update.flow.key(), op.switch)
            else:
                self.runtime.update_done(update.flow, (time.time() - start) * 1000.0)
            if deletes:
                hub.sleep(max(op.delay_s for op in deletes))
                for op in deletes:
                    dp = self.datapaths.get(update.dpid(op.switch))
                    if dp is None:
                        continue
                    parser, ofp = dp.ofproto_parser, dp.ofproto
                    dp.send_msg(parser.OFPFlowMod(
                        dp, cookie=op.spec.cookie, cookie_mask=(1 << 64) - 1, table_id=0,
                        command=ofp.OFPFC_DELETE_STRICT, priority=op.spec.priority,
                        out_port=ofp.OFPP_ANY, out_group=ofp.OFPG_ANY,
                        match=parser.OFPMatch(**op.spec.match_dict())))
        except Exception:  # pylint: disable=broad-except
            LOG.exception("path update of %s failed", update.flow.key())
            self.runtime.handler_errors += 1
        finally:
            if gen is not None and self._update_gen.get(update.flow) == gen:
                del self._update_gen[update.flow]       # the newest is done: nothing left to supersede

    # ------------------------------------------------------------ switch lifecycle
    @set_ev_cls(ofp_event.EventOFPSwitchFeatures, CONFIG_DISPATCHER)
    @guarded
    def _features(self, ev):
        dp = ev.msg.datapath
        self.datapaths[dp.id] = dp
        now = time.time()
        LOG.info("switch connected: %s dpid=0x%x", self.core.name_of(dp.id), dp.id)
        self._execute(self.runtime.switch_connected(dp.id, now))
        dp.send_msg(dp.ofproto_parser.OFPPortDescStatsRequest(dp, 0))

    @set_ev_cls(ofp_event.EventOFPStateChange, [MAIN_DISPATCHER, DEAD_DISPATCHER])
    @guarded
    def _state_change(self, ev):
        dp = ev.datapath
        if ev.state == DEAD_DISPATCHER and dp.id is not None:
            if self.datapaths.get(dp.id) is dp:
                del self.datapaths[dp.id]
                LOG.warning("switch disconnected: %s dpid=0x%x", self.core.name_of(dp.id), dp.id)
                self._execute(self.runtime.switch_disconnected(dp.id, time.time()))

    @set_ev_cls(ofp_event.EventOFPPortDescStatsReply, MAIN_DISPATCHER)
    @guarded
    def _port_desc(self, ev):
        dp = ev.msg.datapath
        ofp = dp.ofproto
        ports = [(p.port_no, not (p.state & ofp.OFPPS_LINK_DOWN) and not (p.config & ofp.OFPPC_PORT_DOWN))
                 for p in ev.msg.body]
        self._execute(self.core.ports_described(dp.id, ports, time.time()))

    @set_ev_cls(ofp_event.EventOFPPortStatus, MAIN_DISPATCHER)
    @guarded
    def _port_status(self, ev):
        msg = ev.msg
        dp, ofp = msg.datapath, msg.datapath.ofproto
        desc = msg.desc
        if msg.reason == ofp.OFPPR_DELETE:
            up = False
        else:
            up = not (desc.state & ofp.OFPPS_LINK_DOWN) and not (desc.config & ofp.OFPPC_PORT_DOWN)
        LOG.info("port status: %s port %d %s", self.core.name_of(dp.id), desc.port_no, "up" if up else "down")
        self._execute(self.runtime.port_status(dp.id, desc.port_no, up, time.time()))

    # ------------------------------------------------------------ packets
    @set_ev_cls(ofp_event.EventOFPPacketIn, MAIN_DISPATCHER)
    @guarded
    def _packet_in(self, ev):
        msg = ev.msg
        info = parse_packet(msg.data)
        if info is None:
            return
        self._execute(self.core.packet_in(msg.datapath.id, msg.match["in_port"], info, time.time()))

    @set_ev_cls(ofp_event.EventOFPFlowRemoved, MAIN_DISPATCHER)
    @guarded
    def _flow_removed(self, ev):
        msg = ev.msg
        ofp = msg.datapath.ofproto
        self.core.flow_removed(msg.datapath.id, msg.cookie, dict(msg.match.items()),
                               timed_out=msg.reason in (ofp.OFPRR_IDLE_TIMEOUT, ofp.OFPRR_HARD_TIMEOUT))

    # ------------------------------------------------------------ statistics
    def _collect(self, ev, kind):
        """Join multipart replies; returns the whole body once the last part arrives."""
        msg = ev.msg
        key = (msg.datapath.id, kind)
        parts = self._stats_parts.setdefault(key, [])
        parts.extend(msg.body)
        if msg.flags & OFPMPF_REPLY_MORE:
            return None
        return self._stats_parts.pop(key)

    @set_ev_cls(ofp_event.EventOFPPortStatsReply, MAIN_DISPATCHER)
    @guarded
    def _port_stats(self, ev):
        body = self._collect(ev, "port")
        if body is not None:
            self._execute(self.runtime.port_stats(ev.msg.datapath.id, body, time.time()))

    @set_ev_cls(ofp_event.EventOFPFlowStatsReply, MAIN_DISPATCHER)
    @guarded
    def _flow_stats(self, ev):
        body = self._collect(ev, "flow")
        if body is not None:
            entries = [(s.cookie, s.byte_count, s.duration_sec + s.duration_nsec / 1e9) for s in body]
            self.core.flow_stats(ev.msg.datapath.id, entries, time.time())

    def stop(self) -> None:
        """Kill this app's threads, then stop as the framework does.

        Why: the framework's ``stop`` joins every thread in ``self.threads``,
        and the poll loop and the REST server never return by themselves, so
        Ctrl-C (``AppManager.close`` after the KeyboardInterrupt) waited for
        them forever and the controller did not exit.
        """
        for thread in list(self.threads):
            hub.kill(thread)
        super().stop()

    def close(self) -> None:
        self.runtime.close()


def lldp_frame(dpid: int, port: int) -> bytearray:
    """An LLDP probe naming the switch and port it leaves from."""
    pkt = packet.Packet()
    pkt.add_protocol(ethernet.ethernet(dst=lldp.LLDP_MAC_NEAREST_BRIDGE, src=LLDP_SRC_MAC,
                                       ethertype=0x88CC))
    pkt.add_protocol(lldp.lldp([
        lldp.ChassisID(subtype=lldp.ChassisID.SUB_LOCALLY_ASSIGNED, chassis_id=b"dpid:%016x" % dpid),
        lldp.PortID(subtype=lldp.PortID.SUB_PORT_COMPONENT, port_id=struct.pack("!I", port)),
        lldp.TTL(ttl=120),
        lldp.End(),
    ]))
    pkt.serialize()
    return pkt.data


def parse_packet(data: bytes) -> Optional[PacketInfo]:
    """The fields the core decides on, or None for frames we ignore."""
    pkt = packet.Packet(data)
    eth = pkt.get_protocol(ethernet.ethernet)
    if eth is None:
        return None
    if eth.ethertype == 0x88CC:
        msg = pkt.get_protocol(lldp.lldp)
        try:
            chassis = msg.tlvs[0].chassis_id
            src_dpid = int(chassis.decode("ascii").split("dpid:", 1)[1], 16)
            src_port = struct.unpack("!I", msg.tlvs[1].port_id)[0]
        except (AttributeError, IndexError, ValueError, struct.error, UnicodeDecodeError):
            return None  # somebody else's LLDP
        return PacketInfo(eth.ethertype, eth.src, eth.dst, data, lldp_dpid=src_dpid, lldp_port=src_port)
    if eth.ethertype == 0x0806:
        a = pkt.get_protocol(arp.arp)
        if a is None:
            return None
        return PacketInfo(eth.ethertype, eth.src, eth.dst, data, arp_op=a.opcode, arp_spa=a.src_ip,
                          arp_tpa=a.dst_ip, arp_sha=a.src_mac)
    if eth.ethertype == 0x0800:
        ip = pkt.get_protocol(ipv4.ipv4)
        if ip is None:
            return None
        sport = dport = 0
        l4 = pkt.get_protocol(tcp.tcp) or pkt.get_protocol(udp.udp)
        if l4 is not None:
            sport, dport = l4.src_port, l4.dst_port
        return PacketInfo(eth.ethertype, eth.src, eth.dst, data, ipv4_src=ip.src, ipv4_dst=ip.dst,
                          ip_proto=ip.proto, src_port=sport, dst_port=dport)
    return None
