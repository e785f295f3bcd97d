"""Parity with torch.nn.LSTM: same weights give the same outputs, final state and gradients."""
from __future__ import annotations

import numpy as np
import pytest

from rlstm import LSTM

torch = pytest.importorskip("torch")

TORCH_DTYPES = {np.dtype(np.float32): torch.float32, np.dtype(np.float64): torch.float64}
# Tolerances: the torch_tol fixture (tests/conftest.py).
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _torch_lstm(D, H, L, bi, dtype, seed):
    torch.manual_seed(seed)
    return torch.nn.LSTM(D, H, L, bidirectional=bi).to(TORCH_DTYPES[np.dtype(dtype)])


@pytest.mark.parametrize("T,B,D,H,L,bi", [(1, 1, 1, 1, 1, False), (7, 3, 4, 6, 1, False),
                                          (5, 2, 3, 5, 2, True), (6, 4, 5, 8, 3, True),
                                          (12, 1, 2, 16, 2, False)])
def test_outputs_state_and_all_gradients_match_torch(T, B, D, H, L, bi, dtype, rng, torch_tol):
    tol = torch_tol(dtype)
    tl = _torch_lstm(D, H, L, bi, dtype, seed=T * 100 + H)
    lstm = LSTM(D, H, L, bidirectional=bi, dtype=dtype, seed=0)
    lstm.load_state_dict({k: v.detach().numpy() for k, v in tl.state_dict().items()})

    nd = 2 if bi else 1
    x = rng.standard_normal((T, B, D)).astype(dtype)
    h0 = rng.standard_normal((L * nd, B, H)).astype(dtype)
    c0 = rng.standard_normal((L * nd, B, H)).astype(dtype)
    wy = rng.standard_normal((T, B, H * nd)).astype(dtype)
    wh = rng.standard_normal(h0.shape).astype(dtype)
    wc = rng.standard_normal(c0.shape).astype(dtype)

    tx, th0, tc0 = (torch.tensor(a, requires_grad=True) for a in (x, h0, c0))
    ty, (thn, tcn) = tl(tx, (th0, tc0))
    loss = ((ty * torch.tensor(wy)).sum() + (thn * torch.tensor(wh)).sum()
            + (tcn * torch.tensor(wc)).sum())
    loss.backward()

    y, (hn, cn), cache = lstm.forward(x, (h0, c0))
    lstm.zero_grad()
    dx, (dh0, dc0) = lstm.backward(wy, cache, (wh, wc))

    pairs = {"y": (y, ty), "h_n": (hn, thn), "c_n": (cn, tcn), "dx": (dx, tx.grad),
             "dh0": (dh0, th0.grad), "dc0": (dc0, tc0.grad)}
    pairs.update({"d" + name: (lstm.grads[name], p.grad) for name, p in tl.named_parameters()})
    assert len(pairs) == 6 + len(lstm.params)  # every parameter of torch's has a gradient here
    for name, (ours, theirs) in pairs.items():
        theirs = theirs.detach().numpy()
        assert ours.dtype == dtype and ours.shape == theirs.shape, name
        assert np.abs(theirs).max() > 1e-3, name  # not a vacuous comparison
        np.testing.assert_allclose(ours, theirs, **tol, err_msg=name)


def test_torch_tensors_load_directly(rng):
    """``load_state_dict`` also takes torch tensors as they are (no .numpy() by the user)."""
    tl = _torch_lstm(3, 4, 2, True, np.float64, seed=1)
    lstm = LSTM(3, 4, 2, bidirectional=True, dtype=np.float64)
    lstm.load_state_dict(tl.state_dict())
    for name, p in tl.state_dict().items():
        np.testing.assert_array_equal(lstm.params[name], p.numpy())


def test_state_dict_loads_into_torch(dtype, rng, torch_tol):
    lstm = LSTM(4, 5, 2, bidirectional=True, dtype=dtype, seed=3)
    tl = _torch_lstm(4, 5, 2, True, dtype, seed=0)
    result = tl.load_state_dict({k: torch.from_numpy(v) for k, v in lstm.state_dict().items()})
    assert not result.missing_keys and not result.unexpected_keys
    x = rng.standard_normal((6, 3, 4)).astype(dtype)
    with torch.no_grad():
        ty, (th, tc) = tl(torch.from_numpy(x))
    y, (h, c) = lstm(x)
    tol = torch_tol(dtype)
    np.testing.assert_allclose(y, ty.numpy(), **tol)
    np.testing.assert_allclose(h, th.numpy(), **tol)
    np.testing.assert_allclose(c, tc.numpy(), **tol)


def test_step_matches_torch_lstm_cell(dtype, rng, torch_tol):
    """A one-layer step() equals nn.LSTMCell with the same weights, over several steps."""
    lstm = LSTM(3, 7, dtype=dtype, seed=4)
    cell = torch.nn.LSTMCell(3, 7).to(TORCH_DTYPES[np.dtype(dtype)])
    with torch.no_grad():
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(cell, name).copy_(torch.from_numpy(lstm.params[name + "_l0"]))
    state = lstm.initial_state(2)
    th, tc = (torch.from_numpy(s[0].copy()) for s in state)
    for t in range(5):
        x = rng.standard_normal((2, 3)).astype(dtype)
        h, state = lstm.step(x, state)
        with torch.no_grad():
            th, tc = cell(torch.from_numpy(x), (th, tc))
        np.testing.assert_allclose(h, th.numpy(), **torch_tol(dtype))
        np.testing.assert_allclose(state[1][0], tc.numpy(), **torch_tol(dtype))
