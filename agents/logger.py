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
import warnings

import numpy as np

__all__ = ["RunLogger", "COMMON_FIELDS", "read_progress", "plot_learning_curve", "plot_runs",
           "run_group", "format_row"]

COMMON_FIELDS = ["timesteps", "iterations", "time_elapsed", "fps", "ep_return_mean",
                 "eval_return_mean", "eval_return_std"]
TRAINING_LABEL = "training episodes (mean of last 100)"
"""The plot's legend for ``ep_return_mean`` unless the trainer gives another."""


class RunLogger:
    """Rows of ``fields``: kept in :attr:`rows`; written to ``log_dir/progress.csv`` when a
    folder is given; to TensorBoard (tags ``tb_prefix + column``) when wanted and
    installed. ``label`` is the plot's legend for ``ep_return_mean``.

    Nothing is created before the first row, so a run that fails to start leaves no folder.
    A new run (``append=False``) starts ``progress.csv`` afresh, with a warning when it
    replaces one that another run wrote; a continued run (``append=True``, set for a loaded
    trainer) adds its rows to the file it finds."""

    def __init__(self, log_dir: str | None, fields: list[str], tensorboard: bool = True,
                 tb_prefix: str = "", append: bool = False, label: str = TRAINING_LABEL):
        self.fields, self.tb_prefix, self.label = list(fields), tb_prefix, label
        self.rows: list[dict] = []
        self.log_dir = None if log_dir is None else os.fspath(log_dir)
        self.csv_path = None if log_dir is None else os.path.join(self.log_dir, "progress.csv")
        self.append = bool(append)
        self._tensorboard = bool(tensorboard)
        self._tb = None
        self._opened = False
        self._restarted = False

    def restart(self) -> None:
        """Start a new series (``learn(reset_num_timesteps=True)``): the rows so far are
        dropped and the next row starts ``progress.csv`` afresh."""
        self.rows.clear()
        self.append = False
        self._opened = False
        self._restarted = True

    def _open(self) -> None:
        """At the first row: create the folder and the CSV header (or continue the file)."""
        self._opened = True
        if self.csv_path is None:
            return
        os.makedirs(self.log_dir, exist_ok=True)
        exists = os.path.exists(self.csv_path) and os.path.getsize(self.csv_path) > 0
        if exists and self.append:
            with open(self.csv_path, newline="") as f:
                header = next(csv.reader(f), None)
            if header != self.fields:
                raise ValueError(f"{self.csv_path} has the columns {header}, this run logs "
                                 f"{self.fields}; give the continued run its own log_dir")
        else:
            if exists and not self._restarted:
                warnings.warn(f"{self.csv_path} holds an earlier run's rows; this new run "
                              f"starts it afresh (give each run its own log_dir to keep "
                              f"both, or load the saved model to continue a run)",
                              stacklevel=4)
            with open(self.csv_path, "w", newline="") as f:
                csv.writer(f).writerow(self.fields)
        if self._tensorboard and self._tb is None:
            self._tb = _tensorboard_writer(self.log_dir)

    def log(self, row: dict) -> None:
        if not self._opened:
            self._open()
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


def _run_info(run_dir) -> dict:
    """A run folder's ``run.json`` (written by ``rlstm train``), or ``{}``."""
    import json
    try:
        with open(os.path.join(run_dir, "run.json")) as f:
            info = json.load(f)
    except (OSError, ValueError):
        return {}
    return info if isinstance(info, dict) else {}


def run_group(run_dir: str | os.PathLike, group_by: str = "run") -> str:
    """The group a run folder belongs to in :func:`plot_runs`.

    ``"run"``: "ALGO on ENV" from the folder's ``run.json`` (written by ``rlstm train``), else
    as ``"name"``; ``"name"``: the folder name less a trailing ``_N`` (a numbered repeat) and
    ``-SEED``; ``"none"``: the folder name itself."""
    import re
    name = os.path.basename(os.path.normpath(os.fspath(run_dir)))
    if group_by == "none":
        return name
    if group_by == "run":
        info = _run_info(run_dir)
        if info.get("algo") and info.get("env"):
            return f"{info['algo']} on {info['env']}"
    elif group_by != "name":
        raise ValueError(f"group_by must be 'run', 'name' or 'none', got {group_by!r}")
    return re.sub(r"-\d+$", "", re.sub(r"_\d+$", "", name))


def plot_runs(run_dirs, png_path: str | os.PathLike = "runs.png", group_by: str = "run",
              band: str = "std", column: str = "ep_return_mean",
              title: str | None = None) -> str:
    """Several runs on one figure: per group (:func:`run_group`), the mean of ``column``
    over its runs against environment steps, with a band of +/- one standard deviation
    (``band="std"``), the runs' minimum to maximum (``"minmax"``) or none. Each run is
    interpolated onto the steps its group logged, up to the shortest run's last step, so the
    mean is always over every run of the group. Writes ``png_path`` and returns it."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if band not in ("std", "minmax", "none"):
        raise ValueError(f"band must be 'std', 'minmax' or 'none', got {band!r}")
    run_dirs = [os.fspath(d) for d in run_dirs]
    if not run_dirs:
        raise ValueError("plot_runs needs at least one run folder")
    groups: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}
    labels = set()
    for d in run_dirs:
        labels.add(_run_info(d).get("curve_label", TRAINING_LABEL))
        csv_path = os.path.join(d, "progress.csv")
        if not os.path.isfile(csv_path):
            raise ValueError(f"{d} is not a run folder: it has no progress.csv")
        try:
            data = read_progress(csv_path)
        except ValueError:  # a run that has not logged an iteration yet
            data = {"timesteps": np.zeros(0), column: np.zeros(0)}
        if column not in data:
            raise ValueError(f"{csv_path} has no column {column!r}; it has "
                             f"{', '.join(sorted(data))}")
        ok = np.isfinite(data[column]) & np.isfinite(data["timesteps"])
        if not ok.any():
            warnings.warn(f"{csv_path} has no logged values of {column!r} yet; left out",
                          stacklevel=2)
            continue
        groups.setdefault(run_group(d, group_by), []).append((data["timesteps"][ok],
                                                              data[column][ok]))
    if not groups:
        raise ValueError(f"none of the runs has logged values of {column!r} yet")
    fig = Figure(figsize=(7, 4), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for label, runs in groups.items():
        end = min(x[-1] for x, _ in runs)
        grid = np.unique(np.concatenate([x[x <= end] for x, _ in runs]))
        ys = np.stack([np.interp(grid, x, y) for x, y in runs])
        mean = ys.mean(axis=0)
        shade = len(runs) > 1 and band != "none"
        what = ("" if not shade else ", ± 1 std" if band == "std" else ", min to max")
        (line,) = ax.plot(grid, mean, label=f"{label} (mean of {len(runs)} run"
                                            f"{'s' if len(runs) > 1 else ''}{what})")
        if shade:
            lo, hi = ((mean - ys.std(axis=0), mean + ys.std(axis=0)) if band == "std"
                      else (ys.min(axis=0), ys.max(axis=0)))
            ax.fill_between(grid, lo, hi, color=line.get_color(), alpha=0.2, linewidth=0)
    ax.set_xlabel("environment steps")
    train = labels.pop() if len(labels) == 1 else "training return per iteration"
    ax.set_ylabel({"ep_return_mean": train,
                   "eval_return_mean": "evaluation return"}.get(column, column), fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    png_path = os.fspath(png_path)
    folder = os.path.dirname(os.path.abspath(png_path))
    os.makedirs(folder, exist_ok=True)
    fig.savefig(png_path)
    return png_path
