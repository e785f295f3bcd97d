"""PPO/A2C/REINFORCE machinery: loss and gradient, hidden state, resume, save/load, guards."""
import csv
import os

import gymnasium as gym
import numpy as np
import pytest

import agents
from agents import A2C, PPO, REINFORCE
from agents.base import (CheckpointCallback, EvalCallback, TrainingDiverged,
                         policy_gradient_loss)
from agents.buffers import RolloutBuffer
from rlstm.policy import LSTMPolicy

TINY = dict(n_envs=2, n_steps=8, seq_len=4, hidden_size=8, n_epochs=2, n_minibatches=2)


# ------------------------------------------------------------------------------ the loss
def test_clipped_surrogate_hand_computed():
    # ratios 1.5 (A=+1) and 0.5 (A=-1), clip 0.2: both terms are clipped -> no gradient
    old = np.log(np.array([[2 / 3, 2.0]]))
    lp = np.zeros((1, 2))
    adv = np.array([[1.0, -1.0]])
    loss, stats, dlp, dent, dv = policy_gradient_loss(
        lp, np.zeros((1, 2)), np.zeros((1, 2)), old, adv, np.zeros((1, 2)), np.zeros((1, 2)),
        np.ones((1, 2), bool), 0.2, None, 0.0, 0.5)
    assert stats["pg_loss"] == pytest.approx(-(1.2 - 0.8) / 2)
    np.testing.assert_allclose(dlp, 0.0)
    assert stats["clip_fraction"] == 1.0
    # ratios 0.9 (A=+1, inside) and 1.5 (A=-1: min picks the unclipped -1.5): gradient -A r / n
    old = np.log(np.array([[1 / 0.9, 1 / 1.5]]))
    loss, stats, dlp, _, _ = policy_gradient_loss(
        lp, np.zeros((1, 2)), np.zeros((1, 2)), old, adv, np.zeros((1, 2)), np.zeros((1, 2)),
        np.ones((1, 2), bool), 0.2, None, 0.0, 0.5)
    assert stats["pg_loss"] == pytest.approx(-(0.9 - 1.5) / 2)
    np.testing.assert_allclose(dlp, [[-0.9 / 2, 1.5 / 2]])


def test_masked_entries_do_not_count():
    rng = np.random.default_rng(0)
    a = [rng.normal(size=(3, 2)) for _ in range(7)]
    mask = np.array([[1, 1], [1, 0], [0, 1]], bool)
    out_full = policy_gradient_loss(*a, mask, 0.2, 0.3, 0.01, 0.5)
    b = [x.copy() for x in a]
    for x in b:
        x[~mask] = 1e3  # garbage where masked
    out_garbage = policy_gradient_loss(*b, mask, 0.2, 0.3, 0.01, 0.5)
    assert out_full[0] == pytest.approx(out_garbage[0])
    for g in out_garbage[2:]:
        assert np.all(g[~mask] == 0)


@pytest.mark.parametrize("env_id", ["CartPole-v1", "Pendulum-v1"])
@pytest.mark.parametrize("shared_core", [True, False])
def test_ppo_loss_gradient_matches_finite_differences(env_id, shared_core):
    env = gym.make(env_id)
    pol = LSTMPolicy(env.observation_space, env.action_space, hidden_size=5, dtype=np.float64,
                     seed=1, shared_core=shared_core)
    rng = np.random.default_rng(2)
    T, B = 6, 3
    obs = rng.normal(size=(T, B) + env.observation_space.shape)
    if env_id == "CartPole-v1":
        actions = rng.integers(0, 2, size=(T, B))
    else:
        actions = rng.normal(size=(T, B, 1))
    starts = np.zeros((T, B), bool)
    starts[0, 0] = starts[3, 1] = starts[2, 2] = True  # resets inside the chunk
    state0 = tuple(rng.normal(size=s.shape) * 0.5 for s in pol.initial_state(B))
    lp0, _, v0, _ = pol.evaluate(obs, actions, state0, starts)
    old_lp = lp0 + rng.normal(scale=0.3, size=(T, B))  # ratios away from 1: some clipped
    old_v = v0 + rng.normal(scale=0.3, size=(T, B))
    adv = rng.normal(size=(T, B))
    ret = rng.normal(size=(T, B))
    mask = rng.random((T, B)) > 0.2

    def loss_and_grads():
        lp, ent, v, cache = pol.evaluate(obs, actions, state0, starts)
        loss, _, dlp, dent, dv = policy_gradient_loss(lp, ent, v, old_lp, adv, ret, old_v, mask,
                                                      0.2, 0.2, 0.05, 0.5)
        return loss, (dlp, dent, dv, cache)

    _, (dlp, dent, dv, cache) = loss_and_grads()
    pol.zero_grad()
    pol.backward(dlp, dent, dv, cache)
    analytic = pol.flat_grads.copy()
    eps = 1e-6
    idx = np.random.default_rng(3).choice(pol.num_params, size=min(300, pol.num_params),
                                          replace=False)
    numeric = np.empty(idx.size)
    for j, i in enumerate(idx):
        old = pol.flat_params[i]
        pol.flat_params[i] = old + eps
        lp_, _ = loss_and_grads()
        pol.flat_params[i] = old - eps
        lm_, _ = loss_and_grads()
        pol.flat_params[i] = old
        numeric[j] = (lp_ - lm_) / (2 * eps)
    np.testing.assert_allclose(analytic[idx], numeric, rtol=1e-5, atol=1e-8)
    assert np.abs(analytic[idx]).max() > 1e-3  # the check is not vacuous


# ------------------------------------------------------------------------------ rollouts
def _short_cartpole(steps=5):
    return lambda: gym.make("rlstm/CartPoleNoVel-v1", max_episode_steps=steps)


@pytest.mark.parametrize("mode", ["next_step", "same_step"])
def test_rollout_hidden_state_resets_and_replays(mode):
    """evaluate() over the stored sequences reproduces what act() computed step by step: the
    stored sequence-start states and the episode-start resets are right."""
    m = PPO(_short_cartpole(5), seed=0, n_envs=3, n_steps=24, seq_len=8, hidden_size=6,
            dtype="float64", autoreset_mode=mode, normalize_obs=False)
    m._require_env()
    m._start_rollouts()
    buf = RolloutBuffer(24, 3, 8, m.config.gamma, m.config.gae_lambda)
    m._collect_rollout(buf)
    seq = buf.sequences()
    lp, _, v, _ = m.policy.evaluate(seq["obs"], seq["actions"], seq["states"],
                                    seq["episode_starts"])
    np.testing.assert_allclose(lp, seq["log_probs"], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(v, seq["values"], rtol=1e-10, atol=1e-12)
    # every episode lasts 5 steps (truncation), so starts come every 5 (6 with NEXT_STEP's
    # reset step) steps, and chunks of 8 cross episode boundaries
    period = 6 if mode == "next_step" else 5
    expected = (np.arange(24) % period == 0)[:, None].repeat(3, 1)
    np.testing.assert_array_equal(buf.episode_starts, expected)
    assert buf.truncated.sum() == 3 * len([t for t in range(24) if t % period == 4])
    assert not buf.terminated.any()
    if mode == "next_step":
        np.testing.assert_array_equal(buf.valid, ~((np.arange(24) % 6 == 5)[:, None].repeat(3, 1)))
        # truncation bootstraps from V(final obs) = the value computed on the reset step
        t_idx, b_idx = np.nonzero(buf.truncated[:-1])
        np.testing.assert_allclose(buf.final_values[t_idx, b_idx], buf.values[t_idx + 1, b_idx])
    else:
        assert buf.valid.all()
        assert np.all(buf.final_values[buf.truncated] != 0)
    # the state really is zeroed at episode starts: a state carried over would change values
    lp2, _, v2, _ = m.policy.evaluate(seq["obs"], seq["actions"], seq["states"],
                                      np.zeros_like(seq["episode_starts"]))
    assert np.abs(v2 - v).max() > 1e-6


def test_same_step_and_next_step_bootstrap_the_same_final_value():
    vals = {}
    for mode in ("next_step", "same_step"):
        m = PPO(_short_cartpole(4), seed=3, n_envs=1, n_steps=4, seq_len=4, hidden_size=6,
                dtype="float64", autoreset_mode=mode, normalize_obs=False,
                normalize_reward=False)
        m._require_env()
        m._start_rollouts()
        buf = RolloutBuffer(4, 1, 4, 0.9, 0.5)
        m._collect_rollout(buf)  # first episode: steps 0..3, truncated at 3
        assert buf.truncated[3, 0] and buf.episode_starts[0, 0]
        vals[mode] = (buf.final_values[3, 0], buf.values[:, 0].copy(), buf.advantages[:, 0])
    assert vals["next_step"][0] == pytest.approx(vals["same_step"][0], rel=1e-12)
    np.testing.assert_allclose(vals["next_step"][2], vals["same_step"][2], rtol=1e-12)


# ------------------------------------------------------------------------------ resume / io
def test_resume_from_checkpoint_is_bit_for_bit(tmp_path):
    path = tmp_path / "m.rlstm"
    a = PPO("CartPole-v1", seed=7, **TINY)
    a.learn(32)
    a.save(path)
    a.learn(48)
    b = PPO.load(path)
    assert b.num_timesteps == 32
    b.learn(48)
    np.testing.assert_array_equal(a.policy.flat_params, b.policy.flat_params)
    np.testing.assert_array_equal(a.optimizer.m, b.optimizer.m)
    np.testing.assert_array_equal(a.obs_rms.mean, b.obs_rms.mean)
    assert a.num_timesteps == b.num_timesteps == 80
    assert a.rng.random() == b.rng.random()


def test_same_seed_same_run_and_chunks_continue():
    a = PPO("CartPole-v1", seed=3, **TINY).learn(64)
    b = PPO("CartPole-v1", seed=3, **TINY).learn(64)
    np.testing.assert_array_equal(a.policy.flat_params, b.policy.flat_params)
    c = PPO("CartPole-v1", seed=4, **TINY).learn(64)
    assert not np.array_equal(a.policy.flat_params, c.policy.flat_params)
    before = a.policy.flat_params.copy()
    a.learn(16)
    assert a.num_timesteps == 80 and not np.array_equal(before, a.policy.flat_params)


@pytest.mark.parametrize("cls", [PPO, A2C, REINFORCE])
def test_save_load_roundtrip(tmp_path, cls):
    kw = {k: v for k, v in TINY.items() if k in ("n_envs", "n_steps", "seq_len", "hidden_size")}
    m = cls("rlstm/PendulumNoVel-v1", seed=1, **kw).learn(32)
    path = tmp_path / "model.rlstm"
    m.save(path)
    m2 = cls.load(path)
    np.testing.assert_array_equal(m.policy.flat_params, m2.policy.flat_params)
    np.testing.assert_array_equal(m.obs_rms.var, m2.obs_rms.var)
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


def test_nan_guard_keeps_last_good_checkpoint(tmp_path):
    NaNRewardEnv.poison = False
    m = PPO(NaNRewardEnv, seed=0, log_dir=str(tmp_path), checkpoint_freq=16, **TINY)
    m.learn(32)
    good = m.policy.flat_params.copy()
    NaNRewardEnv.poison = True
    try:
        with pytest.raises(TrainingDiverged, match="checkpoint.rlstm"):
            m.learn(32)
    finally:
        NaNRewardEnv.poison = False
    np.testing.assert_array_equal(m.policy.flat_params, good)
    saved = PPO.load(tmp_path / "checkpoint.rlstm", env=NaNRewardEnv)
    np.testing.assert_array_equal(saved.policy.flat_params, good)
    assert saved.num_timesteps == 32


def test_ctrl_c_leaves_loadable_checkpoint(tmp_path):
    def interrupt(model):
        raise KeyboardInterrupt

    m = PPO("CartPole-v1", seed=0, log_dir=str(tmp_path), **TINY)
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


def test_bad_env_and_args():
    with pytest.raises(ValueError, match="unknown Gymnasium id"):
        PPO("NoSuchEnv-v0")
    with pytest.raises(TypeError, match="instance"):
        PPO(gym.make("CartPole-v1"))
    m = PPO("CartPole-v1", **TINY)
    with pytest.raises(ValueError, match="total_timesteps"):
        m.learn(0)
    with pytest.raises(TypeError, match="callback"):
        m.learn(16, callback=3)
    with pytest.raises(ValueError, match="gae_lambda"):
        REINFORCE("CartPole-v1", gae_lambda=0.9)


# ------------------------------------------------------------------------------ callbacks, logs
def test_callbacks_and_csv_log(tmp_path):
    ev = EvalCallback("CartPole-v1", eval_freq=16, n_episodes=2, reward_threshold=1.0,
                      best_model_path=str(tmp_path / "best.rlstm"))
    ck = CheckpointCallback(16, tmp_path / "ck.rlstm")
    m = PPO("CartPole-v1", seed=0, log_dir=str(tmp_path), **TINY)
    m.learn(160, callback=[ev, ck])
    assert m.num_timesteps == 16  # the first evaluation passed the threshold: stopped
    assert len(ev.results) == 1 and ev.results[0][1] >= 1.0
    assert os.path.exists(tmp_path / "best.rlstm") and os.path.exists(tmp_path / "ck.rlstm")
    with open(tmp_path / "progress.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 1 and float(rows[0]["timesteps"]) == 16
    assert float(rows[0]["eval_return_mean"]) == pytest.approx(ev.results[0][1])


def test_evaluate_is_seeded_and_counts_whole_episodes():
    m = PPO("CartPole-v1", seed=0, **TINY)
    r1 = agents.evaluate(m, "CartPole-v1", n_episodes=3, seed=5)
    r2 = agents.evaluate(m, "CartPole-v1", n_episodes=3, seed=5)
    assert r1 == r2 and 8 <= r1[0] <= 500
    with pytest.raises(ValueError, match="n_episodes"):
        agents.evaluate(m, "CartPole-v1", n_episodes=0)


def test_tensorboard_scalars_are_written_when_a_writer_exists(tmp_path, monkeypatch):
    calls = []

    class FakeWriter:
        def add_scalar(self, tag, value, step):
            calls.append((tag, value, step))

        def flush(self):
            pass

        def close(self):
            calls.append("closed")

    import agents.base as base
    monkeypatch.setattr(base, "_tensorboard_writer", lambda log_dir: FakeWriter())
    m = PPO("CartPole-v1", seed=0, log_dir=str(tmp_path), **TINY).learn(32)
    m.close()
    steps = sorted({c[2] for c in calls if c != "closed"})
    assert steps == [16, 32] and calls[-1] == "closed"
    tags = {c[0] for c in calls if c != "closed"}
    assert {"loss", "value_loss", "fps", "learning_rate"} <= tags
    without = PPO("CartPole-v1", seed=0, log_dir=str(tmp_path / "b"), tensorboard=False, **TINY)
    assert without.logger._tb is None
