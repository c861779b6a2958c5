"""Background hotspot generators for the lab hosts: a periodic on/off TCP sender and a sink.

Why it exists: the training job's worst enemy in a shared fabric is another job
whose all-reduce comes in bursts with a different period: its bursts collide with
ours on some links some of the time, which is exactly what a forecaster can learn
and a reactive controller keeps chasing.  The on/off sender models that other job
as one long-lived TCP connection with a fixed source port (so, like an NCCL ring
hop, it is one flow the controller can identify and reroute), sending during
"on" phases and silent during "off" phases.  Long iperf3 flows are the lab's
other hotspot source; they need nothing from here.  Standard library only.

Commands::

    python3 -m mininet_topos.burst sink --port P [--out SINK.json]
    python3 -m mininet_topos.burst send --dst IP --port P --src-port SP \\
        --on-s 2 --off-s 3 --rate-mbps 10 --duration-s 60 [--delay-s D] [--out SEND.json]

The sender
* connects (retrying until the sink listens, up to ``--connect-timeout-s``),
  then runs the schedule from that moment: an optional silent ``--delay-s``
  (to shift this job's phase against the others), then on/off phases of
  ``--on-s``/``--off-s`` until ``--duration-s`` (0: until SIGTERM/SIGINT).
  Phase boundaries come from the schedule, not from what was measured, so the
  number of phases depends only on the arguments (see :func:`phase_schedule`).
* paces in user space during "on": a token bucket at ``--rate-mbps`` (payload
  megabits per second, 1 Mbit = 10^6 bits; on the wire add about 4% of
  TCP/IP/Ethernet headers); ``--rate-mbps 0`` sends as fast as TCP goes.
* keeps its send buffer small (``--sndbuf-bytes``, default 128 KiB), because
  what sits in the kernel buffer at the end of an "on" phase is still sent
  during the "off" phase: with Linux's autotuned multi-megabyte buffers a
  10 Mbit/s link would keep draining seconds into the silence (Linux doubles the
  value: 128 KiB gives 256 KiB, about 0.2 s at 10 Mbit/s when the rate is at or
  above the path's, nearly nothing when paced below it).  Each phase
  records ``unsent_bytes_at_end`` (SIOCOUTQ) to show it.
* logs a line per phase on stderr and, with ``--out``, writes (atomically)::

    {"format": "sidestep-burst-send/1", "ok": true, "error": null, "stopped": "schedule",
     "dst": "10.0.0.9:6000", "local": "10.0.0.3:46000", "on_s": 2, "off_s": 3,
     "delay_s": 0, "rate_mbps": 10, "duration_s": 60, "total_bytes": 30000000,
     "phases": [{"index": 0, "phase": "on", "planned_start_s": 0.0, "planned_end_s": 2.0,
                 "start_s": 1700000000.0, "end_s": 1700000002.0, "bytes": 2500000,
                 "rate_bps": 1e7, "unsent_bytes_at_end": 65536}, ...]}

  ``planned_*`` are offsets from the schedule's start; ``start_s``/``end_s`` are
  ``time.time()``.  SIGTERM/SIGINT stop it cleanly (``"stopped": "signal"``,
  exit 0): being stopped is how a background generator normally ends.  A lost
  connection gives exit 1 and one line on stderr (and ``"ok": false`` in the file).

The sink accepts any number of connections (one thread each), reads and
discards, logs each connection's bytes when it closes, and runs until
SIGTERM/SIGINT or ``--duration-s``; with ``--out`` it writes
``{"format": "sidestep-burst-sink/1", "port": P, "total_bytes": ..., "connections":
[{"peer": "IP:PORT", "bytes": ..., "start_s": ..., "end_s": ...}, ...]}``.
"""
from __future__ import annotations

import argparse
import fcntl
import logging
import math
import signal
import socket
import sys
import termios
import threading
import time
from dataclasses import dataclass
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

from mininet_topos.trainjob import JobError, connect_with_retry, fmt_addr, write_report_atomic

__all__ = ["SenderConfig", "Phase", "phase_schedule", "run_sender", "Sink", "main"]

SEND_FORMAT = "sidestep-burst-send/1"
SINK_FORMAT = "sidestep-burst-sink/1"
SEND_CHUNK = 64 * 1024  # bytes per send() when not rate-limited
PACED_CHUNK = 16 * 1024  # bytes per send() when paced: ~13 ms at 10 Mbit/s
RECV_CHUNK = 256 * 1024

log = logging.getLogger("sidestep.burst")


class Stop(Exception):
    """SIGTERM/SIGINT: end the current phase, write the log, exit 0."""


def _raise_stop(signum: int, frame: Any) -> None:
    raise Stop("signal %d" % signum)


# --------------------------------------------------------------------------
# sender
# --------------------------------------------------------------------------
@dataclass(frozen=True)
class SenderConfig:
    """The on/off sender's parameters; validated on construction."""

    dst: str
    port: int
    src_port: int
    on_s: float
    off_s: float
    rate_mbps: float
    duration_s: float
    delay_s: float = 0.0
    out: Optional[str] = None
    connect_timeout_s: float = 30.0
    io_timeout_s: float = 30.0
    sndbuf_bytes: int = 128 * 1024

    def __post_init__(self) -> None:
        for name in ("on_s", "off_s", "rate_mbps", "duration_s", "delay_s"):
            value = getattr(self, name)
            if not (value >= 0 and math.isfinite(value)):
                raise ValueError("--%s must be a finite number >= 0 (got %r)" % (name.replace("_", "-"), value))
        if self.on_s <= 0:
            raise ValueError("--on-s must be > 0 (a sender that is never on sends nothing)")
        if not 1 <= self.port <= 65535:
            raise ValueError("--port must be in 1..65535 (got %d)" % self.port)
        if not 0 <= self.src_port <= 65535:
            raise ValueError("--src-port must be in 0..65535 (got %d)" % self.src_port)
        for name in ("connect_timeout_s", "io_timeout_s"):
            value = getattr(self, name)
            if not (value > 0 and math.isfinite(value)):
                raise ValueError("--%s must be a finite number of seconds > 0 (got %r)"
                                 % (name.replace("_", "-"), value))
        if self.sndbuf_bytes < 0:
            raise ValueError("--sndbuf-bytes must be >= 0 (0: the kernel's default)")


@dataclass
class Phase:
    """One phase of the schedule and what was sent in it."""

    index: int
    phase: str  # "on" or "off"
    planned_start_s: float
    planned_end_s: float
    start_s: float = 0.0
    end_s: float = 0.0
    bytes: int = 0
    unsent_bytes_at_end: Optional[int] = None

    def to_json(self) -> Dict[str, Any]:
        dur = self.end_s - self.start_s
        return {"index": self.index, "phase": self.phase,
                "planned_start_s": round(self.planned_start_s, 6), "planned_end_s": round(self.planned_end_s, 6),
                "start_s": round(self.start_s, 6), "end_s": round(self.end_s, 6), "bytes": self.bytes,
                "rate_bps": round(self.bytes * 8.0 / dur, 1) if dur > 0 else 0.0,
                "unsent_bytes_at_end": self.unsent_bytes_at_end}


def phase_schedule(on_s: float, off_s: float, duration_s: float,
                   delay_s: float = 0.0) -> Iterator[Tuple[str, float, float]]:
    """("on"|"off", start, end) offsets: delay (off), then on/off/on/... clipped at duration.

    ``duration_s`` 0 means endless.  With ``off_s`` 0 the sender is always on
    (one phase).  Pure, so tests and the lab can predict the phases.
    """
    end_all = duration_s if duration_s > 0 else math.inf
    t = 0.0
    if delay_s > 0:
        yield ("off", 0.0, min(delay_s, end_all))
        t = delay_s
    if off_s <= 0:
        if t < end_all:
            yield ("on", t, end_all)
        return
    on = True
    while t < end_all:
        length = on_s if on else off_s
        yield ("on" if on else "off", t, min(t + length, end_all))
        t += length
        on = not on


def _unsent(sock: socket.socket) -> Optional[int]:
    """Bytes still in the kernel send queue (SIOCOUTQ); None where not supported."""
    try:
        buf = fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0\0\0\0")
        return int.from_bytes(buf, sys.byteorder, signed=True)
    except (OSError, AttributeError):
        return None


def _send_on_phase(sock: socket.socket, cfg: SenderConfig, phase: Phase, t_end: float,
                   payload: memoryview) -> None:
    """Send during one "on" phase until monotonic ``t_end``, paced by a token bucket.

    The bucket starts empty at the phase start and fills at the rate, so the
    phase sends rate * length bytes at most, evenly; a send that cannot go (the
    network is slower than the rate) waits at most until the phase ends.
    """
    rate_Bps = cfg.rate_mbps * 1e6 / 8.0
    t0 = time.monotonic()
    last_progress = t0
    while True:
        now = time.monotonic()
        if now >= t_end:
            return
        if rate_Bps > 0:
            # send in slices of ~5 ms of the rate (at most PACED_CHUNK): smooth, few wake-ups
            want = min(PACED_CHUNK, max(1, int(rate_Bps * 0.005)))
            allowed = int(rate_Bps * (now - t0)) - phase.bytes
            if allowed < want:
                time.sleep(min(t_end - now, (want - allowed) / rate_Bps))
                continue
            n = min(allowed, PACED_CHUNK)
        else:
            n = SEND_CHUNK
        sock.settimeout(max(0.001, min(0.05, t_end - now)))
        try:
            k = sock.send(payload[:n])
        except socket.timeout:
            k = 0
        phase.bytes += k
        if k:
            last_progress = time.monotonic()
        elif time.monotonic() - last_progress > cfg.io_timeout_s:
            raise JobError("the sink at %s:%d accepted nothing for %.0f s" % (cfg.dst, cfg.port, cfg.io_timeout_s))


def _wait_silent(sock: socket.socket, t_end: float) -> None:
    """Sleep through an "off" phase, noticing if the sink goes away meanwhile."""
    while True:
        remaining = t_end - time.monotonic()
        if remaining <= 0:
            return
        sock.settimeout(min(remaining, 0.5))
        try:
            data = sock.recv(1)
        except socket.timeout:
            continue
        if not data:
            raise JobError("the sink closed the connection")
        # the sink never sends; ignore stray bytes


def run_sender(cfg: SenderConfig, phases: List[Phase], info: Dict[str, Any]) -> str:
    """Connect and run the schedule, appending to ``phases``; returns why it stopped.

    Raises :class:`JobError` when the sink is unreachable or the connection breaks;
    ``phases`` and ``info`` keep what was done so far for the log file.
    """
    deadline = time.monotonic() + cfg.connect_timeout_s
    what = "sink %s:%d" % (cfg.dst, cfg.port)
    sock = connect_with_retry((cfg.dst, cfg.port), cfg.src_port, deadline, what,
                              nodelay=False, sndbuf=cfg.sndbuf_bytes)
    info["local"] = fmt_addr(sock.getsockname())
    log.info("connected %s -> %s:%d", info["local"], cfg.dst, cfg.port)
    payload = memoryview(b"\xa5" * max(SEND_CHUNK, PACED_CHUNK))
    stopped = "schedule"
    try:
        t0 = time.monotonic()
        try:
            for i, (kind, a, b) in enumerate(phase_schedule(cfg.on_s, cfg.off_s, cfg.duration_s, cfg.delay_s)):
                phase = Phase(i, kind, a, b, start_s=time.time())
                phases.append(phase)
                try:
                    # a phase that starts late (slow send) is shortened, never shifted
                    if kind == "on":
                        _send_on_phase(sock, cfg, phase, t0 + b, payload)
                    else:
                        _wait_silent(sock, t0 + b)
                finally:
                    phase.end_s = time.time()
                    phase.unsent_bytes_at_end = _unsent(sock)
                log.info("phase %d %s: %d bytes (%.2f Mbit/s)", i, kind, phase.bytes,
                         phase.to_json()["rate_bps"] / 1e6)
        except Stop as exc:
            stopped = "signal"
            log.info("stopped by %s", exc)
        except OSError as exc:
            raise JobError("connection to %s lost: %s" % (what, exc)) from exc
        try:
            sock.shutdown(socket.SHUT_WR)
            sock.settimeout(5.0)
            while sock.recv(RECV_CHUNK):
                pass
        except OSError:
            pass
    finally:
        sock.close()
    return stopped


# --------------------------------------------------------------------------
# sink
# --------------------------------------------------------------------------
class Sink:
    """Accepts connections on a port and discards what they send, one thread each.

    ``serve`` runs in the caller's thread until ``stop`` (or the deadline);
    ``connections`` and ``total_bytes`` can be read at any time.
    """

    def __init__(self, port: int, host: str = "0.0.0.0") -> None:
        self.host = host
        self.port = port
        self._lock = threading.Lock()
        self._records: List[Dict[str, Any]] = []
        self._threads: List[threading.Thread] = []
        self._stop = threading.Event()
        self._lsock: Optional[socket.socket] = None

    def bind(self) -> int:
        """Listen now (so a test can learn the port before serving); returns the port."""
        lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            lsock.bind((self.host, self.port))
        except OSError as exc:
            lsock.close()
            raise JobError("cannot listen on %s:%d: %s" % (self.host, self.port, exc)) from exc
        lsock.listen(64)
        self._lsock = lsock
        self.port = lsock.getsockname()[1]
        return self.port

    def serve(self, duration_s: float = 0.0) -> None:
        if self._lsock is None:
            self.bind()
        assert self._lsock is not None
        end = time.monotonic() + duration_s if duration_s > 0 else math.inf
        self._lsock.settimeout(0.2)
        try:
            while not self._stop.is_set() and time.monotonic() < end:
                try:
                    conn, addr = self._lsock.accept()
                except socket.timeout:
                    continue
                rec = {"peer": fmt_addr(addr), "bytes": 0, "start_s": round(time.time(), 6), "end_s": None}
                with self._lock:
                    self._records.append(rec)
                t = threading.Thread(target=self._drain, args=(conn, rec), daemon=True,
                                     name="sink-%s" % rec["peer"])
                self._threads.append(t)
                t.start()
                log.info("sink: connection from %s", rec["peer"])
        finally:
            self._lsock.close()
            self._stop.set()
            for t in self._threads:
                t.join(timeout=1.0)

    def stop(self) -> None:
        self._stop.set()

    def _drain(self, conn: socket.socket, rec: Dict[str, Any]) -> None:
        """Read and discard until EOF or stop; closing after the peer keeps TIME_WAIT off this side."""
        buf = bytearray(RECV_CHUNK)
        conn.settimeout(0.5)
        try:
            while not self._stop.is_set():
                try:
                    k = conn.recv_into(buf)
                except socket.timeout:
                    continue
                except OSError as exc:
                    log.warning("sink: connection from %s broke: %s", rec["peer"], exc)
                    break
                if k == 0:
                    break
                with self._lock:
                    rec["bytes"] += k
        finally:
            conn.close()
            with self._lock:
                rec["end_s"] = round(time.time(), 6)
            log.info("sink: %s closed after %d bytes", rec["peer"], rec["bytes"])

    @property
    def connections(self) -> List[Dict[str, Any]]:
        with self._lock:
            return [dict(r) for r in self._records]

    @property
    def total_bytes(self) -> int:
        with self._lock:
            return sum(r["bytes"] for r in self._records)

    def to_json(self) -> Dict[str, Any]:
        conns = self.connections
        return {"format": SINK_FORMAT, "port": self.port, "total_bytes": sum(c["bytes"] for c in conns),
                "connections": conns}


# --------------------------------------------------------------------------
# command line
# --------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python3 -m mininet_topos.burst",
                                     description="On/off TCP burst sender and discarding sink for the lab hosts.")
    sub = parser.add_subparsers(dest="command", metavar="{send,sink}")
    sub.required = True
    s = sub.add_parser("send", help="periodic on/off sender over one long-lived TCP connection")
    s.add_argument("--dst", required=True, help="sink IP address")
    s.add_argument("--port", type=int, required=True, help="sink TCP port")
    s.add_argument("--src-port", type=int, default=0, help="fixed source port (0: ephemeral)")
    s.add_argument("--on-s", type=float, required=True, help="length of each on phase")
    s.add_argument("--off-s", type=float, required=True, help="length of each off phase (0: always on)")
    s.add_argument("--rate-mbps", type=float, default=0.0,
                   help="payload rate while on, Mbit/s (0: as fast as TCP goes)")
    s.add_argument("--duration-s", type=float, required=True, help="schedule length (0: until stopped)")
    s.add_argument("--delay-s", type=float, default=0.0, help="silence before the first on phase")
    s.add_argument("--out", help="JSON log of the phases (written atomically at the end)")
    s.add_argument("--connect-timeout-s", type=float, default=30.0)
    s.add_argument("--io-timeout-s", type=float, default=30.0,
                   help="fail when the sink accepts nothing for this long while on")
    s.add_argument("--sndbuf-bytes", type=int, default=128 * 1024,
                   help="socket send buffer; small keeps off phases quiet on the wire (0: kernel default)")
    s.add_argument("-q", "--quiet", action="store_true")
    k = sub.add_parser("sink", help="accept connections and discard their bytes")
    k.add_argument("--port", type=int, required=True)
    k.add_argument("--host", default="0.0.0.0")
    k.add_argument("--duration-s", type=float, default=0.0, help="stop after this long (0: until stopped)")
    k.add_argument("--out", help="JSON summary of the connections, written at the end")
    k.add_argument("-q", "--quiet", action="store_true")
    return parser


def _cmd_send(args: argparse.Namespace) -> int:
    try:
        cfg = SenderConfig(dst=args.dst, port=args.port, src_port=args.src_port, on_s=args.on_s,
                           off_s=args.off_s, rate_mbps=args.rate_mbps, duration_s=args.duration_s,
                           delay_s=args.delay_s, out=args.out, connect_timeout_s=args.connect_timeout_s,
                           io_timeout_s=args.io_timeout_s, sndbuf_bytes=args.sndbuf_bytes)
    except ValueError as exc:
        print("burst send: error: %s" % exc, file=sys.stderr)
        return 2
    phases: List[Phase] = []
    info: Dict[str, Any] = {"local": None}
    error: Optional[str] = None
    stopped = "error"
    handlers = {sig: signal.signal(sig, _raise_stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        stopped = run_sender(cfg, phases, info)
    except JobError as exc:
        error = str(exc)
    except Stop:
        stopped = "signal"  # during connection setup
    finally:
        for sig in handlers:                # until the report is written (write_report_atomic)
            signal.signal(sig, signal.SIG_IGN)
    if not cfg.out:
        for sig, old in handlers.items():
            signal.signal(sig, old)
    else:
        data = {"format": SEND_FORMAT, "ok": error is None, "error": error, "stopped": stopped,
                "dst": "%s:%d" % (cfg.dst, cfg.port), "local": info["local"], "src_port": cfg.src_port,
                "on_s": cfg.on_s, "off_s": cfg.off_s, "delay_s": cfg.delay_s, "rate_mbps": cfg.rate_mbps,
                "duration_s": cfg.duration_s, "total_bytes": sum(p.bytes for p in phases),
                "phases": [p.to_json() for p in phases]}
        try:
            write_report_atomic(cfg.out, data, handlers)
        except OSError as exc:
            print("burst send: error: cannot write %s: %s" % (cfg.out, exc), file=sys.stderr)
            return 1
    if error:
        print("burst send: error: %s" % error, file=sys.stderr)
        return 1
    return 0


def _cmd_sink(args: argparse.Namespace) -> int:
    sink = Sink(args.port, args.host)
    try:
        sink.bind()
    except JobError as exc:
        print("burst sink: error: %s" % exc, file=sys.stderr)
        return 1
    log.info("sink: listening on %s:%d", args.host, sink.port)
    handlers = {sig: signal.signal(sig, _raise_stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        sink.serve(args.duration_s)
    except Stop:
        sink.stop()
    finally:
        for sig in handlers:                # until the report is written (write_report_atomic)
            signal.signal(sig, signal.SIG_IGN)
    log.info("sink: %d bytes over %d connections", sink.total_bytes, len(sink.connections))
    if not args.out:
        for sig, old in handlers.items():
            signal.signal(sig, old)
    else:
        try:
            write_report_atomic(args.out, sink.to_json(), handlers)
        except OSError as exc:
            print("burst sink: error: cannot write %s: %s" % (args.out, exc), file=sys.stderr)
            return 1
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO,
                        format="%(asctime)s burst %(levelname)s %(message)s", stream=sys.stderr)
    if args.command == "send":
        return _cmd_send(args)
    return _cmd_sink(args)


if __name__ == "__main__":
    sys.exit(main())
