"""Action distributions with explicit gradients, one head per leaf of the action space.

Every head reads its columns ``z`` ``(N, n_out)`` of the policy's action layer and offers, for
``N`` rows at once (no Python loop over rows):

- ``act(z, mask, log_std, rng, deterministic)`` -> ``(actions, logp)``, actions as the space
  holds them;
- ``log_prob_entropy(z, actions, mask, log_std)`` -> ``logp (N,)``, ``entropy (N,)``, cache;
- ``backward(dlogp, dent, cache)`` -> ``dz (N, n_out)`` and ``dlog_std`` (Gaussian) or None.

Heads: ``Discrete`` categorical; ``MultiDiscrete`` independent categoricals; ``MultiBinary``
Bernoulli; ``Box`` diagonal Gaussian with a state-independent log-std, raw (unclipped) samples,
or, with ``use_sde``, generalized state-dependent exploration (gSDE, Raffin et al. 2022): the
noise is ``latent @ E`` for an exploration matrix ``E ~ N(0, exp(log_std)**2)`` ``(H, d)`` that
is held fixed for several steps, so exploration is smooth in time; given the latent, the action
is Gaussian with variance ``latent**2 @ exp(2 log_std)`` per dimension. By default the latent's
gradient through the variance is not taken, as in SB3's default ``learn_features=False``;
``backward_latent`` gives it for ``sde_learn_features=True``.
Categorical heads accept a boolean mask ``(N, n)`` (True = allowed): masked actions get
probability 0, the entropy is over the allowed ones and masked logits get zero gradient.
"""
from __future__ import annotations

import bisect
import math

import numpy as np
from gymnasium import spaces

from .spaces import leaf_paths

LOG_2PI = float(np.log(2 * np.pi))

__all__ = ["make_heads", "Categorical", "MultiCategorical", "Bernoulli", "DiagGaussian",
           "StateDependentGaussian"]

SDE_EPS = 1e-6  # added to the gSDE variance, as SB3, so a zero latent gives no log(0)


def _categorical(z: np.ndarray, mask: np.ndarray | None):
    """Log-softmax over the allowed columns: ``(logp_all, p)``; masked entries are 0 in both."""
    if mask is not None:
        z = np.where(mask, z, -np.inf)
    m = z.max(axis=1, keepdims=True)
    e = np.exp(z - m)
    s = e.sum(axis=1, keepdims=True)
    p = e / s
    logp = z - m - np.log(s)
    if mask is not None:
        logp = np.where(mask, logp, 0.0)
    return logp, p


def _cat_sample(logp, p, mask, rng, deterministic):
    if deterministic:
        return np.where(mask, logp, -np.inf).argmax(axis=1) if mask is not None else \
            logp.argmax(axis=1)
    cdf = np.cumsum(p, axis=1)
    v = (1.0 - rng.random((p.shape[0], 1))) * cdf[:, -1:]  # in (0, total]: never a p=0 column
    return np.minimum((cdf < v).sum(axis=1), p.shape[1] - 1)


def _cat_logp_ent(logp, p, a):
    rows = np.arange(a.shape[0])
    lp = logp[rows, a]
    ent = -(p * logp).sum(axis=1)
    return lp, ent


def _cat_backward(logp, p, a, ent, dlogp, dent):
    # d logp(a)/dz = onehot(a) - p ;  dH/dz = -p * (logp + H)
    dz = -p * (dlogp[:, None] + dent[:, None] * (logp + ent[:, None]))
    dz[np.arange(a.shape[0]), a] += dlogp
    return dz


class Head:
    n_out = 0       # columns of the action layer
    n_mask = 0      # columns of the action mask it reads
    n_log_std = 0   # entries (columns, for gSDE) of the log-std parameter
    sde = False     # True: act/log_prob_entropy also take the latent (and exploration noise)
    space = None

    def check_actions(self, a, lead, name):
        arr = np.asarray(a)
        shape = tuple(lead) + tuple(self.space.shape)
        if arr.dtype.kind not in "biuf":
            raise TypeError(f"{name} must be numeric, got dtype {arr.dtype}")
        if arr.shape != shape:
            raise ValueError(f"{name} must have shape {shape}, got {arr.shape}")
        return arr.reshape(int(np.prod(lead)), -1)


def _check_allowed(mask, a, name):
    if mask is not None and a.size and not mask[np.arange(a.shape[0]), a].all():
        raise ValueError(f"{name} holds an action that the action mask forbids")


class Categorical(Head):
    def __init__(self, space: spaces.Discrete):
        self.space, self.n, self.start = space, int(space.n), int(space.start)
        self.n_out = self.n_mask = self.n
        self._offsets = {}  # B -> row offsets into the flattened logits

    def act(self, z, mask, log_std, rng, deterministic):
        """Sample and return ``(actions, logp)`` in one pass (the rollout path)."""
        if not deterministic and z.shape[0] == 1 and self.n <= 64:
            # one env: plain floats beat a dozen NumPy calls on a (1, n) array
            row = z[0].tolist()
            allowed = [True] * self.n if mask is None else mask[0].tolist()
            m = max(v for v, ok in zip(row, allowed) if ok)
            cdf, acc = [], 0.0
            for v, ok in zip(row, allowed):  # over the n actions (not rows)
                if ok:
                    acc += math.exp(v - m)
                cdf.append(acc)
            u = acc * (1.0 - rng.random())
            a = bisect.bisect_left(cdf, u)  # first index with cdf >= u > 0: an allowed one
            lp = row[a] - m - math.log(acc)
            return (np.array([a + self.start], dtype=np.int64),
                    np.array([lp], dtype=z.dtype))
        if mask is None and not deterministic:  # fewest NumPy calls: this is the hot path
            zm = z - z.max(axis=1, keepdims=True)
            cdf = np.exp(zm).cumsum(axis=1)
            total = cdf[:, -1]
            v = total * (1.0 - rng.random(z.shape[0]))  # in (0, total]: never past the end
            a = (cdf < v[:, None]).sum(axis=1)
            offsets = self._offsets.get(z.shape[0])
            if offsets is None:
                offsets = self._offsets[z.shape[0]] = np.arange(0, z.size, self.n)
            lp = zm.ravel()[a + offsets] - np.log(total)
            return a + self.start, lp
        logp, p = _categorical(z, mask)
        a = _cat_sample(logp, p, mask, rng, deterministic)
        return a + self.start, logp[np.arange(a.shape[0]), a]

    def check_actions(self, a, lead, name):
        arr = super().check_actions(a, lead, name)[:, 0]
        if arr.dtype.kind == "f" and not np.array_equal(arr, np.round(arr)):
            raise ValueError(f"{name} must hold integer actions for a Discrete space")
        arr = arr.astype(np.int64) - self.start
        if arr.size and (arr.min() < 0 or arr.max() >= self.n):
            raise ValueError(f"{name} holds actions outside Discrete({self.n}, "
                             f"start={self.start})")
        return arr

    def log_prob_entropy(self, z, a, mask, log_std):
        _check_allowed(mask, a, "actions")
        logp, p = _categorical(z, mask)
        lp, ent = _cat_logp_ent(logp, p, a)
        return lp, ent, (logp, p, a, ent)

    def backward(self, dlogp, dent, cache):
        return _cat_backward(*cache, dlogp, dent), None


class MultiCategorical(Head):
    def __init__(self, space: spaces.MultiDiscrete):
        self.space = space
        self.nvec = np.asarray(space.nvec, dtype=np.int64).reshape(-1)
        self.start = np.asarray(getattr(space, "start", 0), dtype=np.int64) * np.ones_like(
            np.asarray(space.nvec, dtype=np.int64))
        self.offsets = np.concatenate([[0], np.cumsum(self.nvec)])
        self.n_out = self.n_mask = int(self.nvec.sum())

    def _parts(self):
        return [(j, int(self.offsets[j]), int(self.offsets[j + 1])) for j in range(len(self.nvec))]

    def check_actions(self, a, lead, name):
        arr = super().check_actions(a, lead, name)
        if arr.dtype.kind == "f" and not np.array_equal(arr, np.round(arr)):
            raise ValueError(f"{name} must hold integer actions for a MultiDiscrete space")
        arr = arr.astype(np.int64) - self.start.reshape(1, -1)
        if arr.size and ((arr < 0).any() or (arr >= self.nvec).any()):
            raise ValueError(f"{name} holds actions outside MultiDiscrete({self.nvec.tolist()})")
        return arr

    def act(self, z, mask, log_std, rng, deterministic):
        out = np.empty((z.shape[0], len(self.nvec)), dtype=np.int64)
        lp = np.zeros(z.shape[0], dtype=z.dtype)
        rows = np.arange(z.shape[0])
        for j, a, b in self._parts():  # loop over action dimensions, not rows
            m = None if mask is None else mask[:, a:b]
            logp, p = _categorical(z[:, a:b], m)
            out[:, j] = _cat_sample(logp, p, m, rng, deterministic)
            lp += logp[rows, out[:, j]]
        out += self.start.reshape(1, -1)
        return out.reshape((z.shape[0],) + tuple(self.space.shape)), lp

    def log_prob_entropy(self, z, a, mask, log_std):
        lp = np.zeros(z.shape[0], dtype=z.dtype)
        ent = np.zeros(z.shape[0], dtype=z.dtype)
        caches = []
        for j, lo, hi in self._parts():
            m = None if mask is None else mask[:, lo:hi]
            _check_allowed(m, a[:, j], "actions")
            logp, p = _categorical(z[:, lo:hi], m)
            l_j, e_j = _cat_logp_ent(logp, p, a[:, j])
            lp += l_j
            ent += e_j
            caches.append((logp, p, a[:, j], e_j))
        return lp, ent, caches

    def backward(self, dlogp, dent, cache):
        dz = np.concatenate([_cat_backward(*c, dlogp, dent) for c in cache], axis=1)
        return dz, None


class Bernoulli(Head):
    def __init__(self, space: spaces.MultiBinary):
        self.space = space
        self.n_out = int(np.prod(space.shape))

    def check_actions(self, a, lead, name):
        arr = super().check_actions(a, lead, name)
        if arr.size and not np.isin(arr, (0, 1)).all():
            raise ValueError(f"{name} must hold only 0/1 for a MultiBinary space")
        return arr.astype(np.float64)

    def act(self, z, mask, log_std, rng, deterministic):
        if deterministic:
            bits = z > 0
        else:
            bits = rng.random(z.shape) * (1 + np.exp(-z)) < 1  # u < sigmoid(z)
        lp = (bits * z - np.logaddexp(0, z)).sum(axis=1).astype(z.dtype)
        return bits.astype(np.int8).reshape((z.shape[0],) + tuple(self.space.shape)), lp

    def log_prob_entropy(self, z, a, mask, log_std):
        # log p = a z - softplus(z) ; H = softplus(z) - z sigmoid(z)
        sp = np.logaddexp(0, z)
        s = np.exp(z - sp)
        lp = (a * z - sp).sum(axis=1).astype(z.dtype)
        ent = (sp - z * s).sum(axis=1).astype(z.dtype)
        return lp, ent, (z, s, a)

    def backward(self, dlogp, dent, cache):
        z, s, a = cache
        return dlogp[:, None] * (a - s) - dent[:, None] * (z * s * (1 - s)), None


class DiagGaussian(Head):
    def __init__(self, space: spaces.Box):
        self.space = space
        self.n_out = self.n_log_std = int(np.prod(space.shape))

    def check_actions(self, a, lead, name):
        arr = super().check_actions(a, lead, name)
        if arr.size and not np.isfinite(arr).all():
            raise ValueError(f"{name} contains NaN or inf")
        return arr

    def act(self, z, mask, log_std, rng, deterministic):
        eps = np.zeros_like(z) if deterministic else rng.standard_normal(z.shape).astype(z.dtype)
        a = z + np.exp(log_std) * eps
        lp = (-0.5 * eps * eps - log_std - 0.5 * LOG_2PI).sum(axis=1).astype(z.dtype)
        return a.reshape((z.shape[0],) + tuple(self.space.shape)), lp

    def log_prob_entropy(self, z, a, mask, log_std):
        inv_std = np.exp(-log_std)
        u = (a - z) * inv_std
        lp = (-0.5 * u * u - log_std - 0.5 * LOG_2PI).sum(axis=1).astype(z.dtype)
        ent = np.full(z.shape[0], (log_std + 0.5 + 0.5 * LOG_2PI).sum(), dtype=z.dtype)
        return lp, ent, (u, inv_std)

    def backward(self, dlogp, dent, cache):
        # d logp/d mu = u / std ; d logp/d log_std = u^2 - 1 ; dH/d log_std = 1
        u, inv_std = cache
        dz = dlogp[:, None] * u * inv_std
        dls = (dlogp[:, None] * (u * u - 1)).sum(axis=0) + dent.sum()
        return dz, dls


class StateDependentGaussian(DiagGaussian):
    """gSDE for a ``Box`` leaf: ``log_std`` is the ``(H, d)`` column block of the policy's
    ``(H, D)`` log-std matrix, ``latent`` the core output ``(N, H)``, ``noise`` the exploration
    matrices ``(N, H, d)`` drawn from the standard normal (scaled by ``exp(log_std)`` here, so
    they stay valid when ``log_std`` moves)."""

    sde = True

    @staticmethod
    def _variance(latent, log_std):
        std2 = np.exp(2.0 * log_std)
        y2 = latent * latent
        return y2 @ std2 + SDE_EPS, y2, std2

    def act(self, z, mask, log_std, rng, deterministic, latent=None, noise=None):
        if latent is None:  # deterministic use without the latent (population evaluators)
            if not deterministic:
                raise ValueError("a gSDE head needs the latent to sample")
            return z.reshape((z.shape[0],) + tuple(self.space.shape)), np.zeros(
                z.shape[0], z.dtype)
        var, _, _ = self._variance(latent, log_std)
        if deterministic:
            dev = np.zeros_like(z)
        else:
            if noise is None:
                noise = rng.standard_normal((z.shape[0],) + log_std.shape).astype(z.dtype)
            dev = np.einsum("nh,nhd->nd", latent, noise * np.exp(log_std))
        u = dev / np.sqrt(var)
        lp = (-0.5 * u * u - 0.5 * np.log(var) - 0.5 * LOG_2PI).sum(axis=1).astype(z.dtype)
        return (z + dev).reshape((z.shape[0],) + tuple(self.space.shape)), lp

    def log_prob_entropy(self, z, a, mask, log_std, latent=None):
        if latent is None:
            raise ValueError("a gSDE head needs the latent")
        var, y2, std2 = self._variance(latent, log_std)
        inv_sd = 1.0 / np.sqrt(var)
        u = (a - z) * inv_sd
        half_log_var = 0.5 * np.log(var)
        lp = (-0.5 * u * u - half_log_var - 0.5 * LOG_2PI).sum(axis=1).astype(z.dtype)
        ent = (half_log_var + 0.5 + 0.5 * LOG_2PI).sum(axis=1).astype(z.dtype)
        return lp, ent, (u, inv_sd, var, y2, std2)

    def backward(self, dlogp, dent, cache):
        # d logp/d var_j = (u_j^2 - 1) / (2 var_j), dH/d var_j = 1 / (2 var_j),
        # d var_j / d log_std_ij = 2 y_i^2 std_ij^2  ->  d log_std = std^2 * (y^2)^T W
        u, inv_sd, var, y2, std2 = cache
        dz = dlogp[:, None] * u * inv_sd
        w = (dlogp[:, None] * (u * u - 1) + dent[:, None]) / var
        return dz, std2 * (y2.T @ w)

    @staticmethod
    def backward_latent(dlogp, dent, cache, latent):
        """The gradient through the variance w.r.t. the latent ``(N, H)``:
        ``d var_j / d y_i = 2 y_i std_ij^2``."""
        u, _, var, _, std2 = cache
        w = (dlogp[:, None] * (u * u - 1) + dent[:, None]) / var
        return latent * (w @ std2.T)


def make_heads(space, sde_latent: int = 0) -> list[Head]:
    """One head per leaf of ``space``; ``sde_latent > 0`` makes Box heads gSDE heads."""
    heads = []
    for _, s in leaf_paths(space, skip_mask=False):
        if isinstance(s, spaces.Discrete):
            heads.append(Categorical(s))
        elif isinstance(s, spaces.MultiDiscrete):
            heads.append(MultiCategorical(s))
        elif isinstance(s, spaces.MultiBinary):
            heads.append(Bernoulli(s))
        elif isinstance(s, spaces.Box):
            if s.dtype.kind != "f":
                raise TypeError(f"a Box action space must have a float dtype, got {s.dtype}")
            heads.append(StateDependentGaussian(s) if sde_latent else DiagGaussian(s))
        else:
            raise TypeError(f"unsupported action space {type(s).__name__}")
    return heads


def pack(space, leaves: list):
    """Rebuild the action structure (tuple / dict, nested) from the leaves in head order."""
    it = iter(leaves)

    def build(s):
        if isinstance(s, spaces.Tuple):
            return tuple(build(c) for c in s.spaces)
        if isinstance(s, spaces.Dict):
            return {k: build(c) for k, c in s.spaces.items()}
        return next(it)
    return build(space)


def unpack(space, actions, name="actions"):
    """The leaves of an action structure, in head order (checks tuple/dict structure)."""
    if isinstance(space, spaces.Tuple):
        if not isinstance(actions, (tuple, list)) or len(actions) != len(space.spaces):
            raise TypeError(f"{name} must be a tuple of {len(space.spaces)} parts for a Tuple "
                            f"action space, got {type(actions).__name__}")
        return [x for k, (s, a) in enumerate(zip(space.spaces, actions))
                for x in unpack(s, a, f"{name}[{k}]")]
    if isinstance(space, spaces.Dict):
        if not isinstance(actions, dict):
            raise TypeError(f"{name} must be a dict with keys {list(space.spaces)} for a Dict "
                            f"action space, got {type(actions).__name__}")
        missing = [k for k in space.spaces if k not in actions]
        if missing:
            raise ValueError(f"{name} is missing keys {missing}")
        return [x for k, s in space.spaces.items() for x in unpack(s, actions[k],
                                                                  f"{name}[{k!r}]")]
    return [(actions, name)]
