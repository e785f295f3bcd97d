"""The rlstm/ Gymnasium namespace: every env passes check_env and hides what it says it hides."""
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import agents.envs as envs


@pytest.mark.parametrize("env_id", envs.registered_ids())
def test_check_env(env_id):
    env = gym.make(env_id)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        check_env(env, skip_render_check=True)
    env.close()


@pytest.mark.parametrize("masked, base, keep", [
    ("rlstm/CartPoleNoVel-v1", "CartPole-v1", [0, 2]),
    ("rlstm/PendulumNoVel-v1", "Pendulum-v1", [0, 1]),
    ("rlstm/MountainCarContinuousNoVel-v0", "MountainCarContinuous-v0", [0]),
    pytest.param("rlstm/LunarLanderNoVel-v3", "LunarLander-v3", [0, 1, 4, 6, 7],
                 marks=pytest.mark.skipif(not envs.HAVE_BOX2D,
                                          reason="needs box2d and pygame (the test extra)")),
])
def test_masked_env_matches_base(masked, base, keep):
    m, b = gym.make(masked), gym.make(base)
    m.action_space.seed(0)
    assert m.spec.max_episode_steps == b.spec.max_episode_steps
    om, _ = m.reset(seed=3)
    ob, _ = b.reset(seed=3)
    np.testing.assert_array_equal(om, ob[keep])
    for _ in range(20):
        a = m.action_space.sample()
        om, rm, tm, trm, _ = m.step(a)
        ob, rb, tb, trb, _ = b.step(a)
        np.testing.assert_array_equal(om, ob[keep])
        assert (rm, tm, trm) == (rb, tb, trb)
        if tm or trm:
            break
    assert m.observation_space.shape == (len(keep),)


def test_lunar_lander_is_registered_exactly_when_box2d_and_pygame_are_there():
    assert ("rlstm/LunarLanderNoVel-v3" in envs.registered_ids()) == envs.HAVE_BOX2D
    if envs.HAVE_BOX2D:
        env = gym.make("rlstm/LunarLanderNoVel-v3", continuous=True)  # kwargs reach the base
        assert env.action_space.shape == (2,) and env.observation_space.shape == (5,)


def test_cartpole_novel_truncates_at_500():
    env = gym.make("rlstm/CartPoleNoVel-v1")
    assert isinstance(env, gym.wrappers.TimeLimit) and env.spec.max_episode_steps == 500
    inner = env.env
    while hasattr(inner, "env"):
        assert not isinstance(inner, gym.wrappers.TimeLimit), "exactly one TimeLimit"
        inner = inner.env


def test_tmaze_rewards_and_observations():
    env = gym.make("rlstm/TMaze-v0", corridor_length=3)
    for seed in range(6):
        obs, info = env.reset(seed=seed)
        up = info["goal_up"]
        np.testing.assert_array_equal(obs, [0, 1, 1] if up else [1, 1, 0])
        obs, r, term, trunc, _ = env.step(3)  # west wall
        assert r == pytest.approx(-0.1) and not term
        for k in range(3):
            obs, r, term, trunc, _ = env.step(1)
            assert r == 0.0 and not term
        np.testing.assert_array_equal(obs, [0, 1, 0])
        obs, r, term, trunc, _ = env.step(0 if up else 2)
        assert term and not trunc and r == 4.0
        env.reset(seed=seed)
        for _ in range(3):
            env.step(1)
        _, r, term, _, _ = env.step(2 if up else 0)
        assert term and r == pytest.approx(-0.1)


def test_tmaze_truncates_and_validates():
    env = envs.TMazeEnv(corridor_length=2, max_episode_steps=4)
    env.reset(seed=0)
    outs = [env.step(3) for _ in range(4)]
    assert [o[3] for o in outs] == [False, False, False, True]
    assert not any(o[2] for o in outs)
    with pytest.raises(ValueError, match="corridor_length"):
        envs.TMazeEnv(corridor_length=0)
    with pytest.raises(TypeError, match="corridor_length"):
        envs.TMazeEnv(corridor_length=2.5)
    with pytest.raises(ValueError, match="max_episode_steps"):
        envs.TMazeEnv(corridor_length=10, max_episode_steps=5)


def test_tmaze_goal_side_is_random_and_seeded():
    env = envs.TMazeEnv(5)
    goals = [env.reset(seed=s)[1]["goal_up"] for s in range(40)]
    assert 5 < sum(goals) < 35
    assert goals == [env.reset(seed=s)[1]["goal_up"] for s in range(40)]


def test_mask_observation_validates():
    with pytest.raises(ValueError, match="keep"):
        envs.MaskObservation(gym.make("CartPole-v1"), keep=[7])
    with pytest.raises(TypeError, match="1-D Box"):
        envs.MaskObservation(gym.make("FrozenLake-v1"), keep=[0])


def _recall_episode(env, seed, answer=None):
    """Observations, rewards and flags of one episode; ``answer`` is the query's action
    (None: the cue itself)."""
    obs, info = env.reset(seed=seed)
    observations, steps = [obs], []
    while True:
        query = obs[-1] == 1.0
        action = (info["cue"] if answer is None else answer) if query else \
            int(env.action_space.sample())
        obs, r, term, trunc, info = env.step(action)
        steps.append((r, term, trunc))
        if term or trunc:
            return observations, steps, info
        observations.append(obs)


@pytest.mark.parametrize("distractors", [True, False])
def test_delayed_recall_cue_delay_query(distractors):
    k = 3
    env = gym.make("rlstm/DelayedRecall-v0", n_symbols=k, min_delay=4, max_delay=9,
                   distractors=distractors)
    assert env.observation_space.shape == (k + 2,) and env.action_space.n == k
    env.action_space.seed(0)
    delays, cues = set(), set()
    for seed in range(60):
        observations, steps, info = _recall_episode(env, seed)
        cue, delay = info["cue"], info["delay"]
        delays.add(delay)
        cues.add(cue)
        assert 4 <= delay <= 9 and len(observations) == delay + 2 and len(steps) == delay + 2
        expected_cue = np.zeros(k + 2)
        expected_cue[[cue, k]] = 1.0
        np.testing.assert_array_equal(observations[0], expected_cue)  # the cue, flagged
        for o in observations[1:-1]:  # the delay: one distractor symbol, or nothing; no flag
            assert o[k:].tolist() == [0.0, 0.0]
            assert o[:k].sum() == (1.0 if distractors else 0.0)
        np.testing.assert_array_equal(observations[-1], np.eye(k + 2)[k + 1])  # the query
        assert [s[0] for s in steps] == [0.0] * (delay + 1) + [1.0]  # only the answer pays
        assert [s[1] for s in steps] == [False] * (delay + 1) + [True]
        assert not any(s[2] for s in steps)
    assert delays == set(range(4, 10)) and cues == set(range(k))


def test_delayed_recall_wrong_answer_distractors_and_seeding():
    env = envs.DelayedRecallEnv(n_symbols=4, min_delay=30, max_delay=80, wrong_reward=-0.5)
    env.action_space.seed(1)
    _, info = env.reset(seed=5)
    wrong = (info["cue"] + 1) % 4
    _, steps, _ = _recall_episode(env, 5, answer=wrong)
    assert steps[-1][:2] == (-0.5, True)
    # distractors are the cue symbols themselves, uniformly drawn
    observations, _, _ = _recall_episode(env, 6)
    symbols = [int(np.argmax(o[:4])) for o in observations[1:-1]]
    assert set(symbols) == {0, 1, 2, 3}
    # reset(seed) fixes cue, delay and distractors
    a, _, ia = _recall_episode(env, 7)
    b, _, ib = _recall_episode(env, 7)
    assert ia == ib and all(np.array_equal(x, y) for x, y in zip(a, b))
    with pytest.raises(RuntimeError, match="reset"):
        env.step(0)  # the query has been answered


@pytest.mark.parametrize("kwargs, error, match", [
    ({"n_symbols": 1}, ValueError, "n_symbols"),
    ({"n_symbols": 2.0}, TypeError, "n_symbols"),
    ({"min_delay": -1}, ValueError, "min_delay"),
    ({"min_delay": 10, "max_delay": 5}, ValueError, "max_delay"),
    ({"max_delay": True}, TypeError, "max_delay"),
    ({"distractors": 1}, TypeError, "distractors"),
    ({"wrong_reward": 1.0}, ValueError, "wrong_reward"),
    ({"wrong_reward": float("nan")}, ValueError, "wrong_reward"),
    ({"wrong_reward": "0"}, TypeError, "wrong_reward"),
    ({"render_mode": "human"}, ValueError, "render_mode"),
])
def test_delayed_recall_validates(kwargs, error, match):
    with pytest.raises(error, match=match):
        envs.DelayedRecallEnv(**kwargs)
    env = envs.DelayedRecallEnv()
    env.reset(seed=0)
    with pytest.raises(ValueError, match="action"):
        env.step(4)


def test_delayed_recall_is_registered_with_its_threshold():
    spec = gym.spec("rlstm/DelayedRecall-v0")
    assert spec.reward_threshold == 0.9 and spec.max_episode_steps is None
    env = gym.make("rlstm/DelayedRecall-v0", render_mode="ansi")
    env.reset(seed=0)
    assert env.render().startswith("cue ")


@pytest.mark.parametrize("env_id", ["rlstm/TMaze-v0", "rlstm/DelayedRecall-v0"])
def test_rgb_array_rendering_so_that_sb3s_make_vec_env_can_build_them(env_id):
    """SB3's make_vec_env asks every id for render_mode="rgb_array" (and only falls back on a
    TypeError): both envs draw their state as an RGB image that changes with it."""
    env = gym.make(env_id, render_mode="rgb_array")
    env.reset(seed=0)
    first = env.render()
    assert first.dtype == np.uint8 and first.ndim == 3 and first.shape[2] == 3
    env.step(1)
    second = env.render()
    assert second.shape == first.shape and not np.array_equal(first, second)
    env.close()
    with pytest.raises(ValueError, match="render_mode"):
        type(env.unwrapped)(render_mode="bogus")
