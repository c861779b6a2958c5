"""Labs other than the shared k=4 one: k=6, the same app under ryu-manager, and a controller stopped by a signal.

Each test brings up its own lab, so this module has no module-scoped lab:
two labs cannot run at once (one OpenFlow port, and Mininet's cleanup).
"""
import os
import signal

import pytest

from mininet_topos.lab import ROOT, ControllerProcess, Lab

pytestmark = pytest.mark.integration


@pytest.mark.slow
def test_k6_comes_up_and_passes_pingall(tmp_path):
    with Lab(k=6, bw_mbps=10, out_dir=str(tmp_path), discovery_timeout_s=120) as lab:
        assert len(lab.net.hosts) == 54
        # all 2,862 ordered pairs, pinged by every host in parallel
        failures = lab.parallel_pingall()
        assert failures == {}
        health = lab.controller.get("/health")
        assert health["switches_connected"] == 45 and health["links_discovered"] == 108


RYU_VENV = os.path.join(ROOT, ".venv-ryu")


@pytest.mark.skipif(not os.path.exists(os.path.join(RYU_VENV, "bin", "ryu-manager")),
                    reason="no Ryu 4.34 venv: scripts/setup.sh found no Python 3.9, or building the venv failed "
                           "(its output says which)")
def test_same_app_under_ryu_manager(tmp_path):
    """Predictive, with the forecaster setup.sh builds for the Ryu venv's scikit-learn (README)."""
    model = os.path.join(RYU_VENV, "default_model.joblib")
    assert os.path.exists(model), "scripts/setup.sh builds %s with the Ryu venv" % model
    ryu = ControllerProcess(str(tmp_path), name="ryu-manager", overrides={"policy": "predictive", "model": model},
                            command=[os.path.join(RYU_VENV, "bin", "ryu-manager"), "--ofp-tcp-listen-port", "6653",
                                     os.path.join(ROOT, "controller", "app.py")])
    with Lab(k=4, bw_mbps=10, out_dir=str(tmp_path), controller=ryu) as lab:
        assert "ryu" in open(ryu.log_path).read().lower()
        pairs = [("h1", "h16"), ("h1", "h2"), ("h5", "h12"), ("h9", "h4")]
        for a, b in pairs:
            loss = lab.net.ping([lab.host(a), lab.host(b)], timeout=2)
            assert loss == 0.0, "%s<->%s under ryu-manager" % (a, b)
        health = ryu.get("/health")
        assert health["switches_connected"] == 20
        assert health["policy"] == "predictive" and health["model"].startswith("default_model.joblib"), health


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_the_controller_stops_on_a_signal_and_keeps_its_last_samples(tmp_path, sig):
    """Ctrl-C left ``sidestep controller`` running: the framework waited for the app's poll loop and
    REST server, which never return.  SIGTERM killed it by default, with up to 2 s of its recording
    still in memory."""
    from mininet_topos.lab import free_port, wait_for

    record = tmp_path / "loads.csv"
    port = free_port()
    ctrl = ControllerProcess(str(tmp_path), ofp_port=port, record=str(record))
    with Lab(k=4, bw_mbps=10, out_dir=str(tmp_path), ofp_port=port, controller=ctrl):
        def measured():
            return [l for l in ctrl.get("/utilization")["links"] if l["util"] is not None]
        wait_for(lambda: len(measured()) > 0, 30, "a measured link")
        seen = max(l["t_s"] for l in measured())
        proc = ctrl.proc
        os.killpg(proc.pid, sig)            # Ctrl-C reaches the terminal's process group; a manager's SIGTERM
        code = proc.wait(timeout=20)
        assert code == 128 + sig, ctrl.log_tail()
        assert "stopped by %s" % signal.Signals(sig).name in ctrl.log_tail()
        times = [float(line.split(",", 1)[0]) for line in record.read_text().splitlines()[1:]]
        assert times and max(times) >= seen - 1e-6, (max(times, default=None), seen)
