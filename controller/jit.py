"""Numba compilation for the kernels that replay runs at every event or tick, or nothing.

Why one place: the fair-share solver, the simulator's bookkeeping, the forecaster's
features and its tree evaluator each keep a plain-Python/numpy reference and use a
compiled twin with the same operations in the same order.  They must agree on when
the twin exists: Numba is an optional extra (``pip install -e '.[fast]'``), and
``SIDESTEP_NO_JIT=1`` turns every twin off at once, so checks can run the references.
"""
from __future__ import annotations

import os
from typing import Callable, Optional


def jit(fn: Callable) -> Optional[Callable]:
    """``fn`` compiled by Numba, or None (Numba not installed, or SIDESTEP_NO_JIT set).

    Cached on disk (``cache=True``), no GIL, and ``error_model="numpy"`` so that
    x/0 gives inf or nan as in numpy instead of raising.  No fast-math: the
    twins must round exactly like their references.
    """
    if os.environ.get("SIDESTEP_NO_JIT"):
        return None
    try:
        import numba
    except ImportError:
        return None
    return numba.njit(cache=True, nogil=True, error_model="numpy")(fn)
