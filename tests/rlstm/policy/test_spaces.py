"""rlstm.policy.spaces: the encoding of every space (one-hot with start, blocks, images / 255,
Dict order without action_mask), tree_map, and spaces to/from JSON."""
import json
from collections import OrderedDict

import numpy as np
import pytest
from gymnasium import spaces

from rlstm.policy.spaces import (MASK_KEY, check_space, encode, flat_dim, space_from_json,
                                 space_to_json, split_mask, tree_map)


def test_discrete_is_one_hot_of_obs_minus_start():
    out = encode(spaces.Discrete(4, start=-1), np.array([-1, 2, 0]), (3,), np.float64)
    np.testing.assert_array_equal(out, np.eye(4)[[0, 3, 1]])
    assert out.dtype == np.float64
    with pytest.raises(ValueError, match=r"obs holds values outside the space \(0..3 after "
                                         r"start\)"):
        encode(spaces.Discrete(4, start=-1), np.array([3]), (1,), np.float64)
    with pytest.raises(ValueError, match="outside the space"):
        encode(spaces.Discrete(4, start=-1), np.array([-2]), (1,), np.float64)
    with pytest.raises(TypeError, match="obs must hold integers for a Discrete space"):
        encode(spaces.Discrete(4), np.array([1.0]), (1,), np.float64)


def test_multidiscrete_is_one_block_per_entry_with_start():
    space = spaces.MultiDiscrete([2, 3], start=[1, -1])
    out = encode(space, np.array([[1, -1], [2, 1]]), (2,), np.float32)
    np.testing.assert_array_equal(out, [[1, 0, 1, 0, 0], [0, 1, 0, 0, 1]])
    assert flat_dim(space) == 5 and out.dtype == np.float32
    grid = spaces.MultiDiscrete([[2, 3], [1, 2]])  # 2-D nvec: blocks in row-major order
    out = encode(grid, np.array([[[1, 2], [0, 1]]]), (1,), np.float64)
    np.testing.assert_array_equal(out, [[0, 1, 0, 0, 1, 1, 0, 1]])
    with pytest.raises(ValueError, match=r"obs\[\.\.\., 1\] holds values outside the space "
                                         r"\(0..2 after start\)"):
        encode(space, np.array([[1, 2]]), (1,), np.float64)


def test_images_are_scaled_by_1_over_255_and_other_boxes_are_not():
    image = spaces.Box(0, 255, (2, 2, 1), np.uint8)
    out = encode(image, np.array([[[[255], [51]], [[0], [102]]]], np.uint8), (1,), np.float32)
    np.testing.assert_allclose(out, [[1.0, 0.2, 0.0, 0.4]], rtol=1e-7)
    assert out.dtype == np.float32
    flat_uint8 = spaces.Box(0, 255, (2, 2), np.uint8)  # 2-D: not an image
    np.testing.assert_array_equal(encode(flat_uint8, np.full((1, 2, 2), 255, np.uint8), (1,),
                                         np.float32), [[255.0] * 4])
    float_3d = spaces.Box(0, 255, (1, 1, 2), np.float32)  # float: not an image
    np.testing.assert_array_equal(encode(float_3d, np.full((1, 1, 1, 2), 255.0), (1,),
                                         np.float32), [[255.0, 255.0]])


def test_box_and_multibinary_leaves():
    box = spaces.Box(-1, 1, (2, 3), np.float32)
    x = np.arange(12.0).reshape(2, 2, 3)
    np.testing.assert_array_equal(encode(box, x, (2,), np.float64), x.reshape(2, 6))
    with pytest.raises(ValueError, match=r"obs must have shape \(2, 2, 3\) \(leading \(2,\) "
                                         r"then the space's \(2, 3\)\), got \(2, 6\)"):
        encode(box, x.reshape(2, 6), (2,), np.float64)
    with pytest.raises(ValueError, match="obs contains NaN or inf"):
        encode(box, np.where(x > 10, np.inf, x), (2,), np.float64)
    with pytest.raises(TypeError, match="obs must be numeric"):
        encode(box, x.astype(str), (2,), np.float64)
    bits = encode(spaces.MultiBinary((2, 2)), np.array([[[0, 2], [1, 0]]], np.int8), (1,),
                  np.float32)
    np.testing.assert_array_equal(bits, [[0, 1, 1, 0]])


def test_leading_dims_become_rows_in_row_major_order():
    space = spaces.Tuple((spaces.Discrete(3), spaces.Box(-1, 1, (1,))))
    lead = (2, 3)  # (T, B)
    d = np.arange(6).reshape(lead) % 3
    b = np.arange(6.0).reshape(2, 3, 1) / 10
    out = encode(space, (d, b), lead, np.float64)
    assert out.shape == (6, 4)
    for t in range(2):
        for i in range(3):
            np.testing.assert_array_equal(out[t * 3 + i], np.r_[np.eye(3)[d[t, i]], b[t, i]])


def test_dict_parts_in_key_order_without_the_action_mask():
    space = spaces.Dict({"z": spaces.Box(-1, 1, (1,)), "a": spaces.Discrete(2),
                         MASK_KEY: spaces.MultiBinary(3)})
    assert list(space.spaces) == ["a", MASK_KEY, "z"]  # gymnasium sorts a plain dict's keys
    assert flat_dim(space) == 3
    obs = {"z": np.array([[0.5], [-0.5]]), "a": np.array([1, 0]),
           MASK_KEY: np.array([[1, 0, 1], [0, 1, 1]])}
    np.testing.assert_array_equal(encode(space, obs, (2,), np.float64),
                                  [[0, 1, 0.5], [1, 0, -0.5]])
    np.testing.assert_array_equal(split_mask(space, obs), obs[MASK_KEY])
    assert split_mask(space, (1, 2)) is None and split_mask(spaces.Discrete(2), obs) is None
    without_mask = {k: v for k, v in obs.items() if k != MASK_KEY}
    np.testing.assert_array_equal(encode(space, without_mask, (2,), np.float64),
                                  [[0, 1, 0.5], [1, 0, -0.5]])
    with pytest.raises(ValueError, match=r"obs is missing the key 'z'"):
        encode(space, {"a": obs["a"]}, (2,), np.float64)
    with pytest.raises(TypeError, match=r"obs must be a dict with keys \['a', 'action_mask', "
                                        r"'z'\] for a Dict space, got tuple"):
        encode(space, (obs["a"], obs["z"]), (2,), np.float64)


def test_nested_structure_errors_name_the_path():
    space = spaces.Dict({"inv": spaces.Tuple((spaces.Discrete(2), spaces.MultiBinary(2)))})
    with pytest.raises(TypeError, match=r"obs\['inv'\] must be a tuple of 2 arrays for a "
                                        r"Tuple space, got list"):
        encode(space, {"inv": [np.array([1])]}, (1,), np.float64)
    with pytest.raises(ValueError, match=r"obs\['inv'\]\[0\] holds values outside the space"):
        encode(space, {"inv": (np.array([2]), np.zeros((1, 2)))}, (1,), np.float64)


def test_tree_map_keeps_structure_and_zips_trees():
    a = {"x": (1, [2, 3]), "y": 4}
    b = {"x": (10, [20, 30]), "y": 40}
    out = tree_map(lambda u, v: u + v, a, b)
    assert out == {"x": (11, [22, 33]), "y": 44}
    assert type(out["x"]) is tuple and type(out["x"][1]) is list
    assert tree_map(np.shape, (np.zeros((2, 3)), {"k": np.zeros(4)})) == ((2, 3), {"k": (4,)})
    assert tree_map(lambda v: v * 2, 5) == 10


EVERY_SPACE = {
    "box_inf": spaces.Box(-np.inf, np.inf, (2, 3), np.float32),
    "box_mixed": spaces.Box(np.array([-1.0, 0.0]), np.array([1.0, np.inf]), dtype=np.float64),
    "box_image": spaces.Box(0, 255, (4, 4, 3), np.uint8),
    "box_int": spaces.Box(-5, 5, (2,), np.int64),
    "discrete": spaces.Discrete(5, start=-2),
    "multidiscrete": spaces.MultiDiscrete([3, 2]),
    "multidiscrete_2d_start": spaces.MultiDiscrete([[2, 3], [4, 5]], start=[[1, 0], [-1, 2]]),
    "multibinary": spaces.MultiBinary(4),
    "multibinary_2d": spaces.MultiBinary([2, 3]),
    "nested": spaces.Tuple((spaces.Discrete(2), spaces.Dict({
        "x": spaces.MultiBinary(2),
        "y": spaces.Tuple((spaces.Box(-1, 1, (1,), np.float32), spaces.Discrete(3, start=1))),
        MASK_KEY: spaces.MultiBinary(2)}))),
}


@pytest.mark.parametrize("name", EVERY_SPACE)
def test_json_round_trip(name):
    space = EVERY_SPACE[name]
    text = json.dumps(space_to_json(space), allow_nan=False)  # strict JSON: inf as a string
    back = space_from_json(json.loads(text))
    assert back == space and type(back) is type(space)
    if isinstance(space, spaces.Box):
        assert back.dtype == space.dtype and back.shape == space.shape
        np.testing.assert_array_equal(back.low, space.low)
        np.testing.assert_array_equal(back.high, space.high)
    if isinstance(space, spaces.MultiDiscrete):
        np.testing.assert_array_equal(back.start, space.start)
    assert flat_dim(back) == flat_dim(space)


def test_json_round_trip_keeps_the_order_of_dict_keys():
    space = spaces.Dict(OrderedDict([("b", spaces.Box(-1, 1, (1,))),
                                     ("a", spaces.Box(-1, 1, (2,)))]))
    assert list(space.spaces) == ["b", "a"]
    assert list(space_from_json(space_to_json(space)).spaces) == ["b", "a"]


def _deep(levels):
    d = {"type": "Discrete", "n": 2, "start": 0}
    for _ in range(levels):
        d = {"type": "Tuple", "spaces": [d]}
    return d


@pytest.mark.parametrize("description,match", [
    ({"type": "Text", "max_length": 3}, "unknown type 'Text'"),
    ([1, 2], "malformed space description"),
    (None, "malformed space description"),
    ("Box", "malformed space description"),
    ({"type": "Box", "dtype": "<f4"}, "'shape'"),
    ({"type": "Box", "shape": [2], "dtype": "bool", "low": {"fill": 0}, "high": {"fill": 1}},
     "bad Box"),
    ({"type": "Box", "shape": [10 ** 4, 10 ** 4], "dtype": "<f4", "low": {"fill": 0},
      "high": {"fill": 1}}, "bad Box"),
    ({"type": "Box", "shape": [-1], "dtype": "<f4", "low": {"fill": 0}, "high": {"fill": 1}},
     "bad Box"),
    ({"type": "Box", "shape": [2], "dtype": "<f4", "low": {"values": [0]},
      "high": {"fill": 1}}, "malformed"),
    ({"type": "Dict", "keys": ["a", "b"], "spaces": [{"type": "Discrete", "n": 2,
                                                      "start": 0}]}, "malformed"),
    ({"type": "Discrete", "n": 0, "start": 0}, "malformed"),
    (_deep(40), "nested more than 32 levels deep"),
])
def test_from_json_refuses_what_it_cannot_rebuild(description, match):
    with pytest.raises(ValueError, match=match):
        space_from_json(description)


def test_from_json_takes_nesting_up_to_its_limit():
    space = space_from_json(_deep(32))
    for _ in range(32):
        space = space.spaces[0]
    assert space == spaces.Discrete(2)


def test_unsupported_spaces_are_refused_with_their_path():
    with pytest.raises(TypeError, match="cannot save a space of type Text"):
        space_to_json(spaces.Text(3))
    bad = spaces.Dict({"a": spaces.Tuple((spaces.Discrete(2), spaces.Text(3)))})
    with pytest.raises(TypeError, match=r"observation_space\['a'\]\[1\] must be a gymnasium."
                                        r"spaces Box, .* got Text"):
        check_space(bad, "observation_space")
    with pytest.raises(ValueError, match=r"o has no elements \(shape \(0,\)\)"):
        check_space(spaces.Box(0, 1, (0,)), "o")
    check_space(EVERY_SPACE["nested"], "o")  # every supported kind, nested
