"""Models to export: every core, every observation and action space, normalisation, masks,
images (intensities and one-hot codes), float32 and float64. ``case`` gives each as a ``Predictor``; ``STRICT_CFLAGS`` are the
flags every C artefact must compile cleanly with."""
from __future__ import annotations

import numpy as np
import pytest
from gymnasium import spaces

from rlstm.policy import LSTMPolicy, ObsNormalizer, Predictor

STRICT = ("-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", "-pedantic", "-Wshadow",
          "-Wconversion")

BOX5 = spaces.Box(-np.inf, np.inf, (5,), np.float32)


def _normalizer(space, seed, clip=3.0):
    """Statistics far from 0/1, and a small clip so that clipping happens (for a Dict/Tuple
    space, statistics of its float Box parts)."""
    rng = np.random.default_rng(seed)
    if not isinstance(space, spaces.Box):
        norm = ObsNormalizer.for_space(space, clip=clip)
        norm.update_from_moments(rng.normal(2.0, 1.0, norm.size),
                                 rng.uniform(1.0, 16.0, norm.size), 256)
        return norm
    norm = ObsNormalizer(space.shape, clip=clip)
    norm.update(rng.normal(2.0, 4.0, (256,) + space.shape))
    return norm


def _dict_obs():
    return spaces.Dict({
        "pos": spaces.Box(-2.0, 2.0, (3,), np.float32),
        "mode": spaces.Discrete(4, start=2),
        "flags": spaces.MultiBinary(3),
        "grid": spaces.MultiDiscrete([2, 3], start=[-1, 1]),
        "action_mask": spaces.MultiBinary(6),
    })


def _dict_action():  # masked: move (2) + pick (4) = 6 mask columns
    return spaces.Dict({"move": spaces.Discrete(2), "pick": spaces.MultiDiscrete([3, 1]),
                        "throttle": spaces.Box(-0.5, 0.5, (2,), np.float32)})


def _tuple_obs():
    return spaces.Tuple((spaces.Box(-1.0, 1.0, (2,), np.float32),
                         spaces.Dict({"a": spaces.Discrete(3),
                                      "b": spaces.Tuple((spaces.MultiBinary(2),
                                                         spaces.Box(-5, 5, (2,), np.int32)))})))


def _tuple_action():
    return spaces.Tuple((spaces.Discrete(2, start=-1),
                         spaces.Dict({"x": spaces.Box(-0.2, np.inf, (2, 2), np.float32),
                                      "y": spaces.MultiBinary(2)})))


def _make(name: str) -> Predictor:
    """The model called ``name`` (see CASES)."""
    kw = dict(hidden_size=16, seed=3, action_init_scale=1.0)
    if name == "lstm-box-normalised":
        return Predictor(LSTMPolicy(BOX5, spaces.Discrete(4), **kw), _normalizer(BOX5, 0))
    if name == "lstm-peephole-stacked-box-action":
        return Predictor(LSTMPolicy(spaces.Box(-1.0, 1.0, (4,), np.float32),
                                    spaces.Box(-0.3, 0.3, (3,), np.float32), num_layers=2,
                                    core_kwargs={"variant": "peephole"}, **kw))
    if name == "lstm-peephole_cell-identity-critic-multidiscrete":
        return Predictor(LSTMPolicy(BOX5, spaces.MultiDiscrete([3, 2, 4], start=[0, 5, -2]),
                                    shared_core=False, num_layers=2,
                                    core_kwargs={"variant": "peephole_cell",
                                                 "cell_activation": "identity"}, **kw),
                         _normalizer(BOX5, 1))
    if name == "lstm-identity-multibinary":
        return Predictor(LSTMPolicy(BOX5, spaces.MultiBinary([2, 3]),
                                    core_kwargs={"cell_activation": "identity"}, **kw))
    if name == "gru-stacked-critic-mlp":
        return Predictor(LSTMPolicy(BOX5, spaces.Discrete(3, start=-1), core="gru",
                                    num_layers=2, shared_core=False, mlp_hidden=(12, 8), **kw),
                         _normalizer(BOX5, 2))
    if name == "dict-obs-mask-dict-action":
        return Predictor(LSTMPolicy(_dict_obs(), _dict_action(), shared_core=False, **kw))
    if name == "dict-obs-mask-dict-action-normalised":
        return Predictor(LSTMPolicy(_dict_obs(), _dict_action(), shared_core=False, **kw),
                         _normalizer(_dict_obs(), 6))
    if name == "tuple-obs-tuple-action-gru-normalised":
        return Predictor(LSTMPolicy(_tuple_obs(), _tuple_action(), core="gru", **kw),
                         _normalizer(_tuple_obs(), 7))
    if name == "image-flatten-scale-128":
        obs = spaces.Dict({"img": spaces.Box(0, 255, (6, 5, 2), np.uint8),
                           "v": spaces.Box(-1.0, 1.0, (2,), np.float32)})
        return Predictor(LSTMPolicy(obs, spaces.Discrete(3), image_encoder="flatten",
                                    image_scale=128, **kw))
    if name == "image-conv-small-unscaled-normalised":  # MiniGrid-like codes, as they are
        obs = spaces.Dict({"v": spaces.Box(-1.0, 1.0, (2,), np.float32),
                           "img": spaces.Box(0, 255, (7, 6, 3), np.uint8)})
        return Predictor(LSTMPolicy(obs, spaces.Discrete(3), mlp_hidden=(8,), image_scale=None,
                                    **kw), _normalizer(obs, 8))
    if name == "image-conv-large":
        obs = spaces.Box(0, 255, (38, 40, 1), np.uint8)
        return Predictor(LSTMPolicy(obs, spaces.Discrete(3), hidden_size=8, seed=3,
                                    action_init_scale=1.0))
    if name == "gsde-box-action":
        return Predictor(LSTMPolicy(BOX5, spaces.Box(-1.0, 1.0, (2,), np.float32),
                                    use_sde=True, **kw), _normalizer(BOX5, 4))
    if name == "float64-lstm-peephole-normalised":
        return Predictor(LSTMPolicy(BOX5, spaces.Box(-1.0, 1.0, (2,), np.float64),
                                    dtype=np.float64, core_kwargs={"variant": "peephole"},
                                    **kw), _normalizer(BOX5, 5))
    if name == "float64-dict-mask-gru-critic":
        return Predictor(LSTMPolicy(_dict_obs(), _dict_action(), dtype=np.float64, core="gru",
                                    shared_core=False, **kw))
    if name == "head-mlps-critic-box-action":  # sb3-contrib's net_arch after the core
        return Predictor(LSTMPolicy(BOX5, spaces.Box(-1.0, 1.0, (2,), np.float32),
                                    shared_core=False, head_hidden=(12, 6), **kw),
                         _normalizer(BOX5, 9))
    if name == "head-mlp-image-discrete":
        obs = spaces.Dict({"v": spaces.Box(-1.0, 1.0, (2,), np.float32),
                           "img": spaces.Box(0, 255, (7, 7, 3), np.uint8)})
        return Predictor(LSTMPolicy(obs, spaces.Discrete(3), head_hidden=(10,), **kw))
    if name == "image-codes-conv-critic":  # MiniGrid's Dict: object, colour, state codes
        obs = spaces.Dict({"direction": spaces.Discrete(4),
                           "image": spaces.Box(0, 255, (7, 7, 3), np.uint8)})
        return Predictor(LSTMPolicy(obs, spaces.Discrete(3), image_codes=[11, 6, 3],
                                    shared_core=False, **kw))
    if name == "image-codes-flatten-two-images":
        obs = spaces.Dict({"a": spaces.Box(0, 255, (3, 2, 2), np.uint8),
                           "b": spaces.Box(0, 255, (2, 2, 2), np.uint8),
                           "v": spaces.Box(-1.0, 1.0, (2,), np.float32)})
        return Predictor(LSTMPolicy(obs, spaces.Discrete(3), image_codes=[4, 2],
                                    image_encoder="flatten", **kw), _normalizer(obs, 10))
    raise KeyError(name)


CASES = ["lstm-box-normalised", "lstm-peephole-stacked-box-action",
         "lstm-peephole_cell-identity-critic-multidiscrete", "lstm-identity-multibinary",
         "gru-stacked-critic-mlp", "dict-obs-mask-dict-action-normalised",
         "tuple-obs-tuple-action-gru-normalised", "image-flatten-scale-128",
         "image-conv-small-unscaled-normalised", "image-conv-large", "gsde-box-action",
         "float64-lstm-peephole-normalised", "float64-dict-mask-gru-critic",
         "head-mlps-critic-box-action", "head-mlp-image-discrete", "image-codes-conv-critic",
         "image-codes-flatten-two-images"]


@pytest.fixture(params=CASES)
def case(request) -> Predictor:
    """Each model of CASES, as a Predictor."""
    return _make(request.param)


@pytest.fixture(scope="session")
def make_case():
    """``make_case(name)``: one model of CASES, as a Predictor."""
    return _make


@pytest.fixture(scope="session")
def strict_cflags():
    return STRICT
