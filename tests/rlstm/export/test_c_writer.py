"""C export (rlstm.export.to_c), compiled with the system compiler, against Predictor.predict."""
from __future__ import annotations

import ctypes
import re
import shutil
import subprocess

import numpy as np
import pytest
from gymnasium import spaces

import rlstm
from rlstm.export import ExportPlan, check, flatten_observation, to_c, unflatten_action
from rlstm.export.check import compile_c
from rlstm.policy import LSTMPolicy

if shutil.which("cc") is None:
    pytest.skip("no C compiler (cc)", allow_module_level=True)

SANITIZE = ("-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-g")


def test_every_model_matches_predict_over_1000_steps(case, tmp_path, strict_cflags):
    _, c_file = to_c(case, tmp_path)
    report = check(case, c_file, steps=1000, batch_size=2, seed=2, cflags=strict_cflags)
    assert report.ok, report  # discrete actions identical
    assert report.errors == 0 and report.episode_starts > 2 + 10
    assert max(report.max_action_diff, report.max_state_diff, report.max_value_diff) < 1e-5


def _sanitizers_work(tmp_path) -> bool:
    src = tmp_path / "probe.c"
    src.write_text("int main(void) { return 0; }\n")
    res = subprocess.run(["cc", *SANITIZE, str(src), "-o", str(tmp_path / "probe")],
                         capture_output=True)
    return res.returncode == 0 and subprocess.run([str(tmp_path / "probe")]).returncode == 0


@pytest.mark.parametrize("name", ["dict-obs-mask-dict-action-normalised", "image-conv-large",
                                  "tuple-obs-tuple-action-gru-normalised",
                                  "lstm-peephole_cell-identity-critic-multidiscrete"])
def test_clean_under_address_and_undefined_behaviour_sanitizers(name, make_case, tmp_path,
                                                                 strict_cflags):
    if not _sanitizers_work(tmp_path):
        pytest.skip("the C compiler cannot build with -fsanitize=address,undefined here")
    pred = make_case(name)
    _, c_file = to_c(pred, tmp_path)
    report = check(pred, c_file, steps=200, batch_size=2, cflags=strict_cflags + SANITIZE,
                   environ={"ASAN_OPTIONS": "detect_leaks=0:abort_on_error=1"})
    assert report.ok, report


def test_source_is_plain_c99_with_math_h_only(make_case, tmp_path):
    pred = make_case("image-conv-small-unscaled-normalised")
    h_file, c_file = to_c(pred, tmp_path, name="robot")
    includes = re.findall(r"#include\s*(\S+)", c_file.read_text())
    assert includes == ["<math.h>", '"robot.h"'] and "#include" not in h_file.read_text()
    assert "malloc" not in c_file.read_text()
    compile_c(c_file, tmp_path / "robot.o",
              cflags=("-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", "-pedantic",
                      "-Wshadow", "-Wconversion", "-Wstrict-prototypes", "-c"))
    # no global symbol but the two functions
    nm = shutil.which("nm")
    if nm:
        syms = subprocess.run([nm, "-g", "--defined-only", str(tmp_path / "robot.o")],
                              capture_output=True, text=True).stdout.split()
        assert sorted(s for s in syms if s.startswith("robot")) == ["robot_reset", "robot_step"]


def test_header_records_model_spaces_and_layout(make_case, tmp_path):
    pred = make_case("dict-obs-mask-dict-action-normalised")
    rlstm.save(pred.policy, tmp_path / "m.rlstm")
    h_file, _ = to_c(tmp_path / "m.rlstm", tmp_path / "out" / "agent")
    text = h_file.read_text()
    assert str(tmp_path / "m.rlstm") in text
    assert "observation space: Dict('action_mask': MultiBinary(6)" in text
    assert "obs[11:12]  obs['mode']  Discrete(4, start=2)  the value (one-hot inside)" in text
    assert "action[3:5]  action['throttle']  Box(-0.5, 0.5, (2,), float32)" in text
    for macro in ("AGENT_OBS_SIZE 15", "AGENT_ACTION_SIZE 5", "AGENT_NUM_STATES 4",
                  "AGENT_HAS_VALUE 1", "AGENT_STATE_CRITIC_CORE_C 3", "AGENT_OK 0",
                  "AGENT_BAD_OBSERVATION 1", "AGENT_MASK_FORBIDS_ALL 2"):
        assert f"#define {macro}" in text
    assert "} agent_state;" in text and "int agent_step(agent_state *s" in text


def test_without_the_value(make_case, tmp_path, strict_cflags):
    pred = make_case("gru-stacked-critic-mlp")
    h_file, c_file = to_c(pred, tmp_path, include_value=False)
    text = h_file.read_text()
    assert "#define POLICY_HAS_VALUE 0" in text and "float value;" not in text
    assert "#define POLICY_NUM_STATES 1" in text and "critic_core" not in c_file.read_text()
    report = check(pred, c_file, steps=300, cflags=strict_cflags)
    assert report.ok and report.max_value_diff is None, report


class _Lib:
    """The artefact as a shared library, stepped through ctypes."""

    def __init__(self, pred, tmp_path, cflags):
        self.pred, self.plan = pred, ExportPlan(pred)
        h_file, c_file = to_c(pred, tmp_path)
        so = compile_c(c_file, tmp_path / "libpolicy.so", shared=True, cflags=cflags)
        self.lib = ctypes.CDLL(str(so))
        self.lib.policy_step.restype = ctypes.c_int
        work = int(re.search(r"#define POLICY_WORK_SIZE (\d+)", h_file.read_text()).group(1))
        self.n_state = int(np.prod(self.plan.state_shape))
        self.buf = np.zeros(self.n_state + 1 + work, np.float32)  # the struct: all floats
        self.ptr = self.buf.ctypes.data_as(ctypes.c_void_p)
        self.lib.policy_reset(self.ptr)

    def step(self, flat_obs):
        obs = np.ascontiguousarray(flat_obs, np.float32)
        action = np.full(self.plan.n_action, 7.0, np.float32)
        rc = self.lib.policy_step(self.ptr, obs.ctypes.data_as(ctypes.c_void_p),
                                  action.ctypes.data_as(ctypes.c_void_p))
        return rc, action

    @property
    def state(self):
        return self.buf[:self.n_state].copy()


def test_observations_predict_refuses_are_refused_and_change_nothing(make_case, tmp_path,
                                                                    strict_cflags):
    pred = make_case("dict-obs-mask-dict-action")
    lib = _Lib(pred, tmp_path, strict_cflags)
    space = pred.observation_space
    good = {"action_mask": np.ones(6, np.int8), "flags": np.array([1, 0, 1], np.int8),
            "grid": np.array([0, 2]), "mode": np.int64(3),
            "pos": np.array([0.5, -1.0, 0.1], np.float32)}
    assert lib.step(flatten_observation(space, good))[0] == 0
    before = lib.state

    def refused(code, **change):
        flat = flatten_observation(space, {**good, **change})
        rc, action = lib.step(flat)
        assert rc == code
        assert (action == 7.0).all() and np.array_equal(lib.state, before)
        with pytest.raises((ValueError, TypeError)):  # predict refuses it too
            pred.predict({k: np.asarray(v) for k, v in {**good, **change}.items()},
                         deterministic=True)

    refused(1, pos=np.array([np.nan, 0, 0], np.float32))
    refused(1, pos=np.array([np.inf, 0, 0], np.float32))
    refused(1, mode=np.int64(6))                      # Discrete(4, start=2): 2..5
    refused(1, grid=np.array([0, 0]))                 # grid[1] takes 1..3
    refused(2, action_mask=np.array([0, 0, 1, 1, 1, 1], np.int8))  # no move allowed
    refused(2, action_mask=np.array([1, 1, 0, 0, 0, 1], np.int8))  # no pick[0] allowed
    flat = flatten_observation(space, good)
    flat[11] = 2.5                                    # mode: not an integer
    assert lib.step(flat)[0] == 1 and np.array_equal(lib.state, before)


def test_a_normalised_part_clips_inf_and_refuses_nan_as_predict_does(make_case, tmp_path,
                                                                     strict_cflags):
    pred = make_case("dict-obs-mask-dict-action-normalised")
    lib = _Lib(pred, tmp_path, strict_cflags)
    space = pred.observation_space
    good = {"action_mask": np.ones(6, np.int8), "flags": np.array([1, 0, 1], np.int8),
            "grid": np.array([0, 2]), "mode": np.int64(3),
            "pos": np.array([np.inf, -1.0, 0.1], np.float32)}
    rc, action = lib.step(flatten_observation(space, good))
    assert rc == 0
    want, _ = pred.predict({k: np.asarray(v) for k, v in good.items()}, deterministic=True)
    from rlstm.export import flatten_action
    np.testing.assert_allclose(action, flatten_action(pred.action_space, want), atol=1e-5)
    before = lib.state
    rc, _ = lib.step(flatten_observation(space, {**good, "pos": np.array([np.nan, 0, 0],
                                                                          np.float32)}))
    assert rc == 1 and np.array_equal(lib.state, before)


def test_a_mask_that_allows_one_action_forces_it(make_case, tmp_path, strict_cflags):
    pred = make_case("dict-obs-mask-dict-action-normalised")
    lib = _Lib(pred, tmp_path, strict_cflags)
    obs = {"action_mask": np.array([0, 1, 0, 1, 0, 1], np.int8),
           "flags": np.array([1, 0, 1], np.int8), "grid": np.array([0, 2]), "mode": np.int64(3),
           "pos": np.array([0.5, -1.0, 0.1], np.float32)}
    rc, action = lib.step(flatten_observation(pred.observation_space, obs))
    a = unflatten_action(pred.action_space, action)
    assert rc == 0 and a["move"] == 1 and a["pick"].tolist() == [1, 0]
    expected, _ = pred.predict(obs, deterministic=True)
    assert expected["move"] == 1 and expected["pick"].tolist() == [1, 0]


def test_inf_is_clipped_by_the_normaliser_as_predict_does(make_case, tmp_path, strict_cflags):
    pred = make_case("lstm-box-normalised")
    lib = _Lib(pred, tmp_path, strict_cflags)
    obs = np.array([np.inf, -np.inf, 0.0, 1e30, 2.0], np.float32)
    rc, action = lib.step(obs)
    expected, state = pred.predict(obs, deterministic=True)
    assert rc == 0 and action[0] == expected
    np.testing.assert_allclose(lib.state, ExportPlan(pred).policy_state(state).reshape(-1),
                               atol=1e-6)
    assert lib.step(np.array([np.nan, 0, 0, 0, 0]))[0] == 1


def test_a_tampered_artefact_fails_the_check(make_case, tmp_path, strict_cflags):
    pred = make_case("dict-obs-mask-dict-action-normalised")
    _, c_file = to_c(pred, tmp_path)
    text = c_file.read_text()
    # a different recurrent weight: states and values drift
    i = text.index("core_l0_wrec_t[") + text[text.index("core_l0_wrec_t["):].index("{") + 1
    c_file.write_text(text[:i] + "0.5f + " + text[i:])
    report = check(pred, c_file, steps=300, cflags=strict_cflags)
    assert not report.ok and report.out_of_tolerance > 0
    # the mask ignored: some masked action gets taken
    ignored = re.sub(r"argmax\((z \+ \d+), (\d+), obs \+ \d+\)", r"argmax(\1, \2, 0)", text)
    assert ignored != text
    c_file.write_text(ignored)
    report = check(pred, c_file, steps=300, cflags=strict_cflags)
    assert report.action_mismatches > 0 and not report.ok


def test_two_artefacts_link_into_one_program(make_case, tmp_path, strict_cflags):
    to_c(make_case("lstm-box-normalised"), tmp_path, name="walker")
    to_c(make_case("gru-stacked-critic-mlp"), tmp_path, name="runner")
    main = tmp_path / "main.c"
    main.write_text("""#include "walker.h"
#include "runner.h"
int main(void) {
    walker_state a; runner_state b;
    float obs[5] = {0.1f, 0.2f, 0.3f, 0.4f, 0.5f}, act[1];
    walker_reset(&a); runner_reset(&b);
    return walker_step(&a, obs, act) + runner_step(&b, obs, act);
}
""")
    exe = tmp_path / "both"
    subprocess.run(["cc", *strict_cflags, "-I", str(tmp_path), str(tmp_path / "walker.c"),
                    str(tmp_path / "runner.c"), str(main), "-o", str(exe), "-lm"], check=True)
    assert subprocess.run([str(exe)]).returncode == 0


def test_output_names_and_paths(tmp_path):
    policy = LSTMPolicy(spaces.Box(-1, 1, (2,), np.float32), spaces.Discrete(2), hidden_size=4)
    h, c = to_c(policy, tmp_path)
    assert (h.name, c.name) == ("policy.h", "policy.c")
    h, c = to_c(policy, tmp_path, name="arm2")
    assert (h.name, c.name) == ("arm2.h", "arm2.c") and "int arm2_step(" in h.read_text()
    h, c = to_c(policy, tmp_path / "new" / "leg")          # a path prefix; folders created
    assert c == tmp_path / "new" / "leg.c" and "#define LEG_OK 0" in h.read_text()
    assert to_c(policy, tmp_path / "leg.c")[1] == tmp_path / "leg.c"
    assert not list(tmp_path.glob(".rlstm-*"))
    with pytest.raises(ValueError, match="name='arm' differs from the file name 'leg'"):
        to_c(policy, tmp_path / "leg", name="arm")
    for bad in ("int", "2arm", "arm-1", "_arm", "a" * 49, ""):
        with pytest.raises(ValueError, match="C identifier"):
            to_c(policy, tmp_path, name=bad)
    with pytest.raises(ValueError, match="is not a C identifier"):
        to_c(policy, tmp_path / "my-policy")
    with pytest.raises(TypeError, match="out must be a folder or a path prefix"):
        to_c(policy, None)
    with pytest.raises(ValueError, match="out is empty"):
        to_c(policy, "")
    with pytest.raises(TypeError, match="the model to export must be"):
        to_c("not a model".encode(), tmp_path)


def test_compile_errors_and_a_missing_compiler_are_clear(make_case, tmp_path):
    pred = make_case("lstm-box-normalised")
    _, c_file = to_c(pred, tmp_path)
    with pytest.raises(RuntimeError, match="no C compiler 'no-such-cc' found"):
        check(pred, c_file, steps=5, cc="no-such-cc")
    c_file.write_text(c_file.read_text() + "\nthis is not C;\n")
    with pytest.raises(RuntimeError, match="compiling .*policy.c failed"):
        check(pred, c_file, steps=5)
    c_file.unlink()
    with pytest.raises(FileNotFoundError, match="C artefact incomplete"):
        check(pred, tmp_path / "policy.h", steps=5)


def test_the_c_math_functions_are_accurate(tmp_path):
    """exp (relative), sigmoid and tanh (absolute) against double-precision libm on a dense
    grid, including arguments far past the clamps."""
    from rlstm.export.c_writer import _KERNELS
    src = tmp_path / "mathcheck.c"
    src.write_text("#include <math.h>\n#include <stdio.h>\n" + _KERNELS["exp"] + r"""
int main(void) {
    double e_exp = 0, e_sig = 0, e_tanh = 0;
    for (long i = -4000000; i <= 4000000; ++i) {
        const float x = (float)i * 2.5e-5f;  /* -100 .. 100 */
        const double xd = x;
        if (fabs(xd) < 80) {
            const double r = fabs(fast_expf(x) - exp(xd)) / exp(xd);
            if (r > e_exp) e_exp = r;
        }
        const double s = fabs(sigmoid(x) - 1 / (1 + exp(-xd)));
        const double t = fabs(fast_tanhf(x) - tanh(xd));
        if (s > e_sig) e_sig = s;
        if (t > e_tanh) e_tanh = t;
    }
    const float big[4] = {1e30f, -1e30f, INFINITY, -INFINITY};
    for (int i = 0; i < 4; ++i)
        if (!isfinite(fast_expf(big[i])) || fabsf(fast_tanhf(big[i])) != 1.0f ||
            fabsf(sigmoid(big[i]) - (big[i] > 0 ? 1.0f : 0.0f)) > 1e-30f) return 1;
    printf("%g %g %g\n", e_exp, e_sig, e_tanh);
    return 0;
}
""")
    exe = tmp_path / "mathcheck"
    subprocess.run(["cc", "-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", str(src), "-o",
                    str(exe), "-lm"], check=True)
    res = subprocess.run([str(exe)], capture_output=True, text=True)
    assert res.returncode == 0, "inf or NaN for a huge argument"
    e_exp, e_sig, e_tanh = map(float, res.stdout.split())
    assert e_exp < 2e-7 and e_sig < 1.5e-7 and e_tanh < 1.5e-7  # measured: 8e-8, 9e-8, 1.1e-7
