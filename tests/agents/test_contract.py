"""The promises every registered trainer keeps (``agents.TRAINERS``): a new trainer gets this
suite by being registered.

Every trainer: saves and loads bit for bit; loads for inference from its file alone (no env,
no workers); resumes a run exactly, across ``learn`` calls and across a save and a load;
predicts one observation as it predicts a batch; refuses a bad setting with a message that
names it; and leaves a loadable checkpoint of its last whole iteration on Ctrl-C, from which
the run continues exactly as if it had never been interrupted.
"""
import gymnasium as gym
import numpy as np
import pytest

import agents
from agents.es import EvolutionTrainer
from agents.onpolicy import OnPolicyTrainer

NAMES = sorted(agents.TRAINERS)


def settings(cls) -> dict:
    """The smallest settings of ``cls``'s family (so a new trainer needs none of its own)."""
    if issubclass(cls, OnPolicyTrainer):
        return dict(n_envs=2, n_steps=8, seq_len=4, hidden_size=8)
    if issubclass(cls, EvolutionTrainer):
        return dict(population_size=10, center_episodes=1, max_episode_steps=30,
                    noise_table_size=100_000, backend="serial", hidden_size=4)
    raise AssertionError(f"{cls.__name__} belongs to no known trainer family")


def make(name, env="CartPole-v1", seed=0, **kw):
    cls = agents.TRAINERS[name]
    return cls(env, seed=seed, **{**settings(cls), **kw})


def same_state(a, b):
    np.testing.assert_array_equal(a.policy.flat_params, b.policy.flat_params)
    assert a.num_timesteps == b.num_timesteps and a.iterations == b.iterations
    assert a.rng.bit_generator.state == b.rng.bit_generator.state
    sa, sb = a._snapshot()[0], b._snapshot()[0]
    assert sorted(sa) == sorted(sb)
    for k in sa:
        np.testing.assert_array_equal(sa[k], sb[k], err_msg=k)


@pytest.mark.parametrize("name", NAMES)
def test_every_trainer_is_a_trainer(name):
    cls = agents.TRAINERS[name]
    assert issubclass(cls, agents.Trainer)
    assert cls.config_class.__name__ == f"{cls.__name__}Config"


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("env", ["CartPole-v1", "rlstm/PendulumNoVel-v1"])
def test_save_load_round_trip(name, env, tmp_path):
    m = make(name, env).learn(60)
    m.save(tmp_path / "m.rlstm")
    m2 = type(m).load(tmp_path / "m.rlstm")
    same_state(m, m2)
    assert m2.config == m.config and m2.seed == m.seed and m2.env_id == env
    obs = np.stack([m.observation_space.sample() for _ in range(5)])
    a1, s1 = m.predict(obs, deterministic=True)
    a2, s2 = m2.predict(obs, deterministic=True)
    np.testing.assert_array_equal(a1, a2)
    for x, y in zip(s1, s2):
        np.testing.assert_array_equal(x, y)
    assert all(m.action_space.contains(a) for a in a1)
    m.close()


class _Unregistered(gym.Env):
    """An env class that no Gymnasium id names: a loaded model cannot re-make it."""
    observation_space = gym.spaces.Box(-1, 1, (3,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return self.np_random.uniform(-1, 1, 3).astype(np.float32), {}

    def step(self, action):
        self.t += 1
        return (self.np_random.uniform(-1, 1, 3).astype(np.float32), float(action),
                False, self.t >= 10, {})


@pytest.mark.parametrize("name", NAMES)
def test_load_for_inference_needs_no_env_and_no_workers(name, tmp_path):
    m = make(name, _Unregistered, backend="process") if issubclass(
        agents.TRAINERS[name], EvolutionTrainer) else make(name, _Unregistered)
    m.save(tmp_path / "m.rlstm")
    loaded = type(m).load(tmp_path / "m.rlstm")
    action, state = loaded.predict(np.zeros(3, np.float32), deterministic=True)
    assert action in (0, 1)
    if isinstance(loaded, EvolutionTrainer):
        assert loaded._backend is None  # no worker was started to predict
    with pytest.raises(ValueError, match="pass env="):
        loaded.learn(20)
    resumed = type(m).load(tmp_path / "m.rlstm", env=_Unregistered, backend="serial") if \
        isinstance(m, EvolutionTrainer) else type(m).load(tmp_path / "m.rlstm",
                                                         env=_Unregistered)
    resumed.learn(20)
    assert resumed.num_timesteps >= 20
    resumed.close()


@pytest.mark.parametrize("name", NAMES)
def test_resume_is_bit_for_bit(name, tmp_path):
    straight = make(name, seed=5).learn(60).learn(60)
    first = make(name, seed=5).learn(60)
    first.save(tmp_path / "m.rlstm")
    resumed = type(first).load(tmp_path / "m.rlstm").learn(60)
    same_state(straight, resumed)
    first.learn(60)  # the object that saved continues the same run too
    same_state(straight, first)


@pytest.mark.parametrize("name", NAMES)
def test_single_observation_predicts_like_a_batch(name):
    m = make(name, "rlstm/PendulumNoVel-v1", dtype="float64").learn(60)
    obs = np.stack([m.observation_space.sample() for _ in range(4)]).astype(np.float64)
    batch, bstate = m.predict(obs, deterministic=True)
    for i in range(4):
        one, state = m.predict(obs[i], deterministic=True)
        assert np.shape(one) == m.action_space.shape
        np.testing.assert_allclose(one, batch[i], rtol=1e-12, atol=1e-12)
        for s, b in zip(state, bstate):
            assert s.shape[1] == 1
            np.testing.assert_allclose(s[:, 0], b[:, i], rtol=1e-12, atol=1e-12)
    # stochastic predictions never touch the training generator
    before = m.rng.bit_generator.state
    m.predict(obs)
    assert m.rng.bit_generator.state == before


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("bad,err,match", [
    ({"hidden_size": "abc"}, TypeError, r"Config\.hidden_size must be an int >= 1, got 'abc'"),
    ({"hidden_size": 0}, ValueError, r"hidden_size must be an int >= 1, got 0"),
    ({"normalize_obs": "no"}, TypeError, r"normalize_obs must be a bool .*got 'no'"),
    ({"clip_obs": float("nan")}, ValueError, r"clip_obs must be a number > 0, got nan"),
    ({"dtype": "float16"}, ValueError, r"dtype must be one of 'float32', 'float64'"),
    ({"hiden_size": 8}, TypeError, r"unknown \w+Config settings 'hiden_size' "
                                   r"\(did you mean 'hidden_size'\?\); valid ones are: "),
])
def test_bad_settings_name_the_field(name, bad, err, match):
    with pytest.raises(err, match=match):
        make(name, **bad)


@pytest.mark.parametrize("name", NAMES)
def test_ctrl_c_checkpoints_the_last_whole_iteration_and_resumes_exactly(name, tmp_path):
    def interrupt_the_third_iteration(model):
        if model.iterations == 2:  # the third iteration draws random numbers, then Ctrl-C
            def interrupted(progress):
                model.rng.random()
                model.num_timesteps += 1
                raise KeyboardInterrupt
            model._iteration = interrupted

    m = make(name, seed=2, log_dir=str(tmp_path))
    with pytest.raises(KeyboardInterrupt):
        m.learn(10_000, callback=interrupt_the_third_iteration)
    assert m.iterations == 2  # rolled back to the last whole iteration
    loaded = type(m).load(tmp_path / "checkpoint.rlstm")
    same_state(m, loaded)
    # the same run stopped cleanly after two iterations is in the same state, and both
    # continue identically
    stopped = make(name, seed=2).learn(10_000, callback=lambda model: model.iterations < 2)
    same_state(stopped, loaded)
    stopped.learn(60)
    loaded.learn(60)
    same_state(stopped, loaded)
