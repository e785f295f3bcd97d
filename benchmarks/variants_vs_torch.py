"""GRU and CTC against PyTorch on the CPU, and ConvLSTM as GFLOP/s against NumPy's sgemm.

    python benchmarks/variants_vs_torch.py [--threads N] [--repeats R]

Every timing is the median of R runs after a warm-up; ratios (PyTorch time / rlstm time, so
> 1 means rlstm is faster) are computed from timings taken in the same run, with BLAS and
PyTorch limited to the same number of threads.
  - GRU training step: forward + backward of one layer, T=64, B=32, D=H=256, float32 and float64.
    Targets: >= 1.5x PyTorch in float32.
  - CTC: loss + gradient w.r.t. the logits at T=200, B=32, C=30, S=40 (PyTorch: log_softmax +
    ctc_loss + backward). Target: >= 2x PyTorch.
  - ConvLSTM: forward + backward GFLOP/s (counting the two convolutions' multiply-adds as
    2 flops each) next to np.dot's float32 GEMM GFLOP/s on a problem of the same size.
"""
from __future__ import annotations

import argparse
import os
import platform

import numpy as np

import sys
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # this checkout

import rlstm  # noqa: E402
from rlstm.benchmark import Row, median_time, set_threads  # noqa: E402


def bench_gru(torch, repeats, dtype, T=64, B=32, D=256, H=256):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((T, B, D)).astype(dtype)
    dy = rng.standard_normal((T, B, H)).astype(dtype)
    gru = rlstm.GRU(D, H, dtype=dtype, seed=0)

    def ours():
        y, h, cache = gru.forward(x)
        gru.backward(dy, cache)

    tdt = torch.float32 if dtype == np.float32 else torch.float64
    tg = torch.nn.GRU(D, H).to(tdt)
    xt = torch.tensor(x, requires_grad=True)
    dyt = torch.tensor(dy)

    def theirs():
        y, _ = tg(xt)
        y.backward(dyt)

    return median_time(ours, repeats), median_time(theirs, repeats)


def bench_ctc(torch, repeats, threads, T=200, B=32, C=30, S=40):
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((T, B, C)).astype(np.float32)
    targets = rng.integers(1, C, (B, S))
    il = np.full(B, T)
    tl = rng.integers(S // 2, S + 1, B)
    tl[0] = S

    def ours():
        rlstm.ctc_loss(logits, targets, il, tl, reduction="sum", num_threads=threads)

    xt = torch.tensor(logits, requires_grad=True)
    args = (torch.tensor(targets), torch.tensor(il), torch.tensor(tl))

    def theirs():
        xt.grad = None
        torch.nn.functional.ctc_loss(xt.log_softmax(2), *args, reduction="sum").backward()

    return median_time(ours, repeats), median_time(theirs, repeats)


def bench_convlstm(repeats, T=16, B=8, C=16, F=32, HW=16, k=3):
    rng = np.random.default_rng(0)
    m = rlstm.ConvLSTM(C, F, k, num_layers=1, dtype=np.float32, seed=0)
    x = rng.standard_normal((T, B, C, HW, HW)).astype(np.float32)
    dy = rng.standard_normal((T, B, F, HW, HW)).astype(np.float32)

    def ours():
        _, _, cache = m.forward(x)
        m.backward(dy, cache)

    rows = T * B * HW * HW
    k_in, k_h = C * k * k, F * k * k
    # forward: 2 GEMMs; backward: dW_ih, dW_hh, dx and dh GEMMs: 3x the forward's flops
    flops = 3 * 2 * rows * 4 * F * (k_in + k_h)
    a = rng.standard_normal((rows, k_in + k_h)).astype(np.float32)
    w = rng.standard_normal((k_in + k_h, 4 * F)).astype(np.float32)
    t_gemm = median_time(lambda: a @ w, repeats)
    t_ours = median_time(ours, repeats)
    return flops / t_ours / 1e9, 2 * rows * 4 * F * (k_in + k_h) / t_gemm / 1e9


def main(argv=None) -> list[Row]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                        help="BLAS and PyTorch threads (default: all cores)")
    parser.add_argument("--repeats", type=int, default=7, help="timed runs per measurement")
    args = parser.parse_args(argv)
    import torch

    set_threads(args.threads)
    print(f"rlstm vs torch {torch.__version__}; {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores, {args.threads} thread(s) (BLAS and torch); median of "
          f"{args.repeats} runs; ratio = torch / rlstm\n")
    print("| case | rlstm | torch | speed-up | note |")
    print("|---|---|---|---|---|")
    rows = []
    for dtype in (np.float32, np.float64):
        ours, theirs = bench_gru(torch, args.repeats, dtype)
        rows.append(Row(f"GRU train step T=64 B=32 D=H=256 {np.dtype(dtype).name}", ours,
                        theirs, note="target >= 1.5x in float32"))
        print(rows[-1].fmt(), flush=True)
    ours, theirs = bench_ctc(torch, args.repeats, args.threads)
    rows.append(Row("CTC loss + grad T=200 B=32 C=30 S=40 float32", ours, theirs,
                    note="target >= 2x"))
    print(rows[-1].fmt(), flush=True)
    g_ours, g_gemm = bench_convlstm(args.repeats)
    print(f"\nConvLSTM fwd+bwd T=16 B=8 C=16 F=32 16x16 k=3 float32: {g_ours:.1f} GFLOP/s; "
          f"NumPy sgemm of the same size {g_gemm:.1f} GFLOP/s; fraction {g_ours / g_gemm:.2f}")
    return rows


if __name__ == "__main__":
    main()
