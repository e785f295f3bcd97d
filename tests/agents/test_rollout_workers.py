"""Policy gradient on backends: rollout workers on this process, local processes and Ray give the
same run for the same number of workers, survive a killed worker, and leave no process behind."""
import os
import signal
import threading
import time

import gymnasium as gym
import numpy as np
import pytest

from agents import A2C, PPO, REINFORCE
from agents.backends import WorkerError

SMALL = dict(n_envs=4, n_steps=16, seq_len=8, hidden_size=8, n_epochs=2)


def run(cls=PPO, env="CartPole-v1", steps=256, **kw):
    m = cls(env, seed=3, **{**({k: v for k, v in SMALL.items() if k != "n_epochs"}
                               if cls is not PPO else SMALL), **kw})
    try:
        m.learn(steps)
        return m.policy.flat_params.copy(), list(m.episode_returns), \
            m.obs_normalizer.state_dict(), m.rng.bit_generator.state
    finally:
        m.close()


def same(a, b):
    np.testing.assert_array_equal(a[0], b[0])
    assert a[1] == b[1] and a[3] == b[3]
    for k in a[2]:
        np.testing.assert_array_equal(a[2][k], b[2][k])


@pytest.mark.parametrize("cls", [PPO, A2C, REINFORCE])
def test_one_process_worker_is_the_serial_run(cls):
    same(run(cls), run(cls, backend="process", n_workers=1))


def test_two_workers_give_one_run_on_every_backend_and_every_time():
    serial = run(backend="serial", n_workers=2)
    same(serial, run(backend="process", n_workers=2))
    same(serial, run(backend="process", n_workers=2))
    one = run()
    assert not np.array_equal(serial[0], one[0])  # two slices draw from two streams


def test_ray_workers_give_the_serial_run():
    pytest.importorskip("ray")
    import ray
    try:
        same(run(), run(backend="ray", n_workers=1))
        same(run(backend="serial", n_workers=2), run(backend="ray", n_workers=2))
    finally:
        ray.shutdown()


def test_each_worker_steps_its_own_slice_of_the_envs_with_global_seeds():
    """Env i is reset with seed + i whichever worker holds it: with the policy's sampling
    made deterministic, 1, 2 and 3 workers see the same episodes."""
    outs = []
    for k in (1, 2, 3):
        m = PPO("CartPole-v1", seed=0, n_envs=3, n_steps=8, hidden_size=4, backend="serial",
                n_workers=k, normalize_obs=False, normalize_reward=False,
                policy_kwargs={"action_init_scale": 0.0})
        m._start_learning()
        m._collect()
        outs.append(m.buffer.obs.copy())
        m.close()
    np.testing.assert_array_equal(outs[0][0], outs[1][0])  # the reset observations
    np.testing.assert_array_equal(outs[0][0], outs[2][0])


class SlowCartPole(gym.Wrapper):
    """CartPole whose steps take 2 ms, so a kill lands in the middle of a rollout."""

    def __init__(self):
        super().__init__(gym.make("CartPole-v1"))

    def step(self, action):
        time.sleep(0.002)
        return self.env.step(action)


def _kill_later(pid_of, delay=0.3):
    def kill():
        try:
            os.kill(pid_of(), signal.SIGKILL)
        except (ProcessLookupError, TypeError):
            pass
    t = threading.Timer(delay, kill)
    t.start()
    return t


def test_a_worker_killed_mid_rollout_is_replaced_and_training_completes():
    m = PPO(SlowCartPole, seed=1, backend="process", n_workers=2, **SMALL)
    try:
        m.learn(64)  # workers up
        pid = m.workers.pids()[1]
        _kill_later(lambda: pid).join(0)
        m.learn(512)
        assert m.workers.restarts >= 1 and pid not in m.workers.pids()
        assert m.num_timesteps >= 576 and np.isfinite(m.policy.flat_params).all()
    finally:
        m.close()


def test_a_ray_worker_killed_mid_rollout_is_replaced():
    ray = pytest.importorskip("ray")
    m = PPO(SlowCartPole, seed=1, backend="ray", n_workers=2, **SMALL)
    try:
        m.learn(64)
        actor = m.workers.actors[0]
        pid = ray.get(actor.pid.remote())
        _kill_later(lambda: pid).join(0)
        m.learn(512)
        assert m.workers.replaced >= 1 and m.num_timesteps >= 576
    finally:
        m.close()
        ray.shutdown()


def test_a_worker_that_keeps_dying_is_a_clear_error():
    class Dies(gym.Wrapper):
        def __init__(self):
            super().__init__(gym.make("CartPole-v1"))

        def step(self, action):
            os.kill(os.getpid(), signal.SIGKILL)
    m = PPO(Dies, seed=0, backend="process", n_workers=2, **SMALL)
    try:
        with pytest.raises(WorkerError, match=r"worker process \d died 3 times in one call"):
            m.learn(64)
        assert m.iterations == 0 and np.isfinite(m.policy.flat_params).all()
    finally:
        m.close()


def test_an_env_fault_in_a_worker_reaches_the_trainer_as_itself():
    from agents.env_factory import EnvOutputError

    class NaNReward(gym.Wrapper):
        def __init__(self):
            super().__init__(gym.make("CartPole-v1"))

        def step(self, action):
            o, r, te, tr, i = self.env.step(action)
            return o, float("nan"), te, tr, i
    m = PPO(NaNReward, seed=0, backend="process", n_workers=2, **SMALL)
    try:
        with pytest.raises(EnvOutputError, match="reward of nan"):
            m.learn(64)
        assert m.workers.restarts == 0  # an error from the env is not a dead worker
    finally:
        m.close()


def test_close_leaves_no_worker_process():
    m = PPO("CartPole-v1", seed=0, backend="process", n_workers=2, **SMALL)
    m.learn(64)
    pids = m.workers.pids()
    m.close()
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
