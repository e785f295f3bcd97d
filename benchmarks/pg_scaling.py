"""Policy-gradient throughput when the environment is the bottleneck, per backend.

    python benchmarks/pg_scaling.py                          # the tables of docs/agents.md
    python benchmarks/pg_scaling.py --workers 1 2 4 8 16 --configs process --env-ms 2 \
        --n-envs 64 --rollouts 2 --no-cartpole           # the 16-core curve

PPO (16 envs unless ``--n-envs`` says otherwise, 64-step rollouts, a 32-unit LSTM, 4 epochs)
trains on ``BurnEnv``, an env whose
``step`` burns a fixed amount of CPU (0.2 ms or 2 ms of busy work, no sleep), and on
``rlstm/CartPoleNoVel-v1``, where the env costs microseconds, so what is left is the price of
the backend itself. Each configuration is timed over whole ``learn`` calls after a warm-up call
that starts its workers; the number is the median of ``--repeats`` runs of env steps per
second (the learner's updates included). BLAS runs one thread in the learner and in every
worker. Configurations:

- ``serial``: the envs in the learner's process (the default);
- ``async``: Gymnasium's ``AsyncVectorEnv``, one subprocess per env, the policy in the learner;
- ``process xK`` / ``ray xK``: K rollout workers, each with its slice of the envs and a copy of
  the policy (``backend="process"|"ray"``, ``n_workers=K``).
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

import gymnasium as gym
import numpy as np
from threadpoolctl import threadpool_limits

import sys
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # this checkout

from agents import PPO  # noqa: E402

SETTINGS = dict(n_envs=16, n_steps=64, seq_len=16, hidden_size=32, n_epochs=4,
                n_minibatches=4)


class BurnEnv(gym.Env):
    """CartPole's dynamics with a ``step`` that burns ``ms`` milliseconds of CPU."""

    def __init__(self, ms: float = 2.0):
        self.env = gym.make("CartPole-v1")
        self.observation_space, self.action_space = (self.env.observation_space,
                                                     self.env.action_space)
        self.ms = ms

    def reset(self, *, seed=None, options=None):
        return self.env.reset(seed=seed)

    def step(self, action):
        end = time.perf_counter() + self.ms / 1000
        while time.perf_counter() < end:  # busy: a simulator computing, not waiting
            pass
        return self.env.step(action)


def make_burn(ms: float):
    return lambda: BurnEnv(ms)


def throughput(env, config: str, workers: int, rollouts: int, repeats: int) -> float:
    kw = dict(SETTINGS)
    if config == "async":
        kw.update(vec_env="async")
    elif config != "serial":
        kw.update(backend=config, n_workers=workers)
    steps = rollouts * SETTINGS["n_envs"] * SETTINGS["n_steps"]
    rates = []
    model = PPO(env, seed=0, **kw)
    try:
        model.learn(SETTINGS["n_envs"] * SETTINGS["n_steps"])  # warm-up: workers, envs
        for _ in range(repeats):
            t0 = time.perf_counter()
            model.learn(steps)
            rates.append(steps / (time.perf_counter() - t0))
    finally:
        model.close()
    return statistics.median(rates)


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--env-ms", type=float, nargs="+", default=[0.2, 2.0],
                   help="CPU milliseconds per BurnEnv step")
    p.add_argument("--configs", nargs="+", default=["serial", "async", "process", "ray"])
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    p.add_argument("--rollouts", type=int, default=3, help="rollouts per timed learn call")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--no-cartpole", action="store_true")
    p.add_argument("--n-envs", type=int, default=SETTINGS["n_envs"],
                   help="envs in all (split between the workers); minibatches scale with it")
    args = p.parse_args(argv)
    if args.n_envs < 1:
        p.error("--n-envs must be >= 1")
    SETTINGS.update(n_envs=args.n_envs, n_minibatches=max(1, 4 * args.n_envs // 16))
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"PPO {SETTINGS}; {cores} cores; 1 BLAS thread per process; median of "
          f"{args.repeats} learn calls of {args.rollouts} rollouts\n")
    envs = [(f"BurnEnv {ms:g} ms", make_burn(ms)) for ms in args.env_ms]
    if not args.no_cartpole:
        envs.append(("rlstm/CartPoleNoVel-v1", "rlstm/CartPoleNoVel-v1"))
    results = {}
    for name, env in envs:
        print(f"### {name}\n\n| configuration | env steps/s | vs serial | vs x1 |\n|---|---|---|---|")
        base = one = None
        for config in args.configs:
            for k in (args.workers if config in ("process", "ray") else [1]):
                if config == "ray":
                    try:
                        import ray  # noqa: F401
                    except ImportError:
                        continue
                label = config if config in ("serial", "async") else f"{config} x{k}"
                with threadpool_limits(1):
                    rate = throughput(env, config, k, args.rollouts, args.repeats)
                results[(name, label)] = rate
                base = base or (rate if config == "serial" else None)
                if config in ("process", "ray") and k == args.workers[0]:
                    one = rate
                vs_serial = f"{rate / base:.2f}x" if base else ""
                vs_one = f"{rate / one:.2f}x" if config in ("process", "ray") and one else ""
                print(f"| {label} | {rate:,.0f} | {vs_serial} | {vs_one} |", flush=True)
        print()
    if any(c == "ray" for c in args.configs):
        try:
            import ray
            ray.shutdown()
        except ImportError:
            pass
    return results


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    main()
