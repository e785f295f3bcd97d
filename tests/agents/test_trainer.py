"""The trainer core through PPO, A2C and REINFORCE: resume, save/load, divergence, Ctrl-C,
config checks, env forms."""

import gymnasium as gym
import numpy as np
import pytest

from agents import A2C, PPO, REINFORCE, TrainingDiverged

# ------------------------------------------------------------------------------ the loss


# ------------------------------------------------------------------------------ rollouts


# ------------------------------------------------------------------------------ resume / io
def test_resume_from_checkpoint_is_bit_for_bit(tmp_path, tiny):
    path = tmp_path / "m.rlstm"
    a = PPO("CartPole-v1", seed=7, **tiny)
    a.learn(32)
    a.save(path)
    a.learn(48)
    b = PPO.load(path)
    assert b.num_timesteps == 32
    b.learn(48)
    np.testing.assert_array_equal(a.policy.flat_params, b.policy.flat_params)
    np.testing.assert_array_equal(a.optimizer.m, b.optimizer.m)
    np.testing.assert_array_equal(a.obs_normalizer.mean, b.obs_normalizer.mean)
    assert a.num_timesteps == b.num_timesteps == 80
    assert a.rng.random() == b.rng.random()


def test_same_seed_same_run_and_chunks_continue(tiny):
    a = PPO("CartPole-v1", seed=3, **tiny).learn(64)
    b = PPO("CartPole-v1", seed=3, **tiny).learn(64)
    np.testing.assert_array_equal(a.policy.flat_params, b.policy.flat_params)
    c = PPO("CartPole-v1", seed=4, **tiny).learn(64)
    assert not np.array_equal(a.policy.flat_params, c.policy.flat_params)
    before = a.policy.flat_params.copy()
    a.learn(16)
    assert a.num_timesteps == 80 and not np.array_equal(before, a.policy.flat_params)


@pytest.mark.parametrize("cls", [PPO, A2C, REINFORCE])
def test_save_load_roundtrip(tmp_path, cls, tiny):
    kw = {k: v for k, v in tiny.items() if k in ("n_envs", "n_steps", "seq_len", "hidden_size")}
    m = cls("rlstm/PendulumNoVel-v1", seed=1, **kw).learn(32)
    path = tmp_path / "model.rlstm"
    m.save(path)
    m2 = cls.load(path)
    np.testing.assert_array_equal(m.policy.flat_params, m2.policy.flat_params)
    np.testing.assert_array_equal(m.obs_normalizer.var, m2.obs_normalizer.var)
    assert m2.config == m.config and m2.num_timesteps == m.num_timesteps
    obs = np.random.default_rng(0).normal(size=(5, 2))
    a1, s1 = m.predict(obs, deterministic=True)
    a2, s2 = m2.predict(obs, deterministic=True)
    np.testing.assert_array_equal(a1, a2)
    assert a1.shape == (5, 1) and np.all(np.abs(a1) <= 2.0)
    single, state = m2.predict(obs[0], deterministic=True)
    np.testing.assert_allclose(single, a1[0], rtol=1e-5)  # B=1 vs B=5 BLAS rounding
    assert state[0].shape == (1, 1, 8)


def test_load_refuses_other_files(tmp_path):
    m = A2C("CartPole-v1", seed=0, n_envs=1, n_steps=4, hidden_size=4)
    m.save(tmp_path / "a2c.rlstm")
    with pytest.raises(ValueError, match="A2C"):
        PPO.load(tmp_path / "a2c.rlstm")
    bad = tmp_path / "bad.rlstm"
    bad.write_bytes(b"not a model")
    with pytest.raises(ValueError):
        PPO.load(bad)
    np.save(tmp_path / "x.npy", np.zeros(3))
    with pytest.raises(ValueError):
        PPO.load(tmp_path / "x.npy")


# ------------------------------------------------------------------------------ guards
class NaNRewardEnv(gym.Env):
    """CartPole whose rewards turn NaN once ``poison`` is set."""
    poison = False

    def __init__(self):
        self._env = gym.make("CartPole-v1")
        self.observation_space, self.action_space = (self._env.observation_space,
                                                     self._env.action_space)

    def reset(self, *, seed=None, options=None):
        return self._env.reset(seed=seed)

    def step(self, action):
        o, r, te, tr, i = self._env.step(action)
        return o, (np.nan if NaNRewardEnv.poison else r), te, tr, i


def test_a_nan_reward_stops_training_and_keeps_the_last_good_checkpoint(tmp_path, tiny):
    from agents.env_factory import EnvOutputError
    NaNRewardEnv.poison = False
    m = PPO(NaNRewardEnv, seed=0, log_dir=str(tmp_path), checkpoint_freq=16, **tiny)
    m.learn(32)
    good = m.policy.flat_params.copy()
    NaNRewardEnv.poison = True
    try:
        with pytest.raises(EnvOutputError, match=r"reward of nan \(the env, step 0 of the "
                                                 r"rollout\)"):
            m.learn(32)
    finally:
        NaNRewardEnv.poison = False
    np.testing.assert_array_equal(m.policy.flat_params, good)
    assert m.num_timesteps == 32  # back at its last whole iteration
    saved = PPO.load(tmp_path / "checkpoint.rlstm", env=NaNRewardEnv)
    np.testing.assert_array_equal(saved.policy.flat_params, good)
    assert saved.num_timesteps == 32


@pytest.mark.parametrize("cls,kw", [(PPO, {"learning_rate": 1e30, "max_grad_norm": 1e30}),
                                    (A2C, {"learning_rate": 1e30, "max_grad_norm": 1e30})])
def test_divergence_raises_training_diverged_and_keeps_the_checkpoint(cls, kw, tmp_path, tiny):
    m = cls("CartPole-v1", seed=0, log_dir=str(tmp_path), checkpoint_freq=16,
            **{k: v for k, v in tiny.items() if k in ("n_envs", "n_steps", "seq_len",
                                                      "hidden_size")})
    m.learn(32)
    good = m.policy.flat_params.copy()
    m2 = cls.load(tmp_path / "checkpoint.rlstm", **kw)
    with np.errstate(all="ignore"), pytest.raises(TrainingDiverged, match="checkpoint.rlstm"):
        m2.learn(2000)
    assert np.isfinite(m2.policy.flat_params).all()
    saved = cls.load(tmp_path / "checkpoint.rlstm")
    assert np.isfinite(saved.policy.flat_params).all()
    assert saved.num_timesteps >= 32 and saved.num_timesteps == m2.num_timesteps
    assert not np.array_equal(good, m2.policy.flat_params) or m2.num_timesteps == 32


def test_ctrl_c_leaves_loadable_checkpoint(tmp_path, tiny):
    def interrupt(model):
        raise KeyboardInterrupt

    m = PPO("CartPole-v1", seed=0, log_dir=str(tmp_path), **tiny)
    with pytest.raises(KeyboardInterrupt):
        m.learn(1000, callback=interrupt)
    loaded = PPO.load(tmp_path / "checkpoint.rlstm")
    assert loaded.num_timesteps == 16
    np.testing.assert_array_equal(loaded.policy.flat_params, m.policy.flat_params)


@pytest.mark.parametrize("bad, err, match", [
    (dict(n_envs=0), ValueError, "n_envs"),
    (dict(n_envs=2.5), TypeError, "n_envs"),
    (dict(n_steps=10, seq_len=4), ValueError, "seq_len"),
    (dict(gamma=1.5), ValueError, "gamma"),
    (dict(learning_rate=-1.0), ValueError, "learning_rate"),
    (dict(clip_range=0.0), ValueError, "clip_range"),
    (dict(n_minibatches=100), ValueError, "n_minibatches"),
    (dict(autoreset_mode="sometimes"), ValueError, "autoreset_mode"),
    (dict(vec_env="threads"), ValueError, "vec_env"),
    (dict(checkpoint_freq=10), ValueError, "log_dir"),
    (dict(target_kl=-0.1), ValueError, "target_kl"),
    (dict(no_such_field=1), TypeError, "no_such_field"),
])
def test_config_validation(bad, err, match):
    with pytest.raises(err, match=match):
        PPO("CartPole-v1", **bad)


def test_bad_env_and_args(tiny):
    with pytest.raises(ValueError, match="unknown Gymnasium id"):
        PPO("NoSuchEnv-v0")
    with pytest.raises(ValueError, match=r"n_envs=4, but the given Env instance is 1 env\(s\)"):
        PPO(gym.make("CartPole-v1"), n_envs=4)
    with pytest.raises(TypeError, match=r"write PPO\(env, \.\.\.\) instead of "
                                        r"Stable-Baselines3's PPO\('MlpLstmPolicy', env"):
        PPO("MlpLstmPolicy", gym.make("CartPole-v1"))
    m = PPO("CartPole-v1", **tiny)
    with pytest.raises(ValueError, match="total_timesteps"):
        m.learn(0)
    with pytest.raises(TypeError, match="callback"):
        m.learn(16, callback=3)
    with pytest.raises(ValueError, match="gae_lambda"):
        REINFORCE("CartPole-v1", gae_lambda=0.9)


# ------------------------------------------------------------------------------ callbacks, logs


def test_model_loaded_without_env_predicts_but_needs_env_to_learn(tmp_path, tiny):
    m = PPO(lambda: gym.make("CartPole-v1"), seed=0, **tiny)
    m.save(tmp_path / "m.rlstm")
    loaded = PPO.load(tmp_path / "m.rlstm")
    action, _ = loaded.predict(np.zeros(4), deterministic=True)
    assert action in (0, 1)
    with pytest.raises(ValueError, match="pass env="):
        loaded.learn(16)
    PPO.load(tmp_path / "m.rlstm", env="CartPole-v1").learn(16)


def test_every_form_of_env_trains_and_records_its_id(tmp_path):
    """An id, a class, a callable, an Env instance (the one env, as SB3 uses it) and a
    VectorEnv (its num_envs and autoreset mode are the trainer's)."""
    class Corridor(gym.Wrapper):
        def __init__(self):
            super().__init__(gym.make("CartPole-v1"))
    vec = gym.vector.SyncVectorEnv([lambda: gym.make("CartPole-v1")] * 3,
                                   autoreset_mode=gym.vector.AutoresetMode.NEXT_STEP)
    forms = {"id": "CartPole-v1", "class": Corridor, "callable": lambda: Corridor(),
             "instance": gym.make("CartPole-v1"), "vector": vec}
    for name, env in forms.items():
        m = PPO(env, seed=0, n_steps=8, seq_len=4, hidden_size=4,
                **({} if name in ("instance", "vector") else {"n_envs": 2}))
        m.learn(24)
        assert m.num_timesteps >= 24
        if name == "instance":
            assert m.config.n_envs == 1
        if name == "vector":
            assert m.config.n_envs == 3 and m.config.autoreset_mode == "next_step"
        m.save(tmp_path / f"{name}.rlstm")
        saved = PPO.load(tmp_path / f"{name}.rlstm")
        assert saved.env_id == (None if name in ("class", "callable") else "CartPole-v1")
        m.close()
    assert not vec.closed  # a given VectorEnv stays the user's
    vec.close()
    with pytest.raises(ValueError, match="use backend='serial' with one worker"):
        PPO(gym.make("CartPole-v1"), backend="process")
    from agents import OpenAIES
    with pytest.raises(ValueError, match="cannot be copied; pass a Gymnasium id"):
        OpenAIES(gym.make("CartPole-v1"), backend="serial")
