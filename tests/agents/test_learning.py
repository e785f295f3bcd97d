"""Full learning runs (slow; CI still runs them). Seeded; each stops once solved.

Thresholds are the issue's: a mean deterministic evaluation return >= 475 over 10 episodes
on CartPole-v1 and on the velocity-masked rlstm/CartPoleNoVel-v1, within 100k steps, with the
defaults, over 3 seeds for PPO (one for A2C and REINFORCE). Each run stops at the threshold,
except those that check that the final policy stays solved.
The continuous tasks use the tuned settings of ``agents.hyperparams`` (gSDE exploration).
"""
import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from agents import A2C, PPO, REINFORCE, EvalCallback, evaluate
from agents.hyperparams import tuned

pytestmark = pytest.mark.slow


def _solve(cls, env, budget, seed=0, eval_freq=10_000, threshold=475.0, n_episodes=10, **kw):
    cb = EvalCallback(env, eval_freq=eval_freq, n_episodes=n_episodes, seed=1_000,
                      reward_threshold=threshold)
    with threadpool_limits(1):
        model = cls(env, seed=seed, **kw).learn(budget, callback=cb)
    best = max((m for _, m, _ in cb.results), default=-np.inf)
    return model, best, cb.results


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("env", ["CartPole-v1", "rlstm/CartPoleNoVel-v1"])
def test_ppo_defaults_solve_cartpole_within_100k(env, seed):
    model, best, results = _solve(PPO, env, 100_000, seed=seed)
    assert best >= 475.0, results
    assert model.num_timesteps <= 100_000 + model.config.n_envs * model.config.n_steps


@pytest.mark.parametrize("env, seed, threshold", [("rlstm/CartPoleNoVel-v1", 1, 475.0),
                                                  ("CartPole-v1", 0, 475.0),
                                                  ("Acrobot-v1", 0, -100.0)])
def test_ppo_defaults_final_policy_stays_solved(env, seed, threshold):
    """The seeds whose final policy fell back (or never got there) with the earlier defaults
    (no entropy bonus): the final evaluation, the mean of the last two evaluations as
    benchmarks/learning_results.py reports it, is at or above the threshold."""
    budget = tuned("ppo", env)[1]
    cb = EvalCallback(env, eval_freq=5_000, n_episodes=10, seed=1_000)
    with threadpool_limits(1):
        model = PPO(env, seed=seed).learn(budget, callback=cb)
    last_two = [cb.results[-1][1], evaluate(model, env, 10, True, seed=1_000)[0]]
    assert np.mean(last_two) >= threshold, cb.results


def test_ppo_recalls_a_cue_across_30_to_80_steps_of_distractors():
    """rlstm/DelayedRecall-v0 with the settings rlstm train picks (whole-rollout BPTT over
    256 steps, forget-gate bias +3): 100 evaluation episodes answer the query with a mean
    return >= 0.9 within the 500k budget (a memoryless policy scores 0.25)."""
    settings, budget = tuned("ppo", "rlstm/DelayedRecall-v0")
    _, best, results = _solve(PPO, "rlstm/DelayedRecall-v0", budget, eval_freq=25_000,
                              threshold=0.9, n_episodes=100, **settings)
    assert best >= 0.9, results


def test_ppo_with_gsde_solves_velocity_masked_mountain_car_within_300k():
    """The Zoo's RecurrentPPO: 91.2 +/- 1.9 after 300k steps; solved means >= 90."""
    settings, budget = tuned("ppo", "rlstm/MountainCarContinuousNoVel-v0")
    _, best, results = _solve(PPO, "rlstm/MountainCarContinuousNoVel-v0", budget,
                              eval_freq=16_384, threshold=90.0, **settings)
    assert best >= 90.0, results


def test_ppo_with_gsde_swings_up_velocity_masked_pendulum_within_100k():
    """A random policy scores about -1200; the Zoo's RecurrentPPO -218 +/- 140 at 100k."""
    settings, budget = tuned("ppo", "rlstm/PendulumNoVel-v1")
    _, best, results = _solve(PPO, "rlstm/PendulumNoVel-v1", budget, eval_freq=8_192,
                              threshold=-250.0, **settings)
    assert best >= -300.0, results


def test_a2c_solves_cartpole():
    _, best, results = _solve(A2C, "CartPole-v1", tuned("a2c", "CartPole-v1")[1])
    assert best >= 475.0, results


def test_reinforce_solves_cartpole():
    _, best, results = _solve(REINFORCE, "CartPole-v1", tuned("reinforce", "CartPole-v1")[1])
    assert best >= 475.0, results


def test_ppo_bridges_a_50_step_tmaze(load_example):
    """Bakker's T-maze at corridor length 50, via the curriculum of examples/."""
    module = load_example("tmaze_curriculum")
    with threadpool_limits(1):
        assert module.main(["--seed", "0"]) == 0
