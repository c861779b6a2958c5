"""Numba compilation for the kernels that replay runs at every event or tick, or nothing.

Why one place: the fair-share solver, the simulator's bookkeeping, the forecaster's
features and its tree evaluator each keep a plain-Python/numpy reference and use a
compiled twin with the same operations in the same order.  They must agree on when
the twin exists: Numba is an optional extra (``pip install -e '.[fast]'``), and
``SIDESTEP_NO_JIT=1`` turns every twin off at once, so checks can run the references.
"""
from __future__ import annotations

import hashlib
import inspect
import os
import types
from typing import Callable, Optional, Sequence


def jit(fn: Callable, *, calls_into: Sequence[Callable] = ()) -> Optional[Callable]:
    """``fn`` compiled by Numba, or None (Numba not installed, or SIDESTEP_NO_JIT set).

    Cached on disk (``cache=True``), no GIL, and ``error_model="numpy"`` so that
    x/0 gives inf or nan as in numpy instead of raising.  No fast-math: the
    twins must round exactly like their references.

    ``calls_into``: compiled functions defined in *other* files that ``fn`` calls.
    Numba links their machine code into ``fn``'s, but its disk cache only checks
    that ``fn``'s own file is unchanged, so an edit to one of theirs (a ``git
    pull`` that touches only that file) would load the old code.  The digest of
    their files is therefore part of the name ``fn`` is cached under
    (``cache_name``): their edits make a new cache entry.
    """
    if os.environ.get("SIDESTEP_NO_JIT"):
        return None
    try:
        import numba
    except ImportError:
        return None
    if calls_into:
        fn = _renamed(fn, cache_name(fn, calls_into))
    return numba.njit(cache=True, nogil=True, error_model="numpy")(fn)


def cache_name(fn: Callable, calls_into: Sequence[Callable]) -> str:
    """``fn``'s qualified name plus a digest of the source files of ``calls_into`` (their plain functions)."""
    digest = hashlib.sha256()
    for path in sorted({inspect.getsourcefile(getattr(f, "py_func", f)) for f in calls_into}):
        with open(path, "rb") as handle:
            digest.update(handle.read())
    return "%s_%s" % (fn.__qualname__, digest.hexdigest()[:16])


def _renamed(fn: Callable, qualname: str) -> Callable:
    """A copy of the plain function ``fn`` under another ``__qualname__`` (what Numba names its cache by)."""
    copy = types.FunctionType(fn.__code__, fn.__globals__, fn.__name__, fn.__defaults__, fn.__closure__)
    copy.__qualname__ = qualname
    copy.__doc__ = fn.__doc__
    return copy
