"""Flag anomalies in a traffic-like series by the error of an LSTM's one-step prediction.

The series is synthetic hourly traffic: a daily profile (two rush hours), quieter weekends, a
slow trend and noise. The LSTM learns to predict the next hour on a clean training period.
In the test period anomalies are injected (spikes, dips, a sensor dropout, a level shift).
The test series is then run step by step (``model.step``): a step is flagged when its
prediction error exceeds the 99.5th percentile of the training errors, and a flagged value is
replaced by the prediction before the LSTM reads it (for at most a day), so an anomaly does
not corrupt the state and a level shift keeps being flagged instead of being learned as the
new normal.
Prints precision and recall against the injected labels and plots the result.

    python examples/anomaly_detection.py [--epochs 100] [--out anomaly_detection.png]
"""
import argparse
import time

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import rlstm  # noqa: E402

MAX_SUBSTITUTED = 24  # at most one day of predictions fed back in place of the data


def traffic(n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` hourly values: rush hours at 8h and 17h, weekends at 60%, trend and noise."""
    t = np.arange(n)
    hour, day = t % 24, (t // 24) % 7
    daily = (0.2 + np.exp(-0.5 * ((hour - 8) / 1.5) ** 2) + 0.8 * np.exp(
        -0.5 * ((hour - 17) / 2.0) ** 2) + 0.3 * np.sin(np.pi * hour / 24) ** 2)
    weekly = np.where(day >= 5, 0.6, 1.0)
    trend = 1 + 0.1 * np.sin(2 * np.pi * t / (24 * 90))
    return daily * weekly * trend * np.exp(rng.normal(0, 0.05, n))


def inject(x: np.ndarray, rng: np.random.Generator):
    """Add anomalies to a copy of ``x``; returns it and the boolean labels."""
    x, label = x.copy(), np.zeros(x.size, bool)
    for i in rng.choice(np.arange(50, x.size - 50), 12, replace=False):  # spikes and dips
        x[i] *= rng.choice([1.8, 2.2, 0.3])
        label[i] = True
    d = x.size // 3
    x[d:d + 6] = 0.0                                                     # sensor dropout
    label[d:d + 6] = True
    s = 2 * x.size // 3
    x[s:s + 24] *= 1.5                                                   # a day of +50%
    label[s:s + 24] = True
    events = [(int(i), int(i) + 1) for i in np.nonzero(label)[0] if not (d <= i < d + 6 or
                                                                      s <= i < s + 24)]
    return x, label, sorted(events + [(d, d + 6), (s, s + 24)])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=100)
    ap.add_argument("--hidden", type=int, default=32)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1, help="BLAS threads")
    ap.add_argument("--out", default="anomaly_detection.png")
    args = ap.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    n_train, n_test = 24 * 7 * 60, 24 * 7 * 6
    series = traffic(n_train + n_test + 1, rng)
    mean, std = series[:n_train].mean(), series[:n_train].std()
    z = ((series - mean) / std).astype(np.float32)

    # one-step-ahead prediction, 20 parallel segments of 3 weeks, chunks of one week
    seg = n_train // 20
    x = z[:n_train].reshape(20, seg).T[:, :, None]
    y = z[1:n_train + 1].reshape(20, seg).T[:, :, None]
    model = rlstm.SequenceModel(1, args.hidden, 1, seed=args.seed)
    rlstm.train.chrono_init(model.core, max_lag=24 * 7, seed=args.seed)
    t0 = time.perf_counter()
    hist = rlstm.fit(model, x, y, epochs=args.epochs, batch_size=5, tbptt=168, lr=5e-3,
                     seed=args.seed, threads=args.threads, progress_bar=True)
    print(f"trained in {time.perf_counter() - t0:.0f} s, final train MSE {hist['loss'][-1]:.4f}")

    train_err = np.abs(model.predict(x) - y).reshape(-1)
    threshold = np.quantile(train_err, 0.995)
    test, label, events = inject(series[n_train:n_train + n_test + 1], rng)
    zt = ((test - mean) / std).astype(np.float32)
    # warm the state up on the last week of training data, then go step by step
    _, state = model(z[n_train - 168:n_train][:, None, None])
    pred, err = np.empty(n_test), np.empty(n_test)
    flagged = np.zeros(n_test, bool)
    feed = zt[0]
    for t in range(n_test):
        out, state = model.step(np.array([[feed]], np.float32), state)
        pred[t] = out[0, 0]                   # prediction of step t + 1
        err[t] = abs(pred[t] - zt[t + 1])
        flagged[t] = err[t] > threshold
        # substitute flagged values, but re-synchronise on the data after a day of them
        recent = flagged[max(0, t - 2 * MAX_SUBSTITUTED):t + 1].sum()
        feed = pred[t] if flagged[t] and recent <= MAX_SUBSTITUTED else zt[t + 1]
    truth = label[1:]
    tp = int((flagged & truth).sum())
    precision = tp / max(int(flagged.sum()), 1)
    recall = tp / max(int(truth.sum()), 1)
    print(f"threshold {threshold:.3f} (99.5% of training errors); flagged {int(flagged.sum())} "
          f"of {truth.size} steps; {int(truth.sum())} anomalous steps injected")
    print(f"per step: precision {precision:.2f}, recall {recall:.2f}")
    # per event: detected if a step of it is flagged; an alarm is false if no event started
    # in the 24 hours before it (the state needs a while to settle after an anomaly)
    step_of = np.arange(n_test) + 1           # flagged[t] is about series step t + 1
    hit = [flagged[(step_of >= a) & (step_of < b)].any() for a, b in events]
    near = np.zeros(n_test, bool)
    for a, b in events:
        near |= (step_of >= a) & (step_of < b + 24)
    print(f"per event: {sum(hit)} of {len(events)} anomalies detected, "
          f"{int((flagged & ~near).sum())} false alarms in {n_test} hours")

    fig, (a1, a2) = plt.subplots(2, 1, figsize=(11, 6), sharex=True)
    t = np.arange(1, test.size)
    a1.plot(t, test[1:], lw=0.8, label="observed")
    a1.plot(t, pred * std + mean, lw=0.8, label="LSTM one-step prediction")
    a1.scatter(t[truth], test[1:][truth], s=12, c="red", label="injected anomaly")
    a1.legend(loc="upper right")
    a2.plot(t, err, lw=0.8, label="|prediction error|")
    a2.axhline(threshold, color="k", ls="--", lw=0.8, label="threshold")
    a2.scatter(t[flagged], err[flagged], s=12, c="orange", label="flagged")
    a2.legend(loc="upper right")
    a2.set_xlabel("hour")
    fig.tight_layout()
    fig.savefig(args.out, dpi=110)
    print(f"plot saved to {args.out}")
    return {"precision": precision, "recall": recall, "events_detected": int(sum(hit)),
            "events": len(events), "false_alarms": int((flagged & ~near).sum())}


if __name__ == "__main__":
    main()
