"""``sidestep check-config FILE``: validate a controller config without starting anything.

Prints the effective configuration (defaults filled in) as YAML and exits 0,
or prints one error line naming the key or path and exits 2.  The forecaster
is loaded too, as the controller would load it: under ``predictive``, or when
the config names a ``model``, one the controller would replace with
persistence is an error here.  Under ``reactive`` with the shipped model (no
``model`` key) it is a warning: that policy plans on measured load, and only
``/predictions`` and the recording's forecasts would be persistence.  Run it
before ``sidestep controller --config FILE`` or in CI for a config you ship.
"""
from __future__ import annotations

import argparse
import sys

import yaml


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", metavar="FILE", help="controller config (YAML)")
    parser.add_argument("--quiet", "-q", action="store_true",
                        help="print nothing when the config is valid")


def run(args: argparse.Namespace) -> int:
    from controller.config import ConfigError, load_config

    try:
        config = load_config(args.file, {})
    except ConfigError as exc:
        print("sidestep check-config: error: %s" % exc, file=sys.stderr)
        return 2
    if config.policy != "ecmp" or config.model:
        # the controller loads it the same way, and on failure runs on persistence (next = now)
        from models.runtime import ModelError, load_predictor
        try:
            load_predictor(config.model, sampling_period_s=config.poll_interval)
        except ModelError as exc:
            if config.policy == "predictive" or config.model:
                print("sidestep check-config: error: %s: the forecaster cannot be used with this config (%s); the "
                      "controller would %s on persistence (next = now) instead"
                      % (args.file, exc, "run predictive" if config.policy == "predictive"
                         else "forecast (for /predictions and the recording)"), file=sys.stderr)
                return 2
            print("sidestep check-config: warning: %s: the shipped forecaster cannot be used with this config "
                  "(%s); %s plans on measured load and does not need it, but /predictions and the recording's "
                  "forecasts would be persistence (next = now)" % (args.file, exc, config.policy), file=sys.stderr)
    if not args.quiet:
        sys.stdout.write("# effective config of %s\n" % args.file)
        sys.stdout.write(yaml.safe_dump(config.to_dict(), sort_keys=False, default_flow_style=False))
    return 0
