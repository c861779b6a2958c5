"""A distributed-training job emulator for the lab hosts: ring all-reduce over TCP.

Why it exists: Sidestep's claim is about training traffic, so the lab needs a job
whose traffic looks like NCCL's ring all-reduce on the wire, and whose iteration
time can be measured, without pulling a deep-learning framework onto Mininet hosts.
Standard library only (Debian's ``/usr/bin/python3`` on the lab hosts has nothing else).

One worker per host::

    python3 -m mininet_topos.trainjob worker --rank R --peers IP0:PORT0,IP1:PORT1,... \\
        --iterations N --message-bytes M --compute-s G --out FILE.json [--src-port P]

What goes on the wire (N = number of workers):

* Worker r listens on ``PORT_r`` (the r-th entry of ``--peers``; all on 0.0.0.0
  unless ``--listen-host``) and opens ONE TCP connection to worker r+1 mod N,
  kept open for the whole job, as NCCL keeps its ring channels.  The client
  side binds ``--src-port`` (SO_REUSEADDR), so the 5-tuple
  ``(IP_r, P, IP_{r+1}, PORT_{r+1}, tcp)`` is known before the job starts and
  stays the same across iterations: the controller sees one long-lived flow per
  ring hop, which it can pin and reroute.
* Setup retries until the next worker listens (the lab starts all workers at
  about the same time), up to ``--connect-timeout-s``.  A short hello in each
  direction checks rank and world size, so a wrong ``--peers`` order fails fast.
* Each iteration: a ring barrier (N-1 rounds of an 8-byte token, so that the
  iterations of all workers line up), the compute gap (sleep G), then the
  all-reduce: N-1 reduce-scatter steps and N-1 all-gather steps.  The message
  is cut into N chunks (sizes differ by at most one byte, summing to M); in each
  step a worker sends one chunk to the next rank while it receives one chunk
  from the previous rank, concurrently (non-blocking sockets and a selector),
  otherwise the ring deadlocks once a chunk exceeds the socket buffers.  So a
  worker sends 2(N-1)/N * M bytes per iteration (``bytes_sent``; the barrier
  tokens are not counted).  No arithmetic is done: the compute gap stands for it.
* At the end each worker half-closes the connection it receives on first, so
  the TIME_WAIT state lands on the listening side, not on the fixed source port
  (a rerun with the same ports is not refused).

Worker output (``--out``, written atomically: temp file + rename), format
``sidestep-trainjob-worker/1``::

    {"format": "sidestep-trainjob-worker/1", "ok": true, "error": null,
     "rank": 0, "world_size": 4, "peers": ["10.0.0.1:5000", ...],
     "iterations_requested": 10, "message_bytes": 4000000, "compute_s": 0.5,
     "connection": {"local": "10.0.0.1:41000", "remote": "10.0.0.2:5001",
                    "accepted_from": "10.0.0.4:41000", "setup_s": 0.31},
     "iterations": [{"index": 0, "start_s": 1700000000.12, "end_s": 1700000003.4,
                     "duration_s": 3.28, "compute_s": 0.5, "comm_s": 2.78,
                     "barrier_s": 0.001, "bytes_sent": 6000000, "bytes_received": 6000000,
                     "tcp": {"max_srtt_ms": 12.5, "retrans": 0}}, ...],
     "total_bytes_sent": 60000000, "shutdown": "clean"}

``tcp`` (where the kernel gives TCP_INFO) is about the connection the worker
sends on: the largest smoothed RTT read after each all-reduce step and the
segments retransmitted during the all-reduce.
``start_s`` is taken after the barrier (so it is the same moment on every worker,
up to the ring latency), ``end_s`` after the last all-gather step; times are
``time.time()`` so that workers on different hosts of one machine compare.
On failure the file is still written with ``"ok": false`` and ``"error"`` (and
the iterations done so far), a one-line message goes to stderr and the exit
code is 1 (2 for bad arguments, 143 when terminated by SIGTERM).

Job summary::

    python3 -m mininet_topos.trainjob report W0.json W1.json ... [--warmup K]

prints :func:`summarize` as JSON; see its docstring for the definitions.
"""
from __future__ import annotations

import argparse
import errno
import json
import logging
import math
import os
import selectors
import signal
import socket
import struct
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

__all__ = ["JobError", "ReportError", "WorkerConfig", "run_worker", "summarize", "percentile",
           "chunk_sizes", "parse_peers", "connect_with_retry", "write_json_atomic", "write_report_atomic", "main"]

FORMAT = "sidestep-trainjob-worker/1"
HELLO = struct.Struct("!4sHHH")  # magic, protocol version, rank, world size
HELLO_MAGIC = b"SSTJ"
PROTOCOL_VERSION = 1
TOKEN = struct.Struct("!4sQ")  # magic, iteration index (barrier token)
TOKEN_MAGIC = b"SSTB"
IO_CHUNK = 256 * 1024  # bytes per send()/recv_into() call

log = logging.getLogger("sidestep.trainjob")


class JobError(RuntimeError):
    """The job cannot go on (peer unreachable, connection reset, protocol mismatch).

    The message is meant for a person reading the lab's output: it names the peer
    and what to check.
    """


class ReportError(ValueError):
    """A worker file that cannot be summarised; the message names the file."""


class HelloMismatch(JobError):
    """A real trainjob worker answered, but not the one the ring expects here."""


class Terminated(Exception):
    """SIGTERM arrived: stop, but still write what was measured."""


# --------------------------------------------------------------------------
# configuration
# --------------------------------------------------------------------------
@dataclass(frozen=True)
class WorkerConfig:
    """Everything one worker needs; built from the command line or by a test."""

    rank: int
    peers: Tuple[Tuple[str, int], ...]
    iterations: int
    message_bytes: int
    compute_s: float
    out: str
    src_port: int = 0
    listen_host: str = "0.0.0.0"
    connect_timeout_s: float = 30.0
    io_timeout_s: float = 60.0

    def __post_init__(self) -> None:
        n = len(self.peers)
        if n < 2:
            raise ValueError("--peers needs at least 2 workers for a ring (got %d)" % n)
        if not 0 <= self.rank < n:
            raise ValueError("--rank %d is not in 0..%d (there are %d peers)" % (self.rank, n - 1, n))
        if self.iterations < 1:
            raise ValueError("--iterations must be >= 1 (got %d)" % self.iterations)
        if self.message_bytes < 0:
            raise ValueError("--message-bytes must be >= 0 (got %d)" % self.message_bytes)
        if not (self.compute_s >= 0 and math.isfinite(self.compute_s)):
            raise ValueError("--compute-s must be a finite number >= 0 (got %r)" % self.compute_s)
        if not 0 <= self.src_port <= 65535:
            raise ValueError("--src-port must be in 0..65535 (got %d)" % self.src_port)
        for name in ("connect_timeout_s", "io_timeout_s"):
            value = getattr(self, name)
            if not (value > 0 and math.isfinite(value)):
                raise ValueError("--%s must be a finite number of seconds > 0 (got %r)"
                                 % (name.replace("_", "-"), value))

    @property
    def world_size(self) -> int:
        return len(self.peers)

    @property
    def next_rank(self) -> int:
        return (self.rank + 1) % self.world_size

    @property
    def prev_rank(self) -> int:
        return (self.rank - 1) % self.world_size


def parse_peers(text: str) -> Tuple[Tuple[str, int], ...]:
    """``"IP:PORT,IP:PORT,..."`` -> ((ip, port), ...), in rank order; ValueError on nonsense."""
    peers = []
    for i, item in enumerate(p.strip() for p in text.split(",")):
        host, sep, port = item.rpartition(":")
        if not sep or not host:
            raise ValueError("peer %d %r is not IP:PORT" % (i, item))
        try:
            port_no = int(port)
        except ValueError:
            raise ValueError("peer %d %r: port %r is not a number" % (i, item, port)) from None
        if not 1 <= port_no <= 65535:
            raise ValueError("peer %d %r: port must be in 1..65535" % (i, item))
        peers.append((host, port_no))
    return tuple(peers)


def fmt_addr(addr: Tuple[Any, ...]) -> str:
    return "%s:%d" % (addr[0], addr[1])


def chunk_sizes(message_bytes: int, n: int) -> List[int]:
    """The N chunks of a ring all-reduce: sizes differ by at most one byte and sum to M."""
    base, extra = divmod(message_bytes, n)
    return [base + (1 if i < extra else 0) for i in range(n)]


def ring_schedule(rank: int, n: int) -> List[Tuple[int, int]]:
    """(chunk sent, chunk received) for each of the 2(N-1) steps, as NCCL's ring does it.

    Reduce-scatter step s: rank r sends chunk (r - s) and receives chunk (r - s - 1);
    all-gather step s: sends chunk (r + 1 - s), receives chunk (r - s).  The previous
    rank sends exactly the chunk this rank receives, so the sizes always match.
    """
    steps = [((rank - s) % n, (rank - s - 1) % n) for s in range(n - 1)]
    steps += [((rank + 1 - s) % n, (rank - s) % n) for s in range(n - 1)]
    return steps


# --------------------------------------------------------------------------
# sockets
# --------------------------------------------------------------------------
def connect_with_retry(dst: Tuple[str, int], src_port: int, deadline: float, what: str,
                       nodelay: bool = True, sndbuf: int = 0) -> socket.socket:
    """Connect to ``dst`` from a fixed source port, retrying until ``deadline`` (monotonic).

    ``what`` names the peer in error messages, address included (e.g. "next rank 1 (10.0.0.2:5001)").

    The peer may not listen yet (the lab starts everyone about together), so a
    refused or timed-out connect is retried with a short backoff.  A fresh socket
    is bound to ``src_port`` for every attempt (SO_REUSEADDR), which keeps the
    5-tuple the one the lab announced.  Raises :class:`JobError` at the deadline.
    """
    delay = 0.05
    last: Optional[BaseException] = None
    attempts = 0
    while True:
        attempts += 1
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if nodelay:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if sndbuf > 0:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)
            if src_port:
                sock.bind(("0.0.0.0", src_port))
            remaining = deadline - time.monotonic()
            sock.settimeout(max(0.1, min(2.0, remaining)))
            sock.connect(dst)
            sock.settimeout(None)
            return sock
        except OSError as exc:
            sock.close()
            last = exc
            # EADDRINUSE/EADDRNOTAVAIL: the fixed 5-tuple may still be in TIME_WAIT from
            # a previous run, or another program holds the port; worth retrying too.
            if exc.errno not in (errno.ECONNREFUSED, errno.ECONNRESET, errno.ETIMEDOUT,
                                 errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EADDRINUSE,
                                 errno.EADDRNOTAVAIL, errno.ECONNABORTED, None) \
                    and not isinstance(exc, socket.timeout):
                raise JobError("cannot connect to %s from source port %d: %s"
                               % (what, src_port, exc)) from exc
        if time.monotonic() + delay > deadline:
            hint = ""
            if isinstance(last, OSError) and last.errno in (errno.EADDRINUSE, errno.EADDRNOTAVAIL):
                hint = " (source port %d is in use: pick another --src-port)" % src_port
            raise JobError("%s unreachable: gave up after %d attempts within the connect deadline "
                           "(last error: %s)%s" % (what, attempts, last, hint))
        time.sleep(delay)
        delay = min(delay * 1.5, 0.5)


def recv_exact(sock: socket.socket, n: int, deadline: float, what: str) -> bytes:
    """Blocking read of exactly ``n`` bytes before ``deadline`` (monotonic); used for the hello."""
    buf = bytearray()
    while len(buf) < n:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise JobError("%s sent no hello before the deadline" % what)
        sock.settimeout(remaining)
        try:
            data = sock.recv(n - len(buf))
        except socket.timeout:
            continue
        if not data:
            raise JobError("%s closed the connection during the hello" % what)
        buf += data
    sock.settimeout(None)
    return bytes(buf)


def check_hello(data: bytes, expect_rank: int, world: int, what: str) -> None:
    magic, version, rank, size = HELLO.unpack(data)
    if magic != HELLO_MAGIC:
        raise JobError("%s is not a trainjob worker (bad hello); is another program on that port?" % what)
    if version != PROTOCOL_VERSION:
        raise HelloMismatch("%s speaks trainjob protocol %d, this worker %d" % (what, version, PROTOCOL_VERSION))
    if (rank, size) != (expect_rank, world):
        raise HelloMismatch("%s says it is rank %d of %d, expected rank %d of %d (check the --peers order)"
                       % (what, rank, size, expect_rank, world))


def exchange(out_sock: socket.socket, in_sock: socket.socket, out_data: memoryview,
             in_buf: memoryview, io_timeout_s: float, what: str) -> None:
    """Send ``out_data`` on ``out_sock`` while receiving exactly ``len(in_buf)`` bytes.

    Both directions progress together (one selector, non-blocking sockets): in a
    ring everyone sends before anyone reads, so blocking sends would deadlock as
    soon as a chunk exceeds the socket buffers.  Fails when neither direction makes
    progress for ``io_timeout_s`` or when a peer closes or resets.
    """
    sent, got = 0, 0
    n_out, n_in = len(out_data), len(in_buf)
    if n_out == 0 and n_in == 0:
        return
    sel = selectors.DefaultSelector()
    try:
        if out_sock is in_sock:  # never in a ring of >= 2, but stay correct
            raise JobError("internal error: the same socket for both directions")
        if n_out:
            sel.register(out_sock, selectors.EVENT_WRITE)
        if n_in:
            sel.register(in_sock, selectors.EVENT_READ)
        last_progress = time.monotonic()
        while sent < n_out or got < n_in:
            events = sel.select(timeout=1.0)
            progressed = False
            for key, mask in events:
                try:
                    if key.fileobj is out_sock and mask & selectors.EVENT_WRITE:
                        k = out_sock.send(out_data[sent:sent + IO_CHUNK])
                        sent += k
                        progressed = progressed or k > 0
                        if sent >= n_out:
                            sel.unregister(out_sock)
                    elif key.fileobj is in_sock and mask & selectors.EVENT_READ:
                        k = in_sock.recv_into(in_buf[got:], min(IO_CHUNK, n_in - got))
                        if k == 0:
                            raise JobError("%s: the previous rank closed its connection mid-iteration "
                                           "(it probably failed; see its output)" % what)
                        got += k
                        progressed = True
                        if got >= n_in:
                            sel.unregister(in_sock)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError as exc:  # reset, broken pipe, TCP retransmission timeout
                    side = "next rank" if key.fileobj is out_sock else "previous rank"
                    raise JobError("%s: connection to the %s lost (%s; it probably failed, see its output)"
                                   % (what, side, exc)) from exc
            now = time.monotonic()
            if progressed:
                last_progress = now
            elif now - last_progress > io_timeout_s:
                raise JobError("%s: no progress for %.0f s (sent %d/%d bytes, received %d/%d); "
                               "a peer is stuck or the path is black-holed"
                               % (what, io_timeout_s, sent, n_out, got, n_in))
    finally:
        sel.close()


# Linux's struct tcp_info up to tcpi_total_retrans: 8 one-byte fields, then 24 __u32
# (rto, ato, snd_mss, rcv_mss, unacked, sacked, lost, retrans, fackets, 4 x last_*,
# pmtu, rcv_ssthresh, rtt, rttvar, snd_ssthresh, snd_cwnd, advmss, reordering,
# rcv_rtt, rcv_space, total_retrans)
_TCP_INFO = struct.Struct("=8B24I")
_RTT, _CWND, _TOTAL_RETRANS = 8 + 15, 8 + 18, 8 + 23


def parse_tcp_info(raw: bytes) -> Dict[str, float]:
    """The smoothed RTT (ms), congestion window (segments) and retransmissions so far from TCP_INFO bytes."""
    fields = _TCP_INFO.unpack_from(raw)
    return {"srtt_ms": fields[_RTT] / 1000.0, "cwnd": fields[_CWND], "total_retrans": fields[_TOTAL_RETRANS]}


def tcp_info(sock: socket.socket) -> Optional[Dict[str, float]]:
    """``parse_tcp_info`` of a connected socket, or None where the kernel does not give it.

    Why the worker reads it: a slow iteration on the lab is either a slow path
    (queueing: the smoothed RTT of the connection that sends, ACKs included)
    or losses (retransmissions) or neither (CPU), and these tell them apart.
    """
    option = getattr(socket, "TCP_INFO", None)
    if option is None:
        return None
    try:
        raw = sock.getsockopt(socket.IPPROTO_TCP, option, _TCP_INFO.size)
    except OSError:
        return None
    return parse_tcp_info(raw) if len(raw) >= _TCP_INFO.size else None


# --------------------------------------------------------------------------
# the worker
# --------------------------------------------------------------------------
@dataclass
class WorkerResult:
    """What a worker measured; :meth:`to_json` is the ``--out`` format."""

    config: WorkerConfig
    iterations: List[Dict[str, Any]] = field(default_factory=list)
    connection: Dict[str, Any] = field(default_factory=dict)
    error: Optional[str] = None
    shutdown: str = "not reached"

    def to_json(self) -> Dict[str, Any]:
        c = self.config
        return {
            "format": FORMAT,
            "ok": self.error is None,
            "error": self.error,
            "rank": c.rank,
            "world_size": c.world_size,
            "peers": [fmt_addr(p) for p in c.peers],
            "iterations_requested": c.iterations,
            "message_bytes": c.message_bytes,
            "compute_s": c.compute_s,
            "src_port": c.src_port,
            "connection": self.connection,
            "iterations": self.iterations,
            "total_bytes_sent": sum(it["bytes_sent"] for it in self.iterations),
            "shutdown": self.shutdown,
        }


def _listen(cfg: WorkerConfig) -> socket.socket:
    port = cfg.peers[cfg.rank][1]
    lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        lsock.bind((cfg.listen_host, port))
    except OSError as exc:
        lsock.close()
        raise JobError("rank %d cannot listen on %s:%d: %s" % (cfg.rank, cfg.listen_host, port, exc)) from exc
    lsock.listen(8)
    return lsock


def _accept_prev(lsock: socket.socket, cfg: WorkerConfig, deadline: float) -> Tuple[socket.socket, str]:
    """Accept the previous rank's connection; strays (bad hello) are closed and skipped."""
    what = "previous rank %d" % cfg.prev_rank
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise JobError("%s (%s) never connected within the connect deadline; did it start?"
                           % (what, fmt_addr(cfg.peers[cfg.prev_rank])))
        lsock.settimeout(remaining)
        try:
            conn, addr = lsock.accept()
        except socket.timeout:
            continue
        try:
            hello = recv_exact(conn, HELLO.size, min(deadline, time.monotonic() + 5.0),
                               "%s (from %s)" % (what, fmt_addr(addr)))
            check_hello(hello, cfg.prev_rank, cfg.world_size, "%s (from %s)" % (what, fmt_addr(addr)))
        except HelloMismatch:
            conn.close()
            raise
        except JobError as exc:
            log.warning("rank %d: ignoring connection from %s: %s", cfg.rank, fmt_addr(addr), exc)
            conn.close()
            continue
        conn.sendall(HELLO.pack(HELLO_MAGIC, PROTOCOL_VERSION, cfg.rank, cfg.world_size))
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return conn, fmt_addr(addr)


def _setup(cfg: WorkerConfig, result: WorkerResult) -> Tuple[socket.socket, socket.socket]:
    """Listen, connect to the next rank (retrying), accept the previous one; returns (out, in).

    Order matters: a worker answers its previous rank's hello before it waits for
    its next rank's answer, otherwise every worker would wait on the next one
    around the ring and nobody would ever accept.
    """
    t0 = time.monotonic()
    deadline = t0 + cfg.connect_timeout_s
    lsock = _listen(cfg)
    try:
        nxt = cfg.peers[cfg.next_rank]
        what = "next rank %d (%s)" % (cfg.next_rank, fmt_addr(nxt))
        out_sock = connect_with_retry(nxt, cfg.src_port, deadline, what)
        in_sock: Optional[socket.socket] = None
        try:
            out_sock.sendall(HELLO.pack(HELLO_MAGIC, PROTOCOL_VERSION, cfg.rank, cfg.world_size))
            in_sock, from_addr = _accept_prev(lsock, cfg, deadline)
            check_hello(recv_exact(out_sock, HELLO.size, deadline, what), cfg.next_rank, cfg.world_size, what)
        except BaseException:
            out_sock.close()
            if in_sock is not None:
                in_sock.close()
            raise
    finally:
        lsock.close()  # one connection in, for the whole job
    result.connection = {"local": fmt_addr(out_sock.getsockname()), "remote": fmt_addr(nxt),
                         "accepted_from": from_addr, "setup_s": round(time.monotonic() - t0, 6)}
    out_sock.setblocking(False)
    in_sock.setblocking(False)
    return out_sock, in_sock


def _barrier(out_sock: socket.socket, in_sock: socket.socket, cfg: WorkerConfig, index: int) -> None:
    """Ring barrier: N-1 rounds of send-token-to-next / receive-token-from-previous.

    After round j a worker knows that the j+1 ranks before it have reached this
    iteration, so after N-1 rounds everyone has.  The token carries the iteration
    index, which catches workers that drifted apart.
    """
    token = memoryview(TOKEN.pack(TOKEN_MAGIC, index))
    buf = bytearray(TOKEN.size)
    for rnd in range(cfg.world_size - 1):
        exchange(out_sock, in_sock, token, memoryview(buf), cfg.io_timeout_s,
                 "rank %d barrier before iteration %d" % (cfg.rank, index))
        magic, got = TOKEN.unpack(bytes(buf))
        if magic != TOKEN_MAGIC or got != index:
            raise JobError("rank %d: ring out of step before iteration %d (previous rank sent %r, %d)"
                           % (cfg.rank, index, magic, got))


def _goodbye(out_sock: socket.socket, in_sock: socket.socket, cfg: WorkerConfig) -> str:
    """Half-close the receiving side first, then wait for the next rank's half-close.

    The side that sends the first FIN keeps TIME_WAIT; doing it on the accepted
    (listening) side keeps the fixed source port free for the next run.
    """
    try:
        in_sock.shutdown(socket.SHUT_WR)
    except OSError:
        pass
    out_sock.setblocking(True)
    out_sock.settimeout(min(cfg.io_timeout_s, 10.0))
    try:
        data = out_sock.recv(16)
        status = "clean" if not data else "unexpected data from next rank"
    except socket.timeout:
        status = "next rank did not close in time"
    except OSError as exc:
        status = "next rank closed abruptly (%s)" % exc
    return status


def run_worker(cfg: WorkerConfig, result: Optional[WorkerResult] = None) -> WorkerResult:
    """Run one worker to completion; raises :class:`JobError` (``result`` keeps partial data)."""
    result = result if result is not None else WorkerResult(cfg)
    n = cfg.world_size
    chunks = chunk_sizes(cfg.message_bytes, n)
    offsets = [sum(chunks[:i]) for i in range(n)]
    send_buf = memoryview(bytearray(os.urandom(64)) * (cfg.message_bytes // 64 + 1))[:cfg.message_bytes]
    recv_buf = memoryview(bytearray(cfg.message_bytes))
    steps = ring_schedule(cfg.rank, n)
    out_sock, in_sock = _setup(cfg, result)
    log.info("rank %d: ring up in %.2f s: %s -> %s", cfg.rank, result.connection["setup_s"],
             result.connection["local"], result.connection["remote"])
    try:
        for i in range(cfg.iterations):
            t_b = time.monotonic()
            _barrier(out_sock, in_sock, cfg, i)
            start = time.time()
            t_c = time.monotonic()
            if cfg.compute_s > 0:
                time.sleep(cfg.compute_s)
            t_comm = time.monotonic()
            sent = received = 0
            tcp_start = tcp_info(out_sock)
            srtt_max = 0.0
            for s, (c_out, c_in) in enumerate(steps):
                exchange(out_sock, in_sock, send_buf[offsets[c_out]:offsets[c_out] + chunks[c_out]],
                         recv_buf[offsets[c_in]:offsets[c_in] + chunks[c_in]], cfg.io_timeout_s,
                         "rank %d iteration %d step %d" % (cfg.rank, i, s))
                sent += chunks[c_out]
                received += chunks[c_in]
                now_tcp = tcp_info(out_sock)
                if now_tcp is not None:
                    srtt_max = max(srtt_max, now_tcp["srtt_ms"])
            end = time.time()
            t_end = time.monotonic()
            record = {
                "index": i, "start_s": round(start, 6), "end_s": round(end, 6),
                "duration_s": round(end - start, 6), "compute_s": round(t_comm - t_c, 6),
                "comm_s": round(t_end - t_comm, 6), "barrier_s": round(t_c - t_b, 6),
                "bytes_sent": sent, "bytes_received": received}
            tcp_end = tcp_info(out_sock)
            if tcp_start is not None and tcp_end is not None:
                # the connection this worker sends on: its largest smoothed RTT after a step, and
                # the segments it retransmitted during the all-reduce
                record["tcp"] = {"max_srtt_ms": round(srtt_max, 3),
                                 "retrans": int(tcp_end["total_retrans"] - tcp_start["total_retrans"])}
            result.iterations.append(record)
            log.info("rank %d: iteration %d start %.6f end %.6f (%.3f s, comm %.3f s)",
                     cfg.rank, i, start, end, end - start, t_end - t_comm)
        result.shutdown = _goodbye(out_sock, in_sock, cfg)
    finally:
        out_sock.close()
        in_sock.close()
    return result


# --------------------------------------------------------------------------
# output and report
# --------------------------------------------------------------------------
def write_report_atomic(path: str, data: Dict[str, Any], handlers: Dict[int, Any]) -> None:
    """``write_json_atomic`` with ``handlers``' signals ignored until it is written, then restored.

    Why: a worker writes its report after the lab's SIGTERM, or after its peer
    stopped (the lab stops receivers first), when the SIGTERM may still be on
    its way.  With the default handler back in place, that late signal killed
    the worker inside the write and left an empty temporary file instead of
    the report, and the lab's run had no flow trace.  ``handlers`` maps each
    signal to the handler to restore afterwards.
    """
    for sig in handlers:
        signal.signal(sig, signal.SIG_IGN)
    try:
        write_json_atomic(path, data)
    finally:
        for sig, old in handlers.items():
            signal.signal(sig, old)


def write_json_atomic(path: str, data: Dict[str, Any]) -> None:
    """Write JSON to ``path`` via a temp file in the same folder and a rename.

    A reader (the lab) never sees half a file, even if the worker is killed mid-write.
    """
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".%s." % os.path.basename(path), suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump(data, handle, indent=1)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def percentile(values: Sequence[float], q: float) -> float:
    """q-th percentile with linear interpolation (numpy's default), so the lab and replay agree."""
    if not values:
        raise ValueError("percentile of no values")
    xs = sorted(values)
    pos = (len(xs) - 1) * q / 100.0
    lo = int(math.floor(pos))
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def _load_worker_file(path: str) -> Dict[str, Any]:
    try:
        with open(path) as handle:
            data = json.load(handle)
    except OSError as exc:
        raise ReportError("%s: cannot read: %s" % (path, exc.strerror or exc)) from exc
    except ValueError as exc:
        raise ReportError("%s: not valid JSON: %s" % (path, exc)) from exc
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ReportError("%s: not a trainjob worker file (format is not %r)" % (path, FORMAT))
    if not data.get("ok", False):
        raise ReportError("%s: worker rank %s failed: %s" % (path, data.get("rank"), data.get("error")))
    its = data.get("iterations")
    if not isinstance(its, list):
        raise ReportError("%s: 'iterations' is not a list" % path)
    for j, it in enumerate(its):
        for key in ("start_s", "end_s", "bytes_sent"):
            if not isinstance(it, dict) or not isinstance(it.get(key), (int, float)):
                raise ReportError("%s: iteration %d has no numeric %r" % (path, j, key))
    return data


def summarize(files: Sequence[str], warmup: int = 0) -> Dict[str, Any]:
    """Job-level statistics from the workers' files.

    Iteration time of the JOB, per iteration index i (a job is as slow as its
    slowest worker, and an iteration starts when the previous one has finished
    everywhere)::

        t_i = max_w end_w[i] - max_w end_w[i-1]      for i >= 1
        t_0 = max_w end_w[0] - max_w start_w[0]

    so t_i includes the barrier, the compute gap and the all-reduce: the sum of
    the t_i is the job's wall-clock time from the first start to the last end.
    This matches ``controller.replay.iteration_times`` (last finish of i minus
    last finish of i-1).  The first ``warmup`` iterations are excluded from every
    statistic (connection slow start, first-iteration skew); their end times
    still anchor the first counted iteration.

    Returns ``mean_iteration_s``, ``p99_iteration_s`` (linear interpolation, as
    numpy's default), ``median_iteration_s``, ``min_iteration_s``,
    ``max_iteration_s``, ``iterations`` (counted), ``warmup``, ``workers``,
    ``iteration_s`` (the counted t_i), ``total_s`` (their sum),
    ``bytes_per_worker`` (mean over workers of bytes sent in the counted
    iterations), ``throughput_bps`` = 8 * bytes_per_worker / total_s: the
    bits each worker moved per second of job iteration time (NCCL's
    "bus bandwidth" up to the compute gap), and ``tcp`` (None unless every
    counted iteration of every worker has its TCP readings): the segments
    retransmitted, and the median and largest of the per-iteration largest
    smoothed RTTs.  Raises :class:`ReportError`.
    """
    if not files:
        raise ReportError("no worker files given")
    if warmup < 0:
        raise ReportError("--warmup must be >= 0 (got %d)" % warmup)
    workers = [(path, _load_worker_file(path)) for path in files]
    ranks: Dict[int, str] = {}
    for path, data in workers:
        rank = data.get("rank")
        if rank in ranks:
            raise ReportError("%s: rank %s already read from %s" % (path, rank, ranks[rank]))
        ranks[rank] = path
    counts = {len(d["iterations"]) for _, d in workers}
    if len(counts) != 1:
        detail = ", ".join("%s: %d" % (p, len(d["iterations"])) for p, d in workers)
        raise ReportError("workers report different numbers of iterations (%s)" % detail)
    n = counts.pop()
    if warmup >= n:
        raise ReportError("--warmup %d leaves no iteration to count (the job ran %d)" % (warmup, n))
    ends = [max(d["iterations"][i]["end_s"] for _, d in workers) for i in range(n)]
    first_start = max(d["iterations"][0]["start_s"] for _, d in workers)
    times = [ends[i] - (ends[i - 1] if i else first_start) for i in range(n)]
    counted = times[warmup:]
    total = sum(counted)
    bytes_per_worker = sum(sum(it["bytes_sent"] for it in d["iterations"][warmup:])
                           for _, d in workers) / len(workers)
    tcp = [it.get("tcp") for _, d in workers for it in d["iterations"][warmup:]]
    tcp_summary = None
    if tcp and all(isinstance(t, dict) for t in tcp):
        srtt = [float(t["max_srtt_ms"]) for t in tcp]
        tcp_summary = {"retrans": int(sum(t["retrans"] for t in tcp)),
                       "max_srtt_ms_median": percentile(srtt, 50), "max_srtt_ms_max": max(srtt)}
    return {
        "workers": len(workers),
        "iterations": len(counted),
        "warmup": warmup,
        "mean_iteration_s": total / len(counted),
        "p99_iteration_s": percentile(counted, 99),
        "median_iteration_s": percentile(counted, 50),
        "min_iteration_s": min(counted),
        "max_iteration_s": max(counted),
        "iteration_s": counted,
        "total_s": total,
        "bytes_per_worker": bytes_per_worker,
        "throughput_bps": 8.0 * bytes_per_worker / total if total > 0 else 0.0,
        "tcp": tcp_summary,
    }


# --------------------------------------------------------------------------
# command line
# --------------------------------------------------------------------------
def _raise_terminated(signum: int, frame: Any) -> None:
    raise Terminated("terminated by signal %d" % signum)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python3 -m mininet_topos.trainjob",
                                     description="Ring all-reduce training-job emulator for the lab hosts.")
    sub = parser.add_subparsers(dest="command", metavar="{worker,report}")
    sub.required = True
    w = sub.add_parser("worker", help="run one worker of the ring")
    w.add_argument("--rank", type=int, required=True, help="this worker's rank (index into --peers)")
    w.add_argument("--peers", required=True, help="IP:PORT of every worker, in rank order, comma-separated")
    w.add_argument("--iterations", type=int, required=True)
    w.add_argument("--message-bytes", type=int, required=True,
                   help="all-reduce message size M; each step moves about M/N bytes")
    w.add_argument("--compute-s", type=float, required=True, help="compute gap before each all-reduce")
    w.add_argument("--out", required=True, help="JSON result file (written atomically at the end)")
    w.add_argument("--src-port", type=int, default=0,
                   help="fixed source port of the connection to the next rank (0: ephemeral)")
    w.add_argument("--listen-host", default="0.0.0.0", help="address to listen on (default 0.0.0.0)")
    w.add_argument("--connect-timeout-s", type=float, default=30.0,
                   help="deadline for the ring to come up (default 30)")
    w.add_argument("--io-timeout-s", type=float, default=60.0,
                   help="fail when a step makes no progress for this long (default 60)")
    w.add_argument("-q", "--quiet", action="store_true", help="log only warnings and errors")
    r = sub.add_parser("report", help="summarise worker files (JSON on stdout)")
    r.add_argument("files", nargs="+")
    r.add_argument("--warmup", type=int, default=0, help="leading iterations to exclude (default 0)")
    return parser


def _cmd_worker(args: argparse.Namespace) -> int:
    prog = "trainjob worker"
    try:
        cfg = WorkerConfig(rank=args.rank, peers=parse_peers(args.peers), iterations=args.iterations,
                           message_bytes=args.message_bytes, compute_s=args.compute_s, out=args.out,
                           src_port=args.src_port, listen_host=args.listen_host,
                           connect_timeout_s=args.connect_timeout_s, io_timeout_s=args.io_timeout_s)
    except ValueError as exc:
        print("%s: error: %s" % (prog, exc), file=sys.stderr)
        return 2
    result = WorkerResult(cfg)
    code = 0
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        run_worker(cfg, result)
    except JobError as exc:
        result.error = str(exc)
        code = 1
    except OSError as exc:
        result.error = "rank %d: network error: %s" % (cfg.rank, exc)
        code = 1
    except Terminated as exc:
        result.error = "rank %d %s" % (cfg.rank, exc)
        code = 143
    except KeyboardInterrupt:
        result.error = "rank %d interrupted" % cfg.rank
        code = 130
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)     # until the report is written (write_report_atomic)
    try:
        write_report_atomic(cfg.out, result.to_json(), {signal.SIGTERM: previous})
    except OSError as exc:
        print("%s: error: rank %d cannot write %s: %s" % (prog, cfg.rank, cfg.out, exc), file=sys.stderr)
        return code or 1
    if result.error:
        print("%s: error: %s" % (prog, result.error), file=sys.stderr)
    return code


def _cmd_report(args: argparse.Namespace) -> int:
    try:
        summary = summarize(args.files, warmup=args.warmup)
    except ReportError as exc:
        print("trainjob report: error: %s" % exc, file=sys.stderr)
        return 2
    json.dump(summary, sys.stdout, indent=1)
    sys.stdout.write("\n")
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING if getattr(args, "quiet", False) else logging.INFO,
                        format="%(asctime)s trainjob %(levelname)s %(message)s", stream=sys.stderr)
    if args.command == "worker":
        return _cmd_worker(args)
    return _cmd_report(args)


if __name__ == "__main__":
    sys.exit(main())
