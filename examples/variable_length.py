"""Variable-length sequences: right-padded data trained with ``lengths`` against reading the
padding.

Each sequence has between T/8 and T noisy values (one channel); its class is whether their sum
is positive. The sequences are right-padded with zeros to T steps, and the target is given once
per sequence (``y`` of shape ``(N,)``, "the last step"). Two identical models get the same
budget:

- ``fit(..., lengths=lengths)``: the last-step target meets each sequence's own last step, and
  the padding never enters the LSTM (a reverse direction starts at each sequence's end);
- without ``lengths``: the target is read at step T - 1, after up to 7/8 T steps of padding,
  which is what a model fed padded data without glue does.

    python examples/variable_length.py [--T 60] [--bidirectional] [--seed 0]
"""
import argparse
import time

import numpy as np

import rlstm


def padded_data(n: int, T: int, rng: np.random.Generator):
    """``x`` (T, n, 1) right-padded with zeros, labels (n,) and lengths (n,)."""
    lengths = rng.integers(T // 8, T + 1, n)
    x = rng.standard_normal((T, n, 1)).astype(np.float32)
    valid = np.arange(T)[:, None] < lengths
    y = ((x[..., 0] * valid).sum(axis=0) > 0).astype(np.int64)
    x[~valid] = 0
    return x, y, lengths


def accuracy(model, x, y, lengths) -> float:
    """Accuracy at each sequence's own last step (``lengths``), or at step T - 1 (None)."""
    out = model.predict(x, lengths=lengths)
    last = out[-1] if lengths is None else out[lengths - 1, np.arange(len(y))]
    return float(np.mean(last.argmax(axis=-1) == y))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--T", type=int, default=60)
    ap.add_argument("--train", type=int, default=2000, help="training sequences")
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--hidden", type=int, default=24)
    ap.add_argument("--bidirectional", action="store_true")
    ap.add_argument("--threads", type=int, default=1, help="BLAS threads")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    x, y, lengths = padded_data(args.train, args.T, rng)
    x_test, y_test, lengths_test = padded_data(1000, args.T, rng)
    results = {}
    for name, use in (("with lengths", True), ("reading the padding", False)):
        model = rlstm.SequenceModel(1, args.hidden, 2, bidirectional=args.bidirectional,
                                    seed=args.seed)
        t0 = time.perf_counter()
        rlstm.fit(model, x, y, loss="cross_entropy", epochs=args.epochs, batch_size=64,
                  lr=1e-2, seed=args.seed, threads=args.threads,
                  lengths=lengths if use else None)
        results[name] = accuracy(model, x_test, y_test, lengths_test if use else None)
        print(f"{name}: test accuracy {results[name]:.3f} "
              f"({time.perf_counter() - t0:.0f} s)")
    return results


if __name__ == "__main__":
    main()
