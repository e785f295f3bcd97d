"""How rlstm's compiled kernels run on this machine: the SIMD level, the threads, the BLAS.

The hot kernels are compiled for several SIMD levels (x86-64: ``avx512``, ``avx2`` (with FMA),
``sse2`` (the baseline every x86-64 CPU runs) and ``generic`` (plain C); aarch64: ``neon`` and
``generic``). At import the best level the CPU runs is picked from CPUID. The environment
variable ``RLSTM_SIMD`` (read at import) forces one, e.g. ``RLSTM_SIMD=avx2``; a level the CPU
cannot run is refused with a warning and the best one is used instead.

The recurrent sweeps of the LSTM split their weight panels across a team of threads (one
persistent team per call, meeting at a barrier once per time step) when a step's recurrent
product is large enough to pay for it. The team's size follows :func:`set_num_threads`, the
environment variable ``RLSTM_NUM_THREADS`` at import, and ``threadpoolctl``: rlstm registers
itself there (``user_api="rlstm"``), so ``threadpool_limits(1)`` limits it together with BLAS.
"""
from __future__ import annotations

import os
import sys

from . import _kernels

__all__ = ["show_config", "simd_level", "simd_levels", "set_num_threads", "get_num_threads"]

SIMD_ENV = _kernels.SIMD_ENV
THREADS_ENV = "RLSTM_NUM_THREADS"


def simd_level() -> str:
    """The SIMD level the kernels run at now."""
    return _kernels.simd_current()


def simd_levels(supported_only: bool = True) -> list[str]:
    """The SIMD levels of this build, best first (only those this CPU runs, by default)."""
    levels = _kernels.simd_levels()
    return [lv for lv in levels if _kernels.simd_supported(lv)] if supported_only else levels


def set_num_threads(n: int) -> None:
    """Threads of the recurrent sweeps (BLAS keeps its own setting; see threadpoolctl)."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"the number of threads must be an int >= 1, got {n!r}")
    _kernels.set_num_threads(n)


def get_num_threads() -> int:
    """Threads the recurrent sweeps may use."""
    return _kernels.get_num_threads()


def _default_threads() -> int:
    env = os.environ.get(THREADS_ENV, "").strip()
    if env:
        try:
            return max(1, int(env))
        except ValueError:
            pass
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def _register_threadpoolctl() -> None:
    """Let threadpoolctl see and limit the sweeps' threads (user_api ``"rlstm"``)."""
    try:
        from threadpoolctl import LibController, register
    except ImportError:  # an old threadpoolctl: set_num_threads still works
        return

    class RlstmController(LibController):
        user_api = "rlstm"
        internal_api = "rlstm"
        filename_prefixes = ("_kernels",)
        check_symbols = ("rlstm_get_num_threads", "rlstm_set_num_threads")

        def get_num_threads(self):
            return self.dynlib.rlstm_get_num_threads()

        def set_num_threads(self, num_threads):
            self.dynlib.rlstm_set_num_threads(int(num_threads))

        def get_version(self):
            from . import __version__
            return __version__

        def set_additional_attributes(self):
            self.simd = _kernels.simd_current()

    register(RlstmController)


def show_config(file=None) -> None:
    """Print the SIMD level in use, the levels of this build, the threads and the BLAS."""
    out = file or sys.stdout
    from . import __version__
    forced = (os.environ.get(SIMD_ENV) or "").strip().lower()
    print(f"rlstm {__version__} ({_kernels.__file__})", file=out)
    print(f"  kernels: {simd_level()}"
          + (f" (forced by {SIMD_ENV}={forced})" if forced == simd_level() else
             " (picked from CPUID" + (f"; {SIMD_ENV}={forced} ignored)" if forced
                                      and forced != "auto" else ")")), file=out)
    print(f"  compiled levels: {', '.join(simd_levels(False))}; this CPU runs: "
          f"{', '.join(simd_levels())}", file=out)
    print(f"  sweep threads: {get_num_threads()} ({THREADS_ENV}, rlstm.set_num_threads or "
          f"threadpoolctl)", file=out)
    try:
        import scipy.linalg  # noqa: F401  (loads the BLAS rlstm calls)
        from threadpoolctl import threadpool_info
        for lib in threadpool_info():
            if lib.get("user_api") != "blas":
                continue
            path = lib.get("filepath", "")
            who = ("scipy's: the one rlstm's kernels call" if "scipy.libs" in path else
                   "numpy's" if "numpy" in path else "loaded")
            print(f"  BLAS ({who}): {lib.get('internal_api')} {lib.get('version') or ''} "
                  f"({lib.get('architecture', '?')}), {lib.get('num_threads')} threads, "
                  f"{os.path.basename(path)}", file=out)
    except ImportError:
        print("  BLAS: (threadpoolctl not installed)", file=out)


_kernels.set_num_threads(_default_threads())
_register_threadpoolctl()
