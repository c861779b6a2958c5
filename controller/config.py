"""The controller's configuration: one YAML file plus command-line overrides.

Why this shape (after Faucet's ``conf.py``): a typo in a config key must not
silently fall back to a default, and a bad value must stop the controller at
start with one message that names the key (or path) and says what is allowed,
not fail minutes later inside an event handler.  So: typed defaults, unknown
keys rejected, one ``ConfigError``, frozen objects after load, and
``sidestep check-config FILE`` to validate without starting anything.

Example (every key optional; these are the defaults unless noted)::

    ofp_port: 6653
    poll_interval: 1.0          # seconds between port-stats polls, >= 0.2
    rest_host: 127.0.0.1
    rest_port: 8080             # 0 disables the REST API and /metrics
    rest_allow_pin: false       # accept POST /pins (operator pins a connection to a path)
    record: null                # link-load CSV to append to, e.g. loads.csv
    record_flush_s: 2.0
    link_mbps: 10               # capacity of every discovered link ...
    capacities: {}              # ... unless overridden: {"a0_0-c0": 100}, both directions
    lldp_interval: 1.0
    idle_timeout: 60            # idle timeout of installed path rules, seconds (0 = none)
    policy: ecmp                # ecmp | reactive | predictive
    model: null                 # forecaster file; null = the shipped default
    planner:
      hot_threshold: 0.8
      elephant_mbps: null       # absolute elephant threshold; null = use elephant_fraction
      elephant_fraction: 0.1    # of the flow's access-link capacity (Hedera)
      hysteresis: 0.1
      max_reroutes_per_tick: 4
      move_background: false
    training:
      host_groups: []           # e.g. [[h1, h2, h3, h4], [h5, h6]]: one list per job
      tcp_ports: []             # e.g. ['5000-5100', 29500]
      udp_ports: ['4791']       # RoCEv2
      dscp: []                  # e.g. [26]
"""
from __future__ import annotations

import difflib
import math
import os
import re
from dataclasses import dataclass, field, fields
from typing import Any, Dict, List, Mapping, Optional, Set, Tuple

import yaml

from controller.atomicfile import folder_problem
from controller.loadtrace import recording_problem

POLICIES = ("ecmp", "reactive", "predictive")
MIN_POLL_INTERVAL_S = 0.2
OVERRIDE = "override"


class ConfigError(ValueError):
    """A config that cannot be used; the message names the file (or override), the key and why."""

    def __init__(self, key: Optional[str], reason: str, source: Optional[str] = None) -> None:
        parts = [p for p in (source, key) if p]
        super().__init__(": ".join(parts + [reason]))
        self.key = key
        self.reason = reason
        self.source = source


# -- section dataclasses -------------------------------------------------------

@dataclass(frozen=True)
class PlannerSection:
    """Planner thresholds as configured; ``planner_kwargs`` feeds ``PlannerConfig``."""

    hot_threshold: float = 0.8
    elephant_mbps: Optional[float] = None
    elephant_fraction: float = 0.1
    hysteresis: float = 0.1
    max_reroutes_per_tick: int = 4
    move_background: bool = False

    def planner_kwargs(self, policy: str) -> Dict[str, Any]:
        """Keyword arguments for ``controller.planner.PlannerConfig`` (bit/s, not Mbit/s)."""
        return {"policy": policy, "hot_threshold": self.hot_threshold,
                "elephant_bps": None if self.elephant_mbps is None else self.elephant_mbps * 1e6,
                "elephant_fraction": self.elephant_fraction, "hysteresis": self.hysteresis,
                "max_reroutes_per_tick": self.max_reroutes_per_tick,
                "move_background": self.move_background}


@dataclass(frozen=True)
class TrainingSection:
    """What counts as training traffic; ``classifier_data`` feeds ``TrafficClassifier.from_config``.

    Port ranges are stored as (lo, hi) inclusive.
    """

    host_groups: Tuple[Tuple[str, ...], ...] = ()
    tcp_ports: Tuple[Tuple[int, int], ...] = ()
    udp_ports: Tuple[Tuple[int, int], ...] = ((4791, 4791),)
    dscp: Tuple[int, ...] = ()

    def classifier_data(self) -> Dict[str, Any]:
        ports = (["tcp:%s" % _range_text(r) for r in self.tcp_ports]
                 + ["udp:%s" % _range_text(r) for r in self.udp_ports])
        return {"host_groups": [list(g) for g in self.host_groups], "ports": ports,
                "dscp": list(self.dscp)}


@dataclass(frozen=True)
class Config:
    """The effective controller configuration (frozen)."""

    ofp_port: int = 6653
    poll_interval: float = 1.0
    rest_host: str = "127.0.0.1"
    rest_port: int = 8080
    rest_allow_pin: bool = False
    record: Optional[str] = None
    record_flush_s: float = 2.0
    link_mbps: float = 10.0
    capacities: Tuple[Tuple[Tuple[str, str], float], ...] = ()
    lldp_interval: float = 1.0
    idle_timeout: int = 60
    policy: str = "ecmp"
    model: Optional[str] = None
    planner: PlannerSection = field(default_factory=PlannerSection)
    training: TrainingSection = field(default_factory=TrainingSection)

    def capacity_mbps(self, a: str, b: str) -> float:
        """Capacity of the cable a-b (either direction): the override, else ``link_mbps``."""
        key = tuple(sorted((a, b)))
        for pair, mbps in self.capacities:
            if pair == key:
                return mbps
        return self.link_mbps

    def capacity_bps(self, a: str, b: str) -> float:
        return self.capacity_mbps(a, b) * 1e6

    def to_dict(self) -> Dict[str, Any]:
        """Plain data (YAML/JSON-ready); ``load_config`` of its dump gives this config back."""
        out: Dict[str, Any] = {}
        for f in fields(self):
            out[f.name] = getattr(self, f.name)
        out["capacities"] = {"%s-%s" % pair: mbps for pair, mbps in self.capacities}
        out["planner"] = {f.name: getattr(self.planner, f.name) for f in fields(self.planner)}
        if self.planner.elephant_mbps is not None:
            out["planner"]["elephant_fraction"] = None   # the absolute threshold wins
        t = self.training
        out["training"] = {"host_groups": [list(g) for g in t.host_groups],
                           "tcp_ports": [_range_text(r) for r in t.tcp_ports],
                           "udp_ports": [_range_text(r) for r in t.udp_ports],
                           "dscp": list(t.dscp)}
        return out


# -- loading -------------------------------------------------------------------

class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key given twice (PyYAML keeps the last one silently)."""


def _construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: Set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            mark = key_node.start_mark
            raise ConfigError(str(key), "given twice (line %d); keep one" % (mark.line + 1))
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
# YAML 1.2's floats: PyYAML (YAML 1.1) reads 1e3 and 5e-1 as strings, and the config then said
# "must be a number, got '1e3'".  Plain decimals, ints and quoted strings resolve as before.
_UniqueKeyLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."))


def read_yaml(path: str) -> Dict[str, Any]:
    """The raw mapping in a YAML file (empty file -> {})."""
    try:
        with open(path, encoding="utf-8") as handle:
            data = yaml.load(handle, Loader=_UniqueKeyLoader)  # noqa: S506 (SafeLoader subclass)
    except OSError as exc:
        raise ConfigError(None, "cannot read config file: %s" % exc.strerror, path) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(None, "not a text file: byte %d is not UTF-8; a config is YAML text (README, "
                          "'Configuration'; `sidestep check-config FILE` checks one)" % exc.start, path) from None
    except ConfigError as exc:
        raise ConfigError(exc.key, exc.reason, path) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = " at line %d column %d" % (mark.line + 1, mark.column + 1) if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(None, "not valid YAML%s: %s" % (where, problem), path) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(None, "the top level must be a mapping of key: value, got %s"
                          % type(data).__name__, path)
    return data


def load_config(path: Optional[str] = None, overrides: Optional[Mapping[str, Any]] = None) -> Config:
    """Load ``path`` (None: defaults only) and apply ``overrides`` on top.

    Overrides use the file's keys; section keys may be nested
    (``{"planner": {"hysteresis": 0.2}}``) or dotted (``{"planner.hysteresis": 0.2}``).
    A value of None is applied as null (the caller drops options it was not given).
    Raises ConfigError naming the key, or the path for file problems.
    """
    raw = read_yaml(path) if path else {}
    if overrides is not None and not isinstance(overrides, Mapping):
        raise ConfigError(None, "overrides must be a mapping of key: value, got %s" % type(overrides).__name__,
                          OVERRIDE)
    merged: Dict[str, Any] = dict(raw)
    from_override: Set[str] = set()
    for key, value in (overrides or {}).items():
        if not isinstance(key, str):
            raise ConfigError(str(key), "override keys must be strings", OVERRIDE)
        section, _, sub = key.partition(".")
        if sub or (section in _SECTIONS and isinstance(value, Mapping)):
            items = {sub: value} if sub else dict(value)
            base = merged.get(section)
            base = dict(base) if isinstance(base, Mapping) else ({} if base is None else base)
            if not isinstance(base, dict):
                raise ConfigError(section, "must be a mapping", path)
            base.update(items)
            merged[section] = base
            from_override.update("%s.%s" % (section, k) for k in items)
        else:
            merged[key] = value
            from_override.add(key)
    return _build(merged, path, from_override)


_SECTIONS = ("planner", "training")


class _Ctx:
    """Says where a key's value came from, for the error message."""

    def __init__(self, path: Optional[str], from_override: Set[str]) -> None:
        self.path = path
        self.from_override = from_override

    def error(self, key: str, reason: str) -> ConfigError:
        source = OVERRIDE if key in self.from_override or key.split("[")[0] in self.from_override \
            else self.path
        return ConfigError(key, reason, source)


def _build(data: Mapping[str, Any], path: Optional[str], from_override: Set[str]) -> Config:
    ctx = _Ctx(path, from_override)
    known = [f.name for f in fields(Config)]
    _reject_unknown(ctx, data, known, "")
    d = Config()
    kw: Dict[str, Any] = {}
    g = data.get
    kw["ofp_port"] = _int(ctx, "ofp_port", g("ofp_port", d.ofp_port), 1, 65535)
    kw["poll_interval"] = _float(ctx, "poll_interval", g("poll_interval", d.poll_interval),
                                 lo=MIN_POLL_INTERVAL_S, unit="seconds")
    kw["rest_host"] = _str(ctx, "rest_host", g("rest_host", d.rest_host))
    kw["rest_port"] = _int(ctx, "rest_port", g("rest_port", d.rest_port), 0, 65535)
    if kw["rest_port"] == kw["ofp_port"]:
        raise ctx.error("rest_port", "%d is also ofp_port; the REST API and OpenFlow need different ports "
                        "(0 disables the REST API)" % kw["rest_port"])
    allow_pin = g("rest_allow_pin", d.rest_allow_pin)
    if not isinstance(allow_pin, bool):
        raise ctx.error("rest_allow_pin", "must be true or false, got %r" % (allow_pin,))
    kw["rest_allow_pin"] = allow_pin
    record = _opt_str(ctx, "record", g("record", d.record))
    if record is not None:
        record = os.path.expanduser(record)    # what the recorder opens is what was checked
        _check_writable(ctx, "record", record)
    kw["record"] = record
    kw["record_flush_s"] = _float(ctx, "record_flush_s", g("record_flush_s", d.record_flush_s),
                                  lo=0.0, lo_open=True, unit="seconds")
    kw["link_mbps"] = _float(ctx, "link_mbps", g("link_mbps", d.link_mbps), lo=0.0, lo_open=True,
                             unit="Mbit/s")
    kw["capacities"] = _capacities(ctx, g("capacities", {}))
    kw["lldp_interval"] = _float(ctx, "lldp_interval", g("lldp_interval", d.lldp_interval),
                                 lo=0.0, lo_open=True, unit="seconds")
    kw["idle_timeout"] = _int(ctx, "idle_timeout", g("idle_timeout", d.idle_timeout), 0, 65535)
    kw["policy"] = _choice(ctx, "policy", g("policy", d.policy), POLICIES)
    model = _opt_str(ctx, "model", g("model", d.model))
    if model is not None and not os.path.isfile(model):
        raise ctx.error("model", "model file %s does not exist (omit 'model' to use the shipped default)"
                        % model)
    kw["model"] = model
    kw["planner"] = _planner(ctx, g("planner", {}))
    kw["training"] = _training(ctx, g("training", {}))
    return Config(**kw)


def _planner(ctx: _Ctx, raw: Any) -> PlannerSection:
    raw = _section(ctx, "planner", raw, [f.name for f in fields(PlannerSection)])
    d = PlannerSection()
    g = raw.get
    elephant_mbps = g("elephant_mbps", d.elephant_mbps)
    if elephant_mbps is not None:
        elephant_mbps = _float(ctx, "planner.elephant_mbps", elephant_mbps, lo=0.0, lo_open=True,
                               unit="Mbit/s")
        if raw.get("elephant_fraction") is not None:
            raise ctx.error("planner.elephant_mbps", "give elephant_mbps or elephant_fraction, not both")
    move = g("move_background", d.move_background)
    if not isinstance(move, bool):
        raise ctx.error("planner.move_background", "must be true or false, got %r" % (move,))
    return PlannerSection(
        hot_threshold=_float(ctx, "planner.hot_threshold", g("hot_threshold", d.hot_threshold),
                             lo=0.0, lo_open=True, hi=1.5, unit="(fraction of capacity)"),
        elephant_mbps=elephant_mbps,
        elephant_fraction=_float(ctx, "planner.elephant_fraction",
                                 _default(g("elephant_fraction"), d.elephant_fraction),
                                 lo=0.0, lo_open=True, hi=1.0, unit="(fraction of capacity)"),
        hysteresis=_float(ctx, "planner.hysteresis", g("hysteresis", d.hysteresis), lo=0.0, hi=1.0,
                          unit="(fraction of capacity)"),
        max_reroutes_per_tick=_int(ctx, "planner.max_reroutes_per_tick",
                                   g("max_reroutes_per_tick", d.max_reroutes_per_tick), 0, None),
        move_background=move)


def _training(ctx: _Ctx, raw: Any) -> TrainingSection:
    raw = _section(ctx, "training", raw, [f.name for f in fields(TrainingSection)])
    d = TrainingSection()
    groups_raw = _list(ctx, "training.host_groups", raw.get("host_groups", []))
    groups: List[Tuple[str, ...]] = []
    for i, group in enumerate(groups_raw):
        key = "training.host_groups[%d]" % i
        members = _list(ctx, key, group)
        names = [_str(ctx, "%s[%d]" % (key, j), m) for j, m in enumerate(members)]
        if len(set(names)) < 2:
            raise ctx.error(key, "a host group is one training job's hosts and needs at least two, got %r"
                            % (group,))
        groups.append(tuple(names))
    ports = {}
    for proto in ("tcp_ports", "udp_ports"):
        key = "training." + proto
        value = raw.get(proto)
        items = [_range_text(r) for r in getattr(d, proto)] if value is None and proto not in raw \
            else _list(ctx, key, value)
        ports[proto] = tuple(_port_range(ctx, "%s[%d]" % (key, i), v) for i, v in enumerate(items))
    dscp = tuple(_int(ctx, "training.dscp[%d]" % i, v, 0, 63)
                 for i, v in enumerate(_list(ctx, "training.dscp", raw.get("dscp", []))))
    return TrainingSection(tuple(groups), ports["tcp_ports"], ports["udp_ports"], dscp)


# -- value checks --------------------------------------------------------------

def _reject_unknown(ctx: _Ctx, data: Mapping[str, Any], known: List[str], prefix: str) -> None:
    for key in data:
        if key not in known:
            close = difflib.get_close_matches(str(key), known, n=1)
            hint = "did you mean %r? " % close[0] if close else ""
            raise ctx.error(prefix + str(key), "unknown key; %sknown keys%s are %s"
                            % (hint, " of " + prefix[:-1] if prefix else "", ", ".join(known)))


def _section(ctx: _Ctx, name: str, raw: Any, known: List[str]) -> Mapping[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise ctx.error(name, "must be a mapping of key: value, got %r" % (raw,))
    _reject_unknown(ctx, raw, known, name + ".")
    return raw


def _default(value: Any, default: Any) -> Any:
    return default if value is None else value


def _int(ctx: _Ctx, key: str, value: Any, lo: Optional[int], hi: Optional[int]) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ctx.error(key, "must be an integer, got %r" % (value,))
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        span = "%s..%s" % (lo, hi) if hi is not None else ">= %s" % lo
        raise ctx.error(key, "must be %s, got %d" % (span, value))
    return value


def _float(ctx: _Ctx, key: str, value: Any, *, lo: Optional[float] = None, lo_open: bool = False,
           hi: Optional[float] = None, unit: str = "") -> float:
    unit = " " + unit if unit else ""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ctx.error(key, "must be a number%s, got %r" % (unit, value))
    value = float(value)
    if lo is not None and (value < lo or (lo_open and value == lo)):
        raise ctx.error(key, "must be %s %g%s, got %g" % (">" if lo_open else ">=", lo, unit, value))
    if hi is not None and value > hi:
        raise ctx.error(key, "must be <= %g%s, got %g" % (hi, unit, value))
    return value


def _str(ctx: _Ctx, key: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ctx.error(key, "must be a non-empty string, got %r" % (value,))
    return value.strip()


def _opt_str(ctx: _Ctx, key: str, value: Any) -> Optional[str]:
    return None if value is None else _str(ctx, key, value)


def _choice(ctx: _Ctx, key: str, value: Any, choices: Tuple[str, ...]) -> str:
    if value not in choices:
        raise ctx.error(key, "must be one of %s, got %r" % ("|".join(choices), value))
    return value


def _list(ctx: _Ctx, key: str, value: Any) -> List[Any]:
    if value is None:
        return []
    if not isinstance(value, (list, tuple)):
        raise ctx.error(key, "must be a list, got %r" % (value,))
    return list(value)


def _port_range(ctx: _Ctx, key: str, value: Any) -> Tuple[int, int]:
    """``4791``, ``'4791'`` or ``'5000-5100'`` -> (lo, hi)."""
    bad = "must be a port or range like '4791' or '5000-5100', got %r" % (value,)
    if isinstance(value, bool):
        raise ctx.error(key, bad)
    text = str(value).strip() if isinstance(value, (int, str)) else None
    parts = text.split("-") if text else []
    if not 1 <= len(parts) <= 2 or not all(p.strip().isdigit() for p in parts):
        raise ctx.error(key, bad)
    lo, hi = int(parts[0]), int(parts[-1])
    if not (0 <= lo <= 65535 and 0 <= hi <= 65535):
        raise ctx.error(key, "ports must be 0..65535, got %r" % (value,))
    if lo > hi:
        raise ctx.error(key, "range start %d is above its end %d" % (lo, hi))
    return lo, hi


def _range_text(rng: Tuple[int, int]) -> str:
    return str(rng[0]) if rng[0] == rng[1] else "%d-%d" % rng


def _capacities(ctx: _Ctx, raw: Any) -> Tuple[Tuple[Tuple[str, str], float], ...]:
    if raw is None:
        return ()
    if not isinstance(raw, Mapping):
        raise ctx.error("capacities", "must be a mapping 'A-B': Mbit/s, e.g. {'a0_0-c0': 100}, got %r"
                        % (raw,))
    out: Dict[Tuple[str, str], float] = {}
    for name, mbps in raw.items():
        key = "capacities[%r]" % (name,)
        parts = name.split("-") if isinstance(name, str) else []
        if len(parts) != 2 or not all(p.strip() for p in parts) or parts[0].strip() == parts[1].strip():
            raise ctx.error(key, "a link is written 'A-B' with two different node names, e.g. 'a0_0-c0'")
        pair = tuple(sorted(p.strip() for p in parts))
        if pair in out:
            raise ctx.error(key, "link %s-%s is given twice (capacities apply to both directions)" % pair)
        out[pair] = _float(ctx, key, mbps, lo=0.0, lo_open=True, unit="Mbit/s")  # type: ignore[index]
    return tuple(sorted(out.items()))


def _check_writable(ctx: _Ctx, key: str, path: str) -> None:
    """Refuse a record path we could not append to, at load, naming the path."""
    full = os.path.abspath(os.path.expanduser(path))
    folder = os.path.dirname(full)
    if os.path.isdir(full):
        raise ctx.error(key, "%s is a folder; give a file name such as %s"
                        % (path, os.path.join(path, "loads.csv")))
    if not os.path.isdir(folder):     # missing, or a file: say which (an existing folder is checked below)
        raise ctx.error(key, "cannot write %s: %s" % (path, folder_problem(folder, key)))
    if os.path.exists(full):
        if not os.access(full, os.W_OK):
            raise ctx.error(key, "cannot write %s: file is not writable" % path)
        problem = recording_problem(full)
        if problem:
            raise ctx.error(key, problem)
    elif not os.access(folder, os.W_OK | os.X_OK):
        raise ctx.error(key, "cannot write %s: folder %s is not writable" % (path, folder))
