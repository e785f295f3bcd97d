"""Latency of one policy step, in Python and exported: ``predict`` vs ONNX Runtime vs C.

One env (batch 1), a CartPole-sized policy (4 float observations, normalised; 2 discrete
actions; one LSTM layer of H units and the value head), H = 16, 64 and 256. Each step is
timed through:

- ``Predictor.predict(obs, state, episode_start, deterministic=True)`` (every trainer's
  predict: normalise, act, clip);
- the raw ``LSTMPolicy.act(obs, state, episode_start, deterministic=True)``;
- ``rlstm.export.to_onnx`` run in ONNX Runtime (``InferenceSession.run``, CPU provider);
- ``rlstm.export.to_c`` compiled with ``cc -std=c99 -O2`` (no ``-march=native``), called
  through ctypes once per step;
- the same C called in a loop in C (one ctypes call for all the steps: the C step alone),
  and that loop again compiled with ``-O3 -march=native`` (what a deployer tuning for one
  machine gets).

Each number is the median over ``--repeats`` runs of ``--calls`` calls. BLAS and ONNX Runtime
use ``--threads`` threads (default 1); the C step is single-threaded. The C object size is
that of ``NAME.o`` (``-O2 -c``); its weights are ``4 * parameters`` bytes of it.

    python benchmarks/export_latency.py [--threads 1] [--repeats 7] [--calls 2000]
"""
from __future__ import annotations

import argparse
import ctypes
import os
import pathlib
import platform
import re
import tempfile

import numpy as np
from gymnasium import spaces
from threadpoolctl import threadpool_limits

import sys
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # this checkout

import rlstm.export  # noqa: E402
from rlstm.benchmark import median_time  # noqa: E402
from rlstm.export.check import compile_c  # noqa: E402
from rlstm.policy import LSTMPolicy, ObsNormalizer, Predictor  # noqa: E402

CFLAGS = ("-std=c99", "-O2")
NATIVE_CFLAGS = ("-std=c99", "-O3", "-march=native")

LOOP_C = r"""#include "policy.h"
/* steps the policy n times on slowly changing observations; returns a checksum */
float policy_loop(policy_state *s, const float *obs0, int n) {
    float obs[POLICY_OBS_SIZE], action[POLICY_ACTION_SIZE], sum = 0.0f;
    for (int i = 0; i < POLICY_OBS_SIZE; ++i) obs[i] = obs0[i];
    for (int t = 0; t < n; ++t) {
        obs[t % POLICY_OBS_SIZE] += 1e-3f;
        policy_step(s, obs, action);
        sum += action[0];
    }
    return sum;
}
"""


def make_predictor(hidden: int) -> Predictor:
    obs_space = spaces.Box(-np.inf, np.inf, (4,), np.float32)
    policy = LSTMPolicy(obs_space, spaces.Discrete(2), hidden_size=hidden, seed=0,
                        action_init_scale=1.0)
    norm = ObsNormalizer((4,))
    norm.update(np.random.default_rng(0).normal(0.0, 1.5, (1000, 4)))
    return Predictor(policy, norm)


def time_python(pred: Predictor, obs: np.ndarray, repeats: int, calls: int):
    box = {"state": pred.initial_state(1)}
    start = np.zeros(1, bool)

    def predict():
        _, box["state"] = pred.predict(obs, box["state"], start, deterministic=True)

    raw_obs = pred.normalize(obs[None])
    raw = {"state": pred.initial_state(1)}

    def act():
        _, _, _, raw["state"] = pred.policy.act(raw_obs, raw["state"], start,
                                                deterministic=True)
    return (median_time(predict, repeats, number=calls),
            median_time(act, repeats, number=calls))


def time_onnx(pred: Predictor, obs: np.ndarray, folder: pathlib.Path, threads: int,
              repeats: int, calls: int) -> float:
    import onnxruntime as ort
    path = rlstm.export.to_onnx(pred, folder / "policy.onnx")
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = opts.inter_op_num_threads = threads
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    K, L, H = rlstm.export.ExportPlan(pred).state_shape
    feed = {"obs": obs[None], "state": np.zeros((K, L, 1, H), np.float32),
            "episode_start": np.zeros(1, bool)}

    def step():
        feed["state"] = sess.run(None, feed)[2]
    return median_time(step, repeats, number=calls)


def _load(c_file: pathlib.Path, cflags, name: str):
    lib = ctypes.CDLL(str(compile_c(c_file, c_file.parent / name, main_source=LOOP_C,
                                    cflags=cflags, shared=True)))
    lib.policy_step.argtypes = [ctypes.c_void_p] * 3
    lib.policy_step.restype = ctypes.c_int
    lib.policy_loop.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int]
    lib.policy_loop.restype = ctypes.c_float
    return lib


def time_c(pred: Predictor, obs: np.ndarray, folder: pathlib.Path, repeats: int, calls: int):
    h_file, c_file = rlstm.export.to_c(pred, folder, name="policy")
    lib = _load(c_file, CFLAGS, "libpolicy.so")
    native = _load(c_file, NATIVE_CFLAGS, "libpolicy_native.so")
    obj = compile_c(c_file, folder / "policy.o", cflags=CFLAGS + ("-c",))
    header = h_file.read_text()
    size = lambda macro: int(re.search(rf"#define POLICY_{macro} (\d+)", header).group(1))  # noqa: E731
    n_state = size("NUM_STATES") * size("NUM_LAYERS") * size("HIDDEN_SIZE")
    state = np.zeros(n_state + size("HAS_VALUE") + size("WORK_SIZE"), np.float32)  # all floats
    action = np.zeros(size("ACTION_SIZE"), np.float32)
    s_ptr, o_ptr, a_ptr = (a.ctypes.data_as(ctypes.c_void_p) for a in (state, obs, action))
    lib.policy_reset(s_ptr)
    step = lib.policy_step
    t_ctypes = median_time(lambda: step(s_ptr, o_ptr, a_ptr), repeats, number=calls)
    n = 20 * calls
    t_loop = median_time(lambda: lib.policy_loop(s_ptr, o_ptr, n), repeats, number=1) / n
    t_native = median_time(lambda: native.policy_loop(s_ptr, o_ptr, n), repeats, number=1) / n
    return t_ctypes, t_loop, t_native, os.path.getsize(obj), c_file.stat().st_size


def cpu_name() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main(argv=None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--calls", type=int, default=2000)
    ap.add_argument("--hidden", type=int, nargs="+", default=[16, 64, 256])
    args = ap.parse_args(argv)
    import onnxruntime as ort
    print(f"CPU: {cpu_name()}; threads={args.threads} (BLAS, ONNX Runtime {ort.__version__}); "
          f"C: cc {' '.join(CFLAGS)}; median of {args.repeats} runs of {args.calls} calls")
    print("| H | params | predict | LSTMPolicy.act | onnxruntime | C via ctypes | C in a C loop "
          "| predict / C loop | C loop, -O3 -march=native | C object size |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    rows = []
    obs = np.array([0.1, -0.2, 0.05, 0.3], np.float32)
    with threadpool_limits(limits=args.threads), tempfile.TemporaryDirectory() as tmp:
        for H in args.hidden:
            pred = make_predictor(H)
            folder = pathlib.Path(tmp) / f"h{H}"
            t_predict, t_act = time_python(pred, obs, args.repeats, args.calls)
            t_onnx = time_onnx(pred, obs, folder, args.threads, args.repeats, args.calls)
            t_ctypes, t_loop, t_native, obj_size, c_size = time_c(pred, obs, folder,
                                                                  args.repeats, args.calls)
            row = dict(H=H, params=int(pred.policy.num_params), predict=t_predict, act=t_act,
                       onnx=t_onnx, c_ctypes=t_ctypes, c_loop=t_loop, c_loop_native=t_native,
                       object_bytes=obj_size, source_bytes=c_size)
            rows.append(row)
            us = lambda t: f"{t * 1e6:.2f} µs"  # noqa: E731
            print(f"| {H} | {row['params']} | {us(t_predict)} | {us(t_act)} | {us(t_onnx)} | "
                  f"{us(t_ctypes)} | {us(t_loop)} | {t_predict / t_loop:.0f}× | "
                  f"{us(t_native)} | {obj_size / 1024:.1f} KiB |")
    return rows


if __name__ == "__main__":
    main()
