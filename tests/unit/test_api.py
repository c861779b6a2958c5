"""REST API and /metrics through the WSGI interface (direct calls, wsgiref validator)."""
from __future__ import annotations

import io
import json
import math
import re
from wsgiref.util import setup_testing_defaults
from wsgiref.validate import validator

import pytest

from controller.api import (ROUTES, Health, LinkUtil, PathInfo, SnapshotState, make_wsgi_app,
                            topology_from_fabric, utilization_from_monitor)
from controller.fabric import Fabric
from controller.monitor import LinkMonitor, PortCounters
from mininet_topos.fattree_spec import fat_tree


def call(app, path, method="GET", query=""):
    environ = {"PATH_INFO": path, "REQUEST_METHOD": method, "wsgi.input": io.BytesIO(b""),
               "SCRIPT_NAME": "", "QUERY_STRING": query}
    setup_testing_defaults(environ)
    got = {}

    def start_response(status, headers, exc_info=None):
        got["status"] = status
        got["headers"] = dict(headers)
        return lambda data: None

    result = validator(app)(environ, start_response)
    try:
        body = b"".join(result)
    finally:
        result.close()
    return int(got["status"].split()[0]), got["headers"], body


@pytest.fixture
def fabric():
    return Fabric.from_spec(fat_tree(4, 10))


@pytest.fixture
def state(fabric):
    """A k=4 fabric with one measured link pair, one forecast and one pinned path."""
    mon = LinkMonitor(fabric)
    port, hport = fabric.port("e0_0", "a0_0"), fabric.port("e0_0", "h1")
    mon.observe("e0_0", [PortCounters(port, 0, 0, 10.0), PortCounters(hport, 0, 0, 10.0)], 0.0)
    mon.observe("e0_0", [PortCounters(port, 625_000, 0, 11.0), PortCounters(hport, 0, 625_000, 11.0)], 1.0)
    preds = {("e0_0", "a0_0"): 0.6, ("a0_0", "c0"): 0.2}
    connected = set(fabric.switches()) - {"c3"}
    path = ("h1", "e0_0", "a0_0", "c0", "a3_0", "e3_0", "h13")
    return SnapshotState(
        topology_=topology_from_fabric(fabric, connected),
        utilization_=utilization_from_monitor(mon, preds),
        paths_=[PathInfo("f1", "h1", "h13", 17, 5000, 4791, path, 2, 12.5, "training", 4.5e6, True)],
        health_=Health(len(connected), len(fabric.switches()), {"e0_0": 3, "c0": 0}, 42.0,
                       "predictive", "default-gbr", reroutes_total=5, packet_in_total=77))


def get_json(app, path):
    status, headers, body = call(app, path)
    assert status == 200, body
    assert headers["Content-Type"] == "application/json"
    return json.loads(body)


def test_topology(state, fabric):
    data = get_json(make_wsgi_app(state), "/topology")
    assert len(data["switches"]) == 20 and len(data["hosts"]) == 16
    assert len(data["links"]) == len(fabric.directed_links()) // 2
    c3 = next(s for s in data["switches"] if s["name"] == "c3")
    assert c3["connected"] is False and c3["dpid"] == fabric.dpid("c3")
    assert c3["dpid_hex"] == "%016x" % fabric.dpid("c3")
    h1 = next(h for h in data["hosts"] if h["name"] == "h1")
    assert h1 == {"name": "h1", "ip": "10.0.0.1", "mac": "00:00:00:00:00:01", "switch": "e0_0", "port": 1}
    assert all(l["capacity_bps"] == 10e6 and l["up"] for l in data["links"])


def test_utilization_and_predictions(state):
    app = make_wsgi_app(state)
    data = get_json(app, "/utilization")
    by = {l["link"]: l for l in data["links"]}
    up = by["e0_0->a0_0"]
    assert up["util"] == pytest.approx(0.5) and up["bytes_per_s"] == pytest.approx(625_000)
    assert up["t_s"] == 1.0 and up["capacity_bps"] == 10e6 and up["pred"] == 0.6
    assert (up["src"], up["dst"]) == ("e0_0", "a0_0")
    only_pred = by["a0_0->c0"]
    assert only_pred["util"] is None and only_pred["pred"] == 0.2
    assert by["e0_0->h1"]["pred"] is None and by["e0_0->h1"]["util"] == 0.0
    assert by["h1->e0_0"]["util"] == pytest.approx(0.5)
    preds = get_json(app, "/predictions")
    assert preds["model"] == "default-gbr"
    assert [l["link"] for l in preds["links"]] == ["a0_0->c0", "e0_0->a0_0"]


def test_paths_and_health(state):
    app = make_wsgi_app(state)
    (p,) = get_json(app, "/paths")["paths"]
    assert p["flow_id"] == "f1" and p["path"][0] == "h1" and p["version"] == 2 and p["dst_port"] == 4791
    assert p["rate_bps"] == 4.5e6 and p["pinned"] is True
    h = get_json(app, "/health")
    assert h["status"] == "degraded" and h["switches_connected"] == 19 and h["switches_expected"] == 20
    assert h["missed_polls"] == {"c0": 0, "e0_0": 3} and h["missed_polls_total"] == 3
    assert (h["policy"], h["model"], h["uptime_s"]) == ("predictive", "default-gbr", 42.0)


def test_trailing_slash_and_query_are_tolerated(state):
    app = make_wsgi_app(state)
    assert call(app, "/health/")[0] == 200
    assert call(app, "/health", query="verbose=1")[0] == 200


def test_unknown_path_is_404_json(state):
    for path in ("/", "/nope", "/topology/x"):
        status, headers, body = call(make_wsgi_app(state), path)
        assert status == 404
        assert headers["Content-Type"] == "application/json"
        data = json.loads(body)
        assert "error" in data and data["routes"] == list(ROUTES)


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
def test_writes_are_405_json(state, method):
    status, headers, body = call(make_wsgi_app(state), "/paths", method)
    assert status == 405
    assert headers["Allow"] == "GET, HEAD"
    assert "read-only" in json.loads(body)["error"]


def test_head_has_no_body(state):
    status, headers, body = call(make_wsgi_app(state), "/metrics", "HEAD")
    assert status == 200 and body == b"" and int(headers["Content-Length"]) > 0


def test_failing_state_gives_500_json_and_keeps_serving(state, caplog):
    class Broken(SnapshotState):
        def paths(self):
            raise RuntimeError("boom")

    app = make_wsgi_app(Broken(state.topology_, state.utilization_, (), state.health_))
    status, _, body = call(app, "/paths")
    assert status == 500 and "boom" in json.loads(body)["error"]
    assert "REST GET /paths failed" in caplog.text
    assert call(app, "/health")[0] == 200


def test_nan_never_reaches_json():
    state = SnapshotState(utilization_=[LinkUtil(("a", "b"), math.nan, None, None, math.inf)])
    data = get_json(make_wsgi_app(state), "/utilization")
    assert data["links"][0]["util"] is None and data["links"][0]["capacity_bps"] is None


SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([a-zA-Z_][a-zA-Z0-9_]*="([^"\\]|\\.)*",?)*\})? '
                    r'(NaN|[+-]Inf|-?[0-9.e+-]+)$')


def parse_metrics(text):
    """Check the 0.0.4 text format; return {name: [(labels_text, value)]}."""
    assert text.endswith("\n")
    families, typed = {}, {}
    for line in text.splitlines():
        if line.startswith("# HELP "):
            name = line.split()[2]
            assert name not in families, "family %s repeated" % name
            families[name] = []
        elif line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            assert kind in ("gauge", "counter") and name in families
            typed[name] = kind
        else:
            m = SAMPLE.match(line)
            assert m, "bad sample line %r" % line
            assert m.group(1) in typed, "sample before its TYPE: %r" % line
            families[m.group(1)].append((m.group(2) or "", float(m.group(5))))
    for name, kind in typed.items():
        assert name.startswith("sidestep_")
        assert name.endswith("_total") == (kind == "counter"), name
    return families


def test_metrics(state):
    status, headers, body = call(make_wsgi_app(state), "/metrics")
    assert status == 200
    assert headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    fam = parse_metrics(body.decode())
    util = dict(fam["sidestep_link_utilization_ratio"])
    assert util['{link="e0_0->a0_0",src="e0_0",dst="a0_0"}'] == pytest.approx(0.5)
    pred = dict(fam["sidestep_link_predicted_utilization_ratio"])
    assert pred == {'{link="a0_0->c0",src="a0_0",dst="c0"}': 0.2,
                    '{link="e0_0->a0_0",src="e0_0",dst="a0_0"}': 0.6}
    caps = dict(fam["sidestep_link_capacity_bytes_per_second"])
    assert len(caps) == 96 and set(caps.values()) == {10e6 / 8}     # k=4: 48 cables, both directions
    assert dict(fam["sidestep_switches_connected"]) == {"": 19}
    assert dict(fam["sidestep_polls_missed_total"])['{switch="e0_0"}'] == 3
    assert dict(fam["sidestep_reroutes_total"]) == {"": 5}
    assert dict(fam["sidestep_packet_in_total"]) == {"": 77}
    assert dict(fam["sidestep_paths_installed"]) == {"": 1}


def test_metrics_escape_label_values():
    state = SnapshotState(health_=Health(0, 0, {'we"ird\\sw\nx': 1}, 0.0, "ecmp", None))
    text = call(make_wsgi_app(state), "/metrics")[2].decode()
    assert 'sidestep_polls_missed_total{switch="we\\"ird\\\\sw\\nx"} 1' in text
    parse_metrics(text)


def test_empty_state_renders_everywhere():
    app = make_wsgi_app(SnapshotState())
    for path in ROUTES:
        assert call(app, path)[0] == 200


def test_served_over_http_by_wsgiref(state):
    """The same app behind a real HTTP server (as hub.WSGIServer will serve it)."""
    import threading
    import urllib.error
    import urllib.request
    from wsgiref.simple_server import WSGIRequestHandler, make_server

    class Quiet(WSGIRequestHandler):
        def log_message(self, *args):
            pass

    server = make_server("127.0.0.1", 0, make_wsgi_app(state), handler_class=Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        base = "http://127.0.0.1:%d" % server.server_port
        with urllib.request.urlopen(base + "/health", timeout=5) as resp:
            assert resp.status == 200 and json.loads(resp.read())["switches_connected"] == 19
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(base + "/nope", timeout=5)
        assert info.value.code == 404 and "error" in json.loads(info.value.read())
        req = urllib.request.Request(base + "/paths", data=b"{}", method="POST")
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(req, timeout=5)
        assert info.value.code == 405
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


# -- POST /pins ----------------------------------------------------------------

def post(app, path, body, content_length=None):
    raw = body if isinstance(body, bytes) else json.dumps(body).encode("utf-8")
    environ = {"PATH_INFO": path, "REQUEST_METHOD": "POST", "wsgi.input": io.BytesIO(raw),
               "SCRIPT_NAME": "", "QUERY_STRING": "", "CONTENT_TYPE": "application/json",
               "CONTENT_LENGTH": str(len(raw)) if content_length is None else content_length}
    setup_testing_defaults(environ)
    got = {}

    def start_response(status, headers, exc_info=None):
        got["status"] = status
        return lambda data: None

    body_out = b"".join(app(environ, start_response))
    return int(got["status"].split()[0]), json.loads(body_out)


@pytest.fixture
def pinning(state):
    """The REST app on a controller runtime whose core has discovered a k=4 fat-tree and learned h1, h13."""
    from controller.config import load_config
    from controller.runtime import ControllerRuntime
    from tests.unit.test_core import discovered_core, learn

    rt = ControllerRuntime(load_config(None, {"rest_allow_pin": True, "rest_port": 0}), 0.0)
    rt.core = discovered_core()
    learn(rt.core, "h1")
    learn(rt.core, "h13")
    return rt, make_wsgi_app(state, pin=lambda body: rt.pin_request(body, 20.0)[1])


GOOD_PIN = {"src": "h1", "dst": "h13", "proto": 6, "src_port": 40000, "dst_port": 5201,
            "path": ["h1", "e0_0", "a0_1", "c2", "a3_1", "e3_0", "h13"]}


def test_a_good_pin_is_taken(pinning):
    rt, app = pinning
    status, body = post(app, "/pins", GOOD_PIN)
    assert status == 200 and body["pinned"] == "h1|h13|6|40000|5201" and body["path"] == GOOD_PIN["path"]
    assert body["moved"] is False and body["version"] is None          # not active: the pin waits for it
    assert list(rt.core.pins.values()) == [tuple(GOOD_PIN["path"])]


@pytest.mark.parametrize("change, words", [
    ({"src_port": 99999}, "src_port must be a whole number 0..65535, got 99999"),
    ({"src_port": -1}, "src_port must be a whole number 0..65535, got -1"),
    ({"dst_port": 10 ** 30}, "dst_port must be a whole number 0..65535"),
    ({"proto": 999}, "proto must be a whole number 0..255, got 999"),
    ({"proto": 6.9}, "proto must be a whole number 0..255, got 6.9"),
    ({"proto": True}, "proto must be a whole number 0..255, got true"),
    ({"srcport": 40000}, "unknown field 'srcport'; a pin takes src, dst, proto, src_port, dst_port, path"),
    ({"src": 7}, "src must be a host name, got 7"),
    ({"path": "h1,e0_0"}, "path must be a list of node names"),
    ({"path": ["h1"]}, "path must be a list of node names"),
    # paths the fabric does not have: they named neither the field nor gave an example
    ({"path": ["h1", "zz", "h13"]}, "path: path h1->zz->h13 uses h1-zz, which is not a link"),
    ({"path": ["h1", "e0_0", "a0_1", "c2", "a3_1", "e3_0", "h14"]}, "path: path h1->e0_0"),
    ({"path": ["h1", "e0_0", "a0_1", "e0_0", "h13"]}, "has a loop"),
])
def test_a_bad_pin_is_refused_by_field_and_nothing_is_kept(pinning, change, words):
    """Each of these used to be answered 200 and kept (6.9 as 6, true as 1, a misspelt field as port 0)."""
    rt, app = pinning
    status, body = post(app, "/pins", dict(GOOD_PIN, **change))
    assert status == 400 and words in body["error"] and '"src": "h1"' in body["error"], body
    assert rt.core.pins == {}


@pytest.mark.parametrize("raw, length, words", [
    (b"{not json", None, "the body is not JSON"),
    (b"\xff\xfe{}", None, "the body is not UTF-8 text"),
    (b"[1, 2]", None, "the body must be a JSON object"),
    (b"{}", "abc", "Content-Length must be a number of bytes, got 'abc'"),
])
def test_a_body_that_is_not_a_json_object_says_what_to_send(pinning, raw, length, words):
    status, body = post(pinning[1], "/pins", raw, content_length=length)
    assert status == 400 and words in body["error"], body
    assert length is not None or "e.g. {" in body["error"], body


def test_a_body_nested_too_deeply_is_a_json_400_not_a_traceback(pinning):
    raw = b"[" * 60000
    status, body = post(pinning[1], "/pins", raw)
    assert status == 400 and "nests too deeply" in body["error"], body


def test_a_failing_pin_is_a_json_500_without_a_traceback(state, caplog):
    def broken(body):
        raise KeyError("boom")
    status, body = post(make_wsgi_app(state, pin=broken), "/pins", GOOD_PIN)
    assert status == 500 and body["error"] == "internal error serving /pins: KeyError: 'boom'"
    assert "REST POST /pins failed" in caplog.text       # the traceback goes to the log


def test_the_404_lists_pins_only_when_pinning_is_on(state, pinning):
    status, _, raw = call(pinning[1], "/nope")
    assert status == 404 and json.loads(raw)["routes"] == list(ROUTES) + ["/pins"]
    status, _, raw = call(make_wsgi_app(state), "/nope")
    assert json.loads(raw)["routes"] == list(ROUTES)


def test_health_waits_until_a_switch_has_connected():
    app = make_wsgi_app(SnapshotState(health_=Health(0, 0, {}, 0.0, "ecmp", None)))
    assert get_json(app, "/health")["status"] == "waiting"
    app = make_wsgi_app(SnapshotState(health_=Health(3, 3, {}, 0.0, "ecmp", None)))
    assert get_json(app, "/health")["status"] == "ok"


def test_pins_when_pinning_is_off_says_how_to_turn_it_on(state):
    status, body = post(make_wsgi_app(state), "/pins", GOOD_PIN)
    assert status == 403 and "rest_allow_pin: true" in body["error"]


def test_path_updates_have_every_key_before_the_first_update():
    """/health's path_updates was {"count": 0} until the first update: mean_ms, p99_ms and max_ms were missing."""
    from controller.config import load_config
    from controller.runtime import ControllerRuntime

    rt = ControllerRuntime(load_config(None, {"rest_port": 0}), 0.0)
    app = make_wsgi_app(rt.api_state())
    assert get_json(app, "/health")["path_updates"] == {"count": 0, "mean_ms": None, "p99_ms": None, "max_ms": None}
    rt.update_latencies_ms.extend([4.0, 6.0])
    got = get_json(app, "/health")["path_updates"]
    assert got["count"] == 2 and got["mean_ms"] == 5.0 and got["max_ms"] == 6.0
