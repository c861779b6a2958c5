"""The Mininet lab: Open vSwitch (userspace datapath), a fat-tree, and the Sidestep controller.

Used by ``sidestep lab`` and by the integration tests.  ``Lab`` is a context
manager whose exit always tears everything down (Mininet hosts and links, OVS
bridges, the controller process), on success, failure or Ctrl-C.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from typing import Any, Callable, Dict, List, Optional, Sequence

from controller.listening import listening_on
from mininet_topos.fattree_spec import FatTreeSpec, fat_tree
from mininet_topos.interrupts import interrupts_deferred

OVS_CTL = "/usr/share/openvswitch/scripts/ovs-ctl"
# ovs-vswitchd's packet sockets' send buffer (net.core.wmem_default when it makes them): see ensure_send_buffer
OVS_SEND_BUFFER_BYTES = 8 * 1024 * 1024
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class LabError(RuntimeError):
    """The lab cannot run here; the message says why and what to do."""


def wait_for(predicate: Callable[[], object], timeout_s: float, what: str, interval_s: float = 0.2) -> Any:
    """Poll ``predicate`` until it returns a truthy value or the deadline passes."""
    deadline = time.monotonic() + timeout_s
    last_exc: Optional[BaseException] = None
    while True:
        try:
            value = predicate()
            if value:
                return value
        except (OSError, ValueError, urllib.error.URLError) as exc:
            last_exc = exc
        if time.monotonic() > deadline:
            extra = " (last error: %s)" % last_exc if last_exc else ""
            raise LabError("timed out after %.0f s waiting for %s%s" % (timeout_s, what, extra))
        time.sleep(interval_s)


def check_root() -> None:
    if os.geteuid() != 0:
        raise LabError("the lab needs root (Mininet creates network namespaces and OVS bridges); "
                       "run it as root, e.g. with sudo")


# what the lab runs besides Open vSwitch, and the Debian package of each
LAB_TOOLS = (("mn", "mininet"), ("iperf3", "iperf3"), ("ethtool", "ethtool"), ("tc", "iproute2"))


def check_tools() -> None:
    """Refuse to start without a tool the lab needs (without ethtool, say, TCP would stall silently)."""
    missing = [(tool, pkg) for tool, pkg in LAB_TOOLS if shutil.which(tool) is None]
    if missing:
        raise LabError("the lab needs %s, which %s not installed; install %s (the README's setup command, "
                       "bash scripts/setup.sh, does this)"
                       % (", ".join(t for t, _ in missing), "is" if len(missing) == 1 else "are",
                          "'apt-get install %s'" % " ".join(p for _, p in missing)))


def _ovs_up() -> bool:
    """Both daemons answer: ``ovs-vsctl show`` needs only ovsdb-server, bridges need ovs-vswitchd too."""
    return all(subprocess.call(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) == 0
               for cmd in (["ovs-vsctl", "--timeout=3", "show"],
                           ["ovs-appctl", "-T", "3", "-t", "ovs-vswitchd", "version"]))


def small_ovs_send_buffers(ss_output: str, need_bytes: int = OVS_SEND_BUFFER_BYTES) -> List[int]:
    """The send-buffer sizes (``tb`` in ``ss -0 -m -n -p``) of ovs-vswitchd's packet sockets below ``need_bytes``."""
    small = []
    for line in ss_output.splitlines():
        if "ovs-vswitchd" not in line:
            continue
        for tb in re.findall(r"\btb(\d+)", line):
            if int(tb) < need_bytes:
                small.append(int(tb))
    return small


def ensure_send_buffer() -> bool:
    """Give ovs-vswitchd's packet sockets a send buffer of ``OVS_SEND_BUFFER_BYTES``; True: restart it.

    Why: the userspace datapath sends every packet of every port through one
    AF_PACKET socket, made with the kernel's default send buffer
    (``net.core.wmem_default``, 208 KiB here).  A packet waiting in a shaped
    link's queue is charged to that socket until it leaves, so a few full
    queues use up the buffer, and then a send on *any* port fails with EAGAIN
    and ovs-vswitchd drops the packet (its log: "error sending Ethernet packet
    ... Resource temporarily unavailable"), counted nowhere else.  In the lab
    that dropped the ring's packets whenever the hotspot's queues were full,
    on paths that shared no link with it (docs/lab.md, "The lost packets").
    The socket takes the default when ovs-vswitchd makes it, so a running
    ovs-vswitchd whose sockets have a smaller buffer must be restarted.
    """
    path = "/proc/sys/net/core/wmem_default"
    try:
        with open(path) as handle:
            current = int(handle.read().split()[0])
        if current < OVS_SEND_BUFFER_BYTES:
            with open(path, "w") as handle:
                handle.write("%d\n" % OVS_SEND_BUFFER_BYTES)
    except (OSError, ValueError) as exc:
        raise LabError("cannot raise net.core.wmem_default to %d (%s): without it Open vSwitch drops packets "
                       "under load; run as root (sysctl -w net.core.wmem_default=%d)"
                       % (OVS_SEND_BUFFER_BYTES, exc, OVS_SEND_BUFFER_BYTES)) from exc
    try:
        listing = subprocess.run(["ss", "-0", "-m", "-n", "-p"], stdout=subprocess.PIPE,
                                 stderr=subprocess.DEVNULL, universal_newlines=True).stdout
    except OSError:     # no ss (iproute2): the sockets cannot be checked; the sysctl is set for the next start
        return False
    return bool(small_ovs_send_buffers(listing))


def ensure_ovs() -> None:
    """Start Open vSwitch if it is not running (userspace datapath: no kernel module needed), or
    restart it if its packet sockets were made with too small a send buffer (``ensure_send_buffer``)."""
    if shutil.which("ovs-vsctl") is None or not os.path.exists(OVS_CTL):
        raise LabError("Open vSwitch is not installed; install it with "
                       "'apt-get install openvswitch-switch' (the README's setup command does this)")
    restart = ensure_send_buffer()
    if _ovs_up() and not restart:
        return
    if restart:
        print("sidestep lab: restarting Open vSwitch: its packet sockets have a send buffer below %d bytes "
              "(docs/lab.md, \"The lost packets\")" % OVS_SEND_BUFFER_BYTES, file=sys.stderr)
    proc = subprocess.run([OVS_CTL, "restart" if restart else "start"], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, universal_newlines=True)
    if not _ovs_up():
        raise LabError("Open vSwitch did not start (ovsdb-server and ovs-vswitchd must both run):\n%s"
                       % proc.stdout[-2000:])


def mininet_cleanup() -> None:
    """Remove stale Mininet hosts, links and OVS bridges (``mn -c``)."""
    subprocess.call(["mn", "-c"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    """True if no controller listens on ``host:port`` (see ``controller.listening``)."""
    return not listening_on(host, port)


def free_port() -> int:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


def http_json(url: str, timeout_s: float = 2.0, payload: Any = None) -> Any:
    """GET ``url`` (or, with ``payload``, POST it as JSON) and decode the JSON answer."""
    req = urllib.request.Request(url) if payload is None else urllib.request.Request(
        url, data=json.dumps(payload).encode("utf-8"), method="POST", headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout_s) as resp:
        return json.loads(resp.read().decode("utf-8"))


class ControllerProcess:
    """The Sidestep controller as a separate process, the way a user runs it."""

    def __init__(self, out_dir: str, *, ofp_port: int = 6653, rest_port: int = 0,
                 config: Optional[str] = None, overrides: Optional[Dict[str, object]] = None,
                 record: Optional[str] = None, python: Optional[str] = None,
                 command: Optional[Sequence[str]] = None, name: str = "controller") -> None:
        self.out_dir = out_dir
        self.ofp_port = ofp_port
        self.rest_port = rest_port or free_port()
        self.config = config
        self.overrides = dict(overrides or {})
        self.record = record
        self.python = python or sys.executable
        self.command = list(command) if command else None
        self.log_path = os.path.join(out_dir, "%s.txt" % name)
        self.proc: Optional[subprocess.Popen] = None

    @property
    def url(self) -> str:
        return "http://127.0.0.1:%d" % self.rest_port

    def start(self, timeout_s: float = 30.0) -> "ControllerProcess":
        if not port_free(self.ofp_port, "0.0.0.0"):
            raise LabError("OpenFlow port %d is already in use (another controller is running?); "
                           "stop it first (e.g. 'pkill -f osken-manager') or choose another port"
                           % self.ofp_port)
        if self.command is not None:
            cmd = list(self.command)
            env = dict(os.environ)
            env["SIDESTEP_CONFIG"] = self.config or ""
            overrides = dict(self.overrides, rest_port=self.rest_port)
            if self.record:
                overrides["record"] = self.record
            env["SIDESTEP_OVERRIDES"] = json.dumps(overrides)
        else:
            cmd = [self.python, "-m", "controller.cli", "controller", "--ofp-port", str(self.ofp_port),
                   "--rest-port", str(self.rest_port)]
            if self.config:
                cmd += ["--config", self.config]
            if self.record:
                cmd += ["--record", self.record]
            if self.overrides:
                cmd += ["--set-json", json.dumps(self.overrides)]
            env = dict(os.environ)
        env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, env=env,
                                     start_new_session=True)
        log.close()
        try:
            wait_for(lambda: self._alive() and http_json(self.url + "/health"), timeout_s,
                     "the controller's REST API on %s" % self.url)
        except LabError:
            tail = self.log_tail()
            self.stop()
            raise LabError("the controller did not start; its log (%s) ends with:\n%s"
                           % (self.log_path, tail))
        return self

    def _alive(self) -> bool:
        if self.proc is None or self.proc.poll() is not None:
            raise LabError("the controller exited with code %s" % (self.proc.returncode if self.proc else None))
        return True

    def log_tail(self, n: int = 30) -> str:
        try:
            with open(self.log_path, "r", errors="replace") as handle:
                return "".join(handle.readlines()[-n:])
        except OSError:
            return ""

    def get(self, path: str) -> Any:
        return http_json(self.url + path)

    def post(self, path: str, payload: Any, timeout_s: float = 5.0) -> Any:
        return http_json(self.url + path, timeout_s, payload)

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        self.proc = None


class Lab:
    """A fat-tree in Mininet on the userspace datapath, driven by a controller process.

    Use as ``with Lab(k=4, out_dir=...) as lab: lab.net.pingAll()``.
    """

    def __init__(self, k: int = 4, bw_mbps: float = 10.0, *, out_dir: str, ofp_port: int = 6653,
                 controller: Optional[ControllerProcess] = None, big_switch: bool = False,
                 discovery_timeout_s: float = 60.0) -> None:
        self.spec: FatTreeSpec = fat_tree(k, bw_mbps)
        self.out_dir = out_dir
        self.ofp_port = ofp_port
        self.big_switch = big_switch
        self.controller = controller if controller is not None else ControllerProcess(out_dir, ofp_port=ofp_port)
        self.discovery_timeout_s = discovery_timeout_s
        self.net = None
        self._spawned: List[subprocess.Popen] = []   # what ``popen`` started, killed by ``stop``

    # -- lifecycle -------------------------------------------------------
    def __enter__(self) -> "Lab":
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> None:
        check_root()
        check_tools()
        os.makedirs(self.out_dir, exist_ok=True)
        ensure_ovs()
        mininet_cleanup()
        self.controller.start()
        from functools import partial

        from mininet.log import setLogLevel
        from mininet.net import Mininet
        from mininet.node import OVSSwitch, RemoteController

        from mininet_topos.shaping import BoundedTCLink

        setLogLevel("warning")
        if self.big_switch:
            from mininet_topos.bigswitch import BigSwitchTopo
            topo = BigSwitchTopo(k=self.spec.k, bw=self.spec.bw_mbps)
        else:
            from mininet_topos.fattree import FatTreeTopo
            topo = FatTreeTopo(k=self.spec.k, bw=self.spec.bw_mbps)
        switch = partial(OVSSwitch, datapath="user", protocols="OpenFlow13")
        self.net = Mininet(topo=topo, switch=switch, link=BoundedTCLink, controller=None,
                           autoSetMacs=False, autoStaticArp=False, build=False, waitConnected=False)
        class _Remote(RemoteController):
            # Mininet probes the port with telnet and can choke decoding telnet's
            # negotiation bytes; we already know the controller answers (REST health).
            def checkListening(self) -> None:
                return None

        self.net.addController(_Remote("c0", ip="127.0.0.1", port=self.ofp_port))
        self.net.build()
        self.net.start()
        for host in self.net.hosts:
            for intf in host.intfList():
                host.cmd("ethtool -K %s tx off >/dev/null 2>&1" % intf.name)
        self.wait_discovered()

    def expected_links(self) -> int:
        """Switch-to-switch cables the controller must discover."""
        if self.big_switch:
            return 0
        return sum(1 for l in self.spec.links if not l.a.startswith("h"))

    def wait_discovered(self) -> None:
        n_switches = 1 if self.big_switch else len(self.spec.switches)
        n_links = self.expected_links()

        def done() -> bool:
            health = self.controller.get("/health")
            topo = self.controller.get("/topology")
            links = [l for l in topo.get("links", []) if l.get("up", True)]
            return health.get("switches_connected") == n_switches and len(links) >= n_links \
                and health.get("settled", True)

        wait_for(done, self.discovery_timeout_s,
                 "the controller to see %d switches and %d links" % (n_switches, n_links), 0.5)

    def _kill_spawned(self) -> None:
        """Kill what ``popen`` started, by pid: it may not have reached its host's namespace yet."""
        for proc in self._spawned:
            if proc.poll() is None:
                try:
                    proc.kill()
                except OSError:
                    pass
        for proc in self._spawned:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        self._spawned = []

    def _kill_host_processes(self) -> None:
        """Kill everything still running inside the hosts' network namespaces.

        ``iperf3 -D`` and other daemons started on a host outlive Mininet's
        shells (and ``mn -c``); they would hold ports into the next lab.
        """
        inodes = set()
        for host in self.net.hosts:
            try:
                inodes.add(os.stat("/proc/%d/ns/net" % host.pid).st_ino)
            except (OSError, TypeError):
                continue
        root = os.stat("/proc/self/ns/net").st_ino
        inodes.discard(root)
        shells = {host.pid for host in self.net.hosts}
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or int(entry) == os.getpid() or int(entry) in shells:
                continue
            try:
                if os.stat("/proc/%s/ns/net" % entry).st_ino in inodes:
                    os.kill(int(entry), signal.SIGKILL)
            except (OSError, ProcessLookupError):
                continue

    def stop(self) -> None:
        """Tear down: the hosts' processes, then the controller, then the network.

        Why the controller before the network: taking the switches down first
        shows the controller every cable failing, and it would log a failover
        (and warnings for flows with no path left) for each, in the log the
        user reads after the run.
        """
        try:
            if self.net is not None:
                self._kill_spawned()
                self._kill_host_processes()
                self.controller.stop()
                self.net.stop()
        except Exception:  # pylint: disable=broad-except
            pass
        finally:
            self.net = None
            self.controller.stop()
            mininet_cleanup()

    # -- helpers ---------------------------------------------------------
    def host(self, name: str) -> Any:
        return self.net.get(name)

    def popen(self, host: str, cmd: Sequence[str], **kwargs: Any) -> subprocess.Popen:
        """Start ``cmd`` on ``host`` (Mininet's ``Host.popen``) as a process the lab's teardown kills.

        Why not ``lab.host(name).popen`` directly: a Ctrl-C in the middle of
        it leaves a forked ``mnexec`` with no ``Popen`` to stop it by, which
        then joins the host's namespace after the teardown has looked there.
        Here the start cannot be interrupted half-way
        (``mininet_topos.interrupts``) and the process is recorded at once.
        """
        with interrupts_deferred():
            proc = self.host(host).popen(list(cmd), **kwargs)
            self._spawned = [p for p in self._spawned if p.returncode is None] + [proc]
        return proc

    def parallel_pingall(self, timeout_s: int = 2, tries: int = 3, batch: int = 9) -> Dict[str, List[str]]:
        """Every host pings every other host, all hosts at once; returns host -> unreachable peers.

        Mininet's ``pingAll`` pings one pair at a time (k=6: 2,862 pairs, minutes
        on two cores); this runs one loop per host, ``batch`` hosts at a time,
        so the whole mesh is still covered.  A pair counts as reachable if any of ``tries`` pings
        answers (the first may wait for ARP).
        """
        hosts = self.net.hosts
        failures: Dict[str, List[str]] = {}
        for start in range(0, len(hosts), batch):
            failures.update(self._ping_batch(hosts, hosts[start:start + batch], timeout_s, tries))
        return failures

    def _ping_batch(self, hosts, senders, timeout_s: int, tries: int) -> Dict[str, List[str]]:
        procs = {}
        for h in senders:
            targets = " ".join(o.IP() for o in hosts if o is not h)
            script = ("for ip in %s; do ok=0; for i in $(seq %d); do "
                      "ping -c1 -W%d $ip >/dev/null 2>&1 && ok=1 && break; done; "
                      "[ $ok = 1 ] || echo FAIL $ip; done; echo DONE" % (targets, tries, timeout_s))
            procs[h.name] = self.popen(h.name, ["bash", "-c", script], stdout=subprocess.PIPE,
                                       stderr=subprocess.STDOUT, universal_newlines=True)
        failures: Dict[str, List[str]] = {}
        for name, proc in procs.items():
            out, _ = proc.communicate(timeout=600)
            if "DONE" not in out:
                failures[name] = ["(ping loop did not finish: %r)" % out[-200:]]
                continue
            bad = [line.split()[1] for line in out.splitlines() if line.startswith("FAIL")]
            if bad:
                failures[name] = bad
        return failures
