"""The run logger: one row per iteration, kept in memory, appended to ``progress.csv``, sent to
TensorBoard when it is installed, and drawn as ``learning_curve.png``.

Columns every trainer writes come first (:data:`COMMON_FIELDS`); each family adds its own. The
plot draws ``ep_return_mean`` (the mean return of the last 100 training episodes, or in an
evolution run the population's mean return per generation: the trainer gives the label) and,
when logged, the evaluation returns (``eval_return_mean`` +/- ``eval_return_std``) against
environment steps.
"""
from __future__ import annotations

import csv
import importlib.util
import os

import numpy as np

__all__ = ["RunLogger", "COMMON_FIELDS", "read_progress", "plot_learning_curve", "format_row"]

COMMON_FIELDS = ["timesteps", "iterations", "time_elapsed", "fps", "ep_return_mean",
                 "eval_return_mean", "eval_return_std"]
TRAINING_LABEL = "training episodes (mean of last 100)"
"""The plot's legend for ``ep_return_mean`` unless the trainer gives another."""


class RunLogger:
    """Rows of ``fields``: kept in :attr:`rows`; appended to ``log_dir/progress.csv`` when a
    folder is given; to TensorBoard (tags ``tb_prefix + column``) when wanted and
    installed. ``label`` is the plot's legend for ``ep_return_mean``."""

    def __init__(self, log_dir: str | None, fields: list[str], tensorboard: bool = True,
                 tb_prefix: str = "", label: str = TRAINING_LABEL):
        self.fields, self.tb_prefix, self.label = list(fields), tb_prefix, label
        self.rows: list[dict] = []
        self.log_dir = log_dir
        self.csv_path = None
        self._tb = None
        if log_dir is None:
            return
        os.makedirs(log_dir, exist_ok=True)
        self.csv_path = os.path.join(log_dir, "progress.csv")
        if not os.path.exists(self.csv_path):
            with open(self.csv_path, "w", newline="") as f:
                csv.writer(f).writerow(self.fields)
        if tensorboard:
            self._tb = _tensorboard_writer(log_dir)

    def log(self, row: dict) -> None:
        self.rows.append(row)
        if self.csv_path:
            with open(self.csv_path, "a", newline="") as f:
                csv.writer(f).writerow(["" if row.get(k) is None else row[k]
                                        for k in self.fields])
        if self._tb is not None:
            step = int(row["timesteps"])
            for k, v in row.items():
                if v is not None and k != "timesteps" and np.isfinite(v):
                    self._tb.add_scalar(self.tb_prefix + k, v, step)
            self._tb.flush()

    def plot(self, title: str | None = None) -> str | None:
        """Draw ``log_dir/learning_curve.png`` from ``progress.csv`` (None without rows)."""
        if self.csv_path is None or not self.rows:
            return None
        return plot_learning_curve(self.csv_path,
                                   os.path.join(self.log_dir, "learning_curve.png"), title,
                                   self.label)

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
            self._tb = None


_GROUPS = (("rollout/", ("ep_return_mean", "ep_length_mean", "ep_return_max", "ep_return_min",
                         "episodes", "steps")),
           ("eval/", ("eval_return_mean", "eval_return_std")),
           ("time/", ("timesteps", "iterations", "time_elapsed", "fps")))


def format_row(row: dict) -> str:
    """A logged row as the console table Stable-Baselines3 prints with ``verbose=1``:
    rollout, eval, time and train groups, one value per line."""
    shown = set()
    lines = []
    groups = list(_GROUPS) + [("train/", tuple(k for k in row if k not in
                                                {f for _, g in _GROUPS for f in g}))]
    for title, fields in groups:
        items = [(k, row[k]) for k in fields if row.get(k) is not None and k not in shown]
        if not items:
            continue
        lines.append((title, ""))
        for k, v in items:
            shown.add(k)
            lines.append((f"    {k}", f"{v:.4g}" if isinstance(v, float) else str(v)))
    w1 = max(len(a) for a, _ in lines) + 1
    w2 = max(len(b) for _, b in lines) + 1
    rule = "-" * (w1 + w2 + 5)
    return "\n".join([rule] + [f"| {a:<{w1}}| {b:<{w2}}|" for a, b in lines] + [rule])


def _tensorboard_writer(log_dir: str):
    """A SummaryWriter from tensorboardX or torch.utils.tensorboard, or None."""
    if importlib.util.find_spec("tensorboardX") is not None:
        from tensorboardX import SummaryWriter
        return SummaryWriter(log_dir)
    if (importlib.util.find_spec("tensorboard") is not None
            and importlib.util.find_spec("torch") is not None):
        from torch.utils.tensorboard import SummaryWriter
        return SummaryWriter(log_dir)
    return None


# ---------------------------------------------------------------------------- plots
def read_progress(csv_path: str | os.PathLike) -> dict[str, np.ndarray]:
    """The columns of a ``progress.csv`` as float arrays (empty cells are NaN)."""
    with open(csv_path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        raise ValueError(f"{csv_path} has no logged iterations yet")
    return {k: np.array([float(r[k]) if r[k] not in ("", None) else np.nan for r in rows])
            for k in rows[0]}


def plot_learning_curve(csv_path: str | os.PathLike, png_path: str | os.PathLike,
                        title: str | None = None, label: str = TRAINING_LABEL) -> str:
    """Plot ``ep_return_mean`` with the legend ``label`` (and the evaluation returns, when
    logged) against environment steps; write ``png_path`` and return it (matplotlib's Agg
    canvas, no pyplot)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    data = read_progress(csv_path)
    fig = Figure(figsize=(7, 4), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    x = data["timesteps"]
    ax.plot(x, data["ep_return_mean"], label=label)
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
