"""Evolution trainers: fitness shaping, gradient estimates, noise table, GA genomes, backends,
resume, save/load, and (slow) learning CartPole."""
import os
import time

import gymnasium as gym
import numpy as np
import pytest

from agents.backends import split_jobs
from agents.es import (CMAES, GA, PGPE, SNES, Evaluator, OpenAIES, centered_ranks, es_gradient,
                       nes_utilities)
from agents.noise import NoiseTable

SMALL = dict(population_size=8, center_episodes=1, max_episode_steps=40,
             noise_table_size=50_000)
TRAINERS = [(OpenAIES, {}), (PGPE, {}), (SNES, {}), (GA, {"truncation": 3}),
            (CMAES, {}), (CMAES, {"diagonal_above": 0})]


# ------------------------------------------------------------------ numbers by hand
def test_centered_ranks_hand_cases():
    np.testing.assert_allclose(centered_ranks([1.0, 5.0, 3.0]), [-0.5, 0.5, 0.0])
    np.testing.assert_allclose(centered_ranks([[1.0, 2.0], [3.0, 0.0]]),
                               [[-1 / 6, 1 / 6], [0.5, -0.5]])
    np.testing.assert_array_equal(centered_ranks([7.0]), [0.0])
    r = centered_ranks(np.random.default_rng(0).normal(size=11))
    assert r.sum() == pytest.approx(0.0) and r.min() == -0.5 and r.max() == 0.5


def test_antithetic_gradient_hand_case():
    noise = NoiseTable(size=10, seed=0)
    t = noise.table.astype(np.float64)
    # returns: pair 0 (+1, -2) -> ranks of [1, 2, 3, 0] are [1, 2, 3, 0] / 3 - 0.5
    g = es_gradient(noise, [0, 4], [1.0, 3.0], [2.0, 0.0], 3)
    w = np.array([(1 / 3 - 0.5) - (2 / 3 - 0.5), (1.0 - 0.5) - (0 - 0.5)])  # [-1/3, 1]
    want = (w[0] * t[0:3] + w[1] * t[4:7]) / 4
    np.testing.assert_allclose(g, want, rtol=1e-12)
    np.testing.assert_allclose(w, [-1 / 3, 1.0])


def test_antithetic_estimate_points_uphill():
    # f(theta) = a . theta: ranks are monotone in eps . a, so g must correlate with a
    noise = NoiseTable(size=200_000, seed=1)
    a = np.array([3.0, -1.0, 0.5, 0.0])
    rng = np.random.default_rng(0)
    idx = noise.sample_index(rng, 4, 500)
    eps = noise.batch(idx, 4).astype(np.float64)
    g = es_gradient(noise, idx, eps @ a, -(eps @ a), 4)
    cos = g @ a / np.linalg.norm(g) / np.linalg.norm(a)
    assert cos > 0.95


def test_nes_utilities_hand_case():
    u = nes_utilities(4)
    raw = np.array([np.log(3), np.log(3) - np.log(2), 0.0, 0.0])
    np.testing.assert_allclose(u, raw / raw.sum() - 0.25)
    assert u.sum() == pytest.approx(0.0)


# ------------------------------------------------------------------ noise table
def test_noise_table_index_arithmetic():
    t = NoiseTable(size=10, seed=5)
    np.testing.assert_array_equal(t.get(3, 4), t.table[3:7])
    np.testing.assert_array_equal(t.batch([0, 6], 4), np.stack([t.table[0:4], t.table[6:10]]))
    idx = t.sample_index(np.random.default_rng(0), 7, 2000)
    assert idx.min() == 0 and idx.max() == 3  # the last slice ends exactly at the table's end
    assert set(np.unique(idx)) == {0, 1, 2, 3}
    with pytest.raises(ValueError, match="out of range"):
        t.get(4, 7)
    with pytest.raises(ValueError, match="noise indices"):
        t.batch([-1], 2)
    with pytest.raises(ValueError, match="noise_table_size"):
        t.check_dim(11)
    np.testing.assert_allclose(t.weighted_sum([1, 2], [2.0, -1.0], 3),
                               2 * t.table[1:4].astype(float) - t.table[2:5])
    # the same (size, seed) gives the same table in every process
    np.testing.assert_array_equal(NoiseTable(size=10, seed=5).table,
                                  np.random.default_rng(5).standard_normal(10, np.float32))


def test_split_jobs_is_contiguous_and_balanced():
    parts = split_jobs(list(range(10)), 3)
    assert [len(p) for p in parts] == [3, 4, 3] or [len(p) for p in parts] == [3, 3, 4]
    assert sum(parts, []) == list(range(10))
    assert split_jobs([1, 2], 5) == [[1], [2]]


# ------------------------------------------------------------------ GA genomes
def test_ga_seed_lists_rebuild_the_stored_weights():
    m = GA("CartPole-v1", seed=0, backend="serial", truncation=3, **SMALL)
    for _ in range(3):
        m._generation()
    assert len(m.elite) >= 1
    worker = Evaluator(m.env_fn, m.policy, m.noise.spec(), 40, False)
    rebuilt = worker.genome_params(m._base, m.config.sigma, m.elite)
    np.testing.assert_array_equal(rebuilt, m.center)
    np.testing.assert_array_equal(m.genome_params(m.elite), m.center)
    manual = m._base.copy()
    for i in m.elite:  # the mutation sigma * eps is formed in the table's float32
        manual = manual + (np.float32(m.config.sigma) * m.noise.table[i:i + m.num_params])
    np.testing.assert_allclose(m.center, manual, rtol=0, atol=1e-12)
    # a genome job and the vector it stands for play the same episode identically
    payload = {"base": m._base, "sigma": m.config.sigma, "center": m.center}
    r1 = worker.evaluate(payload, [("genome", m.elite, [7, 8], False)])
    r2 = worker.evaluate(payload, [("vector", m.center, [7, 8], False)])
    assert r1[0][:2] == r2[0][:2]


# ------------------------------------------------------------------ reproducibility
def test_serial_and_process_give_the_same_run():
    runs = []
    for backend in ("serial", "process"):
        m = OpenAIES("CartPole-v1", seed=4, backend=backend, n_workers=2, **SMALL)
        rows = [m._generation() for _ in range(3)]
        m.close()
        runs.append((m.center.copy(), [r["ep_return_mean"] for r in rows], m.num_timesteps,
                     m.obs_rms.mean.copy()))
    np.testing.assert_array_equal(runs[0][0], runs[1][0])
    assert runs[0][1:3] == runs[1][1:3]
    np.testing.assert_array_equal(runs[0][3], runs[1][3])


@pytest.mark.parametrize("cls,kw", TRAINERS)
def test_resume_continues_the_same_run(cls, kw, tmp_path):
    straight = cls("CartPole-v1", seed=3, backend="serial", **SMALL, **kw)
    for _ in range(4):
        straight._generation()
    first = cls("CartPole-v1", seed=3, backend="serial", **SMALL, **kw)
    for _ in range(2):
        first._generation()
    path = tmp_path / "ckpt.npz"
    first.save(path)
    resumed = cls.load(path, backend="serial")
    assert resumed.generation == 2 and resumed.num_timesteps == first.num_timesteps
    for _ in range(2):
        resumed._generation()
    np.testing.assert_array_equal(resumed.center, straight.center)
    np.testing.assert_array_equal(resumed.policy.flat_params, straight.policy.flat_params)
    assert resumed.num_timesteps == straight.num_timesteps
    if straight.obs_rms is not None:
        np.testing.assert_array_equal(resumed.obs_rms.var, straight.obs_rms.var)


def test_learn_continues_logs_and_stops(tmp_path):
    m = OpenAIES("CartPole-v1", seed=0, backend="serial", log_dir=str(tmp_path), **SMALL)
    m.learn(500)
    t1, g1 = m.num_timesteps, m.generation
    assert t1 >= 500 and g1 >= 1
    m.learn(300, callback=lambda model: False)  # a callback returning False stops
    assert m.generation == g1 + 1 and m.num_timesteps > t1
    m2 = OpenAIES("CartPole-v1", seed=0, backend="serial", reward_threshold=1.0, **SMALL)
    m2.learn(100_000)
    assert m2.solved and m2.generation == 1
    lines = open(tmp_path / "progress.csv").read().strip().splitlines()
    assert lines[0].startswith("generation,timesteps") and len(lines) == 1 + m.generation
    assert os.path.getsize(tmp_path / "learning_curve.png") > 1000
    resumed = OpenAIES.load(tmp_path / "checkpoint.rlstm", backend="serial")
    assert resumed.generation == m.generation
    np.testing.assert_array_equal(resumed.center, m.center)


def test_predict_single_batch_and_rng_isolation():
    m = OpenAIES("CartPole-v1", seed=0, backend="serial", **SMALL)
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
def test_bad_config_and_files(tmp_path):
    with pytest.raises(ValueError, match="even"):
        OpenAIES("CartPole-v1", population_size=7)
    with pytest.raises(TypeError, match="unknown OpenAIESConfig fields"):
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
    m = GA("CartPole-v1", seed=0, backend="serial", truncation=3, **SMALL)
    m.save(tmp_path / "ga.npz")
    with pytest.raises(ValueError, match="GA"):
        OpenAIES.load(tmp_path / "ga.npz")


# ------------------------------------------------------------------ Ray
def test_ray_backend_replaces_a_killed_worker():
    ray = pytest.importorskip("ray")
    import signal
    serial = OpenAIES("CartPole-v1", seed=6, backend="serial", **SMALL)
    on_ray = OpenAIES("CartPole-v1", seed=6, backend="ray", n_workers=2, **SMALL)
    try:
        serial._generation()
        on_ray._generation()
        backend = on_ray.backend
        pid = ray.get(backend.actors[0].pid.remote())
        os.kill(pid, signal.SIGKILL)  # the worker dies between generations
        serial._generation()
        on_ray._generation()  # its chunk is redone on a fresh actor
        assert backend.replaced >= 1
        np.testing.assert_array_equal(serial.center, on_ray.center)
        assert serial.num_timesteps == on_ray.num_timesteps
    finally:
        on_ray.close()
        ray.shutdown()


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
def test_evolino_readout_is_least_squares():
    from agents.es import fit_readout
    rng = np.random.default_rng(0)
    F = rng.normal(size=(200, 5))
    W = rng.normal(size=(6, 2))
    Y = F @ W[:-1] + W[-1]
    np.testing.assert_allclose(fit_readout(F, Y, ridge=0.0), W, atol=1e-10)


def test_evolino_sequence_learns_and_round_trips(tmp_path):
    from agents.es import EvolinoSequence
    t = np.arange(201, dtype=np.float64)
    s = np.sin(0.2 * t) + np.sin(0.311 * t)
    X, Y = s[:-1, None, None], s[1:, None, None]
    m = EvolinoSequence(1, 1, hidden_size=8, population_size=16, washout=30, seed=0,
                        noise_table_size=100_000)
    m.fit(X, Y, generations=20)
    assert m.history[-1] < 0.5 * m.history[0] and m.history[-1] < 1e-2
    pred, _ = m.predict(X)
    assert np.mean((pred[30:] - Y[30:]) ** 2) == pytest.approx(m.history[-1], rel=1e-9)
    m.save(tmp_path / "evo.npz")
    m2 = EvolinoSequence.load(tmp_path / "evo.npz")
    np.testing.assert_array_equal(m2.predict(X)[0], pred)
    m.fit(X, Y, generations=2)
    m2.fit(X, Y, generations=2)
    np.testing.assert_array_equal(m.theta, m2.theta)  # resume continues the same run
    with pytest.raises(ValueError, match="shape"):
        m.fit(X, Y[:, :, [0, 0]])


def test_evolino_rl_only_evolves_the_core_and_moves_the_readout():
    from agents.es import Evolino
    m = Evolino("CartPole-v1", seed=0, backend="serial", **SMALL)
    before = m.center.copy()
    m._generation()
    changed = m.center != before
    assert changed[m.readout_mask].any()      # the policy-gradient step moved the readout
    assert changed[~m.readout_mask].any()     # ES moved the core
    np.testing.assert_array_equal(m._grad[m.readout_mask], 0.0)  # ES never touches the readout


@pytest.mark.slow
def test_evolino_solves_cartpole():
    from agents.es import Evolino
    m = Evolino("CartPole-v1", seed=0, backend="process", n_workers=2, reward_threshold=490)
    m.learn(1_000_000)
    m.close()
    assert _evaluate(m) >= 475


def test_process_backend_survives_a_killed_worker():
    import signal
    serial = OpenAIES("CartPole-v1", seed=8, backend="serial", **SMALL)
    procs = OpenAIES("CartPole-v1", seed=8, backend="process", n_workers=2, **SMALL)
    try:
        serial._generation()
        procs._generation()
        os.kill(procs.backend.pids()[0], signal.SIGKILL)
        # The executor notices a dead worker asynchronously; wait until it has, so that the
        # next generation deterministically meets the broken pool (else the surviving worker
        # may finish every chunk first and there is nothing to redo).
        deadline = time.monotonic() + 10
        while not procs.backend._pool._broken and time.monotonic() < deadline:
            time.sleep(0.02)
        assert procs.backend._pool._broken
        serial._generation()
        procs._generation()  # the pool is rebuilt and the generation redone
        assert procs.backend.restarts == 1
        np.testing.assert_array_equal(serial.center, procs.center)
    finally:
        procs.close()


def test_default_backend_is_process_with_several_cores(monkeypatch):
    import agents.backends as b
    monkeypatch.setattr(b, "_cpu_count", lambda: 4)
    assert b.default_backend() == "process"
    monkeypatch.setattr(b, "_cpu_count", lambda: 1)
    assert b.default_backend() == "serial"


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


def test_structured_spaces_run_and_match_serial_vs_process():
    centers = []
    for backend in ("serial", "process"):
        m = SNES(_DictObsEnv, seed=0, backend=backend, n_workers=2, **SMALL)
        assert m.obs_rms is None  # only Box observations are normalised
        for _ in range(3):
            row = m._generation()
        m.close()
        assert row["steps"] == 5 * (8 + 1)
        centers.append(m.center.copy())
    np.testing.assert_array_equal(*centers)


@pytest.mark.parametrize("env,E", [("CartPole-v1", 1), ("CartPole-v1", 3),
                                   ("rlstm/PendulumNoVel-v1", 2), (_DictObsEnv, 2)])
def test_lockstep_rollout_equals_one_member_at_a_time(env, E):
    m = SNES(env, seed=1, backend="serial", **SMALL)
    worker = m._evaluator()
    rng = np.random.default_rng(0)
    idx = m.noise.sample_index(rng, m.num_params, 6)
    payload = {"center": m.center, "sigma": np.full(m.num_params, 0.3)}
    payload.update(m._obs_payload())
    jobs = [("noise", (int(i), 1.0), rng.integers(1000, size=E).tolist(), k == 0)
            for k, i in enumerate(idx)]
    together = worker.evaluate(payload, jobs)
    alone = [worker.evaluate(payload, [j])[0] for j in jobs]
    lengths = set()
    for t, a in zip(together, alone):
        assert t[0] == a[0] and t[1] == a[1]
        np.testing.assert_array_equal(t[2], a[2])
        lengths.add(t[1])
    assert m.obs_rms is None or together[0][3][0] == alone[0][3][0]
    if env == "CartPole-v1":
        assert len(lengths) > 1  # members finish at different steps: compaction happened


def test_cli_trains_and_evaluates_an_es_model(tmp_path, capsys):
    from agents.cli import main
    out = tmp_path / "run"
    rc = main(["train", "ga", "CartPole-v1", "--timesteps", "3000", "--out", str(out),
               "--no-progress", "--eval-episodes", "2", "--set", "population_size=8",
               "--set", "truncation=2", "--set", "max_episode_steps=50"])
    assert rc == 0
    for f in ("model.rlstm", "progress.csv", "learning_curve.png", "checkpoint.rlstm"):
        assert (out / f).exists(), f
    assert main(["evaluate", str(out / "model.rlstm"), "--episodes", "2"]) == 0
    assert "CartPole-v1" in capsys.readouterr().out
