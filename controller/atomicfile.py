"""Write a file whole or not at all.

Why: a half-written trace, recording or result reads as a shorter, valid
one.  The text goes to a temporary file beside the target and is renamed
over it only when complete; on any error the temporary file is removed and
the target is as it was.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from typing import IO, Iterator, Optional

__all__ = ["folder_problem", "open_atomic"]


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


def folder_problem(folder: str, option: str) -> Optional[str]:
    """Why no output can be made in ``folder`` (the parent of ``option``'s path), or None.

    Checked by creating and removing an empty folder there, before the command
    does its work: a read-only or full file system, or a path through a file,
    used to be found only when the results were written, after the work.
    """
    if not os.path.isdir(folder):
        head = folder
        while head and not os.path.lexists(head):
            head = os.path.dirname(head) if os.path.dirname(head) != head else ""
        if head and not os.path.isdir(head):
            return "%s is a file, not a folder; choose another %s path" % (head, option)
        return "folder %s does not exist; create it (mkdir -p) or choose another %s path" % (folder, option)
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".sidestep-probe-", dir=folder))
    except OSError as exc:
        return "cannot create files in %s (%s); choose another %s path" % (folder, exc.strerror or exc, option)
    return None
