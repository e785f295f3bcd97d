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
    (3, "env must be a Gymnasium id, an Env class, a callable, an Env instance or a VectorEnv, got int"),
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
