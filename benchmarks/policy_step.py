"""``LSTMPolicy.act`` latency next to an equivalent PyTorch policy (LSTMCell + Linear heads).

The rollout path: one step for B envs (CartPole-like: 4 observations, 2 discrete actions),
sample an action, its log-probability and the value. PyTorch runs under ``torch.no_grad()``
and ``torch.distributions.Categorical``, as CleanRL / SB3 rollouts do. Both use the same number
of BLAS/intra-op threads (``--threads``, default 1: one env worker per core).

    python benchmarks/policy_step.py [--threads 1] [--repeats 7] [--calls 2000]

Prints the median time per call over ``--repeats`` runs of ``--calls`` calls, and the ratio.
"""
from __future__ import annotations

import argparse

import numpy as np
from gymnasium import spaces
from threadpoolctl import threadpool_limits

import os
import sys
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # this checkout

from rlstm.benchmark import median_time  # noqa: E402
from rlstm.policy import LSTMPolicy  # noqa: E402

OBS_DIM, N_ACT = 4, 2


def rlstm_step(hidden: int, B: int):
    policy = LSTMPolicy(spaces.Box(-np.inf, np.inf, (OBS_DIM,), np.float32),
                        spaces.Discrete(N_ACT), hidden_size=hidden, seed=0)
    obs = np.random.default_rng(0).standard_normal((B, OBS_DIM)).astype(np.float32)
    episode_start = np.zeros(B, dtype=bool)
    box = {"state": policy.initial_state(B)}
    rng = np.random.default_rng(0)

    def step():
        _, _, _, box["state"] = policy.act(obs, box["state"], episode_start, rng=rng)
    return step


def torch_step(hidden: int, B: int):
    import torch
    cell = torch.nn.LSTMCell(OBS_DIM, hidden)
    actor, critic = torch.nn.Linear(hidden, N_ACT), torch.nn.Linear(hidden, 1)
    obs_np = np.random.default_rng(0).standard_normal((B, OBS_DIM)).astype(np.float32)
    episode_start = np.zeros(B, dtype=np.float32)
    box = {"state": (torch.zeros(B, hidden), torch.zeros(B, hidden))}

    def step():
        with torch.no_grad():
            obs = torch.as_tensor(obs_np)
            keep = 1.0 - torch.as_tensor(episode_start)[:, None]
            h, c = box["state"]
            h, c = cell(obs, (h * keep, c * keep))
            dist = torch.distributions.Categorical(logits=actor(h))
            action = dist.sample()
            dist.log_prob(action).numpy(), critic(h)[:, 0].numpy(), action.numpy()
            box["state"] = (h, c)
    return step


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--calls", type=int, default=2000)
    args = ap.parse_args(argv)
    try:
        import torch
        torch.set_num_threads(args.threads)
        torch_version = torch.__version__
    except ImportError:
        torch = None
        torch_version = "not installed"
    print(f"threads={args.threads} (BLAS and torch intra-op), repeats={args.repeats}, "
          f"calls={args.calls}, torch {torch_version}")
    print(f"{'hidden':>6} {'envs':>5} {'rlstm us':>9} {'torch us':>9} {'speed-up':>9}")
    with threadpool_limits(limits=args.threads):
        for hidden in (64, 256):
            for B in (1, 16):
                t_r = median_time(rlstm_step(hidden, B), args.repeats, number=args.calls)
                t_t = (median_time(torch_step(hidden, B), args.repeats, number=args.calls)
                       if torch is not None else float("nan"))
                print(f"{hidden:>6} {B:>5} {t_r * 1e6:>9.1f} {t_t * 1e6:>9.1f} "
                      f"{t_t / t_r:>8.1f}x")


if __name__ == "__main__":
    main()
