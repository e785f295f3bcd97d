"""rlstm.Module: the flat layout (param_layout), bind, state dicts and set_flat_params."""
import numpy as np
import pytest
from gymnasium import spaces

import rlstm
from rlstm.policy import LSTMPolicy

BOX = spaces.Box(-1, 1, (3,), np.float32)


def make_policy(dtype=np.float64):
    obs = spaces.Dict({"img": spaces.Box(0, 255, (6, 5, 2), np.uint8), "vec": BOX})
    act = spaces.Tuple((spaces.Discrete(3), spaces.Box(-1, 1, (2,), np.float32)))
    return LSTMPolicy(obs, act, hidden_size=4, mlp_hidden=(5,), shared_core=False, seed=0,
                      dtype=dtype)


MODULES = {
    "lstm": lambda: rlstm.LSTM(3, 4, 2, bidirectional=True, variant="peephole", seed=0),
    "mlp": lambda: rlstm.MLP(3, (4, 2), seed=0),
    "sequence_model": lambda: rlstm.SequenceModel(3, 4, 2, num_layers=2, core="gru", seed=0),
    "policy": make_policy,
}


def byte_offset(view, base):
    return view.__array_interface__["data"][0] - base.__array_interface__["data"][0]


@pytest.mark.parametrize("name", MODULES)
def test_param_layout_is_where_each_named_view_lives(name):
    m = MODULES[name]()
    layout = m.param_layout
    assert list(layout) == list(m.params)
    offset = 0
    for key, (start, shape) in layout.items():
        assert start == offset, key  # contiguous, in order, no gaps
        view = m.params[key]
        assert view.shape == shape and m.grads[key].shape == shape
        assert byte_offset(view, m.flat_params) == start * m.flat_params.itemsize, key
        assert byte_offset(m.grads[key], m.flat_grads) == start * m.flat_grads.itemsize, key
        offset += int(np.prod(shape))
    assert offset == m.num_params == m.flat_params.size == m.flat_grads.size
    # writing the flat vector at a layout offset is writing that parameter (and its child's)
    m.flat_params[...] = np.arange(m.num_params)
    for key, (start, shape) in layout.items():
        np.testing.assert_array_equal(m.params[key].reshape(-1),
                                      np.arange(start, start + int(np.prod(shape))))


def test_param_layout_of_a_policy_points_into_its_children():
    p = make_policy()
    layout = p.param_layout
    assert list(layout)[:4] == ["image0.conv0.weight", "image0.conv0.bias",
                                "image0.conv1.weight", "image0.conv1.bias"]
    assert layout["log_std"][1] == (2,) and list(layout)[-2:] == ["value.weight", "value.bias"]
    p.flat_params[...] = np.arange(p.num_params)
    for prefix, child in (("core.", p.core), ("critic_core.", p.critic_core),
                          ("encoder.", p.encoder), ("action.", p.action_net),
                          ("image0.", p.image_nets[0])):
        for key, (start, shape) in child.param_layout.items():
            offset, full_shape = layout[prefix + key]
            assert full_shape == shape
            assert child.flat_params[start] == offset  # the child's vector is a slice of p's
            np.testing.assert_array_equal(child.params[key], p.params[prefix + key])


def test_bind_moves_parameters_and_gradients_into_the_given_vectors():
    lstm = rlstm.LSTM(2, 3, dtype=np.float64, seed=0)
    x = np.ones((1, 2))
    h_before = lstm.step(x)[0]
    values = lstm.flat_params.copy()
    big_p, big_g = np.full(lstm.num_params + 5, -7.0), np.full(lstm.num_params + 5, -7.0)
    lstm.grads["bias_ih_l0"][...] = 2.0
    lstm.bind(big_p[5:], big_g[5:])
    np.testing.assert_array_equal(big_p[5:], values)  # current values copied over
    assert (big_g[5:] == 0).sum() == lstm.num_params - 12 and big_g[:5].tolist() == [-7] * 5
    assert np.shares_memory(lstm.params["weight_hh_l0"], big_p)
    assert np.shares_memory(lstm.grads["weight_hh_l0"], big_g)
    np.testing.assert_array_equal(lstm.step(x)[0], h_before)
    big_p[5:] = 0.0  # the compiled step path reads the new vector
    np.testing.assert_array_equal(lstm.step(x)[0], np.zeros((1, 3)))


@pytest.mark.parametrize("p,g", [
    (np.zeros(30, np.float32), None),        # another dtype
    (np.zeros(29), None),                    # another size
    (np.zeros((30, 1)), None),               # not 1-D
    (np.zeros(60)[::2], None),               # not contiguous
    ([0.0] * 30, None),                      # not an array
    (None, np.zeros(31)),                    # a bad gradient vector
], ids=["dtype", "size", "2d", "strided", "list", "grads"])
def test_bind_refuses_vectors_that_cannot_hold_the_module(p, g):
    lin = rlstm.Linear(4, 6, dtype=np.float64, seed=0)
    assert lin.num_params == 30
    old_p, old_g = lin.flat_params, lin.flat_grads
    p = np.zeros(30) if p is None else p
    g = np.zeros(30) if g is None else g
    with pytest.raises(ValueError, match=r"must be a contiguous 1-D float64 array of size 30"):
        lin.bind(p, g)
    assert lin.flat_params is old_p and lin.flat_grads is old_g
    assert np.shares_memory(lin.params["weight"], old_p)


@pytest.mark.parametrize("make", [
    lambda: rlstm.SequenceModel(2, 3, 1, dtype=np.float64, seed=0),
    lambda: LSTMPolicy(spaces.Box(-1, 1, (2,)), spaces.Discrete(3), hidden_size=3,
                       dtype=np.float64, seed=0, mlp_hidden=(4,), shared_core=False)])
def test_bind_of_a_container_moves_its_submodules_too(make):
    m = make()
    before = m.flat_params.copy()
    p, g = np.empty(m.num_params), np.empty(m.num_params)
    m.bind(p, g)
    np.testing.assert_array_equal(p, before)
    p[...] = 0.5
    g[...] = 0.0
    for sub in (getattr(m, "core"), getattr(m, "encoder", None) or m.core):
        assert np.shares_memory(sub.flat_params, p) and np.shares_memory(sub.flat_grads, g)
        assert (sub.flat_params == 0.5).all()
    if isinstance(m, LSTMPolicy):  # nested two deep: the MLP's layers follow
        assert np.shares_memory(m.encoder.layers[0].params["weight"], p)


def test_state_dict_is_a_copy_in_layout_order():
    p = make_policy()
    sd = p.state_dict()
    assert list(sd) == list(p.params)
    for k, v in sd.items():
        assert not np.shares_memory(v, p.flat_params)
        np.testing.assert_array_equal(v, p.params[k])
    before = p.flat_params.copy()
    sd["core.weight_hh_l0"][...] = 99.0
    np.testing.assert_array_equal(p.flat_params, before)
    p.flat_params[...] = 0.0
    assert np.abs(sd["value.weight"]).max() > 0  # the copy does not follow the module


class TensorLike:
    """What a torch tensor offers load_state_dict: ``.detach().cpu().numpy()``."""

    def __init__(self, a):
        self.a = a

    def detach(self):
        return self

    def cpu(self):
        return self

    def numpy(self):
        return self.a


class ArrayLike:
    def __init__(self, a):
        self.a = a

    def __array__(self, dtype=None, copy=None):
        return self.a


def test_load_state_dict_copies_into_a_twin_and_its_children():
    src, dst = make_policy(), make_policy()
    src.flat_params[...] = np.random.default_rng(0).standard_normal(src.num_params)
    sd = src.state_dict()
    sd["core.weight_hh_l0"] = TensorLike(sd["core.weight_hh_l0"])
    sd["value.bias"] = ArrayLike(sd["value.bias"])
    sd["action.bias"] = np.arange(5)  # integers are converted to the module's dtype
    dst.load_state_dict(sd)
    expected = src.flat_params.copy()
    off, _ = src.param_layout["action.bias"]
    expected[off:off + 5] = np.arange(5)
    np.testing.assert_array_equal(dst.flat_params, expected)
    np.testing.assert_array_equal(dst.core.params["weight_hh_l0"],
                                  src.core.params["weight_hh_l0"])


def test_load_state_dict_non_strict_skips_only_unknown_and_missing_keys():
    p = make_policy()
    before = p.flat_params.copy()
    new_bias = np.array([0.25])
    p.load_state_dict({"value.bias": new_bias, "not.a.param": np.zeros(3)}, strict=False)
    off, _ = p.param_layout["value.bias"]
    changed = np.flatnonzero(p.flat_params != before)
    assert changed.tolist() == [off] and p.params["value.bias"][0] == 0.25
    with pytest.raises(ValueError, match=r"missing keys \[.*'value.weight'.*\], unexpected "
                                         r"keys \['not.a.param'\]"):
        p.load_state_dict({"value.bias": new_bias, "not.a.param": np.zeros(3)})


@pytest.mark.parametrize("strict", [True, False])
def test_load_state_dict_changes_nothing_when_the_last_entry_is_bad(strict):
    p = make_policy()
    before = p.flat_params.copy()
    sd = {k: v + 1.0 for k, v in p.state_dict().items()}  # every entry valid and different
    last = list(sd)[-1]
    for bad, exc, msg in ((np.zeros(3), ValueError, r"\['value.bias'\] must have shape \(1,\)"),
                          (np.array([np.nan]), ValueError, "contains NaN or inf"),
                          (np.array([True]), TypeError, "must be real numbers, got bool")):
        with pytest.raises(exc, match=msg):
            p.load_state_dict({**sd, last: bad}, strict=strict)
        np.testing.assert_array_equal(p.flat_params, before)


def test_set_flat_params_writes_in_place():
    p = make_policy()
    vec, core_view = p.flat_params, p.core.params["weight_ih_l0"]
    p.set_flat_params(list(range(p.num_params)))
    assert p.flat_params is vec
    off, shape = p.param_layout["core.weight_ih_l0"]
    np.testing.assert_array_equal(core_view.reshape(-1),
                                  np.arange(off, off + int(np.prod(shape))))


@pytest.mark.parametrize("flat,match", [
    (lambda n: np.zeros((n, 1)), r"must have shape \(\d+,\), got \(\d+, 1\)"),
    (lambda n: np.zeros(n + 1), r"must have shape \(\d+,\), got"),
    (lambda n: np.ones(n, bool), "finite real numbers"),
    (lambda n: np.r_[np.zeros(n - 1), np.inf], "finite real numbers"),
    (lambda n: np.array(["0"] * n), "finite real numbers"),
])
def test_set_flat_params_refusals_change_nothing(flat, match):
    p = make_policy()
    before = p.flat_params.copy()
    with pytest.raises(ValueError, match=match):
        p.set_flat_params(flat(p.num_params))
    np.testing.assert_array_equal(p.flat_params, before)


def test_zero_grad_clears_every_child_in_place():
    p = make_policy()
    grads = p.flat_grads
    grads[...] = 1.0
    p.zero_grad()
    assert p.flat_grads is grads and not grads.any()
    assert not p.core.flat_grads.any() and not p.image_nets[0].flat_grads.any()
