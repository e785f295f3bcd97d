"""agents.config: every trainer's settings are typed, documented, and the docs tables match."""
import dataclasses

import numpy as np
import pytest

import agents
from agents import PPO, PPOConfig
from agents.config import TrainerConfig, make_config
from rlstm.validation import field_docs

CONFIGS = sorted({cls.config_class for cls in agents.TRAINERS.values()}, key=lambda c: c.__name__)


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: c.__name__)
def test_every_field_has_a_docstring(config):
    docs = field_docs(config)
    missing = [f.name for f in dataclasses.fields(config) if not docs.get(f.name)]
    assert not missing, f"{config.__name__} fields without a docstring: {missing}"
    assert issubclass(config, TrainerConfig)
    config()  # the defaults pass their own checks


def test_docs_configuration_tables_match_the_configs(load_script):
    module = load_script("docs/config_tables.py")
    assert module.main(["--check"]) == 0, "run: python docs/config_tables.py"


def test_numpy_scalars_are_numbers_and_are_stored_as_python_values():
    c = PPOConfig(learning_rate=np.float32(0.01), n_envs=np.int64(4), normalize_obs=np.bool_(0),
                  mlp_hidden=[32, np.int32(16)])
    assert c.learning_rate == pytest.approx(0.01) and type(c.learning_rate) is float
    assert c.n_envs == 4 and type(c.n_envs) is int
    assert c.normalize_obs is False and c.mlp_hidden == (32, 16)
    assert PPOConfig(mlp_hidden=64).mlp_hidden == (64,)


@pytest.mark.parametrize("bad,err,match", [
    ({"normalize_obs": "False"}, TypeError, r"PPOConfig\.normalize_obs must be a bool"),
    ({"learning_rate": "abc"}, TypeError, r"PPOConfig\.learning_rate must be a number > 0, "
                                          r"got 'abc' \(str\)"),
    ({"learning_rate": 0}, ValueError, r"learning_rate must be a number > 0, got 0"),
    ({"gamma": 1.5}, ValueError, r"PPOConfig\.gamma must be a number in \[0, 1\], got 1\.5"),
    ({"ent_coef": None}, TypeError, r"ent_coef must be a number >= 0, got None"),
    ({"max_grad_norm": float("inf")}, ValueError, r"max_grad_norm must be a number > 0"),
    ({"mlp_hidden": "abc"}, TypeError, r"mlp_hidden must be a list of ints >= 1"),
    ({"mlp_hidden": [64, 0]}, ValueError, r"mlp_hidden\[1\] must be an int >= 1, got 0"),
    ({"head_hidden": "64"}, TypeError, r"head_hidden must be a list of ints >= 1"),
    ({"head_hidden": [64, 0]}, ValueError, r"head_hidden\[1\] must be an int >= 1, got 0"),
    ({"policy_kwargs": {"head_hidden": [8]}}, ValueError, r"set head_hidden on the trainer"),
    ({"lr_schedule": "lineer"}, ValueError, r"one of 'constant', 'linear', got 'lineer' "
                                            r"\(did you mean 'linear'\?\)"),
    ({"seq_len": 5}, ValueError, r"seq_len \(5\) must divide n_steps \(32\)"),
    ({"policy_kwargs": {"use_sde": True}}, ValueError, r"set use_sde on the trainer config"),
    ({"policy_kwargs": {"hidden_size": 4}}, ValueError, r"set hidden_size on the trainer"),
    ({"checkpoint_freq": 100}, ValueError, r"checkpoint_freq needs log_dir"),
    ({"blas_threads": 0}, ValueError, r"blas_threads must be an int >= 1 or None"),
])
def test_bad_settings_are_refused_by_name(bad, err, match):
    with pytest.raises(err, match=match):
        PPOConfig(**bad)
    with pytest.raises(err, match=match):
        PPO("CartPole-v1", **bad)


def test_make_config_refuses_other_configs_and_unknown_names():
    with pytest.raises(TypeError, match="config must be a PPOConfig, got str: pass settings "
                                        "as keywords"):
        make_config(PPOConfig, "MlpLstmPolicy")
    with pytest.raises(TypeError, match=r"unknown PPOConfig settings 'n_env' \(did you mean "
                                        r"'n_envs'\?\); valid ones are: address, autoreset_mode, "):
        make_config(PPOConfig, None, {"n_env": 4})
    base = PPOConfig(n_envs=4)
    c = make_config(PPOConfig, base, {"gamma": 0.9})
    assert (c.n_envs, c.gamma, base.gamma) == (4, 0.9, 0.98)  # the given config is not changed


def test_head_hidden_builds_the_policy_and_survives_save_and_load(tmp_path):
    from agents import PPO
    model = PPO("CartPole-v1", head_hidden=(16, 8), n_envs=2, n_steps=16, seed=0)
    assert model.policy.head_hidden == (16, 8)
    assert model.policy.params["action.weight"].shape == (2, 8)
    model.learn(64)
    model.save(tmp_path / "m.rlstm")
    loaded = PPO.load(tmp_path / "m.rlstm")
    assert loaded.config.head_hidden == (16, 8)
    np.testing.assert_array_equal(loaded.policy.flat_params, model.policy.flat_params)
