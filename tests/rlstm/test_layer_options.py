"""PyTorch's layer options on rlstm's own terms: ``bias=False`` in step() and saved files,
``batch_first`` and unbatched input against the time-major path, dropout's seeding and modes,
``repr`` of every layer, and clear errors for bad options. (Parity with torch itself is in
``test_lengths_torch.py``.)"""
from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
from gymnasium import spaces

import rlstm
from rlstm import GRU, LSTM, MLP, ConvLSTM, Linear, SequenceModel, io
from rlstm.layers import Conv2d, ConvEncoder
from rlstm.policy import LSTMPolicy

RECURRENT = {"lstm": LSTM, "gru": GRU}


def _state(layer, B, rng):
    shape = layer._state_shape(B)
    h = rng.standard_normal(shape).astype(layer.dtype)
    return (h, rng.standard_normal(shape).astype(layer.dtype)) if isinstance(layer, LSTM) else h


def _flat(s):
    return s if isinstance(s, tuple) else (s,)


# --------------------------------------------------------------------------- bias=False
@pytest.mark.parametrize("kind", list(RECURRENT))
def test_no_bias_means_no_bias_parameters(kind):
    with_bias = RECURRENT[kind](3, 4, 2, bidirectional=True)
    layer = RECURRENT[kind](3, 4, 2, bidirectional=True, bias=False)
    assert layer.bias is False and with_bias.bias is True
    assert list(layer.params) == [n for n in with_bias.params if "bias" not in n]
    G = 4 if kind == "lstm" else 3
    assert with_bias.num_params - layer.num_params == 2 * 2 * 2 * G * 4
    assert list(layer.state_dict()) == list(layer.params)


@pytest.mark.parametrize("kind", list(RECURRENT))
@pytest.mark.parametrize("B", [1, 20])   # BLAS path and micro-kernel path of step()
def test_no_bias_step_equals_forward_and_zero_biases(kind, B, dtype, rng, tol):
    kw = dict(num_layers=2, dtype=dtype, seed=0)
    layer = RECURRENT[kind](3, 5, bias=False, **kw)
    ref = RECURRENT[kind](3, 5, **kw)
    ref.load_state_dict(layer.state_dict(), strict=False)
    for name in ref.params:
        if "bias" in name:
            ref.params[name][...] = 0
    x = rng.standard_normal((4, B, 3)).astype(dtype)
    y, s = layer(x)
    y_ref, s_ref = ref(x)
    np.testing.assert_allclose(y, y_ref, **tol(dtype))
    state = None
    for t in range(4):
        h, state = layer.step(x[t], state)
        np.testing.assert_allclose(h, y[t], **tol(dtype))
    for a, b in zip(_flat(state), _flat(s)):
        np.testing.assert_allclose(a, b, **tol(dtype))


def test_no_bias_refuses_forget_bias():
    with pytest.raises(ValueError, match="forget_bias=1.0 .*bias=False"):
        LSTM(3, 4, bias=False, forget_bias=1.0)


def test_no_bias_policy_acts_and_exports_but_population_refuses():
    from rlstm.population import PopulationPolicy
    box = spaces.Box(-1, 1, (3,), np.float32)
    policy = LSTMPolicy(box, spaces.Discrete(2), hidden_size=4, seed=0,
                        core_kwargs={"bias": False})
    assert not any("bias" in n for n in policy.core.params)
    obs = np.zeros((2, 3), np.float32)
    policy.act(obs, None, np.ones(2, bool))
    with pytest.raises(ValueError, match="with biases, got LSTM 'vanilla' without biases"):
        PopulationPolicy(policy, policy.flat_params[None])


def test_no_bias_policy_exports_zero_biases():
    from rlstm.export.plan import Core
    core = LSTM(3, 4, bias=False, seed=0)
    (layer,) = Core("core", core).layers
    assert layer.b_ih.shape == (16,) and not layer.b_ih.any() and not layer.b_hh.any()


# --------------------------------------------------------------------------- layouts
@pytest.mark.parametrize("kind", list(RECURRENT))
def test_batch_first_is_the_time_major_path_transposed(kind, rng):
    tm = RECURRENT[kind](3, 4, 2, bidirectional=True, dtype=np.float64, seed=0)
    bf = RECURRENT[kind](3, 4, 2, bidirectional=True, dtype=np.float64, seed=0,
                         batch_first=True)
    x = rng.standard_normal((5, 2, 3))
    dy = rng.standard_normal((5, 2, 8))
    resets = rng.random((5, 2)) < 0.3
    s0 = _state(tm, 2, rng)
    y, s, c = tm.forward(x, s0, resets)
    yb, sb, cb = bf.forward(x.transpose(1, 0, 2), s0, resets.T)
    np.testing.assert_array_equal(yb, y.transpose(1, 0, 2))
    for a, b in zip(_flat(s), _flat(sb)):
        np.testing.assert_array_equal(a, b)
    dx, _ = tm.backward(dy, c)
    dxb, _ = bf.backward(dy.transpose(1, 0, 2), cb)
    np.testing.assert_array_equal(dxb, dx.transpose(1, 0, 2))
    np.testing.assert_array_equal(bf.flat_grads, tm.flat_grads)
    with pytest.raises(ValueError, match=r"resets must have shape \(B, T\) = \(2, 5\) with "
                                         r"batch_first=True, got \(5, 2\)"):
        bf(x.transpose(1, 0, 2), None, resets)
    with pytest.raises(ValueError, match=r"dy must have shape \(2, 5, 8\)"):
        bf.backward(dy, cb)


def test_batch_first_forward_keeps_its_own_copy(rng):
    """A batch of one (the transpose is then a view) is still copied into the cache."""
    layer = LSTM(3, 4, batch_first=True, dtype=np.float64, seed=0)
    x = rng.standard_normal((1, 5, 3))
    _, _, cache = layer.forward(x)
    layer.backward(np.ones((1, 5, 4)), cache)
    g = layer.flat_grads.copy()
    _, _, cache = layer.forward(x)
    x[...] = 0
    layer.zero_grad()
    layer.backward(np.ones((1, 5, 4)), cache)
    np.testing.assert_array_equal(layer.flat_grads, g)


@pytest.mark.parametrize("kind", list(RECURRENT))
def test_unbatched_is_a_batch_of_one(kind, rng):
    layer = RECURRENT[kind](3, 4, 2, bidirectional=True, dtype=np.float64, seed=0)
    x = rng.standard_normal((5, 3))
    resets = np.array([0, 0, 1, 0, 0], bool)
    s0 = tuple(a[:, 0] for a in _flat(_state(layer, 1, rng)))
    y, s, c = layer.forward(x, s0 if kind == "lstm" else s0[0], resets)
    y1, s1, c1 = layer.forward(x[:, None], tuple(a[:, None] for a in s0) if kind == "lstm"
                               else s0[0][:, None], resets[:, None])
    np.testing.assert_array_equal(y, y1[:, 0])
    for a, b in zip(_flat(s), _flat(s1)):
        np.testing.assert_array_equal(a, b[:, 0])
    dy = rng.standard_normal((5, 8))
    dx, ds = layer.backward(dy, c)
    dx1, ds1 = layer.backward(dy[:, None], c1)
    np.testing.assert_array_equal(dx, dx1[:, 0])
    for a, b in zip(_flat(ds), _flat(ds1)):
        np.testing.assert_array_equal(a, b[:, 0])
    with pytest.raises(ValueError, match=r"state.* of an unbatched input must have shape "
                                         r"\(4, 4\)"):
        layer(x, _state(layer, 1, rng))
    with pytest.raises(ValueError, match=r"resets of an unbatched input must have shape "
                                         r"\(T,\) = \(5,\)"):
        layer(x, None, resets[:, None])
    with pytest.raises(ValueError, match=r"dy must have 2 dimensions, got shape \(5, 1, 8\)"):
        layer.backward(dy[:, None], c)


# --------------------------------------------------------------------------- dropout
@pytest.mark.parametrize("kind", list(RECURRENT))
def test_dropout_is_seeded_training_only_and_never_in_inference_or_step(kind, rng):
    x = rng.standard_normal((6, 3, 2)).astype(np.float32)
    make = lambda seed: RECURRENT[kind](2, 8, 3, dropout=0.5, seed=seed)  # noqa: E731
    a, b, plain = make(7), make(7), RECURRENT[kind](2, 8, 3, seed=7)
    np.testing.assert_array_equal(a.flat_params, plain.flat_params)  # same initial weights
    ya = a.forward(x)[0]
    np.testing.assert_array_equal(ya, b.forward(x)[0])              # same masks
    assert not np.array_equal(ya, a.forward(x)[0])                  # a new mask each pass
    assert not np.array_equal(ya, make(8).forward(x)[0])            # another seed, other masks
    y_inf = plain(x)[0]
    np.testing.assert_array_equal(a(x)[0], y_inf)                   # inference: none
    assert a.training and a.eval() is a and not a.training
    np.testing.assert_array_equal(a.forward(x)[0], y_inf)           # eval(): none
    assert a.train() is a and a.training
    state = None
    for t in range(6):
        h, state = a.step(x[t], state)
    np.testing.assert_allclose(h, y_inf[-1], rtol=1e-5, atol=1e-6)  # step(): none
    _, _, cache = a.forward(x)
    assert len(cache.masks) == 2 and all(m.shape == (18, 8) for m in cache.masks)
    kept = np.mean([np.mean(m > 0) for m in cache.masks])
    assert 0.35 < kept < 0.65


def test_dropout_on_one_layer_warns_as_torch_does():
    with pytest.warns(UserWarning, match="with num_layers=1 it does nothing"):
        LSTM(2, 3, dropout=0.2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        LSTM(2, 3, 2, dropout=0.2)
        LSTM(2, 3, dropout=0.0)


def test_train_and_eval_reach_submodules():
    model = SequenceModel(2, 3, 1, num_layers=2, core_kwargs={"dropout": 0.3})
    assert model.eval() is model
    assert not model.training and not model.core.training and not model.readout.training
    model.train()
    assert model.core.training
    with pytest.raises(TypeError, match="mode must be a bool"):
        model.train("yes")


def test_fit_trains_with_dropout_and_restores_the_mode(rng):
    x = rng.standard_normal((5, 8, 2)).astype(np.float32)
    y = rng.standard_normal((5, 8, 1)).astype(np.float32)
    model = SequenceModel(2, 4, 1, num_layers=2, core_kwargs={"dropout": 0.5}, seed=0).eval()
    before = model.core.dropout_rng.bit_generator.state
    rlstm.fit(model, x, y, epochs=1, batch_size=8, seed=0)
    assert model.core.dropout_rng.bit_generator.state != before  # masks were drawn
    assert not model.training and not model.core.training


# --------------------------------------------------------------------------- bad options
@pytest.mark.parametrize("kind", list(RECURRENT))
@pytest.mark.parametrize("kwargs,exc,msg", [
    (dict(bias="no"), TypeError, r"bias must be a bool \(True or False\), got 'no'"),
    (dict(bias=1), TypeError, "bias must be a bool"),
    (dict(batch_first="False"), TypeError, r"batch_first must be a bool .*got 'False'"),
    (dict(batch_first=None), TypeError, "batch_first must be a bool"),
    (dict(dropout=1.0), ValueError, r"dropout must be a number in \[0, 1\)"),
    (dict(dropout=-0.1), ValueError, r"dropout must be a number in \[0, 1\)"),
    (dict(dropout="0.5"), TypeError, "dropout must be a number"),
    (dict(dropout=True), TypeError, "dropout must be a number"),
    (dict(dropout=float("nan")), ValueError, "dropout must be"),
])
def test_bad_options_are_clear_errors(kind, kwargs, exc, msg):
    with pytest.raises(exc, match=msg):
        RECURRENT[kind](3, 4, 2, **kwargs)


def test_models_refuse_batch_first_cores():
    with pytest.raises(ValueError, match="time-major"):
        SequenceModel(2, 3, 1, core_kwargs={"batch_first": True})
    with pytest.raises(ValueError, match="time-major"):
        LSTMPolicy(spaces.Box(-1, 1, (3,)), spaces.Discrete(2),
                   core_kwargs={"batch_first": True})


# --------------------------------------------------------------------------- save / load
@pytest.mark.parametrize("kind", list(RECURRENT))
def test_options_round_trip_through_files(kind, tmp_path, rng):
    layer = RECURRENT[kind](3, 4, 2, bidirectional=True, bias=False, batch_first=True,
                            dropout=0.25, dtype=np.float64, seed=0)
    rlstm.save(layer, tmp_path / "m.rlstm")
    back = rlstm.load(tmp_path / "m.rlstm")
    assert (back.bias, back.batch_first, back.dropout) == (False, True, 0.25)
    assert list(back.params) == list(layer.params)
    np.testing.assert_array_equal(back.flat_params, layer.flat_params)
    x = rng.standard_normal((2, 5, 3))
    np.testing.assert_array_equal(back(x)[0], layer(x)[0])
    model = SequenceModel(3, 4, 2, core=kind, core_kwargs={"bias": False, "dropout": 0.1},
                          num_layers=2, seed=0)
    rlstm.save(model, tmp_path / "s.rlstm")
    back = rlstm.load(tmp_path / "s.rlstm")
    assert back.core.bias is False and back.core.dropout == 0.1
    np.testing.assert_array_equal(back.flat_params, model.flat_params)


@pytest.mark.parametrize("kind", list(RECURRENT))
def test_files_from_before_the_options_load_with_the_old_defaults(kind):
    layer = RECURRENT[kind](3, 4, 2, seed=0)
    section = io.describe(layer)
    for key in ("bias", "batch_first", "dropout"):
        del section["config"][key]
    back = io.rebuild(json.loads(json.dumps(section)), layer.flat_params.copy())
    assert (back.bias, back.batch_first, back.dropout) == (True, False, 0.0)
    np.testing.assert_array_equal(back.flat_params, layer.flat_params)


@pytest.mark.parametrize("change,msg", [({"bias": "no"}, "bias must be a bool"),
                                        ({"dropout": 2}, "dropout must be"),
                                        ({"bias": True}, "parameters are")])
def test_tampered_option_headers_are_value_errors(change, msg):
    layer = LSTM(3, 4, bias=False, seed=0)
    section = io.describe(layer)
    section["config"].update(change)
    with pytest.raises(ValueError, match=msg):
        io.rebuild(section, layer.flat_params.copy())


def test_a_recurrent_header_with_more_inputs_than_units_loads(tmp_path):
    """The size check before allocating once over-estimated layers above the first (they read
    H * directions features, not D): a GRU(100, 1, 2) file did not load."""
    for layer in (GRU(100, 1, 2, seed=0), LSTM(50, 2, 3, bias=False, seed=0)):
        rlstm.save(layer, tmp_path / "m.rlstm")
        np.testing.assert_array_equal(rlstm.load(tmp_path / "m.rlstm").flat_params,
                                      layer.flat_params)


# --------------------------------------------------------------------------- repr
def test_repr_of_every_layer():
    assert repr(LSTM(32, 64, 2, batch_first=True, bidirectional=True)) == \
        "LSTM(32, 64, num_layers=2, batch_first=True, bidirectional=True)"
    assert repr(LSTM(3, 4, variant="peephole", cell_activation="identity", forget_bias=1.0,
                     dtype=np.float64)) == \
        "LSTM(3, 4, variant='peephole', cell_activation='identity', forget_bias=1.0, " \
        "dtype=float64)"
    assert repr(GRU(3, 4, 3, bias=False, dropout=0.5)) == \
        "GRU(3, 4, num_layers=3, bias=False, dropout=0.5)"
    assert repr(ConvLSTM(3, 16, 3, spatial_shape=(32, 32))) == \
        "ConvLSTM(3, 16, kernel_size=(3, 3), spatial_shape=(32, 32))"
    assert repr(ConvLSTM(3, 16, (3, 5), peephole=False, num_layers=2)) == \
        "ConvLSTM(3, 16, kernel_size=(3, 5), num_layers=2, peephole=False)"
    assert repr(Linear(4, 2)) == "Linear(in_features=4, out_features=2, bias=True)"
    assert repr(Conv2d(3, 16, 8, 4)) == "Conv2d(3, 16, kernel_size=(8, 8), stride=(4, 4))"
    assert repr(MLP(4, (8, 2), activation="relu")) == (
        "MLP(\n  activation='relu'\n"
        "  (0): Linear(in_features=4, out_features=8, bias=True)\n"
        "  (1): Linear(in_features=8, out_features=2, bias=True)\n)")
    assert repr(ConvEncoder((10, 10, 3))) == (
        "ConvEncoder(\n  image_shape=(10, 10, 3)\n"
        "  (conv0): Conv2d(3, 16, kernel_size=(3, 3), stride=(1, 1))\n"
        "  (conv1): Conv2d(16, 32, kernel_size=(3, 3), stride=(1, 1))\n)")
    assert repr(SequenceModel(2, 32, 1, num_layers=2, bidirectional=True)) == (
        "SequenceModel(\n  (core): LSTM(2, 32, num_layers=2, bidirectional=True)\n"
        "  (readout): Linear(in_features=64, out_features=1, bias=True)\n)")
    policy = LSTMPolicy(spaces.Box(-1, 1, (3,)), spaces.Discrete(2), hidden_size=4,
                        mlp_hidden=(5,))
    assert repr(policy).splitlines()[:4] == [
        "LSTMPolicy(", "  (encoder): MLP(",
        "    activation='tanh'", "    (0): Linear(in_features=3, out_features=5, bias=True)"]
    assert "  (core): LSTM(5, 4)" in repr(policy).splitlines()
