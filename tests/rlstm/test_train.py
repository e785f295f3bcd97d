"""Supervised sequence training: losses, SequenceModel gradients, fit, truncated BPTT."""

import numpy as np
import pytest


import rlstm
from rlstm.train import cross_entropy_loss, evaluate_loss, mse_loss
from rlstm.reference.gradcheck import central_difference as numeric_grad


def test_loss_gradients_match_central_differences():
    rng = np.random.default_rng(0)
    pred, target = rng.standard_normal((2, 3, 4, 2))
    loss, grad = mse_loss(pred, target)
    assert loss == pytest.approx(np.mean((pred - target) ** 2))
    np.testing.assert_allclose(grad, numeric_grad(lambda: mse_loss(pred, target)[0], pred),
                               rtol=1e-6, atol=1e-9)
    logits = rng.standard_normal((3, 4, 5)) * 3
    labels = rng.integers(0, 5, (3, 4))
    labels[0, 1] = -1
    loss, grad = cross_entropy_loss(logits, labels)
    p = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    valid = labels >= 0
    expected = -np.log(p[valid, labels[valid]]).mean()
    assert loss == pytest.approx(expected, rel=1e-12)
    np.testing.assert_allclose(grad, numeric_grad(lambda: cross_entropy_loss(logits, labels)[0],
                                                  logits), rtol=1e-6, atol=1e-9)
    assert np.all(grad[0, 1] == 0)
    big, _ = cross_entropy_loss(np.array([[1000.0, -1000.0]]), np.array([1]))
    assert big == pytest.approx(2000.0)


@pytest.mark.parametrize("loss,last", [("mse", False), ("mse", True),
                                       ("cross_entropy", False), ("cross_entropy", True)])
def test_sequence_model_gradients(loss, last):
    rng = np.random.default_rng(1)
    T, N, D, O = 4, 3, 2, 3
    m = rlstm.SequenceModel(D, 4, O, num_layers=2, dtype=np.float64, seed=0)
    x = rng.standard_normal((T, N, D))
    if loss == "mse":
        y = rng.standard_normal((N, O) if last else (T, N, O))
    else:
        y = rng.integers(0, O, N if last else (T, N))
    cfg = rlstm.train.TrainConfig(loss=loss)
    data = rlstm.train._check_data(m, x, y, cfg, None, None, "t")
    idx = np.arange(N)

    def objective():
        out, _, _ = m.forward(x)
        return rlstm.train._loss_and_grad(m, out, data, idx, 0, T, cfg)[0]

    out, _, cache = m.forward(x)
    value, dout = rlstm.train._loss_and_grad(m, out, data, idx, 0, T, cfg)
    m.zero_grad()
    m.backward(dout, cache)
    np.testing.assert_allclose(m.flat_grads, numeric_grad(objective, m.flat_params),
                               rtol=1e-5, atol=1e-8)
    assert value == pytest.approx(evaluate_loss(m, x, y, loss), rel=1e-12)
    assert np.abs(m.grads["readout.weight"]).max() > 1e-4
    assert np.abs(m.grads["core.weight_ih_l0"]).max() > 1e-6


def echo_data(T, N, rng, delay=1):
    """Input bits; target = the input ``delay`` steps ago (0 before the start)."""
    x = rng.integers(0, 2, (T, N, 1)).astype(np.float64)
    y = np.zeros_like(x)
    y[delay:] = x[:-delay]
    return x, y


def test_fit_learns_delayed_echo_with_tbptt_carrying_state():
    rng = np.random.default_rng(0)
    x, y = echo_data(20, 64, rng)
    m = rlstm.SequenceModel(1, 8, 1, dtype=np.float64, seed=0)
    before = evaluate_loss(m, x, y)
    hist = rlstm.fit(m, x, y, loss="mse", epochs=60, batch_size=32, lr=0.02, tbptt=5, seed=0,
                     threads=1)
    assert len(hist["loss"]) == 60 and hist["loss"][-1] < hist["loss"][0]
    xt, yt = echo_data(20, 64, np.random.default_rng(1))
    out = m.predict(xt)
    err = (out - yt) ** 2
    assert err.mean() < 0.02 < before
    # steps 5, 10, 15 start a chunk: echoing them needs the state carried across chunks
    assert err[[5, 10, 15]].mean() < 0.02


def test_fit_is_reproducible_and_full_tbptt_equals_none():
    rng = np.random.default_rng(0)
    x, y = echo_data(6, 10, rng)
    runs = []
    for tbptt in (None, 6, None):
        m = rlstm.SequenceModel(1, 3, 1, dtype=np.float64, seed=4)
        runs.append((rlstm.fit(m, x, y, epochs=3, batch_size=4, seed=2, tbptt=tbptt)["loss"],
                     m.flat_params.copy()))
    for h, p in runs[1:]:
        assert h == runs[0][0]
        np.testing.assert_array_equal(p, runs[0][1])


def test_fit_classification_last_step_and_validation_and_callback():
    rng = np.random.default_rng(0)
    T, N = 8, 128
    x = rng.standard_normal((T, N, 2))
    y = (x[0, :, 0] > 0).astype(np.int64)  # remember the sign of the first input
    m = rlstm.SequenceModel(2, 8, 2, dtype=np.float64, seed=0)
    seen = []
    hist = rlstm.fit(m, x, y, loss="cross_entropy", epochs=40, batch_size=32, lr=0.02,
                     optimizer="adam", validation=(x, y), seed=0,
                     callback=lambda e, h: seen.append(e) or h["val_loss"][-1] < 0.05)
    assert seen == list(range(len(hist["loss"])))
    assert hist["val_loss"][-1] < 0.1
    pred = m.predict(x)[-1].argmax(-1)
    assert (pred == y).mean() > 0.97


def test_sgd_and_no_clipping_run_and_decrease_loss():
    rng = np.random.default_rng(0)
    x, y = echo_data(6, 32, rng)
    m = rlstm.SequenceModel(1, 4, 1, seed=0)
    hist = rlstm.fit(m, x, y, epochs=30, optimizer="sgd", lr=0.2, clip_norm=None, seed=0)
    assert hist["loss"][-1] < 0.8 * hist["loss"][0]
    assert m.flat_params.dtype == np.float32


def test_ctc_loss_needs_rlstm_ctc_loss():
    m = rlstm.SequenceModel(2, 4, 3, seed=0)
    x = np.zeros((5, 2, 2))
    y = np.array([[1, 2], [1, 0]])
    if hasattr(rlstm, "ctc_loss"):
        hist = rlstm.fit(m, x, y, loss="ctc", target_lengths=np.array([2, 1]), epochs=2)
        assert np.isfinite(hist["loss"]).all()
    else:
        with pytest.raises(ValueError, match="ctc_loss"):
            rlstm.fit(m, x, y, loss="ctc", target_lengths=np.array([2, 1]))


def test_bad_arguments():
    m = rlstm.SequenceModel(2, 4, 1, seed=0)
    x = np.zeros((5, 3, 2))
    with pytest.raises(TypeError, match="unknown fit"):
        rlstm.fit(m, x, np.zeros((5, 3, 1)), learning_rate=1)
    with pytest.raises(ValueError, match="input_size=2"):
        rlstm.fit(m, np.zeros((5, 3, 4)), np.zeros((5, 3, 1)))
    with pytest.raises(ValueError, match=r"\(T, N, O\)"):
        rlstm.fit(m, x, np.zeros((5, 3, 2)))
    with pytest.raises(ValueError, match="tbptt needs per-step"):
        rlstm.fit(m, x, np.zeros((3, 1)), tbptt=2)
    with pytest.raises(ValueError, match="loss must be one of"):
        rlstm.fit(m, x, np.zeros((5, 3, 1)), loss="mae")
    with pytest.raises(TypeError, match="integer class labels"):
        rlstm.fit(m, x, np.zeros((5, 3)), loss="cross_entropy")
    with pytest.raises(ValueError, match="labels must be in"):
        rlstm.fit(m, x, np.full((5, 3), 4), loss="cross_entropy")
    with pytest.raises(ValueError, match="NaN"):
        rlstm.fit(m, np.full((5, 3, 2), np.nan), np.zeros((5, 3, 1)))
    with pytest.raises(ValueError, match="lr"):
        rlstm.fit(m, x, np.zeros((5, 3, 1)), lr=-1)
    with pytest.raises(TypeError, match="SequenceModel"):
        rlstm.fit(rlstm.LSTM(2, 4), x, np.zeros((5, 3, 4)))


def test_sequence_model_save_load(tmp_path):
    m = rlstm.SequenceModel(2, 4, 3, num_layers=2, bidirectional=True,
                            core_kwargs={"variant": "peephole"}, dtype=np.float64, seed=0)
    rlstm.save(m, tmp_path / "seq")
    q = rlstm.load(tmp_path / "seq")
    assert isinstance(q, rlstm.SequenceModel) and q.config() == m.config()
    x = np.random.default_rng(0).standard_normal((5, 2, 2))
    np.testing.assert_array_equal(q.predict(x), m.predict(x))


def test_ctc_plumbing_with_a_stand_in_loss(monkeypatch):
    """fit passes logits, padded targets and lengths to rlstm.ctc_loss and descends on it."""
    calls = []

    def fake_ctc(logits, targets, input_lengths, target_lengths, blank=0):
        calls.append((logits.shape, targets.shape, input_lengths.tolist(),
                      target_lengths.tolist(), blank))
        return 0.5 * (logits ** 2).sum(axis=(0, 2)), logits.copy()
    monkeypatch.setattr(rlstm.train, "ctc_loss", fake_ctc)
    m = rlstm.SequenceModel(2, 4, 3, seed=0)
    x = np.random.default_rng(0).standard_normal((5, 4, 2))
    y = np.array([[1, 2], [1, 0], [2, 2], [1, 1]])
    hist = rlstm.fit(m, x, y, loss="ctc", target_lengths=np.array([2, 1, 2, 2]),
                     input_lengths=np.array([5, 4, 5, 3]), epochs=20, batch_size=4, blank=0,
                     lr=0.05, shuffle=False,
                     validation=(x, y, np.array([5, 4, 5, 3]), np.array([2, 1, 2, 2])))
    assert calls[0] == ((5, 4, 3), (4, 2), [5, 4, 5, 3], [2, 1, 2, 2], 0)
    assert hist["loss"][-1] < 0.2 * hist["loss"][0]
    assert len(hist["val_loss"]) == 20
    with pytest.raises(ValueError, match="tbptt"):
        rlstm.fit(m, x, y, loss="ctc", target_lengths=np.array([2, 1, 2, 2]), tbptt=2)
    with pytest.raises(ValueError, match="target_lengths"):
        rlstm.fit(m, x, y, loss="ctc")


# ---------------------------------------------------------------------------- examples


