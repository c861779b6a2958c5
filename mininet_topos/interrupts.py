"""Hold Ctrl-C and SIGTERM off for the few lines that must not be cut in two.

Why: a Ctrl-C that lands while ``subprocess.Popen`` waits for its child to
exec raises out of ``Popen`` with the child already forked and no ``Popen``
object to stop it by.  In the lab that child is ``mnexec``, which joins a
host's network namespace a moment later, so the lab's teardown (which kills
what it started, then everything in the hosts' namespaces) can miss it, and
a training worker outlives the interrupted run (seen once in CI).  Inside
``interrupts_deferred()`` the signal is only noted; it is acted on, by the
handler that was installed before, when the block ends.
"""
from __future__ import annotations

import os
import signal
import threading
from contextlib import contextmanager
from typing import Iterator, List

DEFERRED_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextmanager
def interrupts_deferred() -> Iterator[None]:
    """Run the block whole; a SIGINT/SIGTERM that arrives meanwhile takes effect when it ends.

    Outside the main thread (where Python runs no signal handlers and none
    can be installed) the block runs as it is.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: List[int] = []

    def note(signum: int, frame: object) -> None:
        caught.append(signum)

    previous = {signum: signal.signal(signum, note) for signum in DEFERRED_SIGNALS}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        if caught:
            _deliver(caught[0], previous[caught[0]])


def _deliver(signum: int, handler: object) -> None:
    """Act on a noted signal as the handler that was installed before would have."""
    if callable(handler):
        handler(signum, None)
    elif handler == signal.SIG_DFL:
        os.kill(os.getpid(), signum)
