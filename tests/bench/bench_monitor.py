"""Benchmark (not a test): the monitor's cost per poll of a whole k=16 fat-tree.

One "poll" is one port-stats reply from each of the 320 switches (6,144
directed links) fed through ``LinkMonitor.observe``.  The baseline, measured in
the same run, is only building the ``PortCounters`` lists from OFPPortStats-like
objects (``counters_from_stats``), the work the app shell does anyway; the
ratio says what the monitor adds on top.  Also timed: ``utilization()`` and a
``history(all links, 32)`` call, what a planning tick reads.

Second part, the replay feed (``sidestep replay`` feeds the monitor every
simulated poll): on a ``--replay-k`` fat-tree (default k=8, 1 Gbit/s links),
per tick, the old per-switch ``ingest`` loop (``PortCounters`` lists, as
``ControlLoop.observe`` did) against one ``ingest_ports`` call on arrays, both
starting from the integer counter list ``TickView.cumulative_bytes()`` gives,
with counters growing at a random 0-90 % of capacity per link and tick.
Median over ``--ticks`` ticks, the two alternating; the two monitors' states
are checked equal at the end.

Run: ``.venv/bin/python tests/bench/bench_monitor.py [--k 16] [--polls 30] [--replay-k 8] [--ticks 300]
[--part observe|replay|all]``
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
from controller.monitor import LinkMonitor, PortCounters, PortLayout, counters_from_stats  # noqa: E402
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


def bench_replay_feed(k: int, ticks: int, seed: int = 1) -> None:
    """Per tick: ``ingest`` switch by switch (the old replay feed) vs one ``ingest_ports`` call."""
    fabric = Fabric.from_spec(fat_tree(k, 1000.0))
    links = fabric.directed_links()
    index = {link: i for i, link in enumerate(links)}
    rows = []   # as TickView.switch_ports(): (switch, ports, tx link index, rx link index)
    for sw in fabric.switches():
        entries = sorted((fabric.port(sw, n), index[(sw, n)], index[(n, sw)]) for n in fabric.graph.neighbors(sw))
        rows.append((sw, [e[0] for e in entries], [e[1] for e in entries], [e[2] for e in entries]))
    layout = PortLayout((sw, ports) for sw, ports, _, _ in rows)
    tx_of = np.array([i for _, _, tx, _ in rows for i in tx], dtype=np.intp)
    rx_of = np.array([i for _, _, _, rx in rows for i in rx], dtype=np.intp)
    capacity = np.array([fabric.capacity_bps(a, b) for a, b in links])
    rng = np.random.default_rng(seed)
    old = LinkMonitor(fabric, history=128, period_s=1.0)
    new = LinkMonitor(fabric, history=128, period_s=1.0)

    def feed_old(cum, now):
        ingest = old.ingest
        for switch, ports, tx, rx in rows:
            ingest(switch, [PortCounters(p, cum[a], cum[b], now) for p, a, b in zip(ports, tx, rx)], now)

    def feed_new(cum, now):
        arr = np.array(cum, dtype=np.int64)
        new.ingest_ports(layout, arr[tx_of], arr[rx_of], now, now)

    link_bytes = rng.uniform(0, 1e9, size=len(links))
    t_old, t_new = [], []
    for t in range(ticks + 1):
        link_bytes += rng.uniform(0.0, 0.9, size=len(links)) * capacity / 8.0
        cum = np.floor(link_bytes).astype(np.int64).tolist()     # TickView.cumulative_bytes()
        now = float(t + 1)
        order = [(feed_old, t_old), (feed_new, t_new)]
        for feed, times in (order if t % 2 else order[::-1]):
            t0 = time.perf_counter()
            feed(cum, now)
            if t:                                                # tick 0 only sets baselines
                times.append(time.perf_counter() - t0)
    assert old.utilization() == new.utilization() and old.stats == new.stats
    assert np.array_equal(old.history(links, 128), new.history(links, 128), equal_nan=True)
    mo, mn = float(np.median(t_old)), float(np.median(t_new))
    print("replay feed, k=%d: %d switches, %d directed links, %d ticks (median)"
          % (k, len(rows), len(links), ticks))
    print("ingest per switch (old replay feed):        %8.3f ms/tick" % (mo * 1e3))
    print("ingest_ports, one call on arrays:           %8.3f ms/tick" % (mn * 1e3))
    print("ratio old / new:                            %8.1fx" % (mo / mn))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--k", type=int, default=16)
    parser.add_argument("--polls", type=int, default=30)
    parser.add_argument("--replay-k", type=int, default=8)
    parser.add_argument("--ticks", type=int, default=300)
    parser.add_argument("--part", choices=["observe", "replay", "all"], default="all")
    args = parser.parse_args()
    if args.part in ("replay", "all"):
        bench_replay_feed(args.replay_k, args.ticks)
        if args.part == "replay":
            return 0

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
