"""Learning-curve PNGs from a trainer's ``progress.csv`` (matplotlib, Agg canvas, no pyplot)."""
from __future__ import annotations

import csv
import os

import numpy as np

__all__ = ["read_progress", "plot_learning_curve"]


def read_progress(csv_path: str | os.PathLike) -> dict[str, np.ndarray]:
    """The columns of a ``progress.csv`` as float arrays (empty cells are NaN)."""
    with open(csv_path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        raise ValueError(f"{csv_path} has no logged iterations yet")
    return {k: np.array([float(r[k]) if r[k] not in ("", None) else np.nan for r in rows])
            for k in rows[0]}


def plot_learning_curve(csv_path: str | os.PathLike, png_path: str | os.PathLike,
                        title: str | None = None) -> str:
    """Plot the running mean training return (and evaluation returns, when logged) against
    environment steps; write ``png_path`` and return it."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    data = read_progress(csv_path)
    fig = Figure(figsize=(7, 4), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    x = data["timesteps"]
    ax.plot(x, data["ep_return_mean"], label="training episodes (mean of last 100)")
    if "eval_return_mean" in data and np.isfinite(data["eval_return_mean"]).any():
        ok = np.isfinite(data["eval_return_mean"])
        m, s = data["eval_return_mean"][ok], np.nan_to_num(data["eval_return_std"][ok])
        ax.errorbar(x[ok], m, yerr=s, fmt="o", ms=4, capsize=3, label="evaluation (mean ± std)")
    ax.set_xlabel("environment steps")
    ax.set_ylabel("episode return")
    ax.grid(alpha=0.3)
    ax.legend(loc="best")
    if title:
        ax.set_title(title)
    fig.tight_layout()
    png_path = os.fspath(png_path)
    fig.savefig(png_path)
    return png_path
