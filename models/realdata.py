"""The forecaster on the real series in ../shared/data: ``python -m models.realdata``.

Each dataset is converted to link-load CSVs (``t_s,link,util``), split in time
(first 70% of the samples to train, the rest to test), trained and scored by the
same functions ``sidestep train``/``evaluate`` use.  The shared files are read in
place at run time (never copied into the repository).

Utilization: the series carry volumes (bits or bytes per interval), not link
capacities, so each link's capacity is taken as 1.25 x its maximum over the
*training* part (the busiest training interval reads 0.8); test values may exceed
1.  Alibaba's ``net_in``/``net_out`` are already percentages and are divided by 100.
MAE ratios to persistence do not depend on this scaling; hotspot scores do.
The model here predicts the median change (``--quantile 0.5``, the MAE-optimal
choice): aggregated series have no training-burst hotspots to lean toward.
"""
from __future__ import annotations

import argparse
import csv
import datetime as _dt
import os
import sys
import tempfile
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

import numpy as np

from controller.loadtrace import HEADER, read_link_loads, write_rows
from models.training import Progress, evaluate, fit_forecaster, to_grid

DATA = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "data"))
TRAIN_FRACTION = 0.7
HEADROOM = 1.25


@dataclass
class Series:
    """A dataset as a time vector and named load columns; ``scale`` None = capacity from the training max."""

    name: str
    t_s: np.ndarray
    loads: Dict[Tuple[str, str], np.ndarray]
    window: int
    scale: Optional[float] = None
    note: str = ""


def _read_csv(path: str) -> Tuple[List[str], List[List[str]]]:
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    return rows[0], rows[1:]


def isp(data: str, which: str) -> Series:
    fname, col = {"eu": ("it_eu_5m.csv", "traffic (in bits)"), "uk": ("it_uk_5m.csv", "bits")}[which]
    header, rows = _read_csv(os.path.join(data, "isp-link-load-5min-cortez", fname))
    ci = header.index(col)
    stamps = [_dt.datetime.strptime(r[0], "%Y-%m-%d %H:%M:%S") for r in rows]
    t = np.array([(s - stamps[0]).total_seconds() for s in stamps])
    return Series("isp-%s (5 min)" % which, t, {("isp_%s" % which, "link"): np.array([float(r[ci]) for r in rows])},
                  window=96)


def alibaba(data: str, step: int) -> Series:
    header, rows = _read_csv(os.path.join(data, "alibaba2018-dc-net-util",
                                          "alibaba2018_machine_usage_days_1_to_8_grouped_%d_seconds.csv" % step))
    arr = np.array([[float(v) for v in r] for r in rows])
    t = np.arange(len(arr)) * float(step)
    loads = {("dc", "net_in"): arr[:, header.index("net_in")], ("dc", "net_out"): arr[:, header.index("net_out")]}
    return Series("alibaba (%d s)" % step, t, loads, window=96, scale=100.0)


def bell_labs(data: str) -> Series:
    header, rows = _read_csv(os.path.join(data, "link-od-tomography-belllabs-cmu", "bell_labs_1router_linkloads_Y.csv"))
    t = np.array([float(r[1]) * 3600.0 for r in rows])
    loads = {}
    for j, name in enumerate(header[2:], start=2):
        if name == "total":
            continue
        kind, subnet = name.split()
        link = ("router", subnet) if kind == "dst" else (subnet, "router")
        loads[link] = np.array([float(r[j]) for r in rows])
    return Series("bell-labs (5 min)", t - t[0], loads, window=24)


def cmu(data: str) -> Series:
    header, rows = _read_csv(os.path.join(data, "link-od-tomography-belllabs-cmu", "cmu_linkload_Yfull.csv"))
    t = np.arange(len(rows)) * 300.0   # step undocumented; 5 min assumed (only the unit of t_s depends on it)
    loads = {("cmu", name): np.array([float(r[j]) for r in rows]) for j, name in enumerate(header[1:], start=1)}
    return Series("cmu (5 min assumed)", t, loads, window=32)


def datasets(data: str = DATA) -> List[Series]:
    return [isp(data, "eu"), isp(data, "uk"), alibaba(data, 30), alibaba(data, 300), bell_labs(data), cmu(data)]


def split_to_csv(series: Series, folder: str) -> Tuple[str, str]:
    """Write train (first 70% in time) and test (the rest) link-load CSVs; returns their paths."""
    n = len(series.t_s)
    cut = int(round(TRAIN_FRACTION * n))
    paths = []
    for part, sl in (("train", slice(0, cut)), ("test", slice(cut, n))):
        path = os.path.join(folder, "%s_%s.csv" % (series.name.split()[0], part))
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(",".join(HEADER) + "\n")
            rows = []
            for link, load in series.loads.items():
                cap = series.scale if series.scale else HEADROOM * float(np.max(load[:cut]))
                cap = cap if cap > 0 else 1.0
                for t, v in zip(series.t_s[sl], load[sl]):
                    rows.append((float(t), link, max(float(v), 0.0) / cap, 0.0, 1.0))
            rows.sort(key=lambda r: (r[0], r[1]))
            write_rows(handle, rows)
        paths.append(path)
    return paths[0], paths[1]


def study(series: Series, folder: str, progress: Progress = None, quantile: float = 0.5) -> Dict[str, object]:
    train_csv, test_csv = split_to_csv(series, folder)
    train = read_link_loads(train_csv)
    period = train.sampling_period_s()
    grids = [to_grid(train, period)]
    est, meta = fit_forecaster(grids, horizon=2, window=series.window, quantile=quantile, progress=progress)
    test = [to_grid(read_link_loads(test_csv), period)]
    scores = evaluate(test, est.predict, window=series.window, horizon=2, hot=0.8)
    return {"name": series.name, "links": len(series.loads), "samples": len(series.t_s),
            "window": series.window, "blend_weight": est.blend_weight_,
            "regressor": est.chosen_regressor_,
            "ratio": scores["model"].mae / scores["persistence"].mae,
            "seasonal_ratio": scores["seasonal_naive"].mae / scores["persistence"].mae,
            "ewma_ratio": scores["ewma"].mae / scores["persistence"].mae,
            "persistence_mae": scores["persistence"].mae, "model_mae": scores["model"].mae}


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m models.realdata", description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=DATA, help="the shared data folder (default %(default)s)")
    parser.add_argument("--quantile", type=float, default=0.5,
                        help="quantile of the change the model predicts (default 0.5: the MAE-optimal median)")
    parser.add_argument("--out", default=None, help="keep the converted CSVs here (default: a temporary folder)")
    args = parser.parse_args(argv)
    say = lambda msg: print("realdata: %s" % msg, file=sys.stderr, flush=True)  # noqa: E731
    with tempfile.TemporaryDirectory(prefix="sidestep-real-") as tmp:
        folder = args.out or tmp
        print("| series | links | samples | window | model MAE / persistence | seasonal-naive / p. | EWMA / p. | regressor | blend weight |")
        print("|---|---|---|---|---|---|---|---|---|")
        for series in datasets(args.data):
            say("%s: %d links x %d samples" % (series.name, len(series.loads), len(series.t_s)))
            r = study(series, folder, say, quantile=args.quantile)
            print("| %s | %d | %d | %d | **%.3f** | %.3f | %.3f | %s | %.2f |" % (
                r["name"], r["links"], r["samples"], r["window"], r["ratio"], r["seasonal_ratio"],
                r["ewma_ratio"], r["regressor"], r["blend_weight"]), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
