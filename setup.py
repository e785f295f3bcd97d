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

The build reports its stages (cythonize, each compiled file, the link) with the seconds elapsed;
``pip install -v .`` shows them (pip hides a build's output without ``-v``). The extension's own
C file and the kernel library's per-level files are compiled in parallel, one compiler process
per CPU (``python setup.py build_ext -j N`` sets another number).
"""
import os
import platform
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

_T0 = time.monotonic()


def stage(message: str) -> None:
    """One progress line of the build, with the seconds since setup.py started."""
    print(f"rlstm build [{time.monotonic() - _T0:6.1f} s] {message}", flush=True)


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
    # -g0 overrides the -g of Python's own CFLAGS: no debug info in what ships (a quarter less
    # compile time, and a .so a quarter of the size).
    compile_args = ["-O3", "-fno-math-errno", "-fno-trapping-math", "-g0"]
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
    """Compiles rlstm/_rlk_<level>.c with each level's flags and links the objects in.

    The extension's own sources and the per-level kernel files are compiled side by side by a
    pool of threads (each thread runs one compiler process), longest first, then linked.
    """

    def build_extension(self, ext):
        if ext.name != "rlstm._kernels":
            return super().build_extension(ext)
        ctype = self.compiler.compiler_type
        levels = simd_levels(ctype)
        base = [] if ctype == "msvc" else list(compile_args) + ["-ffp-contract=fast"]
        ext.define_macros = [m for m in ext.define_macros if not m[0].startswith("RL_HAVE_")]
        ext.define_macros += [(f"RL_HAVE_{level.upper()}", "1") for level, _ in levels]
        jobs = self.parallel if isinstance(self.parallel, int) and self.parallel > 0 else _cpus()
        compile_one = self.compiler.compile
        ran = []

        def compile_all(sources, **kwargs):
            # build_ext calls this once, with the extension's sources (only when the extension
            # is out of date); the kernel library's levels compile alongside them, and their
            # objects join the link as extra objects.
            ran.append(True)
            tasks = [([src], kwargs, src) for src in sources]
            tasks += [([f"rlstm/_rlk_{level}.c"],
                       dict(output_dir=self.build_temp, include_dirs=["rlstm"],
                            extra_postargs=base + flags, depends=RLK_HEADERS, debug=DEBUG),
                       f"rlstm/_rlk_{level}.c ({level} kernels)") for level, flags in levels]
            # the Cython output is by far the longest: start it first
            tasks.sort(key=lambda t: not t[0][0].endswith("_kernels.c"))
            stage(f"compiling {len(tasks)} C files, {min(jobs, len(tasks))} at a time "
                  f"({'debug' if DEBUG else 'release'}{', -march=native' if NATIVE else ''})")

            def run(task):
                srcs, kw, label = task
                start = time.monotonic()
                stage(f"compile {label} ...")
                objs = compile_one(srcs, **kw)
                stage(f"compiled {label} in {time.monotonic() - start:.1f} s")
                return objs

            with ThreadPoolExecutor(max_workers=max(1, min(jobs, len(tasks)))) as pool:
                results = list(pool.map(run, tasks))
            own = [o for (srcs, _, _), objs in zip(tasks, results) if srcs[0] in sources
                   for o in objs]
            ext.extra_objects = [o for (srcs, _, _), objs in zip(tasks, results)
                                 if srcs[0] not in sources for o in objs]
            stage(f"linking {self.get_ext_filename(ext.name)} ...")
            return own

        force, self.compiler.force = self.compiler.force, self.compiler.force or _force
        self.compiler.compile = compile_all
        try:
            super().build_extension(ext)
        finally:
            del self.compiler.compile   # the bound method again
            self.compiler.force = force
        stage(f"built {ext.name}" if ran else f"{ext.name} is up to date: nothing to compile")


def _cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


RLK_HEADERS = [f"rlstm/{f}" for f in ("_rlk.h", "_rlk_internal.h", "_rlk_simd.h",
                                      "_rlk_level.h", "_rlk_body.h", "_fastmath.h")]

extensions = [
    Extension(
        "rlstm._kernels",
        ["rlstm/_kernels.pyx", "rlstm/_rlk_dispatch.c"],
        include_dirs=[np.get_include(), "rlstm"],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
        extra_compile_args=compile_args,
        # the level files too: build_ext skips an extension that is newer than all of these
        depends=RLK_HEADERS + ["rlstm/_cells.h"] + [f"rlstm/_rlk_{level}.c" for level in
                                                    ("avx512", "avx2", "sse2", "neon", "generic")],
    )
]

# Re-generate the C file whenever the build mode changes (debug <-> optimised): a stale
# rlstm/_kernels.c would otherwise keep the other mode's directives.
_mode_file = os.path.join(os.path.dirname(os.path.abspath(__file__)), "rlstm", ".build-mode")
_mode = ("debug" if DEBUG else "release") + ("-native" if NATIVE else "")
try:
    with open(_mode_file) as f:
        _previous = f.read().strip()
except OSError:
    _previous = None
_force = _previous != _mode
# pip runs setup.py several times (requirements, metadata, the build): say which one this is
_command = "".join(f" {w}" for w in sys.argv[1:] if not w.startswith("-") and os.sep not in w)
stage(f"setup.py{_command}: cythonize rlstm/_kernels.pyx, {_mode} build "
      + ("(no earlier build here: generating)" if _previous is None else
         f"(the last build was {_previous}: regenerating)" if _force else
         "(regenerated only if one of its sources changed)"))
_t = time.monotonic()
ext_modules = cythonize(extensions, compiler_directives=directives, force=_force, quiet=True)
stage(f"cythonize done in {time.monotonic() - _t:.1f} s")
with open(_mode_file, "w") as f:
    f.write(_mode)

setup(ext_modules=ext_modules, cmdclass={"build_ext": BuildExt})
