"""The on-policy rollout: stored states and resets replay exactly, truncation bootstraps, autoreset
modes, gSDE redraws."""
import gymnasium as gym
import numpy as np
import pytest

from agents import PPO
from agents.buffers import RolloutBuffer


def _short_cartpole(steps=5):
    return lambda: gym.make("rlstm/CartPoleNoVel-v1", max_episode_steps=steps)


@pytest.mark.parametrize("mode", ["next_step", "same_step"])
def test_rollout_hidden_state_resets_and_replays(mode):
    """evaluate() over the stored sequences reproduces what act() computed step by step: the
    stored sequence-start states and the episode-start resets are right."""
    m = PPO(_short_cartpole(5), seed=0, n_envs=3, n_steps=24, seq_len=8, hidden_size=6,
            dtype="float64", autoreset_mode=mode, normalize_obs=False)
    m._start_learning()
    m._collect()
    buf = m.buffer
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
        m._start_learning()
        m._collect()  # first episode: steps 0..3, truncated at 3
        buf = m.buffer
        assert buf.truncated[3, 0] and buf.episode_starts[0, 0]
        vals[mode] = (buf.final_values[3, 0], buf.values[:, 0].copy(), buf.advantages[:, 0])
    assert vals["next_step"][0] == pytest.approx(vals["same_step"][0], rel=1e-12)
    np.testing.assert_allclose(vals["next_step"][2], vals["same_step"][2], rtol=1e-12)


def test_async_vector_env_gives_the_same_run_as_sync(tiny):
    a = PPO("CartPole-v1", seed=5, vec_env="sync", **tiny).learn(32)
    b = PPO("CartPole-v1", seed=5, vec_env="async", **tiny)
    try:
        b.learn(32)
    finally:
        b.close()
    np.testing.assert_array_equal(a.policy.flat_params, b.policy.flat_params)
    assert a.episode_returns == b.episode_returns


def test_discrete_observation_space_is_not_normalized(tiny):
    m = PPO("FrozenLake-v1", seed=0, **tiny).learn(16)
    assert m.obs_normalizer is None
    action, _ = m.predict(3)
    assert m.action_space.contains(int(action))


@pytest.mark.parametrize("freq,draws", [(-1, 1), (4, 3), (1, 12)])
def test_trainer_redraws_exploration_matrices_every_sde_sample_freq_steps(freq, draws,
                                                                          monkeypatch):
    model = PPO("Pendulum-v1", seed=0, use_sde=True, sde_sample_freq=freq, n_envs=2,
                n_steps=12, seq_len=4, hidden_size=8, n_epochs=1)
    assert model.policy.use_sde
    calls = []
    model.learn(8)  # one rollout starts the worker; count the next two
    worker_policy = model.workers.workers[0].policy  # the serial backend's one worker
    orig = worker_policy.sample_sde_noise

    def counting(B, rng=None):
        calls.append(B)
        return orig(B, rng)

    monkeypatch.setattr(worker_policy, "sample_sde_noise", counting)
    model.learn(48)
    assert calls == [2] * (2 * draws)  # two rollouts
    assert np.isfinite(model.policy.flat_params).all()


def test_use_sde_is_ignored_without_a_box_action():
    model = PPO("CartPole-v1", seed=0, use_sde=True, n_envs=2, n_steps=8, hidden_size=4)
    assert not model.policy.use_sde
    model.learn(16)


@pytest.mark.parametrize("mode", ["next_step", "same_step"])
def test_refreshed_states_are_what_the_current_weights_reach_step_by_step(mode):
    """RolloutBuffer.refresh_states: with the weights that collected the rollout it changes
    nothing beyond rounding (one GEMM over a chunk's inputs against one per step); with other
    weights each chunk's state is what act() reaches, step by step, from the
    first chunk's state; the sequences and minibatches see the new states."""
    m = PPO(_short_cartpole(5), seed=0, n_envs=3, n_steps=24, seq_len=8, hidden_size=6,
            autoreset_mode=mode, mlp_hidden=[5])
    m._start_learning()
    m._collect()
    buf = m.buffer
    stored = tuple(s.copy() for s in buf.states)
    seq = buf.sequences()
    buf.refresh_states(m.policy.advance)
    for a, b in zip(buf.states, stored):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)
    rng = np.random.default_rng(1)
    m.policy.flat_params[...] += 0.1 * rng.standard_normal(m.policy.flat_params.size)
    buf.refresh_states(m.policy.advance)
    state = tuple(s[0] for s in stored)
    np.testing.assert_array_equal(buf.states[0][0], stored[0][0])  # the first chunk's start
    for t in range(buf.n_steps):
        if t % buf.seq_len == 0:
            for a, b in zip(buf.states, state):
                np.testing.assert_allclose(a[t // buf.seq_len], b, rtol=1e-6, atol=1e-6)
        _, _, _, state = m.policy.act(buf.obs[t], state, buf.episode_starts[t])
    assert max(np.abs(a - b).max() for a, b in zip(buf.states, stored)) > 1e-3
    assert buf.sequences() is seq
    np.testing.assert_array_equal(seq["states"][0], RolloutBuffer._merge_state(buf.states[0]))
    m.close()


def test_refresh_states_in_ppo():
    """refresh_states=True changes nothing when there is nothing stale (one chunk per env, or
    one epoch) and changes the run when later epochs start chunks from refreshed states."""
    def run(**kw):
        m = PPO("rlstm/CartPoleNoVel-v1", seed=3, n_envs=2, n_steps=16, hidden_size=6,
                n_minibatches=2, **kw)
        m.learn(64)
        m.close()
        return m.policy.flat_params.copy()
    np.testing.assert_array_equal(run(seq_len=16, refresh_states=True),
                                  run(seq_len=16, refresh_states=False))
    np.testing.assert_array_equal(run(seq_len=4, n_epochs=1, refresh_states=True),
                                  run(seq_len=4, n_epochs=1, refresh_states=False))
    assert np.abs(run(seq_len=4, n_epochs=3, refresh_states=True)
                  - run(seq_len=4, n_epochs=3, refresh_states=False)).max() > 1e-6
    with pytest.raises(RuntimeError, match="compute_returns_and_advantages"):
        RolloutBuffer(8, 2, 4, 0.99, 0.95).refresh_states(None)
