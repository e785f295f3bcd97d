"""Evolino on a multiple-superimposed-oscillators series: evolve an LSTM, solve the readout.

The classic Evolino benchmark (Schmidhuber et al. 2007): predict the next value of
sin(0.2 t) + sin(0.311 t). The LSTM weights evolve by antithetic ES; for every member the
linear readout is the least-squares fit on its hidden states. Then the trained network runs
free (its own predictions fed back) and the plot compares it with the truth.

    python examples/evolino_sequence.py          # ~15 s on 2 cores
"""
import argparse

import numpy as np

from agents import EvolinoSequence


def mso(t):
    return np.sin(0.2 * t) + np.sin(0.311 * t)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--generations", type=int, default=300)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="evolino_sequence.png")
    args = ap.parse_args()

    T = 300
    series = mso(np.arange(T + 1, dtype=np.float64))
    X = series[:-1, None, None]  # (T, B=1, D=1): teacher forcing
    Y = series[1:, None, None]

    model = EvolinoSequence(1, 1, hidden_size=10, population_size=32, sigma=0.05,
                            learning_rate=0.02, washout=50, seed=args.seed)
    model.fit(X, Y, generations=args.generations,
              callback=lambda m, mse: print(f"generation {m.generation:3d}  train MSE {mse:.2e}")
              if m.generation % 10 == 0 else None)

    # warm up on the true series, then run free for 100 steps
    _, state = model.predict(X)
    x = Y[-1:]
    free = []
    for _ in range(100):
        y, state = model.predict(x, state)
        free.append(float(y[0, 0, 0]))
        x = y
    truth = mso(np.arange(T + 1, T + 101, dtype=np.float64))
    nrmse = np.sqrt(np.mean((np.array(free) - truth) ** 2)) / truth.std()
    print(f"free-running NRMSE over 100 steps: {nrmse:.3f}")

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(8, 3))
    ax.plot(range(T + 1, T + 101), truth, label="truth")
    ax.plot(range(T + 1, T + 101), free, "--", label="Evolino, free-running")
    ax.legend()
    fig.tight_layout()
    fig.savefig(args.out, dpi=100)
    print("wrote", args.out)


if __name__ == "__main__":
    main()
