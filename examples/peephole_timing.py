"""Precise timing with peephole connections, after Gers, Schraudolph & Schmidhuber (2002).

Task (a "timed spike" task): a single input spike arrives at a random step t0 in [0, 10); the
network must fire one output spike exactly DELAY = 25 steps later and stay silent otherwise.
Nothing in the input marks the time that has passed, so the network has to count in its cell
state and open its output exactly on time. Without peepholes the gates see the cell only
through h = o * tanh(c), which must stay near zero until the spike; with peepholes they read c
directly. Both networks are tiny (2 cells, as in the paper's small nets), trained the same way
(weighted cross-entropy on the spike, Adam, gradient clipping) from 5 seeds each.

Reported per seed: the timing error |argmax_t output - (t0 + DELAY)| averaged over 512 test
sequences, and the fraction of sequences with the spike exactly on time.

    python examples/peephole_timing.py [--steps 4000] [--seeds 5]   # ~16 s of CPU, one core
"""
from __future__ import annotations

import argparse
import time

import numpy as np
from threadpoolctl import threadpool_limits

import rlstm
from rlstm.optim import Adam, clip_grad_norm

threadpool_limits(1)  # per-step GEMMs this small run fastest on one BLAS thread
T, B, HIDDEN, DELAY = 70, 32, 2, 25


def make_batch(rng: np.random.Generator, B: int):
    t0 = rng.integers(0, 10, B)
    x = np.zeros((T, B, 1), np.float32)
    x[t0, np.arange(B), 0] = 1.0
    y = np.zeros((T, B), np.float32)
    y[t0 + DELAY, np.arange(B)] = 1.0
    return x, y, t0 + DELAY


def train(variant: str, cell_activation: str, seed: int, steps: int):
    """Train LSTM + logistic read-out; return (mean timing error, fraction exactly on time)."""
    rng = np.random.default_rng(seed)
    lstm = rlstm.LSTM(1, HIDDEN, variant=variant, cell_activation=cell_activation, seed=seed)
    n = lstm.num_params
    flat, grads = np.zeros(n + HIDDEN + 1, np.float32), np.zeros(n + HIDDEN + 1, np.float32)
    lstm.bind(flat[:n], grads[:n])
    w, b, dw, db = flat[n:n + HIDDEN], flat[n + HIDDEN:], grads[n:n + HIDDEN], grads[n + HIDDEN:]
    w[...] = rng.uniform(-1, 1, HIDDEN) / np.sqrt(HIDDEN)
    b[...] = -3.0  # start silent
    opt = Adam(flat, grads, lr=1e-2)
    for _ in range(steps):
        x, y, _ = make_batch(rng, B)
        h, _, cache = lstm.forward(x)
        z = h @ w + b
        p = 0.5 * (1 + np.tanh(0.5 * z))                    # sigmoid, no overflow
        dz = (p - y) * np.where(y > 0, 20.0, 1.0) / B       # the one spike weighs like 20 steps
        grads[...] = 0
        dw[...] = np.einsum("tbh,tb->h", h, dz)
        db[...] = dz.sum()
        lstm.backward(dz[:, :, None] * w, cache)
        clip_grad_norm(grads, 1.0)
        opt.step()
    x, _, target = make_batch(np.random.default_rng(1000), 512)
    h, _ = lstm(x)
    err = np.abs((h @ w + b).argmax(axis=0) - target)
    return float(err.mean()), float((err == 0).mean())


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description="Peephole vs vanilla LSTM on a timed spike")
    parser.add_argument("--steps", type=int, default=4000, help="training batches per run")
    parser.add_argument("--seeds", type=int, default=5, help="runs per network")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    results = {}
    for name, variant, act in [("vanilla", "vanilla", "tanh"),
                               ("peephole", "peephole", "identity")]:
        runs = [train(variant, act, seed, args.steps) for seed in range(args.seeds)]
        results[name] = runs
        print(f"{name} LSTM{' (identity cell output)' if act == 'identity' else ''}:")
        for seed, (err, exact) in enumerate(runs):
            print(f"  seed {seed}: timing error {err:5.2f} steps, exactly on time {exact:6.1%}")
        print(f"  mean over seeds: timing error {np.mean([r[0] for r in runs]):.2f} steps, "
              f"{sum(r[1] > 0.99 for r in runs)}/{args.seeds} seeds always exactly on time "
              f"({time.perf_counter() - start:.0f} s)")
    return results


if __name__ == "__main__":
    main()
