"""Why the default regressor: ``python -m models.compare`` (numbers in docs/forecaster.md).

Trains each candidate on the default model's generated training traces (rows
capped at ``--max-rows`` to keep the run short) and scores it on the held-out
generated traces, with persistence as the yardstick.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from typing import List, Optional

from models.build_default import HOLDOUT_CONFIG, HOLDOUT_SEEDS, TRAIN_CONFIG, TRAIN_SEEDS, load_grids, write_traces
from models.training import evaluate, fit_forecaster

CANDIDATES = (("hgb, quantile 0.65 (default)", "hgb", 0.65), ("hgb, median (quantile 0.5)", "hgb", 0.5),
              ("linear (scaled ridge)", "linear", 0.5))


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m models.compare", description=__doc__.splitlines()[0])
    parser.add_argument("--max-rows", type=int, default=80_000)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="sidestep-compare-") as tmp:
        train = load_grids(write_traces(tmp, TRAIN_SEEDS, TRAIN_CONFIG, "train"))
        held = load_grids(write_traces(tmp, HOLDOUT_SEEDS, HOLDOUT_CONFIG, "holdout"))
        print("| regressor | MAE / persistence | hotspot precision | hotspot recall | blend weight |")
        print("|---|---|---|---|---|")
        for label, kind, q in CANDIDATES:
            est, meta = fit_forecaster(train, regressor=kind, quantile=q, max_rows=args.max_rows)
            s = evaluate(held, est.predict, window=int(meta["window"]), horizon=2)
            print("| %s | %.3f | %.3f | %.3f | %.2f |" % (label, s["model"].mae / s["persistence"].mae,
                                                         s["model"].precision, s["model"].recall,
                                                         est.blend_weight_), flush=True)
        for name in ("persistence", "ewma", "seasonal_naive"):
            print("| %s (baseline) | %.3f | %.3f | %.3f | - |" % (name, s[name].mae / s["persistence"].mae,
                                                                  s[name].precision, s[name].recall))
    return 0


if __name__ == "__main__":
    sys.exit(main())
