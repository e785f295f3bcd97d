"""Evolution trainers on the trainer core: resume, learn/log/stop, predict, bad settings and
files, and (slow) learning CartPole."""
import os

import numpy as np
import pytest

from agents.es import CMAES, GA, PGPE, SNES, OpenAIES

TRAINERS = [(OpenAIES, {}), (PGPE, {}), (SNES, {}), (GA, {"truncation": 3}),
            (CMAES, {}), (CMAES, {"diagonal_above": 0})]


# ------------------------------------------------------------------ numbers by hand


# ------------------------------------------------------------------ noise table


# ------------------------------------------------------------------ GA genomes


# ------------------------------------------------------------------ reproducibility


@pytest.mark.parametrize("cls,kw", TRAINERS)
def test_resume_continues_the_same_run(cls, kw, tmp_path, small):
    straight = cls("CartPole-v1", seed=3, backend="serial", **small, **kw)
    for _ in range(4):
        straight._advance(0.0)
    first = cls("CartPole-v1", seed=3, backend="serial", **small, **kw)
    for _ in range(2):
        first._advance(0.0)
    path = tmp_path / "ckpt.npz"
    first.save(path)
    resumed = cls.load(path, backend="serial")
    assert resumed.generation == 2 and resumed.num_timesteps == first.num_timesteps
    for _ in range(2):
        resumed._advance(0.0)
    np.testing.assert_array_equal(resumed.center, straight.center)
    np.testing.assert_array_equal(resumed.policy.flat_params, straight.policy.flat_params)
    assert resumed.num_timesteps == straight.num_timesteps
    if straight.obs_normalizer is not None:
        np.testing.assert_array_equal(resumed.obs_normalizer.var, straight.obs_normalizer.var)


def test_learn_continues_logs_and_stops(tmp_path, small):
    m = OpenAIES("CartPole-v1", seed=0, backend="serial", log_dir=str(tmp_path), **small)
    m.learn(500)
    t1, g1 = m.num_timesteps, m.generation
    assert t1 >= 500 and g1 >= 1
    m.learn(300, callback=lambda model: False)  # a callback returning False stops
    assert m.generation == g1 + 1 and m.num_timesteps > t1
    m2 = OpenAIES("CartPole-v1", seed=0, backend="serial", reward_threshold=1.0, **small)
    m2.learn(100_000)
    assert m2.solved and m2.generation == 1
    lines = open(tmp_path / "progress.csv").read().strip().splitlines()
    assert lines[0].startswith("timesteps,iterations") and len(lines) == 1 + m.generation
    assert os.path.getsize(tmp_path / "learning_curve.png") > 1000
    resumed = OpenAIES.load(tmp_path / "checkpoint.rlstm", backend="serial")
    assert resumed.generation == m.generation
    np.testing.assert_array_equal(resumed.center, m.center)


def test_predict_single_batch_and_rng_isolation(small):
    m = OpenAIES("CartPole-v1", seed=0, backend="serial", **small)
    a, s = m.predict(np.zeros(4, np.float32), deterministic=True)
    assert np.ndim(a) == 0 and a in (0, 1)
    obs = np.random.default_rng(0).normal(size=(3, 4)).astype(np.float32)
    a, s = m.predict(obs, deterministic=True)
    assert a.shape == (3,)
    a2, _ = m.predict(obs, s, episode_start=np.ones(3, bool), deterministic=True)
    np.testing.assert_array_equal(a, a2)  # episode starts reset the state
    # stochastic predictions never touch the training generator
    before = m.rng.bit_generator.state
    m.predict(obs)
    assert m.rng.bit_generator.state == before


# ------------------------------------------------------------------ checks and files
def test_bad_config_and_files(tmp_path, small):
    with pytest.raises(ValueError, match="even"):
        OpenAIES("CartPole-v1", population_size=7)
    with pytest.raises(TypeError, match="unknown OpenAIESConfig settings"):
        OpenAIES("CartPole-v1", learning_rat=0.1)
    with pytest.raises(ValueError, match="backend"):
        OpenAIES("CartPole-v1", backend="threads")
    with pytest.raises(ValueError, match="truncation"):
        GA("CartPole-v1", population_size=4, truncation=5)
    with pytest.raises(ValueError, match="noise_table_size"):
        OpenAIES("CartPole-v1", noise_table_size=100)
    bogus = tmp_path / "x.npz"
    np.savez(bogus, a=np.zeros(3))
    with pytest.raises(ValueError, match="not an rlstm file"):
        OpenAIES.load(bogus)
    m = GA("CartPole-v1", seed=0, backend="serial", truncation=3, **small)
    m.save(tmp_path / "ga.npz")
    with pytest.raises(ValueError, match="GA"):
        OpenAIES.load(tmp_path / "ga.npz")


# ------------------------------------------------------------------ Ray


# ------------------------------------------------------------------ learning (slow)
def _evaluate(model, n=10):
    from agents import evaluate
    return evaluate(model, "CartPole-v1", n_episodes=n, deterministic=True, seed=1000)[0]


@pytest.mark.slow
@pytest.mark.parametrize("cls", [OpenAIES, GA, CMAES])
def test_solves_cartpole(cls):
    m = cls("CartPole-v1", seed=0, backend="process", n_workers=2, reward_threshold=490)
    m.learn(1_000_000)
    m.close()
    assert m.num_timesteps <= 1_000_000 + 70_000
    assert _evaluate(m) >= 475


# ------------------------------------------------------------------ Evolino


