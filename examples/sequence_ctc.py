"""Unsegmented sequence labelling with CTC: a stacked bidirectional LSTM reads noisy "spoken
digits" and writes the digit string, without ever being told where one digit ends.

Each digit is a tone burst: a few frames (3 to 6, at random) of that digit's spectral pattern
over 12 frequency channels, with noise on every frame and random silences between digits.
Sequences hold 2 to 5 digits. The network is LSTM(12 -> 2x48, 2 layers, bidirectional) and a
linear layer to 1 + 6 classes (blank + digits); rlstm.ctc_loss gives the loss and the gradient
with respect to the logits, and greedy decoding (best class per frame, merge repeats, drop
blanks) reads the answer. The label error rate is the edit distance over the target length on
held-out sequences; chance (a random string of the right length) is about 0.8.

    python examples/sequence_ctc.py [--steps 300] [--seed 0]     # about 10 s on one core
"""
from __future__ import annotations

import argparse
import time

import numpy as np
from threadpoolctl import threadpool_limits

import rlstm
from rlstm.optim import Adam, clip_grad_norm

# Per-step GEMMs this small run fastest on one BLAS thread (threads only add syncing).
threadpool_limits(1)
N_DIGITS, CHANNELS, HIDDEN, BATCH = 6, 12, 48, 32
BLANK = 0
PATTERNS = np.random.default_rng(0).uniform(0, 1, (N_DIGITS, CHANNELS)) ** 2 * 2  # spectra


def make_batch(B: int, rng: np.random.Generator):
    """Noisy tone-burst sequences, time-major (T, B, CHANNELS), with CTC targets."""
    seqs, labels = [], []
    for _ in range(B):
        digits = rng.integers(0, N_DIGITS, rng.integers(2, 6))
        frames = [np.zeros((rng.integers(0, 3), CHANNELS))]
        for d in digits:
            frames.append(np.repeat(PATTERNS[d][None], rng.integers(3, 7), axis=0))
            frames.append(np.zeros((rng.integers(0, 4), CHANNELS)))
        seqs.append(np.concatenate(frames))
        labels.append(digits + 1)  # class 0 is the blank
    T = max(len(s) for s in seqs)
    x = 0.5 * rng.standard_normal((T, B, CHANNELS))
    for b, s in enumerate(seqs):
        x[:len(s), b] += s
    lengths = np.array([len(s) for s in seqs])
    targets = np.concatenate(labels)
    target_lengths = np.array([len(l) for l in labels])
    return x.astype(np.float32), targets, lengths, target_lengths, labels


def edit_distance(a, b) -> int:
    d = np.arange(len(b) + 1)
    for i, ca in enumerate(a, 1):
        prev, d[0] = d[0], i
        for j, cb in enumerate(b, 1):
            prev, d[j] = d[j], min(d[j] + 1, d[j - 1] + 1, prev + (ca != cb))
    return int(d[-1])


def greedy_decode(logits, lengths):
    best = logits.argmax(axis=2)  # (T, B)
    out = []
    for b in range(best.shape[1]):
        path = best[:lengths[b], b]
        merged = path[np.r_[True, path[1:] != path[:-1]]]
        out.append(merged[merged != BLANK])
    return out


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description="Bidirectional LSTM + CTC on tone-burst digits")
    parser.add_argument("--steps", type=int, default=300, help="training batches")
    parser.add_argument("--seed", type=int, default=0, help="initialisation and data seed")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(args.seed)

    # --- the model: a bidirectional LSTM and a linear read-out, all in one flat vector -------
    lstm = rlstm.LSTM(CHANNELS, HIDDEN, 2, bidirectional=True, seed=args.seed)
    C = N_DIGITS + 1
    n_lstm, n_out = lstm.num_params, 2 * HIDDEN * C + C
    flat, grads = np.zeros(n_lstm + n_out, np.float32), np.zeros(n_lstm + n_out, np.float32)
    lstm.bind(flat[:n_lstm], grads[:n_lstm])
    W, b_out = flat[n_lstm:n_lstm + 2 * HIDDEN * C].reshape(2 * HIDDEN, C), flat[-C:]
    dW, db_out = grads[n_lstm:n_lstm + 2 * HIDDEN * C].reshape(2 * HIDDEN, C), grads[-C:]
    W[...] = rng.uniform(-1, 1, W.shape) / np.sqrt(2 * HIDDEN)
    opt = Adam(flat, grads, lr=5e-3)

    def forward(x):
        y, _, cache = lstm.forward(x)
        return y, y @ W + b_out, cache

    def label_error_rate(n_batches: int, rng) -> float:
        errors = total = 0
        for _ in range(n_batches):
            x, _, lengths, _, labels = make_batch(BATCH, rng)
            _, logits, _ = forward(x)
            for hyp, ref in zip(greedy_decode(logits, lengths), labels):
                errors += edit_distance(hyp, ref)
                total += len(ref)
        return errors / total

    chance_rng = np.random.default_rng(2)
    chance = float(np.mean([edit_distance(chance_rng.integers(1, C, len(l)), l) / len(l)
                            for l in make_batch(256, np.random.default_rng(3))[4]]))
    before = label_error_rate(4, np.random.default_rng(1))
    print(f"chance label error rate (random string of the right length): {chance:.2f}")
    print(f"before training: label error rate {before:.2f}")

    # --- training: CTC loss and its gradient w.r.t. the logits, back through the LSTM -------
    test_rng = np.random.default_rng(1)
    start = time.perf_counter()
    for step in range(1, args.steps + 1):
        x, targets, lengths, target_lengths, _ = make_batch(BATCH, rng)
        y, logits, cache = forward(x)
        loss, dlogits = rlstm.ctc_loss(logits, targets, lengths, target_lengths, blank=BLANK,
                                       reduction="mean")
        grads[...] = 0
        dW[...] = y.reshape(-1, 2 * HIDDEN).T @ dlogits.reshape(-1, C)
        db_out[...] = dlogits.sum(axis=(0, 1))
        lstm.backward(dlogits @ W.T, cache)
        clip_grad_norm(grads, 1.0)
        opt.step()
        if step % 60 == 0:
            elapsed = time.perf_counter() - start
            print(f"step {step:4d}  ctc loss per label {float(loss):.3f}  held-out label error "
                  f"rate {label_error_rate(2, test_rng):.3f}  ({elapsed:.0f} s)")
    final = label_error_rate(8, np.random.default_rng(4))
    print(f"final held-out label error rate: {final:.3f} (chance {chance:.2f})")
    return {"chance": chance, "before": before, "final": final}


if __name__ == "__main__":
    main()
