"""rlstm.LSTM/GRU against torch.nn.LSTM/GRU for what PyTorch users bring: packed variable-length
batches (``pack_padded_sequence(..., enforce_sorted=False)``), ``batch_first``, ``bias=False``,
unbatched input and dropout between layers. Same weights give the same outputs, final states
and every gradient."""
from __future__ import annotations

import numpy as np
import pytest

from rlstm import GRU, LSTM

torch = pytest.importorskip("torch")
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence  # noqa: E402

TORCH_DTYPES = {np.dtype(np.float32): torch.float32, np.dtype(np.float64): torch.float64}
# Tolerances: the torch_tol fixture (tests/conftest.py).
pytestmark = pytest.mark.usefixtures("one_torch_thread")
KINDS = {"lstm": (LSTM, torch.nn.LSTM), "gru": (GRU, torch.nn.GRU)}


def _pair(kind, D, H, L, dtype, seed=0, **options):
    """A torch layer and an rlstm layer with the same weights."""
    ours_cls, torch_cls = KINDS[kind]
    torch.manual_seed(seed)
    theirs = torch_cls(D, H, L, **options).to(TORCH_DTYPES[np.dtype(dtype)])
    ours = ours_cls(D, H, L, dtype=dtype, **options)
    ours.load_state_dict(theirs.state_dict())
    return ours, theirs


def _run_torch(kind, theirs, x, state, wy, wstate, lengths=None, batch_first=False):
    """Outputs, final states and gradients of sum(wy * y) + sum(wstate * final state)."""
    tx = torch.tensor(x, requires_grad=True)
    ts = tuple(torch.tensor(s, requires_grad=True) for s in state)
    inp = tx if lengths is None else pack_padded_sequence(
        tx, torch.tensor(lengths), batch_first=batch_first, enforce_sorted=False)
    out, tn = theirs(inp, ts if kind == "lstm" else ts[0])
    if lengths is not None:
        out, _ = pad_packed_sequence(out, batch_first=batch_first, total_length=x.shape[
            1 if batch_first else 0])
    tn = tn if kind == "lstm" else (tn,)
    loss = (out * torch.tensor(wy)).sum() + sum((a * torch.tensor(w)).sum()
                                                for a, w in zip(tn, wstate))
    loss.backward()
    return {"y": out, "dx": tx.grad, **{f"s{i}": a for i, a in enumerate(tn)},
            **{f"ds{i}": a.grad for i, a in enumerate(ts)},
            **{"d" + n: p.grad for n, p in theirs.named_parameters()}}


def _run_ours(kind, ours, x, state, wy, wstate, lengths=None):
    st = state if kind == "lstm" else state[0]
    y, sn, cache = ours.forward(x, st, lengths=lengths)
    ours.zero_grad()
    dx, ds0 = ours.backward(wy, cache, wstate if kind == "lstm" else wstate[0])
    sn, ds0 = (sn, ds0) if kind == "lstm" else ((sn,), (ds0,))
    return {"y": y, "dx": dx, **{f"s{i}": a for i, a in enumerate(sn)},
            **{f"ds{i}": a for i, a in enumerate(ds0)},
            **{"d" + n: g for n, g in ours.grads.items()}}


def _compare(ours, theirs, dtype, tol):
    assert set(ours) == set(theirs)
    for name, want in theirs.items():
        want = want.detach().numpy()
        assert ours[name].shape == want.shape and ours[name].dtype == dtype, name
        assert np.abs(want).max() > 1e-3, name  # not a vacuous comparison
        np.testing.assert_allclose(ours[name], want, **tol, err_msg=name)


def _inputs(rng, dtype, T, B, D, H, L, nd, kind, batch_shape=None):
    x = rng.standard_normal(batch_shape or (T, B, D)).astype(dtype)
    state = tuple(rng.standard_normal((L * nd, B, H)).astype(dtype)
                  for _ in range(2 if kind == "lstm" else 1))
    wstate = tuple(rng.standard_normal(s.shape).astype(dtype) for s in state)
    return x, state, wstate


@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("L,bi", [(1, False), (1, True), (2, False), (2, True)])
def test_lengths_match_packed_sequences(kind, L, bi, dtype, rng, torch_tol):
    T, B, D, H = 7, 5, 3, 4
    nd = 2 if bi else 1
    lengths = np.array([7, 3, 1, 5, 6])   # unsorted: enforce_sorted=False
    ours, theirs = _pair(kind, D, H, L, dtype, bidirectional=bi)
    x, state, wstate = _inputs(rng, dtype, T, B, D, H, L, nd, kind)
    x[np.arange(T)[:, None] >= lengths] = 5.0       # padding torch never sees
    wy = rng.standard_normal((T, B, H * nd)).astype(dtype)
    _compare(_run_ours(kind, ours, x, state, wy, wstate, lengths),
             _run_torch(kind, theirs, x, state, wy, wstate, lengths), dtype, torch_tol(dtype))


@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("with_lengths", [False, True])
def test_batch_first_and_no_bias_match_torch(kind, with_lengths, dtype, rng, torch_tol):
    B, T, D, H, L = 4, 6, 3, 5, 2
    ours, theirs = _pair(kind, D, H, L, dtype, bidirectional=True, batch_first=True,
                         bias=False)
    assert not any("bias" in n for n in ours.params) and ours.bias is False
    assert list(ours.params) == [n for n, _ in theirs.named_parameters()]
    x, state, wstate = _inputs(rng, dtype, T, B, D, H, L, 2, kind, batch_shape=(B, T, D))
    wy = rng.standard_normal((B, T, 2 * H)).astype(dtype)
    lengths = np.array([6, 2, 5, 1]) if with_lengths else None
    _compare(_run_ours(kind, ours, x, state, wy, wstate, lengths),
             _run_torch(kind, theirs, x, state, wy, wstate, lengths, batch_first=True), dtype,
             torch_tol(dtype))


@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("bi", [False, True])
def test_unbatched_input_matches_torch(kind, bi, dtype, rng, torch_tol):
    T, D, H, L = 5, 3, 4, 2
    nd = 2 if bi else 1
    ours, theirs = _pair(kind, D, H, L, dtype, bidirectional=bi)
    x = rng.standard_normal((T, D)).astype(dtype)
    state = tuple(rng.standard_normal((L * nd, H)).astype(dtype)
                  for _ in range(2 if kind == "lstm" else 1))
    wstate = tuple(rng.standard_normal(s.shape).astype(dtype) for s in state)
    wy = rng.standard_normal((T, H * nd)).astype(dtype)
    got = _run_ours(kind, ours, x, state, wy, wstate)
    assert got["y"].shape == (T, H * nd) and got["s0"].shape == (L * nd, H)
    _compare(got, _run_torch(kind, theirs, x, state, wy, wstate), dtype, torch_tol(dtype))
    # a state of None, and inference
    y, s = ours(x)
    with torch.no_grad():
        ty, ts = theirs(torch.tensor(x))
    np.testing.assert_allclose(y, ty.numpy(), **torch_tol(dtype))
    s, ts = (s, ts) if kind == "lstm" else ((s,), (ts,))
    for a, b in zip(s, ts):
        np.testing.assert_allclose(a, b.numpy(), **torch_tol(dtype))


@pytest.mark.parametrize("kind", list(KINDS))
def test_dropout_between_layers_is_torch_with_the_same_masks(kind, rng, torch_tol):
    """torch's masks come from its own generator, so the check is structural: a 2-layer
    rlstm layer with dropout equals torch's layer 0, our mask (from the cache), torch's
    layer 1; outputs and every gradient."""
    T, B, D, H, p = 6, 3, 4, 5, 0.4
    dtype = np.float64
    ours, theirs = _pair(kind, D, H, 2, dtype, bidirectional=True, dropout=p)
    assert ours.dropout == p
    torch.manual_seed(1)
    t0 = KINDS[kind][1](D, H, 1, bidirectional=True).double()
    t1 = KINDS[kind][1](2 * H, H, 1, bidirectional=True).double()
    sd = theirs.state_dict()
    for t, k in ((t0, 0), (t1, 1)):   # torch's layer k as a 1-layer torch module
        t.load_state_dict({n.replace(f"_l{k}", "_l0"): v for n, v in sd.items() if f"_l{k}" in n})
    x = rng.standard_normal((T, B, D))
    wy = rng.standard_normal((T, B, 2 * H))
    y, _, cache = ours.forward(x)
    ours.zero_grad()
    dx, _ = ours.backward(wy, cache)
    (mask,) = cache.masks
    assert set(np.unique(mask)) == {0.0, 1 / (1 - p)}
    tx = torch.tensor(x, requires_grad=True)
    mid = t0(tx)[0] * torch.tensor(mask.reshape(T, B, 2 * H))
    ty = t1(mid)[0]
    (ty * torch.tensor(wy)).sum().backward()
    tol = torch_tol(dtype)
    np.testing.assert_allclose(y, ty.detach().numpy(), **tol)
    np.testing.assert_allclose(dx, tx.grad.numpy(), **tol)
    for t, k in ((t0, 0), (t1, 1)):
        for n, q in t.named_parameters():
            np.testing.assert_allclose(ours.grads[n.replace("_l0", f"_l{k}")], q.grad.numpy(),
                                       **tol, err_msg=n)
    # inference and eval() do what torch's eval() does: no dropout
    theirs.eval()
    with torch.no_grad():
        want = theirs(torch.tensor(x))[0].numpy()
    np.testing.assert_allclose(ours(x)[0], want, **tol)
    np.testing.assert_allclose(ours.eval().forward(x)[0], want, **tol)


def test_repr_matches_torch():
    for kind in KINDS:
        for options in ({}, dict(num_layers=2, batch_first=True, bidirectional=True),
                        dict(num_layers=3, bias=False, dropout=0.5)):
            L = options.pop("num_layers", 1)
            ours, theirs = KINDS[kind][0](32, 64, L, **options), KINDS[kind][1](32, 64, L,
                                                                               **options)
            assert repr(ours) == repr(theirs)
