"""The flat observation and action vectors of exported policies (rlstm.export.layout)."""
from __future__ import annotations

import numpy as np
import pytest
from gymnasium import spaces

from rlstm.export.layout import (categories, flatten_action, flatten_observation, input_parts,
                                 output_parts, unflatten_action)

OBS = spaces.Dict({
    "pos": spaces.Box(-1.0, 1.0, (2, 2), np.float32),
    "mode": spaces.Discrete(4, start=2),
    "nested": spaces.Dict({"action_mask": spaces.MultiBinary(2),
                           "grid": spaces.MultiDiscrete([2, 3])}),
    "action_mask": spaces.MultiBinary(3),
    "img": spaces.Box(0, 255, (2, 2, 3), np.uint8),
})


def test_input_parts_follow_the_space_order_with_one_number_per_discrete_value():
    parts = input_parts(OBS)  # Gymnasium keeps a Dict's keys sorted
    assert [(p.path, p.start, p.size, p.kind) for p in parts] == [
        (("action_mask",), 0, 3, "mask"),
        (("img",), 3, 12, "image"),
        (("mode",), 15, 1, "discrete"),
        (("nested", "action_mask"), 16, 2, "unused"),   # only the top-level key is the mask
        (("nested", "grid"), 18, 2, "multidiscrete"),
        (("pos",), 20, 4, "box"),
    ]
    assert "obs['nested']['grid']" in parts[4].describe("obs")


def test_output_parts_of_a_tuple_action():
    act = spaces.Tuple((spaces.Discrete(3, start=-1),
                        spaces.Dict({"b": spaces.MultiBinary([2, 2]),
                                     "a": spaces.Box(-1, 1, (3,), np.float32)}),
                        spaces.MultiDiscrete([2, 2])))
    assert [(p.path, p.start, p.size, p.kind) for p in output_parts(act)] == [
        ((0,), 0, 1, "discrete"), ((1, "a"), 1, 3, "box"), ((1, "b"), 4, 4, "multibinary"),
        ((2,), 8, 2, "multidiscrete")]


def test_categories():
    n, start = categories(spaces.Discrete(5, start=-2))
    assert n.tolist() == [5] and start.tolist() == [-2]
    n, start = categories(spaces.MultiDiscrete([[2, 3], [4, 5]], start=[[0, 1], [2, 3]]))
    assert n.tolist() == [2, 3, 4, 5] and start.tolist() == [0, 1, 2, 3]


def _obs(rng, lead=()):
    return {"pos": rng.uniform(-1, 1, lead + (2, 2)).astype(np.float32),
            "mode": rng.integers(2, 6, lead),
            "nested": {"action_mask": rng.integers(0, 2, lead + (2,)),
                       "grid": rng.integers(0, 2, lead + (2,))},
            "action_mask": rng.integers(0, 2, lead + (3,)),
            "img": rng.integers(0, 256, lead + (2, 2, 3)).astype(np.uint8)}


def test_flatten_observation_single_and_batch(rng):
    one = _obs(rng)
    flat = flatten_observation(OBS, one)
    assert flat.shape == (24,) and flat.dtype == np.float32
    np.testing.assert_array_equal(flat[20:24], one["pos"].reshape(-1))
    assert flat[15] == one["mode"]                      # the value itself, not one-hot
    np.testing.assert_array_equal(flat[18:20], one["nested"]["grid"])
    np.testing.assert_array_equal(flat[3:15], one["img"].reshape(-1))  # raw pixels, HWC
    batch = _obs(rng, (3,))
    flat = flatten_observation(OBS, batch)
    assert flat.shape == (3, 24)
    np.testing.assert_array_equal(flat[1, 0:3], batch["action_mask"][1])


def test_flatten_observation_names_the_bad_leaf(rng):
    obs = _obs(rng)
    obs["pos"] = np.zeros(3, np.float32)
    with pytest.raises(ValueError, match=r"obs\['pos'\] must have shape \(2, 2\)"):
        flatten_observation(OBS, obs)
    obs = _obs(rng)
    del obs["nested"]["grid"]
    with pytest.raises(ValueError, match="missing the key 'grid'"):
        flatten_observation(OBS, obs)
    obs = _obs(rng)
    obs["mode"] = np.array("x")
    with pytest.raises(TypeError, match=r"obs\['mode'\] must hold numbers"):
        flatten_observation(OBS, obs)


ACT = spaces.Dict({"move": spaces.Discrete(3, start=-1),
                   "pick": spaces.MultiDiscrete([2, 4]),
                   "bits": spaces.MultiBinary(2),
                   "force": spaces.Box(-1.0, 1.0, (2,), np.float64)})


def test_unflatten_action_restores_structure_and_dtypes():
    flat = np.array([1, 0, 0.25, -0.5, -1, 1, 3], np.float32)  # bits, force, move, pick
    a = unflatten_action(ACT, flat)
    assert a["move"] == -1 and a["move"].dtype == np.int64 and a["move"].shape == ()
    assert a["pick"].tolist() == [1, 3] and a["pick"].dtype == np.int64
    assert a["bits"].tolist() == [1, 0] and a["bits"].dtype == np.int8
    assert a["force"].dtype == np.float64 and a["force"].tolist() == [0.25, -0.5]
    np.testing.assert_array_equal(flatten_action(ACT, a), flat)
    batch = unflatten_action(ACT, np.stack([flat, flat]))
    assert batch["pick"].shape == (2, 2)
    np.testing.assert_array_equal(flatten_action(ACT, batch), np.stack([flat, flat]))


def test_unflatten_action_of_a_single_leaf_space_is_the_leaf():
    assert unflatten_action(spaces.Discrete(2), np.array([1.0])) == 1
    assert unflatten_action(spaces.Discrete(2), np.array([[1.0], [0.0]])).tolist() == [1, 0]
    with pytest.raises(ValueError, match=r"shape \(1,\) or \(B, 1\)"):
        unflatten_action(spaces.Discrete(2), np.zeros(3))
