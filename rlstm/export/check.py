"""``check``: run an exported artefact next to ``Predictor.predict`` and report the differences.

Both are stepped through the same observations, with episode starts, and compared step by
step: every discrete, multi-discrete and binary action must be identical, and the ``Box``
actions, the value and the recurrent state must agree within ``max(atol, rtol * |reference|)``:
by default 1e-5 absolute for numbers up to 1 in magnitude and 1e-5 relative beyond (a trained
LSTM's cell state reaches tens, where float32's own spacing is several 1e-6).
The observations are recorded from episodes of an env (the policy playing it, with
``predict``), drawn at random from the observation space (valid action masks included), or
given. An ONNX model runs in ONNX Runtime; C source is compiled with the system
compiler and a small harness program, and run as a separate process (so sanitizers work).
"""
from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import tempfile
from dataclasses import dataclass

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from ..policy.spaces import tree_map
from .layout import Part, flatten_action, flatten_observation
from .plan import ExportPlan

__all__ = ["check", "CheckReport", "random_observations", "record_episodes", "run_onnx",
           "run_c", "compile_c", "differences", "DEFAULT_CFLAGS"]

#: flags ``check`` compiles C artefacts with unless told otherwise
DEFAULT_CFLAGS = ("-std=c99", "-O2", "-Wall", "-Wextra")


@dataclass
class CheckReport:
    """What :func:`check` measured.

    Attributes:
        format: ``"onnx"`` or ``"c"``.
        steps, batch_size: steps run, each for ``batch_size`` envs.
        episode_starts: how many (step, env) pairs began an episode (state reset).
        action_mismatches: (step, env) pairs where a discrete, multi-discrete or binary action
            differed (must be 0).
        max_action_diff: the largest ``|difference|`` of a ``Box`` action (0.0 without one).
        max_state_diff: the largest ``|difference|`` of the recurrent state.
        max_value_diff: the largest ``|difference|`` of the value (None: not exported).
        out_of_tolerance: how many Box action, value and state entries differ by more than
            ``max(atol, rtol * |reference|)`` (must be 0).
        atol, rtol: the tolerance used.
        errors: (step, env) pairs where the C artefact refused its input (must be 0).
        observations: where the observations came from (``"random"``, ``"given"`` or
            ``"N episodes of ENV"``).
    """
    format: str
    steps: int
    batch_size: int
    episode_starts: int
    action_mismatches: int
    max_action_diff: float
    max_state_diff: float
    max_value_diff: float | None
    out_of_tolerance: int
    atol: float
    rtol: float
    errors: int = 0
    observations: str = "random"

    @property
    def ok(self) -> bool:
        """Every discrete action identical, everything else within tolerance."""
        return self.action_mismatches == 0 and self.errors == 0 and self.out_of_tolerance == 0

    def __str__(self) -> str:
        value = "n/a" if self.max_value_diff is None else f"{self.max_value_diff:.2e}"
        return (f"{'PASS' if self.ok else 'FAIL'} ({self.format}): {self.steps} steps x "
                f"{self.batch_size} env(s) ({self.observations} observations), "
                f"{self.episode_starts} episode starts; discrete "
                f"action mismatches {self.action_mismatches}; max |diff| Box action "
                f"{self.max_action_diff:.2e}, value {value}, state {self.max_state_diff:.2e}; "
                f"{self.out_of_tolerance} beyond max({self.atol:g}, {self.rtol:g} * |ref|)"
                + (f"; the C step refused {self.errors} input(s)" if self.errors else ""))


# ---------------------------------------------------------------------------- observations
def _sample_part(p: Part, plan: ExportPlan, shape: tuple, rng) -> np.ndarray:
    sp = p.space
    if p.kind == "mask":
        m = (rng.random(shape + (p.size,)) < 0.6).astype(np.int8)
        flat = m.reshape(-1, p.size)
        for h in plan.heads:  # every categorical keeps at least one allowed action
            if h.mask is None:
                continue
            for off, n, _ in h.groups:
                a = h.mask.start + off
                dead = ~flat[:, a:a + n].any(axis=1)
                flat[dead, a + rng.integers(n, size=int(dead.sum()))] = 1
        return flat.reshape(shape + tuple(sp.shape))
    if p.kind == "image" and plan.image_codes is not None:  # a valid code in each channel
        codes = np.asarray(plan.image_codes)
        return np.floor(rng.random(shape + tuple(sp.shape)) * codes).astype(sp.dtype)
    if isinstance(sp, spaces.Discrete):
        return (sp.start + rng.integers(sp.n, size=shape)).astype(np.int64)
    if isinstance(sp, spaces.MultiDiscrete):
        nvec = np.asarray(sp.nvec)
        return (np.asarray(sp.start) + np.floor(rng.random(shape + nvec.shape) * nvec)
                ).astype(np.int64)
    if isinstance(sp, spaces.MultiBinary):
        return rng.integers(2, size=shape + tuple(sp.shape)).astype(np.int8)
    full = shape + tuple(sp.shape)
    low = np.broadcast_to(np.asarray(sp.low, np.float64), full)
    high = np.broadcast_to(np.asarray(sp.high, np.float64), full)
    if sp.dtype.kind in "iu":
        lo, hi = np.maximum(low, -100), np.minimum(high, 100)
        return np.floor(lo + rng.random(full) * (hi - lo + 1)).clip(low, high).astype(sp.dtype)
    off = plan.norm_offset(p)
    if off is not None:  # around the statistics, now and then past the clip
        mean, std, _ = plan.normalize
        m, s = mean[off:off + p.size], std[off:off + p.size]
        x = m.reshape(sp.shape) + s.reshape(sp.shape) * 3 * rng.standard_normal(full)
    else:
        bounded = np.isfinite(low) & np.isfinite(high) & (high - low <= 1e3)
        x = np.where(bounded, low + rng.random(full) * np.where(bounded, high - low, 0),
                     2 * rng.standard_normal(full))
    return np.clip(x, low, high).astype(sp.dtype)


def _assemble(space, leaves: dict, path=()):
    """The observation structure of ``space`` from ``{path: array}``."""
    if isinstance(space, spaces.Dict):
        return {k: _assemble(s, leaves, path + (k,)) for k, s in space.spaces.items()}
    if isinstance(space, spaces.Tuple):
        return tuple(_assemble(s, leaves, path + (k,)) for k, s in enumerate(space.spaces))
    return leaves[path]


def random_observations(plan: ExportPlan, steps: int, batch_size: int, seed=0) -> list:
    """``steps`` batches of ``batch_size`` observations of the plan's observation space, valid
    for the policy (masks allow an action of every head; float observations around the
    normaliser's statistics, sometimes past its clip; bounded Boxes uniform)."""
    rng = np.random.default_rng(seed)
    shape = (steps, batch_size)
    leaves = {p.path: _sample_part(p, plan, shape, rng) for p in plan.inputs}
    return [_assemble(plan.observation_space, {k: v[t] for k, v in leaves.items()})
            for t in range(steps)]


def _make_env(env):
    """``(env instance, whether we made it)`` from an id, an Env, an Env class or a factory."""
    if isinstance(env, gym.Env):
        return env, False
    try:
        made = gym.make(env) if isinstance(env, str) else env()
    except Exception as e:  # gymnasium raises many kinds for an id it cannot make
        raise ValueError(f"cannot make the env {env!r}: {e}") from None
    if not isinstance(made, gym.Env):
        raise TypeError(f"env must be a Gymnasium id, a gymnasium.Env, an Env class or a "
                        f"function returning one; got {type(made).__name__} from {env!r}")
    return made, True


def record_episodes(predictor, env, steps: int, seed=0) -> tuple[list, np.ndarray, str]:
    """Play ``env`` (a Gymnasium id, an Env, an Env class or a zero-argument factory) with
    ``predictor.predict(..., deterministic=True)`` for ``steps`` steps, resetting it at the end
    of each episode. Returns the observations (batches of one), the episode starts ``(steps,
    1)`` and a description (``"N episodes of ENV"``)."""
    made, owned = _make_env(env)
    name = env if isinstance(env, str) else (made.spec.id if made.spec else type(made).__name__)
    if made.observation_space != predictor.observation_space:
        if owned:
            made.close()
        raise ValueError(f"the env {name!r} observes {made.observation_space}, the model "
                         f"{predictor.observation_space}")
    observations, starts, episodes = [], np.zeros((steps, 1), bool), 1
    try:
        obs, _ = made.reset(seed=None if seed is None else int(seed))
        state, start = None, True
        for t in range(steps):
            observations.append(tree_map(lambda a: np.asarray(a)[None], obs))
            starts[t] = start
            action, state = predictor.predict(obs, state, np.array([start]), deterministic=True)
            obs, _, terminated, truncated, _ = made.step(action)
            start = bool(terminated or truncated)
            if start and t + 1 < steps:
                obs, _ = made.reset()
                episodes += 1
    finally:
        if owned:
            made.close()
    return observations, starts, f"{episodes} episode(s) of {name}"


# ---------------------------------------------------------------------------- runners
def _onnx_session(path):
    """An ONNX Runtime session on one CPU thread; a clear error for a file it cannot load."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise ImportError("checking an ONNX model needs onnxruntime: pip install "
                          "'rlstm[export]' (or pip install onnxruntime)") from None
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    try:
        return ort.InferenceSession(os.fspath(path), opts, providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime raises its own exception types
        raise ValueError(f"{os.fspath(path)!r} is not an ONNX model ONNX Runtime can load: "
                         f"{first_line(e)}") from None


def first_line(e: BaseException) -> str:
    """The first line of an exception's message (its type name when it has none)."""
    lines = str(e).strip().splitlines()
    return lines[0] if lines else type(e).__name__


def run_onnx(path, plan: ExportPlan, obs: np.ndarray, starts: np.ndarray):
    """Step the ONNX model at ``path`` through flat observations ``obs`` ``(T, B, n_obs)``
    with ``starts`` ``(T, B)``. Returns actions ``(T, B, n_action)``, values ``(T, B)`` (or
    None) and states ``(T, K, L, B, H)``, each after its step. A model of other sizes than the
    plan's is a ``ValueError``."""
    sess = _onnx_session(path)
    ins = {i.name: i.shape for i in sess.get_inputs()}
    outs = [o.name for o in sess.get_outputs()]
    K, L, H = plan.state_shape
    if set(ins) != {"obs", "state", "episode_start"} or ins["obs"][1] != plan.n_obs or \
            list(ins["state"][:2]) + [ins["state"][3]] != [K, L, H] or \
            "action" not in outs or ("value" in outs) != plan.include_value:
        raise ValueError(f"{os.fspath(path)!r} was not exported from this model with these "
                         f"options: it takes {ins} and returns {outs}; the model needs obs of "
                         f"{plan.n_obs}, state {plan.state_shape} and "
                         f"{'a' if plan.include_value else 'no'} value")
    T, B, _ = obs.shape
    actions = np.empty((T, B, plan.n_action), np.float32)
    values = np.empty((T, B), np.float32) if plan.include_value else None
    states = np.empty((T, K, L, B, H), np.float32)
    state = np.zeros((K, L, B, H), np.float32)
    for t in range(T):
        res = dict(zip(outs, sess.run(None, {"obs": obs[t], "state": state,
                                             "episode_start": starts[t]})))
        actions[t], state = res["action"], res["state_out"]
        states[t] = state
        if values is not None:
            values[t] = res["value"]
    return actions, values, states


_HARNESS = r"""/* check harness: binary frames on stdin -> results on stdout */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include "@NAME@.h"

static void fail(const char *what) { fprintf(stderr, "harness: %s\n", what); exit(3); }

int main(void) {
    int32_t bt[2];
    if (fread(bt, sizeof bt, 1, stdin) != 1 || bt[0] < 1 || bt[1] < 0) fail("bad header");
    const int32_t sizes[6] = {@PREFIX@_OBS_SIZE, @PREFIX@_ACTION_SIZE, @PREFIX@_NUM_STATES,
                              @PREFIX@_NUM_LAYERS, @PREFIX@_HIDDEN_SIZE, @PREFIX@_HAS_VALUE};
    fwrite(sizes, sizeof sizes, 1, stdout);
    const int B = bt[0];
    @NAME@_state *st = malloc(sizeof *st * (size_t)B);
    unsigned char *start = malloc((size_t)B);
    float *obs = malloc(sizeof *obs * @PREFIX@_OBS_SIZE * (size_t)B);
    if (!st || !start || !obs) fail("out of memory");
    for (int b = 0; b < B; ++b) @NAME@_reset(&st[b]);
    for (int32_t t = 0; t < bt[1]; ++t) {
        if (fread(start, 1, (size_t)B, stdin) != (size_t)B ||
            fread(obs, sizeof *obs * @PREFIX@_OBS_SIZE, (size_t)B, stdin) != (size_t)B)
            fail("short input");
        for (int b = 0; b < B; ++b) {
            float action[@PREFIX@_ACTION_SIZE];
            if (start[b]) @NAME@_reset(&st[b]);
            int32_t rc = @NAME@_step(&st[b], obs + (size_t)b * @PREFIX@_OBS_SIZE, action);
            fwrite(&rc, sizeof rc, 1, stdout);
            fwrite(action, sizeof action, 1, stdout);
#if @PREFIX@_HAS_VALUE
            fwrite(&st[b].value, sizeof st[b].value, 1, stdout);
#endif
            fwrite(st[b].state, sizeof st[b].state, 1, stdout);
        }
    }
    free(st); free(start); free(obs);
    return fflush(stdout) == 0 ? 0 : 4;
}
"""


def _c_files(artefact) -> tuple[pathlib.Path, pathlib.Path, str]:
    """``(NAME.c, NAME.h, NAME)`` for a C artefact given as ``NAME.c``, ``NAME.h`` or the
    path without a suffix."""
    p = pathlib.Path(artefact)
    base = p.with_suffix("") if p.suffix in (".c", ".h") else p
    c_file, h_file = base.with_name(base.name + ".c"), base.with_name(base.name + ".h")
    missing = [str(f) for f in (c_file, h_file) if not f.is_file()]
    if missing:
        raise FileNotFoundError(f"C artefact incomplete: no {' or '.join(missing)} (to_c "
                                f"writes NAME.h and NAME.c side by side)")
    return c_file, h_file, base.name


def compile_c(artefact, out: pathlib.Path, main_source: str | None = None, cc: str | None = None,
              cflags=DEFAULT_CFLAGS, shared: bool = False) -> pathlib.Path:
    """Compile the C artefact (``NAME.c``, ``NAME.h`` or their common prefix), with
    ``main_source`` (C text that includes ``"NAME.h"``) when given, into ``out``: a program,
    or a shared library when ``shared``. ``cc`` defaults to ``$CC``, then ``cc``. A missing
    compiler or a compile error is a ``RuntimeError`` with the compiler's message."""
    c_file, h_file, name = _c_files(artefact)
    compiler = cc or os.environ.get("CC") or "cc"
    if shutil.which(compiler) is None:
        raise RuntimeError(f"no C compiler {compiler!r} found: install one, set CC or pass "
                           f"cc=")
    sources = [str(c_file)]
    tmp = None
    if main_source is not None:
        tmp = tempfile.NamedTemporaryFile("w", suffix=".c", prefix=f"{name}_main_",
                                          dir=out.parent, delete=False)
        with tmp:
            tmp.write(main_source)
        sources.append(tmp.name)
    cmd = [compiler, *cflags, *(["-shared", "-fPIC"] if shared else []),
           "-I", str(h_file.parent), *sources, "-o", str(out), "-lm"]
    try:
        res = subprocess.run(cmd, capture_output=True, text=True)
    finally:
        if tmp is not None:
            os.unlink(tmp.name)
    if res.returncode != 0:
        msg = (res.stderr or res.stdout).strip().splitlines()
        raise RuntimeError(f"compiling {c_file} failed ({' '.join(cmd)}):\n"
                           + "\n".join(msg[:30]))
    return out


def run_c(artefact, plan: ExportPlan, obs: np.ndarray, starts: np.ndarray,
          cc: str | None = None, cflags=DEFAULT_CFLAGS, environ: dict | None = None):
    """Compile the C artefact with a harness and step it through ``obs`` ``(T, B, n_obs)``
    with ``starts`` ``(T, B)``, one state per env. Returns actions, values (or None), states
    as :func:`run_onnx` does, and the step's return codes ``(T, B)``."""
    _, _, name = _c_files(artefact)
    T, B, _ = obs.shape
    with tempfile.TemporaryDirectory(prefix="rlstm-check-") as tmp:
        exe = compile_c(artefact, pathlib.Path(tmp) / "harness",
                        _HARNESS.replace("@NAME@", name).replace("@PREFIX@", name.upper()),
                        cc, cflags)
        frames = [np.asarray([B, T], np.int32).tobytes()]
        for t in range(T):
            frames.append(np.asarray(starts[t], np.uint8).tobytes())
            frames.append(np.ascontiguousarray(obs[t], np.float32).tobytes())
        res = subprocess.run([str(exe)], input=b"".join(frames), capture_output=True,
                             env=None if environ is None else {**os.environ, **environ})
    if res.returncode != 0:
        raise RuntimeError(f"the C harness exited with {res.returncode}: "
                           f"{res.stderr.decode(errors='replace').strip()[:2000]}")
    sizes = np.frombuffer(res.stdout[:24], np.int32)
    K, L, H = plan.state_shape
    want = [plan.n_obs, plan.n_action, K, L, H, int(plan.include_value)]
    if sizes.tolist() != want:
        raise ValueError(f"the C artefact {name} was not exported from this model with these "
                         f"options: sizes (obs, action, K, L, H, value) {sizes.tolist()}, the "
                         f"model needs {want}")
    rec = np.dtype([("rc", np.int32), ("action", np.float32, (plan.n_action,)),
                    *([("value", np.float32)] if plan.include_value else []),
                    ("state", np.float32, (K, L, H))])
    body = res.stdout[24:]
    if len(body) != rec.itemsize * T * B:
        raise RuntimeError(f"the C harness wrote {len(body)} bytes, expected "
                           f"{rec.itemsize * T * B}")
    r = np.frombuffer(body, rec).reshape(T, B)
    states = np.ascontiguousarray(r["state"].transpose(0, 2, 3, 1, 4))  # (T, K, L, B, H)
    return r["action"], (r["value"] if plan.include_value else None), states, r["rc"]


# ---------------------------------------------------------------------------- check
def _format_of(artefact, format: str | None) -> str:
    if format is not None:
        if format not in ("onnx", "c"):
            raise ValueError(f"format must be 'onnx' or 'c', got {format!r}")
        return format
    p = pathlib.Path(artefact)
    if p.suffix == ".onnx":
        return "onnx"
    if p.suffix in (".c", ".h") or p.with_name(p.name + ".c").is_file():
        return "c"
    raise ValueError(f"cannot tell the format of {str(artefact)!r}: give a .onnx file, a C "
                     f"artefact's .c/.h file, or format='onnx'/'c'")


def check(source, artefact, *, format: str | None = None, steps: int = 1000,
          batch_size: int = 1, seed=0, env=None, observations=None, episode_starts=None,
          start_probability: float = 0.02, atol: float = 1e-5, rtol: float = 1e-5,
          include_value: bool | None = None, cc: str | None = None, cflags=DEFAULT_CFLAGS,
          environ: dict | None = None) -> CheckReport:
    """Step ``artefact`` and ``Predictor.predict(..., deterministic=True)`` of ``source``
    side by side and return a :class:`CheckReport` (``report.ok`` says whether it passed).

    Args:
        source: the model the artefact was exported from (see
            :func:`rlstm.export.as_predictor`).
        artefact: a ``.onnx`` file, or a C artefact (``NAME.c``, ``NAME.h`` or the path
            without suffix).
        format: ``"onnx"`` or ``"c"``; by default from the artefact's suffix.
        steps, batch_size: steps to run, each for ``batch_size`` envs with their own states.
        seed: seeds the random observations and episode starts (and the env's first reset).
        env: record the observations from episodes of this env instead (a Gymnasium id, an
            Env, an Env class or a zero-argument factory; the model plays it with
            ``predict``; ``batch_size`` 1). An id must be registered (``rlstm/...`` ids are
            registered by ``import agents``).
        observations: ``steps`` observation batches to use instead (each as a vector env
            returns it, ``batch_size`` rows).
        episode_starts: ``(steps, batch_size)`` booleans instead of random starts (every env
            starts an episode at step 0 either way).
        start_probability: chance that an env starts a new episode at a step (random starts).
        atol, rtol: Box actions, values and states must agree within
            ``max(atol, rtol * |ref|)`` (default: 1e-5 absolute up to magnitude 1, 1e-5
            relative beyond).
        include_value: whether the artefact was exported with the value; by default read from
            it (an ONNX model's outputs, a C header's ``HAS_VALUE``).
        cc, cflags: the C compiler and its flags (default ``$CC`` or ``cc``,
            :data:`DEFAULT_CFLAGS`); e.g. add ``-fsanitize=address,undefined``.
        environ: extra environment variables for the C harness process (e.g.
            ``{"ASAN_OPTIONS": ...}``).
    """
    fmt = _format_of(artefact, format)
    if fmt == "onnx" and not pathlib.Path(artefact).is_file():
        raise FileNotFoundError(f"no ONNX model at {os.fspath(artefact)!r}")
    if include_value is None:
        include_value = _artefact_has_value(artefact, fmt)
    plan = ExportPlan(source, include_value=include_value)
    predictor = plan.predictor
    if not isinstance(steps, (int, np.integer)) or steps < 1 or \
            not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"steps and batch_size must be ints >= 1, got {steps!r}, "
                         f"{batch_size!r}")
    T, B = int(steps), int(batch_size)
    recorded, described = None, "given"
    if env is not None:
        if observations is not None or episode_starts is not None or B != 1:
            raise ValueError("env= records its own observations and episode starts, one env "
                             "at a time: give no observations=, episode_starts= or "
                             "batch_size > 1 with it")
        observations, recorded, described = record_episodes(predictor, env, T, seed)
    elif observations is None:
        observations, described = random_observations(plan, T, B, seed), "random"
    elif len(observations) != T:
        raise ValueError(f"observations must hold steps={T} batches, got {len(observations)}")
    rng = np.random.default_rng([int(seed), 1])
    if episode_starts is None:
        starts = recorded if recorded is not None else rng.random((T, B)) < start_probability
    else:
        starts = np.asarray(episode_starts, dtype=bool)
        if starts.shape != (T, B):
            raise ValueError(f"episode_starts must have shape ({T}, {B}), got {starts.shape}")
        starts = starts.copy()
    starts[0] = True
    flat = np.stack([flatten_observation(plan.observation_space, o).reshape(B, plan.n_obs)
                     for o in observations])

    # the reference: Predictor.predict, the one definition of what a model computes
    policy = predictor.policy
    K = plan.state_shape[0]
    ref_actions = np.empty((T, B, plan.n_action))
    ref_values = np.empty((T, B)) if plan.include_value else None
    ref_states = np.empty((T, K) + (plan.num_layers, B, plan.hidden_size))
    state = policy.initial_state(B)
    for t, o in enumerate(observations):
        if ref_values is not None:
            ref_values[t] = policy.value(predictor.normalize(o) if predictor.obs_normalizer
                                         else o, state, starts[t])
        action, state = predictor.predict(o, state, starts[t], deterministic=True)
        ref_actions[t] = flatten_action(plan.action_space, action).reshape(B, -1)
        ref_states[t] = plan.policy_state(state)

    errors = 0
    if fmt == "onnx":
        actions, values, states = run_onnx(artefact, plan, flat, starts)
    else:
        actions, values, states, rc = run_c(artefact, plan, flat, starts, cc, cflags, environ)
        errors = int((rc != 0).sum())

    exact = plan.discrete_columns()
    mismatch = int((actions[..., exact] != ref_actions[..., exact]).any(axis=-1).sum())

    da, na = differences(actions[..., ~exact], ref_actions[..., ~exact], atol, rtol)
    dv, nv = differences(values, ref_values, atol, rtol) if plan.include_value else (None, 0)
    ds, ns = differences(states, ref_states, atol, rtol)
    return CheckReport(fmt, T, B, int(starts.sum()), mismatch, da, ds, dv, na + nv + ns,
                       float(atol), float(rtol), errors, described)


def differences(got: np.ndarray, ref: np.ndarray, atol: float, rtol: float
                ) -> tuple[float, int]:
    """``(largest |got - ref|, how many entries differ by more than max(atol, rtol * |ref|))``;
    a NaN in ``got`` counts as beyond the tolerance."""
    if ref.size == 0:
        return 0.0, 0
    d = np.abs(np.asarray(got, np.float64) - ref)
    bad = ~(d <= np.maximum(atol, rtol * np.abs(ref)))
    return (float("nan") if np.isnan(d).any() else float(d.max())), int(bad.sum())


def _artefact_has_value(artefact, fmt: str) -> bool:
    if fmt == "onnx":  # read with onnxruntime alone: a deployment machine may lack onnx
        return any(o.name == "value" for o in _onnx_session(artefact).get_outputs())
    _, h_file, name = _c_files(artefact)
    text = h_file.read_text(errors="replace")
    key = f"#define {name.upper()}_HAS_VALUE "
    for line in text.splitlines():
        if line.startswith(key):
            return line[len(key):].split()[0] == "1"
    raise ValueError(f"{h_file} is not a header written by rlstm.export.to_c (no "
                     f"{key.strip()})")
