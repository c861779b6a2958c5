"""The ``sidestep`` command: one subcommand per module in ``controller/commands``.

Subcommand modules are imported only when chosen, so ``sidestep replay`` never
imports OS-Ken and ``sidestep controller`` never imports matplotlib.
"""
from __future__ import annotations

import argparse
import importlib
import signal
import sys
import threading
from typing import List, Optional, Tuple

# name -> (module, one-line help)
COMMANDS = {
    "controller": ("controller.commands.controller", "run the Sidestep OpenFlow controller (OS-Ken)"),
    "check-config": ("controller.commands.check_config", "validate a controller config file and exit"),
    "train": ("controller.commands.train", "train a link-utilization forecaster from link-load traces"),
    "evaluate": ("controller.commands.evaluate", "evaluate a forecaster and the baselines on link-load traces"),
    "plan": ("controller.commands.plan", "run one offline planning round (what-if)"),
    "replay": ("controller.commands.replay", "replay a flow trace through the simulated fabric"),
    "gen": ("controller.commands.gen", "write a generated flow trace (training jobs, Hedera patterns, web search)"),
    "lab": ("controller.commands.lab", "run the Mininet lab demo (root)"),
}


def build_parser(argv: List[str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sidestep", description=__doc__.splitlines()[0])
    subs = parser.add_subparsers(dest="command", metavar="COMMAND")
    chosen = next((a for a in argv if not a.startswith("-")), None)
    for name, (module, help_text) in COMMANDS.items():
        sub = subs.add_parser(name, help=help_text, description=help_text)
        if name == chosen:
            mod = importlib.import_module(module)
            mod.add_arguments(sub)
            sub.set_defaults(run=mod.run)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    installed, previous = _sigterm_as_interrupt()
    try:
        parser = build_parser(argv)
        args = parser.parse_args(argv)
        if not getattr(args, "run", None):
            parser.print_help()
            return 2
        return int(args.run(args) or 0)
    except KeyboardInterrupt:
        print("sidestep: interrupted", file=sys.stderr)
        return 130
    finally:
        if installed:
            signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)


def _sigterm_as_interrupt() -> Tuple[bool, object]:
    """SIGTERM stops a command as Ctrl-C does; returns (installed, the handler it replaced).

    Why: a command killed by SIGTERM's default action leaves what it was
    writing half done (a replay's hidden temporary folder, say) and says
    nothing; as KeyboardInterrupt it unwinds through the same cleanup as
    Ctrl-C and exits 130 with one line (``lab`` relies on it to take its
    network down).  ``controller``, which stops differently, installs its
    own handler in ``run``.
    """
    if threading.current_thread() is not threading.main_thread():
        return False, None
    return True, signal.signal(signal.SIGTERM, raise_interrupt)


def raise_interrupt(signum: int, frame: object) -> None:
    """A signal handler that makes the signal a KeyboardInterrupt (Ctrl-C's unwinding and cleanup)."""
    raise KeyboardInterrupt


if __name__ == "__main__":
    sys.exit(main())
