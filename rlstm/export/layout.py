"""The flat vectors an exported policy reads and writes, and the conversions to and from them.

An exported artefact (ONNX graph or C source) takes one observation as ONE flat float32 vector
and returns the action as ONE flat float32 vector, whatever the Gymnasium spaces:

- **Observation** (``obs``, ``n_obs`` numbers): every leaf of the observation space in order
  (a ``Tuple`` in its order, a ``Dict`` in the order of ``space.spaces``, which Gymnasium keeps
  sorted by key; nested), each flattened in C order:

  - ``Box``: its values as they are (an image, a ``uint8`` Box of 3 dims, as raw 0..255 pixels;
    the artefact scales it, and normalises a float Box with the saved statistics);
  - ``Discrete(n, start)``: ONE number, the observation itself (``start`` .. ``start + n - 1``);
    the artefact one-hot encodes it;
  - ``MultiDiscrete``: one number per entry, the observation itself (one-hot inside);
  - ``MultiBinary``: the bits as 0/1;
  - the ``action_mask`` key of a ``Dict`` observation, like any other leaf: its 0/1 entries
    (non-zero = allowed). A nested ``action_mask`` (not at the top of the space) is read but
    unused, as the policy ignores it.

- **Action** (``action``, ``n_action`` numbers): every leaf of the action space in order, each
  flattened in C order: a ``Discrete`` action as its value (``start`` included), a
  ``MultiDiscrete`` action as one value per entry, ``MultiBinary`` as 0/1, ``Box`` as the
  (clipped) floats.

:func:`flatten_observation`, :func:`flatten_action` and :func:`unflatten_action` convert between
these vectors and the structures ``Predictor.predict`` takes and returns (with its dtypes).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from gymnasium import spaces

from ..policy.heads import pack
from ..policy.predict import as_batch
from ..policy.spaces import MASK_KEY, check_space, is_image, leaf_paths

__all__ = ["Part", "input_parts", "output_parts", "flatten_observation", "flatten_action",
           "unflatten_action", "path_name", "categories"]

#: roles of input parts
INPUT_KINDS = ("box", "image", "discrete", "multidiscrete", "multibinary", "mask", "unused")
#: roles of output parts
OUTPUT_KINDS = ("discrete", "multidiscrete", "multibinary", "box")


def path_name(root: str, path: tuple) -> str:
    """``obs['pos'][1]`` for the path ``('pos', 1)`` under ``root``."""
    return root + "".join(f"[{k!r}]" for k in path)


@dataclass(frozen=True)
class Part:
    """One leaf of a flat vector: columns ``start:stop`` hold the leaf at ``path``."""
    path: tuple
    space: Any
    start: int
    size: int
    kind: str

    @property
    def stop(self) -> int:
        return self.start + self.size

    def describe(self, root: str) -> str:
        """One line: columns, leaf name, space and what the columns hold."""
        what = {
            "box": "values as they are",
            "image": "raw image values, HWC order (divided by the policy's image_scale "
                     "inside, 255 unless set)",
            "discrete": "the value (one-hot inside)",
            "multidiscrete": "one value per entry (one-hot inside)",
            "multibinary": "bits 0/1",
            "mask": "action mask, non-zero = allowed (discrete heads in action order)",
            "unused": "read but unused (a nested action_mask)",
        }[self.kind]
        return (f"{root}[{self.start}:{self.stop}]  {path_name(root, self.path)}  "
                f"{self.space}  {what}")


def categories(space) -> tuple[np.ndarray, np.ndarray]:
    """``(n, start)`` of each entry of a ``Discrete`` (one entry) or ``MultiDiscrete`` space,
    as flat int64 arrays: entry ``j`` takes the values ``start[j] .. start[j] + n[j] - 1``."""
    if isinstance(space, spaces.Discrete):
        return np.array([int(space.n)]), np.array([int(space.start)])
    n = np.asarray(space.nvec, dtype=np.int64).reshape(-1)
    return n, (np.asarray(space.start, dtype=np.int64).reshape(-1) * np.ones_like(n))


def _numbers(space) -> int:
    """How many numbers a leaf takes in a flat vector."""
    if isinstance(space, spaces.Discrete):
        return 1
    return int(np.prod(space.shape))


def input_parts(space) -> list[Part]:
    """The flat observation layout of ``space`` (see the module docstring)."""
    check_space(space, "observation_space")
    parts, col = [], 0
    for path, sub in leaf_paths(space, skip_mask=False):
        if path and path[-1] == MASK_KEY:
            kind = "mask" if len(path) == 1 else "unused"
        elif isinstance(sub, spaces.Box):
            kind = "image" if is_image(sub) else "box"
        elif isinstance(sub, spaces.Discrete):
            kind = "discrete"
        elif isinstance(sub, spaces.MultiDiscrete):
            kind = "multidiscrete"
        else:
            kind = "multibinary"
        n = _numbers(sub)
        parts.append(Part(path, sub, col, n, kind))
        col += n
    return parts


def output_parts(space) -> list[Part]:
    """The flat action layout of ``space``: one part per action head, in head order."""
    check_space(space, "action_space")
    parts, col = [], 0
    for path, sub in leaf_paths(space, skip_mask=False):
        n = _numbers(sub)
        parts.append(Part(path, sub, col, n, _kind_of(sub)))
        col += n
    return parts


def _kind_of(sub) -> str:
    """The role of an action leaf."""
    for cls, kind in ((spaces.Discrete, "discrete"), (spaces.MultiDiscrete, "multidiscrete"),
                      (spaces.MultiBinary, "multibinary"), (spaces.Box, "box")):
        if isinstance(sub, cls):
            return kind
    raise TypeError(f"unsupported space {type(sub).__name__}")


def _leaf(tree, path: tuple, name: str):
    """The value at ``path`` inside an observation / action structure, checking its type."""
    node = tree
    for key in path:
        if isinstance(key, str):
            if not isinstance(node, dict):
                raise TypeError(f"{name} must be a dict at {path_name(name, path)}, got "
                                f"{type(node).__name__}")
            if key not in node:
                raise ValueError(f"{name} is missing the key {key!r}")
        elif not isinstance(node, (tuple, list)):
            raise TypeError(f"{name} must be a tuple at {path_name(name, path)}, got "
                            f"{type(node).__name__}")
        node = node[key]
    return node


def flatten_observation(space, obs) -> np.ndarray:
    """One observation of ``space`` -> ``(n_obs,)`` float32, or a batch (a leading axis on
    every leaf, as a vector env returns it) -> ``(B, n_obs)``; the layout of
    :mod:`rlstm.export.layout`. A leaf of another shape is a ``ValueError`` naming it."""
    parts = input_parts(space)
    obs, single, B = as_batch(space, obs)
    out = np.empty((B, sum(p.size for p in parts)), dtype=np.float32)
    for p in parts:
        name = path_name("obs", p.path)
        x = np.asarray(_leaf(obs, p.path, "obs"))
        if x.dtype.kind not in "biuf":
            raise TypeError(f"{name} must hold numbers, got dtype {x.dtype}")
        want = (B,) + tuple(p.space.shape)
        if x.shape != want:
            raise ValueError(f"{name} must have shape {want[1:]} (or {want} for a batch), got "
                             f"{x.shape[1:] if single else x.shape}")
        out[:, p.start:p.stop] = x.reshape(B, p.size)
    return out[0] if single else out


def flatten_action(space, action) -> np.ndarray:
    """An action structure as ``Predictor.predict`` returns it -> the flat action vector
    ``(n_action,)``, or ``(B, n_action)`` for a batch of them (float64, exact for every
    discrete value)."""
    parts = output_parts(space)
    first = np.asarray(_leaf(action, parts[0].path, "action"))
    single = first.shape == tuple(parts[0].space.shape)
    B = 1 if single else (first.shape[0] if first.ndim else 1)
    out = np.empty((B, sum(p.size for p in parts)), dtype=np.float64)
    for p in parts:
        a = np.asarray(_leaf(action, p.path, "action"))
        want = ((1,) if single else (B,)) + tuple(p.space.shape)
        if a.size != math.prod(want):
            raise ValueError(f"{path_name('action', p.path)} must have shape {want[1:]} (or "
                             f"{(B,) + tuple(p.space.shape)} for a batch), got {a.shape}")
        out[:, p.start:p.stop] = a.reshape(B, p.size)
    return out[0] if single else out


def unflatten_action(space, flat) -> Any:
    """The flat action vector ``(n_action,)`` (or ``(B, n_action)``) an artefact returns ->
    the action structure ``Predictor.predict`` returns, with its dtypes (``int64`` for
    ``Discrete`` / ``MultiDiscrete``, ``int8`` for ``MultiBinary``, the space's dtype for
    ``Box``), ready for ``env.step``."""
    parts = output_parts(space)
    n = sum(p.size for p in parts)
    a = np.asarray(flat)
    if a.dtype.kind not in "biuf" or a.ndim not in (1, 2) or a.shape[-1] != n:
        raise ValueError(f"flat actions must be numbers of shape ({n},) or (B, {n}) for "
                         f"{space}, got {a.dtype} {a.shape}")
    single = a.ndim == 1
    a = a.reshape(-1, n)
    leaves = []
    for p in parts:
        x = a[:, p.start:p.stop].reshape((a.shape[0],) + tuple(p.space.shape))
        if p.kind in ("discrete", "multidiscrete"):
            x = np.rint(x).astype(np.int64)
        elif p.kind == "multibinary":
            x = (x != 0).astype(np.int8)
        else:
            x = x.astype(p.space.dtype)
        leaves.append(x[0] if single else x)
    return leaves[0] if len(parts) == 1 and not isinstance(
        space, (spaces.Tuple, spaces.Dict)) else pack(space, leaves)
