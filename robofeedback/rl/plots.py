"""Learning-curve plots from the evaluation log a training run writes, and the figure helpers the benchmarks share."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def task_panels(tasks: list[str]):
    """A figure with one panel per task, side by side; returns ``(figure, list of axes)``."""
    fig, axes = plt.subplots(1, len(tasks), figsize=(5.5 * len(tasks), 4), squeeze=False)
    return fig, list(axes[0])


def save_figure(fig, path: str | Path, dpi: int = 110) -> Path:
    """Lay out, write and close ``fig``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=dpi, bbox_inches="tight")  # legends placed outside the axes stay in the picture
    plt.close(fig)
    return path


def plot_learning_curve(eval_log: str | Path, out_png: str | Path, title: str = "") -> Path:
    """Success rate (where defined) and mean env return against env steps, from ``eval.jsonl``."""
    rows = [json.loads(line) for line in Path(eval_log).read_text().splitlines() if line.strip()]
    if not rows:
        raise ValueError(f"{eval_log} holds no evaluations to plot")
    steps = [r["steps"] for r in rows]
    has_success = all("success_rate" in r for r in rows)
    fig, axes = plt.subplots(1, 2 if has_success else 1, figsize=(10 if has_success else 5.5, 3.8), squeeze=False)
    ax = axes[0, 0]
    mean = [r["mean_env_return"] for r in rows]
    std = [r.get("std_env_return", 0.0) for r in rows]
    ax.plot(steps, mean, marker="o", color="tab:blue")
    low = [m - s for m, s in zip(mean, std, strict=True)]
    high = [m + s for m, s in zip(mean, std, strict=True)]
    ax.fill_between(steps, low, high, alpha=0.2)
    ax.set_xlabel("env steps")
    ax.set_ylabel("mean env return (± std over episodes)")
    ax.grid(alpha=0.3)
    if has_success:
        ax = axes[0, 1]
        ax.plot(steps, [r["success_rate"] for r in rows], marker="o", color="tab:green")
        ax.set_ylim(-0.05, 1.05)
        ax.set_xlabel("env steps")
        ax.set_ylabel("success rate")
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    return save_figure(fig, out_png, dpi=100)
