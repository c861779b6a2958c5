"""The lab's record of where the CPU went during a job: /proc parsing and the line under the table."""
import os
import subprocess
import sys
import time

import pytest

from controller.commands.lab import format_diagnostics
from mininet_topos.cpuuse import CpuSnapshot, machine_busy_ticks, process_cpu_s

# /proc/PID/stat of a process whose name holds a space and a ')': utime 250, stime 50 ticks
STAT = "1157 (ovs) vswitchd) S 1 1156 1156 0 -1 4194624 9 0 0 0 250 50 0 0 10 -10 7 0 411 0 0\n"


def test_process_cpu_counts_fields_after_the_last_parenthesis():
    assert process_cpu_s(STAT, ticks_per_s=100) == pytest.approx(3.0)
    assert process_cpu_s(STAT, ticks_per_s=50) == pytest.approx(6.0)


def test_machine_busy_leaves_out_idle_and_iowait_and_the_guest_columns():
    text = "cpu  100 5 20 800 40 3 2 1 7 0\ncpu0 50 2 10 400 20 1 1 0 3 0\nintr 1 2 3\n"
    busy, total = machine_busy_ticks(text)
    assert (busy, total) == (100 + 5 + 20 + 3 + 2 + 1, 100 + 5 + 20 + 800 + 40 + 3 + 2 + 1)
    with pytest.raises(ValueError, match="no 'cpu' line"):
        machine_busy_ticks("intr 1 2 3\n")


def test_shares_are_cores_over_the_span_and_none_when_a_process_changed():
    a = CpuSnapshot(10.0, 7, 100.0, 42, 5.0, busy_ticks=1000, total_ticks=4000)
    b = CpuSnapshot(12.0, 7, 101.9, 42, 5.1, busy_ticks=1300, total_ticks=4400)
    got = a.shares(b, n_cpus=2)
    assert got["datapath_cores"] == pytest.approx(0.95)
    assert got["controller_cores"] == pytest.approx(0.05)
    assert got["machine_busy_cores"] == pytest.approx(300 / 400 * 2)
    assert got["span_s"] == pytest.approx(2.0) and got["cpus"] == 2
    restarted = CpuSnapshot(12.0, 8, 0.5, None, None, busy_ticks=1300, total_ticks=4400)
    gone = a.shares(restarted, n_cpus=2)
    assert gone["datapath_cores"] is None and gone["controller_cores"] is None


def test_a_snapshot_of_a_real_process_sees_the_cpu_it_burned():
    """Read from this machine's /proc: a child that spins for 0.4 s of CPU shows it, at most one core."""
    child = subprocess.Popen([sys.executable, "-c", "import sys, time\nend = time.process_time() + 0.4\n"
                              "while time.process_time() < end: pass\nsys.stdin.read()"],
                             stdin=subprocess.PIPE)
    try:
        before = CpuSnapshot.take(child.pid)
        after = before
        deadline = time.monotonic() + 60
        while after.controller_s < 0.4 and time.monotonic() < deadline:   # the child's own clock
            after = CpuSnapshot.take(child.pid)
    finally:
        child.communicate(b"", timeout=60)
    assert after.controller_s >= 0.4, "the child did not burn its CPU within 60 s"
    shares = before.shares(after)
    assert 0 < shares["controller_cores"] <= 1.05          # one thread
    assert shares["cpus"] == (os.cpu_count() or 1)
    assert 0 <= shares["machine_busy_cores"] <= shares["cpus"]


def test_the_table_under_the_results_shows_each_runs_readings_and_dashes_where_there_are_none():
    rows = [{"run": "no hotspot", "tcp": {"retrans": 0, "max_srtt_ms_median": 3.14, "max_srtt_ms_max": 9.0},
             "cpu": {"datapath_cores": 0.73, "controller_cores": 0.04, "machine_busy_cores": 1.07, "cpus": 2}},
            {"run": "ecmp", "tcp": {"retrans": 12, "max_srtt_ms_median": 101.5, "max_srtt_ms_max": 230.25},
             "cpu": {"datapath_cores": None, "controller_cores": 0.06, "machine_busy_cores": 1.31, "cpus": 2}},
            {"run": "reactive", "tcp": None, "cpu": None}]
    lines = format_diagnostics(rows).splitlines()
    assert lines[0].startswith("where the time went")
    assert lines[1].split() == ["run", "retrans", "srtt", "ms", "med/max", "ovs", "cores", "ctl", "cores",
                                "busy", "cores"]
    assert lines[3].split() == ["no", "hotspot", "0", "3.1/9.0", "0.73", "0.04", "1.07"]
    assert lines[4].split() == ["ecmp", "12", "101.5/230.2", "-", "0.06", "1.31"]
    assert lines[5].split() == ["reactive", "-", "-", "-", "-", "-"]
    assert format_diagnostics([{"run": "x", "cpu": None, "tcp": None}, {"run": "y"}]) == ""
