"""SIMD dispatch, the sweep threads and show_config."""
from __future__ import annotations

import io
import os
import subprocess
import sys

import numpy as np
import pytest

import rlstm
from rlstm import LSTM, _kernels


def _run(code: str, **env) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, **env}, timeout=120)


def test_the_portable_levels_are_always_built():
    levels = _kernels.simd_levels()
    assert levels[-1] == "generic" and _kernels.simd_supported("generic")
    if "sse2" in levels:
        assert _kernels.simd_supported("sse2")  # the x86-64 baseline


@pytest.mark.parametrize("level", [lv for lv in _kernels.simd_levels()
                                   if _kernels.simd_supported(lv)])
def test_the_environment_variable_forces_a_level(level):
    r = _run("import rlstm; print(rlstm.config.simd_level())", RLSTM_SIMD=level)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == level


def test_an_unknown_level_warns_and_falls_back_to_the_best():
    r = _run("import warnings; warnings.simplefilter('always');"
             "import rlstm; print(rlstm.config.simd_level())", RLSTM_SIMD="avx9000")
    assert r.returncode == 0, r.stderr
    assert "RLSTM_SIMD='avx9000' ignored" in r.stderr
    assert r.stdout.strip() == rlstm.config.simd_levels()[0]


def test_selecting_an_unknown_level_raises_and_keeps_the_current_one():
    before = rlstm.config.simd_level()
    with pytest.raises(ValueError, match="unknown SIMD level"):
        _kernels.simd_select("avx9000")
    assert rlstm.config.simd_level() == before


def test_show_config_names_the_level_the_threads_and_the_blas():
    buf = io.StringIO()
    rlstm.show_config(file=buf)
    text = buf.getvalue()
    assert f"kernels: {rlstm.config.simd_level()}" in text
    assert f"sweep threads: {rlstm.get_num_threads()}" in text
    assert "BLAS" in text and "openblas" in text.lower()


def test_threadpoolctl_limits_the_sweep_threads():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    before = rlstm.get_num_threads()
    with threadpoolctl.threadpool_limits(1):
        assert rlstm.get_num_threads() == 1
    assert rlstm.get_num_threads() == before
    assert any(lib["user_api"] == "rlstm" for lib in threadpoolctl.threadpool_info())


def test_set_num_threads_checks_its_argument():
    with pytest.raises(ValueError, match=">= 1"):
        rlstm.set_num_threads(0)


@pytest.mark.parametrize("bidirectional,variant", [(False, "vanilla"), (True, "peephole")])
def test_a_threaded_sweep_gives_the_same_bits_as_one_thread(dtype, simd, bidirectional,
                                                            variant, make_inputs, rng):
    """Each hidden unit is computed by one thread in the same order whatever the team size."""
    lstm = LSTM(16, 200, bidirectional=bidirectional, variant=variant, dtype=dtype, seed=4)
    x, state, resets = make_inputs(lstm, 5, 27, rng, resets=0.2)   # 8*B*H*H >= 2^23: a team
    dy = rng.standard_normal((5, 27, 200 * lstm.num_directions)).astype(dtype)
    before = rlstm.get_num_threads()
    runs = []
    teams = _kernels._team_sweeps()
    try:
        for threads in (1, 3):
            rlstm.set_num_threads(threads)
            y, (h, c), cache = lstm.forward(x, state, resets)
            lstm.zero_grad()
            dx, (dh0, dc0) = lstm.backward(dy, cache)
            runs.append((y, h, c, dx, dh0, dc0, lstm.flat_grads.copy()))
    finally:
        rlstm.set_num_threads(before)
    assert _kernels._team_sweeps() >= teams + 2 * lstm.num_directions   # forward and backward
    for a, b in zip(*runs):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("M,N,K", [(1, 1, 1), (7, 5, 3), (13, 16, 9), (30, 32, 40), (6, 64, 17),
                                   (25, 100, 33), (3, 130, 300), (50, 17, 0), (0, 8, 4)])
@pytest.mark.parametrize("accumulate", [False, True])
def test_the_micro_kernel_gemm_matches_numpy(M, N, K, accumulate, dtype, simd, rng):
    """The register-blocked GEMM of the kernel library: full, narrow and partial panels."""
    a = rng.standard_normal((M, K)).astype(dtype)
    b = rng.standard_normal((K, N)).astype(dtype)
    c = rng.standard_normal((M, N)).astype(dtype)
    want = a.astype(np.float64) @ b + (c if accumulate else 0)
    _kernels.small_gemm(a, b, c, accumulate)
    np.testing.assert_allclose(c, want, rtol=1e-5 if dtype == np.float32 else 1e-12,
                               atol=1e-4 if dtype == np.float32 else 1e-12)
