"""Controller config: defaults, refusals that name the key or path, overrides, check-config."""
from __future__ import annotations

import dataclasses
import os

import pytest
import yaml

from controller.cli import main as cli_main
from controller.config import Config, ConfigError, load_config
from controller.loadtrace import LoadRecorder, read_link_loads


def write(tmp_path, text: str, name: str = "sidestep.yaml") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_defaults_without_a_file():
    cfg = load_config(None, {})
    assert cfg == Config()
    assert (cfg.ofp_port, cfg.poll_interval, cfg.rest_host, cfg.rest_port) == (6653, 1.0, "127.0.0.1", 8080)
    assert cfg.record is None and cfg.model is None and cfg.policy == "ecmp"
    assert (cfg.link_mbps, cfg.lldp_interval, cfg.idle_timeout, cfg.record_flush_s) == (10.0, 1.0, 60, 2.0)
    assert cfg.planner.hot_threshold == 0.8 and cfg.planner.max_reroutes_per_tick == 4
    assert cfg.training.udp_ports == ((4791, 4791),)


def test_empty_file_is_all_defaults(tmp_path):
    assert load_config(write(tmp_path, ""), {}) == Config()


def test_full_file(tmp_path):
    rec = tmp_path / "loads.csv"
    path = write(tmp_path, """
ofp_port: 6654
poll_interval: 0.2
rest_host: 0.0.0.0
rest_port: 0
record: %s
link_mbps: 100
capacities: {"a0_0-c0": 40, "e0_0-h1": 5}
idle_timeout: 0
policy: predictive
planner: {hot_threshold: 0.7, elephant_mbps: 1.5, hysteresis: 0.05, max_reroutes_per_tick: 2}
training:
  host_groups: [[h1, h2], [h3, h4, h5]]
  tcp_ports: ['5000-5100', 29500]
  udp_ports: []
  dscp: [26, 34]
""" % rec)
    cfg = load_config(path, {})
    assert cfg.poll_interval == 0.2 and cfg.rest_port == 0 and cfg.record == str(rec)
    assert cfg.capacity_mbps("c0", "a0_0") == 40 and cfg.capacity_mbps("a0_0", "c0") == 40
    assert cfg.capacity_bps("h1", "e0_0") == 5e6
    assert cfg.capacity_mbps("a0_0", "c1") == 100
    assert cfg.planner.planner_kwargs(cfg.policy)["elephant_bps"] == 1.5e6
    assert cfg.training.host_groups == (("h1", "h2"), ("h3", "h4", "h5"))
    assert cfg.training.tcp_ports == ((5000, 5100), (29500, 29500))
    assert cfg.training.udp_ports == ()
    assert cfg.training.dscp == (26, 34)
    assert not rec.exists()   # checking a record path never creates the file


def test_config_is_frozen():
    cfg = load_config(None, {})
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.poll_interval = 5.0  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.planner.hysteresis = 0.5  # type: ignore[misc]


@pytest.mark.parametrize("text,key,reason", [
    ("poll_intervall: 1\n", "poll_intervall", "did you mean 'poll_interval'"),
    ("poll_interval: -1\n", "poll_interval", ">= 0.2"),
    ("poll_interval: 0.1\n", "poll_interval", ">= 0.2"),
    ("poll_interval: fast\n", "poll_interval", "must be a number"),
    ("ofp_port: 70000\n", "ofp_port", "1..65535"),
    ("ofp_port: 6653.5\n", "ofp_port", "integer"),
    ("rest_port: true\n", "rest_port", "integer"),
    ("rest_host: ''\n", "rest_host", "non-empty"),
    ("link_mbps: 0\n", "link_mbps", "> 0"),
    ("policy: smart\n", "policy", "ecmp|reactive|predictive"),
    ("capacities: {a0_0: 10}\n", "capacities['a0_0']", "'A-B'"),
    ("capacities: {a-a: 10}\n", "capacities['a-a']", "two different"),
    ("capacities: {a-b: 10, b-a: 20}\n", "capacities['b-a']", "given twice"),
    ("capacities: {a-b: -1}\n", "capacities['a-b']", "> 0"),
    ("capacities: [1]\n", "capacities", "mapping"),
    ("idle_timeout: -5\n", "idle_timeout", "0..65535"),
    ("planner: {hot: 1}\n", "planner.hot", "known keys of planner"),
    ("planner: {hot_threshold: 0}\n", "planner.hot_threshold", "> 0"),
    ("planner: {elephant_mbps: 1, elephant_fraction: 0.2}\n", "planner.elephant_mbps", "not both"),
    ("planner: {max_reroutes_per_tick: 1.5}\n", "planner.max_reroutes_per_tick", "integer"),
    ("planner: {move_background: yes please}\n", "planner.move_background", "true or false"),
    ("planner: 3\n", "planner", "mapping"),
    ("training: {tcp_ports: ['99-1']}\n", "training.tcp_ports[0]", "above its end"),
    ("training: {udp_ports: ['x']}\n", "training.udp_ports[0]", "'5000-5100'"),
    ("training: {udp_ports: [70000]}\n", "training.udp_ports[0]", "0..65535"),
    ("training: {dscp: [64]}\n", "training.dscp[0]", "0..63"),
    ("training: {host_groups: [[h1]]}\n", "training.host_groups[0]", "at least two"),
    ("training: {host_groups: h1}\n", "training.host_groups", "must be a list"),
    ("policy: ecmp\npolicy: reactive\n", "policy", "given twice"),
])
def test_bad_values_give_one_error_naming_file_and_key(tmp_path, text, key, reason):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path, {})
    assert info.value.key == key
    assert reason in str(info.value)
    assert str(info.value).startswith(path + ": " + key + ": ")


@pytest.mark.parametrize("text,reason", [
    ("a: [1\n", "not valid YAML at line 2"),
    ("- 1\n- 2\n", "top level must be a mapping"),
])
def test_malformed_file(tmp_path, text, reason):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError, match=reason) as info:
        load_config(path, {})
    assert str(info.value).startswith(path)


def test_missing_file_names_the_path(tmp_path):
    with pytest.raises(ConfigError, match="nope.yaml: cannot read"):
        load_config(str(tmp_path / "nope.yaml"), {})


def test_unwritable_record_paths_are_refused_naming_the_path(tmp_path):
    with pytest.raises(ConfigError, match="record: cannot write .*missing/x.csv: folder .*missing does not exist"):
        load_config(None, {"record": str(tmp_path / "missing" / "x.csv")})
    with pytest.raises(ConfigError, match="is a folder"):
        load_config(None, {"record": str(tmp_path)})
    afile = tmp_path / "afile"
    afile.write_text("x")
    with pytest.raises(ConfigError, match="afile is a file, not a folder; choose another record path"):
        load_config(None, {"record": str(afile / "x.csv")})


def test_a_record_path_the_controller_may_not_write_is_refused(tmp_path, monkeypatch):
    """Root (CI) may write anywhere, so the permission check is what answers here, as it would for a user."""
    locked = tmp_path / "locked"
    locked.mkdir()
    (locked / "old.csv").write_text("t_s,link,util\n")
    monkeypatch.setattr(os, "access", lambda path, mode: False)
    with pytest.raises(ConfigError, match="folder .*locked is not writable"):
        load_config(None, {"record": str(locked / "x.csv")})
    with pytest.raises(ConfigError, match="old.csv: file is not writable"):
        load_config(None, {"record": str(locked / "old.csv")})


def test_missing_model_file_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="model: model file .*m.joblib does not exist"):
        load_config(None, {"model": str(tmp_path / "m.joblib")})


def test_overrides_apply_on_top_and_errors_say_override(tmp_path):
    path = write(tmp_path, "poll_interval: 2.0\nplanner: {hysteresis: 0.3, hot_threshold: 0.9}\n")
    cfg = load_config(path, {"poll_interval": 0.5, "planner.hysteresis": 0.2,
                             "training": {"dscp": [10]}})
    assert cfg.poll_interval == 0.5
    assert cfg.planner.hysteresis == 0.2 and cfg.planner.hot_threshold == 0.9
    assert cfg.training.dscp == (10,)
    cfg = load_config(path, {"planner": {"hysteresis": 0.0}})
    assert cfg.planner.hysteresis == 0.0 and cfg.planner.hot_threshold == 0.9
    with pytest.raises(ConfigError, match=r"^override: poll_interval: must be >= 0.2"):
        load_config(path, {"poll_interval": -1})
    with pytest.raises(ConfigError, match=r"^override: planner.bogus: unknown key"):
        load_config(path, {"planner.bogus": 1})
    with pytest.raises(ConfigError, match=r"^override: verbose: unknown key"):
        load_config(path, {"verbose": True})


def test_to_dict_round_trips_through_yaml(tmp_path):
    path = write(tmp_path, """
capacities: {c0-a0_0: 40}
planner: {elephant_mbps: 1.5}
training: {host_groups: [[h1, h2]], tcp_ports: ['5000-5100', 7]}
""")
    cfg = load_config(path, {})
    again = load_config(write(tmp_path, yaml.safe_dump(cfg.to_dict()), "again.yaml"), {})
    assert again == cfg
    assert load_config(write(tmp_path, yaml.safe_dump(Config().to_dict()), "d.yaml"), {}) == Config()


def test_sections_feed_the_planner_and_classifier():
    from controller.classify import TRAINING, TrafficClassifier
    from controller.ecmp import PROTO_UDP, FiveTuple
    from controller.planner import PlannerConfig

    cfg = load_config(None, {"training": {"host_groups": [["h1", "h2"]], "tcp_ports": ["5000-5100"]},
                             "policy": "reactive"})
    planner = PlannerConfig(**cfg.planner.planner_kwargs(cfg.policy))
    assert planner.policy == "reactive" and planner.hot_threshold == 0.8
    clf = TrafficClassifier.from_config(cfg.training.classifier_data())
    assert clf.classify(FiveTuple("h7", "h9", PROTO_UDP, 1234, 4791)) == TRAINING
    assert clf.classify(FiveTuple("h1", "h2")) == TRAINING


def test_check_config_command(tmp_path, capsys):
    good = write(tmp_path, "poll_interval: 0.5\n")
    assert cli_main(["check-config", good]) == 0
    out = capsys.readouterr().out
    assert yaml.safe_load(out)["poll_interval"] == 0.5
    bad = write(tmp_path, "poll_interval: 0.5\nbogus: 1\n", "bad.yaml")
    assert cli_main(["check-config", bad]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("sidestep check-config: error: %s: bogus:" % bad)


def test_a_record_path_holding_another_file_is_refused_and_left_alone(tmp_path):
    """The recorder appends: pointed at a flow trace, it used to add link-load rows to it."""
    trace = tmp_path / "flows.csv"
    trace.write_text("start_s,src,dst,size_bytes\n0,h1,h2,1000\n")
    with pytest.raises(ConfigError, match=r"record: .*flows\.csv exists and is not a link-load recording "
                                          r"\(its first line is 'start_s,src,dst,size_bytes'"):
        load_config(None, {"record": str(trace)})
    with pytest.raises(OSError, match="is not a link-load recording"):
        LoadRecorder(str(trace))
    assert trace.read_text() == "start_s,src,dst,size_bytes\n0,h1,h2,1000\n"
    earlier = tmp_path / "loads.csv"          # an earlier recording, and an empty file, are appended to
    rec = LoadRecorder(str(earlier))
    rec.write(1.0, [(1.0, ("e0_0", "a0_0"), 0.5, 625000, 10_000_000)])
    rec.close()
    (tmp_path / "empty.csv").write_text("")
    for path in (earlier, tmp_path / "empty.csv"):
        assert load_config(None, {"record": str(path)}).record == str(path)
        LoadRecorder(str(path)).close()
    assert read_link_loads(str(earlier)).latest() == {("e0_0", "a0_0"): 0.5}


def test_a_record_path_under_home_is_the_path_the_recorder_opens(tmp_path, monkeypatch):
    """check-config expanded ~ and the recorder did not: the controller then failed at start."""
    monkeypatch.setenv("HOME", str(tmp_path))
    cfg = load_config(None, {"record": "~/loads.csv"})
    assert cfg.record == str(tmp_path / "loads.csv")
    LoadRecorder("~/loads.csv").close()
    assert (tmp_path / "loads.csv").read_text().startswith("t_s,link,util")


def test_a_binary_config_and_a_set_json_that_is_not_an_object_are_one_line(tmp_path, capsys):
    """These used to end in a UnicodeDecodeError and a TypeError traceback."""
    bad = tmp_path / "bad.yaml"
    bad.write_bytes(b"\xff\xfe")
    for argv in (["check-config", str(bad)], ["controller", "--config", str(bad)]):
        assert cli_main(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "bad.yaml: not a text file: byte 0 is not UTF-8" in err, err
    for text, kind in (("123", "int"), ("null", "NoneType"), ('["policy"]', "list")):
        assert cli_main(["controller", "--set-json", text]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "--set-json must be a JSON object" in err and kind in err, err


def test_exponent_numbers_read_as_numbers(tmp_path):
    """PyYAML reads 1e3 as a string, and the config then said "must be a number Mbit/s, got '1e3'"."""
    path = tmp_path / "c.yaml"
    path.write_text("link_mbps: 1e3\npoll_interval: 5e-1\nrecord_flush_s: 2.0e+0\n")
    cfg = load_config(str(path))
    assert (cfg.link_mbps, cfg.poll_interval, cfg.record_flush_s) == (1000.0, 0.5, 2.0)
    path.write_text('link_mbps: "1e3"\n')            # quoted: still a string, and still refused
    with pytest.raises(ConfigError, match="link_mbps: must be a number Mbit/s, got '1e3'"):
        load_config(str(path))


@pytest.mark.parametrize("text, words", [
    ("policy: predictive\npoll_interval: 5.0\n", "was trained on samples every 1 s but the live sampling period is 5 s"),
    ("policy: reactive\nmodel: %(junk)s\n", "is not a readable model file"),
])
def test_check_config_refuses_a_forecaster_the_controller_would_replace(tmp_path, capsys, text, words):
    """check-config used to check only that the model file existed; the controller then ran on persistence."""
    junk = tmp_path / "junk.joblib"
    junk.write_bytes(b"not a model")
    path = tmp_path / "c.yaml"
    path.write_text(text % {"junk": junk})
    assert cli_main(["check-config", "-q", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and words in err and "on persistence" in err, err
    assert ("would run predictive" if "predictive" in text else "would forecast (for /predictions") in err, err
    path.write_text("policy: predictive\n")          # the shipped model at 1 s polls: fine
    assert cli_main(["check-config", "-q", str(path)]) == 0


@pytest.mark.parametrize("policy", ["reactive", "ecmp"])
def test_check_config_only_warns_about_the_shipped_model_where_nothing_plans_on_it(tmp_path, capsys, policy):
    """reactive at 2 s polls was refused because the shipped forecaster learned on 1 s samples, though
    reactive plans on measured load; ecmp without a model key never loads one."""
    path = tmp_path / "c.yaml"
    path.write_text("policy: %s\npoll_interval: 2.0\n" % policy)
    assert cli_main(["check-config", "-q", str(path)]) == 0
    err = capsys.readouterr().err
    if policy == "reactive":
        assert err.count("\n") == 1 and "warning" in err and "plans on measured load" in err, err
    else:
        assert err == ""


def test_the_rest_api_and_openflow_need_different_ports():
    with pytest.raises(ConfigError, match="rest_port: 8080 is also ofp_port"):
        load_config(None, {"ofp_port": 8080})
    assert load_config(None, {"ofp_port": 8080, "rest_port": 0}).rest_port == 0
