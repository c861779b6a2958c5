"""``sidestep train LOADS.csv [...] -o MODEL [--horizon N]``: fit a forecaster on link-load traces."""
from __future__ import annotations

import argparse
import os
import sys
from typing import Callable, List

from controller.commands.outputs import output_file_problem
from controller.loadtrace import read_link_loads
from controller.tracefile import TraceError
from models.estimators import REGRESSORS
from models.model_file import ModelError, metadata_path, save_model
from models.training import DEFAULT_MAX_ROWS, DEFAULT_WINDOW, GridTrace, common_period, fit_forecaster, to_grid

PROG = "sidestep train"
BIG_FILE = 8 << 20   # announce reading files above 8 MB (small ones: bad input stays a one-line error)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("loads", nargs="+", metavar="LOADS.csv", help="link-load traces (t_s,link,util,...)")
    parser.add_argument("-o", "--output", required=True, metavar="MODEL", help="model file to write")
    parser.add_argument("--horizon", type=int, default=2, help="samples ahead to predict (default 2)")
    parser.add_argument("--window", type=int, default=DEFAULT_WINDOW,
                        help="samples of history per prediction (default %d)" % DEFAULT_WINDOW)
    parser.add_argument("--regressor", choices=REGRESSORS + ("auto",), default="auto",
                        help="inner regressor; auto keeps whichever of hgb/linear validates better (default)")
    parser.add_argument("--max-rows", type=int, default=DEFAULT_MAX_ROWS,
                        help="train on at most this many (window, target) rows, spread over time (default %d)"
                        % DEFAULT_MAX_ROWS)
    parser.add_argument("--max-iter", type=int, default=200, help="boosting iterations of hgb (default 200)")
    parser.add_argument("--quantile", type=float, default=0.65,
                        help="quantile of the change hgb predicts: 0.5 minimises MAE, above leans toward "
                        "predicting bursts (hotspot recall); default 0.65")
    parser.add_argument("--seed", type=int, default=0, help="seed for row sampling and the regressor (default 0)")
    parser.add_argument("--force", action="store_true", help="replace an existing model file")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress messages")


def error(message: str) -> int:
    print("%s: error: %s" % (PROG, message), file=sys.stderr)
    return 2


def read_grids(paths: List[str], progress: Callable[[str], None]) -> List[GridTrace]:
    """Read and validate every trace, and put them on one sampling period (TraceError on bad input)."""
    traces = []
    for path in paths:
        if os.path.exists(path) and os.path.getsize(path) > BIG_FILE:
            progress("reading %s (%d MB)" % (path, os.path.getsize(path) >> 20))
        traces.append(read_link_loads(path))
    period = common_period(traces)
    return [to_grid(tr, period) for tr in traces]


def run(args: argparse.Namespace) -> int:
    def progress(msg: str) -> None:
        if not args.quiet:
            print("%s: %s" % (PROG, msg), file=sys.stderr, flush=True)

    if args.horizon < 1:
        return error("--horizon must be an integer >= 1 (samples ahead), got %d" % args.horizon)
    if args.window < 4:
        return error("--window must be at least 4 samples, got %d" % args.window)
    if not 0.0 < args.quantile < 1.0:
        return error("--quantile must be in (0, 1), got %g" % args.quantile)
    if args.max_iter < 1:
        return error("--max-iter must be >= 1, got %d" % args.max_iter)
    if args.max_rows < 100:
        return error("--max-rows must be at least 100, got %d" % args.max_rows)
    problem = output_file_problem(args.output, "-o", force=args.force, inputs=args.loads,
                                  example="model.joblib")
    if problem:
        return error(problem)
    # the model's metadata goes beside it (models.model_file.save_model): the same rules apply there
    sidecar = metadata_path(args.output)
    problem = output_file_problem(sidecar, "-o", force=args.force, inputs=args.loads)
    if problem:
        return error("%s (-o %s also writes the model's metadata to %s)" % (problem, args.output, sidecar))
    try:
        grids = read_grids(args.loads, progress)
        est, meta = fit_forecaster(grids, horizon=args.horizon, window=args.window, regressor=args.regressor,
                                   max_rows=args.max_rows, max_iter=args.max_iter, quantile=args.quantile,
                                   seed=args.seed,
                                   progress=progress)
        save_model(args.output, est, meta)
    except (TraceError, ModelError) as exc:
        return error(str(exc))
    except ValueError as exc:
        return error(str(exc))
    val = meta["validation"]
    if val.get("validated"):
        print("wrote %s: %d rows, sampling period %g s, horizon %d; time-ordered validation MAE model %.4f, "
              "persistence %.4f, blend weight %.2f%s"
              % (args.output, meta["training_data"]["training_rows"], meta["sampling_period_s"], args.horizon,
                 val["model_mae"], val["persistence_mae"], val["blend_weight"],
                 " (model shrunk toward persistence)" if val["blend_weight"] < 1.0 else ""))
    else:
        print("wrote %s: not validated (%s): predicts persistence" % (args.output, val.get("reason")))
    return 0
