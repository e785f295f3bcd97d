"""rlstm.GRU against torch.nn.GRU: outputs, final state, every gradient, state dicts."""
from __future__ import annotations

import numpy as np
import pytest

from rlstm import GRU

torch = pytest.importorskip("torch")


@pytest.mark.parametrize("L,bi", [(1, False), (2, True), (3, False)])
def test_matches_torch_gru(L, bi, dtype, rng):
    T, B, D, H = 6, 4, 5, 7
    tg = torch.nn.GRU(D, H, L, bidirectional=bi).double()
    gru = GRU(D, H, L, bidirectional=bi, dtype=dtype, seed=0)
    gru.load_state_dict({k: v.detach().numpy() for k, v in tg.state_dict().items()})
    nd = 2 if bi else 1
    x = rng.standard_normal((T, B, D))
    h0 = rng.standard_normal((L * nd, B, H))
    wy = rng.standard_normal((T, B, H * nd))
    wh = rng.standard_normal(h0.shape)
    xt = torch.tensor(x, requires_grad=True)
    ht = torch.tensor(h0, requires_grad=True)
    ty, th = tg(xt, ht)
    ((ty * torch.tensor(wy)).sum() + (th * torch.tensor(wh)).sum()).backward()

    y, hn, cache = gru.forward(x, h0)
    gru.zero_grad()
    dx, dh0 = gru.backward(wy, cache, wh)
    t = dict(rtol=1e-4, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(y, ty.detach().numpy(), **t)
    np.testing.assert_allclose(hn, th.detach().numpy(), **t)
    np.testing.assert_allclose(dx, xt.grad.numpy(), **t)
    np.testing.assert_allclose(dh0, ht.grad.numpy(), **t)
    for name, p in tg.named_parameters():
        np.testing.assert_allclose(gru.grads[name], p.grad.numpy(), **t, err_msg=name)
    back = torch.nn.GRU(D, H, L, bidirectional=bi).double()
    back.load_state_dict({k: torch.tensor(v, dtype=torch.float64)
                          for k, v in gru.state_dict().items()})
    np.testing.assert_allclose(back(xt, ht)[0].detach().numpy(), y, **t)
