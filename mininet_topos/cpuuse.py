"""CPU use of the lab's processes over a training job, read from ``/proc``.

Why: the lab's data plane is Open vSwitch's userspace datapath, which forwards
the veth ports in one thread of ``ovs-vswitchd`` on a machine of two cores
shared with the hosts' processes and the controller.  A run whose iteration
times look wrong is first a question of where the CPU went, and that is cheap
to record next to the times (docs/lab.md, "Where the CPU goes").
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Dict, Optional, Tuple

OVS_PIDFILE = "/var/run/openvswitch/ovs-vswitchd.pid"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def process_cpu_s(stat_text: str, ticks_per_s: int = CLOCK_TICKS) -> float:
    """User + system CPU seconds of a process (all its threads) from the text of ``/proc/PID/stat``.

    The command name (field 2) is in parentheses and may itself hold spaces or
    ``)``, so the fields are counted from the last ``)``: utime and stime are
    fields 14 and 15.
    """
    rest = stat_text[stat_text.rindex(")") + 2:].split()
    return (int(rest[11]) + int(rest[12])) / ticks_per_s


def machine_busy_ticks(stat_text: str) -> Tuple[int, int]:
    """(busy, total) clock ticks of all CPUs from the text of ``/proc/stat`` (its ``cpu`` line).

    Busy is every state but idle and iowait.
    """
    for line in stat_text.splitlines():
        fields = line.split()
        if fields and fields[0] == "cpu":
            values = [int(v) for v in fields[1:]]
            idle = values[3] + (values[4] if len(values) > 4 else 0)
            total = sum(values[:8])
            return total - idle, total
    raise ValueError("no 'cpu' line in /proc/stat")


def _read(path: str) -> Optional[str]:
    try:
        with open(path) as handle:
            return handle.read()
    except OSError:
        return None


def _pid_cpu_s(pid: Optional[int]) -> Optional[float]:
    text = _read("/proc/%d/stat" % pid) if pid else None
    return process_cpu_s(text) if text else None


def ovs_pid() -> Optional[int]:
    """ovs-vswitchd's pid from its pidfile (None when it is not running or not readable)."""
    text = _read(OVS_PIDFILE)
    try:
        return int(text.strip()) if text else None
    except ValueError:
        return None


@dataclass
class CpuSnapshot:
    """The counters at one instant; two of them give the shares between (``shares``)."""

    t: float
    datapath_pid: Optional[int]
    datapath_s: Optional[float]
    controller_pid: Optional[int]
    controller_s: Optional[float]
    busy_ticks: int
    total_ticks: int

    @classmethod
    def take(cls, controller_pid: Optional[int]) -> "CpuSnapshot":
        busy, total = machine_busy_ticks(_read("/proc/stat") or "")
        dp = ovs_pid()
        return cls(time.monotonic(), dp, _pid_cpu_s(dp), controller_pid, _pid_cpu_s(controller_pid), busy, total)

    def shares(self, later: "CpuSnapshot", n_cpus: Optional[int] = None) -> Dict[str, Optional[float]]:
        """Cores used on average from this snapshot to ``later``: ovs-vswitchd, the controller, the machine.

        None where a process was not there at both ends (a restart changes the pid).
        """
        span = later.t - self.t
        cpus = n_cpus or os.cpu_count() or 1

        def cores(pids: Tuple[Optional[int], Optional[int]], a: Optional[float], b: Optional[float]
                  ) -> Optional[float]:
            if a is None or b is None or pids[0] != pids[1] or span <= 0 or b < a:
                return None
            return round((b - a) / span, 3)

        total = later.total_ticks - self.total_ticks
        machine = round((later.busy_ticks - self.busy_ticks) / total * cpus, 3) if total > 0 else None
        return {"datapath_cores": cores((self.datapath_pid, later.datapath_pid), self.datapath_s,
                                        later.datapath_s),
                "controller_cores": cores((self.controller_pid, later.controller_pid), self.controller_s,
                                          later.controller_s),
                "machine_busy_cores": machine, "cpus": cpus, "span_s": round(span, 3)}
