"""The policy-gradient loss terms, each with its explicit gradient.

With per-step weights ``w = mask / sum(mask)`` (a mean over the real steps of a batch; the
steps a ``next_step`` autoreset spends resetting, or a REINFORCE step whose episode has not
ended, have weight 0), for the policy outputs ``log_probs``, ``values``, ``entropy``:

- :func:`surrogate_loss`: PPO's clipped surrogate
  ``-sum(w * min(r A, clip(r, 1 - eps, 1 + eps) A))`` with ``r = exp(log_probs - old)``, or the
  plain policy gradient ``-sum(w * r A)`` (whose gradient is ``-w A``) when ``clip_range`` is
  None;
- :func:`value_loss`: ``sum(w * (V - R)^2)``, or with ``clip_range_vf`` PPO's clipped form
  ``sum(w * max((V - R)^2, (V_old + clip(V - V_old) - R)^2))``. This is the plain mean squared
  error, as in Stable-Baselines3, so ``vf_coef`` means what it means in SB3 and the RL Zoo
  (CleanRL's ``0.5 * mse`` halves it);
- the entropy bonus ``sum(w * H)``, whose gradient is ``w``.

A trainer combines them as ``loss = pg + vf_coef * vf - ent_coef * H`` and hands the three
gradients to ``policy.backward``. Everything is float64.
"""
from __future__ import annotations

import numpy as np

__all__ = ["step_weights", "normalize_advantages", "surrogate_loss", "value_loss",
           "policy_gradient_loss"]


def step_weights(mask) -> np.ndarray:
    """``mask / sum(mask)`` as float64: the weights of a mean over the masked-in steps."""
    mask = np.asarray(mask, dtype=np.float64)
    return mask / max(mask.sum(), 1.0)


def normalize_advantages(advantages, mask) -> np.ndarray:
    """Advantages standardised over the masked-in steps (unchanged with fewer than two)."""
    if mask.sum() <= 1:
        return advantages
    a = advantages[mask]
    return (advantages - a.mean()) / (a.std() + 1e-8)


def surrogate_loss(log_probs, old_log_probs, advantages, w, clip_range: float | None):
    """``(loss, dloss/dlog_probs, approx_kl, clip_fraction)`` (see the module docstring);
    ``approx_kl`` is the ``(r - 1) - log r`` estimator of KL(old || new)."""
    log_ratio = np.asarray(log_probs, dtype=np.float64) - old_log_probs
    ratio = np.exp(log_ratio)
    adv = np.asarray(advantages, dtype=np.float64)
    surr1 = ratio * adv
    if clip_range is None:
        loss = -np.sum(w * surr1)
        dlog_probs = -w * surr1
        clip_fraction = 0.0
    else:
        surr2 = np.clip(ratio, 1.0 - clip_range, 1.0 + clip_range) * adv
        loss = -np.sum(w * np.minimum(surr1, surr2))
        # d/dlp of min(s1, s2): s1' = A r where s1 is the min or the clip is inactive, else 0
        active = (surr1 <= surr2) | (np.abs(ratio - 1.0) <= clip_range)
        dlog_probs = -w * surr1 * active
        clip_fraction = float(np.sum(w * (np.abs(ratio - 1.0) > clip_range)))
    approx_kl = float(np.sum(w * ((ratio - 1.0) - log_ratio)))
    return loss, dlog_probs, approx_kl, clip_fraction


def value_loss(values, returns, old_values, w, clip_range_vf: float | None):
    """``(loss, dloss/dvalues)`` (see the module docstring)."""
    v = np.asarray(values, dtype=np.float64)
    err = v - returns
    if clip_range_vf is None:
        return np.sum(w * err ** 2), 2.0 * w * err
    err_c = old_values + np.clip(v - old_values, -clip_range_vf, clip_range_vf) - returns
    use_unclipped = err ** 2 >= err_c ** 2
    inside = np.abs(v - old_values) <= clip_range_vf
    return (np.sum(w * np.maximum(err ** 2, err_c ** 2)),
            2.0 * w * np.where(use_unclipped, err, err_c * inside))


def policy_gradient_loss(log_probs, entropy, values, old_log_probs, advantages, returns,
                         old_values, mask, clip_range: float | None, clip_range_vf: float | None,
                         ent_coef: float, vf_coef: float):
    """The whole loss ``pg + vf_coef * vf - ent_coef * H`` over the ``mask``-ed steps.

    Returns ``(loss, stats, dlog_probs, dentropy, dvalues)``: the gradients of ``loss`` with
    respect to the three policy outputs, ready for ``policy.backward``.
    """
    w = step_weights(mask)
    pg, dlog_probs, approx_kl, clip_fraction = surrogate_loss(log_probs, old_log_probs,
                                                              advantages, w, clip_range)
    vf, dvalues = value_loss(values, returns, old_values, w, clip_range_vf)
    ent = np.sum(w * np.asarray(entropy, dtype=np.float64))
    loss = pg + vf_coef * vf - ent_coef * ent
    stats = {"pg_loss": float(pg), "value_loss": float(vf), "entropy": float(ent),
             "loss": float(loss), "approx_kl": approx_kl, "clip_fraction": clip_fraction}
    return float(loss), stats, dlog_probs, -ent_coef * w, vf_coef * dvalues
