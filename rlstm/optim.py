"""Optimizers and gradient clipping over flat parameter vectors.

They work on ``flat_params`` / ``flat_grads`` of any :class:`rlstm.Module` (or on any pair of
equally shaped float arrays) and update the parameters in place.
"""
from __future__ import annotations

from typing import Annotated

import numpy as np

from . import _kernels
from .validation import Range, check_value

__all__ = ["SGD", "Adam", "clip_grad_norm"]

_Positive = Annotated[float, Range(0, low_open=True)]
_NonNegative = Annotated[float, Range(0)]
_Fraction = Annotated[float, Range(0, 1, high_open=True)]


def clip_grad_norm(grads: np.ndarray, max_norm: float) -> float:
    """Scale ``grads`` in place so that its L2 norm is at most ``max_norm``.

    Returns the norm before clipping (``inf``/``nan`` if the gradient is not finite, in which
    case nothing is scaled so the caller can see and handle it).
    """
    grads = _check_vector(grads, "grads")
    max_norm = check_value("max_norm", max_norm, _Positive)
    norm = float(np.sqrt(np.dot(grads, grads)))
    if not np.isfinite(norm) and np.isfinite(grads).all():  # finite, but the sum overflowed
        scale = float(np.max(np.abs(grads)))
        norm = scale * float(np.linalg.norm(grads / scale))
    if np.isfinite(norm) and norm > max_norm:
        grads *= max_norm / (norm + 1e-6)
    return norm


def _check_vector(a, name: str) -> np.ndarray:
    if not isinstance(a, np.ndarray) or a.dtype not in (np.float32, np.float64):
        raise TypeError(f"{name} must be a float32/float64 NumPy array (e.g. module.flat_grads)")
    if a.ndim != 1 or not a.flags.c_contiguous:
        raise ValueError(f"{name} must be a 1-D contiguous array (e.g. module.flat_grads), "
                         f"got shape {a.shape}")
    return a


def _params_and_grads(params, grads):
    if grads is None:  # a Module
        if not hasattr(params, "flat_params") or not hasattr(params, "flat_grads"):
            raise TypeError("pass a module with flat_params/flat_grads, or two arrays")
        params, grads = params.flat_params, params.flat_grads
    params = _check_vector(params, "params")
    grads = _check_vector(grads, "grads")
    if params.shape != grads.shape or params.dtype != grads.dtype:
        raise ValueError(f"params and grads must match, got {params.shape}/{params.dtype} and "
                         f"{grads.shape}/{grads.dtype}")
    return params, grads


class Optimizer:
    """Base: ``opt = Adam(module)`` or ``Adam(params, grads)``; ``opt.step()`` updates in place."""

    def __init__(self, params, grads=None, lr: float = 1e-3):
        self.params, self.grads = _params_and_grads(params, grads)
        self.lr = check_value(f"{type(self).__name__}.lr", lr, _Positive)
        self.t = 0

    def zero_grad(self) -> None:
        self.grads[...] = 0

    def step(self) -> None:
        if not np.isfinite(self.grads).all():
            raise FloatingPointError("gradient contains NaN or inf; parameters left unchanged")
        self.t += 1
        self._update()

    def _update(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def state_dict(self) -> dict[str, np.ndarray]:
        return {"t": np.asarray(self.t), "lr": np.asarray(self.lr)}

    def load_state_dict(self, d) -> None:
        """Restore :meth:`state_dict` output; every entry is checked before anything changes."""
        expected = self.state_dict()
        missing = [k for k in expected if k not in d]
        if missing:
            raise ValueError(f"optimizer state is missing {missing}")
        staged = {}
        for k, ref in expected.items():
            a = np.asarray(d[k])
            if a.shape != ref.shape or a.dtype.kind not in "fiu" or not np.isfinite(a).all():
                raise ValueError(f"optimizer state {k!r} must be finite numbers of shape "
                                 f"{ref.shape}, got {a.dtype} {a.shape}")
            staged[k] = a
        if staged["t"] < 0 or staged["t"] != np.floor(staged["t"]) or not staged["lr"] > 0:
            raise ValueError(f"optimizer state has an impossible step count {staged['t']} or "
                             f"learning rate {staged['lr']}")
        self._check_state(staged)
        self._load(staged)

    def _check_state(self, d) -> None:
        """Refuse states no run can reach (subclasses add theirs)."""

    def _load(self, d) -> None:
        self.t = int(d["t"])
        self.lr = float(d["lr"])


class SGD(Optimizer):
    """SGD with optional (Nesterov) momentum and decoupled weight decay."""

    def __init__(self, params, grads=None, lr: float = 1e-2, momentum: float = 0.0,
                 nesterov: bool = False, weight_decay: float = 0.0):
        super().__init__(params, grads, lr)
        self.momentum = check_value("SGD.momentum", momentum, _Fraction)
        self.nesterov = check_value("SGD.nesterov", nesterov, bool)
        self.weight_decay = check_value("SGD.weight_decay", weight_decay, _NonNegative)
        self.velocity = np.zeros_like(self.params)

    def _update(self) -> None:
        g = self.grads
        if self.weight_decay:
            self.params *= 1 - self.lr * self.weight_decay
        if self.momentum:
            self.velocity *= self.momentum
            self.velocity += g
            g = g + self.momentum * self.velocity if self.nesterov else self.velocity
        self.params -= self.lr * g

    def state_dict(self):
        return {**super().state_dict(), "velocity": self.velocity.copy()}

    def _load(self, d) -> None:
        super()._load(d)
        self.velocity[...] = d["velocity"]


class Adam(Optimizer):
    """Adam (Kingma & Ba), with decoupled weight decay (AdamW) when ``weight_decay > 0``."""

    def __init__(self, params, grads=None, lr: float = 1e-3, betas=(0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0):
        super().__init__(params, grads, lr)
        betas = check_value("Adam.betas", betas, tuple[_Fraction, ...])
        if len(betas) != 2:
            raise ValueError(f"Adam.betas must be two numbers in [0, 1), got {betas!r}")
        self.beta1, self.beta2 = betas
        self.eps = check_value("Adam.eps", eps, _Positive)
        self.weight_decay = check_value("Adam.weight_decay", weight_decay, _NonNegative)
        self.m = np.zeros_like(self.params)
        self.v = np.zeros_like(self.params)

    def _update(self) -> None:
        # p -= lr * m_hat / (sqrt(v_hat) + eps), with eps added to sqrt(v_hat) as torch does;
        # one fused pass in the kernel (tests/test_optim.py checks it against Kingma & Ba's
        # Algorithm 1 in NumPy and against torch.optim.Adam)
        bias1 = 1 - self.beta1 ** self.t
        bias2 = 1 - self.beta2 ** self.t
        _kernels.adam_update(self.params, self.grads, self.m, self.v, self.lr / bias1,
                             self.beta1, self.beta2, self.eps, 1 / np.sqrt(bias2),
                             1 - self.lr * self.weight_decay)

    def state_dict(self):
        return {**super().state_dict(), "m": self.m.copy(), "v": self.v.copy()}

    def _check_state(self, d) -> None:
        if (d["v"] < 0).any():
            raise ValueError("optimizer state 'v' (Adam's second moment) has negative entries")

    def _load(self, d) -> None:
        super()._load(d)
        self.m[...] = d["m"]
        self.v[...] = d["v"]
