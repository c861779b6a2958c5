"""Replay end to end: policies on a collision scenario, outputs, determinism, bad input."""
import dataclasses
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from controller.cli import main as cli_main
from controller.ecmp import FiveTuple, ecmp_choice
from controller.fabric import Fabric
from controller.flowtrace import TraceFlow
from controller.loadtrace import read_link_loads
from controller.replay import (ReplayError, iteration_times, mean_iteration_s, run_policy,
                               write_outputs)
from controller.scenarios import collide, generate, Shape, write
from controller.sim import Simulator
from mininet_topos.fattree_spec import fat_tree

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def predictor():
    """The shipped forecaster: the README's predictive rows are its, so no fallback may stand in."""
    from models import runtime
    pred = runtime.load_predictor(None, sampling_period_s=1.0)
    assert "persistence" not in pred.name
    return pred


@pytest.fixture(scope="module")
def fabric():
    return Fabric.from_spec(fat_tree(4, 1000.0))


@pytest.fixture(scope="module")
def small_collide():
    return sorted(collide(Shape(4, 1000.0, 0), iterations=8), key=lambda f: (f.start_s, f.flow_id))


def test_predictive_fixes_ecmp_collisions(fabric, small_collide, predictor):
    it = {}
    for pol in ("ecmp", "predictive", "ideal"):
        run = run_policy(pol, fabric, small_collide, predictor=predictor if pol == "predictive" else None)
        it[pol] = mean_iteration_s(run.summary)
    assert it["predictive"] <= 1.10 * it["ideal"]
    assert it["predictive"] <= 0.80 * it["ecmp"]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_predictive_beats_reactive_with_periodic_bursts(fabric, predictor, seed):
    """The README's bursts rows: predictive's mean iteration is below reactive's and ECMP's."""
    flows = generate("bursts", 4, 1000.0, seed)
    it = {pol: mean_iteration_s(run_policy(pol, fabric, flows, seed=seed, predictor=predictor).summary)
          for pol in ("ecmp", "reactive", "predictive")}
    assert it["predictive"] < it["reactive"] < it["ecmp"], it


def test_plots_are_written(fabric, small_collide, tmp_path):
    runs = [run_policy(p, fabric, small_collide) for p in ("ecmp", "ideal")]
    out = str(tmp_path / "plots")
    write_outputs(out, runs, plots=True)
    names = sorted(n for n in os.listdir(out) if n.endswith(".png"))
    assert names == ["heatmap-ecmp.png", "heatmap-ideal.png", "iterations.png"], names
    for name in names:
        with open(os.path.join(out, name), "rb") as fh:
            assert fh.read(8) == b"\x89PNG\r\n\x1a\n"
        assert os.path.getsize(os.path.join(out, name)) > 5000


def test_iteration_time_is_last_finish_to_last_finish(fabric):
    flows = [TraceFlow("a0", 0.0, "h1", "h2", 125e6, job="j", iter=0, cls="training"),
             TraceFlow("b0", 0.0, "h3", "h4", 250e6, job="j", iter=0, cls="training"),
             TraceFlow("a1", 0.0, "h1", "h2", 125e6, job="j", iter=1, cls="training", deps=("a0", "b0"), gap_s=0.5)]
    res = Simulator(fabric, flows).run()
    (i, t), = iteration_times(res)["j"]
    assert i == 1 and t == pytest.approx(0.5 + 1.0)   # iter 0 ends at 2 s, iter 1 at 3.5 s


def test_outputs_loads_and_refusal(fabric, small_collide, tmp_path):
    runs = [run_policy(p, fabric, small_collide) for p in ("ecmp", "reactive", "ideal")]
    out = str(tmp_path / "out")
    summary = write_outputs(out, runs, plots=False)
    assert sorted(summary["policies"]) == ["ecmp", "ideal", "reactive"]
    s = json.load(open(os.path.join(out, "summary.json")))
    for name in ("ecmp", "reactive", "ideal"):
        pol = s["policies"][name]
        for key in ("mean_fct_s", "p99_fct_s", "max_link_util", "mean_link_util", "reroutes", "jobs"):
            assert key in pol
        assert set(pol["jobs"]) == {"job0", "job1"}
        assert {"mean_iteration_s", "p99_iteration_s"} <= set(pol["jobs"]["job0"])
    assert s["loads_policy"] == "ecmp"
    loads = read_link_loads(os.path.join(out, "loads.csv"))
    assert loads.sampling_period_s() == pytest.approx(1.0)
    assert ("h1", "e0_0") in loads.series
    with open(os.path.join(out, "flows.csv")) as fh:
        assert fh.readline() == "policy,flow_id,start_s,finish_s,size_bytes,path\n"
    with pytest.raises(ReplayError, match="exists"):
        write_outputs(out, runs, plots=False)
    write_outputs(out, runs[:1], plots=False, force=True)
    assert sorted(json.load(open(os.path.join(out, "summary.json")))["policies"]) == ["ecmp"]
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".")]   # no temp folders left


def _cli(args, capsys):
    code = cli_main(["replay"] + args)
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def test_command_is_byte_identical_across_runs_and_processes(tmp_path, capsys):
    trace = str(tmp_path / "t.csv")
    write(trace, collide(Shape(4, 1000.0, 1), iterations=5))
    args = [trace, "--k", "4", "--link-mbps", "1000", "--policy", "reactive", "--seed", "1", "--no-plots", "--quiet"]
    code, out, err = _cli(args + ["--out", str(tmp_path / "a")], capsys)
    assert code == 0, err
    assert "reactive" in out
    env = dict(os.environ, PYTHONHASHSEED="12345")
    proc = subprocess.run([sys.executable, "-m", "controller.cli", "replay"] + args + ["--out", str(tmp_path / "b")],
                          cwd=ROOT, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    for name in ("summary.json", "flows.csv", "loads.csv"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name


def test_policies_in_worker_processes_write_the_same_bytes(tmp_path, capsys):
    """``--jobs 2`` forks one replay per policy; the outputs are those of one after another."""
    args = ["--scenario", "bursts", "--k", "4", "--link-mbps", "1000", "--seed", "2", "--no-plots", "--quiet"]
    code, out, err = _cli(args + ["--jobs", "1", "--out", str(tmp_path / "serial")], capsys)
    assert code == 0, err
    code, out2, err = _cli(args + ["--jobs", "2", "--out", str(tmp_path / "forked")], capsys)
    assert code == 0, err
    assert out2.replace("forked", "serial") == out
    for name in ("summary.json", "flows.csv", "loads.csv", "trace.csv"):
        assert (tmp_path / "serial" / name).read_bytes() == (tmp_path / "forked" / name).read_bytes(), name
    assert sorted(json.loads((tmp_path / "forked" / "summary.json").read_text())["policies"]) == \
        ["ecmp", "ideal", "predictive", "reactive"]


@pytest.mark.parametrize("how", ["ctrl-c", "sigterm"])
def test_stopping_a_parallel_replay_stops_its_workers_and_writes_nothing(tmp_path, how):
    """Ctrl-C (SIGINT to the process group) or SIGTERM to the command while two workers replay."""
    import selectors
    import signal
    import time

    trace = str(tmp_path / "busy.csv")
    write(trace, generate("websearch", 8, 1000.0, 0, duration_s=15.0, load=0.3))
    out = tmp_path / "out"
    # replayed on links of 300 Mbit/s, the 1 Gbit/s trace overloads the fabric: one policy then takes
    # ~17 s (2026-11-29), well past the 2 s before its first progress line.  On 1 Gbit/s links a
    # policy took under 2 s on a fast machine, and the command finished before it could be stopped.
    proc = subprocess.Popen([sys.executable, "-m", "controller.cli", "replay", trace, "--k", "8", "--link-mbps",
                             "300", "--jobs", "2", "--no-plots", "--out", str(out)], cwd=ROOT,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.monotonic() + 120
    seen = b""
    with selectors.DefaultSelector() as waiting:   # a silent replay must fail the test, not hang it
        waiting.register(proc.stderr, selectors.EVENT_READ)
        while b"flows done" not in seen:          # a progress line: the workers are replaying
            assert proc.poll() is None, "the replay ended before it could be stopped"
            left = deadline - time.monotonic()
            assert left > 0 and waiting.select(timeout=left), "no progress from the replay in 120 s"
            seen += os.read(proc.stderr.fileno(), 65536)     # the raw pipe: nothing waits in a buffer
    workers = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout.split()
    assert len(workers) == 2
    if how == "ctrl-c":
        os.killpg(proc.pid, signal.SIGINT)
    else:
        proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 130
    assert "interrupted" in proc.stderr.read()
    assert not out.exists()
    for pid in workers:
        assert not os.path.exists("/proc/%s" % pid) or open("/proc/%s/stat" % pid).read().split()[2] == "Z"


@pytest.mark.parametrize("during", ["replay", "writing", "writing over --force"])
def test_sigterm_in_one_process_stops_like_ctrl_c_and_writes_nothing(tmp_path, capsys, monkeypatch, during):
    """SIGTERM during a --jobs 1 replay, or while its outputs are written, unwinds as Ctrl-C does:
    exit 130, one line, no output folder and no hidden temporary one (the default action killed
    the process silently and left the temporary folder behind)."""
    import signal

    import controller.replay as replay_module

    out = tmp_path / "out"
    if during == "writing over --force":
        assert _cli(["--scenario", "collide", "--k", "4", "--policy", "ecmp", "--no-plots", "--quiet",
                     "--out", str(out)], capsys)[0] == 0
        before = sorted(p.name for p in out.iterdir())
    import controller.commands.replay as command_module
    module, target = (command_module, "run_policy") if during == "replay" else (replay_module, "write_flows_csv")
    real = getattr(module, target)

    def terminated(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)
        return real(*args, **kwargs)
    monkeypatch.setattr(module, target, terminated)
    handler = signal.getsignal(signal.SIGTERM)
    code, _, err = _cli(["--scenario", "collide", "--k", "4", "--policy", "ecmp", "--no-plots", "--quiet",
                         "--jobs", "1", "--out", str(out)] + (["--force"] if "force" in during else []), capsys)
    assert code == 130 and err.strip() == "sidestep: interrupted"
    assert signal.getsignal(signal.SIGTERM) is handler          # the command put the handler back
    if during == "writing over --force":
        assert sorted(p.name for p in out.iterdir()) == before   # the previous output is intact
        assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    else:
        assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("out, words", [
    ("/proc/sidestep-out", "cannot write /proc/sidestep-out: cannot create files in /proc ("),
    ("{file}/out", "cannot write {file}/out: {file} is a file, not a folder; choose another --out path"),
    ("{file}/a/b", "cannot write {file}/a/b: {file} is a file, not a folder"),
])
def test_an_out_that_cannot_be_written_is_refused_before_the_replay(tmp_path, capsys, monkeypatch, out, words):
    """Found only after the whole replay before (/proc: a raw errno; under a file: "create it (mkdir -p)")."""
    import controller.commands.replay as command_module

    afile = tmp_path / "afile"
    afile.write_text("x")
    out, words = out.format(file=afile), words.format(file=afile)
    monkeypatch.setattr(command_module, "run_policy", lambda *a, **k: pytest.fail("the replay ran"))
    code, _, err = _cli(["--scenario", "collide", "--k", "4", "--policy", "ecmp", "--out", out], capsys)
    assert code == 2 and err.count("\n") == 1 and words in err, err


def test_a_disk_that_fills_while_writing_names_the_folder_and_leaves_nothing(tmp_path, capsys, monkeypatch):
    import errno

    import controller.replay as replay_module

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    monkeypatch.setattr(replay_module, "write_loads_csv", full)
    out = tmp_path / "out"
    code, _, err = _cli(["--scenario", "collide", "--k", "4", "--policy", "ecmp", "--out", str(out)], capsys)
    assert code == 2 and err.count("\n") == 1, err
    assert "cannot write %s (--out): No space left on device; nothing was written" % out in err
    assert list(tmp_path.iterdir()) == []


def test_bad_jobs_is_refused_before_any_work(tmp_path, capsys):
    for bad in ("0", "-1", "two"):
        code, _, err = _cli(["--scenario", "bursts", "--k", "4", "--jobs", bad, "--out", str(tmp_path / "o")], capsys)
        assert code == 2 and err.count("\n") == 1 and "--jobs must be a whole number >= 1" in err, err
    assert not (tmp_path / "o").exists()


def test_command_bad_input(tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("start_s,src,dst,size_bytes\n0,h1,h99,10\n")
    code, _, err = _cli([str(bad), "--k", "4", "--out", str(tmp_path / "o")], capsys)
    assert code == 2 and err.count("\n") == 1 and "bad.csv:2" in err and "unknown host" in err
    code, _, err = _cli([str(bad), "--k", "5", "--out", str(tmp_path / "o")], capsys)
    assert code == 2 and "even" in err
    (tmp_path / "exists").mkdir()
    code, _, err = _cli(["--scenario", "collide", "--k", "4", "--out", str(tmp_path / "exists")], capsys)
    assert code == 2 and "--force" in err
    code, _, err = _cli(["--scenario", "nope", "--k", "4", "--out", str(tmp_path / "o2")], capsys)
    assert code == 2 and "unknown scenario" in err


@pytest.mark.parametrize("policy,scenario,seed", [("reactive", "bursts", 0), ("predictive", "bursts", 1),
                                                  ("reactive", "random", 0), ("predictive", "bijection", 2)])
def test_skipped_planner_calls_change_nothing(fabric, policy, scenario, seed):
    """The control loop skips the planner (and gives reactive only its candidates) only when
    the planner's answer is provably the same: check it against a full call at every tick."""
    from controller.replay import ControlLoop, PersistencePredictor

    loop = ControlLoop(fabric, policy, poll_interval_s=1.0,
                       predictor=PersistencePredictor(1.0) if policy == "predictive" else None)
    calls = {"skipped": 0, "moves": 0}

    def hook(view):
        measured, forecast = loop.observe(view)
        fast = loop.decide(view, measured, forecast)
        full = loop.decide(view, measured, forecast, full=True)
        assert fast == full
        calls["moves"] += len(full)
        return fast
    flows = generate(scenario, 4, 1000.0, seed)
    if scenario in ("random", "bijection"):   # shorter: 15 s flows
        flows = [dataclasses.replace(f, size_bytes=f.size_bytes / 4) for f in flows]
    Simulator(fabric, flows, seed=seed, hook=hook).run()
    assert calls["moves"] > 0                       # the check saw real decisions
    assert loop.planner_calls < 2 * loop.ticks      # and skipped some calls


class _CountingPredictor:
    """The given predictor, counting its forecasts."""

    def __init__(self, inner):
        self.inner, self.calls = inner, 0

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def predict(self, history):
        self.calls += 1
        return self.inner.predict(history)


@pytest.mark.parametrize("scenario", ["bursts", "websearch"])
def test_the_forecast_is_made_only_when_the_planner_could_use_it(fabric, predictor, scenario):
    """A predictive tick forecasts only when a flow could move; the replay is the one that
    forecasts at every tick, bit for bit, and background-only traffic needs no forecast."""
    from controller.replay import ControlLoop

    flows = generate(scenario, 4, 1000.0, 0, duration_s=12.0)
    lazy = ControlLoop(fabric, "predictive", poll_interval_s=1.0, predictor=_CountingPredictor(predictor))
    eager = ControlLoop(fabric, "predictive", poll_interval_s=1.0, predictor=_CountingPredictor(predictor))

    def every_tick(view):
        measured, forecast = eager.observe(view)
        return eager.decide(view, measured, forecast)
    got = Simulator(fabric, flows, seed=0, hook=lazy).run()
    want = Simulator(fabric, flows, seed=0, hook=every_tick).run()
    assert [(r.flow_id, r.start_s, r.finish_s, r.path) for r in got.flows] == \
        [(r.flow_id, r.start_s, r.finish_s, r.path) for r in want.flows]
    assert got.reroutes == want.reroutes and lazy.reasons == eager.reasons
    assert np.array_equal(got.interval_bytes, want.interval_bytes)
    assert eager.predictor.calls == eager.ticks > 10
    if scenario == "websearch":                     # background only: no flow the planner may move
        assert lazy.predictor.calls == 0 and lazy.planner_calls == 0
    else:
        assert got.reroutes > 0 and 0 < lazy.predictor.calls <= lazy.ticks


@pytest.mark.parametrize("scenario,seed", [("bursts", 0), ("bursts", 2), ("multijob", 1), ("staggered", 0)])
def test_leaving_host_links_out_of_the_forecast_changes_no_decision(fabric, predictor, scenario, seed):
    """Replay forecasts every link but the host links (no placement changes their load): the
    same replay, moves and reasons as a loop that forecasts every link, with the shipped model."""
    from controller.replay import ControlLoop

    class EveryLink(ControlLoop):
        def forecast(self):
            return self._forecast(self.monitor.history(self.links, int(self.predictor.window)))

    flows = generate(scenario, 4, 1000.0, seed)
    ours = ControlLoop(fabric, "predictive", poll_interval_s=1.0, predictor=predictor)
    every = EveryLink(fabric, "predictive", poll_interval_s=1.0, predictor=predictor)
    got = Simulator(fabric, flows, seed=seed, hook=ours).run()
    want = Simulator(fabric, flows, seed=seed, hook=every).run()
    assert [(r.flow_id, r.start_s, r.finish_s, r.path) for r in got.flows] == \
        [(r.flow_id, r.start_s, r.finish_s, r.path) for r in want.flows]
    assert got.reroutes == want.reroutes > 0 and ours.reasons == every.reasons
    host = np.array([fabric.is_host(a) or fabric.is_host(b) for a, b in ours.links])
    forecast = ours.forecast()
    assert host.sum() == 32 and np.isnan(forecast[host]).all() and np.isfinite(forecast[~host]).all()
    assert np.isfinite(every.forecast()).all()


def test_cached_active_flows_and_partial_views_are_exact(fabric):
    """The control loop reuses ActiveFlows between ticks and builds only the views it needs:
    both must equal what building everything afresh gives, at every tick."""
    from controller.planner import ActiveFlow
    from controller.replay import ControlLoop

    loop = ControlLoop(fabric, "reactive", poll_interval_s=1.0)
    ticks = {"n": 0, "reused": 0}

    def hook(view):
        measured, forecast = loop.observe(view)
        positions = list(range(0, len(view.demand()[1]), 2))
        part = view.connections_at(positions)
        conns = view.connections
        assert part == [conns[p] for p in positions]
        before = set(map(id, loop._flow_cache.values()))
        cached = loop._active_flows(conns)
        fresh = [ActiveFlow(c.flow_id, c.five, c.path, c.demand_bps, c.cls) for c in conns]
        assert cached == fresh
        assert [(f.rate_bps, f.path) for f in cached] == [(f.rate_bps, f.path) for f in fresh]
        ticks["n"] += 1
        ticks["reused"] += sum(id(f) in before for f in cached)
        return loop.decide(view, measured, forecast)
    Simulator(fabric, generate("bursts", 4, 1000.0, 0), seed=0, hook=hook).run()
    assert ticks["n"] > 10 and ticks["reused"] > 0


def _tiny_trace(path):
    path.write_text("start_s,src,dst,size_bytes\n0,h1,h16,125000\n")
    return str(path)


def test_force_replaces_only_a_previous_replays_output(tmp_path, capsys, monkeypatch):
    """--force moves the old folder away and deletes it: only a replay's own output may go that way."""
    trace = _tiny_trace(tmp_path / "t.csv")
    out = tmp_path / "o"
    base = [trace, "--k", "4", "--policy", "ecmp", "--no-plots", "--quiet"]
    assert _cli(base + ["--out", str(out)], capsys)[0] == 0
    assert _cli(base + ["--out", str(out), "--force"], capsys)[0] == 0          # its own output: replaced
    empty = tmp_path / "empty"
    empty.mkdir()
    assert _cli(base + ["--out", str(empty), "--force"], capsys)[0] == 0        # an empty folder: fine

    (out / "notes.txt").write_text("precious\n")
    code, _, err = _cli(base + ["--out", str(out), "--force"], capsys)
    assert code == 2 and err.count("\n") == 1 and "also holds notes.txt" in err, err
    assert (out / "notes.txt").read_text() == "precious\n" and (out / "summary.json").exists()

    code, _, err = _cli(base + ["--out", trace, "--force"], capsys)             # the trace itself
    assert code == 2 and "is not a folder" in err, err
    assert open(trace).read().startswith("start_s,")

    work = tmp_path / "work"                                                   # the current folder
    work.mkdir()
    monkeypatch.chdir(work)
    code, _, err = _cli(base + ["--out", ".", "--force"], capsys)
    assert code == 2 and "--force would delete %s, which is the current folder (%s)" % (work, work) in err, err
    code, _, err = _cli(base + ["--out", str(tmp_path), "--force"], capsys)   # a folder holding the current one
    assert code == 2 and "which holds the current folder (%s)" % work in err, err

    kept = tmp_path / "k"                                                      # a folder holding the trace
    assert _cli(base + ["--out", str(kept)], capsys)[0] == 0
    inner = str(kept / "trace.csv")
    _tiny_trace(kept / "trace.csv")
    code, _, err = _cli([inner] + base[1:] + ["--out", str(kept), "--force"], capsys)
    assert code == 2 and "which holds the trace (%s)" % inner in err, err
    assert os.path.exists(inner)
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".")]          # no temp folders left


@pytest.mark.parametrize("rows, line, words", [
    ("start_s,src,dst,size_bytes\n0,h1,h16,1000\n1732890000,h1,h2,1000\n", 3, "flow L3 cannot finish before t=1.733e+09 s"),
    ("start_s,src,dst,size_bytes,rate_bps\n0,h1,h2,1000,1e-9\n", 2, "t=8e+12 s"),
    ("start_s,src,dst,size_bytes\n0,h1,h2,1e300\n", 2, "t=8e+293 s"),
])
def test_a_trace_that_would_replay_for_ever_is_refused_before_it_starts(tmp_path, capsys, rows, line, words):
    """Unix timestamps in start_s, a flow capped at a nanobit per second: these ran without end and without
    bound on memory."""
    trace = tmp_path / "t.csv"
    trace.write_text(rows)
    code, _, err = _cli([str(trace), "--k", "4", "--policy", "ecmp", "--out", str(tmp_path / "o")], capsys)
    assert code == 2 and err.count("\n") == 1, err
    assert "t.csv:%d: " % line in err and words in err and "relative to the first flow" in err, err
    assert not (tmp_path / "o").exists()


def test_the_span_check_follows_dependencies():
    """Three flows of 5e5 s each at the host link's rate: only the chain of them is too long to keep."""
    from controller.replay import MAX_POLL_LINKS, check_span
    fabric = Fabric.from_spec(fat_tree(4, 10))
    size = 5e5 * 10e6 / 8
    alone = [TraceFlow("f%d" % i, 0.0, "h1", "h16", size, line=i + 2) for i in range(3)]
    check_span(alone, fabric, 1.0, "t.csv")
    chain = [TraceFlow("f0", 0.0, "h1", "h16", size, line=2),
             TraceFlow("f1", 0.0, "h1", "h16", size, deps=("f0",), line=3),
             TraceFlow("f2", 0.0, "h1", "h16", size, deps=("f1",), gap_s=1.0, line=4)]
    with pytest.raises(ReplayError, match=r"t\.csv:4: flow f2 cannot finish before t=1\.5e\+06 s"):
        check_span(chain, fabric, 1.0, "t.csv")
    assert MAX_POLL_LINKS / 96 * 2.0 > 1.5e6
    check_span(chain, fabric, 2.0, "t.csv")      # longer polls keep a longer span


@pytest.mark.parametrize("option, value, words", [
    ("--link-mbps", "inf", "bw must be a finite number of Mbit/s > 0, got 'inf'"),
    ("--poll-interval", "inf", "--poll-interval must be a finite number of seconds > 0, got 'inf'"),
    ("--poll-interval", "0", "--poll-interval must be a finite number of seconds > 0, got '0'"),
    ("--seed", "x", "--seed must be an integer, got 'x'"),
])
def test_infinite_numbers_are_refused(tmp_path, capsys, option, value, words):
    """They were accepted and wrote "Infinity" into summary.json, which strict JSON parsers refuse."""
    trace = _tiny_trace(tmp_path / "t.csv")
    code, _, err = _cli([trace, "--k", "4", "--policy", "ecmp", "--out", str(tmp_path / "o"), option, value], capsys)
    assert code == 2 and err.count("\n") == 1 and words in err, err
    assert not (tmp_path / "o").exists()


def test_a_poll_interval_the_shipped_model_was_not_trained_for_names_both_ways_on(tmp_path, capsys):
    """The shipped model learned on 1 s samples: at 0.5 s predictive (and --policy all) stops before the replay."""
    trace = _tiny_trace(tmp_path / "t.csv")
    code, _, err = _cli([trace, "--k", "4", "--poll-interval", "0.5", "--out", str(tmp_path / "o")], capsys)
    assert code == 2 and err.count("\n") == 1, err
    assert "trained on samples every 1 s but the live sampling period is 0.5 s" in err
    assert "sidestep train" in err and "--model persistence" in err
    assert not (tmp_path / "o").exists()
    code, _, err = _cli([trace, "--k", "4", "--poll-interval", "0.5", "--model", "persistence", "--quiet",
                         "--out", str(tmp_path / "o")], capsys)
    assert code == 0, err
    assert (tmp_path / "o" / "summary.json").exists()


def test_a_missing_parent_folder_is_refused_before_the_replay(tmp_path, capsys, monkeypatch):
    """It used to be found only when the outputs were written, after the whole replay had run."""
    import controller.commands.replay as replay_command
    trace = _tiny_trace(tmp_path / "t.csv")
    started = []
    monkeypatch.setattr(replay_command._PolicyReplay, "all", lambda *a: started.append(1) or [])
    code, _, err = _cli([trace, "--k", "4", "--policy", "ecmp", "--out", str(tmp_path / "sweep" / "a")], capsys)
    assert code == 2 and err.count("\n") == 1 and "folder %s does not exist; create it" % (tmp_path / "sweep") in err
    assert started == []


def test_iteration_times_follow_the_iteration_numbers_the_trace_has(fabric):
    """A job numbered 0, 2, 4 had no iteration time (only i-1 counted) and vanished from the summary."""
    flows = [TraceFlow("j%d" % i, t, "h1", "h2", 1.25e6 * 0.5, job="J", iter=i)
             for i, t in ((0, 0.5), (2, 3.5), (4, 5.5))]
    res = run_policy("ecmp", fabric, flows).result
    assert iteration_times(res) == {"J": [(2, pytest.approx(3.0)), (4, pytest.approx(2.0))]}


def test_mean_link_util_and_loads_bytes_do_not_depend_on_where_the_last_poll_falls(tmp_path):
    """A flow ending 0.8 us past a poll halved mean_link_util (the last interval counted whole), and the
    bytes column of loads.csv cut each interval's fraction of a byte off."""
    fab = Fabric.from_spec(fat_tree(4, 10))
    on = run_policy("ecmp", fab, [TraceFlow("a", 0.0, "h1", "h2", 1_250_000)]).summary["mean_link_util"]
    past = run_policy("ecmp", fab, [TraceFlow("a", 0.0, "h1", "h2", 1_250_001)]).summary["mean_link_util"]
    assert past == pytest.approx(on, abs=1e-6) and on == pytest.approx(2 / 96, abs=1e-6)   # 2 of 96 directed links busy
    slow = run_policy("ecmp", fab, [TraceFlow("s", 0.0, "h1", "h2", 1250.0, rate_bps=1000.0)], poll_interval_s=0.1)
    out = tmp_path / "o"
    write_outputs(str(out), [slow], plots=False)
    sent = [int(line.split(",")[3]) for line in open(out / "loads.csv") if ",h1->e0_0," in line]
    assert len(sent) == 100 and sum(sent) == 1250


def test_reactive_sees_a_collision_from_t0_at_the_first_poll():
    """The monitor starts from zero counters at t=0, as a controller running before the trace: the first
    poll used to set only a baseline, so a collision from t=0 was measured, and split, one poll late."""
    from mininet_topos.scenario import find_colliding_port
    fab = Fabric.from_spec(fat_tree(4, 10))
    first = FiveTuple("h1", "h5", 6, 40000, 5000)
    target = ecmp_choice(first, fab.paths("h1", "h5"))
    sport, _ = find_colliding_port(fab, "h3", "h7", 5000, target, start=41000)
    flows = [TraceFlow("a", 0.0, "h1", "h5", 5e6, cls="training", src_port=40000, dst_port=5000),
             TraceFlow("b", 0.0, "h3", "h7", 5e6, cls="training", src_port=sport, dst_port=5000)]
    run = run_policy("reactive", fab, flows)
    # shared until the poll at 1 s (5 Mbit/s each: 0.625 MB), then apart at 10 Mbit/s: 3.5 s more
    assert sorted(r.finish_s for r in run.result.flows) == [pytest.approx(4.5), pytest.approx(4.5)]
    assert run.result.reroutes == 1
