"""Observation encoding for any Gymnasium space, and spaces to/from JSON (for save files).

An observation batch with leading dims ``lead`` (``(B,)`` from a vector env, ``(T, B)`` in a
rollout buffer) becomes one float array ``(prod(lead), D)``:

- ``Box``: flattened. A ``uint8`` Box with 3 dims (an image) is flattened and divided by
  ``image_scale`` (255 by default; ``None`` leaves the values as they are); with
  ``image_codes``, its values are codes instead (MiniGrid's object, colour and state), and each
  pixel's channel ``c`` becomes a one-hot block of ``image_codes[c]`` columns, so an image
  ``(H, W, C)`` is encoded as ``(H, W, sum(image_codes))``, channel-last as before.
  :class:`rlstm.policy.inputs.PolicyInputs` then passes those columns through a conv net.
- ``Discrete(n, start)``: one-hot of ``obs - start`` (n columns).
- ``MultiDiscrete(nvec, start)``: one one-hot block per entry (``sum(nvec)`` columns).
- ``MultiBinary(n)``: the bits as 0/1 floats.
- ``Tuple`` / ``Dict``: each part encoded in order (``Dict`` in its key order) and concatenated.
  The key ``action_mask`` of a ``Dict`` observation is not encoded: it is the action mask.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
from gymnasium import spaces

MASK_KEY = "action_mask"
SUPPORTED = (spaces.Box, spaces.Discrete, spaces.MultiDiscrete, spaces.MultiBinary,
             spaces.Tuple, spaces.Dict)

__all__ = ["Encoder", "leaf_paths", "flat_dim", "encode", "split_mask", "check_space",
           "supported", "select_keys", "check_image_codes", "image_channels", "encoded_dim",
           "space_to_json", "space_from_json", "tree_map", "MASK_KEY"]


def tree_map(fn, *trees):
    """Apply ``fn`` leafwise over matching dict / tuple / list trees (observations and actions
    of Dict and Tuple spaces are such trees of arrays)."""
    first = trees[0]
    if isinstance(first, dict):
        return {k: tree_map(fn, *(t[k] for t in trees)) for k in first}
    if isinstance(first, (tuple, list)):
        return type(first)(tree_map(fn, *parts) for parts in zip(*trees))
    return fn(*trees)


def supported(space: Any) -> bool:
    """Whether ``space`` (nested) is one rlstm encodes."""
    try:
        check_space(space, "space")
    except (TypeError, ValueError):
        return False
    return True


def check_space(space: Any, name: str) -> None:
    """Raise ``TypeError`` unless ``space`` is a supported (possibly nested) Gymnasium space.

    For a ``Dict`` observation with a part rlstm cannot encode (``Text``, ``Graph``, ...), the
    error names the part and the keys to keep with the trainers' ``obs_keys`` setting."""
    if isinstance(space, spaces.Dict) and name == "observation_space":
        bad = [k for k, s in space.spaces.items() if not supported(s)]
        keep = [k for k in space.spaces if k not in bad]
        if bad and keep:
            try:
                check_space(space.spaces[bad[0]], f"{name}[{bad[0]!r}]")
            except TypeError as e:
                raise TypeError(
                    f"{e}; rlstm cannot encode that part: leave it out with the setting "
                    f"obs_keys={keep!r} (e.g. PPO(env, obs_keys={keep!r}), or --set "
                    f"obs_keys={','.join(map(str, keep))} on the command line)") from None
    if not isinstance(space, SUPPORTED):
        raise TypeError(f"{name} must be a gymnasium.spaces Box, Discrete, MultiDiscrete, "
                        f"MultiBinary, Tuple or Dict (nested), got {type(space).__name__}")
    if isinstance(space, spaces.Tuple):
        for k, s in enumerate(space.spaces):
            check_space(s, f"{name}[{k}]")
    elif isinstance(space, spaces.Dict):
        for k, s in space.spaces.items():
            check_space(s, f"{name}[{k!r}]")
    elif isinstance(space, spaces.Box):
        if space.dtype.kind not in "fiu":
            raise TypeError(f"{name}: Box dtype must be numeric, got {space.dtype}")
    if isinstance(space, (spaces.Box, spaces.MultiBinary, spaces.MultiDiscrete)) and \
            int(np.prod(space.shape)) == 0:
        raise ValueError(f"{name} has no elements (shape {space.shape})")


def select_keys(space, keys, name: str = "obs_keys"):
    """The ``Dict`` observation space made of ``keys`` of ``space`` (in the space's order;
    its ``action_mask`` is kept as well when it has one). A ``ValueError`` names a key the
    space lacks; a ``TypeError`` a space that is not a ``Dict``."""
    if not isinstance(space, spaces.Dict):
        raise TypeError(f"{name} selects parts of a Dict observation; this env's observation "
                        f"space is a {type(space).__name__}")
    keys = list(keys)
    missing = [k for k in keys if k not in space.spaces]
    if missing:
        raise ValueError(f"{name}: the observation has no part {missing[0]!r}; its parts are "
                         f"{list(space.spaces)}")
    if not keys:
        raise ValueError(f"{name} must name at least one part of {list(space.spaces)}")
    return spaces.Dict([(k, s) for k, s in space.spaces.items()
                        if k in keys or k == MASK_KEY])


def is_image(space) -> bool:
    return isinstance(space, spaces.Box) and space.dtype == np.uint8 and len(space.shape) == 3


def flat_dim(space, top: bool = True) -> int:
    """Number of encoded columns for ``space`` (the top-level Dict's ``action_mask`` excluded)."""
    if isinstance(space, spaces.Box):
        return int(np.prod(space.shape))
    if isinstance(space, spaces.Discrete):
        return int(space.n)
    if isinstance(space, spaces.MultiDiscrete):
        return int(np.sum(space.nvec))
    if isinstance(space, spaces.MultiBinary):
        return int(np.prod(space.shape))
    if isinstance(space, spaces.Tuple):
        return sum(flat_dim(s, top=False) for s in space.spaces)
    if isinstance(space, spaces.Dict):
        return sum(flat_dim(s, top=False) for k, s in space.spaces.items() if k != MASK_KEY) \
            if top \
            else sum(flat_dim(s, top=False) for s in space.spaces.values())
    raise TypeError(f"unsupported space {type(space).__name__}")


def _lead_array(x, space, lead: tuple, name: str) -> np.ndarray:
    arr = np.asarray(x)
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{name} must be numeric, got dtype {arr.dtype}")
    shape = lead + tuple(space.shape)
    if arr.shape != shape:
        raise ValueError(f"{name} must have shape {shape} (leading {lead} then the space's "
                         f"{tuple(space.shape)}), got {arr.shape}")
    return arr


def _one_hot(idx: np.ndarray, nvec: np.ndarray, block: np.ndarray, error) -> None:
    """Write the one-hot encoding of ``idx`` ``(N, K)`` into ``block`` ``(N, sum(nvec))``
    (zeroed, written in place): entry ``k`` takes the values ``0..nvec[k] - 1`` and sets one of
    the ``nvec[k]`` columns of its block, the blocks in entry order. A value out of range
    raises ``ValueError(error(k, value))`` for the first such entry."""
    bad = (idx < 0) | (idx >= nvec)
    if bad.any():
        k = int(np.flatnonzero(bad.any(axis=0))[0])
        raise ValueError(error(k, int(idx[bad[:, k], k][0])))
    block[np.arange(idx.shape[0])[:, None], idx + (np.cumsum(nvec) - nvec)] = 1


def _one_hot_codes(arr: np.ndarray, codes: tuple, block: np.ndarray, name: str) -> None:
    """The code images ``arr`` (leading dims, then ``(H, W, C)``) one-hot into ``block``
    ``(N, H * W * sum(codes))``: each pixel's ``C`` channels are entries of :func:`_one_hot`,
    channel ``c`` taking ``codes[c]`` values."""
    C, N = len(codes), block.shape[0]
    if arr.dtype.kind == "f" and arr.size and not (
            np.isfinite(arr).all() and (arr == np.floor(arr)).all()):
        raise ValueError(f"{name} must hold integer codes (image_codes), got non-integer "
                         f"values")
    idx = arr.reshape(N, -1).astype(np.int64)
    _one_hot(idx, np.tile(np.asarray(codes, dtype=np.int64), idx.shape[1] // C), block,
             lambda k, v: f"{name} holds the code {v} in channel {k % C}, outside "
                          f"0..{codes[k % C] - 1} (image_codes={list(codes)})")


def _encode_leaf(sub, x, lead: tuple, N: int, d: int, block: np.ndarray, name: str,
                 image_scale: float | None = 255.0, image_codes: tuple | None = None) -> None:
    """Write the encoding of one leaf ``x`` (leading ``lead``) into ``block`` (N, d), zeroed."""
    if isinstance(sub, spaces.Box):
        if is_image(sub) and image_codes is not None:
            _one_hot_codes(_lead_array(x, sub, lead, name), image_codes, block, name)
            return
        arr = _lead_array(x, sub, lead, name).reshape(N, d)
        if arr.dtype.kind == "f" and arr.size and not np.isfinite(arr).all():
            raise ValueError(f"{name} contains NaN or inf")
        if is_image(sub) and image_scale is not None:
            np.multiply(arr, 1.0 / image_scale, out=block, casting="unsafe")
        else:
            block[...] = arr
    elif isinstance(sub, spaces.Discrete):
        arr = _lead_array(x, sub, lead, name)
        if arr.dtype.kind == "f":
            raise TypeError(f"{name} must hold integers for a Discrete space")
        n = int(sub.n)
        _one_hot(arr.reshape(N, 1).astype(np.int64) - int(sub.start), np.array([n]), block,
                 lambda k, v: f"{name} holds values outside the space (0..{n - 1} after start)")
    elif isinstance(sub, spaces.MultiDiscrete):
        arr = _lead_array(x, sub, lead, name)
        if arr.dtype.kind == "f":
            raise TypeError(f"{name} must hold integers for a MultiDiscrete space")
        arr = arr.reshape(N, -1).astype(np.int64) - np.asarray(
            getattr(sub, "start", 0)).reshape(-1) * np.ones(1, np.int64)
        nvec = np.asarray(sub.nvec, dtype=np.int64).reshape(-1)
        _one_hot(arr, nvec, block, lambda k, v: f"{name}[..., {k}] holds values outside the "
                                                f"space (0..{nvec[k] - 1} after start)")
    else:  # MultiBinary
        block[...] = _lead_array(x, sub, lead, name).reshape(N, d) != 0


def leaf_paths(space, skip_mask: bool = True, path: tuple = ()):
    """``[(path, leaf_space), ...]`` in order; a path holds Dict keys / Tuple indices.

    With ``skip_mask``, the top-level Dict's ``action_mask`` entry is left out (it is the
    action mask, not an observation; an ``action_mask`` key deeper down is an ordinary part).
    """
    if isinstance(space, spaces.Tuple):
        return [x for k, s in enumerate(space.spaces)
                for x in leaf_paths(s, False, path + (k,))]
    if isinstance(space, spaces.Dict):
        return [x for k, s in space.spaces.items() if not (skip_mask and k == MASK_KEY)
                for x in leaf_paths(s, False, path + (k,))]
    return [(path, space)]


class Encoder:
    """The encoding plan of a space, computed once: ``encoder(obs, lead) -> (N, dim)``.

    ``image_codes`` (see :func:`check_image_codes`): the image parts hold codes, one-hot
    encoded per channel; every image part must have ``len(image_codes)`` channels."""

    def __init__(self, space, dtype, image_scale: float | None = 255.0, image_codes=None):
        check_space(space, "observation_space")
        self.space, self.dtype = space, np.dtype(dtype)
        self.image_scale = check_image_scale(image_scale)
        self.image_codes = check_image_codes(image_codes)
        self.leaves = []
        col = 0
        images = 0
        for path, sub in leaf_paths(space):
            d = flat_dim(sub)
            if is_image(sub) and self.image_codes is not None:
                where = "observation" + "".join(f"[{k!r}]" for k in path)
                if sub.shape[-1] != len(self.image_codes):
                    raise ValueError(
                        f"image_codes gives {len(self.image_codes)} channels "
                        f"({list(self.image_codes)}) but the image {where} has "
                        f"{sub.shape[-1]} (shape {sub.shape}): one number of codes per channel")
            d = encoded_dim(sub, self.image_codes)
            images += is_image(sub)
            # the container spaces along the path, to check the observation's structure
            containers, node = [], space
            for key in path:
                containers.append(node)
                node = node.spaces[key]
            self.leaves.append((path, containers, sub, col, d))
            col += d
        self.dim = col
        if self.image_codes is not None and not images:
            raise ValueError("image_codes describes image parts, but the observation space has "
                             "none (an image is a uint8 Box of 3 dims, channel-last)")

    def __call__(self, obs, lead: tuple, name: str = "obs") -> np.ndarray:
        N = math.prod(lead)
        out = np.zeros((N, self.dim), dtype=self.dtype)
        for path, containers, sub, col, d in self.leaves:
            x, sub_name = obs, name
            for key, node in zip(path, containers):
                x = _child(node, x, key, sub_name)
                sub_name = f"{sub_name}[{key!r}]"
            _encode_leaf(sub, x, lead, N, d, out[:, col:col + d], sub_name, self.image_scale,
                         self.image_codes)
        return out


def _child(node, x, key, name):
    if isinstance(node, spaces.Dict):
        if not isinstance(x, dict):
            raise TypeError(f"{name} must be a dict with keys {list(node.spaces)} for a Dict "
                            f"space, got {type(x).__name__}")
        if key not in x:
            raise ValueError(f"{name} is missing the key {key!r}")
        return x[key]
    if not isinstance(x, (tuple, list)) or len(x) != len(node.spaces):
        raise TypeError(f"{name} must be a tuple of {len(node.spaces)} arrays for a Tuple "
                        f"space, got {type(x).__name__}")
    return x[key]


def encode(space, obs, lead: tuple, dtype, name: str = "obs",
           image_scale: float | None = 255.0, image_codes=None) -> np.ndarray:
    """Encode a batch with leading shape ``lead`` into ``(prod(lead), D)`` (``D`` is
    ``flat_dim(space)`` without ``image_codes``)."""
    return Encoder(space, dtype, image_scale, image_codes)(obs, lead, name)


def check_image_codes(image_codes) -> tuple[int, ...] | None:
    """``image_codes``: None, or one whole number >= 1 per image channel (the number of codes
    that channel holds, e.g. ``[11, 6, 3]`` for MiniGrid's object, colour and state)."""
    if image_codes is None:
        return None
    if isinstance(image_codes, (str, bytes)) or not hasattr(image_codes, "__iter__"):
        raise TypeError(f"image_codes must be a list of whole numbers (codes per image "
                        f"channel, e.g. [11, 6, 3] for MiniGrid) or None, got {image_codes!r}")
    codes = list(image_codes)
    if not codes:
        raise ValueError("image_codes must give at least one channel's number of codes")
    for c in codes:
        if isinstance(c, (bool, np.bool_)) or not isinstance(c, (int, np.integer)):
            raise TypeError(f"image_codes must hold whole numbers, got {c!r} in {codes!r}")
        if not 1 <= c <= 256:
            raise ValueError(f"image_codes entries must be 1..256 (a uint8 channel holds at "
                             f"most 256 codes), got {c} in {codes!r}")
    return tuple(int(c) for c in codes)


def image_channels(sub, image_codes) -> int:
    """Channels of the image part ``sub`` as the policy encodes it."""
    return sub.shape[-1] if image_codes is None else sum(image_codes)


def encoded_dim(sub, image_codes=None) -> int:
    """Columns the leaf ``sub`` takes in the encoding: :func:`flat_dim`, except for an image
    of codes (``image_codes``), whose pixels take ``sum(image_codes)`` columns each."""
    if is_image(sub) and image_codes is not None:
        return int(np.prod(sub.shape[:-1])) * image_channels(sub, image_codes)
    return flat_dim(sub)


def check_image_scale(image_scale) -> float | None:
    """``image_scale``: None, or a finite number > 0 (what image values are divided by)."""
    if image_scale is None:
        return None
    if isinstance(image_scale, (bool, np.bool_)) or not isinstance(
            image_scale, (int, float, np.integer, np.floating)):
        raise TypeError(f"image_scale must be a number > 0 or None, got {image_scale!r}")
    if not (np.isfinite(image_scale) and image_scale > 0):
        raise ValueError(f"image_scale must be a finite number > 0 or None, got "
                         f"{image_scale!r}")
    return float(image_scale)


def split_mask(space, obs):
    """The ``action_mask`` entry of a Dict observation (top level), or None."""
    if isinstance(space, spaces.Dict) and MASK_KEY in space.spaces and isinstance(obs, dict):
        return obs.get(MASK_KEY)
    return None


# ---------------------------------------------------------------------------- JSON
def _arr_json(a: np.ndarray):
    a = np.asarray(a)
    if a.size and (a == a.flat[0]).all():
        v = a.flat[0].item()
        return {"fill": v if np.isfinite(v) else str(v)}
    return {"values": [v if np.isfinite(v) else str(v) for v in a.reshape(-1).tolist()]}


def _arr_from_json(d, shape, dtype) -> np.ndarray:
    if "fill" in d:
        return np.full(shape, float(d["fill"]), dtype=np.float64).astype(dtype)
    vals = np.array([float(v) for v in d["values"]], dtype=np.float64)
    return vals.reshape(shape).astype(dtype)


def space_to_json(space) -> dict:
    """A JSON-able description of a supported space (bounds, shapes, dtypes, nesting)."""
    if isinstance(space, spaces.Box):
        return {"type": "Box", "shape": list(space.shape), "dtype": space.dtype.str,
                "low": _arr_json(space.low), "high": _arr_json(space.high)}
    if isinstance(space, spaces.Discrete):
        return {"type": "Discrete", "n": int(space.n), "start": int(space.start)}
    if isinstance(space, spaces.MultiDiscrete):
        return {"type": "MultiDiscrete", "nvec": np.asarray(space.nvec).tolist(),
                "start": np.asarray(getattr(space, "start", 0)).tolist()}
    if isinstance(space, spaces.MultiBinary):
        return {"type": "MultiBinary", "n": np.asarray(space.n).tolist()}
    if isinstance(space, spaces.Tuple):
        return {"type": "Tuple", "spaces": [space_to_json(s) for s in space.spaces]}
    if isinstance(space, spaces.Dict):
        return {"type": "Dict", "keys": list(space.spaces),
                "spaces": [space_to_json(s) for s in space.spaces.values()]}
    raise TypeError(f"cannot save a space of type {type(space).__name__}")


def space_from_json(d, depth: int = 0):
    """Inverse of :func:`space_to_json`; anything malformed is a ``ValueError``."""
    if depth > 32:
        raise ValueError("malformed space description: nested more than 32 levels deep")
    try:
        t = d["type"]
        if t == "Box":
            shape = tuple(int(s) for s in d["shape"])
            dtype = np.dtype(str(d["dtype"]))
            if dtype.kind not in "fiu" or len(shape) > 8 or any(s < 0 for s in shape) or \
                    int(np.prod(shape)) > 10 ** 7:
                raise ValueError("bad Box")
            return spaces.Box(_arr_from_json(d["low"], shape, np.float64).astype(dtype),
                              _arr_from_json(d["high"], shape, np.float64).astype(dtype),
                              shape=shape, dtype=dtype)
        if t == "Discrete":
            return spaces.Discrete(int(d["n"]), start=int(d["start"]))
        if t == "MultiDiscrete":
            return spaces.MultiDiscrete(np.asarray(d["nvec"], dtype=np.int64),
                                        start=np.asarray(d["start"], dtype=np.int64))
        if t == "MultiBinary":
            n = d["n"]
            return spaces.MultiBinary(int(n) if isinstance(n, int) else [int(v) for v in n])
        if t == "Tuple":
            return spaces.Tuple([space_from_json(s, depth + 1) for s in d["spaces"]])
        if t == "Dict":
            keys = [str(k) for k in d["keys"]]
            # a list of pairs keeps the saved order (a plain dict would be sorted by gymnasium)
            return spaces.Dict([(k, space_from_json(s, depth + 1))
                                for k, s in zip(keys, d["spaces"], strict=True)])
    except ValueError as e:
        if str(e).startswith("malformed space description"):
            raise  # from a nested part: already says what is wrong
        raise ValueError(f"malformed space description: {e}") from e
    except (KeyError, TypeError, OverflowError, AssertionError) as e:
        raise ValueError(f"malformed space description: {e}") from e
    raise ValueError(f"malformed space description: unknown type {d.get('type')!r}"
                     if isinstance(d, dict) else "malformed space description")
