"""Build script: compiles rlstm/_kernels.pyx against scipy's cython_blas, and the kernel library
(rlstm/_rlk_*.c) once per SIMD level.

Compiler directives are set here, once. ``RLSTM_DEBUG=1`` builds with bounds checking,
wraparound checks and initialized-memoryview checks turned back on, for a debug test run.

The binary is portable: nothing is compiled with ``-march=native``. The hot kernels are built for
each SIMD level of the target (x86-64: AVX-512, AVX2+FMA, the SSE2 baseline and plain C;
aarch64: NEON and plain C; elsewhere plain C), each translation unit with its own flags, and
the best level the CPU runs is picked at import (``RLSTM_SIMD`` forces one; see
``rlstm.show_config()``). ``RLSTM_NATIVE=1`` adds ``-march=native`` everywhere, for a build that
only ever runs on the machine that compiled it.
"""
import os
import platform

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

DEBUG = os.environ.get("RLSTM_DEBUG", "0") not in ("", "0")
NATIVE = os.environ.get("RLSTM_NATIVE", "0") not in ("", "0")

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
if NATIVE:
    compile_args.append("-march=native")


def simd_levels(compiler_type: str) -> list[tuple[str, list[str]]]:
    """(level, extra flags) for each SIMD level to build, best first."""
    machine = platform.machine().lower()
    if compiler_type == "msvc":
        return [("generic", [])]
    if machine in ("x86_64", "amd64"):
        return [("avx512", ["-mavx512f", "-mavx512dq", "-mavx512bw", "-mavx512vl", "-mavx2",
                            "-mfma", "-mprefer-vector-width=512"]),
                ("avx2", ["-mavx2", "-mfma"]),
                ("sse2", []),
                ("generic", [])]
    if machine in ("aarch64", "arm64"):
        return [("neon", []), ("generic", [])]
    return [("generic", [])]


class BuildExt(build_ext):
    """Compiles rlstm/_rlk_<level>.c with each level's flags and links the objects in."""

    def build_extension(self, ext):
        if ext.name == "rlstm._kernels":
            ctype = self.compiler.compiler_type
            levels = simd_levels(ctype)
            base = [] if ctype == "msvc" else list(compile_args) + ["-ffp-contract=fast"]
            objects = []
            force, self.compiler.force = self.compiler.force, self.compiler.force or _force
            for level, flags in levels:
                objects += self.compiler.compile(
                    [f"rlstm/_rlk_{level}.c"], output_dir=self.build_temp,
                    include_dirs=["rlstm"], extra_postargs=base + flags,
                    depends=RLK_HEADERS, debug=DEBUG)
            self.compiler.force = force
            ext.extra_objects = objects
            ext.define_macros = [m for m in ext.define_macros if not m[0].startswith("RL_HAVE_")]
            ext.define_macros += [(f"RL_HAVE_{level.upper()}", "1") for level, _ in levels]
        super().build_extension(ext)


RLK_HEADERS = [f"rlstm/{f}" for f in ("_rlk.h", "_rlk_internal.h", "_rlk_simd.h",
                                      "_rlk_level.h", "_rlk_body.h", "_fastmath.h")]

extensions = [
    Extension(
        "rlstm._kernels",
        ["rlstm/_kernels.pyx", "rlstm/_rlk_dispatch.c"],
        include_dirs=[np.get_include(), "rlstm"],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
        extra_compile_args=compile_args,
        depends=RLK_HEADERS + ["rlstm/_cells.h"],
    )
]

# Re-generate the C file whenever the build mode changes (debug <-> optimised): a stale
# rlstm/_kernels.c would otherwise keep the other mode's directives.
_mode_file = os.path.join(os.path.dirname(os.path.abspath(__file__)), "rlstm", ".build-mode")
_mode = ("debug" if DEBUG else "release") + ("-native" if NATIVE else "")
try:
    with open(_mode_file) as f:
        _force = f.read().strip() != _mode
except OSError:
    _force = True
ext_modules = cythonize(extensions, compiler_directives=directives, force=_force, quiet=True)
with open(_mode_file, "w") as f:
    f.write(_mode)

setup(ext_modules=ext_modules, cmdclass={"build_ext": BuildExt})
