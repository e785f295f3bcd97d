"""Policy-environment steps per second of neuroevolution with an LSTM policy on CartPole-v1.

    python benchmarks/es_throughput.py                  # rlstm rows, then EvoTorch if installed
    python benchmarks/es_throughput.py --workers 1 2 4 8 16 --generations 20

Two kinds of rows, all with an LSTM of 16 units, a linear readout and observation
normalisation:

- Backend rows evaluate one FIXED population: ``--population`` perturbations of a half-trained
  center (100k steps of OpenAI-ES), with fixed episode seeds. Every backend gets the same jobs.
  The rate is the best of 3 timed rounds, after a warm-up round (process/actor start, envs,
  noise table).
  - ``serial``: one process; the whole population is stepped in lockstep (one kernel call per
    layer per step).
  - ``serial, no batching``: one process; members are evaluated one after the other (P = 1).
  - ``process xN``: N local worker processes, one BLAS thread each.
  - ``ray xN``: N Ray actors on a local Ray (when ``ray`` is installed).
- Learning-run rows run ``--generations`` generations from scratch, after one warm-up
  generation. The rows are rlstm's OpenAI-ES and EvoTorch's GymNE with its
  ``LSTM(obs_length, 16) >> Linear(16, act_length)`` policy and SNES, in-process and on N Ray
  actors (the ``bench`` extra: ``pip install evotorch``; torch CPU, one thread). Both rates
  include episode resets and the strategy's own update.

All cases run ``--repeats`` times, interleaved, and each keeps its best rate. Other load on the
machine can only slow a run down. On a shared machine the wall-clock scaling of the process
rows says more about the neighbours than about rlstm, so the script also prints each worker
count's busiest-worker CPU time per generation (``time.process_time`` inside the worker). That
is the generation's wall time on dedicated cores, and its ratio is the scaling those cores
would give.
"""
from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np

import sys
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # this checkout

from agents.es import Evaluator, OpenAIES  # noqa: E402

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
            model._require_env().factory, model.policy, model.noise.spec(), model.max_episode_steps)
    model.learn(1)  # warm-up generation
    steps0, t0 = model.num_timesteps, time.perf_counter()
    for _ in range(generations):
        model._advance(0.0)
    rate = (model.num_timesteps - steps0) / (time.perf_counter() - t0)
    model.close()
    return rate


class CpuTimed:
    """Wraps a worker: the first result of each chunk also carries the chunk's CPU seconds."""

    def __init__(self, worker):
        self.worker = worker

    def evaluate(self, payload, jobs):
        c = time.process_time()
        res = self.worker.evaluate(payload, jobs)
        return [res[0] + (time.process_time() - c,)] + res[1:]


WORKER_CPU: dict[str, float] = {}


def fixed_population(population: int, pretrain: int = 100_000):
    """A half-trained center and ``population`` perturbations of it: long, varied episodes.

    Every backend evaluates exactly these jobs (same members, same episode seeds), so the rows
    differ only in how the work is spread.
    """
    model = OpenAIES(ENV, seed=0, backend="serial", population_size=population,
                     center_episodes=0)
    model.learn(pretrain)
    rng = np.random.default_rng(0)
    idx = model.noise.sample_index(rng, model.num_params, population)
    seeds = rng.integers(10 ** 6, size=population)
    payload = {"center": model.center, "sigma": 0.05, "obs_normalizer": model.obs_normalizer}
    jobs = [("noise", (int(i), 1.0), [int(s)], False) for i, s in zip(idx, seeds)]
    return model, payload, jobs


def bench_fixed(model, payload, jobs, backend: str, workers: int, batched: bool = True,
                rounds: int = 3) -> float:
    """Env steps/s of ``backend.map`` on the fixed population (best of ``rounds``)."""
    from agents.backends import make_backend
    worker = model._evaluator() if batched else UnbatchedEvaluator(
        model._require_env().factory, model.policy, model.noise.spec(), model.max_episode_steps)
    timed = CpuTimed(worker)
    b = make_backend(backend, lambda k: timed, workers)
    b.map(payload, jobs)  # warm-up: processes / actors, envs, noise table
    best, cpu = np.inf, np.inf
    for _ in range(rounds):
        t0 = time.perf_counter()
        res = b.map(payload, jobs)
        best = min(best, time.perf_counter() - t0)
        # the busiest worker's CPU seconds: the wall time on idle, dedicated cores
        cpu = min(cpu, max(r[4] for r in res if len(r) == 5))
    b.close()
    key = f"{backend} x{workers}" + ("" if batched else " unbatched")
    WORKER_CPU[key] = min(WORKER_CPU.get(key, np.inf), cpu)
    return sum(r[1] for r in res) / best


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
        fixed = fixed_population(P)
        cases.append(("rlstm serial", lambda: bench_fixed(*fixed, "serial", 1)))
        cases.append(("rlstm serial, no batching",
                      lambda: bench_fixed(*fixed, "serial", 1, batched=False)))
        for n in args.workers:
            cases.append((f"rlstm process x{n}", lambda n=n: bench_fixed(*fixed, "process", n)))
        if ray is not None and not args.skip_ray:
            for n in args.workers:
                cases.append((f"rlstm ray x{n}", lambda n=n: bench_fixed(*fixed, "ray", n)))
        cases.append(("rlstm OpenAI-ES run, serial", lambda: bench_rlstm("serial", 1, G, P)))
    if evotorch is not None and not args.skip_evotorch:
        cases.append(("EvoTorch GymNE run, in-process", lambda: bench_evotorch(None, G, P)))
        for n in args.workers:
            if n > 1:
                cases.append((f"EvoTorch GymNE run, ray x{n}",
                              lambda n=n: bench_evotorch(n, G, P)))
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
        print(f"scaling 1 -> 2 processes: "
              f"{rates['rlstm process x2'] / rates['rlstm process x1']:.2f}x")
    for n in args.workers:
        key = f"process x{n}"
        if key in WORKER_CPU and "process x1" in WORKER_CPU:
            print(f"process x{n}: busiest worker {WORKER_CPU[key] * 1e3:.0f} ms CPU per "
                  f"generation -> {WORKER_CPU['process x1'] / WORKER_CPU[key]:.2f}x on "
                  f"dedicated cores")
    if "rlstm serial, no batching" in rates:
        print(f"population batching: "
              f"{rates['rlstm serial'] / rates['rlstm serial, no batching']:.2f}x")
    if "EvoTorch GymNE run, in-process" in rates and "rlstm OpenAI-ES run, serial" in rates:
        ratio = rates["rlstm OpenAI-ES run, serial"] / rates["EvoTorch GymNE run, in-process"]
        print(f"rlstm / EvoTorch, one process, learning runs from scratch: {ratio:.1f}x")


if __name__ == "__main__":
    main()
