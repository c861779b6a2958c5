"""Rebuild the shipped default model: ``.venv/bin/python -m models.build_default``.

Generates the training traces (``models.synth``, seeds ``TRAIN_SEEDS``), writes them
as link-load CSVs in a temporary folder, trains exactly as ``sidestep train`` does,
scores the model on held-out generated traces (``HOLDOUT_SEEDS``, never trained on)
and writes ``models/default_model.joblib`` (+ ``.json``) with those scores in its
metadata.  Everything is seeded and the metadata holds no clock, so a rebuild with
the same library versions on the same kind of CPU gives the same bytes (checked: ``--check``
compares, and explains a difference: ``explain_difference``).
"""
from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tempfile
from typing import Dict, List, Optional, Sequence

from controller.loadtrace import read_link_loads
from models.model_file import metadata_path, save_model
from models.runtime import DEFAULT_MODEL
from models.synth import SynthConfig, generate, write_csv
from models.training import GridTrace, Progress, common_period, evaluate, fit_forecaster, to_grid

TRAIN_SEEDS = (1, 2, 3, 4)          # 4 traces x 96 links x 1800 s
HOLDOUT_SEEDS = (1001, 1002, 1003)  # 3 traces x 96 links x 900 s, never trained on
TRAIN_CONFIG = SynthConfig(k=4, duration_s=1800)
HOLDOUT_CONFIG = SynthConfig(k=4, duration_s=900)


def write_traces(folder: str, seeds: Sequence[int], cfg: SynthConfig, prefix: str) -> List[str]:
    paths = []
    for seed in seeds:
        path = os.path.join(folder, "%s_seed%d.csv" % (prefix, seed))
        write_csv(path, generate(seed, cfg))
        paths.append(path)
    return paths


def load_grids(paths: List[str]) -> List[GridTrace]:
    traces = [read_link_loads(p) for p in paths]
    period = common_period(traces)
    return [to_grid(t, period) for t in traces]


def build(output: str, progress: Progress = None) -> Dict[str, object]:
    """Build the default model into ``output``; returns the held-out scores."""
    say = progress or (lambda msg: None)
    with tempfile.TemporaryDirectory(prefix="sidestep-default-") as tmp:
        say("generating training traces (seeds %s)" % (TRAIN_SEEDS,))
        train = load_grids(write_traces(tmp, TRAIN_SEEDS, TRAIN_CONFIG, "train"))
        est, meta = fit_forecaster(train, horizon=2, progress=say)
        say("generating held-out traces (seeds %s)" % (HOLDOUT_SEEDS,))
        held = load_grids(write_traces(tmp, HOLDOUT_SEEDS, HOLDOUT_CONFIG, "holdout"))
        scores = evaluate(held, est.predict, window=int(meta["window"]), horizon=2, hot=0.8, progress=say)
    result = {name: s.as_dict() for name, s in scores.items()}
    result["mae_ratio_to_persistence"] = scores["model"].mae / scores["persistence"].mae
    meta["generator"] = {"module": "models.synth", "train_seeds": list(TRAIN_SEEDS),
                         "holdout_seeds": list(HOLDOUT_SEEDS), "train_duration_s": TRAIN_CONFIG.duration_s,
                         "holdout_duration_s": HOLDOUT_CONFIG.duration_s, "k": TRAIN_CONFIG.k,
                         "rebuild": ".venv/bin/python -m models.build_default"}
    meta["holdout"] = result
    save_model(output, est, meta)
    return result


_SCORES = (("model MAE", ("model", "mae")), ("persistence MAE", ("persistence", "mae")),
           ("hotspot precision", ("model", "precision")), ("hotspot recall", ("model", "recall")))


def shipped_holdout(path: str) -> Optional[Dict[str, object]]:
    """The held-out scores recorded in the model file at ``path``, or None if it has none or is unreadable."""
    from models.model_file import ModelError, read_metadata
    try:
        holdout = read_metadata(path)[0].get("holdout")
    except ModelError:
        return None
    return holdout if isinstance(holdout, dict) else None


def blas_kernels() -> List[str]:
    """The BLAS libraries of this process and the CPU kernel each picked, e.g. ``openblas 0.3.31 (Haswell)``."""
    from threadpoolctl import threadpool_info
    return ["%s %s (%s)" % (i.get("internal_api"), i.get("version"), i.get("architecture", "?"))
            for i in threadpool_info() if i.get("user_api") == "blas"]


def explain_difference(recorded: Optional[Dict[str, object]], rebuilt: Dict[str, object],
                       blas: List[str]) -> str:
    """What to make of a ``--check`` whose bytes differ: the held-out scores side by side, and the likely cause.

    Why: the EWMA features are BLAS matrix-vector products, and BLAS picks its
    kernel by CPU, so the same library versions on another CPU family can round
    some features differently in the last bits (on an AMD EPYC, OpenBLAS's
    Haswell and Sandybridge kernels give different features).  The trees that
    split on them then differ, and so do the bytes: the shipped model, built on
    an Intel Xeon, rebuilds with 12 of its 200 trees different on that EPYC
    (2026-11-29), with the same held-out scores to 4 digits.
    """
    lines = []
    for label, (group, key) in _SCORES:
        new = rebuilt[group][key]
        old = recorded.get(group, {}).get(key) if recorded else None
        lines.append("  %-18s shipped %s, rebuilt %.4f" % (label, "%.4f" % old if old is not None else "-", new))
    return ("held-out scores:\n%s\nBLAS here: %s. The EWMA features go through BLAS, which picks its kernel by "
            "CPU: on another CPU family the same library versions round some features differently and the "
            "bytes differ; the scores should then agree within ~0.01." % ("\n".join(lines), ", ".join(blas) or "none"))


def sha256(path: str) -> str:
    with open(path, "rb") as handle:
        return hashlib.sha256(handle.read()).hexdigest()


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m models.build_default", description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--output", default=DEFAULT_MODEL, help="default: %(default)s")
    parser.add_argument("--check", action="store_true",
                        help="build into a temporary file and compare its bytes with --output")
    args = parser.parse_args(argv)

    def say(msg: str) -> None:
        print("build_default: %s" % msg, file=sys.stderr, flush=True)

    target = args.output
    if args.check:
        fd, target = tempfile.mkstemp(suffix=".joblib")
        os.close(fd)
    result = build(target, say)
    print("held-out: model MAE %.4f, persistence MAE %.4f, ratio %.3f; hotspot precision %.3f recall %.3f"
          % (result["model"]["mae"], result["persistence"]["mae"], result["mae_ratio_to_persistence"],
             result["model"]["precision"], result["model"]["recall"]))
    if args.check:
        same = sha256(target) == sha256(args.output)
        print("rebuild is %s to %s" % ("byte-identical" if same else "DIFFERENT", args.output))
        if not same:
            print(explain_difference(shipped_holdout(args.output), result, blas_kernels()))
        for p in (target, metadata_path(target)):
            os.unlink(p)
        return 0 if same else 1
    print("wrote %s (sha256 %s)" % (args.output, sha256(args.output)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
