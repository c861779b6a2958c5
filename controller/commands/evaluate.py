"""``sidestep evaluate LOADS.csv [...] --model MODEL [--horizon N] [--json OUT] [--hot 0.8]``.

Scores the model and every baseline (persistence, EWMA, seasonal-naive) on the
same (window, target) rows: MAE, RMSE, and hotspot precision/recall.
"""
from __future__ import annotations

import argparse
import json
import sys

from controller.commands.outputs import output_file_problem, write_text_atomically
from controller.commands.train import read_grids
from controller.tracefile import TraceError
from models.model_file import ModelError, load_model
from models.runtime import DEFAULT_MODEL, SAMPLING_TOLERANCE, predictor_from_model
from models.training import evaluate

PROG = "sidestep evaluate"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("loads", nargs="+", metavar="LOADS.csv", help="link-load traces to score on")
    parser.add_argument("--model", default=None, metavar="MODEL", help="model file (default: the shipped model)")
    parser.add_argument("--horizon", type=int, default=None,
                        help="samples ahead; must match the model's (default: the model's)")
    parser.add_argument("--json", default=None, metavar="OUT", help="also write the scores as JSON")
    parser.add_argument("--force", action="store_true", help="replace an existing --json file")
    parser.add_argument("--hot", type=float, default=0.8, help="hotspot threshold, utilization (default 0.8)")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress messages")


def error(message: str) -> int:
    print("%s: error: %s" % (PROG, message), file=sys.stderr)
    return 2


def _fmt(v) -> str:
    return "n/a" if v is None else "%.4f" % v


def run(args: argparse.Namespace) -> int:
    def progress(msg: str) -> None:
        if not args.quiet:
            print("%s: %s" % (PROG, msg), file=sys.stderr, flush=True)

    if args.horizon is not None and args.horizon < 1:
        return error("--horizon must be an integer >= 1 (samples ahead), got %d" % args.horizon)
    if not args.hot > 0:
        return error("--hot must be a utilization > 0, got %g" % args.hot)
    if args.json:
        problem = output_file_problem(args.json, "--json", force=args.force,
                                      inputs=list(args.loads) + [args.model or DEFAULT_MODEL])
        if problem:
            return error(problem)
    path = args.model or DEFAULT_MODEL
    try:
        estimator, meta = load_model(path)
    except ModelError as exc:
        return error(str(exc))
    horizon = int(meta["horizon"])
    if args.horizon is not None and args.horizon != horizon:
        return error("%s: the model predicts %d samples ahead, not %d; train one with "
                     "`sidestep train LOADS.csv -o MODEL --horizon %d`" % (path, horizon, args.horizon, args.horizon))
    predictor = predictor_from_model(estimator, meta, path)
    try:
        grids = read_grids(args.loads, progress)
        period = grids[0].sampling_period_s
        if abs(period - predictor.sampling_period_s) > SAMPLING_TOLERANCE * predictor.sampling_period_s:
            return error("%s is sampled every %g s but %s was trained on %g s samples; train a model on "
                         "traces of this sampling period with `sidestep train`"
                         % (grids[0].path, period, path, predictor.sampling_period_s))
        scores = evaluate(grids, predictor.predict, window=predictor.window, horizon=horizon, hot=args.hot,
                          progress=progress)
    except (TraceError, ValueError) as exc:
        return error(str(exc))
    print("%-15s %8s %8s %9s %7s" % ("method", "MAE", "RMSE", "precision", "recall"))
    for name, s in scores.items():
        print("%-15s %8.4f %8.4f %9s %7s" % (name, s.mae, s.rmse, _fmt(s.precision), _fmt(s.recall)))
    pers = scores["persistence"].mae
    # persistence is exact on a series that never changes: there is no ratio to give
    ratio = "%.3f" % (scores["model"].mae / pers) if pers > 0 else "n/a (persistence is exact here: MAE 0)"
    print("model MAE / persistence MAE = %s (horizon %d samples = %g s, hotspot >= %g)"
          % (ratio, horizon, horizon * predictor.sampling_period_s, args.hot))
    if args.json:
        doc = {name: s.as_dict() for name, s in scores.items()}
        try:
            write_text_atomically(args.json, json.dumps(doc, indent=2, sort_keys=True) + "\n")
        except OSError as exc:
            return error("%s: cannot write: %s" % (args.json, exc.strerror))
    return 0
