"""Replay plots (PNG): iteration time per policy, link utilization over time.

matplotlib is imported inside the functions with the Agg backend, so
importing this module (or running a replay without plots) never needs a
display or matplotlib itself.
"""
from __future__ import annotations

from typing import Dict, List, Tuple

import numpy as np

from controller.sim import SimResult

_COLORS = {"ecmp": "tab:red", "reactive": "tab:orange", "predictive": "tab:blue", "ideal": "tab:green"}


def _pyplot():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def plot_iterations(path: str, series: Dict[str, Dict[str, List[Tuple[int, float]]]]) -> None:
    """One line per (policy, job): iteration time against iteration index."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 4.5))
    drawn = False
    for policy, jobs in series.items():
        for n, (job, pts) in enumerate(sorted(jobs.items())):
            if not pts:
                continue
            x, y = zip(*pts)
            ax.plot(x, y, color=_COLORS.get(policy), alpha=0.8, lw=1.2,
                    label=policy if n == 0 else None)
            drawn = True
    ax.set_xlabel("iteration")
    ax.set_ylabel("iteration time (s)")
    ax.set_title("training iteration time per policy (one line per job)")
    if drawn:
        ax.legend()
    else:
        ax.text(0.5, 0.5, "no training jobs in this trace", ha="center", transform=ax.transAxes)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100, metadata={"Software": None})
    plt.close(fig)


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
    ax.set_xlabel("time (s)")
    ax.set_ylabel("directed link (host, edge, aggregation, core layers)")
    ax.set_title(title)
    fig.colorbar(im, ax=ax, label="utilization")
    fig.tight_layout()
    fig.savefig(path, dpi=100, metadata={"Software": None})
    plt.close(fig)
