"""The trainer file: one format, one key convention, for every trainer.

A trainer file is an rlstm file (:mod:`rlstm.serialization`: pickle-free ``.npz`` + a JSON
header, written atomically) whose ``kind`` is the trainer's class name. Its header has three
sections and its arrays one prefix per section::

    header["trainer"]   algorithm, config, seed, env_id, spaces, num_timesteps, iterations,
                        and the algorithm's own JSON state under "algorithm_state"
    header["policy"]    rlstm.io.describe(policy): the policy's kind and constructor arguments
    header["obs_norm"]  ObsNormalizer.config(), or null

    policy/flat_params            the policy's parameters
    obs_norm/mean, /var, /count   the observation statistics (when normalising)
    trainer/rng, trainer/episode_returns, trainer/episode_lengths
    algo/...                      the algorithm's own arrays (optimizer moments, ES strategy,
                                  reward statistics), e.g. algo/optim/m

The ``policy`` and ``obs_norm`` sections are all that :class:`rlstm.policy.Predictor` needs,
so any trainer's file can be loaded to act, or exported, without the trainer.
"""
from __future__ import annotations

import os

import numpy as np

from rlstm.io import read as read_file
from rlstm.serialization import save_arrays

__all__ = ["write", "read", "rng_to_array", "rng_from_array"]


def rng_to_array(rng: np.random.Generator) -> np.ndarray:
    """A PCG64 generator's whole state as six uint64 numbers (for pickle-free files)."""
    st = rng.bit_generator.state
    if st["bit_generator"] != "PCG64":
        raise ValueError("only PCG64 generators can be checkpointed")
    s, inc = st["state"]["state"], st["state"]["inc"]
    mask = (1 << 64) - 1
    return np.array([s & mask, s >> 64, inc & mask, inc >> 64, st["has_uint32"],
                     st["uinteger"]], dtype=np.uint64)


def rng_from_array(a: np.ndarray) -> np.random.Generator:
    """Inverse of :func:`rng_to_array`."""
    a = np.asarray(a)
    if a.shape != (6,) or a.dtype.kind not in "iu":
        raise ValueError(f"a generator state must be 6 integers, got {a.dtype}{list(a.shape)}")
    v = [int(x) for x in a.astype(np.uint64)]
    rng = np.random.Generator(np.random.PCG64())
    rng.bit_generator.state = {"bit_generator": "PCG64",
                               "state": {"state": v[0] | (v[1] << 64), "inc": v[2] | (v[3] << 64)},
                               "has_uint32": v[4], "uinteger": v[5]}
    return rng


def write(path: str | os.PathLike, kind: str, arrays: dict, header: dict) -> None:
    """Write a trainer file (atomically: a reader sees the old file or the new one)."""
    save_arrays(path, arrays, kind=kind, meta=header)


def read(path: str | os.PathLike, kind: str) -> tuple[dict, dict]:
    """``(arrays, header)`` of the trainer file ``path`` holding a ``kind``; a ``ValueError``
    for any other file (a policy file, another trainer's, a damaged or foreign file)."""
    try:
        arrays, header = read_file(path, kind)
    except TypeError as e:  # e.g. a bare .npy file
        raise ValueError(f"{path} is not an rlstm {kind} file: {e}") from e
    for section in ("trainer", "policy"):
        if not isinstance(header.get(section), dict):
            raise ValueError(f"{path} is not a {kind} trainer file: its header has no "
                             f"{section!r} section")
    return arrays, header
