"""rlstm.ctc_loss against torch.nn.functional.ctc_loss (losses and gradients w.r.t. logits)."""
from __future__ import annotations

import numpy as np
import pytest

from rlstm import ctc_loss

torch = pytest.importorskip("torch")


@pytest.mark.parametrize("padded", [True, False])
@pytest.mark.parametrize("reduction", ["none", "mean"])
def test_matches_torch(padded, reduction, dtype, rng):
    T, B, C, S = 40, 6, 8, 10
    logits = (2 * rng.standard_normal((T, B, C))).astype(dtype)
    tg = rng.integers(1, C, (B, S))
    tl = rng.integers(0, S + 1, B)
    tl[0], tl[1] = 0, S
    il = rng.integers(S * 2, T + 1, B)
    tg[2, :4] = 3
    targets = tg if padded else np.concatenate([tg[b, :tl[b]] for b in range(B)])
    losses, d = ctc_loss(logits, targets, il, tl, reduction=reduction)

    xt = torch.tensor(logits.astype(np.float64), requires_grad=True)
    tloss = torch.nn.functional.ctc_loss(xt.log_softmax(2), torch.tensor(targets),
                                         torch.tensor(il), torch.tensor(tl), reduction=reduction)
    tloss.sum().backward()
    t = dict(rtol=1e-4, atol=1e-4) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-11)
    np.testing.assert_allclose(losses, tloss.detach().numpy(), **t)
    np.testing.assert_allclose(d, xt.grad.numpy(), **t)


def test_zero_infinity_matches_torch(rng):
    logits = rng.standard_normal((4, 3, 5))
    tg = np.array([[1, 2, 3, 4, 1], [1, 1, 2, 0, 0], [2, 0, 0, 0, 0]])
    tl, il = np.array([5, 3, 1]), np.array([4, 4, 4])
    losses, d = ctc_loss(logits, tg, il, tl, zero_infinity=True)
    xt = torch.tensor(logits, requires_grad=True)
    tloss = torch.nn.functional.ctc_loss(xt.log_softmax(2), torch.tensor(tg), torch.tensor(il),
                                         torch.tensor(tl), reduction="none", zero_infinity=True)
    tloss.sum().backward()
    assert losses[0] == 0
    np.testing.assert_allclose(losses, tloss.detach().numpy(), rtol=1e-10)
    np.testing.assert_allclose(d, xt.grad.numpy(), rtol=1e-10, atol=1e-12)
