"""The evolution worker: lockstep rollouts equal one member at a time; structured spaces on every
backend."""
import gymnasium as gym
import numpy as np
import pytest

from agents.es import SNES


class _DictObsEnv(gym.Env):
    """A tiny env with Dict observations and a Tuple action: the target is shown at step 0."""

    observation_space = gym.spaces.Dict({"pos": gym.spaces.Box(-1, 1, (2,), np.float32),
                                         "flag": gym.spaces.Discrete(2)})
    action_space = gym.spaces.Tuple((gym.spaces.Discrete(2),
                                     gym.spaces.Box(-1, 1, (1,), np.float32)))

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        self.t, self.flag = 0, int(self.np_random.integers(2))
        return {"pos": np.zeros(2, np.float32), "flag": self.flag}, {}

    def step(self, action):
        self.t += 1
        r = float(int(action[0]) == self.flag) - float(abs(action[1][0]))
        obs = {"pos": np.full(2, self.t / 10, np.float32), "flag": 0}
        return obs, r, False, self.t >= 5, {}


def test_structured_spaces_run_and_match_serial_vs_process(small):
    centers = []
    for backend in ("serial", "process"):
        m = SNES(_DictObsEnv, seed=0, backend=backend, n_workers=2, **small)
        assert m.obs_normalizer.config()["parts"] == [["pos"]]  # its float Box part
        for _ in range(3):
            row = m._advance(0.0)
        m.close()
        assert row["steps"] == 5 * (8 + 1)
        centers.append(m.center.copy())
    np.testing.assert_array_equal(*centers)


@pytest.mark.parametrize("env,E", [("CartPole-v1", 1), ("CartPole-v1", 3),
                                   ("rlstm/PendulumNoVel-v1", 2), (_DictObsEnv, 2)])
def test_lockstep_rollout_equals_one_member_at_a_time(env, E, small):
    m = SNES(env, seed=1, backend="serial", **small)
    worker = m._evaluator()
    rng = np.random.default_rng(0)
    idx = m.noise.sample_index(rng, m.num_params, 6)
    payload = {"center": m.center, "sigma": np.full(m.num_params, 0.3)}
    if m.obs_normalizer is not None:
        payload["obs_normalizer"] = m.obs_normalizer
    jobs = [("noise", (int(i), 1.0), rng.integers(1000, size=E).tolist(), k == 0)
            for k, i in enumerate(idx)]
    together = worker.evaluate(payload, jobs)
    alone = [worker.evaluate(payload, [j])[0] for j in jobs]
    lengths = set()
    for t, a in zip(together, alone):
        assert t[0] == a[0] and t[1] == a[1]
        np.testing.assert_array_equal(t[2], a[2])
        lengths.add(t[1])
    assert m.obs_normalizer is None or together[0][3][0] == alone[0][3][0]
    if env == "CartPole-v1":
        assert len(lengths) > 1  # members finish at different steps: compaction happened
