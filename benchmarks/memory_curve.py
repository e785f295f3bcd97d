"""Learning curves on a task that needs long memory, against a memoryless baseline and sb3-contrib.

    python benchmarks/memory_curve.py --seeds 0 1 2 --out docs/img/delayed_recall.png
    python benchmarks/memory_curve.py --runs sb3 sb3-same --seeds 0 1 2 --json sb3.json
    python benchmarks/memory_curve.py --plot-only a.json b.json --out curve.png --json ab.json
    python benchmarks/memory_curve.py --table a.json b.json

Trains on ``--env`` (default ``rlstm/DelayedRecall-v0``: a cue, 30-80 steps of distractors, a
query) for ``--budget`` steps per seed and evaluates the deterministic policy every
``--eval-freq`` steps on ``--eval-episodes`` episodes (seeds 1000, 1001, ...; the final model
too). The runs (``--runs``):

* ``tuned``: rlstm's PPO with the settings of ``agents.hyperparams`` for the env (what
  ``rlstm train ppo ENV`` uses);
* ``defaults``: rlstm's PPO defaults;
* ``memoryless``: the tuned settings with ``policy_kwargs={"memoryless": True}``: the same
  network with its state zeroed before every step, the baseline without memory;
* ``sb3``: sb3-contrib's RecurrentPPO with its own defaults (``MlpLstmPolicy``,
  ``VecNormalize``) on 8 envs; ``sb3-same``: RecurrentPPO with the tuned settings, mapped as
  ``benchmarks/ppo_vs_sb3.py`` maps them. Both need ``pip install sb3-contrib`` (with CPU
  torch), the ``bench`` extra.

``--set key=value`` changes a PPO setting of the rlstm runs (to measure an option).
Everything runs on one thread. It prints each evaluation, the final evaluation (mean of the
last two) per seed and the first step at which each seed reached ``--threshold`` (default the
env's ``reward_threshold``), writes the curves to ``--json`` (default: the ``--out`` PNG's name
with ``.json``), and draws them, the mean over the seeds with a min-max band, to ``--out``.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

RUNS = ("tuned", "defaults", "memoryless", "sb3", "sb3-same")


def rlstm_settings(run: str, env: str, overrides: dict) -> dict:
    from agents.hyperparams import tuned
    settings = {} if run == "defaults" else tuned("ppo", env)[0]
    settings.update(overrides)
    if run == "memoryless":
        settings["policy_kwargs"] = {**settings.get("policy_kwargs", {}), "memoryless": True}
    return settings


def run_rlstm(run, seed, args):
    from agents import PPO, EvalCallback, evaluate
    settings = rlstm_settings(run, args.env, args.overrides)
    cb = EvalCallback(args.env, eval_freq=args.eval_freq, n_episodes=args.eval_episodes,
                      seed=1_000, verbose=0)
    t0 = time.perf_counter()
    model = PPO(args.env, seed=seed, **settings)
    model.learn(args.budget, callback=cb)
    wall = time.perf_counter() - t0
    curve = [(int(s), float(m)) for s, m, _ in cb.results]
    if not curve or curve[-1][0] != model.num_timesteps:
        curve.append((model.num_timesteps,
                      evaluate(model, args.env, args.eval_episodes, True, seed=1_000)[0]))
    model.close()
    return curve, wall, settings


def _span(values) -> str:
    """``"84–112"`` (min–max, rounded), or one number when they round alike."""
    lo, hi = f"{min(values):,.0f}", f"{max(values):,.0f}"
    return lo if lo == hi else f"{lo}–{hi}"


def run_sb3(run, seed, args):
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.evaluation import evaluate_policy

    from benchmarks.ppo_vs_sb3 import sb3_recurrent_ppo
    settings = None if run == "sb3" else rlstm_settings("tuned", args.env, args.overrides)
    model, venv, eval_env = sb3_recurrent_ppo(args.env, seed, settings, threads=1)

    def evaluate_now():
        eval_env.obs_rms = venv.obs_rms
        return float(evaluate_policy(model, eval_env, n_eval_episodes=args.eval_episodes,
                                     deterministic=True)[0])

    class Probe(BaseCallback):
        def __init__(self):
            super().__init__()
            self.next, self.curve = args.eval_freq, []

        def _on_step(self):
            if self.num_timesteps >= self.next:
                self.next = self.num_timesteps + args.eval_freq
                self.curve.append((int(self.num_timesteps), evaluate_now()))
            return True

    probe = Probe()
    t0 = time.perf_counter()
    model.learn(args.budget, callback=probe)
    wall = time.perf_counter() - t0
    curve = probe.curve
    if not curve or curve[-1][0] != model.num_timesteps:
        curve.append((int(model.num_timesteps), evaluate_now()))
    return curve, wall, settings or "RecurrentPPO defaults"


def label(run: str, settings) -> str:
    if run == "sb3":
        return "sb3-contrib RecurrentPPO, its defaults"
    if run == "sb3-same":
        return "sb3-contrib RecurrentPPO, the tuned settings"
    if run == "defaults":
        return "rlstm PPO, defaults"
    keys = ("n_steps", "seq_len", "refresh_states")
    parts = [f"{k}={settings[k]}" for k in keys if k in settings]
    core = settings.get("policy_kwargs", {}).get("core_kwargs", {})
    if "forget_bias" in core:
        parts.append(f"forget_bias={core['forget_bias']:g}")
    what = ", ".join(parts)
    if run == "memoryless":
        return f"rlstm PPO, memoryless ({what})" if what else "rlstm PPO, memoryless"
    return f"rlstm PPO, tuned ({what})" if what else "rlstm PPO, tuned"


def plot(data: dict, out: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6.4, 3.6), dpi=100)
    for run, entry in data["runs"].items():
        curves = [c for c in entry["curves"].values()]
        n = min(len(c) for c in curves)
        steps = np.array([s for s, _ in curves[0][:n]])
        values = np.array([[m for _, m in c[:n]] for c in curves])
        (line,) = ax.plot(steps, values.mean(axis=0),
                          label=f"{entry['label']} ({len(curves)} seeds)")
        ax.fill_between(steps, values.min(axis=0), values.max(axis=0), alpha=0.15,
                        color=line.get_color(), linewidth=0)
    if data.get("threshold") is not None:
        ax.axhline(data["threshold"], color="grey", linestyle="--", linewidth=0.8)
    ax.set_xlabel("environment steps")
    ax.set_ylabel(f"mean return ({data['eval_episodes']} det. episodes)")
    ax.set_title(data["title"], fontsize=10)
    ax.legend(fontsize=7, loc="center right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)


def table(paths: list[str]) -> str:
    """The Markdown table of docs/agents.md from result files: one row per run (its label
    from its settings), per seed the first evaluation at or above the threshold and the final
    evaluation (the mean of the last two), the mean return of the seeds at 100k and 250k
    steps (the last evaluation at or before), and the wall-clock per run."""
    lines = ["| run | seeds | first eval ≥ threshold at (steps) | mean at 100k | mean at 250k "
             "| final eval (mean of the last two) | wall-clock per run |",
             "|---|---|---|---|---|---|---|"]
    for path in paths:
        with open(path) as f:
            data = json.load(f)
        threshold = data["threshold"]
        for run, entry in data["runs"].items():
            settings = entry["settings"]
            name = label(run, settings if isinstance(settings, dict) else {})
            seeds = sorted(entry["curves"], key=int)
            curves = [entry["curves"][k] for k in seeds]

            def at(curve, step):
                before = [m for s, m in curve if s <= step]
                return before[-1] if before else float("nan")
            firsts = [next((s for s, m in c if m >= threshold), None) for c in curves]
            finals = [float(np.mean([m for _, m in c[-2:]])) for c in curves]
            walls = [entry["wall"][k] for k in seeds]
            lines.append(
                f"| {name} | {', '.join(seeds)} "
                f"| {' / '.join('—' if f is None else f'{f:,}' for f in firsts)} "
                f"| {np.mean([at(c, 100_000) for c in curves]):.2f} "
                f"| {np.mean([at(c, 250_000) for c in curves]):.2f} "
                f"| {' / '.join(f'{f:.2f}' for f in finals)} "
                f"| {_span(walls)} s |")
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--env", default="rlstm/DelayedRecall-v0")
    p.add_argument("--runs", nargs="+", choices=RUNS, default=["tuned", "defaults",
                                                                "memoryless"])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--budget", type=int, default=500_000)
    p.add_argument("--eval-freq", type=int, default=25_000)
    p.add_argument("--eval-episodes", type=int, default=100)
    p.add_argument("--threshold", type=float, default=None)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="change a PPO setting of the rlstm runs, e.g. --set n_steps=128")
    p.add_argument("--out", default=None, help="the PNG to draw (none if not given)")
    p.add_argument("--json", default=None, help="where to write the curves")
    p.add_argument("--plot-only", nargs="+", default=None, metavar="JSON",
                   help="draw --out from curves this script wrote (several files: their runs "
                        "together), without training")
    p.add_argument("--table", nargs="+", default=None, metavar="JSON",
                   help="print the Markdown table of these result files and exit")
    args = p.parse_args(argv)
    if args.table:
        print(table(args.table))
        return 0
    if args.plot_only:
        data = None
        for path in args.plot_only:
            with open(path) as f:
                part = json.load(f)
            if data is None:
                data = part
            else:
                data["runs"].update(part["runs"])
        if args.json:
            with open(args.json, "w") as f:
                json.dump(data, f, indent=1)
        plot(data, args.out or os.path.splitext(args.plot_only[0])[0] + ".png")
        return 0
    import gymnasium as gym
    from threadpoolctl import threadpool_limits

    import agents  # noqa: F401  (registers the rlstm/ envs)
    from agents.cli import parse_overrides
    from agents.ppo import PPOConfig
    args.overrides = parse_overrides(args.set, PPOConfig)
    threshold = args.threshold
    if threshold is None:
        threshold = gym.spec(args.env).reward_threshold
    json_path = args.json or (os.path.splitext(args.out)[0] + ".json" if args.out else None)
    data = {"env": args.env, "budget": args.budget, "eval_freq": args.eval_freq,
            "eval_episodes": args.eval_episodes, "threshold": threshold, "seeds": args.seeds,
            "title": f"{args.env}, {args.budget:,} steps", "runs": {}}
    with threadpool_limits(1):
        for run in args.runs:
            runner = run_sb3 if run.startswith("sb3") else run_rlstm
            entry = None
            for seed in args.seeds:
                curve, wall, settings = runner(run, seed, args)
                if entry is None:
                    entry = data["runs"][run] = {"label": label(run, settings),
                                                 "settings": settings, "curves": {},
                                                 "wall": {}}
                entry["curves"][str(seed)] = curve
                entry["wall"][str(seed)] = wall
                final = float(np.mean([m for _, m in curve[-2:]]))
                first = next((s for s, m in curve if threshold is not None and m >= threshold),
                             None)
                print(f"{run} seed {seed}: final {final:.3f} (mean of the last two), first >= "
                      f"{threshold} at {first}, {wall:.0f} s wall; curve "
                      f"{[(s, round(m, 2)) for s, m in curve]}", flush=True)
            if json_path:  # after every run, so a long job keeps what it has done
                with open(json_path, "w") as f:
                    json.dump(data, f, indent=1)
    if args.out:
        plot(data, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
