"""Side-by-side timings of rlstm's LSTM against PyTorch (``rlstm bench``).

Every number is the median of several runs, taken in the same process with the same BLAS/torch
thread count, and printed next to its PyTorch counterpart as a ratio (> 1 means rlstm is faster).
PyTorch is optional: without it only rlstm's column (and the NumPy floors) is printed.

    python benchmarks/lstm_vs_torch.py [--threads N] [--repeat R] [--quick]
    rlstm bench [same options]
"""
from __future__ import annotations

import argparse
import os
import platform
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np

from .lstm import LSTM


def median_time(fn: Callable[[], object], repeat: int = 7, min_time: float = 0.05,
                number: int | None = None) -> float:
    """Median seconds per call over ``repeat`` runs, each long enough to time (>= min_time),
    or of exactly ``number`` calls when given."""
    fn()  # warm up (allocations, BLAS threads, caches)
    if number is None:
        t0 = time.perf_counter()
        fn()
        once = max(time.perf_counter() - t0, 1e-7)
        number = max(1, int(min_time / once))
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        samples.append((time.perf_counter() - t0) / number)
    return float(np.median(samples))


def set_threads(n: int):
    """Limit BLAS (all pools, via threadpoolctl) and torch to ``n`` threads; returns the limiter."""
    from threadpoolctl import threadpool_limits
    limiter = threadpool_limits(n)
    try:
        import torch
        torch.set_num_threads(n)
    except ImportError:
        pass
    return limiter


def _torch():
    try:
        import torch
        return torch
    except ImportError:
        return None


@dataclass
class Row:
    case: str
    rlstm_s: float
    other_s: float | None = None
    other_name: str = "torch"
    note: str = ""

    def fmt(self) -> str:
        unit, scale = ("ms", 1e3) if self.rlstm_s > 1e-3 else ("µs", 1e6)
        other = f"{self.other_s * scale:.2f} {unit}" if self.other_s else "n/a"
        ratio = f"{self.other_s / self.rlstm_s:.2f}×" if self.other_s else "n/a"
        return (f"| {self.case} | {self.rlstm_s * scale:.2f} {unit} | {other} | {ratio} | "
                f"{self.note} |")


def bench_training(dtype, T=64, B=32, D=256, H=256, repeat=7) -> Row:
    """forward + backward of one layer, as in a training step (gradients into .grads)."""
    rng = np.random.default_rng(0)
    lstm = LSTM(D, H, dtype=dtype, seed=0)
    x = rng.standard_normal((T, B, D)).astype(dtype)
    dy = rng.standard_normal((T, B, H)).astype(dtype)

    def ours():
        y, _, cache = lstm.forward(x)
        lstm.backward(dy, cache)

    t_ours = median_time(ours, repeat)
    torch = _torch()
    t_theirs = None
    if torch is not None:
        tdt = torch.float32 if dtype == np.float32 else torch.float64
        m = torch.nn.LSTM(D, H).to(tdt)
        xt = torch.tensor(x, requires_grad=True)
        dyt = torch.tensor(dy)

        def theirs():
            y, _ = m(xt)
            y.backward(dyt)
        t_theirs = median_time(theirs, repeat)
    flops = 6 * 2 * T * B * 4 * H * (D + H) / 2  # fwd 2 GEMMs + bwd 4 GEMMs of 2*TB*4H*K each
    return Row(f"train step T={T} B={B} D=H={H} {np.dtype(dtype).name}", t_ours, t_theirs,
               note=f"rlstm {flops / t_ours / 1e9:.0f} GFLOP/s")


def bench_step(B, D, H, repeat=7) -> Row:
    """One inference step of a single-layer LSTM (float32), the rollout path."""
    rng = np.random.default_rng(0)
    lstm = LSTM(D, H, seed=0)
    x = rng.standard_normal((B, D)).astype(np.float32)
    state = lstm.initial_state(B)
    t_ours = median_time(lambda: lstm.step(x, state), repeat)
    note = ""
    if H >= 256:
        # The memory floor: one GEMV over the same weight bytes (4H x (D + H) floats).
        w = rng.standard_normal((4 * H, D + H)).astype(np.float32)
        v = rng.standard_normal((D + H, B)).astype(np.float32) if B > 1 else \
            rng.standard_normal(D + H).astype(np.float32)
        t_gemv = median_time(lambda: w @ v, repeat)
        note = f"NumPy GEMV/GEMM floor {t_gemv * 1e6:.2f} µs ({t_ours / t_gemv:.2f}× of it)"
    torch = _torch()
    t_theirs = None
    if torch is not None:
        cell = torch.nn.LSTMCell(D, H)
        xt = torch.tensor(x)
        hs = (torch.zeros(B, H), torch.zeros(B, H))

        def theirs():
            with torch.no_grad():
                cell(xt, hs)
        t_theirs = median_time(theirs, repeat)
    return Row(f"step B={B} D={D} H={H}", t_ours, t_theirs, "torch LSTMCell", note)


def bench_large(T=32, B=64, D=512, H=1024, repeat=5) -> Row:
    """Forward GFLOP/s of a large layer next to NumPy's own sgemm GFLOP/s."""
    rng = np.random.default_rng(0)
    lstm = LSTM(D, H, seed=0)
    x = rng.standard_normal((T, B, D)).astype(np.float32)
    t_ours = median_time(lambda: lstm(x), repeat)
    flops = 2 * T * B * 4 * H * (D + H)
    a = rng.standard_normal((T * B, D + H)).astype(np.float32)
    w = rng.standard_normal((4 * H, D + H)).astype(np.float32)
    t_gemm = median_time(lambda: a @ w.T, repeat)
    ours, floor = flops / t_ours / 1e9, flops / t_gemm / 1e9
    torch = _torch()
    t_theirs = None
    if torch is not None:
        m = torch.nn.LSTM(D, H)
        xt = torch.tensor(x)

        def theirs():
            with torch.no_grad():
                m(xt)
        t_theirs = median_time(theirs, repeat)
    return Row(f"forward T={T} B={B} D={D} H={H}", t_ours, t_theirs,
               note=f"rlstm {ours:.0f} GFLOP/s = {100 * ours / floor:.0f}% of NumPy sgemm "
                    f"({floor:.0f} GFLOP/s)")


def main(argv=None) -> list[Row]:
    p = argparse.ArgumentParser(prog="rlstm bench", description=__doc__.split("\n")[0])
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                   help="BLAS and torch threads (default: all cores)")
    p.add_argument("--repeat", type=int, default=7, help="runs per median (default 7)")
    p.add_argument("--quick", action="store_true", help="skip the large shape")
    args = p.parse_args(argv)
    set_threads(args.threads)
    torch = _torch()
    print(f"rlstm vs {'torch ' + torch.__version__ if torch else '(torch not installed)'}; "
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"{args.threads} thread(s); median of {args.repeat} runs; ratio = torch / rlstm\n")
    print("| case | rlstm | torch | speed-up | note |")
    print("|---|---|---|---|---|")
    rows = []
    cases = [lambda: bench_training(np.float32, repeat=args.repeat),
             lambda: bench_training(np.float64, repeat=args.repeat)]
    for B in (1, 16):
        for D, H in ((8, 64), (64, 256)):
            cases.append(lambda B=B, D=D, H=H: bench_step(B, D, H, repeat=args.repeat))
    if not args.quick:
        cases.append(lambda: bench_large(repeat=max(3, args.repeat // 2)))
    for case in cases:
        row = case()
        print(row.fmt(), flush=True)
        rows.append(row)
    return rows


if __name__ == "__main__":
    main()
