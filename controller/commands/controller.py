"""``sidestep controller``: run the Sidestep app under OS-Ken's AppManager.

OS-Ken 4.x has no ``osken-manager``; this starts the app the same way the
manager does, so one command works wherever OS-Ken is installed.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from typing import List

APP = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "app.py")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="FILE", help="controller config (YAML); see 'sidestep check-config'")
    parser.add_argument("--ofp-port", type=int, default=None, help="OpenFlow listening port (default 6653)")
    parser.add_argument("--ofp-host", default="0.0.0.0", help="OpenFlow listening address (default all)")
    parser.add_argument("--rest-host", default=None, help="REST/metrics address (default 127.0.0.1)")
    parser.add_argument("--rest-port", type=int, default=None, help="REST/metrics port (default 8080; 0 disables)")
    parser.add_argument("--record", metavar="LOADS.csv", default=None,
                        help="append link-load samples to this CSV")
    parser.add_argument("--policy", choices=("ecmp", "reactive", "predictive"), default=None)
    parser.add_argument("--model", metavar="MODEL", default=None, help="forecaster model file (default: shipped)")
    parser.add_argument("--poll-interval", type=float, default=None, help="seconds between port-stats polls")
    parser.add_argument("--set-json", default=None, metavar="JSON",
                        help="more config overrides as a JSON object (used by the lab)")
    parser.add_argument("--verbose", action="store_true", help="debug logging")


def run(args: argparse.Namespace) -> int:
    from controller.config import ConfigError, load_config

    overrides = {}
    if args.set_json:
        try:
            given = json.loads(args.set_json)
        except ValueError as exc:
            print("sidestep controller: error: --set-json is not a JSON object: %s" % exc, file=sys.stderr)
            return 2
        if not isinstance(given, dict):
            print("sidestep controller: error: --set-json must be a JSON object such as '{\"policy\": "
                  "\"reactive\"}', got %s" % type(given).__name__, file=sys.stderr)
            return 2
        overrides.update(given)
    for key, value in (("ofp_port", args.ofp_port), ("rest_host", args.rest_host),
                       ("rest_port", args.rest_port), ("record", args.record), ("policy", args.policy),
                       ("model", args.model), ("poll_interval", args.poll_interval)):
        if value is not None:
            overrides[key] = value
    try:
        config = load_config(args.config, overrides)
    except ConfigError as exc:
        print("sidestep controller: error: %s" % exc, file=sys.stderr)
        return 2
    from controller.listening import listening_on

    if listening_on(args.ofp_host, config.ofp_port):
        print("sidestep controller: error: OpenFlow port %d is already in use (another controller?); "
              "stop it or choose another port with --ofp-port" % config.ofp_port, file=sys.stderr)
        return 2
    os.environ["SIDESTEP_CONFIG"] = args.config or ""
    os.environ["SIDESTEP_OVERRIDES"] = json.dumps(overrides)
    return start_app_manager(config.ofp_port, args.ofp_host, args.verbose)


def start_app_manager(ofp_port: int, ofp_host: str, verbose: bool) -> int:
    """What ``osken-manager controller/app.py`` does, without needing that script."""
    from os_ken.lib import hub

    hub.patch(thread=True)
    import logging

    from os_ken import cfg
    from os_ken.base.app_manager import AppManager

    import os_ken.controller.controller  # noqa: F401  (registers --ofp-tcp-listen-port)

    cfg.CONF(args=["--ofp-tcp-listen-port", str(ofp_port), "--ofp-listen-host", ofp_host],
             project="os_ken", default_config_files=[])
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    manager = AppManager.get_instance()
    try:
        manager.load_apps([APP])
        contexts = manager.create_contexts()
        services = manager.instantiate_apps(**contexts)
    except SystemExit as exc:
        return int(exc.code or 2)
    # SIGTERM (a service manager, `sidestep lab`) stops the app as Ctrl-C does: the apps' threads end and
    # the recording is flushed and closed, instead of the process dying with the last samples unwritten
    stopped_by: List[int] = []

    def stop(signum: int, _frame: object) -> None:
        stopped_by.append(signum)
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        hub.joinall(services)
    except KeyboardInterrupt:
        if not stopped_by:
            stopped_by.append(signal.SIGINT)
    finally:
        manager.close()
    if stopped_by:
        name = signal.Signals(stopped_by[0]).name
        print("sidestep controller: stopped by %s" % name, file=sys.stderr)
        return 128 + stopped_by[0]
    return 0
