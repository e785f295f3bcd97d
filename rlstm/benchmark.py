"""Side-by-side timings of rlstm's kernels against PyTorch and NumPy's sgemm (``rlstm bench``).

Every number is a median over several runs taken in the same process at the same thread
count. rlstm, its competitor and NumPy's own GEMM (sgemm; dgemm for float64) are timed in
alternation (A, B, C, A, B, C, ...), so that a change in the machine's load hits all of them,
and each row gives rlstm's GFLOP/s as a fraction of that GEMM's. ratio = torch / rlstm (> 1:
rlstm is faster). PyTorch is optional: without it only rlstm's columns are printed.

    python benchmarks/lstm_vs_torch.py [--threads 1,2] [--repeat R] [--quick]
    python benchmarks/lstm_vs_torch.py --builds portable=.,native=/path/to/native/checkout
    rlstm bench [same options]

``--builds`` compares builds of rlstm (e.g. the portable one against one built with
``RLSTM_NATIVE=1``) in the same run: each build's package is imported side by side in this
process (as ``rlstm_<name>``, a copy) and every case is timed in alternation across builds.
"""
from __future__ import annotations

import argparse
import inspect
import os
import platform
import sys
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
        number = _calls_for(fn, min_time)
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        samples.append((time.perf_counter() - t0) / number)
    return float(np.median(samples))


def _calls_for(fn, min_time: float) -> int:
    t0 = time.perf_counter()
    fn()
    once = max(time.perf_counter() - t0, 1e-7)
    return max(1, int(min_time / once))


def median_times(fns: list[Callable[[], object]], repeat: int = 7,
                 min_time: float = 0.05) -> list[float]:
    """Median seconds per call of each function, timed in alternation (one run of each, then
    again), so that both see the same machine."""
    numbers = []
    for fn in fns:
        fn()
        numbers.append(_calls_for(fn, min_time))
    samples = [[] for _ in fns]
    for _ in range(repeat):
        for fn, n, out in zip(fns, numbers, samples):
            t0 = time.perf_counter()
            for _ in range(n):
                fn()
            out.append((time.perf_counter() - t0) / n)
    return [float(np.median(s)) for s in samples]


def set_threads(n: int):
    """Limit BLAS, rlstm's sweeps (all via threadpoolctl) and torch to ``n`` threads; returns
    the limiter."""
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


def gemm_fn(dtype):
    """A 2048 x 1024 x 1024 NumPy GEMM (the floor each row is compared with) and its flops."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((2048, 1024)).astype(dtype)
    b = rng.standard_normal((1024, 1024)).astype(dtype)
    c = np.empty((2048, 1024), dtype)
    return (lambda: np.matmul(a, b, out=c)), 2 * 2048 * 1024 * 1024


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


def _timed_with_floor(fns, dtype, repeat):
    """Median times of ``fns`` and of NumPy's GEMM, all in alternation (so that the GEMM sees
    the same machine as the row it is the floor of); returns (times, gemm GFLOP/s)."""
    gemm, gemm_flops = gemm_fn(dtype)
    times = median_times(list(fns) + [gemm], repeat)
    return times[:-1], gemm_flops / times[-1] / 1e9


def _vs_floor(flops: float, seconds: float, dtype, floor: float) -> str:
    ours = flops / seconds / 1e9
    name = "sgemm" if np.dtype(dtype) == np.float32 else "dgemm"
    return f"{ours:.0f} GFLOP/s = {100 * ours / floor:.0f}% of NumPy {name} ({floor:.0f})"


# ------------------------------------------------------------------------------ the cases
def bench_training(dtype, T=64, B=32, D=256, H=256, threads=1, repeat=7) -> Row:
    """forward + backward of one layer, as in a training step (gradients into .grads, dx
    computed as torch does); the note adds the time with ``input_grad=False``."""
    rng = np.random.default_rng(0)
    lstm = LSTM(D, H, dtype=dtype, seed=0)
    x = rng.standard_normal((T, B, D)).astype(dtype)
    dy = rng.standard_normal((T, B, H)).astype(dtype)

    def ours():
        _, _, cache = lstm.forward(x)
        lstm.backward(dy, cache)

    def ours_no_dx():
        _, _, cache = lstm.forward(x)
        lstm.backward(dy, cache, input_grad=False)

    # (a build from before input_grad existed, compared with --builds, times dx twice)
    has_flag = "input_grad" in inspect.signature(lstm.backward).parameters
    fns = [ours, ours_no_dx if has_flag else ours]
    torch = _torch()
    if torch is not None:
        tdt = torch.float32 if np.dtype(dtype) == np.float32 else torch.float64
        m = torch.nn.LSTM(D, H).to(tdt)
        xt = torch.tensor(x, requires_grad=True)
        dyt = torch.tensor(dy)

        def theirs():
            y, _ = m(xt)
            y.backward(dyt)
        fns.append(theirs)
    times, floor = _timed_with_floor(fns, dtype, repeat)
    flops = 6 * T * B * 4 * H * (D + H)   # 2 GEMM-sized products forward, 4 backward
    return Row(f"train T={T} B={B} D={D} H={H} {np.dtype(dtype).name}, {threads} thr",
               times[0], times[2] if torch is not None else None,
               note=f"{_vs_floor(flops, times[0], dtype, floor)}; "
                    f"input_grad=False {times[1] * 1e3:.2f} ms")


def bench_step(B, D, H, threads=1, repeat=7) -> Row:
    """One inference step of a single-layer LSTM (float32), the rollout path."""
    rng = np.random.default_rng(0)
    lstm = LSTM(D, H, seed=0)
    x = rng.standard_normal((B, D)).astype(np.float32)
    state = lstm.initial_state(B)
    fns = [lambda: lstm.step(x, state)]
    torch = _torch()
    if torch is not None:
        cell = torch.nn.LSTMCell(D, H)
        xt = torch.tensor(x)
        hs = (torch.zeros(B, H), torch.zeros(B, H))

        def theirs():
            with torch.no_grad():
                cell(xt, hs)
        fns.append(theirs)
    times, floor = _timed_with_floor(fns, np.float32, repeat)
    flops = 2 * B * 4 * H * (D + H)
    return Row(f"step B={B} D={D} H={H}, {threads} thr", times[0],
               times[1] if torch is not None else None, "torch LSTMCell",
               _vs_floor(flops, times[0], np.float32, floor))


def bench_large(T=32, B=64, D=512, H=1024, threads=1, repeat=5) -> Row:
    """Forward (inference) of a large layer."""
    rng = np.random.default_rng(0)
    lstm = LSTM(D, H, seed=0)
    x = rng.standard_normal((T, B, D)).astype(np.float32)
    fns = [lambda: lstm(x)]
    torch = _torch()
    if torch is not None:
        m = torch.nn.LSTM(D, H)
        xt = torch.tensor(x)

        def theirs():
            with torch.no_grad():
                m(xt)
        fns.append(theirs)
    times, floor = _timed_with_floor(fns, np.float32, repeat)
    flops = 2 * T * B * 4 * H * (D + H)
    return Row(f"forward T={T} B={B} D={D} H={H}, {threads} thr", times[0],
               times[1] if torch is not None else None,
               note=_vs_floor(flops, times[0], np.float32, floor))


def bench_conv(N=32, threads=1, repeat=7) -> Row:
    """ConvEncoder forward + backward on N Atari frames 84x84x4 (Conv 8/4 -> ReLU -> Conv 4/2
    -> ReLU) against the same torch.nn.Conv2d stack (NCHW, input without grad)."""
    from .layers import ConvEncoder
    rng = np.random.default_rng(0)
    enc = ConvEncoder((84, 84, 4), seed=0)
    x = rng.random((N, 84 * 84 * 4)).astype(np.float32)
    d = rng.standard_normal((N, enc.out_features)).astype(np.float32)

    def ours():
        f, cache = enc.forward(x)
        enc.backward(d, cache)
    fns = [ours]
    torch = _torch()
    if torch is not None:
        nn = torch.nn
        net = nn.Sequential(nn.Conv2d(4, 16, 8, 4), nn.ReLU(), nn.Conv2d(16, 32, 4, 2), nn.ReLU(),
                            nn.Flatten())
        xt = torch.tensor(x.reshape(N, 84, 84, 4).transpose(0, 3, 1, 2).copy())
        dt = torch.tensor(d)

        def theirs():
            net(xt).backward(dt)
        fns.append(theirs)
    times = median_times(fns, repeat)
    return Row(f"conv encoder fwd+bwd {N}x84x84x4, {threads} thr", times[0],
               times[1] if torch is not None else None, "torch nn.Conv2d stack")


def cases(quick: bool = False, threads: int = 1, repeat: int = 7) -> dict:
    """name -> zero-argument function returning a Row, in table order."""
    out = {
        "train_f32": lambda: bench_training(np.float32, threads=threads, repeat=repeat),
        "train_f64": lambda: bench_training(np.float64, threads=threads, repeat=repeat),
        "train_d64": lambda: bench_training(np.float32, D=64, threads=threads, repeat=repeat),
        "train_h128": lambda: bench_training(np.float32, T=32, B=16, D=32, H=128,
                                             threads=threads, repeat=repeat),
        "train_b64": lambda: bench_training(np.float32, T=32, B=64, D=8, H=64,
                                            threads=threads, repeat=repeat),
        "train_b8": lambda: bench_training(np.float32, T=32, B=8, D=8, H=64, threads=threads,
                                           repeat=repeat),
        "step_b1": lambda: bench_step(1, 64, 256, threads=threads, repeat=repeat),
        "step_b16": lambda: bench_step(16, 64, 256, threads=threads, repeat=repeat),
        "conv": lambda: bench_conv(threads=threads, repeat=repeat),
    }
    if not quick:
        out["large"] = lambda: bench_large(threads=threads, repeat=max(3, repeat // 2))
    return out


# ------------------------------------------------------------------------ builds compared
def _train_fn(pkg, dtype, T, B, D, H):
    rng = np.random.default_rng(0)
    lstm = pkg.LSTM(D, H, dtype=dtype, seed=0)
    x = rng.standard_normal((T, B, D)).astype(dtype)
    dy = rng.standard_normal((T, B, H)).astype(dtype)

    def run():
        _, _, cache = lstm.forward(x)
        lstm.backward(dy, cache)
    return run


def _step_fn(pkg, B, D, H):
    lstm = pkg.LSTM(D, H, seed=0)
    x = np.random.default_rng(0).standard_normal((B, D)).astype(np.float32)
    state = lstm.initial_state(B)
    return lambda: lstm.step(x, state)


def _large_fn(pkg):
    lstm = pkg.LSTM(512, 1024, seed=0)
    x = np.random.default_rng(0).standard_normal((32, 64, 512)).astype(np.float32)
    return lambda: lstm(x)


def _conv_fn(pkg, shape=(84, 84, 4), N=32):
    enc = pkg.layers.ConvEncoder(shape, seed=0)
    x = np.random.default_rng(0).random((N, int(np.prod(shape)))).astype(np.float32)
    d = np.ones((N, enc.out_features), np.float32)

    def run():
        _, cache = enc.forward(x)
        enc.backward(d, cache)
    return run


def _gru_fn(pkg):
    gru = pkg.GRU(128, 256, seed=0)
    x = np.random.default_rng(0).standard_normal((64, 32, 128)).astype(np.float32)
    dy = np.ones((64, 32, 256), np.float32)

    def run():
        _, _, cache = gru.forward(x)
        gru.backward(dy, cache)
    return run


def _convlstm_fn(pkg):
    cell = pkg.ConvLSTM(4, 16, 3, seed=0)
    x = np.random.default_rng(0).standard_normal((8, 4, 4, 16, 16)).astype(np.float32)

    def run():
        y, _, cache = cell.forward(x)
        cell.backward(np.ones_like(y), cache)
    return run


BUILD_CASES = {
    "train_f32": ("train T=64 B=32 D=H=256 float32",
                  lambda p: _train_fn(p, np.float32, 64, 32, 256, 256)),
    "train_f64": ("train T=64 B=32 D=H=256 float64",
                  lambda p: _train_fn(p, np.float64, 64, 32, 256, 256)),
    "train_d64": ("train T=64 B=32 D=64 H=256", lambda p: _train_fn(p, np.float32, 64, 32, 64,
                                                                   256)),
    "train_h128": ("train T=32 B=16 D=32 H=128", lambda p: _train_fn(p, np.float32, 32, 16, 32,
                                                                    128)),
    "train_b64": ("train T=32 B=64 D=8 H=64", lambda p: _train_fn(p, np.float32, 32, 64, 8, 64)),
    "train_b8": ("train T=32 B=8 D=8 H=64", lambda p: _train_fn(p, np.float32, 32, 8, 8, 64)),
    "step_b1": ("step B=1 D=64 H=256", lambda p: _step_fn(p, 1, 64, 256)),
    "step_b16": ("step B=16 D=64 H=256", lambda p: _step_fn(p, 16, 64, 256)),
    "conv": ("conv encoder fwd+bwd 32x84x84x4", _conv_fn),
    "conv_small": ("conv encoder fwd+bwd 256x7x7x3", lambda p: _conv_fn(p, (7, 7, 3), 256)),
    "large": ("forward T=32 B=64 D=512 H=1024", _large_fn),
    "gru": ("GRU train T=64 B=32 D=128 H=256", _gru_fn),
    "convlstm": ("ConvLSTM train T=8 B=4 16x16 4->16", _convlstm_fn),
}


def _import_build(name: str, path: str):
    """The rlstm package of the checkout at ``path``, imported as ``rlstm_<name>`` (a copy in a
    temporary folder), so that several builds run side by side in this process."""
    import atexit
    import importlib
    import shutil
    import tempfile
    src = os.path.join(os.path.abspath(path), "rlstm")
    if os.path.realpath(src) == os.path.realpath(os.path.dirname(os.path.abspath(__file__))):
        return sys.modules[__package__]
    root = tempfile.mkdtemp(prefix="rlstm-builds-")
    atexit.register(shutil.rmtree, root, True)
    shutil.copytree(src, os.path.join(root, f"rlstm_{name}"),
                    ignore=shutil.ignore_patterns("*.c", "*.pyx", "*.pxi", "*.h", "__pycache__"))
    sys.path.insert(0, root)
    return importlib.import_module(f"rlstm_{name}")


def compare_builds(builds: dict, threads: int, repeat: int, names) -> list:
    """Each case of every build timed in alternation in this process (medians); the ratios are
    the first build's time over each other's."""
    pkgs = {b: _import_build(b, path) for b, path in builds.items()}
    limiter = set_threads(threads)
    first, others = list(builds)[0], list(builds)[1:]
    print(f"\n{' vs '.join(builds)}: "
          + ", ".join(f"{b}={os.path.dirname(p.__file__)}" for b, p in pkgs.items())
          + f"\n{threads} thread(s), medians of {repeat} alternating runs\n")
    print(f"| case | {' | '.join(builds)} | "
          + " | ".join(f"{first} time / {o} time" for o in others) + " |")
    print("|---|" + "---|" * (len(builds) + len(others)))
    rows = []
    for name in names:
        label, make = BUILD_CASES[name]
        meds = median_times([make(p) for p in pkgs.values()], repeat)
        ratios = " | ".join(f"{meds[0] / m:.3f}" for m in meds[1:])
        unit, scale = ("ms", 1e3) if meds[0] > 1e-3 else ("µs", 1e6)
        print(f"| {label} | " + " | ".join(f"{m * scale:.2f} {unit}" for m in meds)
              + f" | {ratios} |", flush=True)
        rows.append((label, meds))
    limiter.restore_original_limits()
    return rows


def main(argv=None) -> list[Row]:
    p = argparse.ArgumentParser(prog="rlstm bench", description=__doc__.split("\n")[0])
    p.add_argument("--threads", default="1,2",
                   help="comma-separated thread counts for BLAS, rlstm and torch (default 1,2)")
    p.add_argument("--repeat", type=int, default=9, help="runs per median (default 9)")
    p.add_argument("--quick", action="store_true", help="skip the large shape")
    p.add_argument("--cases", default=None,
                   help="comma-separated subset of: " + ", ".join(cases())
                        + " (with --builds: " + ", ".join(BUILD_CASES) + ")")
    p.add_argument("--builds", default=None,
                   help="NAME=PATH,NAME=PATH: compare rlstm builds (each PATH a checkout with "
                        "its extension built in place); ratios are the first build's time over "
                        "each other's (< 1: the first is faster)")
    args = p.parse_args(argv)
    thread_counts = [int(t) for t in str(args.threads).split(",")]
    if args.builds:
        names = list(BUILD_CASES) if args.cases is None else args.cases.split(",")
        if args.quick and "large" in names:
            names.remove("large")
        builds = dict(item.split("=", 1) for item in args.builds.split(","))
        for t in thread_counts:
            compare_builds(builds, t, args.repeat, names)
        return []
    names = list(cases(args.quick)) if args.cases is None else args.cases.split(",")
    torch = _torch()
    from . import config
    print(f"rlstm ({config.simd_level()} kernels) vs "
          f"{'torch ' + torch.__version__ if torch else '(torch not installed)'}; "
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
          f"median of {args.repeat} alternating runs; ratio = torch / rlstm\n")
    print("| case | rlstm | torch | ratio | note |")
    print("|---|---|---|---|---|")
    rows = []
    for t in thread_counts:
        limiter = set_threads(t)
        table = cases(args.quick, t, args.repeat)
        for name in names:
            row = table[name]()
            print(row.fmt(), flush=True)
            rows.append(row)
        limiter.restore_original_limits()
    return rows


if __name__ == "__main__":
    main()
