"""Live replay: play a flow trace into the Mininet lab as real TCP transfers.

``sidestep lab --replay FLOWS.csv`` runs this.  Why: ``sidestep replay`` shows
what each policy *would* do on a flow-level model; this shows what the
controller *does* on a real OpenFlow data plane with the same trace, and writes
``flows.csv``/``summary.json`` in the offline replay's format (policy name
``live-<policy>``) so the two can be put side by side.

How flows are played
--------------------
* One **flow agent** per host (``python -m mininet_topos.livereplay agent``,
  standard library only).  It listens on the host's destination ports (a
  sink: per message an 8-byte size, then that many bytes, answered with one
  byte once all arrived), and sends on command: the orchestrator writes one
  JSON line per flow to its stdin, it answers one JSON line on stdout when
  the receiver has acknowledged the last byte.  One long-lived agent per
  host instead of a process per flow (``iperf3 -n``) because (a) starting a
  Python or iperf3 process per flow costs 50-200 ms of the 2 cores, which
  would be charged to the flow, and (b) traces reuse a connection across
  iterations (NCCL keeps its ring connections open; the trace says so by
  repeating ``src_port``/``dst_port``), and a fresh iperf3 per flow would
  reconnect from the same port into TIME_WAIT.
* **Connections.**  A flow whose trace gives ``src_port`` rides the
  long-lived connection of its 5-tuple (opened at its first flow, kept open
  until the end; concurrent flows of one connection queue on it, as bytes on
  one TCP stream do).  A flow without ``src_port`` gets its own connection
  from the port the simulator would use (``controller.sim.ephemeral_port``
  with seed 0, ``sidestep replay``'s default), so ECMP hashes it the same way
  live and offline.  A missing ``dst_port`` becomes ``DEFAULT_DST_PORT`` (the
  simulator hashes 0 there, which TCP cannot listen on).
* **Timing** (``LiveScheduler``, pure and unit-tested with a fake clock): a
  flow is due at ``max(start_s, last dependency's finish + gap_s)``, a
  finish being the moment its sender got the receiver's acknowledgement.
  At most ``MAX_IN_FLIGHT`` flows run at once; a due flow beyond that waits
  (its start, and so its FCT, then counts from when it really started).
  ``start_s`` in ``flows.csv`` is when the agent received the command,
  ``finish_s`` when the acknowledgement arrived, both on the replay's clock
  (``time.monotonic`` is one system-wide clock on Linux, shared by the
  Mininet hosts' processes).
* ``rate_bps`` caps are honoured by pacing in the sender.  Only TCP is played
  (``proto`` 6); other protocols are refused before any lab starts.
* **Paths**: the orchestrator polls the controller's ``/paths`` about once a
  second and records, per flow, the last path installed for its 5-tuple
  while it was in flight (empty if the controller never showed one).

Limits (refused with one clear message, exit 2, before any lab starts):
hosts outside the k=4 fat-tree, more than ``MAX_FLOWS`` flows, or a trace
whose lower-bound length (every flow alone at the line rate, honouring
start times, deps and gaps) exceeds ``MAX_TRACE_S``.
"""
from __future__ import annotations

import argparse
import json
import os
import queue
import socket
import struct
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any, Callable, Dict, List, Mapping, Optional, Sequence, Set, Tuple

from controller.ecmp import PROTO_TCP
from controller.flowtrace import TraceFlow, read_flow_trace
from controller.tracefile import TraceError
from mininet_topos.fattree_spec import fat_tree

if TYPE_CHECKING:  # pragma: no cover - names for the type checker only
    import numpy as np

K = 4
LINK_MBPS = 10.0
MAX_FLOWS = 200
MAX_TRACE_S = 600.0
MAX_IN_FLIGHT = 64
DEFAULT_DST_PORT = 9000
EPHEMERAL_SEED = 0           # sidestep replay's default --seed
PATH_POLL_S = 1.0
CONNECT_TIMEOUT_S = 15.0
HEADER = struct.Struct("!Q")
CHUNK = 64 * 1024


class LiveReplayError(ValueError):
    """A trace the lab cannot play; the message names the file (and line) and the limit."""


# --------------------------------------------------------------------------
# validation and planning (pure)
# --------------------------------------------------------------------------
def lab_hosts(k: int = K) -> List[str]:
    return fat_tree(k, LINK_MBPS).host_names()


def load_trace(path: str, k: int = K) -> List[TraceFlow]:
    """Read the trace against the lab's hosts and check it fits the lab (raises TraceError/LiveReplayError)."""
    flows = read_flow_trace(path, lab_hosts(k))
    check_fits(path, flows)
    return flows


def ideal_finishes(flows: Sequence[TraceFlow], link_bps: float = LINK_MBPS * 1e6) -> Dict[str, float]:
    """Lower-bound finish per flow: alone at min(line rate, its cap), honouring start, deps and gap."""
    by_id = {f.flow_id: f for f in flows}
    finish: Dict[str, float] = {}

    def visit(fid: str) -> float:  # the reader already refused cycles
        if fid in finish:
            return finish[fid]
        stack = [fid]
        while stack:
            cur = by_id[stack[-1]]
            pending = [d for d in cur.deps if d not in finish]
            if pending:
                stack.extend(pending)
                continue
            stack.pop()
            if cur.flow_id in finish:
                continue
            ready = ready_time(cur, finish)
            rate = min(link_bps, cur.rate_bps or link_bps)
            finish[cur.flow_id] = ready + cur.size_bytes * 8.0 / rate
        return finish[fid]

    for f in flows:
        visit(f.flow_id)
    return finish


def ready_time(flow: TraceFlow, finished: Mapping[str, float]) -> float:
    """``max(start_s, last dependency's finish + gap_s)``; every dep must be in ``finished``."""
    if not flow.deps:
        return flow.start_s
    return max(flow.start_s, max(finished[d] for d in flow.deps) + flow.gap_s)


def check_fits(path: str, flows: Sequence[TraceFlow]) -> None:
    """Refuse traces the lab cannot play faithfully (too many flows, too long, not TCP, port clash)."""
    if len(flows) > MAX_FLOWS:
        raise LiveReplayError("%s: %d flows; the live lab plays at most %d (2 cores, 16 hosts). "
                              "Cut the trace or use the offline 'sidestep replay'" % (path, len(flows), MAX_FLOWS))
    for f in flows:
        if f.proto != PROTO_TCP:
            raise TraceError(path, "proto %d: the live lab plays TCP flows only (proto 6)" % f.proto,
                             f.line, "proto")
    length = max(ideal_finishes(flows).values())
    if length > MAX_TRACE_S:
        raise LiveReplayError("%s: the trace lasts at least %.0f s even at full line rate (%g Mbit/s); "
                              "the live lab plays at most %.0f s. Cut it or use the offline 'sidestep replay'"
                              % (path, length, LINK_MBPS, MAX_TRACE_S))
    listen = listen_ports(flows)
    for f in flows:
        sport = source_port(f)
        if sport in listen.get(f.src, ()):
            raise TraceError(path, "source port %d of %s is also a destination port %s listens on"
                             % (sport, f.src, f.src), f.line, "src_port")


def source_port(flow: TraceFlow) -> int:
    """The trace's src_port, else the simulator's ephemeral port for this flow (same ECMP hash)."""
    if flow.src_port:
        return int(flow.src_port)
    from controller.sim import ephemeral_port
    return ephemeral_port(EPHEMERAL_SEED, flow.flow_id)


def dest_port(flow: TraceFlow) -> int:
    return int(flow.dst_port) if flow.dst_port else DEFAULT_DST_PORT


def listen_ports(flows: Sequence[TraceFlow]) -> Dict[str, List[int]]:
    """host -> sorted ports its agent must listen on."""
    out: Dict[str, Set[int]] = {}
    for f in flows:
        out.setdefault(f.dst, set()).add(dest_port(f))
    return {h: sorted(p) for h, p in out.items()}


def training_section(flows: Sequence[TraceFlow]) -> Dict[str, Any]:
    """The controller's ``training`` config that classifies the trace's flows as its ``cls`` column does.

    The live controller cannot read the trace, so the classes are turned into
    its classifier's terms: the training flows' source ports (``tcp_ports``)
    when no background flow uses one of them, else the training hosts as one
    host group (which also makes background flows between those hosts
    training: reported in the summary's ``classification`` field).
    """
    train = [f for f in flows if f.cls == "training"]
    if not train:
        return {}
    ports = sorted({source_port(f) for f in train})
    background_ports = {p for f in flows if f.cls != "training" for p in (source_port(f), dest_port(f))}
    if not background_ports & set(ports):
        return {"tcp_ports": ports}
    hosts = sorted({h for f in train for h in (f.src, f.dst)}, key=lambda h: int(h[1:]))
    return {"host_groups": [hosts]} if len(hosts) >= 2 else {}


def send_command(flow: TraceFlow, dst_ip: str) -> Dict[str, Any]:
    """The JSON line the orchestrator writes to the source host's agent."""
    return {"op": "send", "id": flow.flow_id, "dst": dst_ip, "dport": dest_port(flow),
            "sport": source_port(flow), "persistent": bool(flow.src_port), "size": int(round(flow.size_bytes)),
            "rate_bps": flow.rate_bps}


class LiveScheduler:
    """Which flows are due now, given the ones that finished; no clock of its own.

    ``due(now)`` returns the flows whose ready time has come and whose deps
    have all finished, earliest ready time first (file order breaks ties),
    at most ``max_in_flight`` in flight, and marks them started.
    """

    def __init__(self, flows: Sequence[TraceFlow], max_in_flight: int = MAX_IN_FLIGHT) -> None:
        if max_in_flight < 1:
            raise ValueError("max_in_flight must be >= 1 (got %r)" % (max_in_flight,))
        self.flows = list(flows)
        self.max_in_flight = max_in_flight
        self.finish: Dict[str, float] = {}
        self.started: Dict[str, float] = {}
        self._order = {f.flow_id: i for i, f in enumerate(self.flows)}

    @property
    def in_flight(self) -> int:
        return len(self.started) - len(self.finish)

    def _ready(self) -> List[Tuple[float, int, TraceFlow]]:
        out = []
        for f in self.flows:
            if f.flow_id in self.started or any(d not in self.finish for d in f.deps):
                continue
            out.append((ready_time(f, self.finish), self._order[f.flow_id], f))
        out.sort(key=lambda x: (x[0], x[1]))
        return out

    def due(self, now: float) -> List[TraceFlow]:
        room = self.max_in_flight - self.in_flight
        out = []
        for t, _, f in self._ready():
            if t > now or room <= 0:
                break
            self.started[f.flow_id] = now
            out.append(f)
            room -= 1
        return out

    def next_wakeup(self) -> Optional[float]:
        """Earliest ready time of a flow not started whose deps are done (None: waiting on finishes)."""
        if self.in_flight >= self.max_in_flight:
            return None
        ready = self._ready()
        return ready[0][0] if ready else None

    def finished(self, flow_id: str, finish_s: float) -> None:
        if flow_id not in self.started:
            raise KeyError("flow %r finished but was never started" % flow_id)
        if flow_id in self.finish:
            raise KeyError("flow %r finished twice" % flow_id)
        self.finish[flow_id] = finish_s

    def done(self) -> bool:
        return len(self.finish) == len(self.flows)

    def unfinished(self) -> List[str]:
        return [f.flow_id for f in self.flows if f.flow_id not in self.finish]


# --------------------------------------------------------------------------
# the flow agent (one per host; standard library only)
# --------------------------------------------------------------------------
def _recv_exact(sock: socket.socket, n: int) -> Optional[bytes]:
    buf = bytearray()
    while len(buf) < n:
        part = sock.recv(n - len(buf))
        if not part:
            return None
        buf += part
    return bytes(buf)


def _serve_conn(sock: socket.socket) -> None:
    """Sink side of one connection: messages of (size, bytes), each answered with one byte."""
    with sock:
        while True:
            hdr = _recv_exact(sock, HEADER.size)
            if hdr is None:
                return
            left = HEADER.unpack(hdr)[0]
            while left > 0:
                got = sock.recv(min(left, 256 * 1024))
                if not got:
                    return
                left -= len(got)
            sock.sendall(b"\x01")


def _listen(port: int) -> socket.socket:
    lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind(("0.0.0.0", port))
    lsock.listen(128)
    return lsock


def _accept_loop(lsock: socket.socket) -> None:
    while True:
        try:
            conn, _ = lsock.accept()
        except OSError:
            return
        threading.Thread(target=_serve_conn, args=(conn,), daemon=True).start()


@dataclass
class _Conn:
    lock: threading.Lock = field(default_factory=threading.Lock)
    sock: Optional[socket.socket] = None


class Agent:
    """Sends flows on command; reports each as one JSON line (start/finish on ``time.monotonic``)."""

    def __init__(self, out: IO[str], connect_timeout_s: float = CONNECT_TIMEOUT_S) -> None:
        self.out = out
        self.connect_timeout_s = connect_timeout_s
        self.out_lock = threading.Lock()
        self.conns: Dict[Tuple[str, int, int], _Conn] = {}
        self.conns_lock = threading.Lock()
        self.payload = memoryview(bytes(CHUNK))

    def emit(self, event: Dict[str, Any]) -> None:
        with self.out_lock:
            self.out.write(json.dumps(event) + "\n")
            self.out.flush()

    def send(self, cmd: Dict[str, Any]) -> None:
        start = time.monotonic()
        try:
            nbytes = self._send(cmd)
            self.emit({"ev": "done", "id": cmd["id"], "start": start, "finish": time.monotonic(), "bytes": nbytes})
        except Exception as exc:  # pylint: disable=broad-except  (reported, never swallowed)
            self.emit({"ev": "error", "id": cmd.get("id"), "error": "%s: %s" % (type(exc).__name__, exc)})

    def _connect(self, dst: str, dport: int, sport: int) -> socket.socket:
        from mininet_topos.trainjob import connect_with_retry
        return connect_with_retry((dst, dport), sport, time.monotonic() + self.connect_timeout_s,
                                  "%s:%d" % (dst, dport), nodelay=False)

    def _send(self, cmd: Dict[str, Any]) -> int:
        key = (str(cmd["dst"]), int(cmd["dport"]), int(cmd["sport"]))
        if not cmd.get("persistent"):
            sock = self._connect(*key)
            try:
                return self._transfer(sock, cmd)
            finally:
                sock.close()
        with self.conns_lock:
            conn = self.conns.setdefault(key, _Conn())
        with conn.lock:  # flows of one connection go one after another, as bytes on one stream
            if conn.sock is None:
                conn.sock = self._connect(*key)
            try:
                return self._transfer(conn.sock, cmd)
            except OSError:
                conn.sock.close()
                conn.sock = None
                raise

    def _transfer(self, sock: socket.socket, cmd: Dict[str, Any]) -> int:
        size = int(cmd["size"])
        rate = cmd.get("rate_bps")
        sock.sendall(HEADER.pack(size))
        t0, sent = time.monotonic(), 0
        while sent < size:
            n = min(CHUNK, size - sent)
            sock.sendall(self.payload[:n])
            sent += n
            if rate:  # pace: never ahead of size * 8 / rate
                ahead = sent * 8.0 / float(rate) - (time.monotonic() - t0)
                if ahead > 0:
                    time.sleep(ahead)
        if _recv_exact(sock, 1) != b"\x01":
            raise ConnectionError("the receiver closed before acknowledging %d bytes" % size)
        return sent

    def close(self) -> None:
        with self.conns_lock:
            for conn in self.conns.values():
                if conn.sock is not None:
                    conn.sock.close()


def run_agent(ports: Sequence[int], inp: IO[str], out: IO[str], connect_timeout_s: float = CONNECT_TIMEOUT_S) -> int:
    """Listen on ``ports``, say ready, then send flows as commands arrive until 'quit' or EOF."""
    listeners = [_listen(p) for p in ports]
    for lsock in listeners:
        threading.Thread(target=_accept_loop, args=(lsock,), daemon=True).start()
    agent = Agent(out, connect_timeout_s)
    agent.emit({"ev": "ready", "ports": list(ports)})
    for line in inp:
        line = line.strip()
        if not line:
            continue
        cmd = json.loads(line)
        if cmd.get("op") == "quit":
            break
        if cmd.get("op") == "send":
            threading.Thread(target=agent.send, args=(cmd,), daemon=True).start()
    agent.close()
    for lsock in listeners:
        lsock.close()
    return 0


# --------------------------------------------------------------------------
# the orchestrator
# --------------------------------------------------------------------------
class AgentHandle:
    """One agent process: commands in on stdin, events out on a shared queue (host, event)."""

    def __init__(self, host: str, proc: subprocess.Popen, events: "queue.Queue[Tuple[str, Dict[str, Any]]]") -> None:
        self.host = host
        self.proc = proc
        self._reader = threading.Thread(target=self._read, args=(events,), daemon=True)
        self._reader.start()

    def _read(self, events: "queue.Queue[Tuple[str, Dict[str, Any]]]") -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            try:
                events.put((self.host, json.loads(raw)))
            except ValueError:
                events.put((self.host, {"ev": "error", "id": None, "error": "bad agent output %r" % raw[:200]}))
        events.put((self.host, {"ev": "exit"}))

    def command(self, cmd: Dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write((json.dumps(cmd) + "\n").encode("utf-8"))
        self.proc.stdin.flush()

    def quit(self) -> None:
        try:
            self.command({"op": "quit"})
            assert self.proc.stdin is not None
            self.proc.stdin.close()
        except (OSError, ValueError):
            pass


def agent_command(python: str, ports: Sequence[int], connect_timeout_s: float = CONNECT_TIMEOUT_S) -> List[str]:
    return [python, "-m", "mininet_topos.livereplay", "agent", "--ports", ",".join(str(p) for p in ports),
            "--connect-timeout-s", str(connect_timeout_s)]


@dataclass
class LiveRecord:
    """One played flow; the fields ``controller.replay`` reads from a simulator's FlowRecord."""

    flow_id: str
    start_s: float
    finish_s: float
    size_bytes: float
    path: Tuple[str, ...]
    flow: TraceFlow


class ReplayFailed(RuntimeError):
    """An agent failed or the trace did not finish in time; the message names the flow or host."""


def conn_key(flow: TraceFlow) -> Tuple[str, str, int, int]:
    return (flow.src, flow.dst, source_port(flow), dest_port(flow))


def paths_by_key(doc: Mapping[str, Any]) -> Dict[Tuple[str, str, int, int], Tuple[str, ...]]:
    """The controller's ``/paths`` JSON -> (src, dst, src_port, dst_port) -> path."""
    out = {}
    for p in doc.get("paths", []):
        try:
            out[(str(p["src"]), str(p["dst"]), int(p["src_port"]), int(p["dst_port"]))] = tuple(p["path"])
        except (KeyError, TypeError, ValueError):
            continue
    return out


def play(flows: Sequence[TraceFlow], agents: Mapping[str, AgentHandle], ip_of: Callable[[str], str],
         events: "queue.Queue[Tuple[str, Dict[str, Any]]]", *, timeout_s: float,
         max_in_flight: int = MAX_IN_FLIGHT,
         get_paths: Optional[Callable[[], Mapping[str, Any]]] = None) -> List[LiveRecord]:
    """Dispatch flows when due, collect finishes, until all are done; records on the replay's clock."""
    sched = LiveScheduler(flows, max_in_flight)
    by_id = {f.flow_id: f for f in flows}
    started: Dict[str, float] = {}
    finished: Dict[str, float] = {}
    seen_paths: Dict[Tuple[str, str, int, int], Tuple[str, ...]] = {}
    flow_paths: Dict[str, Tuple[str, ...]] = {}
    t0 = time.monotonic()
    last_poll = -PATH_POLL_S

    def poll_paths() -> None:
        if get_paths is None:
            return
        try:
            seen_paths.update(paths_by_key(get_paths()))
        except Exception:  # pylint: disable=broad-except  (paths are informational)
            return
        for fid in sched.started:  # in flight: the path it is on now
            if fid not in finished and conn_key(by_id[fid]) in seen_paths:
                flow_paths[fid] = seen_paths[conn_key(by_id[fid])]

    while not sched.done():
        now = time.monotonic() - t0
        if now > timeout_s:
            left = sched.unfinished()
            raise ReplayFailed("the trace did not finish within %.0f s; %d flows unfinished (%s)"
                               % (timeout_s, len(left), ", ".join(left[:5]) + (" ..." if len(left) > 5 else "")))
        for f in sched.due(now):
            agents[f.src].command(send_command(f, ip_of(f.dst)))
        if now - last_poll >= PATH_POLL_S:
            poll_paths()
            last_poll = now
        wake = sched.next_wakeup()
        wait = PATH_POLL_S if wake is None else min(PATH_POLL_S, max(0.0, wake - (time.monotonic() - t0)))
        try:
            host, ev = events.get(timeout=wait)
        except queue.Empty:
            continue
        kind = ev.get("ev")
        if kind == "done":
            fid = str(ev["id"])
            started[fid] = float(ev["start"]) - t0
            finished[fid] = float(ev["finish"]) - t0
            sched.finished(fid, finished[fid])
            if fid not in flow_paths and conn_key(by_id[fid]) in seen_paths:
                flow_paths[fid] = seen_paths[conn_key(by_id[fid])]
        elif kind == "error":
            raise ReplayFailed("flow %s from %s failed: %s" % (ev.get("id"), host, ev.get("error")))
        elif kind == "exit":
            raise ReplayFailed("the flow agent on %s exited during the replay" % host)
    poll_paths()
    for fid in finished:
        if fid not in flow_paths and conn_key(by_id[fid]) in seen_paths:
            flow_paths[fid] = seen_paths[conn_key(by_id[fid])]
    return [LiveRecord(f.flow_id, started[f.flow_id], finished[f.flow_id], f.size_bytes,
                       flow_paths.get(f.flow_id, ()), f) for f in flows]


# --------------------------------------------------------------------------
# results in the offline replay's format
# --------------------------------------------------------------------------
@dataclass
class LiveResult:
    """Duck-typed ``SimResult`` for ``controller.replay.summarize``: flows, utilization, reroutes."""

    flows: List[LiveRecord]
    util_samples: Sequence[float]
    reroutes: int

    def utilization(self) -> np.ndarray:
        import numpy as np
        return np.asarray(self.util_samples, dtype=float).reshape(1, -1)


def recorded_utilization(loads_csv: str, t_from: float = float("-inf"), t_to: float = float("inf")) -> List[float]:
    """Every recorded utilization sample (all links) in [t_from, t_to]; empty if nothing was recorded."""
    from controller.loadtrace import read_link_loads
    if not os.path.exists(loads_csv):
        return []
    try:
        trace = read_link_loads(loads_csv)
    except TraceError:
        return []
    out: List[float] = []
    for series in trace.series.values():
        for t, u in zip(series.t.tolist(), series.util.tolist()):
            if t_from <= t <= t_to:
                out.append(u)
    return out


def write_results(out: str, policy_name: str, result: LiveResult, meta: Dict[str, Any]) -> Dict[str, Any]:
    """out/flows.csv and out/summary.json, exactly as ``sidestep replay`` writes them (one policy)."""
    from controller.replay import PolicyRun, iteration_times, summarize, write_flows_csv

    summary: Dict[str, Any] = {"policies": {policy_name: summarize(result)},  # type: ignore[arg-type]
                               "loads_policy": policy_name, "replay": meta}
    run = PolicyRun(policy_name, result, summary["policies"][policy_name])  # type: ignore[arg-type]
    with open(os.path.join(out, "flows.csv"), "w", encoding="utf-8") as fh:
        write_flows_csv(fh, [run])
    with open(os.path.join(out, "summary.json"), "w", encoding="utf-8") as fh:
        json.dump(summary, fh, indent=2, sort_keys=True)
        fh.write("\n")
    try:
        from controller import plots
        series = {policy_name: iteration_times(result)}  # type: ignore[arg-type]
        plots.plot_iterations(os.path.join(out, "iterations.png"), series)
    except Exception:  # pylint: disable=broad-except  (a plot is a convenience)
        pass
    return summary


# --------------------------------------------------------------------------
# the lab run (root; run by the lead)
# --------------------------------------------------------------------------
def run_live_replay(path: str, out: str, *, ofp_port: int = 6653, model: Optional[str] = None,
                    policy: str = "predictive", max_in_flight: int = MAX_IN_FLIGHT) -> int:
    """Validate the trace (exit 2 before any lab), then play it in one k=4 lab under ``policy``."""
    try:
        flows = load_trace(path)
    except (TraceError, LiveReplayError) as exc:
        print("sidestep lab: error: %s" % exc, file=sys.stderr)
        return 2
    if policy not in ("ecmp", "reactive", "predictive"):
        print("sidestep lab: error: unknown policy %r for live replay" % policy, file=sys.stderr)
        return 2
    from mininet_topos.lab import ControllerProcess, Lab, LabError
    from mininet_topos.live import _env, _terminate

    os.makedirs(out, exist_ok=True)
    lower = max(ideal_finishes(flows).values())
    timeout_s = 3.0 * lower + 60.0
    hosts_used = sorted({f.src for f in flows} | {f.dst for f in flows}, key=lambda h: int(h[1:]))
    overrides: Dict[str, Any] = {"policy": policy, "poll_interval": 1.0, "record_flush_s": 1.0}
    training = training_section(flows)
    if training:
        overrides["training"] = training
    if model:
        overrides["model"] = os.path.abspath(model)
    loads = os.path.join(out, "loads.csv")
    ctrl = ControllerProcess(out, ofp_port=ofp_port, record=loads, overrides=overrides, name="controller")
    listen = listen_ports(flows)
    name = "live-%s" % policy
    print("sidestep lab: live replay of %s (%d flows, at least %.0f s) under %s ..."
          % (path, len(flows), lower, policy), file=sys.stderr)
    with Lab(k=K, bw_mbps=LINK_MBPS, out_dir=out, ofp_port=ofp_port, controller=ctrl) as lab:
        events: "queue.Queue[Tuple[str, Dict[str, Any]]]" = queue.Queue()
        agents: Dict[str, AgentHandle] = {}
        log = open(os.path.join(out, "agents.txt"), "ab")
        try:
            for h in hosts_used:
                proc = lab.popen(h, agent_command(sys.executable, listen.get(h, [])), stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, stderr=log, cwd=_root(), env=_env())
                agents[h] = AgentHandle(h, proc, events)
            _wait_ready(agents, events, 20.0)
            before = ctrl.get("/health")
            wall0 = time.time()
            records = play(flows, agents, lambda h: lab.host(h).IP(), events, timeout_s=timeout_s,
                           max_in_flight=max_in_flight, get_paths=lambda: ctrl.get("/paths"))
            wall1 = time.time()
            after = ctrl.get("/health")
        except ReplayFailed as exc:
            raise LabError("%s (agent logs: %s)" % (exc, os.path.join(out, "agents.txt"))) from None
        finally:
            for a in agents.values():
                a.quit()
            _terminate([a.proc for a in agents.values()])
            log.close()
    util = recorded_utilization(loads, wall0, wall1 + 1.0)
    result = LiveResult(records, util, int(after["reroutes_total"]) - int(before["reroutes_total"]))
    meta = {"trace": os.path.abspath(path), "k": K, "link_mbps": LINK_MBPS, "mode": "live", "policy": policy,
            "model": model, "max_in_flight": max_in_flight, "lower_bound_s": lower,
            "util_samples": len(util), "wall_start": wall0, "wall_end": wall1,
            "classification": training or "none (every flow background)"}
    summary = write_results(out, name, result, meta)
    s = summary["policies"][name]
    print("%-16s %8s %10s %10s %9s %12s" % ("policy", "flows", "mean_fct", "p99_fct", "reroutes", "makespan_s"))
    print("%-16s %8d %10.3f %10.3f %9d %12.3f" % (name, s["flows"], s["mean_fct_s"], s["p99_fct_s"],
                                                  s["reroutes"], s["makespan_s"]))
    print("\nsidestep lab: flows.csv, summary.json (offline replay format), loads.csv and controller logs are in "
          "%s; compare with: sidestep replay %s --k 4 --link-mbps 10 --out OUT" % (out, path))
    return 0


def _root() -> str:
    from mininet_topos.lab import ROOT
    return ROOT


def _wait_ready(agents: Mapping[str, AgentHandle], events: "queue.Queue[Tuple[str, Dict[str, Any]]]",
                timeout_s: float) -> None:
    waiting = set(agents)
    deadline = time.monotonic() + timeout_s
    while waiting:
        try:
            host, ev = events.get(timeout=max(0.05, deadline - time.monotonic()))
        except queue.Empty:
            raise ReplayFailed("flow agents on %s did not start within %.0f s"
                               % (", ".join(sorted(waiting)), timeout_s)) from None
        if ev.get("ev") == "ready":
            waiting.discard(host)
        elif ev.get("ev") == "exit":
            raise ReplayFailed("the flow agent on %s exited at start (port in use?)" % host)


# --------------------------------------------------------------------------
def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mininet_topos.livereplay")
    sub = parser.add_subparsers(dest="cmd", required=True)
    ag = sub.add_parser("agent", help="one host's flow agent (run by the orchestrator on each lab host)")
    ag.add_argument("--ports", default="", help="comma-separated ports to listen on")
    ag.add_argument("--connect-timeout-s", type=float, default=CONNECT_TIMEOUT_S,
                    help="give up connecting to a receiver after this long (ARP and flow setup included)")
    args = parser.parse_args(argv)
    ports = [int(p) for p in args.ports.split(",") if p.strip()]
    return run_agent(ports, sys.stdin, sys.stdout, args.connect_timeout_s)


if __name__ == "__main__":
    sys.exit(main())
