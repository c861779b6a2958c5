"""The replay's iteration-time plot: which layout it picks, and that each layout renders."""
import os

import pytest

from controller.plots import MAX_JOB_PANELS, iteration_layout, plot_iterations

PNG = b"\x89PNG\r\n\x1a\n"


def _series(n_jobs, policies=("ecmp", "reactive", "predictive", "ideal")):
    return {p: {"job%02d" % j: [(i, 1.0 + 0.1 * j + (0.5 if p == "ecmp" else 0.0)) for i in range(1, 6)]
                for j in range(n_jobs)} for p in policies}


def test_a_few_jobs_get_a_panel_each_in_name_order():
    series = _series(3)
    series["ecmp"]["job00"] = []            # a job with no complete iteration under one policy still counts
    assert iteration_layout(series) == ("panels", ["job00", "job01", "job02"])


def test_jobs_without_any_iteration_are_left_out():
    series = {"ecmp": {"a": [], "b": [(1, 2.0)]}, "ideal": {"a": []}}
    assert iteration_layout(series) == ("panels", ["b"])


def test_many_jobs_are_drawn_as_per_job_means():
    assert iteration_layout(_series(MAX_JOB_PANELS))[0] == "panels"
    layout, jobs = iteration_layout(_series(MAX_JOB_PANELS + 1))
    assert layout == "means" and len(jobs) == MAX_JOB_PANELS + 1


@pytest.mark.parametrize("n_jobs", [0, 1, 4, MAX_JOB_PANELS, 30, 60])
def test_every_layout_renders_a_png(tmp_path, n_jobs):
    path = str(tmp_path / "iterations.png")
    plot_iterations(path, _series(n_jobs))
    with open(path, "rb") as fh:
        assert fh.read(8) == PNG
    assert os.path.getsize(path) > (3000 if n_jobs == 0 else 15000)
