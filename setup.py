"""Build script: compiles rlstm/_kernels.pyx against scipy's cython_blas.

Compiler directives are set here, once. ``RLSTM_DEBUG=1`` builds with bounds checking,
wraparound checks and initialized-memoryview checks turned back on, for a debug test run.
"""
import os

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup

DEBUG = os.environ.get("RLSTM_DEBUG", "0") not in ("", "0")

directives = {
    "language_level": 3,
    "boundscheck": DEBUG,
    "wraparound": DEBUG,
    "initializedcheck": DEBUG,
    "cdivision": not DEBUG,
    "nonecheck": DEBUG,
    "embedsignature": True,
}

if DEBUG:
    compile_args = ["-O1", "-g"]
else:
    # -ffast-math would break the -inf guards of CTC and NaN detection, so only the safe parts.
    compile_args = ["-O3", "-fno-math-errno", "-fno-trapping-math"]
    if os.environ.get("RLSTM_PORTABLE", "0") in ("", "0"):
        # Built from source on the machine that runs it: use its SIMD width.
        compile_args.append("-march=native")

extensions = [
    Extension(
        "rlstm._kernels",
        ["rlstm/_kernels.pyx"],
        include_dirs=[np.get_include(), "rlstm"],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
        extra_compile_args=compile_args,
    )
]

# Re-generate the C file whenever the build mode changes (debug <-> optimised): a stale
# rlstm/_kernels.c would otherwise keep the other mode's directives.
_mode_file = os.path.join(os.path.dirname(os.path.abspath(__file__)), "rlstm", ".build-mode")
_mode = "debug" if DEBUG else "release"
try:
    with open(_mode_file) as f:
        _force = f.read().strip() != _mode
except OSError:
    _force = True
ext_modules = cythonize(extensions, compiler_directives=directives, force=_force, quiet=True)
with open(_mode_file, "w") as f:
    f.write(_mode)

setup(ext_modules=ext_modules)
