"""Fixtures of the kernel tests: every SIMD level this machine runs."""
from __future__ import annotations

import pytest

from rlstm import _kernels


@pytest.fixture(params=_kernels.simd_levels())
def simd(request):
    """Run the test at one SIMD level of this build (skipped where the CPU cannot run it); the
    level in use before is restored afterwards."""
    if not _kernels.simd_supported(request.param):
        pytest.skip(f"this CPU cannot run the {request.param} kernels")
    before = _kernels.simd_current()
    _kernels.simd_select(request.param)
    yield request.param
    _kernels.simd_select(before)
