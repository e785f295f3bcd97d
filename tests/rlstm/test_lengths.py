"""Variable-length batches (``lengths=``): right-padded sequences give what each sequence gives
alone, as PyTorch's packed sequences do; padded steps give and get no gradient.

The parity with ``torch.nn.utils.rnn.pack_padded_sequence`` is in ``test_lengths_torch.py``.
"""
from __future__ import annotations

import numpy as np
import pytest

from rlstm import GRU, LSTM, ConvLSTM, SequenceModel
from rlstm.padding import Padding
from rlstm.reference.gradcheck import central_difference

LENGTHS = np.array([6, 2, 1, 4, 6, 5])   # unsorted; full, shortest and in-between rows
T, B, D, H = 6, 6, 3, 4

LAYERS = {
    "lstm": lambda **kw: LSTM(D, H, **kw),
    "lstm-peephole": lambda **kw: LSTM(D, H, variant="peephole", **kw),
    "lstm-peephole_cell-identity": lambda **kw: LSTM(D, H, variant="peephole_cell",
                                                     cell_activation="identity", **kw),
    "gru": lambda **kw: GRU(D, H, **kw),
}


def _make(name, L, bi, dtype, seed=0):
    return LAYERS[name](num_layers=L, bidirectional=bi, dtype=dtype, seed=seed)


def _state(layer, rng, batch):
    shape = layer._state_shape(batch)
    h = rng.standard_normal(shape).astype(layer.dtype)
    return (h, rng.standard_normal(shape).astype(layer.dtype)) if isinstance(layer, LSTM) else h


def _rows(state, b):
    """Row b of a state (h, c) or h, kept 3-D."""
    if isinstance(state, tuple):
        return tuple(s[:, b:b + 1] for s in state)
    return state[:, b:b + 1]


def _flat(state):
    return state if isinstance(state, tuple) else (state,)


@pytest.mark.parametrize("name", list(LAYERS))
@pytest.mark.parametrize("L,bi", [(1, False), (1, True), (2, True)])
def test_each_sequence_gives_what_it_gives_alone(name, L, bi, dtype, rng, tol):
    """Outputs, final states and every gradient equal the sum over sequences run one by one,
    unpadded; padded outputs and input gradients are zero."""
    layer = _make(name, L, bi, dtype)
    x = rng.standard_normal((T, B, D)).astype(dtype)
    pad = np.arange(T)[:, None] >= LENGTHS
    x[pad] = 7.0                                  # whatever the padding holds is ignored
    s0 = _state(layer, rng, B)
    nd = 2 if bi else 1
    dy = rng.standard_normal((T, B, H * nd)).astype(dtype)
    ds = _state(layer, rng, B)
    y, sn, cache = layer.forward(x, s0, lengths=LENGTHS)
    layer.zero_grad()
    dx, ds0 = layer.backward(dy, cache, ds)
    grads = layer.flat_grads.copy()

    assert not y[pad].any() and not dx[pad].any()
    want_grads = np.zeros_like(grads)
    for b, n in enumerate(LENGTHS):
        yb, sb, cb = layer.forward(x[:n, b:b + 1], _rows(s0, b))
        layer.zero_grad()
        dxb, dsb = layer.backward(dy[:n, b:b + 1], cb, _rows(ds, b))
        want_grads += layer.flat_grads
        np.testing.assert_allclose(y[:n, b:b + 1], yb, **tol(dtype))
        np.testing.assert_allclose(dx[:n, b:b + 1], dxb, **tol(dtype))
        for got, want in zip(_flat(sn) + _flat(ds0), _flat(sb) + _flat(dsb)):
            np.testing.assert_allclose(got[:, b:b + 1], want, **tol(dtype))
    np.testing.assert_allclose(grads, want_grads, **tol(dtype))


@pytest.mark.parametrize("name", list(LAYERS))
def test_inference_equals_forward(name, dtype, rng):
    layer = _make(name, 2, True, dtype)
    x = rng.standard_normal((T, B, D)).astype(dtype)
    y, s, _ = layer.forward(x, lengths=LENGTHS)
    y2, s2 = layer(x, lengths=list(LENGTHS))
    np.testing.assert_array_equal(y, y2)
    for a, b in zip(_flat(s), _flat(s2)):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("name", list(LAYERS))
def test_full_lengths_are_the_plain_path_exactly(name, dtype, rng):
    layer = _make(name, 2, True, dtype)
    x = rng.standard_normal((T, B, D)).astype(dtype)
    dy = rng.standard_normal((T, B, 2 * H)).astype(dtype)
    y, s, c = layer.forward(x)
    layer.zero_grad()
    dx, _ = layer.backward(dy, c)
    g = layer.flat_grads.copy()
    y2, s2, c2 = layer.forward(x, lengths=np.full(B, T, np.int32))
    layer.zero_grad()
    dx2, _ = layer.backward(dy, c2)
    for a, b in ((y, y2), (dx, dx2), (g, layer.flat_grads), *zip(_flat(s), _flat(s2))):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("name", ["lstm", "lstm-peephole", "lstm-peephole_cell-identity", "gru"])
@pytest.mark.parametrize("bi", [False, True])
def test_gradients_match_central_differences(name, bi):
    """float64: d/d(params, x, h0, c0) of sum(dy * y) + sum(ds * final state) by central
    differences, with lengths and resets together."""
    rng = np.random.default_rng(3)
    layer = _make(name, 2, bi, np.float64, seed=1)
    if layer.flat_params.size:
        layer.flat_params[...] = rng.uniform(-0.6, 0.6, layer.flat_params.size)
    x = rng.standard_normal((T, B, D))
    s0 = _state(layer, rng, B)
    resets = rng.random((T, B)) < 0.25
    nd = 2 if bi else 1
    dy = rng.standard_normal((T, B, H * nd))
    ds = _state(layer, rng, B)

    def objective():
        y, s = layer(x, s0, resets, lengths=LENGTHS)
        return float(np.sum(dy * y) + sum(np.sum(a * b) for a, b in zip(_flat(ds), _flat(s))))

    _, _, cache = layer.forward(x, s0, resets, lengths=LENGTHS)
    layer.zero_grad()
    dx, ds0 = layer.backward(dy, cache, ds)
    sub = rng.choice(layer.flat_params.size, 40, replace=False)
    np.testing.assert_allclose(layer.flat_grads[sub],
                               central_difference(objective, layer.flat_params, indices=sub),
                               rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(dx, central_difference(objective, x), rtol=1e-6, atol=1e-8)
    for got, arr in zip(_flat(ds0), _flat(s0)):
        np.testing.assert_allclose(got, central_difference(objective, arr), rtol=1e-6,
                                   atol=1e-8)


def test_resets_with_lengths_equal_each_sequence_alone(rng, tol):
    """An episode start inside a sequence still zeroes the state (both directions)."""
    layer = LSTM(D, H, 2, bidirectional=True, dtype=np.float64, seed=0)
    x = rng.standard_normal((T, B, D))
    resets = rng.random((T, B)) < 0.3
    y, (h, c) = layer(x, resets=resets, lengths=LENGTHS)
    for b, n in enumerate(LENGTHS):
        yb, (hb, cb) = layer(x[:n, b:b + 1], resets=resets[:n, b:b + 1])
        np.testing.assert_allclose(y[:n, b:b + 1], yb, **tol(np.float64))
        np.testing.assert_allclose(h[:, b:b + 1], hb, **tol(np.float64))
        np.testing.assert_allclose(c[:, b:b + 1], cb, **tol(np.float64))


def test_padding_indices_and_reverse_resets():
    p = Padding(np.array([3, 1, 2]), 4, 3, reverse=True)
    assert p.valid.tolist() == [[1, 1, 1], [1, 0, 1], [1, 0, 0], [0, 0, 0]]
    assert p.last_rows.tolist() == [2 * 3 + 0, 0 * 3 + 1, 1 * 3 + 2]
    src = p.rev_rows.reshape(4, 3) // 3           # the step each reversed step reads
    assert src.tolist() == [[2, 0, 1], [1, 1, 0], [0, 2, 2], [3, 3, 3]]
    assert (p.rev_rows[p.rev_rows] == np.arange(12)).all()   # its own inverse
    resets = np.zeros((4, 3), np.uint8)
    resets[1, 0] = resets[2, 0] = resets[1, 2] = resets[3, 1] = 1
    # sequence 0 (3 steps): starts at original steps 1 and 2 -> reversed steps 2 and 1
    # sequence 2 (2 steps): a start at step 1 -> reversed step 1; padding resets are dropped
    assert p.reverse_resets(resets).tolist() == [[0, 0, 0], [1, 0, 1], [1, 0, 0], [0, 0, 0]]
    assert p.resets(resets).tolist() == [[0, 0, 0], [1, 0, 1], [1, 0, 0], [0, 0, 0]]


def test_convlstm_each_sequence_gives_what_it_gives_alone(rng, tol):
    dtype = np.float64
    conv = ConvLSTM(2, 3, 3, spatial_shape=(4, 5), num_layers=2, dtype=dtype, seed=0)
    conv.flat_params[...] = rng.uniform(-0.3, 0.3, conv.num_params)
    lengths = np.array([4, 1, 3])
    Tc, Bc = 4, 3
    x = rng.standard_normal((Tc, Bc, 2, 4, 5))
    s0 = tuple(rng.standard_normal((2, Bc, 3, 4, 5)) for _ in range(2))
    dy = rng.standard_normal((Tc, Bc, 3, 4, 5))
    ds = tuple(rng.standard_normal((2, Bc, 3, 4, 5)) for _ in range(2))
    y, sn, cache = conv.forward(x, s0, lengths=lengths)
    conv.zero_grad()
    dx, ds0 = conv.backward(dy, cache, ds)
    grads = conv.flat_grads.copy()
    want = np.zeros_like(grads)
    pad = np.arange(Tc)[:, None] >= lengths
    assert not y[pad].any() and not dx[pad].any()
    for b, n in enumerate(lengths):
        yb, sb, cb = conv.forward(x[:n, b:b + 1], tuple(s[:, b:b + 1] for s in s0))
        conv.zero_grad()
        dxb, dsb = conv.backward(dy[:n, b:b + 1], cb, tuple(s[:, b:b + 1] for s in ds))
        want += conv.flat_grads
        np.testing.assert_allclose(y[:n, b:b + 1], yb, **tol(dtype))
        np.testing.assert_allclose(dx[:n, b:b + 1], dxb, **tol(dtype))
        for got, w in zip(sn + ds0, sb + dsb):
            np.testing.assert_allclose(got[:, b:b + 1], w, **tol(dtype))
    np.testing.assert_allclose(grads, want, **tol(dtype))


@pytest.mark.parametrize("core", ["lstm", "gru"])
def test_sequence_model_with_lengths_is_the_sum_over_sequences(core, rng):
    model = SequenceModel(D, H, 2, num_layers=2, core=core, bidirectional=True,
                          dtype=np.float64, seed=0)
    x = rng.standard_normal((T, B, D))
    dout = rng.standard_normal((T, B, 2))
    out, _, cache = model.forward(x, lengths=LENGTHS)
    model.zero_grad()
    dx, _ = model.backward(dout, cache)
    grads = model.flat_grads.copy()
    pad = np.arange(T)[:, None] >= LENGTHS
    assert not out[pad].any() and not dx[pad].any()
    np.testing.assert_array_equal(model(x, lengths=LENGTHS)[0], out)
    np.testing.assert_array_equal(model.predict(x, batch_size=4, lengths=LENGTHS), out)
    want = np.zeros_like(grads)
    for b, n in enumerate(LENGTHS):
        ob, _, cb = model.forward(x[:n, b:b + 1])
        model.zero_grad()
        model.backward(dout[:n, b:b + 1], cb)
        want += model.flat_grads
        np.testing.assert_allclose(out[:n, b:b + 1], ob, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(grads, want, rtol=1e-10, atol=1e-12)


# --------------------------------------------------------------------------- bad lengths
BAD_LENGTHS = [
    (np.array([6, 2, 1, 4, 6]), ValueError, r"lengths must have shape \(B,\) = \(6,\)"),
    (np.array([[6, 2, 1, 4, 6, 5]]), ValueError, r"lengths must have shape \(B,\)"),
    (np.array([6, 2, 0, 4, 6, 5]), ValueError, r"lengths must be in \[1, T\] = \[1, 6\]"),
    (np.array([6, 2, 1, 4, 7, 5]), ValueError, r"lengths must be in \[1, T\] = \[1, 6\]"),
    (np.array([6, 2, -1, 4, 6, 5]), ValueError, r"lengths must be in \[1, T\]"),
    (np.array([6., 2, 1, 4, 6, 5]), TypeError, "lengths must be an integer array .*float64"),
    (np.array([6, 2, np.nan, 4, 6, 5]), TypeError, "lengths must be an integer array"),
    (np.ones(6, bool), TypeError, "lengths must be an integer array .*bool"),
    ("abcdef", TypeError, "lengths must be an integer array"),
    (6, ValueError, r"lengths must have shape \(B,\)"),
]


@pytest.mark.parametrize("lengths,exc,msg", BAD_LENGTHS)
@pytest.mark.parametrize("make", [lambda: LSTM(D, H, bidirectional=True), lambda: GRU(D, H),
                                  lambda: SequenceModel(D, H, 2)], ids=["lstm", "gru", "model"])
def test_bad_lengths_are_clear_errors(make, lengths, exc, msg):
    layer = make()
    x = np.zeros((T, B, D), np.float32)
    for call in (lambda: layer(x, lengths=lengths), lambda: layer.forward(x, lengths=lengths)):
        with pytest.raises(exc, match=msg):
            call()


def test_convlstm_bad_lengths():
    with pytest.raises(ValueError, match=r"lengths must be in \[1, T\] = \[1, 2\]"):
        ConvLSTM(1, 2, 3)(np.zeros((2, 2, 1, 3, 3)), lengths=[1, 3])


def test_lengths_need_a_batch():
    with pytest.raises(ValueError, match="lengths needs a batch"):
        LSTM(D, H)(np.zeros((T, D)), lengths=[T])
