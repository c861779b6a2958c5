"""Read-only REST API (JSON) and Prometheus ``/metrics``, as one plain WSGI application.

Why plain WSGI: OS-Ken no longer has a WSGI app layer, and the app shell
serves this with ``os_ken.lib.hub.WSGIServer`` (as Faucet serves its
metrics), which works under OS-Ken 3.x and Ryu alike.  No framework, no
OS-Ken import, so the whole API is testable with direct calls.

The API only reads: it asks an ``ApiState`` (implemented by the app shell, or
``SnapshotState`` here) for plain data and renders it.  It never changes the
controller, so GET/HEAD are the only methods (anything else: 405).

Routes: ``/topology``, ``/utilization``, ``/predictions``, ``/paths``,
``/health``, ``/metrics``; any other path gets 404 JSON ``{"error": ...}``.
"""
from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field
from typing import (Any, Callable, Collection, Dict, Iterable, List, Mapping, Optional, Protocol,
                    Sequence, Tuple)

Link = Tuple[str, str]
StartResponse = Callable[..., Any]

PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
JSON_CONTENT_TYPE = "application/json"


# -- the data the API renders ---------------------------------------------------

@dataclass(frozen=True)
class SwitchInfo:
    name: str
    dpid: Optional[int]
    connected: bool


@dataclass(frozen=True)
class LinkInfo:
    """A cable between ``a`` and ``b``; capacity and state apply to both directions."""

    a: str
    b: str
    capacity_bps: float
    up: bool


@dataclass(frozen=True)
class HostInfo:
    name: str
    ip: Optional[str]
    mac: Optional[str]
    switch: Optional[str]
    port: Optional[int]


@dataclass(frozen=True)
class Topology:
    switches: Sequence[SwitchInfo] = ()
    links: Sequence[LinkInfo] = ()
    hosts: Sequence[HostInfo] = ()


@dataclass(frozen=True)
class LinkUtil:
    """Latest state of one directed link; ``util`` None if not measured yet, ``pred`` None
    when there is no forecast."""

    link: Link
    util: Optional[float]
    bytes_per_s: Optional[float]
    t_s: Optional[float]
    capacity_bps: float
    pred: Optional[float] = None


@dataclass(frozen=True)
class PathInfo:
    """An installed Sidestep path for one flow."""

    flow_id: str
    src: str
    dst: str
    proto: int
    src_port: int
    dst_port: int
    path: Tuple[str, ...]
    version: int
    since_s: float
    cls: Optional[str] = None
    rate_bps: float = 0.0        # measured from flow stats (0 until two samples, and under ecmp)
    pinned: bool = False         # the path is a planner decision (a move, a failover or POST /pins)


@dataclass(frozen=True)
class Health:
    switches_connected: int
    switches_expected: int
    missed_polls: Mapping[str, int]
    uptime_s: float
    policy: str
    model: Optional[str]
    reroutes_total: int = 0
    packet_in_total: int = 0
    handler_errors_total: int = 0
    packet_in_by_type: Mapping[str, int] = field(default_factory=dict)
    links_discovered: int = 0
    settled: bool = True
    updates: Mapping[str, Optional[float]] = field(default_factory=dict)
    monitor: Mapping[str, int] = field(default_factory=dict)


class ApiState(Protocol):
    """What the API reads; every method returns plain data and must not block."""

    def topology(self) -> Topology: ...

    def utilization(self) -> Sequence[LinkUtil]: ...

    def paths(self) -> Sequence[PathInfo]: ...

    def health(self) -> Health: ...


@dataclass
class SnapshotState:
    """An ``ApiState`` holding the last snapshot; the owner replaces fields as things change."""

    topology_: Topology = field(default_factory=Topology)
    utilization_: Sequence[LinkUtil] = ()
    paths_: Sequence[PathInfo] = ()
    health_: Health = field(default_factory=lambda: Health(0, 0, {}, 0.0, "ecmp", None))

    def topology(self) -> Topology:
        return self.topology_

    def utilization(self) -> Sequence[LinkUtil]:
        return self.utilization_

    def paths(self) -> Sequence[PathInfo]:
        return self.paths_

    def health(self) -> Health:
        return self.health_


# -- helpers that build the data from the core objects -------------------------

def topology_from_fabric(fabric: Any, connected: Collection[str]) -> Topology:
    """``Topology`` from a ``controller.fabric.Fabric``; ``connected``: switch names online."""
    switches = [SwitchInfo(s, fabric.dpid(s), s in connected) for s in fabric.switches()]
    links = []
    for a, b, data in fabric.graph.edges(data=True):
        a, b = sorted((a, b))
        links.append(LinkInfo(a, b, float(data["capacity_bps"]), bool(data["up"])))
    hosts = []
    for h in fabric.hosts():
        try:
            sw, port = fabric.host_edge(h)
        except ValueError:
            sw, port = None, None
        hosts.append(HostInfo(h, fabric.node_attr(h, "ip"), fabric.node_attr(h, "mac"), sw, port))
    return Topology(switches, sorted(links, key=lambda l: (l.a, l.b)), hosts)


def utilization_from_monitor(monitor: Any, predictions: Optional[Mapping[Link, float]] = None
                             ) -> List[LinkUtil]:
    """``LinkUtil`` per directed link from a ``LinkMonitor`` (and forecasts, if any)."""
    latest = monitor.latest()
    preds = dict(predictions or {})
    out = []
    for link in sorted(set(latest) | set(preds)):
        s = latest.get(link)
        pred = preds.get(link)
        pred = None if pred is None or math.isnan(pred) else float(pred)
        if s is None:
            cap = monitor.fabric.capacity_bps(*link) if monitor.fabric.graph.has_edge(*link) else math.nan
            out.append(LinkUtil(link, None, None, None, cap, pred))
        else:
            out.append(LinkUtil(link, s.util, s.util * s.capacity_bps / 8.0, s.t_s, s.capacity_bps, pred))
    return out


# -- rendering --------------------------------------------------------------------

def _num(x: Optional[float]) -> Optional[float]:
    """JSON has no NaN/Infinity: report them as null."""
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def _link_json(link: Link) -> Dict[str, Any]:
    return {"link": "%s->%s" % link, "src": link[0], "dst": link[1]}


def render_topology(t: Topology) -> Dict[str, Any]:
    return {
        "switches": [{"name": s.name, "dpid": s.dpid,
                      "dpid_hex": None if s.dpid is None else "%016x" % s.dpid,
                      "connected": s.connected} for s in t.switches],
        "links": [{"a": l.a, "b": l.b, "capacity_bps": _num(l.capacity_bps), "up": l.up} for l in t.links],
        "hosts": [{"name": h.name, "ip": h.ip, "mac": h.mac, "switch": h.switch, "port": h.port}
                  for h in t.hosts],
    }


def render_utilization(rows: Sequence[LinkUtil]) -> Dict[str, Any]:
    links = []
    for r in sorted(rows, key=lambda r: r.link):
        item = _link_json(r.link)
        item.update(util=_num(r.util), bytes_per_s=_num(r.bytes_per_s), t_s=_num(r.t_s),
                    capacity_bps=_num(r.capacity_bps), pred=None if r.pred is None else _num(r.pred))
        links.append(item)
    return {"links": links}


def render_predictions(rows: Sequence[LinkUtil], model: Optional[str]) -> Dict[str, Any]:
    links = []
    for r in sorted(rows, key=lambda r: r.link):
        if r.pred is None:
            continue
        item = _link_json(r.link)
        item.update(pred=_num(r.pred), util=_num(r.util), t_s=_num(r.t_s))
        links.append(item)
    return {"model": model, "links": links}


def render_paths(rows: Sequence[PathInfo]) -> Dict[str, Any]:
    return {"paths": [{"flow_id": p.flow_id, "src": p.src, "dst": p.dst, "proto": p.proto,
                       "src_port": p.src_port, "dst_port": p.dst_port, "path": list(p.path),
                       "version": p.version, "since_s": _num(p.since_s), "cls": p.cls,
                       "rate_bps": _num(p.rate_bps), "pinned": bool(p.pinned)}
                      for p in sorted(rows, key=lambda p: p.flow_id)]}


def render_health(h: Health) -> Dict[str, Any]:
    missed = {k: int(v) for k, v in sorted(h.missed_polls.items())}
    # "waiting" until the first switch connects (0 of 0 expected is not a healthy fabric)
    status = "waiting" if h.switches_expected == 0 else \
        "ok" if h.switches_connected >= h.switches_expected else "degraded"
    return {"status": status,
            "switches_connected": h.switches_connected, "switches_expected": h.switches_expected,
            "missed_polls": missed, "missed_polls_total": sum(missed.values()),
            "uptime_s": _num(h.uptime_s), "policy": h.policy, "model": h.model,
            "reroutes_total": h.reroutes_total, "packet_in_total": h.packet_in_total,
            "handler_errors_total": h.handler_errors_total,
            "packet_in_by_type": dict(sorted(h.packet_in_by_type.items())),
            "links_discovered": h.links_discovered, "settled": h.settled,
            "path_updates": dict(h.updates), "monitor": dict(h.monitor)}


# -- Prometheus text format 0.0.4 -------------------------------------------------

def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\"", "\\\"").replace("\n", "\\n")


def _value(x: float) -> str:
    if isinstance(x, bool):
        return "1" if x else "0"
    if isinstance(x, int):
        return str(x)
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "+Inf" if x > 0 else "-Inf"
    return repr(float(x))


class _Metrics:
    def __init__(self) -> None:
        self.lines: List[str] = []

    def family(self, name: str, kind: str, help_text: str,
               samples: Iterable[Tuple[Mapping[str, str], float]]) -> None:
        self.lines.append("# HELP %s %s" % (name, help_text.replace("\\", "\\\\").replace("\n", "\\n")))
        self.lines.append("# TYPE %s %s" % (name, kind))
        for labels, value in samples:
            if labels:
                text = ",".join('%s="%s"' % (k, _escape(str(v))) for k, v in labels.items())
                self.lines.append("%s{%s} %s" % (name, text, _value(value)))
            else:
                self.lines.append("%s %s" % (name, _value(value)))

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def _link_labels(link: Link) -> Dict[str, str]:
    return {"link": "%s->%s" % link, "src": link[0], "dst": link[1]}


def render_metrics(state: ApiState) -> str:
    topo, util, health, paths = state.topology(), state.utilization(), state.health(), state.paths()
    m = _Metrics()
    rows = sorted(util, key=lambda r: r.link)
    m.family("sidestep_link_utilization_ratio", "gauge",
             "Measured utilization of the directed link at the last poll (fraction of capacity).",
             [(_link_labels(r.link), r.util) for r in rows if r.util is not None])
    m.family("sidestep_link_predicted_utilization_ratio", "gauge",
             "Forecast utilization of the directed link at the model's horizon (fraction of capacity).",
             [(_link_labels(r.link), r.pred) for r in rows if r.pred is not None])
    directed = []
    for l in topo.links:
        directed += [((l.a, l.b), l), ((l.b, l.a), l)]
    directed.sort(key=lambda x: x[0])
    m.family("sidestep_link_capacity_bytes_per_second", "gauge",
             "Configured capacity of the directed link (from the topology, not port speed).",
             [(_link_labels(link), l.capacity_bps / 8.0) for link, l in directed])
    m.family("sidestep_link_up", "gauge", "1 if the link is up, 0 if down.",
             [(_link_labels(link), l.up) for link, l in directed])
    m.family("sidestep_switches_connected", "gauge", "Switches connected to the controller.",
             [({}, health.switches_connected)])
    m.family("sidestep_switches_expected", "gauge", "Switches the controller expects (known to the fabric).",
             [({}, health.switches_expected)])
    m.family("sidestep_switch_connected", "gauge", "1 if the switch is connected, 0 if not.",
             [({"switch": s.name, "dpid": "" if s.dpid is None else "%016x" % s.dpid}, s.connected)
              for s in sorted(topo.switches, key=lambda s: s.name)])
    m.family("sidestep_polls_missed_total", "counter",
             "Port-stats polls whose previous request was still unanswered when the next was due.",
             [({"switch": sw}, int(n)) for sw, n in sorted(health.missed_polls.items())])
    m.family("sidestep_reroutes_total", "counter",
             "Flows moved to another path: planner moves, failovers from a failed link or switch, POST /pins, "
             "and flows placed before discovery settled moved to ECMP's path over every link.",
             [({}, health.reroutes_total)])
    m.family("sidestep_packet_in_total", "counter", "Packet-in messages received.",
             [({}, health.packet_in_total)])
    m.family("sidestep_packet_in_by_type_total", "counter", "Packet-in messages received, by frame type.",
             [({"type": k}, v) for k, v in sorted(health.packet_in_by_type.items())])
    m.family("sidestep_handler_errors_total", "counter", "Event handlers that failed (logged, app kept running).",
             [({}, health.handler_errors_total)])
    m.family("sidestep_paths_installed", "gauge", "Flows with an installed Sidestep path.",
             [({}, len(paths))])
    m.family("sidestep_uptime_seconds", "gauge", "Seconds since the controller started.",
             [({}, float(health.uptime_s))])
    m.family("sidestep_info", "gauge", "Controller policy and forecaster model (always 1).",
             [({"policy": health.policy, "model": health.model or ""}, 1)])
    return m.text()


# -- WSGI ---------------------------------------------------------------------------

ROUTES = ("/topology", "/utilization", "/predictions", "/paths", "/health", "/metrics")


class ActionError(ValueError):
    """A write request the controller refuses; the message says why (HTTP 400)."""


PIN_FIELDS = ("src", "dst", "proto", "src_port", "dst_port", "path")
PIN_EXAMPLE = ('{"src": "h1", "dst": "h13", "proto": 6, "src_port": 40000, "dst_port": 5201, '
               '"path": ["h1", "e0_0", "a0_1", "c2", "a3_1", "e3_0", "h13"]}')


def _whole(body: Mapping[str, Any], key: str, default: int, top: int) -> int:
    value = body.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= top:
        raise ActionError("%s must be a whole number 0..%d, got %s; e.g. %s"
                          % (key, top, json.dumps(value), PIN_EXAMPLE))
    return value


def parse_pin(body: Mapping[str, Any]) -> Tuple[str, str, int, int, int, Tuple[str, ...]]:
    """``POST /pins``'s body as (src, dst, proto, src_port, dst_port, path); ActionError names the field.

    Why strict: a pin is an operator's order to move live traffic.  A port of
    99999, a protocol of 6.9 read as 6, or a misspelt ``srcport`` that left
    the port at 0 used to be accepted and kept, pinning something other than
    what was meant.
    """
    unknown = sorted(set(body) - set(PIN_FIELDS))
    if unknown:
        raise ActionError("unknown field %s; a pin takes %s, e.g. %s"
                          % (", ".join(repr(k) for k in unknown), ", ".join(PIN_FIELDS), PIN_EXAMPLE))
    names = []
    for key in ("src", "dst"):
        value = body.get(key)
        if not isinstance(value, str) or not value:
            raise ActionError("%s must be a host name, got %s; e.g. %s" % (key, json.dumps(value), PIN_EXAMPLE))
        names.append(value)
    path = body.get("path")
    if not isinstance(path, list) or len(path) < 2 or not all(isinstance(n, str) and n for n in path):
        raise ActionError("path must be a list of node names from src to dst, got %s; e.g. %s"
                          % (json.dumps(path), PIN_EXAMPLE))
    return (names[0], names[1], _whole(body, "proto", 6, 255), _whole(body, "src_port", 0, 65535),
            _whole(body, "dst_port", 0, 65535), tuple(path))


def make_wsgi_app(state: ApiState, logger: Optional[logging.Logger] = None,
                  pin: Optional[Callable[[Mapping[str, Any]], Dict[str, Any]]] = None) -> Callable:
    """The WSGI application: ``app(environ, start_response) -> [bytes]``.

    Read-only, except ``POST /pins`` when the controller passes ``pin``
    (config ``rest_allow_pin: true``): an operator pins one connection to a
    path, e.g. to drain a link by hand or to exercise consistent updates.
    """
    log = logger or logging.getLogger("sidestep.api")

    json_routes: Dict[str, Callable[[], Dict[str, Any]]] = {
        "/topology": lambda: render_topology(state.topology()),
        "/utilization": lambda: render_utilization(state.utilization()),
        "/predictions": lambda: render_predictions(state.utilization(), state.health().model),
        "/paths": lambda: render_paths(state.paths()),
        "/health": lambda: render_health(state.health()),
    }

    def respond(start_response: StartResponse, status: str, body: bytes, content_type: str,
                head: bool, extra: Sequence[Tuple[str, str]] = ()) -> List[bytes]:
        headers = [("Content-Type", content_type), ("Content-Length", str(len(body))),
                   ("Cache-Control", "no-store")] + list(extra)
        start_response(status, headers)
        return [] if head else [body]

    def json_body(data: Any) -> bytes:
        return (json.dumps(data, allow_nan=False, sort_keys=False) + "\n").encode("utf-8")

    def app(environ: Mapping[str, Any], start_response: StartResponse) -> List[bytes]:
        method = environ.get("REQUEST_METHOD", "GET").upper()
        path = environ.get("PATH_INFO", "") or "/"
        if len(path) > 1:
            path = path.rstrip("/")
        head = method == "HEAD"
        if path == "/pins" and pin is None:
            return respond(start_response, "403 Forbidden",
                           json_body({"error": "pinning is off; set rest_allow_pin: true in the controller's "
                                      "config to allow POST /pins"}), JSON_CONTENT_TYPE, head)
        if path == "/pins":
            if method != "POST":
                return respond(start_response, "405 Method Not Allowed",
                               json_body({"error": "use POST with a JSON body, e.g. %s" % PIN_EXAMPLE}),
                               JSON_CONTENT_TYPE, False, [("Allow", "POST")])
            try:
                try:
                    length = int(environ.get("CONTENT_LENGTH") or 0)
                except ValueError:
                    raise ActionError("Content-Length must be a number of bytes, got %r"
                                      % environ.get("CONTENT_LENGTH")) from None
                if length <= 0 or length > 65536:
                    raise ActionError("send a JSON object of at most 64 KiB, e.g. %s" % PIN_EXAMPLE)
                try:
                    body_in = json.loads(environ["wsgi.input"].read(length).decode("utf-8"))
                except UnicodeDecodeError:
                    raise ActionError("the body is not UTF-8 text; send a JSON object, e.g. %s"
                                      % PIN_EXAMPLE) from None
                except ValueError as exc:
                    raise ActionError("the body is not JSON (%s); send a JSON object, e.g. %s"
                                      % (exc, PIN_EXAMPLE)) from None
                except RecursionError:
                    raise ActionError("the body nests too deeply; send a flat JSON object, e.g. %s"
                                      % PIN_EXAMPLE) from None
                if not isinstance(body_in, dict):
                    raise ActionError("the body must be a JSON object, e.g. %s" % PIN_EXAMPLE)
                result = pin(body_in)
            except (ActionError, ValueError) as exc:
                return respond(start_response, "400 Bad Request", json_body({"error": str(exc)}),
                               JSON_CONTENT_TYPE, False)
            except Exception as exc:  # pylint: disable=broad-except
                # as for the GET routes: JSON, logged, and no traceback in the answer
                log.exception("REST POST /pins failed")
                return respond(start_response, "500 Internal Server Error",
                               json_body({"error": "internal error serving /pins: %s: %s"
                                          % (type(exc).__name__, exc)}), JSON_CONTENT_TYPE, False)
            return respond(start_response, "200 OK", json_body(result), JSON_CONTENT_TYPE, False)
        if path not in ROUTES:
            return respond(start_response, "404 Not Found",
                           json_body({"error": "no such resource %s" % path,
                                      "routes": list(ROUTES) + (["/pins"] if pin is not None else [])}),
                           JSON_CONTENT_TYPE, head)
        if method not in ("GET", "HEAD"):
            return respond(start_response, "405 Method Not Allowed",
                           json_body({"error": "method %s not allowed: this API is read-only, use GET"
                                      % method}),
                           JSON_CONTENT_TYPE, False, [("Allow", "GET, HEAD")])
        try:
            if path == "/metrics":
                body = render_metrics(state).encode("utf-8")
                ctype = PROMETHEUS_CONTENT_TYPE
            else:
                body = json_body(json_routes[path]())
                ctype = JSON_CONTENT_TYPE
        except Exception as exc:  # pylint: disable=broad-except
            # A bug behind one route must not kill the server greenthread.
            log.exception("REST %s %s failed", method, path)
            return respond(start_response, "500 Internal Server Error",
                           json_body({"error": "internal error serving %s: %s: %s"
                                      % (path, type(exc).__name__, exc)}),
                           JSON_CONTENT_TYPE, head)
        return respond(start_response, "200 OK", body, ctype, head)

    return app
