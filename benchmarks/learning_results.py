"""Learning results of any registered trainer (the README's and docs' learning tables).

    python benchmarks/learning_results.py ppo rlstm/CartPoleNoVel-v1 --seeds 0 1 2 3 4
    python benchmarks/learning_results.py ppo rlstm/MountainCarContinuousNoVel-v0 --seeds 0 1 2
    python benchmarks/learning_results.py es CartPole-v1 --seeds 0 1 2 --budget 300000

Trains ALGO on ENV from each seed with one BLAS thread, with the tuned settings and budget of
``agents.hyperparams`` for the pair (the trainer's defaults when there are none; ``--no-tuned``
forces the defaults, ``--budget`` replaces the budget, ``--set`` changes a field on top).
Every ``--eval-freq`` steps it evaluates the deterministic policy (``--episodes`` episodes,
seeds 1000, 1001, ...), and the final model too. Per seed it prints:

* **first**: the first step at which the mean evaluation return reached the threshold
  (``--threshold``, default the env's ``reward_threshold``);
* **final**: the mean of the last two evaluations (the last one during training and the
  final model's), the figure the learning tables report as "final evaluation";
* **model**: the final model's evaluation alone;
* the training wall-clock and CPU time to the first evaluation at or above the threshold
  (evaluations left out) and of the whole run (evaluations included, the final one not).
  Time figures are only comparable between runs on an otherwise idle machine.

The summary line counts the seeds whose final evaluation is at or above the threshold.
``--jobs N`` runs N seeds at a time in worker processes (the numbers are the same, the
wall-clock is not); ``--json PATH`` writes every seed's evaluation curve.
"""
import argparse
import json
import os
import sys
import time

import gymnasium as gym
import numpy as np
from threadpoolctl import threadpool_limits

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from agents import TRAINERS, EvalCallback, evaluate  # noqa: E402
from agents.hyperparams import tuned  # noqa: E402


def run_seed(algo, env, seed, settings, budget, freq, episodes, threshold, imports=()):
    """One training run; returns a dict with the evaluation curve and the summary figures."""
    import importlib
    for module in imports:
        importlib.import_module(module)
    cls = TRAINERS[algo]
    cb = TimedEval(env, eval_freq=freq, n_episodes=episodes, seed=1_000)
    t0, c0 = time.perf_counter(), time.process_time()
    with threadpool_limits(1):
        model = cls(env, seed=seed, **settings)
        model.learn(budget, callback=cb)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        results = list(cb.results)
        if not results or results[-1][0] != model.num_timesteps:  # the final model too
            results.append((model.num_timesteps,
                            *evaluate(model, env, episodes, True, seed=1_000)))
        model.close()
    hit = (None if threshold is None else
           next((k for k, (_, mean, _) in enumerate(cb.results) if mean >= threshold), None))
    first = None if hit is None else cb.results[hit][0]
    final = float(np.mean([m for _, m, _ in results[-2:]]))
    return {"seed": seed, "first": first, "final": final, "model": results[-1][1],
            "model_std": results[-1][2], "steps": results[-1][0], "wall": wall, "cpu": cpu,
            "first_wall": None if hit is None else cb.times[hit][0],
            "first_cpu": None if hit is None else cb.times[hit][1],
            "curve": [(int(s), float(m), float(sd)) for s, m, sd in results]}


class TimedEval(EvalCallback):
    """EvalCallback that also records, at each evaluation, the training wall-clock and CPU
    time so far (the time spent evaluating left out) in ``times``."""

    def on_training_start(self, model) -> None:
        super().on_training_start(model)
        self.times, self._eval = [], (0.0, 0.0)
        self._t0 = (time.perf_counter(), time.process_time())

    def on_iteration(self, model) -> bool:
        n, t = len(self.results), (time.perf_counter(), time.process_time())
        keep_going = super().on_iteration(model)
        if len(self.results) > n:
            done = (time.perf_counter(), time.process_time())
            self.times.append(tuple(a - b - e for a, b, e in zip(t, self._t0, self._eval)))
            self._eval = tuple(e + d - a for e, d, a in zip(self._eval, done, t))
        return keep_going


def _run_star(kw):
    return run_seed(**kw)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("algo", choices=sorted(TRAINERS))
    p.add_argument("env")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    p.add_argument("--budget", type=int, default=None)
    p.add_argument("--eval-freq", type=int, default=None,
                   help="steps between evaluations (default: budget / 20, at least 5000)")
    p.add_argument("--episodes", type=int, default=10,
                   help="deterministic episodes per evaluation (default 10)")
    p.add_argument("--threshold", type=float, default=None)
    p.add_argument("--no-tuned", action="store_true")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config field on top of the settings, e.g. --set vf_coef=1")
    p.add_argument("--jobs", type=int, default=1,
                   help="seeds run at a time, in worker processes (default 1)")
    p.add_argument("--json", default=None, metavar="PATH",
                   help="write every seed's results and evaluation curve to PATH")
    p.add_argument("--import", dest="imports", action="append", default=[],
                   metavar="MODULE", help="import MODULE first (envs it registers)")
    args = p.parse_args(argv)
    import importlib
    for module in args.imports:
        importlib.import_module(module)
    from agents.cli import parse_overrides
    cls = TRAINERS[args.algo]
    settings, budget = ({}, None) if args.no_tuned else tuned(args.algo, args.env)
    settings.update(parse_overrides(args.set, cls.config_class))
    budget = args.budget or budget or cls.default_timesteps
    freq = args.eval_freq or max(5_000, budget // 20)
    threshold = args.threshold
    if threshold is None:
        threshold = gym.spec(args.env).reward_threshold
    print(f"{args.algo} on {args.env}, budget {budget}, settings {settings or 'defaults'}, "
          f"threshold {threshold}, eval every {freq} steps ({args.episodes} episodes), "
          f"1 BLAS thread", flush=True)
    jobs = [dict(algo=args.algo, env=args.env, seed=s, settings=settings, budget=budget,
                 freq=freq, episodes=args.episodes, threshold=threshold,
                 imports=tuple(args.imports)) for s in args.seeds]
    if args.jobs > 1:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor
        with ProcessPoolExecutor(min(args.jobs, len(jobs)),
                                 mp_context=mp.get_context("spawn")) as pool:
            runs = [_report(r, threshold) for r in pool.map(_run_star, jobs)]
    else:
        runs = [_report(run_seed(**kw), threshold) for kw in jobs]
    finals = [r["final"] for r in runs]
    line = (f"final evaluations (mean of the last two): {' / '.join(f'{f:.0f}' for f in finals)}"
            f", mean {np.mean(finals):.1f}")
    if threshold is not None:
        line += (f"; {sum(f >= threshold for f in finals)} of {len(finals)} seeds "
                 f">= {threshold:g}; first >= {threshold:g} at "
                 + " / ".join("—" if r["first"] is None else f"{r['first']:,}" for r in runs))
    print(line)
    print("final models: " + " / ".join(f"{r['model']:.0f}" for r in runs))
    hits = [r for r in runs if r["first"] is not None]
    if hits:
        print(f"to the threshold (the {len(hits)} seeds that reach it): median "
              f"{np.median([r['first'] for r in hits]):,.0f} steps, "
              f"{np.median([r['first_wall'] for r in hits]):.1f} s wall, "
              f"{np.median([r['first_cpu'] for r in hits]):.1f} s CPU of training "
              f"(evaluations left out)")
    print(table_row(args.algo, args.env, budget, runs, threshold))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"algo": args.algo, "env": args.env, "budget": budget,
                       "settings": settings, "threshold": threshold, "eval_freq": freq,
                       "episodes": args.episodes, "runs": runs}, f, indent=1)


def _steps(n) -> str:
    return f"{n / 1e6:g}M" if n >= 1_000_000 else f"{n / 1000:g}k"


def _value(x: float) -> str:
    return f"{x:.0f}" if abs(x) >= 10 else f"{x:.1f}"


def table_row(algo, env, budget, runs, threshold) -> str:
    """The README's learning-table row: task, algorithm, budget, seeds, the first evaluation
    at or above the threshold per seed, the final evaluation per seed (how many at or above
    the threshold), and the range of the runs' training CPU time (evaluations included)."""
    seeds = [r["seed"] for r in runs]
    firsts = " / ".join("—" if r["first"] is None else f"{r['first']:,}" for r in runs)
    finals = " / ".join(_value(r["final"]) for r in runs)
    if threshold is not None:
        finals += f" ({sum(r['final'] >= threshold for r in runs)} of {len(runs)} ≥ {threshold:g})"
    cpu = [r["cpu"] for r in runs]
    task = env if "/" not in env else f"`{env}`"
    return (f"| {task} | {algo.upper()} "
            f"| {_steps(budget)} | {', '.join(map(str, seeds))} | {firsts} | {finals} "
            f"| {min(cpu):.0f}–{max(cpu):.0f} s |")


def _report(r, threshold):
    last = " / ".join(f"{m:.0f}" for _, m, _ in r["curve"][-2:])
    at = "" if r["first_cpu"] is None else \
        f" ({r['first_wall']:.1f} s wall, {r['first_cpu']:.1f} s CPU of training)"
    print(f"seed {r['seed']}: first >= {threshold} at {r['first']}{at}, final {r['final']:.1f} "
          f"(last two: {last}), final model {r['model']:.1f} +/- {r['model_std']:.1f} at "
          f"{r['steps']}, {r['wall']:.0f} s wall ({r['cpu']:.0f} s CPU)", flush=True)
    return r


if __name__ == "__main__":
    main()
