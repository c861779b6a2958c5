"""Replay plots (PNG): iteration time per policy, link utilization over time.

matplotlib is imported inside the functions with the Agg backend, so
importing this module (or running a replay without plots) never needs a
display or matplotlib itself.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Tuple

import numpy as np

from controller.sim import SimResult

_COLORS = {"ecmp": "tab:red", "reactive": "tab:orange", "predictive": "tab:blue", "ideal": "tab:green"}


def _pyplot():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


# how each policy is drawn: ``ideal`` wide and pale underneath, so a policy that matches it
# (the planners often do) stays visible on top of it instead of hiding it, or hidden by it
_STYLES = {
    "ideal": dict(lw=5.0, alpha=0.35, ls="-", zorder=1),
    "ecmp": dict(lw=1.4, alpha=0.9, ls="-", zorder=2),
    "reactive": dict(lw=1.4, alpha=0.9, ls="--", marker="o", ms=3.5, zorder=3),
    "predictive": dict(lw=1.4, alpha=0.9, ls=":", marker="x", ms=4.5, zorder=4),
}
MAX_JOB_PANELS = 9


def iteration_layout(series: Dict[str, Dict[str, List[Tuple[int, float]]]]) -> Tuple[str, List[str]]:
    """How ``plot_iterations`` shows these jobs: ("panels", jobs) or ("means", jobs), jobs sorted.

    Why two layouts: one line per (policy, job) on shared axes made lines that
    coincide (a planner at ``ideal``) invisible and jobs impossible to tell
    apart.  Up to ``MAX_JOB_PANELS`` jobs get a panel each, with every policy's
    iteration times; beyond that panels get too small to read, so every job's
    mean iteration time per policy is drawn on one axis instead.
    """
    jobs = sorted({job for per in series.values() for job, pts in per.items() if pts})
    return ("panels" if len(jobs) <= MAX_JOB_PANELS else "means"), jobs


def plot_iterations(path: str, series: Dict[str, Dict[str, List[Tuple[int, float]]]]) -> None:
    """Training iteration time per policy: a panel per job, or per-job means (``iteration_layout``)."""
    plt = _pyplot()
    layout, jobs = iteration_layout(series)
    rect: Optional[Tuple[float, float, float, float]] = None     # the area tight_layout fills
    if not jobs:
        fig, ax = plt.subplots(figsize=(8, 4.5))
        ax.text(0.5, 0.5, "no training jobs in this trace", ha="center", transform=ax.transAxes)
        ax.set_axis_off()
    elif layout == "panels":
        ncols = min(3, len(jobs))
        nrows = -(-len(jobs) // ncols)
        fig, axes = plt.subplots(nrows, ncols, figsize=(4.2 * ncols, 3.0 * nrows + 0.6), squeeze=False)
        for ax, job in zip(axes.ravel(), jobs):
            for policy, per in series.items():
                pts = per.get(job) or []
                if pts:
                    x, y = zip(*pts)
                    ax.plot(x, y, color=_COLORS.get(policy), label=policy,
                            markevery=max(1, len(x) // 25), **_STYLES.get(policy, {}))
            ax.set_title(job, fontsize=10)
            ax.set_xlabel("iteration")
            ax.set_ylabel("iteration time (s)")
            ax.grid(alpha=0.3)
        for ax in axes.ravel()[len(jobs):]:
            ax.set_axis_off()
        handles, labels = axes.ravel()[0].get_legend_handles_labels()
        # below the panels: at the top right, four policies ran into the title
        fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=9, frameon=False)
        fig.suptitle("training iteration time per policy, one panel per job", x=0.02, ha="left")
        rect = (0.0, 0.45 / fig.get_figheight(), 1.0, 1.0)
    else:
        fig, ax = plt.subplots(figsize=(min(16.0, 6.0 + 0.25 * len(jobs)), 4.5))
        at = {job: i for i, job in enumerate(jobs)}
        for policy, per in series.items():
            got = [(at[job], float(np.mean([t for _, t in pts]))) for job, pts in per.items() if pts]
            if got:
                x, y = zip(*sorted(got))
                style = dict(_STYLES.get(policy, {}))
                style.update(ls="none", marker=style.get("marker", "s"), ms=10 if policy == "ideal" else 5)
                style.pop("lw", None)
                ax.plot(x, y, color=_COLORS.get(policy), label=policy, **style)
        if len(jobs) <= 40:
            ax.set_xticks(range(len(jobs)))
            ax.set_xticklabels(jobs, rotation=60, ha="right", fontsize=7)
        ax.set_xlabel("job (%d, by name)" % len(jobs))
        ax.set_ylabel("mean iteration time (s)")
        ax.set_title("training: mean iteration time per job and policy")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout(rect=rect)
    fig.savefig(path, dpi=100, metadata={"Software": None})
    plt.close(fig)


_LAYER_NAMES = {1: "host links", 3: "edge-aggregation", 5: "aggregation-core"}


def _layer(link: Tuple[str, str]) -> int:
    order = {"h": 0, "e": 1, "a": 2, "c": 3, "b": 1}
    return order.get(link[0][:1], 4) + order.get(link[1][:1], 4)


def plot_heatmap(path: str, result: SimResult, title: str = "link utilization",
                 max_columns: int = 600) -> None:
    """Links (rows, grouped by layer) x poll intervals (columns), colour = utilization."""
    plt = _pyplot()
    util = result.utilization()
    order = sorted(range(len(result.links)), key=lambda i: (_layer(result.links[i]), result.links[i]))
    mat = util[:, order].T if util.size else np.zeros((len(order), 1))
    if mat.shape[1] > max_columns:  # average neighbouring intervals so the image stays readable
        step = int(np.ceil(mat.shape[1] / max_columns))
        cut = mat.shape[1] // step * step
        mat = mat[:, :cut].reshape(mat.shape[0], -1, step).mean(axis=2)
    else:
        step = 1
    fig, ax = plt.subplots(figsize=(9, 5))
    t_end = float(result.tick_s[-1]) if len(result.tick_s) else 1.0
    im = ax.imshow(mat, aspect="auto", interpolation="nearest", cmap="viridis", vmin=0.0, vmax=1.0,
                   extent=(0.0, t_end, len(order), 0))
    layers = [_layer(result.links[i]) for i in order]
    centres, names = [], []
    for start in range(len(layers)):
        if start == 0 or layers[start] != layers[start - 1]:
            if start:
                ax.axhline(start, color="white", lw=0.8)
            end = start
            while end < len(layers) and layers[end] == layers[start]:
                end += 1
            centres.append((start + end) / 2.0)
            names.append("%s\n(%d links)" % (_LAYER_NAMES.get(layers[start], "other"), end - start))
    ax.set_yticks(centres)
    ax.set_yticklabels(names, fontsize=8)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("directed links, both directions, by layer")
    ax.set_title(title)
    fig.colorbar(im, ax=ax, label="utilization")
    fig.tight_layout()
    fig.savefig(path, dpi=100, metadata={"Software": None})
    plt.close(fig)
