"""Where a command may write its output file: never over an input, never over a file unasked.

Why one place: ``train -o``, ``evaluate --json`` and ``plan --json`` each
used to write wherever they were pointed, so ``sidestep train loads.csv -o
loads.csv`` replaced the recording it had just read with a model.  Every
command checks its output here before it starts work, the way ``gen`` and
``replay`` refuse an existing output unless ``--force``.
"""
from __future__ import annotations

import os
import stat
from typing import Optional, Sequence

from controller.atomicfile import folder_problem, open_atomic

__all__ = ["output_file_problem", "write_text_atomically"]


def output_file_problem(path: str, option: str, *, force: bool, inputs: Sequence[str] = (),
                        example: str = "") -> Optional[str]:
    """Why ``path`` (given as ``option``) must not be written, or None if it may be."""
    if os.path.isdir(path) or path.endswith(os.sep):
        return "%s %s; %s needs a file name%s" % (path, "is a folder" if os.path.isdir(path) else
                                                  "names a folder (it ends with %s)" % os.sep, option,
                                                  " such as " + example if example else "")
    problem = folder_problem(os.path.dirname(os.path.abspath(path)), option)
    if problem:
        return "%s: %s" % (path, problem)
    if os.path.islink(path):
        # an atomic write replaces the link itself, not the file it names: say which file that is
        return "%s is a symbolic link (to %s); %s replaces files, not links: name the file itself or " \
               "another %s path" % (path, os.readlink(path), option, option)
    if os.path.exists(path) and not stat.S_ISREG(os.stat(path).st_mode):
        return "%s is not a regular file (a device, pipe or socket); %s would put a regular file in its " \
               "place: choose another %s path" % (path, option, option)
    if os.path.exists(path):
        for given in inputs:
            if os.path.exists(given) and os.path.samefile(given, path):
                return "%s %s is also an input of this command; writing it would destroy the input; " \
                       "choose another %s path" % (option, path, option)
        if not force:
            return "%s exists; choose another %s path or pass --force to replace it" % (path, option)
    return None


def write_text_atomically(path: str, text: str) -> None:
    """Write ``text`` to ``path`` whole or not at all (``controller.atomicfile``; OSError on failure)."""
    with open_atomic(path) as handle:
        handle.write(text)
