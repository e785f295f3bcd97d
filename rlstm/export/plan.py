"""What an exported policy computes, read once from a :class:`~rlstm.policy.Predictor`.

:class:`ExportPlan` is the one reading of a trained model that every exporter writes out: the
flat input and output layouts (:mod:`rlstm.export.layout`), the observation normaliser, the
encoding of each observation leaf, the image conv nets, the encoder MLP, the recurrent cores
layer by layer, the action layer and the head of each action leaf, and the value head. The ONNX
and C writers only translate it, so they cannot disagree about what the model is.

The computation, for one observation (``Predictor.predict(obs, state, episode_start,
deterministic=True)``)::

    state  = 0 where episode_start
    x      = clip((obs - mean) / sqrt(var + eps), -clip, clip)      float Box observation with
                                                                    saved statistics (float64)
    f      = [plain features ..., image features ...]               Box as is, images / scale,
                                                                    discrete parts one-hot,
                                                                    images through their conv net
    f      = tanh(W_k f + b_k) ...                                  encoder MLP (if any)
    y, state = core(f, state)        (and yv, critic state = critic_core(f, critic state))
    y      = tanh(A_k y + a_k) ...;  yv = tanh(C_k yv + c_k) ...    head MLPs (if any)
    z      = W_a y + b_a;  value = W_v yv + b_v                     yv = y with a shared core
    action = per head: argmax (masked) + start | z > 0 | clip(z, low, high)
"""
from __future__ import annotations

import os

import numpy as np

from ..gru import GRU
from ..lstm import LSTM
from ..policy import LSTMPolicy, Predictor
from ..policy.heads import Bernoulli, Categorical, DiagGaussian, MultiCategorical
from ..policy.spaces import encoded_dim
from .layout import Part, categories, input_parts, output_parts, path_name
from .source import as_predictor

__all__ = ["ExportPlan", "Core", "Layer", "ImageNet", "Head"]

FLOAT32_EXACT = 2 ** 24  # every integer up to this magnitude is exact in float32


class Layer:
    """One recurrent layer's weights, in the policy's dtype.

    ``kind`` is ``"lstm"`` or ``"gru"``. ``w_ih`` ``(G H, D)``, ``w_rec`` ``(G H, H)``
    (``weight_hh``) or ``(3H, H)`` (``weight_ch`` of ``peephole_cell``), ``b_ih``, ``b_hh``
    ``(G H,)``, ``peephole`` ``(3H,)`` (p_i, p_f, p_o) or None. Gate orders are PyTorch's:
    i, f, g, o for an LSTM and r, z, n for a GRU.
    """

    def __init__(self, w_ih, w_rec, b_ih, b_hh, peephole=None):
        self.w_ih, self.w_rec, self.b_ih, self.b_hh = w_ih, w_rec, b_ih, b_hh
        self.peephole = peephole

    @property
    def input_size(self) -> int:
        return int(self.w_ih.shape[1])


class Core:
    """A recurrent core: ``kind`` (``"lstm"``/``"gru"``), ``variant`` (``"vanilla"``,
    ``"peephole"``, ``"peephole_cell"``; ``"gru"`` for a GRU), ``identity`` (the LSTM cell
    activation is the identity), ``hidden_size`` and one :class:`Layer` per stacked layer.
    ``state_names`` are the state arrays it contributes: ``("h", "c")`` or ``("h",)``."""

    def __init__(self, name: str, layer: LSTM | GRU):
        if type(layer) is LSTM:  # a subclass may compute something else: refused
            self.kind, self.variant = "lstm", layer.variant
            self.identity = layer.cell_activation == "identity"
            self.state_names = ("h", "c")
        elif type(layer) is GRU:
            self.kind, self.variant, self.identity = "gru", "gru", False
            self.state_names = ("h",)
        else:
            raise ValueError(f"the policy's {name} is a {type(layer).__name__}; only rlstm.LSTM "
                             f"and rlstm.GRU cores can be exported")
        if layer.bidirectional:  # LSTMPolicy refuses these; a hand-made one is refused here
            raise ValueError(f"the policy's {name} is bidirectional, which cannot step")
        self.name, self.hidden_size, self.num_layers = name, layer.hidden_size, layer.num_layers
        rec = "weight_ch" if self.variant == "peephole_cell" else "weight_hh"
        p = layer.params
        zeros = np.zeros(p["weight_ih_l0"].shape[0], layer.dtype)  # bias=False: zero biases
        self.layers = [Layer(p[f"weight_ih_l{k}"], p[f"{rec}_l{k}"],
                             p.get(f"bias_ih_l{k}", zeros), p.get(f"bias_hh_l{k}", zeros),
                             p.get(f"peephole_l{k}"))
                       for k in range(layer.num_layers)]

    def describe(self) -> str:
        what = "GRU (r, z, n; reset after the product)" if self.kind == "gru" else \
            f"LSTM {self.variant}, {'identity' if self.identity else 'tanh'} cell activation"
        return f"{self.name}: {what}, {self.num_layers} layer(s) of {self.hidden_size}"


class ImageNet:
    """The conv net of one image part (``image_encoder="conv"``): ``part`` is its input part,
    ``shape`` ``(H, W, C)`` (channel-last, as Gymnasium gives it), ``convs`` a list of
    ``(weight (O, C, k, k), bias (O,), stride)``, each followed by ReLU; the output is flattened
    in ``(O, Ho, Wo)`` order into ``out_features`` feature columns at ``feature``."""

    def __init__(self, part: Part, net, weights: list, feature: int):
        self.part, self.shape, self.feature = part, tuple(net.image_shape), feature
        self.convs = [(w, b, conv.stride) for conv, (w, b) in zip(net.layers, weights)]
        self.out_features = int(net.out_features)
        if net.channels_first:  # LSTMPolicy builds channel-last nets; anything else is foreign
            raise ValueError("only channel-last image encoders (as LSTMPolicy builds) can be "
                             "exported")

    def output_shapes(self) -> list[tuple[int, int, int]]:
        """``(channels, height, width)`` after each conv."""
        h, w, _ = self.shape
        out = []
        for wt, _, s in self.convs:
            k = wt.shape[2]
            h, w = (h - k) // s + 1, (w - k) // s + 1
            out.append((int(wt.shape[0]), h, w))
        return out


class Head:
    """The deterministic head of one action leaf.

    ``part`` is its output part; ``z`` the slice of action-layer columns it reads; ``mask`` the
    slice of action-mask columns (or None); ``groups`` the ``(z offset, n, start)`` of each
    categorical it takes an argmax over (one for ``Discrete``, one per entry for
    ``MultiDiscrete``); ``low``/``high`` the clip bounds of a ``Box`` leaf (float64, may be
    infinite).
    """

    def __init__(self, part: Part, head, z: slice, mask: slice | None):
        self.part, self.kind, self.z, self.mask = part, part.kind, z, mask
        self.groups, self.low, self.high = [], None, None
        if isinstance(head, Categorical):
            self.groups = [(0, head.n, head.start)]
        elif isinstance(head, MultiCategorical):
            self.groups = [(int(head.offsets[j]), int(n), int(s))
                           for j, (n, s) in enumerate(zip(head.nvec, head.start.reshape(-1)))]
        elif isinstance(head, DiagGaussian):  # also the gSDE head: its mode is z as well
            sp = part.space
            if sp.dtype not in (np.float32, np.float64):
                raise ValueError(f"the Box action {path_name('action', part.path)} has dtype "
                                 f"{sp.dtype}; only float32 and float64 Box actions can be "
                                 f"exported (predict rounds to {sp.dtype}, the artefacts "
                                 f"compute in float32)")
            self.low = np.asarray(sp.low, dtype=np.float64).reshape(-1)
            self.high = np.asarray(sp.high, dtype=np.float64).reshape(-1)
        elif not isinstance(head, Bernoulli):
            raise ValueError(f"cannot export an action head of type {type(head).__name__}")

    def describe(self) -> str:
        what = {"discrete": "argmax of its logits (masked) + start",
                "multidiscrete": "argmax per entry (masked) + start",
                "multibinary": "1 where its logit > 0",
                "box": "the Gaussian mean, clipped to the Box"}[self.kind]
        return self.part.describe("action").rsplit("  ", 1)[0] + f"  {what}"


class ExportPlan:
    """Everything an exporter writes, read from a trained model.

    Args:
        source: a model file path, an :class:`~rlstm.policy.LSTMPolicy`, a
            :class:`~rlstm.policy.Predictor` or a trainer (anything with a ``predictor``); see
            :func:`rlstm.export.as_predictor`.
        include_value: also compute the value head (and run the critic core of a policy with
            ``shared_core=False``). False drops both: a smaller, faster artefact whose state
            holds the actor core only.

    Attributes:
        predictor: the :class:`~rlstm.policy.Predictor` read.
        inputs, outputs: the flat observation / action layouts (lists of
            :class:`~rlstm.export.layout.Part`); ``n_obs``, ``n_action`` their sizes.
        normalize: ``(mean, std, clip)`` (float64, flat) or None.
        plain: ``[(input part, feature column), ...]`` for every encoded part that is not an
            image with a conv net; ``images``: the :class:`ImageNet` of each that is.
        mask: the input part holding the action mask, or None.
        feature_dim: columns of the core's input before the encoder.
        encoder: ``[(weight (out, in), bias), ...]``, activation ``encoder_activation``.
        cores: ``[actor core]`` or ``[actor core, critic core]``; ``state_names`` the
            ``(core name, array name)`` of each state array, in the policy's state order;
            ``hidden_size``, ``num_layers``.
        actor_head, critic_head: ``[(weight (out, in), bias), ...]`` of the MLPs between the
            cores and the action layer / value head (``head_hidden``; empty without;
            ``critic_head`` also empty without the value), activation ``head_activation``.
        action_layer, value_layer: ``(weight, bias)``; ``value_layer`` is None without the
            value. ``value_core``: the index in ``cores`` the value reads.
        heads: one :class:`Head` per output part.
        dtype: the policy's dtype (artefacts compute in float32 either way).
    """

    def __init__(self, source, include_value: bool = True):
        if not isinstance(include_value, (bool, np.bool_)):
            raise TypeError(f"include_value must be a bool, got {include_value!r}")
        self.predictor: Predictor = as_predictor(source)
        self.source = (repr(os.fspath(source)) if isinstance(source, (str, os.PathLike)) else
                       f"an in-memory {type(source).__name__}")
        self.include_value = bool(include_value)
        policy: LSTMPolicy = self.predictor.policy
        if getattr(policy, "memoryless", False):
            raise ValueError("a memoryless policy (memoryless=True, a baseline without memory) "
                             "cannot be exported: the artefacts carry the recurrent state")
        self.observation_space, self.action_space = policy.observation_space, \
            policy.action_space
        self.dtype = policy.dtype
        self._read_inputs(policy)
        self._read_network(policy)
        self._read_heads(policy)

    # ------------------------------------------------------------------ observation side
    def _read_inputs(self, policy) -> None:
        self.inputs = input_parts(self.observation_space)
        self.n_obs = sum(p.size for p in self.inputs)
        self.image_scale = policy.inputs.image_scale  # None: image values as they are
        self.image_codes = policy.inputs.image_codes  # not None: image codes, one-hot
        norm = self.predictor.obs_normalizer
        self.normalize = None
        self._norm_offsets: dict[tuple, int] = {}
        if norm is not None:
            self.normalize = (np.asarray(norm.mean, np.float64).reshape(-1).copy(),
                              np.asarray(norm.std, np.float64).reshape(-1).copy(),
                              float(norm.clip))
            self._norm_offsets = ({(): 0} if norm.parts is None else
                                  {tuple(path): a for path, _, a, _ in norm.parts})
        pin = policy.inputs
        conv_cols = {tuple(c): j for j, c in enumerate(pin.image_columns)}
        self.plain, self.images, self.mask = [], [], None
        col = feature = 0  # encoded column (policy.inputs order), feature column
        image_parts = []
        for p in self.inputs:
            if p.kind in ("mask", "unused"):
                if p.kind == "mask":
                    self.mask = p
                continue
            d = encoded_dim(p.space, self.image_codes)  # as the policy encodes it
            if (col, col + d) in conv_cols:
                image_parts.append((conv_cols[(col, col + d)], p))
            else:
                self.plain.append((p, feature))
                feature += d
            col += d
        if col != pin.obs_dim or feature != len(pin.plain_columns):
            raise AssertionError("export layout disagrees with the policy's encoding")
        for j, p in sorted(image_parts, key=lambda t: t[0]):
            net = pin.image_nets[j]
            weights = [(policy.params[f"image{j}.conv{k}.weight"],
                        policy.params[f"image{j}.conv{k}.bias"]) for k in range(len(net.layers))]
            self.images.append(ImageNet(p, net, weights, feature))
            feature += net.out_features
        self.feature_dim = feature
        if feature != pin.feature_dim:
            raise AssertionError("export layout disagrees with the policy's features")
        if self.mask is not None:
            heads = policy.action_heads
            if heads.n_mask == 0:
                raise ValueError("the observation has an action_mask but the action space has "
                                 "no Discrete or MultiDiscrete part: the policy cannot act "
                                 "(predict raises too)")
            if self.mask.size != heads.n_mask:
                raise ValueError(f"the observation's action_mask has {self.mask.size} entries "
                                 f"but the action heads need {heads.n_mask}: the policy cannot "
                                 f"act (predict raises too)")

    # ------------------------------------------------------------------ network
    def _read_network(self, policy) -> None:
        enc = policy.encoder
        self.encoder = [] if enc is None else [(lin.params["weight"], lin.params["bias"])
                                               for lin in enc.layers]
        self.encoder_activation = None if enc is None else enc.activation
        self.cores = [Core("core", policy.core)]
        self.value_core = 0
        if self.include_value and policy.critic_core is not None:
            self.cores.append(Core("critic_core", policy.critic_core))
            self.value_core = 1
        self.state_names = [(c.name, s) for c in self.cores for s in c.state_names]
        self.hidden_size, self.num_layers = policy.hidden_size, policy.num_layers
        self.actor_head, self.critic_head, self.head_activation = [], [], None
        if getattr(policy, "actor_head", None) is not None:
            self.head_activation = policy.actor_head.activation
            self.actor_head = [(lin.params["weight"], lin.params["bias"])
                               for lin in policy.actor_head.layers]
            if self.include_value:
                self.critic_head = [(lin.params["weight"], lin.params["bias"])
                                    for lin in policy.critic_head.layers]
        self.action_layer = (policy.params["action.weight"], policy.params["action.bias"])
        self.value_layer = ((policy.params["value.weight"], policy.params["value.bias"])
                            if self.include_value else None)

    def _read_heads(self, policy) -> None:
        self.outputs = output_parts(self.action_space)
        self.n_action = sum(p.size for p in self.outputs)
        ah = policy.action_heads
        self.heads = [Head(p, h, zs, ms if h.n_mask and self.mask is not None else None)
                      for p, h, (zs, ms, _) in zip(self.outputs, ah.heads, ah.slices)]
        self.n_z = ah.n_out
        for root, parts in (("obs", self.inputs), ("action", self.outputs)):
            for p in parts:
                if p.kind in ("discrete", "multidiscrete"):
                    n, lo = categories(p.space)
                    if max(np.abs(lo).max(), np.abs(lo + n - 1).max()) > FLOAT32_EXACT:
                        raise ValueError(
                            f"{path_name(root, p.path)} ({p.space}) takes values beyond "
                            f"2**24, which float32 (the artefacts' numbers) cannot hold "
                            f"exactly; shift the space's start")

    # ------------------------------------------------------------------ views
    @property
    def state_shape(self) -> tuple[int, int, int]:
        """``(K, num_layers, hidden_size)``: the state of ONE env in an artefact (the policy's
        state arrays stacked, each ``(num_layers, hidden_size)`` for that env)."""
        return (len(self.state_names), self.num_layers, self.hidden_size)

    def policy_state(self, state: tuple) -> np.ndarray:
        """The policy's state tuple (``(L, B, H)`` arrays) as the artefact's ``(K, L, B, H)``
        (critic arrays dropped when the value is not exported)."""
        return np.stack([np.asarray(s) for s in state[:len(self.state_names)]])

    def discrete_columns(self) -> np.ndarray:
        """Boolean ``(n_action,)``: the action columns that must match exactly (everything but
        ``Box`` parts)."""
        out = np.ones(self.n_action, dtype=bool)
        for p in self.outputs:
            if p.kind == "box":
                out[p.start:p.stop] = False
        return out

    def norm_offset(self, part) -> int | None:
        """Where ``part``'s statistics start in ``normalize``'s mean and std, or None when
        the part is not normalised."""
        if self.normalize is None or part.kind != "box":
            return None
        return self._norm_offsets.get(tuple(part.path))

    def describe(self) -> list[str]:
        """The layouts and the network, one line each (for artefact headers and the CLI)."""
        lines = [f"observation space: {self.observation_space}",
                 f"action space: {self.action_space}",
                 f"policy dtype: {self.dtype.name}; the artefact computes in float32",
                 f"input obs: {self.n_obs} float32 value(s):"]
        lines += ["  " + p.describe("obs") for p in self.inputs]
        if self.image_codes is not None:
            lines.append(f"  image values are codes, one-hot per channel inside (codes per "
                         f"channel: {list(self.image_codes)}); image_scale is not used")
        if self.normalize is not None:
            which = ("the whole observation is" if list(self._norm_offsets) == [()] else
                     "its float Box parts are")
            lines.append(f"  {which} normalised: clip((obs - mean) / "
                         f"sqrt(var + eps), -{self.normalize[2]:g}, {self.normalize[2]:g}) "
                         f"in float64 (saved statistics)")
        lines.append(f"output action: {self.n_action} float32 value(s):")
        lines += ["  " + h.describe() for h in self.heads]
        if self.images:
            lines.append(f"image conv nets: {len(self.images)} (conv + ReLU, flattened)")
        if self.encoder:
            lines.append(f"encoder: MLP {[w.shape[0] for w, _ in self.encoder]} "
                         f"({self.encoder_activation})")
        lines += [c.describe() for c in self.cores]
        if self.actor_head:
            lines.append(f"head MLPs ({self.head_activation}): actor "
                         f"{[w.shape[0] for w, _ in self.actor_head]}"
                         + (f", critic {[w.shape[0] for w, _ in self.critic_head]}"
                            if self.critic_head else ""))
        names = ", ".join(f"{c}.{s}" for c, s in self.state_names)
        lines.append(f"state: {self.state_shape} = ({names}) x layers x hidden")
        lines.append("value: " + ("the value head on the " + self.cores[self.value_core].name
                                  if self.include_value else "not exported"))
        return lines
