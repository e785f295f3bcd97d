"""``PopulationPolicy``: P members of one ``LSTMPolicy`` architecture stepped in lockstep.

Evolution strategies evaluate a whole population of policies that share an architecture and
differ only in their weights. Stepping them one by one costs P Python calls per time step;
here one kernel call per layer advances every member, each with its own weights, read straight
from a ``(P, num_params)`` matrix whose rows use the SAME layout as ``LSTMPolicy.flat_params``
(row p is what ``template.flat_params`` would hold for member p). Nothing is copied per member.

The template describes itself through public names only: ``param_layout`` (where each weight
lives in a row), ``inputs`` (how observations are encoded, and which columns are images) and
``action_heads`` (how the action layer's columns become actions), so the members act exactly as
the template would with their weights. Image parts (``image_encoder="conv"``) run each
member's conv net on that member's rows (one call per member and image part per step: slower
than the rest, which is one call per layer for the whole population).

Each member drives ``batch_per_member`` envs (several episodes at once); rows of the batch are
member-major: member p owns rows ``[p * B, (p + 1) * B)``.

Only deterministic actions are produced (the mode of every head: argmax for categorical heads,
the mean for Gaussian heads, ``z > 0`` for Bernoulli), which is what neuroevolution evaluates.
"""
from __future__ import annotations

import numpy as np

from . import _kernels
from .layers import ConvEncoder
from .lstm import LSTM
from .validation import as_float_array, check_int

__all__ = ["PopulationPolicy"]

_ACT = {"tanh": 1, "relu": 2}


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
        for attr in ("param_layout", "core", "inputs", "action_heads", "encoder"):
            if not hasattr(template, attr):
                raise TypeError(f"template must be an rlstm.policy.LSTMPolicy, got "
                                f"{type(template).__name__} (no {attr!r})")
        core = template.core
        if type(core) is not LSTM or core.bidirectional or core.variant == "peephole_cell" \
                or not core.bias:
            raise ValueError("PopulationPolicy needs a unidirectional rlstm.LSTM core of the "
                             "'vanilla' or 'peephole' variant (core='lstm') with biases, got "
                             f"{type(core).__name__}"
                             f"{'' if type(core) is not LSTM else ' ' + repr(core.variant)}"
                             f"{' without biases' if not getattr(core, 'bias', True) else ''}")
        self.template = template
        self.dtype = template.flat_params.dtype
        n = template.num_params
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
        layout = template.param_layout

        def off(name: str) -> int:
            return layout[name][0]

        inputs = template.inputs
        # one conv net per image part, loaded with a member's weights before its rows run
        self._images = []
        for j, net in enumerate(inputs.image_nets):
            a, _ = layout[f"image{j}.{next(iter(net.params))}"]
            self._images.append((ConvEncoder(net.image_shape, [c.out_channels for c in
                                                                net.layers],
                                             channels_first=net.channels_first,
                                             dtype=self.dtype), a, a + net.num_params))
        def mlp(module, prefix: str) -> list:
            """``(weight offset, bias offset, out, activation)`` of each layer of an MLP."""
            if module is None:
                return []
            return [(off(f"{prefix}.{k}.weight"), off(f"{prefix}.{k}.bias"), layer.out_features,
                     _ACT[module.activation]) for k, layer in enumerate(module.layers)]

        self._encoder = mlp(template.encoder, "encoder")
        width = self._encoder[-1][2] if self._encoder else inputs.feature_dim
        if layout["core.weight_ih_l0"][1] != (4 * self.H, width):
            raise ValueError(f"the template's core reads {layout['core.weight_ih_l0'][1][1]} "
                             f"features, its inputs give {width}: not an LSTMPolicy layout")
        self._identity = core.cell_activation == "identity"
        self._layers = []
        for k in range(self.L):
            peep = off(f"core.peephole_l{k}") if core.variant == "peephole" else -1
            self._layers.append((off(f"core.weight_ih_l{k}"), off(f"core.weight_hh_l{k}"),
                                 off(f"core.bias_ih_l{k}"), off(f"core.bias_hh_l{k}"), peep))
        # the actor's head MLP (head_hidden) between the core and the action layer
        self._head = mlp(getattr(template, "actor_head", None), "actor_head")
        self._action = (off("action.weight"), off("action.bias"))
        # scratch buffers, allocated once
        R, H = self.rows, self.H
        self._gates = np.empty((R, 4 * H), dtype=self.dtype)
        self._z = np.empty((R, template.action_heads.n_out), dtype=self.dtype)
        self._enc, self._hid = ([np.empty((R, o), dtype=self.dtype) for _, _, o, _ in layers]
                                for layers in (self._encoder, self._head))

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

    def _image_features(self, x: np.ndarray) -> np.ndarray:
        """The template's :meth:`PolicyInputs.features`, with each member's conv weights on
        that member's rows."""
        if not self._images:
            return x
        nets = [net for net, _, _ in self._images]
        out = None
        for p in range(self.P):
            for net, a, b in self._images:
                net.flat_params[...] = self.params[p, a:b]
            rows = slice(p * self.B, (p + 1) * self.B)
            f, _ = self.template.inputs.features(x[rows], nets)
            if out is None:
                out = np.empty((self.rows, f.shape[1]), dtype=self.dtype)
            out[rows] = f
        return out

    def features(self, obs, state=None):
        """The action layer's input and the next state (the readout's input, for Evolino):
        the core output ``(P * B, H)``, through the actor's head MLP where the template has
        one (``head_hidden``)."""
        x = self._image_features(self.template.inputs.encode(obs, (self.rows,), "obs"))
        h, c = self._check_state(state)
        x = self._mlp(self._encoder, self._enc, x)
        h_new = np.empty_like(h)
        c_new = np.empty_like(c)
        for k, (o_ih, o_hh, o_bih, o_bhh, o_peep) in enumerate(self._layers):
            _kernels.population_lstm_step(self.params, o_ih, o_hh, o_bih, o_bhh, o_peep,
                                          self._identity, x, h[k], c[k], self._gates,
                                          h_new[k], c_new[k])
            x = h_new[k]
        return self._mlp(self._head, self._hid, x), (h_new, c_new)

    def _mlp(self, layers, buffers, x):
        """Each member's MLP ``layers`` (offsets into its row) on its rows of ``x``."""
        for (ow, ob, _, act), buf in zip(layers, buffers):
            _kernels.population_linear(self.params, ow, ob, x, buf, act)
            x = buf
        return x

    def act(self, obs, state=None, episode_start=None):
        """Deterministic actions for ``P * B`` observations (member-major) and the next state.

        Equals ``template.act(obs_p, state_p, episode_start, deterministic=True)`` with
        member p's weights loaded, for every member p (action masks in the observations are
        applied as the template applies them).
        """
        if episode_start is not None and state is not None:
            es = np.asarray(episode_start, dtype=bool).reshape(self.rows)
            if es.any():
                h, c = self._check_state(state)
                keep = (~es).astype(self.dtype)[None, :, None]
                state = (h * keep, c * keep)
        t = self.template
        mask = t.action_mask(obs, None, (self.rows,))
        y, state = self.features(obs, state)
        o_w, o_b = self._action
        _kernels.population_linear(self.params, o_w, o_b, y, self._z, 0)
        log_std = t.log_std  # the mode of a Gaussian does not depend on it
        actions, _ = t.action_heads.act(self._z, mask, log_std, None, True, latent=y)
        return actions, state
