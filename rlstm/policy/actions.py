"""The action side of a policy: one head per leaf of the action space, on one action layer.

:class:`ActionHeads` splits the columns of the policy's action layer ``z`` between its heads
(:mod:`rlstm.policy.heads`: Categorical, MultiCategorical, Bernoulli, DiagGaussian and the gSDE
Gaussian), checks action masks against them, and turns ``z`` into actions (sampled or the mode),
log-probabilities and entropies, and gradients back into ``z``. Everything here is public, so
code that computes ``z`` its own way (the population evaluator of evolution strategies, the
exporters) gets the same actions as :meth:`rlstm.policy.LSTMPolicy.act`.
"""
from __future__ import annotations

import numpy as np
from gymnasium import spaces

from .heads import make_heads, pack, unpack

__all__ = ["ActionHeads"]


class ActionHeads:
    """The heads of ``action_space`` and the column slices each reads.

    Attributes:
        heads: one head per leaf, in action-space order (a Dict in its key order).
        slices: per head, ``(z columns, mask columns, log_std columns)`` as slices.
        n_out, n_mask, n_log_std: total columns of ``z``, of the mask, of ``log_std``.
        sde: whether the Box heads use gSDE (their noise reads the core output ``latent``).
    """

    def __init__(self, action_space, sde_latent: int = 0):
        self.action_space = action_space
        self.heads = make_heads(action_space, sde_latent=sde_latent)
        self.slices = []
        o = m = s = 0
        for h in self.heads:
            self.slices.append((slice(o, o + h.n_out), slice(m, m + h.n_mask),
                                slice(s, s + h.n_log_std)))
            o, m, s = o + h.n_out, m + h.n_mask, s + h.n_log_std
        self.n_out, self.n_mask, self.n_log_std = o, m, s
        self.sde = any(h.sde for h in self.heads)
        self._single = len(self.heads) == 1 and not isinstance(action_space,
                                                               (spaces.Tuple, spaces.Dict))

    def check_mask(self, mask, lead: tuple, name: str = "action_mask"):
        """``mask`` as a boolean ``(prod(lead), n_mask)`` array (``None`` stays ``None``); an
        error names ``name`` for a wrong dtype or shape, or a row that forbids every action of
        a head."""
        if mask is None:
            return None
        if self.n_mask == 0:
            raise ValueError(f"{name} given, but the action space has no Discrete or "
                             f"MultiDiscrete part to mask")
        m = np.asarray(mask)
        if m.dtype.kind not in "biu":
            raise TypeError(f"{name} must be boolean (True = allowed), got dtype {m.dtype}")
        shape = tuple(lead) + (self.n_mask,)
        if m.shape != shape:
            raise ValueError(f"{name} must have shape {shape} (one column per discrete action, "
                             f"heads in action-space order), got {m.shape}")
        m = m.reshape(-1, self.n_mask).astype(bool)
        for h, (_, ms, _) in zip(self.heads, self.slices):
            if h.n_mask:
                parts = ([(0, h.n_mask)] if not hasattr(h, "offsets") else
                         [(int(a), int(b)) for a, b in zip(h.offsets[:-1], h.offsets[1:])])
                for a, b in parts:
                    if not m[:, ms.start + a:ms.start + b].any(axis=1).all():
                        raise ValueError(f"{name} forbids every action of a head in some row; "
                                         f"each row must allow at least one action per head")
        return m

    def _args(self, h, zs, ms, ls, z, mask, log_std):
        return (z[:, zs], None if (mask is None or not h.n_mask) else mask[:, ms],
                None if log_std is None else log_std[..., ls])

    def act(self, z, mask, log_std, rng, deterministic: bool, latent=None, sde_noise=None):
        """``(actions, log_probs)`` for action-layer outputs ``z`` ``(N, n_out)``: actions in
        the action space's structure (batched), sampled with ``rng`` or the mode of each head
        when ``deterministic``. ``latent`` is the core output (gSDE heads only) and
        ``sde_noise`` their exploration matrices (``None``: fresh)."""
        leaves, logp = [], None
        for h, (zs, ms, ls) in zip(self.heads, self.slices):
            args = self._args(h, zs, ms, ls, z, mask, log_std) + (rng, deterministic)
            if h.sde:
                a, lp = h.act(*args, latent=latent,
                              noise=None if sde_noise is None else sde_noise[..., ls])
            else:
                a, lp = h.act(*args)
            leaves.append(a)
            logp = lp if logp is None else logp + lp
        return (leaves[0] if self._single else pack(self.action_space, leaves)), logp

    def check_actions(self, actions, lead: tuple, name: str = "actions") -> list:
        """The leaves of a batched action structure, one per head, checked against it."""
        return [h.check_actions(a, lead, leaf_name) for h, (a, leaf_name)
                in zip(self.heads, unpack(self.action_space, actions, name))]

    def log_prob_entropy(self, z, actions: list, mask, log_std, latent=None):
        """Summed log-probabilities and entropies ``(N,)`` of checked action leaves, and the
        per-head caches :meth:`backward` needs."""
        N = z.shape[0]
        logp = np.zeros(N, dtype=z.dtype)
        ent = np.zeros(N, dtype=z.dtype)
        caches = []
        for h, a, (zs, ms, ls) in zip(self.heads, actions, self.slices):
            za, m, lstd = self._args(h, zs, ms, ls, z, mask, log_std)
            lp, e, c = (h.log_prob_entropy(za, a, m, lstd, latent=latent) if h.sde else
                        h.log_prob_entropy(za, a, m, lstd))
            logp += lp
            ent += e
            caches.append(c)
        return logp, ent, caches

    def backward(self, dlog_probs, dentropy, caches, dz, dlog_std=None, latent=None):
        """Write ``d/dz`` of ``sum(dlog_probs*log_probs + dentropy*entropy)`` into ``dz``, add
        ``d/dlog_std`` into ``dlog_std`` and return ``d/dlatent`` of the gSDE variance when
        ``latent`` is given (else None)."""
        dlatent = None
        for h, c, (zs, _, ls) in zip(self.heads, caches, self.slices):
            dz[:, zs], dls = h.backward(dlog_probs, dentropy, c)
            if dls is not None and dlog_std is not None:
                dlog_std[..., ls] += dls
            if h.sde and latent is not None:
                d = h.backward_latent(dlog_probs, dentropy, c, latent)
                dlatent = d if dlatent is None else dlatent + d
        return dlatent
