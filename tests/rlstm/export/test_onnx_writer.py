"""ONNX export (rlstm.export.to_onnx) against Predictor.predict, in ONNX Runtime."""
from __future__ import annotations

import sys

import numpy as np
import pytest
from gymnasium import spaces

from rlstm.export import OPSET, check, to_onnx
from rlstm.policy import LSTMPolicy

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")


def test_every_model_matches_predict_over_1000_steps(case, tmp_path):
    path = to_onnx(case, tmp_path / "policy.onnx")
    report = check(case, path, steps=1000, batch_size=3, seed=1)
    assert report.ok, report  # discrete actions identical
    assert report.episode_starts > 3 + 10  # every env starts at step 0, then now and then
    assert max(report.max_action_diff, report.max_state_diff, report.max_value_diff) < 1e-5


@pytest.mark.parametrize("name", ["lstm-peephole-stacked-box-action",
                                  "lstm-peephole_cell-identity-critic-multidiscrete",
                                  "gru-stacked-critic-mlp", "dict-obs-mask-dict-action-normalised"])
def test_cells_from_primitive_operators_match_too(name, make_case, tmp_path):
    pred = make_case(name)
    path = to_onnx(pred, tmp_path / "p.onnx", recurrent_ops=False)
    ops = {n.op_type for n in onnx.load(path).graph.node}
    assert not ops & {"LSTM", "GRU"}
    report = check(pred, path, steps=500, batch_size=2)
    assert report.ok, report


def test_onnx_recurrent_operators_where_they_are_exact(make_case, tmp_path):
    def ops(name):
        path = to_onnx(make_case(name), tmp_path / f"{name}.onnx")
        return {n.op_type for n in onnx.load(path).graph.node}
    assert "LSTM" in ops("lstm-peephole-stacked-box-action")
    assert "GRU" in ops("gru-stacked-critic-mlp")
    # ONNX's LSTM has no identity cell activation and no cell-to-gate matrices
    assert not ops("lstm-identity-multibinary") & {"LSTM", "GRU"}
    assert not ops("lstm-peephole_cell-identity-critic-multidiscrete") & {"LSTM", "GRU"}


def test_without_the_value(make_case, tmp_path):
    pred = make_case("lstm-peephole_cell-identity-critic-multidiscrete")
    path = to_onnx(pred, tmp_path / "lean.onnx", include_value=False)
    model = onnx.load(path)
    assert [o.name for o in model.graph.output] == ["action", "state_out"]
    state = model.graph.input[1].type.tensor_type.shape.dim
    assert [d.dim_value or d.dim_param for d in state] == [2, 2, "batch", 16]  # actor h, c
    report = check(pred, path, steps=300)
    assert report.ok and report.max_value_diff is None, report


def test_graph_interface_and_metadata(make_case, tmp_path):
    pred = make_case("dict-obs-mask-dict-action-normalised")
    model = onnx.load(to_onnx(pred, tmp_path / "m.onnx"))
    onnx.checker.check_model(model, full_check=True)
    assert [o.version for o in model.opset_import] == [OPSET] == [17]
    assert [i.name for i in model.graph.input] == ["obs", "state", "episode_start"]
    assert [o.name for o in model.graph.output] == ["action", "value", "state_out"]
    props = {p.key: p.value for p in model.metadata_props}
    assert props["rlstm.n_obs"] == "15" and props["rlstm.n_action"] == "5"
    assert props["rlstm.state_names"] == '["core.h", "core.c", "critic_core.h", "critic_core.c"]'
    assert "obs[0:6]  obs['action_mask']" in model.doc_string
    assert '"type": "Dict"' in props["rlstm.observation_space"]


def test_a_tampered_graph_fails_the_check(make_case, tmp_path):
    pred = make_case("lstm-box-normalised")
    path = to_onnx(pred, tmp_path / "m.onnx")
    model = onnx.load(path)
    for init in model.graph.initializer:  # nudge the recurrent weights
        if init.name.startswith("c_") and len(init.dims) == 3 and init.dims[2] == 16:
            w = onnx.numpy_helper.to_array(init).copy()
            w[0, 0, 0] += 1e-2
            init.CopyFrom(onnx.numpy_helper.from_array(w, init.name))
    onnx.save(model, tmp_path / "bad.onnx")
    report = check(pred, tmp_path / "bad.onnx", steps=300)
    assert not report.ok and report.out_of_tolerance > 0


def test_masks_and_episode_starts_are_honoured(make_case, tmp_path):
    """Outputs for hand-made inputs: a mask that allows one action forces it, and
    episode_start zeroes the state that comes in."""
    import onnxruntime as ort
    pred = make_case("dict-obs-mask-dict-action-normalised")
    sess = ort.InferenceSession(str(to_onnx(pred, tmp_path / "m.onnx")))
    obs = np.zeros((2, 15), np.float32)
    obs[:, 8] = 2  # mode
    obs[:, [0, 4]] = 1  # move: only 0 allowed; pick[0]: only 2 allowed
    obs[:, 5] = 1      # pick[1]: its one action
    state = np.random.default_rng(0).standard_normal((4, 1, 2, 16)).astype(np.float32)
    a, _, s1 = sess.run(None, {"obs": obs, "state": state,
                               "episode_start": np.array([True, False])})
    assert a[:, :3].tolist() == [[0, 2, 0], [0, 2, 0]]
    fresh = sess.run(None, {"obs": obs[:1], "state": np.zeros((4, 1, 1, 16), np.float32),
                            "episode_start": np.array([False])})[2]
    np.testing.assert_array_equal(s1[:, :, :1], fresh)
    assert not np.allclose(s1[:, :, 1:], fresh)


def test_bad_paths_and_options(tmp_path):
    policy = LSTMPolicy(spaces.Box(-1, 1, (2,), np.float32), spaces.Discrete(2), hidden_size=4)
    with pytest.raises(ValueError, match="is a folder; give a file name such as"):
        to_onnx(policy, tmp_path)
    with pytest.raises(TypeError, match="output path must be a str or os.PathLike"):
        to_onnx(policy, 3)
    with pytest.raises(TypeError, match="recurrent_ops must be a bool"):
        to_onnx(policy, tmp_path / "x.onnx", recurrent_ops="no")
    with pytest.raises(TypeError, match="the model to export must be"):
        to_onnx(object(), tmp_path / "x.onnx")
    (tmp_path / "file").write_text("")
    with pytest.raises(ValueError, match="is not a folder"):
        to_onnx(policy, tmp_path / "file" / "x.onnx")
    out = to_onnx(policy, tmp_path / "new" / "dir" / "x.onnx")  # folders are created
    assert out.is_file() and not list(out.parent.glob(".rlstm-*"))


def test_without_onnx_the_error_says_how_to_install(monkeypatch, tmp_path):
    policy = LSTMPolicy(spaces.Box(-1, 1, (2,), np.float32), spaces.Discrete(2), hidden_size=4)
    monkeypatch.setitem(sys.modules, "onnx", None)
    with pytest.raises(ImportError, match=r"pip install 'rlstm\[export\]'"):
        to_onnx(policy, tmp_path / "x.onnx")
