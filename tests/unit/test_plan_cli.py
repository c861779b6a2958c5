"""``sidestep plan`` end to end on small files: JSON shape, table, one-line errors."""
from __future__ import annotations

import json

import pytest

from controller import cli
from controller.ecmp import FiveTuple, ecmp_choice
from controller.fabric import Fabric, path_links
from mininet_topos.fattree_spec import fat_tree

FLOWS = """flow_id,src,dst,rate_bps,cls,path
f1,h1,h5,6e6,training,h1;e0_0;a0_0;c0;a1_0;e1_0;h5
f2,h3,h7,6e6,training,h3;e0_1;a0_0;c0;a1_0;e1_1;h7
f3,h2,h9,1e5,background,
"""
LOADS = """t_s,link,util
0,a0_0->c0,0.5
1,a0_0->c0,1.2
1,c0->a1_0,1.2
"""


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def run(tmp_path, *extra, flows=FLOWS, loads=LOADS, policy="reactive"):
    argv = ["plan", "--k", "4", "--flows", write(tmp_path, "flows.csv", flows),
            "--loads", write(tmp_path, "loads.csv", loads), "--policy", policy] + list(extra)
    return cli.main(argv)


def test_json_output(tmp_path, capsys):
    out = tmp_path / "plan.json"
    assert run(tmp_path, "--json", str(out)) == 0
    result = json.loads(out.read_text())
    assert set(result) >= {"paths", "reroutes", "max_util_before", "max_util_after"}
    assert sorted(result["paths"]) == ["f1", "f2", "f3"]
    assert len(result["reroutes"]) == 1
    rr = result["reroutes"][0]
    assert set(rr) == {"flow_id", "old_path", "new_path", "reason"}
    fabric = Fabric.from_spec(fat_tree(4, 10))
    for fid, path in result["paths"].items():
        fabric.validate_path(path, path[0], path[-1])
    assert result["paths"][rr["flow_id"]] == rr["new_path"]
    assert result["max_util_before"] == pytest.approx(1.2)
    assert result["max_util_after"] < result["max_util_before"]
    # f3 had no path: ECMP's choice, a valid path.
    assert result["paths"]["f3"][0] == "h2" and result["paths"]["f3"][-1] == "h9"


def test_ecmp_keeps_every_path_and_table_output(tmp_path, capsys):
    assert run(tmp_path, policy="ecmp") == 0
    out = capsys.readouterr().out
    assert "FLOW" in out and "0 reroute(s)" in out and "h1 e0_0 a0_0 c0 a1_0 e1_0 h5" in out


def test_predictive_uses_the_pred_column(tmp_path, capsys):
    loads = "t_s,link,util,pred\n0,a0_0->c0,0.2,\n1,a0_0->c0,0.3,1.5\n"
    flows = FLOWS.replace("6e6", "3e6")
    assert run(tmp_path, "--json", "-", flows=flows, loads=loads, policy="reactive") == 0
    assert json.loads(capsys.readouterr().out)["reroutes"] == []
    assert run(tmp_path, "--json", "-", flows=flows, loads=loads, policy="predictive") == 0
    result = json.loads(capsys.readouterr().out)
    assert len(result["reroutes"]) >= 1 and result["basis"] == "forecast"


def test_predictive_without_pred_forecasts_with_the_shipped_model(tmp_path, capsys):
    assert run(tmp_path, "--json", "-", policy="predictive") == 0
    captured = capsys.readouterr()
    result = json.loads(captured.out)
    assert result["paths"]
    assert result["basis"] == "forecast" and captured.err == ""


@pytest.mark.parametrize("flows, loads, policy, where", [
    (FLOWS.replace("h9,1e5", "h99,1e5"), LOADS, "reactive", "flows.csv:4: column 'dst'"),
    (FLOWS.replace("f2,h3", "f2,h0"), LOADS, "reactive", "flows.csv:3: column 'src'"),
    (FLOWS.replace("f1,h1,h5,6e6", "f1,h1,h5,-6e6"), LOADS, "reactive", "flows.csv:2: column 'rate_bps'"),
    (FLOWS.replace("training", "bulk", 1), LOADS, "reactive", "flows.csv:2: column 'cls'"),
    (FLOWS.replace("a0_0;c0;a1_0;e1_1", "a0_0;c2;a1_0;e1_1"), LOADS, "reactive", "flows.csv:3: column 'path'"),
    (FLOWS.replace("c0;a1_0;e1_0;h5", "c0;a2_0;e1_0;h5"), LOADS, "reactive", "flows.csv:2: column 'path'"),
    (FLOWS.replace("f3,", "f1,"), LOADS, "reactive", "flows.csv:4: column 'flow_id'"),
    (FLOWS, LOADS + "2,c0->e0_0,0.1\n", "reactive", "loads.csv:5: column 'link'"),
    (FLOWS, LOADS.replace("1.2\n1,c0", "x\n1,c0"), "reactive", "loads.csv:3: column 'util'"),
    (FLOWS, LOADS, "hedera", "unknown policy 'hedera'"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, flows, loads, policy, where):
    assert run(tmp_path, flows=flows, loads=loads, policy=policy) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("sidestep plan: error: ")
    assert where in err[0]


def test_bad_k_and_settings(tmp_path, capsys):
    argv = ["plan", "--k", "3", "--flows", write(tmp_path, "f.csv", FLOWS),
            "--loads", write(tmp_path, "l.csv", LOADS), "--policy", "ecmp"]
    assert cli.main(argv) == 2
    assert "k must be an even integer" in capsys.readouterr().err
    assert run(tmp_path, "--hysteresis", "-1") == 2
    assert "hysteresis" in capsys.readouterr().err


def test_down_shows_the_controllers_moves_off_a_failed_cable(tmp_path, capsys):
    """f1 and f2 (0.6 each) share a0_0-c0; when it fails, the planner puts them on separate surviving
    paths, where ECMP's re-hash (under ecmp) decides by the hash alone."""
    out = tmp_path / "down.json"
    assert run(tmp_path, "--down", "a0_0-c0", "--json", str(out)) == 0
    result = json.loads(out.read_text())
    assert result["down"] == ["a0_0-c0"]
    moved = {r["flow_id"]: r for r in result["reroutes"]}
    fab = Fabric.from_spec(fat_tree(4, 10))
    f3 = ecmp_choice(FiveTuple("h2", "h9", 6, 0, 0), fab.paths("h2", "h9"))      # f3's path: ECMP's
    crossing = {"f1", "f2"} | ({"f3"} if ("a0_0", "c0") in path_links(f3) else set())
    assert set(moved) == crossing
    for r in moved.values():
        assert r["reason"].startswith("link-down a0_0-c0")
        hops = list(zip(r["new_path"], r["new_path"][1:]))
        assert ("a0_0", "c0") not in hops and ("c0", "a0_0") not in hops
        fab.validate_path(tuple(r["new_path"]), r["new_path"][0], r["new_path"][-1])
    shared = set(zip(moved["f1"]["new_path"][1:-2], moved["f1"]["new_path"][2:-1])) & \
        set(zip(moved["f2"]["new_path"][1:-2], moved["f2"]["new_path"][2:-1]))
    assert not shared, moved                              # no fabric link in common
    assert ("a0_0->c0" not in json.dumps(result["paths"]))
    assert result["max_util_after"] < result["max_util_before"]

    assert run(tmp_path, "--down", "c0-a0_0", "--json", str(out), "--force", policy="ecmp") == 0
    ecmp = json.loads(out.read_text())
    assert {r["flow_id"] for r in ecmp["reroutes"]} == crossing
    assert all(r["reason"] == "link-down c0-a0_0; ECMP over the surviving paths" for r in ecmp["reroutes"])


@pytest.mark.parametrize("value, message", [
    ("a0_0", "write the cable as A-B"),
    ("a0_0-c2", "no cable a0_0-c2"),
    ("h1-e0_0", "only a cable between two switches"),
])
def test_down_refuses_a_bad_cable(tmp_path, capsys, value, message):
    assert run(tmp_path, "--down", value) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and ("--down %s: " % value) in err and message in err, err


def test_a_flow_left_with_no_path_is_stranded_not_shown_on_a_dead_cable(tmp_path, capsys):
    """Both uplinks of e0_0 down: h1's and h2's flows have no path.  The first cable used to move
    f2 onto the second, and the output showed it there (a cable that was down), exit 0."""
    flows = "flow_id,src,dst,rate_bps,cls\nf1,h1,h9,8e6,training\nf2,h2,h10,8e6,training\nf3,h3,h11,8e6,training\n"
    out = tmp_path / "down.json"
    assert run(tmp_path, "--down", "e0_0-a0_0", "--down", "e0_0-a0_1", "--json", str(out), flows=flows) == 0
    result = json.loads(out.read_text())
    assert sorted(result["stranded"]) == ["f1", "f2"] and result["paths"]["f1"] is None is result["paths"]["f2"]
    assert "no path from h1 to h9 over links that are up" in result["stranded"]["f1"]
    dead = {("e0_0", "a0_0"), ("a0_0", "e0_0"), ("e0_0", "a0_1"), ("a0_1", "e0_0")}
    for r in result["reroutes"]:
        assert r["flow_id"] == "f3" and dead.isdisjoint(path_links(r["new_path"]))
    assert dead.isdisjoint(path_links(result["paths"]["f3"]))
    capsys.readouterr()
    assert run(tmp_path, "--down", "e0_0-a0_0", "--down", "e0_0-a0_1", flows=flows) == 0
    table = capsys.readouterr().out
    assert "f1    h1   h9   8.000   training  (no path)  stranded: no path once e0_0-a0_1 is down" in table
    assert ", 2 stranded;" in table


def test_down_twice_is_refused(tmp_path, capsys):
    assert run(tmp_path, "--down", "a0_0-c0", "--down", "c0-a0_0") == 2
    assert "already down" in capsys.readouterr().err


def test_json_output_never_replaces_an_input_or_a_file_unasked(tmp_path, capsys):
    out = tmp_path / "plan.json"
    flows = tmp_path / "flows.csv"
    assert run(tmp_path, "--json", str(flows)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--json %s is also an input" % flows in err
    assert flows.read_text() == FLOWS
    out.write_text("keep me\n")
    assert run(tmp_path, "--json", str(out)) == 2
    assert "exists" in capsys.readouterr().err and out.read_text() == "keep me\n"
    assert run(tmp_path, "--json", str(out), "--force") == 0
    assert json.loads(out.read_text())["paths"]


@pytest.mark.parametrize("content", [b"not a model", None])
def test_a_named_model_that_cannot_be_used_is_an_error(tmp_path, capsys, content):
    """It used to print a warning, plan on measured values, exit 0 and say "basis": "forecast"."""
    model = tmp_path / "m.joblib"
    if content is not None:
        model.write_bytes(content)
    assert run(tmp_path, "--json", "-", "--model", str(model), policy="predictive") == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1 and str(model) in captured.err, captured.err


def test_basis_says_measured_when_no_forecast_was_used(tmp_path, capsys):
    """The shipped model is trained on 1 s samples; on 5 s samples predictive plans on measured values."""
    loads = LOADS.replace("1,a0_0->c0", "5,a0_0->c0").replace("1,c0->a1_0", "5,c0->a1_0")
    assert run(tmp_path, "--json", "-", loads=loads, policy="predictive") == 0
    captured = capsys.readouterr()
    result = json.loads(captured.out)
    assert result["basis"] == "measured"
    assert "forecaster unusable" in captured.err and "measured utilization" in captured.err
    # the moves say so too (they said "(forecast)" whenever the policy was predictive)
    assert result["reroutes"] and all("(measured)" in r["reason"] and "(forecast)" not in r["reason"]
                                      for r in result["reroutes"])


def test_the_forecasters_history_keeps_a_links_silence_as_a_gap(tmp_path):
    """Each link's last samples used to be glued together across a gap: a link silent since t=39 looked
    as hot at t=99 as it was then."""
    from controller.commands.plan import recent_history
    from controller.loadtrace import read_link_loads
    rows = ["t_s,link,util"]
    for t in range(100):
        rows.append("%d,a0_0->c0,0.2" % t)
        if t < 40 or t >= 90:
            rows.append("%d,c0->a1_0,%s" % (t, "0.9" if t < 40 else "0.1"))
    path = tmp_path / "loads.csv"
    path.write_text("\n".join(rows) + "\n")
    trace = read_link_loads(str(path))
    links, history = recent_history(trace, trace.sampling_period_s(), 16)
    row = history[links.index(("c0", "a1_0"))]
    assert list(row[-10:]) == [0.1] * 10 and all(v != v for v in row[:6])      # NaN = no sample
    assert list(history[links.index(("a0_0", "c0"))]) == [0.2] * 16
    links, history = recent_history(trace, 1.0, 128)                             # longer than the trace
    assert history.shape == (2, 128) and all(v != v for v in history[0, :28])
