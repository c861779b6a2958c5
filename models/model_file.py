"""Model files: a joblib container with a plain metadata record and the pickled estimator.

Layout: ``joblib.dump({"format": FORMAT, "format_version": 1, "metadata": {...},
"estimator": <joblib bytes>})``.  The outer object holds only builtins, so the
metadata can be read and checked *before* any estimator class is unpickled: a
file from another feature version is refused with a message that says how to
rebuild, instead of failing deep inside unpickling.  A sidecar ``<file>.json``
repeats the metadata for humans and diff tools.

Files are written to a temporary name and renamed, so a crash never leaves half
a model.  Like every pickle, a model file runs code when loaded: load only files
you (or this project) built.
"""
from __future__ import annotations

import io
import json
import os
import warnings
from typing import Any, Dict, Tuple

import joblib
import sklearn

from controller.atomicfile import open_atomic
from models.features import FEATURE_VERSION

FORMAT = "sidestep-forecaster"
FORMAT_VERSION = 1
REBUILD_HINT = ("retrain it with `sidestep train LOADS.csv -o MODEL`, or rebuild the shipped default "
                "with `.venv/bin/python -m models.build_default`")


class ModelError(ValueError):
    """A model file that cannot be used; the message names the file and the fix."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__("%s: %s" % (path, message))
        self.path = path


def metadata_path(path: str) -> str:
    """Where ``save_model`` writes a copy of the metadata beside the model file."""
    return path + ".json"


def save_model(path: str, estimator: Any, metadata: Dict[str, Any]) -> None:
    """Write estimator + metadata to ``path`` (and ``metadata_path(path)``) atomically."""
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise ModelError(path, "folder %s does not exist; create it or choose another -o path" % directory)
    inner = io.BytesIO()
    joblib.dump(estimator, inner)
    meta = dict(metadata, format=FORMAT, format_version=FORMAT_VERSION)
    outer = io.BytesIO()
    joblib.dump({"format": FORMAT, "format_version": FORMAT_VERSION, "metadata": meta,
                 "estimator": inner.getvalue()}, outer)
    with open_atomic(metadata_path(path), binary=True) as handle:
        handle.write((json.dumps(meta, indent=2, sort_keys=True) + "\n").encode())
    with open_atomic(path, binary=True) as handle:
        handle.write(outer.getvalue())


def _check_fields(path: str, meta: Dict[str, Any]) -> None:
    """The fields every user of a model reads: refused here, by name, instead of a KeyError later."""
    for name in ("window", "horizon"):
        value = meta.get(name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ModelError(path, "metadata field %r must be a whole number >= 1, got %r; %s"
                             % (name, value, REBUILD_HINT))
    period = meta.get("sampling_period_s")
    if isinstance(period, bool) or not isinstance(period, (int, float)) or not 0 < period < float("inf"):
        raise ModelError(path, "metadata field 'sampling_period_s' must be a number of seconds > 0, got %r; %s"
                         % (period, REBUILD_HINT))
    for name in ("libraries", "estimator"):
        if not isinstance(meta.get(name, {}), dict):
            raise ModelError(path, "metadata field %r must be a record, got %r; %s"
                             % (name, meta.get(name), REBUILD_HINT))


def read_metadata(path: str) -> Tuple[Dict[str, Any], bytes]:
    """The checked metadata and the estimator bytes of a model file, or ``ModelError``."""
    if not os.path.exists(path):
        raise ModelError(path, "no such model file; " + REBUILD_HINT)
    try:
        outer = joblib.load(path)
    except Exception as exc:  # any unpickling failure means "not a model file"
        raise ModelError(path, "is not a readable model file (%s: %s); %s"
                         % (type(exc).__name__, exc, REBUILD_HINT)) from None
    if not isinstance(outer, dict) or outer.get("format") != FORMAT or "metadata" not in outer:
        raise ModelError(path, "is not a Sidestep forecaster file; " + REBUILD_HINT)
    if outer.get("format_version") != FORMAT_VERSION:
        raise ModelError(path, "has model file format %r, this Sidestep reads %d; %s"
                         % (outer.get("format_version"), FORMAT_VERSION, REBUILD_HINT))
    meta = outer["metadata"]
    if not isinstance(meta, dict):
        raise ModelError(path, "has metadata of type %s, not a record; %s" % (type(meta).__name__, REBUILD_HINT))
    _check_fields(path, meta)
    if meta.get("feature_version") != FEATURE_VERSION:
        raise ModelError(path, "was built with feature version %r, this Sidestep computes version %d; %s"
                         % (meta.get("feature_version"), FEATURE_VERSION, REBUILD_HINT))
    built = meta.get("libraries", {}).get("scikit-learn")
    if built != sklearn.__version__:
        raise ModelError(path, "was built with scikit-learn %s, this environment has %s (pickled models "
                         "are not portable across versions); %s" % (built, sklearn.__version__, REBUILD_HINT))
    return meta, outer["estimator"]


def load_model(path: str) -> Tuple[Any, Dict[str, Any]]:
    """(estimator, metadata) from a model file; ``ModelError`` if it does not match this Sidestep."""
    meta, blob = read_metadata(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", sklearn.exceptions.InconsistentVersionWarning)
            estimator = joblib.load(io.BytesIO(blob))
    except Exception as exc:  # a corrupt or foreign payload
        raise ModelError(path, "holds an estimator that cannot be loaded (%s: %s); %s"
                         % (type(exc).__name__, exc, REBUILD_HINT)) from None
    if not hasattr(estimator, "predict"):
        raise ModelError(path, "holds a %s, not a forecaster; %s" % (type(estimator).__name__, REBUILD_HINT))
    return estimator, meta
