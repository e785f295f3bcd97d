"""agents.env_factory: ids, callables and Env classes become factories of fresh envs; instances
and other things are refused with the fix."""
import gymnasium as gym
import numpy as np
import pytest

from agents.env_factory import env_id, make_env_fn


class Corridor(gym.Env):
    """A tiny env whose constructor takes a keyword."""
    observation_space = gym.spaces.Box(-1, 1, (1,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def __init__(self, length=3):
        self.length = length

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return np.zeros(1, np.float32), {}

    def step(self, action):
        return np.zeros(1, np.float32), 0.0, True, False, {}


def test_an_id_makes_a_fresh_env_each_call():
    fn = make_env_fn("Pendulum-v1")
    a, b = fn(), fn()
    try:
        assert a is not b and a.spec.id == b.spec.id == "Pendulum-v1"
    finally:
        a.close()
        b.close()
    env = make_env_fn("rlstm/CartPoleNoVel-v1")()  # the rlstm/ namespace is registered
    assert env.observation_space.shape == (2,)
    env.close()


@pytest.mark.parametrize("bad", ["NoSuchEnv-v0", "CartPole-v99", "not an id"])
def test_an_unknown_id_is_a_value_error_naming_it(bad):
    with pytest.raises(ValueError, match=rf"unknown Gymnasium id '{bad}'"):
        make_env_fn(bad)


def test_an_env_class_is_its_own_factory():
    fn = make_env_fn(Corridor)
    env = fn()
    assert type(env) is Corridor and fn() is not env


def test_a_callable_is_used_as_it_is():
    def factory():
        return Corridor(5)
    assert make_env_fn(factory) is factory


@pytest.mark.parametrize("env,match", [
    (Corridor(), r"an env instance is one env \(see as_env_source\), e\.g\. "
                 r"env=lambda: MyEnv\(\.\.\.\) makes more"),
    (dict, "env class must subclass gymnasium.Env, got dict"),
    (3, "env must be a Gymnasium id, an Env class, a callable, an Env instance or a VectorEnv, "
        "got int"),
    (None, "got NoneType"),
])
def test_other_things_are_refused_with_the_fix(env, match):
    with pytest.raises(TypeError, match=match):
        make_env_fn(env)


def test_env_id_is_kept_only_for_ids():
    assert env_id("CartPole-v1") == "CartPole-v1"
    assert env_id(Corridor) is None and env_id(lambda: Corridor()) is None


def test_the_module_colon_id_form_is_accepted():
    env = make_env_fn("agents.envs:rlstm/CartPoleNoVel-v1")()
    assert env.spec.id == "rlstm/CartPoleNoVel-v1"
    env.close()


class MissionEnv(gym.Env):
    """MiniGrid-shaped: a 5x5x3 image of codes 0..10, a direction, a text mission (which
    rlstm cannot encode) and a float position far from 0/1."""

    def __init__(self):
        self.observation_space = gym.spaces.Dict({
            "image": gym.spaces.Box(0, 255, (5, 5, 3), np.uint8),
            "direction": gym.spaces.Discrete(4),
            "mission": gym.spaces.Text(40),
            "pos": gym.spaces.Box(-100, 100, (2,), np.float32)})
        self.action_space = gym.spaces.Discrete(3)

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return self._obs(), {}

    def _obs(self):
        r = self.np_random
        return {"image": r.integers(0, 11, (5, 5, 3)).astype(np.uint8),
                "direction": int(r.integers(4)), "mission": "get the key",
                "pos": (50 + 10 * r.standard_normal(2)).astype(np.float32)}

    def step(self, action):
        self.t += 1
        return self._obs(), float(action == 1), self.t >= 10, False, {}


KEEP = ["image", "direction", "pos"]


def test_a_text_part_is_refused_with_the_obs_keys_that_leave_it_out():
    from agents import PPO
    with pytest.raises(TypeError, match=r"observation_space\['mission'\] .* got Text; rlstm "
                                        r"cannot encode that part: leave it out with the "
                                        r"setting obs_keys=\['direction', 'image', 'pos'\]"):
        PPO(MissionEnv)
    with pytest.raises(ValueError, match=r"obs_keys: the observation has no part 'imag'; its "
                                         r"parts are \['direction', 'image', 'mission', "
                                         r"'pos'\]"):
        PPO(MissionEnv, obs_keys=["imag"])
    with pytest.raises(TypeError, match="obs_keys selects parts of a Dict observation; this "
                                        "env's observation space is a Box"):
        PPO("CartPole-v1", obs_keys=["x"])


@pytest.mark.parametrize("env", [MissionEnv, "instance", "vector"])
def test_obs_keys_trains_saves_loads_and_evaluates_on_the_full_env(env, tmp_path):
    from agents import PPO, evaluate_policy
    if env == "instance":
        env = MissionEnv()
    elif env == "vector":
        env = gym.vector.SyncVectorEnv([MissionEnv, MissionEnv])
    n_envs = 1 if isinstance(env, gym.Env) else 2
    m = PPO(env, obs_keys=KEEP, n_envs=n_envs, n_steps=16, hidden_size=8, seed=0,
            policy_kwargs={"image_scale": None})
    m.learn(32)
    assert list(m.observation_space.spaces) == ["direction", "image", "pos"]
    assert m.obs_normalizer.config()["parts"] == [["pos"]]
    assert 40 < m.obs_normalizer.mean.mean() < 60  # the float part was normalised
    m.save(tmp_path / "m.rlstm")
    back = PPO.load(tmp_path / "m.rlstm", env=MissionEnv)
    assert back.config.obs_keys == tuple(KEEP) and back.policy.image_scale is None
    obs, _ = MissionEnv().reset(seed=4)  # the env's own observation, text part and all
    a1, _ = m.predict(obs, deterministic=True)
    a2, _ = back.predict(obs, deterministic=True)
    assert a1 == a2
    mean, _ = evaluate_policy(back, MissionEnv(), n_eval_episodes=2)
    assert 0 <= mean <= 10
    back.learn(16)  # continues on the filtered env


def test_image_scale_none_feeds_the_codes_as_they_are():
    from rlstm.policy import LSTMPolicy
    space = gym.spaces.Dict({"image": gym.spaces.Box(0, 255, (5, 5, 3), np.uint8)})
    img = np.random.default_rng(0).integers(0, 11, (2, 5, 5, 3)).astype(np.uint8)
    for scale, factor in ((None, 1.0), (255, 1 / 255), (10.0, 0.1)):
        p = LSTMPolicy(space, gym.spaces.Discrete(2), hidden_size=4, image_scale=scale)
        x = p.inputs.encode({"image": img}, (2,))
        np.testing.assert_allclose(x, img.reshape(2, -1) * factor, rtol=1e-6)
    for bad, exc in (("255", TypeError), (0, ValueError), (float("nan"), ValueError),
                     (True, TypeError)):
        with pytest.raises(exc, match="image_scale must be"):
            LSTMPolicy(space, gym.spaces.Discrete(2), image_scale=bad)


def test_evolution_takes_obs_keys_and_normalises_the_float_parts():
    from agents import OpenAIES
    es = OpenAIES(MissionEnv, obs_keys=KEEP, population_size=4, hidden_size=4, seed=0,
                  max_episode_steps=10)
    es.learn(200)
    assert es.obs_normalizer.size == 2 and es.obs_normalizer.rms.count > 1
    assert 40 < es.obs_normalizer.mean.mean() < 60
