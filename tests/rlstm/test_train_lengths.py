"""rlstm.fit, evaluate_loss and SequenceModel with ``lengths``: padded steps are out of the loss,
"last step" targets meet each sequence's own last step, and nothing depends on the padding."""
from __future__ import annotations

import numpy as np
import pytest

import rlstm
from rlstm.reference.gradcheck import central_difference
from rlstm.train import TrainConfig, _check_data, _loss_and_grad, evaluate_loss

T, N, D, O = 6, 5, 2, 3
LENGTHS = np.array([6, 2, 4, 1, 5])
PAD = np.arange(T)[:, None] >= LENGTHS


def _targets(loss, last, rng):
    if loss == "mse":
        return rng.standard_normal((N, O) if last else (T, N, O))
    return rng.integers(0, O, N if last else (T, N))


@pytest.mark.parametrize("core", ["lstm", "gru"])
@pytest.mark.parametrize("loss,last", [("mse", False), ("mse", True),
                                       ("cross_entropy", False), ("cross_entropy", True)])
def test_loss_is_each_sequence_alone_and_gradients_match_central_differences(core, loss, last):
    rng = np.random.default_rng(2)
    m = rlstm.SequenceModel(D, 4, O, num_layers=2, core=core, bidirectional=True,
                            dtype=np.float64, seed=0)
    x = rng.standard_normal((T, N, D))
    y = _targets(loss, last, rng)
    cfg = TrainConfig(loss=loss)
    data = _check_data(m, x, y, cfg, None, None, "training", LENGTHS)
    idx = np.arange(N)
    out, _, cache = m.forward(x, lengths=LENGTHS)
    value, dout = _loss_and_grad(m, out, data, idx, 0, T, cfg)
    assert not dout[PAD].any()
    if last:  # the gradient reaches each sequence's last step only
        assert (np.abs(dout).sum(axis=2) > 0).sum(axis=0).tolist() == [1] * N
        assert all(np.abs(dout[n - 1, b]).sum() > 0 for b, n in enumerate(LENGTHS))
    # the loss is the one of the unpadded sequences, each step (or sequence) weighted once
    per = []
    for b, n in enumerate(LENGTHS):
        ob = m(x[:n, b:b + 1])[0][:, 0]
        if loss == "mse":
            per.append(((ob[-1] - y[b]) ** 2) if last else ((ob - y[:n, b]) ** 2))
        else:
            lp = ob - np.log(np.exp(ob).sum(-1, keepdims=True))
            per.append(-lp[-1, y[b]] if last else -lp[np.arange(n), y[:n, b]])
    want = np.mean(np.concatenate([np.ravel(p) for p in per]))
    assert value == pytest.approx(want, rel=1e-12)
    assert evaluate_loss(m, x, y, loss, lengths=LENGTHS, batch_size=2) == \
        pytest.approx(value, rel=1e-12)

    def objective():
        o, _ = m(x, lengths=LENGTHS)
        return _loss_and_grad(m, o, data, idx, 0, T, cfg)[0]
    m.zero_grad()
    m.backward(dout, cache)
    np.testing.assert_allclose(m.flat_grads, central_difference(objective, m.flat_params),
                               rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("loss,last,tbptt", [("mse", False, None), ("mse", False, 4),
                                             ("cross_entropy", True, None),
                                             ("cross_entropy", False, 4)])
def test_fit_does_not_depend_on_the_padding(loss, last, tbptt):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((T, 12, D)).astype(np.float32)
    lengths = rng.integers(1, T + 1, 12)
    y = rng.standard_normal((T, 12, O)) if loss == "mse" else rng.integers(0, O, (T, 12))
    if last:
        y = y[0]
    pad = np.arange(T)[:, None] >= lengths
    runs = []
    for fill in (0.0, 9.0):
        xf, yf = x.copy(), np.array(y)
        xf[pad] = fill
        if not last:
            yf[pad] = 1 if loss == "cross_entropy" else fill
        m = rlstm.SequenceModel(D, 5, O, num_layers=2, bidirectional=tbptt is None, seed=0)
        h = rlstm.fit(m, xf, yf, lengths=lengths, loss=loss, epochs=2, batch_size=5, seed=0,
                      tbptt=tbptt, validation=(xf, yf, lengths))
        runs.append((h, m.flat_params.copy()))
    (h0, p0), (h1, p1) = runs
    np.testing.assert_array_equal(p0, p1)
    assert h0["loss"] == h1["loss"] and h0["val_loss"] == h1["val_loss"]
    assert h0["loss"][-1] < h0["loss"][0]


def test_fit_with_full_lengths_is_fit_without():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((T, 8, D)).astype(np.float32)
    y = rng.integers(0, O, 8)
    out = []
    for lengths in (None, np.full(8, T)):
        m = rlstm.SequenceModel(D, 5, O, seed=0)
        rlstm.fit(m, x, y, lengths=lengths, loss="cross_entropy", epochs=2, batch_size=4,
                  seed=0)
        out.append(m.flat_params.copy())
    np.testing.assert_array_equal(*out)


def test_ctc_input_lengths_default_to_lengths():
    m = rlstm.SequenceModel(D, 4, 3, dtype=np.float64, seed=0)
    cfg = TrainConfig(loss="ctc")
    x = np.zeros((T, N, D))
    y = np.ones((N, 1), np.int64)
    data = _check_data(m, x, y, cfg, None, np.ones(N, np.int64), "training", LENGTHS)
    np.testing.assert_array_equal(data.input_lengths, LENGTHS)


@pytest.mark.parametrize("kwargs,exc,msg", [
    (dict(lengths=LENGTHS[:4]), ValueError, r"lengths must have shape \(B,\) = \(5,\)"),
    (dict(lengths=LENGTHS * 2), ValueError, r"lengths must be in \[1, T\] = \[1, 6\]"),
    (dict(lengths=LENGTHS.astype(float)), TypeError, "lengths must be an integer array"),
    (dict(validation=(np.zeros((T, 2, D)), np.zeros(2, int), [7, 1])), ValueError,
     r"validation lengths must be in \[1, T\]"),
    (dict(validation=(1, 2, 3, 4, 5)), TypeError, "validation must be a tuple"),
])
def test_fit_refuses_bad_lengths(kwargs, exc, msg):
    m = rlstm.SequenceModel(D, 4, O, seed=0)
    kwargs.setdefault("lengths", LENGTHS)
    with pytest.raises(exc, match=msg):
        rlstm.fit(m, np.zeros((T, N, D)), np.zeros(N, int), loss="cross_entropy", epochs=1,
                  **kwargs)
