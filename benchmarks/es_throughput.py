"""Policy-environment steps per second of neuroevolution with an LSTM policy on CartPole-v1.

    python benchmarks/es_throughput.py                  # rlstm rows, then EvoTorch if installed
    python benchmarks/es_throughput.py --workers 1 2 4 8 16 --generations 20

Every row runs OpenAI-ES-style generations of the same population (LSTM with 16 units, linear
readout, observation normalisation) from the same start and reports total env steps / wall
time, after one warm-up generation (process/actor start, env creation, noise table).

- ``serial``: one process; the whole population stepped in lockstep (one kernel call per step).
- ``serial, no batching``: one process; members evaluated one after the other (P = 1).
- ``process xN``: N local worker processes, one BLAS thread each.
- ``ray xN``: N Ray actors on a local Ray (when ``ray`` is installed).
- ``EvoTorch GymNE``: EvoTorch's neuroevolution problem with its ``LSTM(obs, 16) >>
  Linear(16, act)`` policy and SNES, in-process and with N Ray actors (the ``bench`` extra:
  ``pip install evotorch``; torch CPU, one thread).
"""
from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np

from agents.es import Evaluator, OpenAIES

ENV = "CartPole-v1"


class UnbatchedEvaluator(Evaluator):
    """Evaluates members one at a time (what a per-member policy loop does)."""

    def evaluate(self, payload, jobs):
        out = []
        for job in jobs:
            out += Evaluator.evaluate(self, payload, [job])
        return out


def bench_rlstm(backend: str, workers: int, generations: int, population: int,
                batched: bool = True) -> float:
    model = OpenAIES(ENV, seed=0, backend=backend, n_workers=workers,
                     population_size=population, center_episodes=0)
    if not batched:
        model._evaluator = lambda: UnbatchedEvaluator(  # noqa: E731
            model.env_fn, model.policy, model.noise.spec(), model.max_episode_steps, True)
    model.learn(1)  # warm-up generation
    steps0, t0 = model.num_timesteps, time.perf_counter()
    for _ in range(generations):
        model._generation()
    rate = (model.num_timesteps - steps0) / (time.perf_counter() - t0)
    model.close()
    return rate


def bench_evotorch(workers: int | None, generations: int, population: int) -> float:
    import torch
    from evotorch.algorithms import SNES
    from evotorch.neuroevolution import GymNE
    torch.set_num_threads(1)
    problem = GymNE(env=ENV, network="LSTM(obs_length, 16) >> Linear(16, act_length)",
                    observation_normalization=True, num_actors=workers)
    searcher = SNES(problem, popsize=population, stdev_init=0.05)
    searcher.step()  # warm-up generation
    steps0 = searcher.status["total_interaction_count"]
    t0 = time.perf_counter()
    for _ in range(generations):
        searcher.step()
    rate = (searcher.status["total_interaction_count"] - steps0) / (time.perf_counter() - t0)
    if workers:
        problem.kill_actors()
    return rate


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--generations", type=int, default=10)
    ap.add_argument("--population", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--skip-ray", action="store_true")
    ap.add_argument("--skip-evotorch", action="store_true")
    ap.add_argument("--skip-rlstm", action="store_true")
    args = ap.parse_args()

    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"population {args.population}, {args.generations} generations, LSTM(16), {ENV}, "
          f"best of {args.repeats}")
    try:
        import ray
    except ImportError:
        ray = None
    try:
        import evotorch  # noqa: F401
    except ImportError:
        evotorch = None
        print("EvoTorch not installed (pip install evotorch): skipped")
    G, P = args.generations, args.population
    cases = []
    if not args.skip_rlstm:
        cases.append(("rlstm serial", lambda: bench_rlstm("serial", 1, G, P)))
        cases.append(("rlstm serial, no batching",
                      lambda: bench_rlstm("serial", 1, G, P, batched=False)))
        for n in args.workers:
            cases.append((f"rlstm process x{n}", lambda n=n: bench_rlstm("process", n, G, P)))
        if ray is not None and not args.skip_ray:
            for n in args.workers:
                cases.append((f"rlstm ray x{n}", lambda n=n: bench_rlstm("ray", n, G, P)))
    if evotorch is not None and not args.skip_evotorch:
        cases.append(("EvoTorch GymNE in-process", lambda: bench_evotorch(None, G, P)))
        for n in args.workers:
            if n > 1:
                cases.append((f"EvoTorch GymNE ray x{n}", lambda n=n: bench_evotorch(n, G, P)))
    # repeats are interleaved and the best rate kept: other load on the machine only slows
    best = {name: 0.0 for name, _ in cases}
    for r in range(args.repeats):
        for name, fn in cases:
            rate = fn()
            best[name] = max(best[name], rate)
            print(f"  [{r + 1}/{args.repeats}] {name:30s} {rate:12,.0f} steps/s", flush=True)
    if ray is not None and ray.is_initialized():
        ray.shutdown()
    print()
    print(f"| {'configuration':32s} | {'env steps/s':>12s} |")
    print(f"|{'-' * 34}|{'-' * 14}|")
    rows = []
    for name, _ in cases:
        rows.append((name, best[name]))
        print(f"| {name:32s} | {best[name]:12,.0f} |")
    rates = dict(rows)
    if "rlstm process x1" in rates and "rlstm process x2" in rates:
        print(f"scaling 1 -> 2 processes: {rates['rlstm process x2'] / rates['rlstm process x1']:.2f}x")
    if "EvoTorch GymNE in-process" in rates and "rlstm serial" in rates:
        print(f"rlstm serial / EvoTorch in-process: "
              f"{rates['rlstm serial'] / rates['EvoTorch GymNE in-process']:.1f}x")
    if "rlstm serial, no batching" in rates:
        print(f"population batching: "
              f"{rates['rlstm serial'] / rates['rlstm serial, no batching']:.2f}x")


if __name__ == "__main__":
    main()
