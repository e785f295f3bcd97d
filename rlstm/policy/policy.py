"""``LSTMPolicy``: observation encoder -> recurrent core -> action heads + value head."""
from __future__ import annotations

import functools
import inspect

from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import registry
from ..cores import CORES, core_class, core_name
from ..io import load, save
from ..layers import MLP, Linear, adopt, param_spec
from ..module import Module
from ..validation import check_dtype, check_int
from .actions import ActionHeads
from .inputs import PolicyInputs
from .spaces import (check_image_codes, check_space, encoded_dim, image_channels, is_image,
                     leaf_paths, space_from_json, space_to_json, split_mask)

__all__ = ["LSTMPolicy", "PolicyCache"]


@dataclass
class PolicyCache:
    """What :meth:`LSTMPolicy.evaluate` keeps for :meth:`LSTMPolicy.backward`. Opaque."""
    owner: object
    T: int
    B: int
    mlp_cache: Any
    core_cache: Any
    critic_cache: Any
    head_caches: list
    image_caches: list
    pi: np.ndarray          # the action layer's input: y, through the actor head MLP if any
    vf: np.ndarray          # the value head's input: yv, through the critic head MLP if any
    pi_cache: Any
    vf_cache: Any


class LSTMPolicy(Module):
    """A recurrent actor-critic for any Gymnasium observation and action spaces.

    Layout: the observation is encoded part by part (``rlstm.policy.spaces``: Box flattened,
    discrete parts one-hot, Tuple/Dict concatenated, a Dict's ``action_mask`` key kept apart),
    optionally passed through an MLP (tanh), then through a recurrent core (``rlstm.LSTM`` by
    default) whose output feeds one linear action layer (split between the action heads, one
    per leaf of the action space) and one linear value head, each optionally after its own
    tanh MLP (``head_hidden``, as sb3-contrib's ``net_arch`` after its LSTM). With
    ``shared_core=False`` the value head reads its own core of the same kind (a separate
    critic).

    Parameters (``policy.params``; all views into ONE vector ``policy.flat_params``, in this
    order; ``E`` = encoder output size, ``H`` = hidden_size, ``n`` = action-layer columns,
    ``d`` = total Box action size)::

        image{j}.conv{k}.weight, image{j}.conv{k}.bias   image part j, image_encoder="conv"
        encoder.{k}.weight (out_k, in_k), encoder.{k}.bias (out_k,)   only with mlp_hidden
        core.<layer names>        the core's own names, e.g. core.weight_ih_l0 (4H, E),
                                  core.weight_hh_l0 (4H, H), core.bias_ih_l0, core.bias_hh_l0
        critic_core.<layer names> only with shared_core=False
        actor_head.{k}.weight, actor_head.{k}.bias    only with head_hidden
        action.weight (n, A), action.bias (n,)    columns split across heads in action order
        log_std (d,)              only when the action space has a Box part;
                                  (A, d) with use_sde=True (gSDE exploration matrix scale)
        critic_head.{k}.weight, critic_head.{k}.bias  only with head_hidden
        value.weight (1, A), value.bias (1,)

    ``A`` is ``head_hidden[-1]`` with ``head_hidden``, else ``H``.

    ``policy.core`` (and ``policy.critic_core``) is the recurrent layer itself, so a batched
    population evaluator can read its ``params`` by the core's own names.

    The recurrent state is a tuple of arrays, each ``(num_layers, B, H)``: ``(h, c)`` for an
    LSTM core, ``(h,)`` for a GRU core, followed by the critic core's arrays when
    ``shared_core=False``. Select rows with ``tuple(s[:, rows] for s in state)``.

    Args:
        observation_space, action_space: Gymnasium spaces (Box, Discrete, MultiDiscrete,
            MultiBinary, Tuple and Dict, nested).
        hidden_size: units of the recurrent core.
        num_layers: stacked recurrent layers.
        dtype: ``np.float32`` or ``np.float64``.
        seed: initialisation seed; also seeds the sampling generator used when ``rng=None``.
        core: ``"lstm"``, ``"gru"`` or an rlstm recurrent layer class.
        core_kwargs: extra keyword arguments for the core (e.g. ``{"variant": "peephole"}``).
        mlp_hidden: sizes of an MLP encoder before the core (``()`` means none).
        head_hidden: sizes of a tanh MLP after the core, one for the action layer and one (with
            its own weights) for the value head (``()`` means none: both read the core output).
            sb3-contrib's RecurrentPPO has ``net_arch=dict(pi=[64, 64], vf=[64, 64])`` here.
        shared_core: one core for actor and critic (default, as OpenAI Five), else two.
        log_std_init: initial log standard deviation of Gaussian heads.
        action_init_scale: scale of the initial action-layer weights (small = near-uniform).
        image_encoder: ``"conv"`` (a small conv net per image part, ``image{j}.*`` parameters)
            or ``"flatten"`` (the scaled pixels fed as they are).
        image_scale: image parts (``uint8`` Box of 3 dims) are divided by this before the
            encoder (255: pixels to 0..1). ``None`` leaves the values as they are, for images
            that hold codes rather than intensities (MiniGrid's object, colour and state
            codes 0..10), though codes are better one-hot: see ``image_codes``.
        image_codes: the image parts hold codes, not intensities: one whole number per image
            channel, the number of codes it holds (MiniGrid's ``[11, 6, 3]``: object, colour,
            state). Each pixel's channel ``c`` is then one-hot encoded into ``image_codes[c]``
            channels (MiniGrid's ``OneHotPartialObsWrapper``, in the policy), and
            ``image_scale`` is not used. Codes outside ``0..image_codes[c] - 1`` raise a
            ``ValueError``. ``None`` (default): the values as numbers.
        use_sde: generalized state-dependent exploration for Box actions (gSDE, as SB3's
            ``use_sde``): the action noise is ``y @ E`` for the actor core's output ``y`` and an
            exploration matrix ``E`` per env, drawn by :meth:`sample_sde_noise` and passed to
            :meth:`act` (a trainer redraws it every ``sde_sample_freq`` steps); ``log_std``
            becomes ``(A, d)``. Without ``sde_noise``, a stochastic ``act`` draws
            fresh matrices for that call. No effect (``policy.use_sde`` is False) when the
            action space has no Box part.
        sde_learn_features: with ``use_sde``, also pass the gradient of the action variance into
            the core (SB3's ``learn_features``); off by default, as in SB3.
        memoryless: zero the recurrent state before every step (in :meth:`act`,
            :meth:`evaluate`, :meth:`value`, and so in ``predict``): the same network with no
            memory, the baseline that shows what a task's memory is worth. Off by default.
    """

    def __init__(self, observation_space, action_space, hidden_size: int = 64,
                 num_layers: int = 1, dtype=np.float32, seed=None, *, core="lstm",
                 core_kwargs: dict | None = None, mlp_hidden=(), shared_core: bool = True,
                 log_std_init: float = 0.0, action_init_scale: float = 0.01,
                 image_encoder: str = "conv", use_sde: bool = False,
                 sde_learn_features: bool = False, image_scale: float | None = 255.0,
                 memoryless: bool = False, head_hidden=(), image_codes=None):
        check_space(observation_space, "observation_space")
        check_space(action_space, "action_space")
        self.observation_space, self.action_space = observation_space, action_space
        self.hidden_size = check_int("hidden_size", hidden_size, 1)
        self.num_layers = check_int("num_layers", num_layers, 1)
        if not isinstance(shared_core, (bool, np.bool_)):
            raise TypeError(f"shared_core must be a bool, got {shared_core!r}")
        self.shared_core = bool(shared_core)
        if not isinstance(use_sde, (bool, np.bool_)):
            raise TypeError(f"use_sde must be a bool, got {use_sde!r}")
        self.use_sde = bool(use_sde)
        if not isinstance(sde_learn_features, (bool, np.bool_)):
            raise TypeError(f"sde_learn_features must be a bool, got {sde_learn_features!r}")
        if sde_learn_features and not self.use_sde:
            raise ValueError("sde_learn_features=True needs use_sde=True")
        self.sde_learn_features = bool(sde_learn_features)
        if not isinstance(memoryless, (bool, np.bool_)):
            raise TypeError(f"memoryless must be a bool, got {memoryless!r}")
        self.memoryless = bool(memoryless)
        self.core_kwargs = dict(core_kwargs or {})
        if "bidirectional" in self.core_kwargs and self.core_kwargs["bidirectional"]:
            raise ValueError("a policy core cannot be bidirectional (act() cannot see the future)")
        if self.core_kwargs.get("batch_first"):
            raise ValueError("a policy core is time-major (evaluate() feeds it (T, B, ...)): "
                             "leave batch_first out of core_kwargs")
        dropout = self.core_kwargs.get("dropout", 0.0)
        if not isinstance(dropout, (bool, np.bool_)) and isinstance(
                dropout, (int, float, np.integer, np.floating)) and dropout != 0:
            raise ValueError(f"a policy core cannot use dropout (got dropout={dropout!r}): act() "
                             f"runs the core without it and evaluate() with it, so policy "
                             f"gradient ratios would compare two different policies")
        self.log_std_init = float(log_std_init)
        self.action_init_scale = float(action_init_scale)
        if not np.isfinite(self.log_std_init) or not np.isfinite(self.action_init_scale):
            raise ValueError("log_std_init and action_init_scale must be finite numbers")
        self.mlp_hidden = _sizes("mlp_hidden", mlp_hidden)
        self.head_hidden = _sizes("head_hidden", head_hidden)
        self._core_cls = core_class(core)
        self.core_type = core_name(self._core_cls)
        self.seed = seed
        rng = np.random.default_rng(seed)
        seeds = rng.integers(2 ** 63, size=5)
        self.rng = np.random.default_rng(rng.integers(2 ** 63))
        # drawn after the others, so a policy without head_hidden is what it always was
        head_seeds = rng.integers(2 ** 63, size=2) if self.head_hidden else (None, None)

        # observation -> core input: encoding, and a conv net per image part
        self.inputs = PolicyInputs(observation_space, check_dtype(dtype), image_encoder,
                                   seed=int(seeds[0]), image_scale=image_scale,
                                   image_codes=image_codes)
        self.image_encoder, self.image_scale = self.inputs.image_encoder, self.inputs.image_scale
        self.image_codes = self.inputs.image_codes
        self.obs_dim, self.feature_dim = self.inputs.obs_dim, self.inputs.feature_dim
        self.image_nets = self.inputs.image_nets
        latent = self.head_hidden[-1] if self.head_hidden else self.hidden_size
        self.action_heads = ActionHeads(action_space, sde_latent=latent if self.use_sde else 0)
        self.heads, self.head_slices = self.action_heads.heads, self.action_heads.slices
        self.n_action = self.action_heads.n_out
        self.n_mask = self.action_heads.n_mask
        self.n_log_std = self.action_heads.n_log_std
        # gSDE acts on Box heads only: without one there is nothing to explore that way
        self.use_sde = self.use_sde and self.n_log_std > 0
        self.sde_learn_features = self.sde_learn_features and self.use_sde

        H = self.hidden_size
        self.encoder = (MLP(self.feature_dim, self.mlp_hidden, dtype=dtype, seed=seeds[0])
                        if self.mlp_hidden else None)
        enc_out = self.mlp_hidden[-1] if self.mlp_hidden else self.feature_dim
        self.core = self._core_cls(enc_out, H, self.num_layers, dtype=dtype, seed=seeds[1],
                                   **self.core_kwargs)
        self.critic_core = (None if self.shared_core else
                            self._core_cls(enc_out, H, self.num_layers, dtype=dtype,
                                           seed=seeds[2], **self.core_kwargs))
        self.actor_head, self.critic_head = (
            (MLP(H, self.head_hidden, dtype=dtype, seed=s) for s in head_seeds)
            if self.head_hidden else (None, None))
        self.action_net = Linear(latent, self.n_action, dtype=dtype, seed=seeds[3],
                                 init_scale=self.action_init_scale)
        self.value_net = Linear(latent, 1, dtype=dtype, seed=seeds[4])

        children = [(f"image{j}.", net) for j, net in enumerate(self.image_nets)]
        children += [("encoder.", self.encoder), ("core.", self.core),
                     ("critic_core.", self.critic_core), ("actor_head.", self.actor_head),
                     ("action.", self.action_net)]
        after = [("critic_head.", self.critic_head), ("value.", self.value_net)]
        spec = []
        for prefix, child in children:
            if child is not None:
                spec += param_spec(child, prefix)
        if self.n_log_std:
            spec.append(("log_std", (latent, self.n_log_std) if self.use_sde else
                         (self.n_log_std,)))
        for prefix, child in after:
            if child is not None:
                spec += param_spec(child, prefix)
        self._allocate(spec, dtype)
        self.submodules = [(prefix, child) for prefix, child in children + after
                           if child is not None]
        for prefix, child in self.submodules:
            adopt(self, child, prefix)
        if self.n_log_std:
            self.params["log_std"][...] = self.log_std_init
        self._n_core_state = len(self._core_state_tuple(self.core.initial_state(1)))

    @property
    def log_std(self) -> np.ndarray | None:
        """The ``log_std`` parameter (a view), or None without a Box action part."""
        return self.params["log_std"] if self.n_log_std else None

    # ------------------------------------------------------------------ configuration
    def config(self) -> dict:
        """Constructor arguments (JSON-able, spaces excluded): what ``rlstm.save`` stores."""
        return {"hidden_size": self.hidden_size, "num_layers": self.num_layers,
                "dtype": self.dtype.name, "core": self.core_type,
                "core_kwargs": self.core_kwargs, "mlp_hidden": list(self.mlp_hidden),
                "shared_core": self.shared_core, "log_std_init": self.log_std_init,
                "action_init_scale": self.action_init_scale,
                "image_encoder": self.image_encoder, "image_scale": self.image_scale,
                "use_sde": self.use_sde, "sde_learn_features": self.sde_learn_features,
                **({"memoryless": True} if self.memoryless else {}),
                **({"head_hidden": list(self.head_hidden)} if self.head_hidden else {}),
                **({"image_codes": list(self.image_codes)} if self.image_codes else {})}

    # ------------------------------------------------------------------ state
    @staticmethod
    def _core_state_tuple(s) -> tuple:
        return (s,) if isinstance(s, np.ndarray) else tuple(s)

    def _split_state(self, state):
        k = self._n_core_state
        actor = state[:k] if k > 1 else state[0]
        critic = None if self.shared_core else (state[k:] if k > 1 else state[k])
        return actor, critic

    def initial_state(self, batch_size: int) -> tuple:
        """Zero recurrent state for ``batch_size`` rows (see the class docstring for layout)."""
        B = check_int("batch_size", batch_size, 1)
        n = self._n_core_state * (1 if self.shared_core else 2)
        return tuple(np.zeros((self.num_layers, B, self.hidden_size), dtype=self.dtype)
                     for _ in range(n))

    def _check_state(self, state, B: int, name: str) -> tuple:
        n = self._n_core_state * (1 if self.shared_core else 2)
        if state is None:
            return self.initial_state(B)
        if not isinstance(state, (tuple, list)) or len(state) != n:
            raise TypeError(f"{name} must be a tuple of {n} arrays of shape "
                            f"({self.num_layers}, B, {self.hidden_size}) as returned by "
                            f"initial_state(B), or None")
        shape = (self.num_layers, B, self.hidden_size)
        out = []
        for s in state:
            if not (isinstance(s, np.ndarray) and s.dtype == self.dtype):
                s = np.asarray(s)
                if s.dtype.kind not in "fiu":
                    raise TypeError(f"{name} must hold real numbers, got dtype {s.dtype}")
                s = s.astype(self.dtype)
            if s.shape != shape:
                raise ValueError(f"{name} arrays must have shape {shape}, got {s.shape}")
            out.append(s)
        return tuple(out)

    # ------------------------------------------------------------------ inputs
    def action_mask(self, obs, mask, lead: tuple, name: str = "action_mask"):
        """The boolean action mask ``(prod(lead), n_mask)`` to apply (``mask`` if given, else a
        Dict observation's ``action_mask`` key), or None; checked against the heads."""
        if mask is None and self.inputs.has_action_mask:
            mask = split_mask(self.observation_space, obs)
        return self.action_heads.check_mask(mask, lead, name)

    # ------------------------------------------------------------------ rollout
    def act(self, obs, state, episode_start, deterministic: bool = False, rng=None,
            action_mask=None, sde_noise=None):
        """One step for a batch of ``B`` envs.

        Returns ``actions`` (the action-space structure, batched, exactly as sampled), ``values``
        ``(B,)``, ``log_probs`` ``(B,)`` and the next state. Where ``episode_start[b]`` is set,
        row ``b``'s state is zeroed first. ``rng`` is a ``numpy.random.Generator`` (default: the
        policy's own, seeded by ``seed``). ``action_mask`` ``(B, n_mask)`` overrides a Dict
        observation's ``action_mask`` key. ``sde_noise`` ``(B, A, d)``: the gSDE
        exploration matrices from :meth:`sample_sde_noise` (``use_sde`` only; ``None``: fresh).
        """
        if isinstance(state, (tuple, list)) and state and isinstance(state[0], np.ndarray):
            B = state[0].shape[1]
        else:
            B = self.inputs.batch_size(obs)
        x = self.inputs.features(self.inputs.encode(obs, (B,), "obs"))[0]
        state = self._check_state(state, B, "state")
        if episode_start is not None:
            es = episode_start if isinstance(episode_start, np.ndarray) else np.asarray(
                episode_start)
            if es.shape != (B,):
                raise ValueError(f"episode_start must have shape (B,) = ({B},), got {es.shape}")
            if es.any() and not self.memoryless:
                keep = (~es.astype(bool)).astype(self.dtype)[None, :, None]
                state = tuple(s * keep for s in state)
        if self.memoryless:
            state = self.initial_state(B)
        mask = self.action_mask(obs, action_mask, (B,), "action_mask")
        if self.encoder is not None:
            x = self.encoder.forward(x)[0]
        actor, critic = self._split_state(state)
        y, new_actor = self.core.step(x, actor)
        if critic is None:
            yv, new_state = y, self._core_state_tuple(new_actor)
        else:
            yv, new_critic = self.critic_core.step(x, critic)
            new_state = self._core_state_tuple(new_actor) + self._core_state_tuple(new_critic)
        pi, vf = self._heads_in(y, yv)
        z = self.action_net._forward(pi)
        values = self.value_net._forward(vf)[:, 0]
        rng = self.rng if rng is None else rng
        if sde_noise is not None:
            sde_noise = self._check_sde_noise(sde_noise, B)
        actions, logp = self.action_heads.act(z, mask, self.log_std, rng, deterministic,
                                              latent=pi, sde_noise=sde_noise)
        return actions, values, logp.astype(self.dtype, copy=False), new_state

    def _heads_in(self, y, yv):
        """The action layer's and the value head's inputs: the core outputs, through the head
        MLPs where there are some."""
        if self.actor_head is None:
            return y, yv
        return self.actor_head.forward(y)[0], self.critic_head.forward(yv)[0]

    def sample_sde_noise(self, batch_size: int, rng=None) -> np.ndarray:
        """Standard-normal gSDE exploration matrices ``(batch_size, A, d)``, one per
        env, for :meth:`act`'s ``sde_noise`` (scaled by ``exp(log_std)`` when used)."""
        if not self.use_sde:
            raise ValueError("sample_sde_noise needs a policy built with use_sde=True")
        B = check_int("batch_size", batch_size, 1)
        rng = self.rng if rng is None else rng
        return rng.standard_normal((B,) + self.log_std.shape).astype(self.dtype)

    def _check_sde_noise(self, noise, B: int) -> np.ndarray:
        if not self.use_sde:
            raise ValueError("sde_noise given, but the policy was built with use_sde=False")
        shape = (B,) + self.log_std.shape
        if not isinstance(noise, np.ndarray) or noise.shape != shape:
            raise ValueError(f"sde_noise must be an array of shape {shape} from "
                             f"sample_sde_noise({B}), got {getattr(noise, 'shape', noise)!r}")
        if noise.dtype.kind != "f" or not np.isfinite(noise).all():
            raise ValueError("sde_noise must hold finite floats")
        return noise

    def value(self, obs, state, episode_start=None) -> np.ndarray:
        """Values ``(B,)`` of ``obs`` from ``state`` without sampling (e.g. to bootstrap a
        truncated episode from its final observation). The state is not advanced."""
        B = self.inputs.batch_size(obs)
        x = self.inputs.features(self.inputs.encode(obs, (B,), "obs"))[0]
        state = self._check_state(state, B, "state")
        if episode_start is not None:
            es = np.asarray(episode_start, dtype=bool)
            if es.shape != (B,):
                raise ValueError(f"episode_start must have shape (B,) = ({B},), got {es.shape}")
            state = tuple(s * (~es)[None, :, None] for s in state)
        if self.memoryless:
            state = self.initial_state(B)
        if self.encoder is not None:
            x = self.encoder.forward(x)[0]
        actor, critic = self._split_state(state)
        if critic is None:
            y = self.core.step(x, actor)[0]
        else:
            y = self.critic_core.step(x, critic)[0]
        if self.critic_head is not None:
            y = self.critic_head.forward(y)[0]
        return self.value_net._forward(y)[:, 0]

    def advance(self, obs_seq, state, episode_starts):
        """The recurrent state after a ``(T, B)`` batch of observation sequences, from
        ``state`` (``None``: zeros), with each row's state zeroed before the steps where
        ``episode_starts`` is set: what :meth:`act` would reach step by step, in one pass
        through the core(s) (no heads, nothing kept for backward). A trainer uses it to
        recompute stored states with the current weights."""
        es = np.asarray(episode_starts)
        if es.ndim != 2 or es.shape[0] == 0 or es.shape[1] == 0:
            raise ValueError(f"episode_starts must have shape (T, B) with T, B >= 1, got "
                             f"{es.shape}")
        T, B = es.shape
        state = self._check_state(state, B, "state")
        if self.memoryless:
            return self.initial_state(B)
        x = self.inputs.features(self.inputs.encode(obs_seq, (T, B), "obs_seq"))[0]
        if self.encoder is not None:
            x = self.encoder.forward(x)[0]
        x3 = x.reshape(T, B, -1)
        actor, critic = self._split_state(state)
        out = self._core_state_tuple(self.core(x3, actor, resets=es)[1])
        if critic is not None:
            out += self._core_state_tuple(self.critic_core(x3, critic, resets=es)[1])
        return out

    # ------------------------------------------------------------------ training
    def evaluate(self, obs_seq, actions_seq, state0, episode_starts, action_masks=None):
        """Log-probabilities, entropies and values of a ``(T, B)`` batch of sequences.

        ``state0`` is the state before the first step (``None``: zeros); ``episode_starts``
        ``(T, B)`` zeroes the state of a row before that step. One pass through the core, no
        loop over time. Returns ``log_probs``, ``entropy``, ``values`` (each ``(T, B)``) and a
        cache for :meth:`backward`.
        """
        es = np.asarray(episode_starts)
        if es.ndim != 2:
            raise ValueError(f"episode_starts must have shape (T, B), got {es.shape}")
        T, B = es.shape
        if T == 0 or B == 0:
            raise ValueError("episode_starts must have T >= 1 and B >= 1")
        if self.memoryless:  # every step starts from the zero state
            es = np.ones((T, B), dtype=bool)
        lead = (T, B)
        x = self.inputs.encode(obs_seq, lead, "obs_seq")
        mask = self.action_mask(obs_seq, action_masks, lead, "action_masks")
        acts = self.action_heads.check_actions(actions_seq, lead, "actions_seq")
        state = self._check_state(state0, B, "state0")
        actor, critic = self._split_state(state)
        x, image_caches = self.inputs.features(x)
        mlp_cache = None
        if self.encoder is not None:
            x, mlp_cache = self.encoder.forward(x)
        x3 = x.reshape(T, B, -1)
        y, _, core_cache = self.core.forward(x3, actor, resets=es)
        y = y.reshape(T * B, -1)
        critic_cache = None
        if self.critic_core is not None:
            yv, _, critic_cache = self.critic_core.forward(x3, critic, resets=es)
            yv = yv.reshape(T * B, -1)
        else:
            yv = y
        pi, vf, pi_cache, vf_cache = y, yv, None, None
        if self.actor_head is not None:
            pi, pi_cache = self.actor_head.forward(y)
            vf, vf_cache = self.critic_head.forward(yv)
        z = self.action_net._forward(pi)
        values = self.value_net._forward(vf)[:, 0]
        logp, ent, head_caches = self.action_heads.log_prob_entropy(z, acts, mask, self.log_std,
                                                                    latent=pi)
        cache = PolicyCache(self, T, B, mlp_cache, core_cache, critic_cache, head_caches,
                            image_caches, pi, vf, pi_cache, vf_cache)
        return logp.reshape(T, B), ent.reshape(T, B), values.reshape(T, B), cache

    def backward(self, dlog_probs, dentropy, dvalues, cache: PolicyCache) -> None:
        """Add the gradient of ``sum(dlog_probs*log_probs + dentropy*entropy + dvalues*values)``
        into :attr:`flat_grads` (``None`` for a term means zero)."""
        if not isinstance(cache, PolicyCache) or cache.owner is not self:
            raise ValueError("cache must be the cache returned by this policy's evaluate()")
        T, B = cache.T, cache.B
        N = T * B

        def coef(d, name):
            if d is None:
                return np.zeros(N, dtype=self.dtype)
            arr = np.asarray(d)
            if arr.dtype.kind not in "fiu":
                raise TypeError(f"{name} must hold real numbers, got dtype {arr.dtype}")
            if arr.shape != (T, B):
                raise ValueError(f"{name} must have shape (T, B) = ({T}, {B}), got {arr.shape}")
            arr = arr.reshape(N).astype(self.dtype)
            if not np.isfinite(arr).all():
                raise ValueError(f"{name} contains NaN or inf")
            return arr

        dlp, de, dv = (coef(dlog_probs, "dlog_probs"), coef(dentropy, "dentropy"),
                       coef(dvalues, "dvalues"))
        dz = np.empty((N, self.n_action), dtype=self.dtype)
        dy_sde = self.action_heads.backward(
            dlp, de, cache.head_caches, dz, self.grads.get("log_std"),
            latent=cache.pi if self.sde_learn_features else None)
        dy = self.action_net.backward(dz, cache.pi)
        if dy_sde is not None:
            dy += dy_sde
        dyv = self.value_net.backward(dv[:, None], cache.vf)
        if self.actor_head is not None:
            dy = self.actor_head.backward(dy, cache.pi_cache, need_dx=True)
            dyv = self.critic_head.backward(dyv, cache.vf_cache, need_dx=True)
        # the cores' input gradient feeds only an encoder or image nets: skip its GEMM otherwise
        need_dx = self.encoder is not None or bool(self.image_nets)
        if self.critic_core is None:
            dy += dyv
            dx = _core_backward(self.core, dy.reshape(T, B, -1), cache.core_cache, need_dx)
        else:
            dx = _core_backward(self.core, dy.reshape(T, B, -1), cache.core_cache, need_dx)
            dxv = _core_backward(self.critic_core, dyv.reshape(T, B, -1), cache.critic_cache,
                                 need_dx)
            dx = dx + dxv if need_dx else None
        if not need_dx:
            return
        dx = dx.reshape(N, -1)
        if self.encoder is not None:
            dx = self.encoder.backward(dx, cache.mlp_cache, need_dx=bool(self.image_nets))
        self.inputs.backward(dx, cache.image_caches)

    # ------------------------------------------------------------------ persistence
    def save(self, path) -> None:
        """Write the policy (spaces, constructor arguments, parameters) with ``rlstm.save``."""
        save(self, path)

    @classmethod
    def load(cls, path) -> "LSTMPolicy":
        """Read a policy written by :meth:`save` (no pickle; bad files raise ``ValueError``)."""
        obj = load(path, kind="LSTMPolicy")
        if not isinstance(obj, cls):
            raise ValueError(f"{path} holds a {type(obj).__name__}, not an {cls.__name__}")
        return obj


def _sizes(name: str, sizes) -> tuple:
    """Layer sizes given as an int or a sequence of ints (``()``: no layer), checked."""
    if isinstance(sizes, (int, np.integer)) and not isinstance(sizes, (bool, np.bool_)):
        sizes = (sizes,)
    if isinstance(sizes, (str, bytes, dict)) or not hasattr(sizes, "__iter__"):
        raise TypeError(f"{name} must be a sequence of layer sizes (ints >= 1), such as "
                        f"(64, 64), or () for none; got {sizes!r}")
    return tuple(check_int(f"{name} size", h, 1) for h in sizes)


# ---------------------------------------------------------------------------- rlstm.save/load
def _config(m: LSTMPolicy) -> dict:
    if m.core_type not in CORES:
        raise TypeError(f"an LSTMPolicy on a custom core ({m.core_type}) cannot be saved: "
                        f"rlstm.load could not rebuild its core; keep policy.state_dict() "
                        f"instead, or use core='lstm' or 'gru'")
    return {**m.config(), "observation_space": space_to_json(m.observation_space),
            "action_space": space_to_json(m.action_space)}


@functools.lru_cache(maxsize=None)
def _takes_input_grad(core_type) -> bool:
    return "input_grad" in inspect.signature(core_type.backward).parameters


def _core_backward(core, dy, cache, need_dx: bool):
    """``core.backward(dy, cache)``'s input gradient, or None when it is not needed (then a
    core that takes ``input_grad`` skips computing it)."""
    if need_dx:
        return core.backward(dy, cache)[0]
    if _takes_input_grad(type(core)):
        core.backward(dy, cache, input_grad=False)
    else:
        core.backward(dy, cache)
    return None


def _build(c: dict, size: int) -> LSTMPolicy:
    """Every weight matrix the header describes is checked against the saved parameter count
    before the policy is built (only the image conv nets, whose size grows with the channel
    count alone, are made first, to learn how many features they give)."""
    c = dict(c)
    obs = space_from_json(c.pop("observation_space"))
    act = space_from_json(c.pop("action_space"))
    H = int(c["hidden_size"])
    registry.need(1 <= H <= size and 1 <= int(c["num_layers"]) <= size, "hidden_size")
    image_encoder = c.get("image_encoder", "conv")
    codes = check_image_codes(c.get("image_codes"))
    for _, sub in leaf_paths(obs):
        if is_image(sub) and image_encoder == "conv":
            # a conv net's first layer has 16 filters over the channels
            registry.need(16 * image_channels(sub, codes) <= size, "image channels")
        else:  # these columns feed the first weight matrix
            registry.need(encoded_dim(sub, codes) <= size, "observation too large")
    d_in = PolicyInputs(obs, c.get("dtype", "float32"), image_encoder,
                        image_scale=c.get("image_scale", 255.0),
                        image_codes=codes).feature_dim
    for h in c.get("mlp_hidden") or []:
        registry.need(d_in * int(h) <= size, "encoder too large")
        d_in = int(h)
    registry.need_recurrent(c, d_in, size)
    latent = H
    for h in c.get("head_hidden") or []:
        registry.need(2 * latent * int(h) <= size, "head MLPs too large")
        latent = int(h)
    heads = ActionHeads(act, sde_latent=latent if c.get("use_sde") else 0)
    registry.need(latent * heads.n_out <= size, "action layer too large")
    return LSTMPolicy(obs, act, c.pop("hidden_size"), c.pop("num_layers"), c.pop("dtype"), **c)


registry.register("LSTMPolicy", _config, _build)
