"""Forecast a sunspot-like series 12 steps ahead with an LSTM, trained by truncated BPTT.

The series is synthetic but sunspot-like: monthly values of ~11-year (~132-step) cycles whose
length and amplitude vary from cycle to cycle, with a fast rise, a slow decay and
multiplicative noise. Predicting 12 steps ahead needs the phase of the cycle, i.e. a memory of
the last ~100 steps. The long training series is cut into parallel segments and trained in
chunks of 100 steps with the LSTM state carried across chunks (truncated BPTT).

    python examples/time_series.py [--epochs 40] [--out time_series.png]

Prints the test RMSE of the LSTM next to two baselines (persistence: "the value 12 steps ago";
seasonal: "the value one mean cycle ago") and plots prediction vs truth.
"""
import argparse
import time

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import rlstm  # noqa: E402

HORIZON = 12
MEAN_CYCLE = 132


def sunspot_like(n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` monthly values of variable-length, variable-amplitude asymmetric cycles."""
    out = np.empty(0)
    while out.size < n:
        length = int(rng.normal(MEAN_CYCLE, 14))
        amplitude = rng.uniform(0.4, 1.6)
        u = np.arange(length) / length
        rise = 0.35
        shape = np.where(u < rise, np.sin(0.5 * np.pi * u / rise) ** 2,
                         np.exp(-3.5 * (u - rise) / (1 - rise)) * (1 - (u - rise) / (1 - rise)))
        out = np.concatenate([out, amplitude * shape])
    noise = np.exp(rng.normal(0, 0.12, n))
    return out[:n] * noise + 0.02 * rng.standard_normal(n)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--hidden", type=int, default=32)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1, help="BLAS threads")
    ap.add_argument("--out", default="time_series.png")
    args = ap.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    series = sunspot_like(24000 + 3000 + HORIZON, rng)
    mean, std = series[:24000].mean(), series[:24000].std()
    z = ((series - mean) / std).astype(np.float32)

    # training: 24000 steps cut into 24 parallel segments of 1000, targets 12 steps ahead
    seg, n_seg = 1000, 24
    x = z[:seg * n_seg].reshape(n_seg, seg).T[:, :, None]
    y = z[HORIZON:seg * n_seg + HORIZON].reshape(n_seg, seg).T[:, :, None]
    model = rlstm.SequenceModel(1, args.hidden, 1, seed=args.seed)
    rlstm.train.chrono_init(model.core, max_lag=2 * MEAN_CYCLE, seed=args.seed)
    t0 = time.perf_counter()
    hist = rlstm.fit(model, x, y, loss="mse", epochs=args.epochs, batch_size=8, tbptt=100,
                     lr=5e-3, seed=args.seed, threads=args.threads, progress_bar=True)
    print(f"trained in {time.perf_counter() - t0:.0f} s, final train MSE {hist['loss'][-1]:.4f}")

    # test: the next 3000 steps as one sequence (the first 300 warm the state up)
    test_x = z[24000:27000][:, None, None]
    truth = series[24000 + HORIZON:27000 + HORIZON]
    pred = model.predict(test_x)[:, 0, 0] * std + mean
    persistence = series[24000:27000]
    seasonal = series[24000 + HORIZON - MEAN_CYCLE:27000 + HORIZON - MEAN_CYCLE]
    warm = slice(300, None)

    def rmse(p):
        return float(np.sqrt(np.mean((p[warm] - truth[warm]) ** 2)))
    print(f"test RMSE, {HORIZON} steps ahead: LSTM {rmse(pred):.4f}, persistence "
          f"{rmse(persistence):.4f}, seasonal {rmse(seasonal):.4f}")

    fig, ax = plt.subplots(figsize=(11, 4))
    t = np.arange(300, 1500)
    ax.plot(t, truth[t], label="truth", lw=1.2)
    ax.plot(t, pred[t], label=f"LSTM, {HORIZON} steps ahead", lw=1.2)
    ax.plot(t, persistence[t], label="persistence", lw=0.8, alpha=0.6)
    ax.set_xlabel("step (month)")
    ax.legend()
    ax.set_title("sunspot-like series: forecast vs truth (test part)")
    fig.tight_layout()
    fig.savefig(args.out, dpi=110)
    print(f"plot saved to {args.out}")
    return {"lstm": rmse(pred), "persistence": rmse(persistence), "seasonal": rmse(seasonal)}


if __name__ == "__main__":
    main()
