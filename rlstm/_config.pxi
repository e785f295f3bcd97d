# The compiled kernel library's settings: the SIMD level in use and the sweep threads.
# Included by _kernels.pyx; rlstm/_config.py is the public side (show_config, set_num_threads).
import os as _os
import warnings as _warnings

cdef extern from "_rlk.h" nogil:
    int rl_simd_select(const char* name)
    const char* rl_simd_current()
    const char* rl_simd_compiled()
    int rl_simd_supported(const char* name)
    void rlstm_set_num_threads(int n)
    int rlstm_get_num_threads()
    long rl_team_sweeps()

SIMD_ENV = "RLSTM_SIMD"


def simd_levels():
    """The SIMD levels compiled into this build, best first (e.g. avx512, avx2, sse2, generic)."""
    return rl_simd_compiled().decode().split(",")


def simd_supported(str name):
    """Whether this build has level ``name`` and this CPU runs it."""
    return bool(rl_simd_supported(name.encode()))


def simd_current():
    """The SIMD level the kernels run now."""
    return rl_simd_current().decode()


def simd_select(str name):
    """Run the kernels at SIMD level ``name`` (``"auto"``: the best this CPU runs)."""
    cdef int rc = rl_simd_select(name.encode())
    if rc == -1:
        raise ValueError(f"unknown SIMD level {name!r}: this build has "
                         f"{', '.join(simd_levels())} (or 'auto')")
    if rc == -2:
        raise ValueError(f"this CPU cannot run the {name!r} kernels; it runs "
                         f"{', '.join(l for l in simd_levels() if simd_supported(l))}")


def set_num_threads(int n):
    """Threads of the recurrent sweeps (at least 1)."""
    rlstm_set_num_threads(n)


def get_num_threads():
    return rlstm_get_num_threads()


def _team_sweeps():
    """How many sweeps have run on more than one thread in this process (for the tests)."""
    return rl_team_sweeps()


def _select_from_env():
    name = _os.environ.get(SIMD_ENV, "auto").strip().lower() or "auto"
    try:
        simd_select(name)
    except ValueError as e:
        _warnings.warn(f"{SIMD_ENV}={name!r} ignored: {e}", RuntimeWarning, stacklevel=2)
        simd_select("auto")


_select_from_env()
