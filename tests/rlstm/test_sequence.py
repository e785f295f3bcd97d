"""rlstm.sequence: SequenceModel gradients (LSTM/GRU, bidirectional, state, resets), step,
predict batching, chrono_init (test_train.py covers fit and the loss plumbing)."""
import numpy as np
import pytest

import rlstm
from rlstm.reference.gradcheck import central_difference
from rlstm.sequence import SequenceModel, chrono_init


def as_tuple(state):
    return (state,) if isinstance(state, np.ndarray) else tuple(state)


@pytest.mark.parametrize("core,bidirectional", [("lstm", False), ("lstm", True),
                                                ("gru", False), ("gru", True)])
def test_backward_matches_central_differences(core, bidirectional):
    rng = np.random.default_rng(0)
    T, B, D, H, O = 4, 2, 3, 3, 2
    m = SequenceModel(D, H, O, num_layers=2, core=core, bidirectional=bidirectional,
                      dtype=np.float64, seed=1)
    dirs = 2 if bidirectional else 1
    assert m.params["readout.weight"].shape == (O, H * dirs)
    assert list(m.params)[-2:] == ["readout.weight", "readout.bias"]
    x = rng.standard_normal((T, B, D))
    state0 = tuple(rng.standard_normal((2 * dirs, B, H)) * 0.5
                   for _ in as_tuple(m.initial_state(B)))
    resets = np.zeros((T, B), bool)
    resets[2, 1] = True
    a = rng.standard_normal((T, B, O))
    b = [rng.standard_normal((2 * dirs, B, H)) for _ in state0]
    st0 = state0 if core == "lstm" else state0[0]

    def objective():
        out, state, _ = m.forward(x, st0, resets)
        return np.sum(a * out) + sum(np.sum(w * s) for w, s in zip(b, as_tuple(state), strict=True))

    _, _, cache = m.forward(x, st0, resets)
    m.zero_grad()
    dstate = tuple(b) if core == "lstm" else b[0]
    dx, dstate0 = m.backward(a, cache, dstate)
    np.testing.assert_allclose(m.flat_grads, central_difference(objective, m.flat_params),
                               rtol=1e-5, atol=1e-8)
    np.testing.assert_allclose(dx, central_difference(objective, x), rtol=1e-5, atol=1e-8)
    for s, ds in zip(state0, as_tuple(dstate0), strict=True):
        np.testing.assert_allclose(ds, central_difference(objective, s), rtol=1e-5, atol=1e-8)
    # the reset cuts row 1 off from its initial state at step 2; the core still depends on it
    assert np.abs(m.grads["core.weight_hh_l1"]).max() > 1e-4
    assert np.abs(as_tuple(dstate0)[0]).max() > 1e-4


def test_backward_refuses_dout_of_another_shape():
    m = SequenceModel(2, 3, 4, seed=0)
    _, _, cache = m.forward(np.zeros((5, 2, 2)))
    with pytest.raises(ValueError, match=r"dout must have shape \(5, 2, 4\), got \(5, 2, 3\)"):
        m.backward(np.zeros((5, 2, 3)), cache)
    assert not m.flat_grads.any()


@pytest.mark.parametrize("core", ["lstm", "gru"])
def test_step_by_step_equals_forward(core):
    rng = np.random.default_rng(1)
    m = SequenceModel(3, 4, 2, num_layers=2, core=core, dtype=np.float64, seed=0)
    x = rng.standard_normal((6, 5, 3))
    state0 = m.initial_state(5)
    state0 = tuple(s + 0.3 for s in state0) if core == "lstm" else state0 + 0.3
    out, final = m(x, state0)
    state, steps = state0, []
    for t in range(6):
        y, state = m.step(x[t], state)
        assert y.shape == (5, 2)
        steps.append(y)
    np.testing.assert_allclose(np.stack(steps), out, rtol=1e-12, atol=1e-12)
    for s, f in zip(as_tuple(state), as_tuple(final), strict=True):
        np.testing.assert_allclose(s, f, rtol=1e-12, atol=1e-12)
    one, _ = m(x[:1], state0)
    np.testing.assert_allclose(m.step(x[0], state0)[0], one[0], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("with_state", [False, True])
def test_predict_in_batches_equals_one_call(with_state):
    rng = np.random.default_rng(2)
    m = SequenceModel(3, 4, 2, num_layers=2, bidirectional=True, dtype=np.float64, seed=0)
    x = rng.standard_normal((5, 7, 3))
    state = (tuple(rng.standard_normal((4, 7, 4)) for _ in range(2)) if with_state
             else None)
    whole, _ = m(x, state)
    for batch_size in (1, 3, 7, 256):
        np.testing.assert_allclose(m.predict(x, state, batch_size=batch_size), whole,
                                   rtol=1e-12, atol=1e-12)
    assert m.predict(x.astype(np.float32)).dtype == np.float64


def test_predict_of_a_gru_model_with_a_state():
    rng = np.random.default_rng(3)
    m = SequenceModel(3, 4, 2, num_layers=2, core="gru", dtype=np.float64, seed=0)
    x, h0 = rng.standard_normal((5, 7, 3)), rng.standard_normal((2, 7, 4))
    np.testing.assert_allclose(m.predict(x, h0, batch_size=3), m(x, h0)[0], rtol=1e-12)


def test_chrono_init_sets_forget_and_input_biases_of_every_layer_and_direction():
    H, max_lag = 5, 20
    lstm = rlstm.LSTM(3, H, 2, bidirectional=True, dtype=np.float64, seed=0)
    before = lstm.state_dict()
    chrono_init(lstm, max_lag, seed=0)
    names = [k for k in lstm.params if k.startswith("bias_ih")]
    assert len(names) == 4  # 2 layers x 2 directions
    forget = []
    for name, p in lstm.params.items():
        old = before[name]
        if name.startswith("bias_ih"):
            bf = p[H:2 * H]
            assert np.all(bf >= 0) and np.all(bf <= np.log(max_lag - 1))
            np.testing.assert_array_equal(p[:H], -bf)
            np.testing.assert_array_equal(p[2 * H:], old[2 * H:])  # g and o untouched
            forget.append(bf.copy())
        elif name.startswith("bias_hh"):
            assert not p[:2 * H].any()
            np.testing.assert_array_equal(p[2 * H:], old[2 * H:])
        else:
            np.testing.assert_array_equal(p, old)  # weights untouched
    assert len({f.tobytes() for f in forget}) == 4  # each layer and direction drawn anew
    twin = rlstm.LSTM(3, H, 2, bidirectional=True, dtype=np.float64, seed=0)
    chrono_init(twin, max_lag, seed=0)
    np.testing.assert_array_equal(twin.flat_params, lstm.flat_params)
    chrono_init(twin, max_lag, seed=1)
    assert not np.array_equal(twin.flat_params, lstm.flat_params)


def test_chrono_init_time_constants_are_uniform_up_to_max_lag():
    lstm = rlstm.LSTM(1, 2000, dtype=np.float64, seed=0)
    chrono_init(lstm, 41, seed=0)
    tau = np.exp(lstm.params["bias_ih_l0"][2000:4000])  # U(1, 40): mean 20.5, sd 11.26
    assert abs(tau.mean() - 20.5) < 5 * 11.26 / np.sqrt(2000)
    assert tau.min() >= 1 and tau.max() <= 40 and tau.max() > 39 and tau.min() < 2


def test_chrono_init_refuses_short_lags():
    lstm = rlstm.LSTM(1, 3, seed=0)
    before = lstm.flat_params.copy()
    with pytest.raises(ValueError, match="max_lag must be >= 3, got 2"):
        chrono_init(lstm, 2)
    with pytest.raises(TypeError, match="max_lag must be an int"):
        chrono_init(lstm, 10.0)
    np.testing.assert_array_equal(lstm.flat_params, before)


def test_chrono_init_refuses_a_gru():
    with pytest.raises((TypeError, ValueError), match="LSTM"):
        chrono_init(rlstm.GRU(2, 3, seed=0), 10)


def test_chrono_init_of_a_sequence_model_is_refused_or_reaches_its_core():
    m = SequenceModel(2, 3, 1, seed=0)
    before = m.flat_params.copy()
    try:
        chrono_init(m, 10, seed=0)
    except (TypeError, ValueError):
        return
    assert not np.array_equal(m.flat_params, before)
