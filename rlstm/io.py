"""Save and load any rlstm module or policy: ``rlstm.save(obj, path)``, ``rlstm.load(path)``.

Built on :mod:`rlstm.serialization` (``.npz`` read with ``allow_pickle=False`` + a JSON header,
written atomically, versioned). The header holds the class name (``kind``), the constructor
arguments and, for a policy, the observation and action spaces as JSON; the archive holds one
array, ``flat_params``. Loading rebuilds the object from that description only: nothing in the
file is executed, and a file that is truncated, tampered with, of another version or not an
rlstm model raises ``ValueError``.
"""
from __future__ import annotations

import os
import struct
from typing import Any, Callable

import numpy as np

from .layers import MLP, Conv2d, Linear
from .lstm import LSTM
from .module import Module
from .serialization import load_arrays, save_arrays

__all__ = ["save", "load", "register"]


def _lstm_config(m) -> dict:
    return {"input_size": m.input_size, "hidden_size": m.hidden_size,
            "num_layers": m.num_layers, "bidirectional": m.bidirectional,
            "variant": m.variant, "cell_activation": m.cell_activation, "dtype": m.dtype.name,
            "forget_bias": m.forget_bias}


def _need(ok: bool, what: str) -> None:
    """Reject sizes the saved parameter vector cannot hold (before allocating anything)."""
    if not ok:
        raise ValueError(f"sizes in the header do not fit the saved parameters ({what})")


def _ints_at_most(obj, limit: int) -> None:
    if isinstance(obj, dict):
        for v in obj.values():
            _ints_at_most(v, limit)
    elif isinstance(obj, list):
        for v in obj:
            _ints_at_most(v, limit)
    elif isinstance(obj, int) and not isinstance(obj, bool):
        _need(obj <= limit, f"{obj} > {limit}")


def _check_recurrent(c: dict, d_in: int, size: int) -> None:
    H, L = int(c["hidden_size"]), int(c["num_layers"])
    _need(3 * H * (d_in + H) * L <= size, "recurrent layer too large")


def _lstm_build(c: dict, size: int):
    _check_recurrent(c, int(c["input_size"]), size)
    return LSTM(c["input_size"], c["hidden_size"], c["num_layers"],
                bidirectional=c["bidirectional"], variant=c["variant"],
                cell_activation=c["cell_activation"], dtype=c["dtype"],
                forget_bias=c.get("forget_bias", 0.0))


def _gru_config(m) -> dict:
    return {"input_size": m.input_size, "hidden_size": m.hidden_size,
            "num_layers": m.num_layers, "bidirectional": m.bidirectional, "dtype": m.dtype.name}


def _gru_build(c: dict, size: int):
    _check_recurrent(c, int(c["input_size"]), size)
    import rlstm
    if not hasattr(rlstm, "GRU"):
        raise ValueError("this file holds a GRU, which this version of rlstm does not have")
    return rlstm.GRU(c["input_size"], c["hidden_size"], c["num_layers"],
                     bidirectional=c["bidirectional"], dtype=c["dtype"])


def _policy_config(m) -> dict:
    from .policy.spaces import space_to_json
    return {**m.config(), "observation_space": space_to_json(m.observation_space),
            "action_space": space_to_json(m.action_space)}


def _policy_build(c: dict, size: int):
    from .policy import LSTMPolicy
    from .policy.spaces import flat_dim, space_from_json
    c = dict(c)
    obs = space_from_json(c.pop("observation_space"))
    act = space_from_json(c.pop("action_space"))
    d_in = flat_dim(obs)
    for h in c.get("mlp_hidden") or []:
        _need(d_in * int(h) <= size, "encoder too large")
        d_in = int(h)
    _check_recurrent(c, d_in, size)
    return LSTMPolicy(obs, act, c.pop("hidden_size"), c.pop("num_layers"), c.pop("dtype"),
                      **c)


def _seq_config(m) -> dict:
    return m.config()


def _seq_build(c: dict, size: int):
    _check_recurrent(c, int(c["input_size"]), size)
    from .train import SequenceModel
    return SequenceModel(**c)


def _linear_config(m) -> dict:
    return {"in_features": m.in_features, "out_features": m.out_features,
            "dtype": m.dtype.name}


def _linear_build(c: dict, size: int):
    _need(int(c["in_features"]) * int(c["out_features"]) <= size, "Linear too large")
    return Linear(c["in_features"], c["out_features"], dtype=c["dtype"])


def _mlp_config(m) -> dict:
    return {"in_features": m.in_features, "hidden": list(m.hidden),
            "activation": m.activation, "dtype": m.dtype.name}


def _mlp_build(c: dict, size: int):
    sizes = [int(c["in_features"])] + [int(h) for h in c["hidden"]]
    _need(sum(a * b for a, b in zip(sizes[:-1], sizes[1:])) <= size, "MLP too large")
    return MLP(c["in_features"], c["hidden"], activation=c["activation"], dtype=c["dtype"])


def _conv_config(m) -> dict:
    return {"in_channels": m.in_channels, "out_channels": m.out_channels,
            "kernel_size": m.kernel_size, "stride": m.stride, "dtype": m.dtype.name}


def _conv_build(c: dict, size: int):
    _need(int(c["in_channels"]) * int(c["out_channels"]) * int(c["kernel_size"]) ** 2 <= size,
          "Conv2d too large")
    return Conv2d(c["in_channels"], c["out_channels"], c["kernel_size"], c["stride"],
                  dtype=c["dtype"])


# kind -> (config getter, builder(config, saved parameter count))
_REGISTRY: dict[str, tuple[Callable[[Any], dict], Callable[[dict, int], Module]]] = {
    "LSTM": (_lstm_config, _lstm_build),
    "GRU": (_gru_config, _gru_build),
    "Linear": (_linear_config, _linear_build),
    "MLP": (_mlp_config, _mlp_build),
    "Conv2d": (_conv_config, _conv_build),
    "LSTMPolicy": (_policy_config, _policy_build),
    "SequenceModel": (_seq_config, _seq_build),
}


def register(kind: str, config: Callable[[Any], dict],
             build: Callable[[dict, int], Module]) -> None:
    """Make the class named ``kind`` saveable: ``config(obj)`` returns its JSON-able
    constructor arguments, ``build(config, num_saved_params)`` rebuilds it (and should refuse
    sizes the saved parameter count cannot hold, before allocating). Only registered kinds are
    ever constructed by :func:`load`."""
    if not isinstance(kind, str) or not kind or not callable(config) or not callable(build):
        raise TypeError("register(kind: str, config: callable, build: callable)")
    _REGISTRY[kind] = (config, build)


def save(obj: Module, path: str | os.PathLike) -> None:
    """Write ``obj`` (an rlstm LSTM/GRU/Linear/MLP/SequenceModel or LSTMPolicy) to ``path``."""
    kind = type(obj).__name__
    if kind not in _REGISTRY or not isinstance(obj, Module):
        raise TypeError(f"rlstm.save takes an rlstm module or policy ({sorted(_REGISTRY)}), "
                        f"got {kind}")
    config = _REGISTRY[kind][0](obj)
    save_arrays(path, {"flat_params": obj.flat_params}, kind=kind,
                meta={"config": config, "num_params": int(obj.flat_params.size),
                      "dtype": obj.flat_params.dtype.name})


def load(path: str | os.PathLike, kind: str | tuple[str, ...] | None = None) -> Module:
    """Rebuild the module saved at ``path`` (optionally requiring its ``kind``)."""
    try:
        arrays, header = load_arrays(path, kind or tuple(_REGISTRY))
    except (NotImplementedError, OverflowError, UnicodeDecodeError, struct.error) as e:
        # a damaged zip directory can make zipfile raise these (e.g. "compression method")
        raise ValueError(f"{path} is not a readable rlstm file: {e}") from e
    kind = header["kind"]
    config = header.get("config")
    if not isinstance(config, dict):
        raise ValueError(f"{path} has no constructor arguments in its header")
    if set(arrays) != {"flat_params"}:
        raise ValueError(f"{path} must hold exactly one array 'flat_params', got {sorted(arrays)}")
    flat = arrays["flat_params"]
    try:
        _ints_at_most({k: v for k, v in config.items() if not k.endswith("_space")},
                      max(int(flat.size), 1))
        obj = _REGISTRY[kind][1](config, int(flat.size))
    except (TypeError, ValueError, KeyError, OverflowError, MemoryError) as e:
        raise ValueError(f"{path} has invalid constructor arguments for {kind}: {e}") from e
    if flat.shape != obj.flat_params.shape or flat.dtype != obj.flat_params.dtype:
        raise ValueError(f"{path}: parameters are {flat.dtype}{list(flat.shape)}, the "
                         f"{kind} described needs {obj.flat_params.dtype}"
                         f"{list(obj.flat_params.shape)}")
    if not np.isfinite(flat).all():
        raise ValueError(f"{path}: parameters contain NaN or inf")
    obj.flat_params[...] = flat
    return obj
