"""rlstm.policy.normalize: running statistics merge exactly, the normalisation formula and clip,
checked loading of saved statistics, and which spaces are normalised."""
import numpy as np
import pytest
from gymnasium import spaces

from rlstm.policy.normalize import ObsNormalizer, RunningMeanStd, normalizes


def test_batches_merge_into_the_statistics_of_the_concatenated_data():
    rng = np.random.default_rng(0)
    parts = [rng.normal(3.0, 2.0, (n, 2, 3)) for n in (1, 7, 50, 4)]
    data = np.concatenate(parts)
    a, b = RunningMeanStd((2, 3), epsilon=1e-4), RunningMeanStd((2, 3), epsilon=1e-4)
    for p in parts:
        a.update(p)
    a.update(np.zeros((0, 2, 3)))  # an empty batch changes nothing
    b.update(data)
    assert a.count == pytest.approx(b.count, rel=1e-15) and a.count == pytest.approx(62 + 1e-4)
    np.testing.assert_allclose(a.mean, b.mean, rtol=1e-12)
    np.testing.assert_allclose(a.var, b.var, rtol=1e-12)
    # the prior (mean 0, var 1, count epsilon) weighs 1e-4 / 62 of the result
    np.testing.assert_allclose(a.mean, data.mean(axis=0), rtol=1e-5)
    np.testing.assert_allclose(a.var, data.var(axis=0), rtol=1e-4)
    c = RunningMeanStd((2, 3), epsilon=1e-4)
    for p in parts:
        c.update_from_moments(p.mean(axis=0), p.var(axis=0), p.shape[0])
    np.testing.assert_allclose(c.mean, a.mean, rtol=1e-14)
    np.testing.assert_allclose(c.var, a.var, rtol=1e-14)


def test_normalize_formula_clip_and_dtype():
    norm = ObsNormalizer((2,), clip=3.0, epsilon=0.5)
    norm.rms.mean = np.array([1.0, -2.0])
    norm.rms.var = np.array([3.5, 0.0])
    np.testing.assert_array_equal(norm.std, [2.0, np.sqrt(0.5)])
    out = norm.normalize([[5.0, -2.0], [0.0, -1.0], [100.0, -100.0]], np.float32)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, [[2.0, 0.0], [-0.5, np.sqrt(2.0)], [3.0, -3.0]], rtol=1e-6)
    assert norm.normalize(np.zeros((1, 2))).dtype == np.float64
    assert norm.config() == {"shape": [2], "clip": 3.0, "epsilon": 0.5}
    assert ObsNormalizer((3,)).config() == {"shape": [3], "clip": 10.0, "epsilon": 1e-8}


@pytest.mark.parametrize("clip,epsilon", [(0.0, 1e-8), (-1.0, 1e-8), (float("nan"), 1e-8),
                                          (10.0, 0.0), (10.0, -1e-8)])
def test_normalizer_refuses_a_clip_or_epsilon_that_is_not_positive(clip, epsilon):
    with pytest.raises(ValueError, match="clip and epsilon must be > 0"):
        ObsNormalizer((2,), clip=clip, epsilon=epsilon)


def test_state_dict_round_trip_with_a_prefix():
    rng = np.random.default_rng(1)
    src = ObsNormalizer((3,))
    src.update(rng.normal(2.0, 3.0, (40, 3)))
    sd = src.state_dict("obs_norm/")
    assert sorted(sd) == ["obs_norm/count", "obs_norm/mean", "obs_norm/var"]
    assert sd["obs_norm/count"].shape == ()
    dst = ObsNormalizer((3,))
    dst.load_state_dict(sd, "obs_norm/")
    x = rng.normal(size=(5, 3))
    np.testing.assert_array_equal(dst.normalize(x), src.normalize(x))
    assert dst.rms.count == src.rms.count
    sd["obs_norm/mean"][...] = 0.0  # the state dict is a copy
    np.testing.assert_array_equal(dst.mean, src.mean)


def good_state():
    return {"mean": np.array([1.0, 2.0]), "var": np.array([0.5, 4.0]), "count": np.array(10.0)}


@pytest.mark.parametrize("change,match", [
    ({"mean": None}, r"missing the entry 'mean'"),
    ({"count": None}, r"missing the entry 'count'"),
    ({"mean": np.zeros(3)}, r"shapes \(3,\), \(2,\), \(\); expected \(2,\), \(2,\), \(\)"),
    ({"var": np.ones((2, 1))}, "shapes"),
    ({"count": np.array([10.0])}, "shapes"),
    ({"mean": np.array([np.nan, 0.0])}, "statistic mean must be finite numbers"),
    ({"var": np.array([np.inf, 1.0])}, "statistic var must be finite numbers"),
    ({"count": np.array(np.inf)}, "statistic count must be finite numbers"),
    ({"mean": np.array(["a", "b"])}, "statistic mean must be finite numbers"),
    ({"var": np.array([-1e-3, 1.0])}, "negative variance"),
    ({"count": np.array(0.0)}, r"count that is not > 0"),
    ({"count": np.array(-5)}, r"count that is not > 0"),
])
def test_load_state_dict_refuses_impossible_statistics_and_changes_nothing(change, match):
    norm = ObsNormalizer((2,))
    norm.load_state_dict(good_state())
    d = {k: v for k, v in {**good_state(), **change}.items() if v is not None}
    with pytest.raises(ValueError, match=match):
        norm.load_state_dict(d)
    np.testing.assert_array_equal(norm.mean, [1.0, 2.0])
    np.testing.assert_array_equal(norm.var, [0.5, 4.0])
    assert norm.rms.count == 10.0


def test_load_state_dict_accepts_integers_and_stores_float64():
    norm = ObsNormalizer((2,))
    norm.load_state_dict({"mean": np.array([1, 2]), "var": np.array([4, 9], np.int32),
                          "count": np.array(3)})
    assert norm.mean.dtype == norm.var.dtype == np.float64
    assert type(norm.rms.count) is float and norm.rms.count == 3.0
    np.testing.assert_allclose(norm.normalize([[3.0, 2.0]]), [[1.0, 0.0]], rtol=1e-8)


@pytest.mark.parametrize("space,expected", [
    (spaces.Box(-1, 1, (3,), np.float32), True),
    (spaces.Box(-1, 1, (2, 2), np.float64), True),
    (spaces.Box(0, 255, (4, 4, 3), np.uint8), False),
    (spaces.Box(-5, 5, (2,), np.int64), False),
    (spaces.Discrete(3), False),
    (spaces.MultiBinary(3), False),
    (spaces.Dict({"x": spaces.Box(-1, 1, (3,), np.float32)}), True),
    (spaces.Tuple([spaces.Discrete(2), spaces.Box(-1, 1, (3,), np.float64)]), True),
    (spaces.Dict({"img": spaces.Box(0, 255, (4, 4, 3), np.uint8), "d": spaces.Discrete(2),
                  "action_mask": spaces.Box(0, 1, (2,), np.float32)}), False),
])
def test_float_boxes_and_float_box_parts_are_normalised(space, expected):
    assert normalizes(space) is expected


def _tree_space():
    return spaces.Dict({
        "pos": spaces.Box(-1, 1, (2, 2), np.float32),
        "img": spaces.Box(0, 255, (3, 3, 1), np.uint8),
        "t": spaces.Tuple([spaces.Discrete(3), spaces.Box(-5, 5, (3,), np.float64)]),
        "action_mask": spaces.MultiBinary(2)})


def _tree_batch(rng, n=64):
    return {"pos": rng.normal(3.0, 2.0, (n, 2, 2)).astype(np.float32),
            "img": rng.integers(0, 256, (n, 3, 3, 1)).astype(np.uint8),
            "t": (rng.integers(0, 3, n), rng.normal(-1.0, 0.5, (n, 3))),
            "action_mask": np.ones((n, 2), np.int8),
            "mission": ["a text part the policy does not see"] * n}


def test_dict_and_tuple_parts_normalise_like_one_box_of_their_concatenation():
    rng = np.random.default_rng(0)
    norm = ObsNormalizer.for_space(_tree_space(), clip=5.0)
    assert norm.size == 7 and norm.config()["parts"] == [["pos"], ["t", 1]]
    flat = ObsNormalizer((7,), clip=5.0)
    for _ in range(3):
        batch = _tree_batch(rng)
        norm.update(batch)
        flat.update(np.concatenate([batch["pos"].reshape(-1, 4), batch["t"][1]], axis=1))
    np.testing.assert_array_equal(norm.mean, flat.mean)
    np.testing.assert_array_equal(norm.var, flat.var)
    batch = _tree_batch(rng, 5)
    out = norm.normalize(batch, np.float32)
    want = flat.normalize(np.concatenate([batch["pos"].reshape(-1, 4), batch["t"][1]], axis=1),
                          np.float32)
    np.testing.assert_array_equal(out["pos"].reshape(5, 4), want[:, :4])
    np.testing.assert_array_equal(out["t"][1], want[:, 4:])
    assert out["pos"].dtype == out["t"][1].dtype == np.float32
    # every other part is passed on as it was, and the input is not changed
    for key in ("img", "action_mask", "mission"):
        assert out[key] is batch[key]
    assert out["t"][0] is batch["t"][0] and isinstance(out["t"], tuple)
    assert batch["pos"].dtype == np.float32 and batch["pos"].mean() > 1


def test_tree_statistics_rebuild_from_their_config_and_refuse_another_space():
    norm = ObsNormalizer.for_space(_tree_space())
    again = ObsNormalizer.from_config(norm.config(), _tree_space())
    assert again.config() == norm.config()
    other = spaces.Dict({"pos": spaces.Box(-1, 1, (3,), np.float32)})
    with pytest.raises(ValueError, match="do not fit the observation space"):
        ObsNormalizer.from_config(norm.config(), other)
    with pytest.raises(ValueError, match="has no float Box part to normalise"):
        ObsNormalizer.for_space(spaces.Dict({"d": spaces.Discrete(3)}))
