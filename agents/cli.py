"""The ``rlstm`` command line.

    rlstm train [ALGO] [ENV] [--timesteps N] [--seed S] [--out DIR] [--set key=value ...]
                [--no-tuned]
                [--overwrite] [--eval-freq N] [--import MODULE] [--resume PATH]
    rlstm evaluate PATH [ENV] [--episodes N] [--render out.gif]
    rlstm plot RUN_DIR... [--out runs.png] [--group-by run|name|none] [--band std|minmax|none]
    rlstm export MODEL --format onnx|c --out PATH [--check]
    rlstm bench [...]

``rlstm train`` with no arguments trains recurrent PPO on the velocity-masked CartPole
(``rlstm/CartPoleNoVel-v1``, 100k steps) with a progress bar, then writes ``model.rlstm``,
``progress.csv`` and ``learning_curve.png`` under ``--out`` (default
``runs/<algo>-<env>-<seed>``) and prints the final evaluation. A new run never appends to or
overwrites another: a used folder gives ``..._2``, ``..._3`` (``--overwrite`` reuses it,
``--resume`` continues in the resumed run's folder), and a run that fails before it has
saved anything leaves no folder behind.

For an (ALGO, ENV) pair listed in :mod:`agents.hyperparams` the tuned settings and budget are
the starting point (``--set`` and ``--timesteps`` override them, ``--no-tuned`` ignores them).

Algorithms are looked up in :data:`agents.TRAINERS` (name -> trainer class); a trainer class
sets ``default_timesteps`` and ``default_env``. ``--set key=value`` values are typed by the
config field: ``true/false/True/False/1/0`` for a bool, a number for a number field,
``none`` for an optional one, ``[64, 64]`` for a list, JSON for a dict; anything else is an
error that names the field.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from typing import Sequence

import gymnasium as gym

from rlstm.validation import config_hints, parse_value, unknown_keys_error

__all__ = ["main", "load_algorithm", "load_model", "parse_overrides"]

DEFAULT_ENV = "rlstm/CartPoleNoVel-v1"
DEFAULT_TIMESTEPS = 100_000


def load_algorithm(name: str):
    """The trainer class registered in :data:`agents.TRAINERS` as ``name``
    (case-insensitive)."""
    from agents import TRAINERS
    key = name.lower()
    if key not in TRAINERS:
        raise ValueError(f"unknown algorithm {name!r}; choose one of "
                         f"{', '.join(sorted(TRAINERS))}")
    return TRAINERS[key]


def load_model(path: str, env=None):
    """Load any saved trainer: the file's header says which class it is."""
    from agents import TRAINERS
    from rlstm.io import read
    _, header = read(path)
    kind = header.get("kind")
    for cls in TRAINERS.values():
        if cls.__name__ == kind:
            return cls.load(path, env=env)
    names = ", ".join(sorted(c.__name__ for c in TRAINERS.values()))
    raise ValueError(f"{path} holds a {kind!r}, not a trainer ({names})")


def parse_overrides(items: Sequence[str], config_class) -> dict:
    """``["key=value", ...]`` (``--set`` arguments) -> ``{key: value}``, each value typed by
    ``config_class``'s field (:func:`rlstm.validation.parse_value`). An unknown key or a value
    that does not fit its field is a ``ValueError``/``TypeError`` that names it."""
    hints = config_hints(config_class)
    names = {f.name for f in dataclasses.fields(config_class)}
    out = {}
    for item in items:
        if "=" not in item:
            raise ValueError(f"--set expects key=value (e.g. --set n_envs=4), got {item!r}")
        key, value = item.split("=", 1)
        key = key.strip().replace("-", "_")
        if key not in names:
            raise unknown_keys_error(config_class.__name__, [key], names)
        out[key] = parse_value(f"{config_class.__name__}.{key}", value, hints[key])
    return out


RUN_FILES = ("model.rlstm", "checkpoint.rlstm", "best_model.rlstm", "progress.csv",
             "learning_curve.png", "run.json")


def _is_run_file(name: str) -> bool:
    return name in RUN_FILES or name.startswith("events.out.tfevents.")


def claim_run_folder(out: str, overwrite: bool = False) -> tuple[str, bool]:
    """The folder a new run writes to, and whether this call created it.

    ``out`` itself when it does not exist or is empty; else ``out_2``, ``out_3``, ... (the
    first that does not exist), so a new run never appends to or overwrites another. With
    ``overwrite``, ``out`` is used and the run files an earlier run left there are deleted
    first (nothing else in the folder is touched)."""
    if os.path.exists(out) and not os.path.isdir(out):
        raise ValueError(f"--out {out!r} is a file, not a folder")
    if overwrite and os.path.isdir(out):
        for name in os.listdir(out):
            if _is_run_file(name):
                os.remove(os.path.join(out, name))
        return out, False
    if os.path.isdir(out) and not os.listdir(out):
        return out, False
    candidate, n = out, 1
    while True:
        try:
            os.makedirs(candidate)  # atomic claim: two runs never get the same folder
            return candidate, True
        except FileExistsError:
            n += 1
            candidate = f"{out.rstrip(os.sep)}_{n}"


def _import_modules(names) -> None:
    import importlib
    for name in names:
        try:
            importlib.import_module(name)
        except ImportError as e:
            raise ImportError(f"--import {name}: {e}") from e


def _train(args) -> int:
    import json
    import shutil

    from .evaluation import evaluate
    from .logger import plot_learning_curve

    _import_modules(args.imports)
    cls = load_algorithm(args.algo)
    from .hyperparams import tuned

    seed = args.seed
    if args.resume:  # a resumed run continues on its own env, with its own seed
        from rlstm.io import read
        saved = read(args.resume, cls.__name__)[1].get("trainer") or {}
        env = args.env or saved.get("env_id")
        if env is None:
            raise ValueError(f"{args.resume} was trained on an env given as a callable; pass "
                             f"its Gymnasium id: rlstm train {args.algo} ENV --resume ...")
        seed = saved.get("seed") if args.seed is None else args.seed
    else:
        env = args.env or getattr(cls, "default_env", DEFAULT_ENV)
        seed = 0 if seed is None else seed
    from .env_factory import make_env_fn
    make_env_fn(env)  # the id is checked after --import and a module: prefix are imported
    # a resumed run keeps the settings saved in its checkpoint
    preset, preset_steps = ({}, None) if (args.no_tuned or args.resume) else tuned(args.algo,
                                                                                   env)
    timesteps = (args.timesteps or preset_steps
                 or getattr(cls, "default_timesteps", DEFAULT_TIMESTEPS))
    overrides = {**preset, **parse_overrides(args.set, cls.config_class)}
    if args.checkpoint_freq:
        overrides["checkpoint_freq"] = args.checkpoint_freq
    if args.resume:  # a resumed run continues in its own folder unless told otherwise
        out = args.out or os.path.dirname(os.path.abspath(args.resume))
        os.makedirs(out, exist_ok=True)
        created = False
    else:
        name = f"{args.algo.lower()}-{env.replace('/', '-').replace(':', '-')}-{seed}"
        out, created = claim_run_folder(args.out or os.path.join("runs", name),
                                        args.overwrite)
    overrides["log_dir"] = out
    try:
        if args.resume:
            model = cls.load(args.resume, env=env, **overrides)
        else:
            model = cls(env, seed=seed, **overrides)
        if preset:
            print(f"rlstm: tuned settings for {args.algo.lower()} on {env} "
                  f"(agents.hyperparams; --no-tuned to ignore): {preset}")
        print(f"rlstm: training {cls.__name__} on {env} for {timesteps} steps (seed {seed}); "
              f"writing to {out}")
        _write_run_json(out, args, cls, env, seed, timesteps, overrides, json)
        callback = None
        if args.eval_freq:
            from .callbacks import EvalCallback
            callback = EvalCallback(env, eval_freq=args.eval_freq,
                                    n_eval_episodes=args.eval_episodes,
                                    seed=20_000 + (seed or 0), best_model_save_path=out)
        model.learn(timesteps, progress_bar=not args.no_progress, callback=callback)
    except KeyboardInterrupt:
        print(f"\nrlstm: interrupted; the last checkpoint is in {out}", file=sys.stderr)
        return 130
    except BaseException:
        # a failed start leaves nothing behind; a run that got far enough keeps its checkpoint
        if created and not any(n.endswith(".rlstm") for n in os.listdir(out)):
            shutil.rmtree(out, ignore_errors=True)
        raise
    model_path = os.path.join(out, "model.rlstm")
    model.save(model_path)
    csv_path = os.path.join(out, "progress.csv")
    if os.path.exists(csv_path):
        png = plot_learning_curve(csv_path, os.path.join(out, "learning_curve.png"),
                                  title=f"{cls.__name__} on {env} (seed {seed})",
                                  label=cls.curve_label)
        print(f"rlstm: learning curve -> {png}")
    print(f"rlstm: model -> {model_path}")
    if args.eval_freq and os.path.exists(os.path.join(out, "best_model.rlstm")):
        print(f"rlstm: best model -> {os.path.join(out, 'best_model.rlstm')} (mean evaluation "
              f"return {callback.best_mean:.2f})")
    mean, std = evaluate(model, env, n_episodes=args.eval_episodes, deterministic=True,
                         seed=10_000 + (seed or 0))
    print(f"rlstm: final evaluation over {args.eval_episodes} episodes: "
          f"{mean:.2f} +/- {std:.2f}")
    if hasattr(model, "close"):
        model.close()
    return 0


def _write_run_json(out, args, cls, env, seed, timesteps, overrides, json) -> None:
    """``run.json``: what the run is (read by ``rlstm plot`` to group runs). A resumed run
    adds its segment to the list."""
    import rlstm
    path = os.path.join(out, "run.json")
    segment = {"algo": args.algo.lower(), "trainer": cls.__name__, "env": env, "seed": seed,
               "curve_label": cls.curve_label,
               "timesteps": timesteps, "resume": args.resume,
               "settings": {k: v for k, v in overrides.items() if k != "log_dir"},
               "rlstm": getattr(rlstm, "__version__", None)}
    info = {"algo": segment["algo"], "env": env, "seed": seed,
            "curve_label": cls.curve_label, "segments": []}
    if args.resume and os.path.exists(path):
        try:
            with open(path) as f:
                old = json.load(f)
            if isinstance(old, dict) and isinstance(old.get("segments"), list):
                info = {**old, "segments": old["segments"]}
        except (OSError, ValueError):
            pass
    info["segments"].append(segment)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(info, f, indent=1, default=str)
    os.replace(tmp, path)


def _plot(args) -> int:
    from .logger import plot_runs
    png = plot_runs(args.runs, args.out, group_by=args.group_by, band=args.band,
                    column=args.column, title=args.title)
    print(f"rlstm: {len(args.runs)} runs -> {png}")
    return 0


def _evaluate(args) -> int:
    from .env_factory import make_env_fn
    from .evaluation import evaluate

    _import_modules(args.imports)
    model = load_model(args.path)
    env = args.env or getattr(model, "env_id", None)
    if env is None:
        raise ValueError("the model was trained on an env given as a callable; pass the "
                         "Gymnasium id: rlstm evaluate PATH ENV")
    mean, std = evaluate(model, env, n_episodes=args.episodes,
                         deterministic=not args.stochastic, seed=args.seed)
    print(f"{args.path} on {env}: {mean:.2f} +/- {std:.2f} over {args.episodes} episodes")
    if args.render:
        make_env_fn(env)  # validates the id
        return _render(model, env, args.render, args.seed, not args.stochastic)
    return 0


def _render(model, env_name: str, path: str, seed, deterministic: bool) -> int:
    try:
        import imageio
    except ImportError:
        print("rlstm: --render needs imageio: pip install imageio (and imageio-ffmpeg for "
              ".mp4)", file=sys.stderr)
        return 2
    import gymnasium as gym
    import numpy as np
    try:
        env = gym.make(env_name, render_mode="rgb_array")
    except Exception as e:  # noqa: BLE001 - envs raise many kinds for render modes
        print(f"rlstm: {env_name} cannot render rgb_array frames: {e}", file=sys.stderr)
        return 2
    frames = []
    obs, _ = env.reset(seed=seed)
    state, start, done = None, True, False
    while not done:
        frame = env.render()
        if frame is None:
            print(f"rlstm: {env_name} returned no rgb_array frame", file=sys.stderr)
            return 2
        frames.append(np.asarray(frame))
        action, state = model.predict(obs, state, np.array([start]), deterministic)
        obs, _, terminated, truncated, _ = env.step(action)
        start, done = False, terminated or truncated
    env.close()
    fps = env.metadata.get("render_fps", 30) or 30
    if path.lower().endswith(".gif"):
        imageio.mimsave(path, frames, duration=1000 / fps, loop=0)
    else:
        imageio.mimsave(path, frames, fps=fps)
    print(f"rlstm: {len(frames)} frames -> {path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="rlstm", description="Recurrent RL on the CPU with rlstm.")
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train an agent (default: PPO on rlstm/CartPoleNoVel-v1)")
    from agents import TRAINERS
    t.add_argument("algo", nargs="?", default="ppo",
                   help=f"algorithm: {', '.join(TRAINERS)} (default ppo)")
    t.add_argument("env", nargs="?", default=None, help=f"Gymnasium id (default {DEFAULT_ENV})")
    budgets: dict[int, list[str]] = {}
    for name, cls in TRAINERS.items():
        budgets.setdefault(getattr(cls, "default_timesteps", DEFAULT_TIMESTEPS), []).append(name)
    t.add_argument("--timesteps", type=int, default=None,
                   help="environment steps (default: the tuned budget of agents.hyperparams "
                        "for ALGO on ENV, else " + "; ".join(
                            f"{steps} for {', '.join(names)}"
                            for steps, names in sorted(budgets.items())) + ")")
    t.add_argument("--seed", type=int, default=None,
                   help="seed (default 0; with --resume, the saved run's)")
    t.add_argument("--out", default=None, help="output folder (default runs/ALGO-ENV-SEED)")
    t.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config field, e.g. --set n_envs=4 --set learning_rate=3e-4")
    t.add_argument("--eval-episodes", type=int, default=10)
    t.add_argument("--checkpoint-freq", type=int, default=0,
                   help="also checkpoint every N steps (always at the end and on Ctrl-C)")
    t.add_argument("--resume", default=None, metavar="PATH",
                   help="continue from a saved model or checkpoint")
    t.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    t.add_argument("--no-tuned", action="store_true",
                   help="ignore the tuned settings of agents.hyperparams for this algo and env")
    t.add_argument("--overwrite", action="store_true",
                   help="reuse --out, deleting the run files an earlier run left there "
                        "(default: a new run in a used folder goes to OUT_2, OUT_3, ...)")
    t.add_argument("--eval-freq", type=int, default=0, metavar="N",
                   help="evaluate every N steps (--eval-episodes episodes) and keep the best "
                        "as OUT/best_model.rlstm")
    t.add_argument("--import", dest="imports", action="append", default=[], metavar="MODULE",
                   help="import MODULE first (a package that registers its envs, e.g. "
                        "--import popgym); 'MODULE:ID' as ENV does the same")
    t.set_defaults(func=_train)

    pl = sub.add_parser("plot", help="draw several runs on one figure (mean and band per "
                                     "group)")
    pl.add_argument("runs", nargs="+", metavar="RUN_DIR",
                    help="run folders (each with a progress.csv)")
    pl.add_argument("--out", default="runs.png", help="image to write (default runs.png)")
    pl.add_argument("--group-by", choices=("run", "name", "none"), default="run",
                    help="group runs by their algorithm and env from run.json ('run', the "
                         "default; folder name less its seed and _N suffix where there is "
                         "none), by folder name only ('name'), or draw each run alone "
                         "('none')")
    pl.add_argument("--band", choices=("std", "minmax", "none"), default="std",
                    help="band around each group's mean (default: +/- one std over runs)")
    pl.add_argument("--column", default="ep_return_mean",
                    help="progress.csv column to draw (default ep_return_mean; "
                         "eval_return_mean draws the evaluations)")
    pl.add_argument("--title", default=None)
    pl.set_defaults(func=_plot)

    e = sub.add_parser("evaluate", help="evaluate a saved model")
    e.add_argument("path")
    e.add_argument("env", nargs="?", default=None, help="Gymnasium id (default: the saved one)")
    e.add_argument("--import", dest="imports", action="append", default=[], metavar="MODULE",
                   help="import MODULE first (a package that registers its envs)")
    e.add_argument("--episodes", type=int, default=10)
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--stochastic", action="store_true", help="sample actions")
    e.add_argument("--render", default=None, metavar="OUT.gif",
                   help="save one episode as a GIF or MP4 (needs imageio)")
    e.set_defaults(func=_evaluate)

    x = sub.add_parser("export", help="export a model to ONNX or C (rlstm export --help)",
                       add_help=False)
    x.set_defaults(func=None)
    b = sub.add_parser("bench", help="benchmarks (rlstm.benchmark)", add_help=False)
    b.set_defaults(func=None)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "bench":
        from rlstm import benchmark  # imported only when asked for
        result = benchmark.main(argv[1:])
        return result if isinstance(result, int) else 0
    if argv and argv[0] == "export":
        from rlstm.export.cli import main as export_main
        return export_main(argv[1:])
    args = build_parser().parse_args(argv)
    try:
        if args.command == "train" and args.timesteps is not None and args.timesteps < 1:
            raise ValueError("--timesteps must be >= 1")
        if args.command == "train" and args.eval_freq < 0:
            raise ValueError("--eval-freq must be >= 0")
        if args.command == "evaluate" and args.episodes < 1:
            raise ValueError("--episodes must be >= 1")
        return args.func(args)
    except (ValueError, TypeError, FileNotFoundError, ImportError, RuntimeError,
            gym.error.Error) as e:
        if os.environ.get("RLSTM_TRACEBACK"):
            raise
        print(f"rlstm: {_first_line(e)}", file=sys.stderr)
        return 2


def _first_line(error: BaseException) -> str:
    """The error in one line; for a missing optional dependency, the install hint first."""
    text = " ".join(str(error).split()) or type(error).__name__
    if isinstance(error, gym.error.DependencyNotInstalled):
        hint = next((p for p in str(error).replace("`", "").split(". ") if "pip install" in p),
                    None)
        return f"{hint.strip()} ({type(error).__name__})" if hint else text
    return text


if __name__ == "__main__":
    sys.exit(main())
