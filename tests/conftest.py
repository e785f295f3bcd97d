"""Shared test helpers: tolerances per dtype, random LSTM cases, a hypothesis profile.

Helpers are session-scoped fixtures (the suite runs with ``--import-mode=importlib``, so tests
cannot import this file), which also keeps them usable inside hypothesis tests.
"""
from __future__ import annotations

import importlib.util
import json
import pathlib

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

settings.register_profile("rlstm", max_examples=50, deadline=None, derandomize=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("rlstm")

# Kernel vs the float64 reference. float64 agrees to a few ulps; float32 to its rounding error
# accumulated over T steps and layers. Measured on tests/test_lstm.py's cases: the worst error is
# 13% of these tolerances in float32 and 0.2% in float64 (room for another BLAS).
TOLERANCES = {
    np.dtype(np.float32): dict(rtol=2e-5, atol=1e-5),
    np.dtype(np.float64): dict(rtol=1e-10, atol=1e-12),
}


# Against PyTorch: torch runs its own kernels (oneDNN/MKL in float32), so float32 gets a little
# more room than against the reference. Measured worst error on tests/rlstm/test_*_torch.py's
# cases: 7% of these in float32 (about 1e-6), 0.03% in float64 (2e-15).
TORCH_TOLERANCES = {
    np.dtype(np.float32): dict(rtol=5e-5, atol=2e-5),
    np.dtype(np.float64): dict(rtol=1e-10, atol=1e-12),
}


@pytest.fixture(params=[np.float32, np.float64], ids=["float32", "float64"])
def dtype(request):
    return np.dtype(request.param)


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


@pytest.fixture(scope="session")
def tol():
    """``tol(dtype)`` -> ``dict(rtol=..., atol=...)`` for comparing with the reference."""
    return lambda dt: TOLERANCES[np.dtype(dt)]


@pytest.fixture(scope="session")
def torch_tol():
    """``torch_tol(dtype)`` -> ``dict(rtol=..., atol=...)`` for comparing with PyTorch."""
    return lambda dt: TORCH_TOLERANCES[np.dtype(dt)]


@pytest.fixture
def one_torch_thread():
    """PyTorch on one thread for the test (its thread count is restored afterwards): the
    comparisons then see the same summation order every run. Opt in with
    ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``."""
    torch = pytest.importorskip("torch")
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="session")
def load_script():
    """``load_script("benchmarks/popgym_suite.py")`` -> that script of the checkout as a module
    (loaded once per session): tests cannot import benchmarks/ or docs/ scripts by name."""
    root = pathlib.Path(__file__).resolve().parents[1]
    loaded = {}

    def load(relpath: str):
        if relpath not in loaded:
            path = root / relpath
            spec = importlib.util.spec_from_file_location(path.stem, path)
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            loaded[relpath] = module
        return loaded[relpath]
    return load


@pytest.fixture(scope="session")
def make_inputs():
    """``make_inputs(lstm, T, B, rng, state=True, resets=0.0)`` -> ``(x, state, resets)``.

    ``x`` is N(0, 1) in the layer's dtype; ``state`` a random ``(h0, c0)`` (or None);
    ``resets`` a boolean mask with that probability of True (or None when 0).
    """
    def make(lstm, T, B, rng, state=True, resets=0.0):
        dt = lstm.dtype
        x = rng.standard_normal((T, B, lstm.input_size)).astype(dt)
        shape = (lstm.num_layers * lstm.num_directions, B, lstm.hidden_size)
        st = (rng.standard_normal(shape).astype(dt),
              rng.standard_normal(shape).astype(dt)) if state else None
        rs = (rng.random((T, B)) < resets) if resets else None
        return x, st, rs
    return make


EXAMPLES = pathlib.Path(__file__).resolve().parents[1] / "examples"


@pytest.fixture(scope="session")
def load_example():
    """``load_example(name)``: the module ``examples/<name>.py`` (examples are scripts, not a
    package), so a test can call its ``main``."""
    def load(name):
        spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    return load


@pytest.fixture(scope="session")
def params64():
    """``params64(lstm)``: the layer's parameters as float64 copies (for the reference)."""
    return lambda lstm: {k: v.astype(np.float64) for k, v in lstm.params.items()}


CASE_PREAMBLE = """
import json, resource, sys, traceback
limit = {limit}
if limit:
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
def _report(kind, message=""):
    print("@@CASE@@" + json.dumps({{"outcome": kind, "message": message}}), flush=True)
try:
{body}
except BaseException as e:
    _report(type(e).__name__, " ".join(str(e).split()))
    sys.exit(0)
_report("ok")
"""


@pytest.fixture(scope="session")
def isolated():
    """``isolated(code, timeout=120, memory_gib=None) -> (outcome, message)``: run ``code`` in a
    fresh Python process (so a crash or a hang fails only its own case), optionally under an
    address-space limit, and return the name of the exception it raised (``"ok"`` if none)
    and its message on one line. A crash, a timeout or a missing report fails the test."""
    import os
    import subprocess
    import sys
    import textwrap

    root = pathlib.Path(__file__).resolve().parents[1]

    def run(code: str, timeout: float = 120, memory_gib: float | None = None):
        body = textwrap.indent(textwrap.dedent(code).strip("\n"), "    ")
        script = CASE_PREAMBLE.format(limit=int(memory_gib * 2 ** 30) if memory_gib else 0,
                                      body=body)
        env = {**os.environ, "PYTHONPATH": str(root), "MPLBACKEND": "Agg"}
        try:
            p = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                               timeout=timeout, env=env, cwd=root)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the case hung for more than {timeout} s:\n{code}")
        lines = [ln for ln in p.stdout.splitlines() if ln.startswith("@@CASE@@")]
        if p.returncode != 0 or not lines:
            pytest.fail(f"the case crashed (exit {p.returncode}):\n{code}\n--- stderr:\n"
                        f"{p.stderr[-3000:]}")
        result = json.loads(lines[-1][len("@@CASE@@"):])
        return result["outcome"], result["message"]
    return run
