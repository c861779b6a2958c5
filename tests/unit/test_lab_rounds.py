"""`sidestep lab --repeat N`: each row's medians over the rounds, and the table that shows them."""
import pytest

from controller.commands.lab import format_diagnostics, format_table, median_rows


def row(run, mean, ratio, *, p99=None, tput=9.0, reroutes=0, rnd=None):
    r = {"run": run, "scenario": "hotspot" if run != "no hotspot" else "none", "mean_iteration_s": mean,
         "p99_iteration_s": p99 if p99 is not None else mean + 0.5, "throughput_mbps": tput,
         "reroutes": reroutes, "ratio_to_no_hotspot": ratio, "tcp": None, "cpu": None}
    if rnd is not None:
        r["round"] = rnd
    return r


ROUNDS = [
    row("no hotspot", 1.90, 1.0, rnd=1), row("ecmp", 3.20, 3.20 / 1.90, rnd=1),
    row("predictive", 2.63, 2.63 / 1.90, reroutes=3, rnd=1),
    row("no hotspot", 1.85, 1.0, rnd=2), row("ecmp", 3.00, 3.00 / 1.85, rnd=2),
    row("predictive", 1.94, 1.94 / 1.85, reroutes=3, rnd=2),
    row("no hotspot", 1.87, 1.0, rnd=3), row("ecmp", 3.30, 3.30 / 1.87, rnd=3),
    row("predictive", 2.07, 2.07 / 1.87, reroutes=4, rnd=3),
]


def test_each_row_gets_its_medians_and_the_range_of_its_ratios_in_first_seen_order():
    med = median_rows(ROUNDS)
    assert [m["run"] for m in med] == ["no hotspot", "ecmp", "predictive"]
    pred = med[2]
    assert pred["rounds"] == 3
    assert pred["mean_iteration_s"] == 2.07
    assert pred["p99_iteration_s"] == 2.57
    assert pred["reroutes"] == 3
    # each ratio is to its own round's reference: the median ratio is not median time / median reference
    assert pred["ratio_to_no_hotspot"] == pytest.approx(2.07 / 1.87)
    assert pred["ratio_min"] == pytest.approx(1.94 / 1.85)
    assert pred["ratio_max"] == pytest.approx(2.63 / 1.90)
    assert med[0]["ratio_min"] == med[0]["ratio_max"] == 1.0
    assert median_rows(ROUNDS[:3])[1]["ratio_min"] == median_rows(ROUNDS[:3])[1]["ratio_max"]


def test_an_even_number_of_rounds_takes_the_mean_of_the_middle_two():
    med = median_rows(ROUNDS[:6])
    assert med[2]["mean_iteration_s"] == pytest.approx((2.63 + 1.94) / 2)
    assert med[2]["reroutes"] == 3


def test_the_median_table_adds_the_range_and_says_what_the_figures_are():
    lines = format_table(median_rows(ROUNDS)).splitlines()
    assert lines[0].startswith("medians over rounds")
    assert lines[1].split()[-2:] == ["range", "(3)"]
    assert lines[5].split() == ["predictive", "2.07", "2.57", "9.00", "3", "1.11x", "1.05-1.38x"]


def test_a_single_round_keeps_the_plain_table():
    lines = format_table(ROUNDS[:3]).splitlines()
    assert lines[0].split() == ["run", "mean", "it", "s", "p99", "it", "s", "tput", "Mbit/s", "reroutes",
                                "vs", "no-hot"]
    assert lines[4] == "predictive         2.63       3.13         9.00         3        1.38x"


def test_the_diagnostics_name_each_run_with_its_round():
    rows = [dict(r, tcp={"retrans": 0, "max_srtt_ms_median": 30.0, "max_srtt_ms_max": 40.0}) for r in ROUNDS]
    lines = format_diagnostics(rows).splitlines()
    assert lines[3].split()[:3] == ["no", "hotspot", "#1"]
    assert lines[-1].split()[:2] == ["predictive", "#3"]
    assert len({len(l) for l in lines[1:]}) == 1      # the columns line up past the longest name
