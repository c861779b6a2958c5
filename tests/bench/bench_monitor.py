"""Benchmark (not a test): the monitor's cost per poll of a whole k=16 fat-tree.

One "poll" is one port-stats reply from each of the 320 switches (6,144
directed links) fed through ``LinkMonitor.observe``.  The baseline, measured in
the same run, is only building the ``PortCounters`` lists from OFPPortStats-like
objects (``counters_from_stats``), the work the app shell does anyway; the
ratio says what the monitor adds on top.  Also timed: ``utilization()`` and a
``history(all links, 32)`` call, what a planning tick reads.

Run: ``.venv/bin/python tests/bench/bench_monitor.py [--k 16] [--polls 30]``
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from collections import namedtuple

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))

import numpy as np  # noqa: E402

from controller.fabric import Fabric  # noqa: E402
from controller.monitor import LinkMonitor, counters_from_stats  # noqa: E402
from mininet_topos.fattree_spec import fat_tree  # noqa: E402

# Same attribute names as os_ken's OFPPortStats (a namedtuple too).
Stat = namedtuple("Stat", "port_no tx_bytes rx_bytes duration_sec duration_nsec")


def make_bodies(fabric: Fabric, polls: int, seed: int = 1):
    """Per poll, per switch, a list of Stat with growing counters (1 s apart)."""
    rng = np.random.default_rng(seed)
    switches = fabric.switches()
    ports = {s: sorted(fabric.port(s, n) for n in fabric.graph.neighbors(s)) for s in switches}
    tx = {s: np.zeros(len(p), dtype=np.int64) for s, p in ports.items()}
    rx = {s: np.zeros(len(p), dtype=np.int64) for s, p in ports.items()}
    bodies = []
    for t in range(polls):
        poll = []
        for s in switches:
            tx[s] += rng.integers(0, 1_000_000, size=len(ports[s]))
            rx[s] += rng.integers(0, 1_000_000, size=len(ports[s]))
            body = [Stat(p, int(a), int(b), 100 + t, 123_000)
                    for p, a, b in zip(ports[s], tx[s], rx[s])]
            body.append(Stat(0xFFFFFFFE, 0, 0, 100 + t, 0))   # LOCAL port, ignored
            poll.append((s, body))
        bodies.append(poll)
    return bodies


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--k", type=int, default=16)
    parser.add_argument("--polls", type=int, default=30)
    args = parser.parse_args()

    fabric = Fabric.from_spec(fat_tree(args.k, 10))
    n_links = len(fabric.directed_links())
    n_switches = len(fabric.switches())
    t0 = time.perf_counter()
    monitor = LinkMonitor(fabric, history=128, period_s=1.0)
    t_init = time.perf_counter() - t0
    bodies = make_bodies(fabric, args.polls + 1)

    # Warm-up poll sets the baselines (no samples).
    for s, body in bodies[0]:
        monitor.observe(s, counters_from_stats(body), 0.0)

    base_times, mon_times, samples = [], [], 0
    for t, poll in enumerate(bodies[1:], start=1):
        t0 = time.perf_counter()
        converted = [(s, counters_from_stats(body)) for s, body in poll]
        t1 = time.perf_counter()
        for s, counters in converted:
            samples += len(monitor.observe(s, counters, float(t)))
        t2 = time.perf_counter()
        base_times.append(t1 - t0)
        mon_times.append(t2 - t1)

    t0 = time.perf_counter()
    for _ in range(10):
        util = monitor.utilization()
    t_util = (time.perf_counter() - t0) / 10
    links = fabric.directed_links()
    t0 = time.perf_counter()
    for _ in range(10):
        hist = monitor.history(links, 32)
    t_hist = (time.perf_counter() - t0) / 10

    base = float(np.median(base_times))
    mon = float(np.median(mon_times))
    print("k=%d: %d switches, %d directed links, %d polls, %d samples (%d per poll)"
          % (args.k, n_switches, n_links, args.polls, samples, samples // args.polls))
    print("monitor init (index the fabric):          %8.2f ms" % (t_init * 1e3))
    print("baseline: counters_from_stats, all switches %8.2f ms/poll (median)" % (base * 1e3))
    print("monitor.observe, all switches:            %8.2f ms/poll (median), %.2f us/link"
          % (mon * 1e3, mon / n_links * 1e6))
    print("ratio observe / baseline:                 %8.2f" % (mon / base))
    print("utilization() dict of %d links:          %8.2f ms" % (len(util), t_util * 1e3))
    print("history(%d links, 32):                   %8.2f ms  shape=%s"
          % (len(links), t_hist * 1e3, hist.shape))
    return 0


if __name__ == "__main__":
    sys.exit(main())
