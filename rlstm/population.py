"""``PopulationPolicy``: P members of one ``LSTMPolicy`` architecture stepped in lockstep.

Evolution strategies evaluate a whole population of policies that share an architecture and
differ only in their weights. Stepping them one by one costs P Python calls per time step;
here one kernel call per layer advances every member, each with its own weights, read straight
from a ``(P, num_params)`` matrix whose rows use the SAME layout as ``LSTMPolicy.flat_params``
(row p is what ``template.flat_params`` would hold for member p). Nothing is copied per member.

Each member drives ``batch_per_member`` envs (several episodes at once); rows of the batch are
member-major: member p owns rows ``[p * B, (p + 1) * B)``.

Only deterministic actions are produced (the mode of every head: argmax for categorical heads,
the mean for Gaussian heads, ``z > 0`` for Bernoulli), which is what neuroevolution evaluates.
"""
from __future__ import annotations

import numpy as np
from gymnasium import spaces

from . import _kernels
from ._validation import as_float_array, check_int

__all__ = ["PopulationPolicy", "param_offset"]

_ACT = {"tanh": 1, "relu": 2}


def param_offset(module, array: np.ndarray) -> int:
    """Index in ``module.flat_params`` where the view ``array`` starts."""
    base = module.flat_params
    off = array.__array_interface__["data"][0] - base.__array_interface__["data"][0]
    idx, rem = divmod(off, base.itemsize)
    if rem or not 0 <= idx <= base.size - array.size:
        raise ValueError("array is not a view into module.flat_params")
    return int(idx)


class PopulationPolicy:
    """Deterministic actions of P policies at once.

    Args:
        template: an ``rlstm.policy.LSTMPolicy`` giving the architecture, the observation
            encoding and the action heads. Its own weights are not used.
        params: ``(P, template.num_params)`` member weights in the template's flat layout. It is
            converted to the template's dtype (C-contiguous) once, here.
        batch_per_member: envs per member (``B``), so every step takes ``P * B`` observations.
    """

    def __init__(self, template, params, batch_per_member: int = 1):
        for attr in ("flat_params", "core", "action_net", "heads", "_slices", "_encode"):
            if not hasattr(template, attr):
                raise TypeError(f"template must be an rlstm.policy.LSTMPolicy, got "
                                f"{type(template).__name__} (no {attr!r})")
        from .lstm import LSTM
        core = template.core
        if not isinstance(core, LSTM) or core.bidirectional:
            raise ValueError("PopulationPolicy needs a unidirectional rlstm.LSTM core "
                             f"(core='lstm'), got {type(core).__name__}")
        if getattr(template, "_mask_from_obs", False):
            raise ValueError("PopulationPolicy does not handle action masks in observations")
        self.template = template
        self.dtype = template.flat_params.dtype
        n = template.flat_params.size
        arr = as_float_array(params, self.dtype, "params", ndim=2)
        if arr.shape[1] != n or arr.shape[0] < 1:
            raise ValueError(f"params must have shape (P, {n}) (one flat parameter vector of "
                             f"the template per row, P >= 1), got {arr.shape}")
        self.params = arr
        self.P = arr.shape[0]
        self.B = check_int("batch_per_member", batch_per_member, 1)
        self.rows = self.P * self.B
        self.H = core.hidden_size
        self.L = core.num_layers

        # offsets of every weight in a member's row (views of the template give them)
        def off(a):
            return param_offset(template, a)

        self._encoder = []
        if template.encoder is not None:
            act = _ACT[template.encoder.activation]
            for k, layer in enumerate(template.encoder.layers):
                self._encoder.append((off(template.params[f"encoder.{k}.weight"]),
                                      off(template.params[f"encoder.{k}.bias"]),
                                      layer.out_features, act))
        self._identity = core.cell_activation == "identity"
        self._layers = []
        p = template.params  # the documented names: core.<LSTM names>, action.weight, ...
        for k in range(self.L):
            peep = off(p[f"core.peephole_l{k}"]) if core.variant == "peephole" else -1
            self._layers.append((off(p[f"core.weight_ih_l{k}"]), off(p[f"core.weight_hh_l{k}"]),
                                 off(p[f"core.bias_ih_l{k}"]), off(p[f"core.bias_hh_l{k}"]),
                                 peep))
        self._action = (off(p["action.weight"]), off(p["action.bias"]), template.n_action)
        # scratch buffers, allocated once
        R, H = self.rows, self.H
        self._gates = np.empty((R, 4 * H), dtype=self.dtype)
        self._z = np.empty((R, template.n_action), dtype=self.dtype)
        self._enc = [np.empty((R, o), dtype=self.dtype) for _, _, o, _ in self._encoder]

    def initial_state(self):
        """Zero ``(h, c)``, each ``(num_layers, P * B, hidden_size)``."""
        shape = (self.L, self.rows, self.H)
        return np.zeros(shape, dtype=self.dtype), np.zeros(shape, dtype=self.dtype)

    def _check_state(self, state):
        shape = (self.L, self.rows, self.H)
        if state is None:
            return self.initial_state()
        if not isinstance(state, (tuple, list)) or len(state) != 2:
            raise TypeError(f"state must be a tuple (h, c) of arrays of shape {shape}, or None")
        h = as_float_array(state[0], self.dtype, "state[0] (h)")
        c = as_float_array(state[1], self.dtype, "state[1] (c)")
        if h.shape != shape or c.shape != shape:
            raise ValueError(f"state arrays must have shape {shape}, got {h.shape}, {c.shape}")
        return h, c

    def features(self, obs, state=None):
        """Core output ``(P * B, H)`` and the next state (the readout's input, for Evolino)."""
        x = self.template._encode(obs, (self.rows,), "obs")
        h, c = self._check_state(state)
        w = self.params
        for (ow, ob, _, act), buf in zip(self._encoder, self._enc):
            _kernels.population_linear(w, ow, ob, x, buf, act)
            x = buf
        h_new = np.empty_like(h)
        c_new = np.empty_like(c)
        for k, (o_ih, o_hh, o_bih, o_bhh, o_peep) in enumerate(self._layers):
            _kernels.population_lstm_step(w, o_ih, o_hh, o_bih, o_bhh, o_peep, self._identity,
                                          x, h[k], c[k], self._gates, h_new[k], c_new[k])
            x = h_new[k]
        return x, (h_new, c_new)

    def act(self, obs, state=None, episode_start=None):
        """Deterministic actions for ``P * B`` observations (member-major) and the next state.

        Equals ``template.act(obs_p, state_p, episode_start, deterministic=True)`` with
        member p's weights loaded, for every member p.
        """
        if episode_start is not None and state is not None:
            es = np.asarray(episode_start, dtype=bool).reshape(self.rows)
            if es.any():
                h, c = self._check_state(state)
                keep = (~es).astype(self.dtype)[None, :, None]
                state = (h * keep, c * keep)
        y, state = self.features(obs, state)
        o_w, o_b, _ = self._action
        _kernels.population_linear(self.params, o_w, o_b, y, self._z, 0)
        t = self.template
        leaves = []
        log_std = t._log_std
        for head, (zs, _, ls) in zip(t.heads, t._slices):
            a, _ = head.act(self._z[:, zs], None, None if log_std is None else log_std[..., ls],
                            None, True)
            leaves.append(a)
        if len(leaves) == 1 and not isinstance(t.action_space, (spaces.Tuple, spaces.Dict)):
            return leaves[0], state
        from .policy.heads import pack
        return pack(t.action_space, leaves), state
