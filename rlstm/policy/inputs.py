"""What a policy does to an observation before its recurrent core sees it.

:class:`PolicyInputs` owns the observation side of :class:`rlstm.policy.LSTMPolicy`:

1. **encode**: the observation batch becomes one float array ``(N, obs_dim)``
   (:mod:`rlstm.policy.spaces`: Box flattened, discrete parts one-hot, images divided by
   ``image_scale``, 255 unless told otherwise, or, with ``image_codes``, their codes one-hot
   per channel);
2. **features**: the columns of each image part go through a small conv net of their own
   (``image_encoder="conv"``), the other columns pass through as they are, giving
   ``(N, feature_dim)``.

Everything here is public so that code which runs a policy's weights some other way (the
population evaluator of evolution strategies, exporters) encodes observations exactly as the
policy does.
"""
from __future__ import annotations

import numpy as np
from gymnasium import spaces

from ..layers import ConvEncoder
from ..validation import check_choice
from .spaces import MASK_KEY, Encoder, image_channels, is_image

__all__ = ["PolicyInputs", "IMAGE_ENCODERS"]

IMAGE_ENCODERS = ("conv", "flatten")


class PolicyInputs:
    """The observation encoding of one policy.

    Attributes:
        observation_space: the space encoded.
        obs_dim: encoded columns per observation.
        image_nets: one :class:`rlstm.layers.ConvEncoder` per image part (``"conv"`` only);
            their parameters live in the policy's flat vector as ``image{j}.*``.
        image_columns: ``[(start, stop), ...]``: the encoded columns of each image part.
        plain_columns: the encoded columns that are not an image part, in order.
        feature_dim: columns of :meth:`features`' output (plain columns first, then each image
            net's features).
        has_action_mask: whether observations carry an ``action_mask`` (a Dict key).
    """

    def __init__(self, observation_space, dtype, image_encoder: str = "conv", seed=None,
                 image_scale: float | None = 255.0, image_codes=None):
        self.observation_space = observation_space
        self.dtype = np.dtype(dtype)
        self.image_encoder = check_choice("image_encoder", image_encoder, IMAGE_ENCODERS)
        self._encoder = Encoder(observation_space, self.dtype, image_scale, image_codes)
        self.obs_dim = self._encoder.dim
        if self.obs_dim == 0:
            raise ValueError("observation_space encodes to zero features")
        self.image_scale, self.image_codes = self._encoder.image_scale, self._encoder.image_codes
        images = ([(col, d, sub) for _, _, sub, col, d in self._encoder.leaves if is_image(sub)]
                  if self.image_encoder == "conv" else [])
        conv_rng = np.random.default_rng([int(seed), 1]) if seed is not None else \
            np.random.default_rng()
        self.image_nets = [ConvEncoder(sub.shape[:-1] + (image_channels(sub, self.image_codes),),
                                       dtype=self.dtype, seed=conv_rng.integers(2 ** 63))
                           for _, _, sub in images]
        self.image_columns = [(col, col + d) for col, d, _ in images]
        plain = np.ones(self.obs_dim, bool)
        for a, b in self.image_columns:
            plain[a:b] = False
        self.plain_columns = np.flatnonzero(plain)
        self.feature_dim = int(plain.sum()) + sum(n.out_features for n in self.image_nets)
        self._box = (isinstance(observation_space, spaces.Box)
                     and observation_space.dtype != np.uint8)
        self.has_action_mask = (isinstance(observation_space, spaces.Dict)
                                and MASK_KEY in observation_space.spaces)

    def encode(self, obs, lead: tuple, name: str = "obs") -> np.ndarray:
        """``(prod(lead), obs_dim)`` floats of the policy's dtype; a ``ValueError`` or
        ``TypeError`` naming ``name`` for observations of another shape, structure or dtype,
        and for NaN or inf."""
        if not self._box:
            return self._encoder(obs, lead, name)
        x = obs if isinstance(obs, np.ndarray) else np.asarray(obs)
        shape = tuple(lead) + self.observation_space.shape
        if x.shape != shape:
            raise ValueError(f"{name} must have shape {shape}, got {np.shape(x)}")
        if x.dtype.kind not in "fiub":
            raise TypeError(f"{name} must hold real numbers, got dtype {x.dtype}")
        x = np.ascontiguousarray(x.reshape(-1, self.obs_dim), dtype=self.dtype)
        if not np.isfinite(x).all():
            raise ValueError(f"{name} contains NaN or inf")
        return x

    def features(self, x: np.ndarray, nets=None):
        """Encoded observations ``(N, obs_dim)`` -> core input ``(N, feature_dim)`` and the
        caches :meth:`backward` needs. ``nets`` replaces :attr:`image_nets` (same
        architecture, other weights)."""
        nets = self.image_nets if nets is None else nets
        if not nets:
            return x, []
        parts, caches = [x[:, self.plain_columns]], []
        for net, (a, b) in zip(nets, self.image_columns):
            f, c = net.forward(np.ascontiguousarray(x[:, a:b]))
            parts.append(f)
            caches.append(c)
        return np.concatenate(parts, axis=1), caches

    def backward(self, dfeatures: np.ndarray, caches: list) -> None:
        """Add the image nets' parameter gradients for ``dfeatures`` ``(N, feature_dim)``."""
        col = len(self.plain_columns)
        for net, c in zip(self.image_nets, caches):
            net.backward(dfeatures[:, col:col + net.out_features], c)
            col += net.out_features

    def batch_size(self, obs) -> int:
        """B from the first leaf of a batched ``obs`` (structure errors are left to
        :meth:`encode`, which names them)."""
        space, leaf = self.observation_space, obs
        while isinstance(space, (spaces.Dict, spaces.Tuple)):
            if isinstance(space, spaces.Dict):
                key = next((k for k in space.spaces if k != MASK_KEY), None)
                if not isinstance(leaf, dict) or key not in leaf:
                    return 1
                space, leaf = space.spaces[key], leaf[key]
            else:
                if not isinstance(leaf, (tuple, list)) or not leaf:
                    return 1
                space, leaf = space.spaces[0], leaf[0]
        shape = np.shape(leaf)
        if len(shape) != len(space.shape) + 1:
            raise ValueError(f"obs must be batched: shape (B,) + {space.shape} as a vector env "
                             f"returns it, got {shape} (add a leading axis for one env)")
        return int(shape[0])
