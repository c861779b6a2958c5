"""Small helpers for lab tests: traffic, flow dumps, waiting on conditions."""
import json
import re
import subprocess
from typing import Dict, List, Optional

from mininet_topos.lab import wait_for  # noqa: F401  (re-exported for tests)


def dump_flows(switch: str) -> List[str]:
    out = subprocess.check_output(["ovs-ofctl", "-O", "OpenFlow13", "dump-flows", switch],
                                  universal_newlines=True)
    return [line.strip() for line in out.splitlines() if "cookie=" in line]


def sidestep_flow_lines(switch: str, needle: str = "") -> List[str]:
    return [l for l in dump_flows(switch) if re.search(r"cookie=0x51de[0-9a-f]{12}\b", l)
            and "priority=1000" in l and needle in l]


def iperf3_server(host, port: int = 5201, report: Optional[str] = None):
    """A one-test iperf3 server; with ``report``, it writes its own JSON there when the test ends.

    Why the server's report: a UDP sender learns its losses only from the server at
    the end of a test, and a client that is stopped early reports 0 lost whatever
    was lost; the receiver counts the gaps in the sequence numbers itself.
    """
    log = "-J --logfile %s" % report if report else ">/dev/null 2>&1"
    host.cmd("iperf3 -s -D -p %d -1 %s" % (port, log))
    wait_for(lambda: "LISTEN" in host.cmd("ss -ltn 'sport = :%d'" % port), 10, "iperf3 server on %s" % host.name)


def iperf3_client(host, server_ip: str, *args: str, port: int = 5201, timeout_s: int = 60) -> Dict:
    out = host.cmd("timeout %d iperf3 -J -c %s -p %d %s" % (timeout_s, server_ip, port, " ".join(args)))
    start = out.find("{")
    if start < 0:
        raise AssertionError("iperf3 printed no JSON: %r" % out[-500:])
    return json.loads(out[start:])


def path_row(ctrl, src, dst, proto, sport):
    """The controller's /paths row for one connection, or None."""
    for p in ctrl.get("/paths")["paths"]:
        if (p["src"], p["dst"], p["proto"], p["src_port"]) == (src, dst, proto, sport):
            return p
    return None


def flow_path(ctrl, src, dst, proto, sport):
    """The path the controller reports for one connection, or None."""
    row = path_row(ctrl, src, dst, proto, sport)
    return tuple(row["path"]) if row is not None else None
