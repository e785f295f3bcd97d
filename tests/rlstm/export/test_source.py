"""What the exporters accept as the model (rlstm.export.as_predictor)."""
from __future__ import annotations

import numpy as np
import pytest
from gymnasium import spaces

import rlstm
from rlstm.export import as_predictor
from rlstm.policy import LSTMPolicy, ObsNormalizer, Predictor
from rlstm.serialization import save_arrays

OBS = spaces.Box(-np.inf, np.inf, (3,), np.float32)


def _policy():
    return LSTMPolicy(OBS, spaces.Discrete(2), hidden_size=4, seed=0)


def test_a_policy_a_predictor_and_a_trainer_like_object():
    policy = _policy()
    pred = as_predictor(policy)
    assert isinstance(pred, Predictor) and pred.policy is policy and pred.obs_normalizer is None
    assert as_predictor(pred) is pred

    class Trainer:
        predictor = pred
    assert as_predictor(Trainer()) is pred


def test_a_policy_file_and_a_trainer_file(tmp_path):
    policy = _policy()
    rlstm.save(policy, tmp_path / "p.rlstm")
    loaded = as_predictor(tmp_path / "p.rlstm")
    np.testing.assert_array_equal(loaded.policy.flat_params, policy.flat_params)
    assert loaded.obs_normalizer is None

    norm = ObsNormalizer((3,), clip=5.0)
    norm.update(np.random.default_rng(0).normal(1.0, 2.0, (50, 3)))
    save_arrays(tmp_path / "ppo.rlstm", {"policy/flat_params": policy.flat_params,
                                         **norm.state_dict("obs_norm/"),
                                         "optim/m": np.zeros(3)},
                kind="PPO", meta={"policy": rlstm.io.describe(policy), "obs_norm": norm.config()})
    loaded = as_predictor(str(tmp_path / "ppo.rlstm"))
    np.testing.assert_array_equal(loaded.obs_normalizer.mean, norm.mean)
    assert loaded.obs_normalizer.clip == 5.0


def test_refusals_say_what_was_expected(tmp_path):
    with pytest.raises(FileNotFoundError, match="no model file"):
        as_predictor(tmp_path / "missing.rlstm")
    (tmp_path / "junk.rlstm").write_bytes(b"not a model")
    with pytest.raises(ValueError, match="is not an rlstm file"):
        as_predictor(tmp_path / "junk.rlstm")
    with pytest.raises(TypeError, match="file path, an rlstm.policy.LSTMPolicy"):
        as_predictor(42)

    class OldTrainer:  # a policy but no predictor: its normalisation would be lost
        policy = _policy()
    with pytest.raises(TypeError, match=r"has a \.policy but no \.predictor"):
        as_predictor(OldTrainer())
