"""``Predictor``: a policy ready to act, as every trainer's ``predict`` acts.

A trained model is an :class:`~rlstm.policy.LSTMPolicy` plus, when observations were
normalised in training, an :class:`~rlstm.policy.ObsNormalizer`. ``Predictor.predict`` takes
one observation or a batch, normalises it with the saved statistics, runs one recurrent step,
clips ``Box`` actions to the action space (the policy returns them as sampled) and returns the
action(s) and the next state. Every trainer's ``predict`` is this function, and the exporters
reproduce it; ``Predictor.load`` reads a policy file or any trainer's file, with no env and no
trainer needed.
"""
from __future__ import annotations

import os

import numpy as np
from gymnasium import spaces

from ..io import read, rebuild
from .normalize import ObsNormalizer, normalizes
from .policy import LSTMPolicy
from .spaces import tree_map

__all__ = ["Predictor", "as_batch", "clip_actions"]


def clip_actions(space, actions):
    """Clip the ``Box`` parts of a (batched) action structure to the space's bounds."""
    if isinstance(space, spaces.Box):
        return np.clip(actions, space.low, space.high).astype(space.dtype, copy=False)
    if isinstance(space, spaces.Dict):
        return {k: clip_actions(s, actions[k]) for k, s in space.spaces.items()}
    if isinstance(space, spaces.Tuple):
        return tuple(clip_actions(s, a) for s, a in zip(space.spaces, actions))
    return actions


def _is_single(space, obs) -> bool:
    """Whether ``obs`` is one observation of ``space`` (rather than a batch)."""
    if isinstance(space, spaces.Dict):
        k = next(iter(space.spaces))
        return _is_single(space.spaces[k], obs[k]) if isinstance(obs, dict) and k in obs \
            else False
    if isinstance(space, spaces.Tuple):
        return _is_single(space.spaces[0], obs[0]) if isinstance(obs, (tuple, list)) and obs \
            else False
    if isinstance(space, spaces.Discrete):
        return np.ndim(obs) == 0
    return np.shape(obs) == tuple(space.shape)


def as_batch(space, obs):
    """``(obs, single, B)``: ``obs`` as a batch (a leading axis added to a single observation of
    ``space``), whether it was a single one, and the batch size."""
    single = _is_single(space, obs)
    if single:
        obs = tree_map(lambda a: np.asarray(a)[None], obs)
    leaf = obs
    while isinstance(leaf, (dict, tuple, list)):
        leaf = next(iter(leaf.values())) if isinstance(leaf, dict) else leaf[0]
    shape = np.shape(leaf)
    return obs, single, int(shape[0]) if shape else 1


class Predictor:
    """A policy with its observation normaliser: ``action, state = predict(obs, state, ...)``.

    Args:
        policy: the :class:`~rlstm.policy.LSTMPolicy`.
        obs_normalizer: the statistics observations were normalised with in training (None:
            observations go to the policy as they are).
        seed: seeds the generator used when ``deterministic=False``.
    """

    def __init__(self, policy: LSTMPolicy, obs_normalizer: ObsNormalizer | None = None,
                 seed=None):
        if not isinstance(policy, LSTMPolicy):
            raise TypeError(f"policy must be an rlstm.policy.LSTMPolicy, got "
                            f"{type(policy).__name__}")
        if obs_normalizer is not None:
            if not isinstance(obs_normalizer, ObsNormalizer):
                raise TypeError(f"obs_normalizer must be an ObsNormalizer or None, got "
                                f"{type(obs_normalizer).__name__}")
            space = policy.observation_space
            if not normalizes(space) or obs_normalizer.config().get("parts") != \
                    ObsNormalizer.for_space(space).config().get("parts") or \
                    obs_normalizer.mean.size != ObsNormalizer.for_space(space).size or \
                    (obs_normalizer.parts is None and obs_normalizer.mean.shape != space.shape):
                raise ValueError(f"an ObsNormalizer of shape {obs_normalizer.mean.shape} "
                                 f"cannot normalise observations of {space}")
        self.policy, self.obs_normalizer = policy, obs_normalizer
        self.rng = np.random.default_rng(seed)

    @property
    def observation_space(self):
        return self.policy.observation_space

    @property
    def action_space(self):
        return self.policy.action_space

    def initial_state(self, batch_size: int = 1):
        return self.policy.initial_state(batch_size)

    def normalize(self, obs):
        """Observations as the policy sees them (normalised and in its dtype, or unchanged)."""
        if self.obs_normalizer is None:
            return obs
        return self.obs_normalizer.normalize(obs, self.policy.dtype)

    def predict(self, obs, state=None, episode_start=None, deterministic: bool = False,
                rng=None):
        """``action, state`` for one observation or a batch (as a vector env returns it).

        ``state=None`` starts fresh episodes. Pass the returned ``state`` back on the next
        call, with ``episode_start`` True for rows whose episode just began. ``deterministic``
        takes the mode of every head. ``Box`` actions are clipped to the action space.
        """
        if not isinstance(deterministic, (bool, np.bool_)):
            raise TypeError(f"deterministic must be a bool, got {deterministic!r}")
        obs, single, B = as_batch(self.observation_space, obs)
        if state is None:
            state = self.policy.initial_state(B)
            if episode_start is None:
                episode_start = np.ones(B, dtype=bool)
        if episode_start is not None:
            episode_start = np.atleast_1d(np.asarray(episode_start, dtype=bool))
        norm = self.obs_normalizer
        if norm is not None and norm.parts is None:  # NaN passes on, for the policy to name
            x = np.asarray(obs)
            shape = (B,) + self.observation_space.shape
            if x.shape != shape or x.dtype.kind not in "fiu":
                raise ValueError(f"obs must be real numbers of shape {shape} (or one "
                                 f"observation of shape {shape[1:]}), got {x.dtype} "
                                 f"{x.shape}")
            obs = self.normalize(x)
        elif norm is not None:  # the normalised parts checked first; the policy checks the rest
            for path, leaf_shape, _, _ in norm.parts:
                where = "obs" + "".join(f"[{k!r}]" for k in path)
                try:
                    leaf = obs
                    for key in path:
                        leaf = leaf[key]
                except (KeyError, IndexError, TypeError):
                    raise ValueError(f"{where} is missing: obs must match "
                                     f"{self.observation_space}") from None
                x = np.asarray(leaf)
                shape = (B,) + leaf_shape
                if x.shape != shape or x.dtype.kind not in "fiu":
                    raise ValueError(f"{where} must be real numbers of shape {shape}, got "
                                     f"{x.dtype} {x.shape}")
            obs = self.normalize(obs)
        actions, _, _, state = self.policy.act(obs, state, episode_start,
                                               deterministic=bool(deterministic),
                                               rng=self.rng if rng is None else rng)
        actions = clip_actions(self.action_space, actions)
        if single:
            actions = tree_map(lambda a: a[0], actions)
        return actions, state

    # ------------------------------------------------------------------ files
    @classmethod
    def from_file(cls, arrays: dict, header: dict, where: str = "the file",
                  seed=None) -> "Predictor":
        """The predictor held in a file's ``(arrays, header)``: a policy file
        (``rlstm.save(policy)``) or a trainer's file (its ``"policy"`` and ``"obs_norm"``
        sections)."""
        if header.get("kind") == "LSTMPolicy":
            section, flat = header, arrays.get("flat_params")
        else:
            section, flat = header.get("policy"), arrays.get("policy/flat_params")
            if not isinstance(section, dict) or flat is None:
                raise ValueError(f"{where} holds a {header.get('kind')!r}, which carries no "
                                 f"policy")
        policy = rebuild(section, flat, where)
        if not isinstance(policy, LSTMPolicy):
            raise ValueError(f"{where} holds a {type(policy).__name__}, not an LSTMPolicy")
        norm = header.get("obs_norm")
        normalizer = None
        if norm is not None:
            if not isinstance(norm, dict) or not normalizes(policy.observation_space):
                raise ValueError(f"{where} has a bad 'obs_norm' header entry: {norm!r}")
            try:
                normalizer = ObsNormalizer.from_config(norm, policy.observation_space)
            except (KeyError, TypeError, ValueError) as e:
                raise ValueError(f"{where} has a bad 'obs_norm' header entry: {e}") from None
            try:
                normalizer.load_state_dict(arrays, "obs_norm/")
            except ValueError as e:
                raise ValueError(f"{where}: {e}") from None
        return cls(policy, normalizer, seed=seed)

    @classmethod
    def load(cls, path: str | os.PathLike, seed=None) -> "Predictor":
        """Read a policy file or any trainer's file (PPO, OpenAIES, ...): enough to act."""
        arrays, header = read(path)
        return cls.from_file(arrays, header, str(path), seed=seed)
