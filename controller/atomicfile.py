"""Write a file whole or not at all.

Why: a half-written trace, recording or result reads as a shorter, valid
one.  The text goes to a temporary file beside the target and is renamed
over it only when complete; on any error the temporary file is removed and
the target is as it was.
"""
from __future__ import annotations

import contextlib
import os
from typing import IO, Iterator

__all__ = ["open_atomic"]


@contextlib.contextmanager
def open_atomic(path: str, *, binary: bool = False) -> Iterator[IO]:
    """``with open_atomic(path) as handle: handle.write(...)``: ``path`` appears only if the block succeeds.

    Text (UTF-8) by default, bytes with ``binary``.  The data reach the disk
    (``fsync``) before the rename, so a crash right after it cannot leave an
    empty file where the old one was.
    """
    folder, name = os.path.split(os.path.abspath(path))
    tmp = os.path.join(folder, ".%s.%d.tmp" % (name, os.getpid()))
    try:
        with (open(tmp, "wb") if binary else open(tmp, "w", encoding="utf-8")) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
