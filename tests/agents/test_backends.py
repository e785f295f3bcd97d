"""Backends: chunking, serial equals process, killed workers are replaced (process and Ray)."""
import os

import numpy as np
import pytest

from agents.backends import split_jobs
from agents.es import OpenAIES


def test_split_jobs_is_contiguous_and_balanced():
    parts = split_jobs(list(range(10)), 3)
    assert [len(p) for p in parts] == [3, 4, 3] or [len(p) for p in parts] == [3, 3, 4]
    assert sum(parts, []) == list(range(10))
    assert split_jobs([1, 2], 5) == [[1], [2]]


def test_serial_and_process_give_the_same_run(small):
    runs = []
    for backend in ("serial", "process"):
        m = OpenAIES("CartPole-v1", seed=4, backend=backend, n_workers=2, **small)
        rows = [m._advance(0.0) for _ in range(3)]
        m.close()
        runs.append((m.center.copy(), [r["ep_return_mean"] for r in rows], m.num_timesteps,
                     m.obs_normalizer.mean.copy()))
    np.testing.assert_array_equal(runs[0][0], runs[1][0])
    assert runs[0][1:3] == runs[1][1:3]
    np.testing.assert_array_equal(runs[0][3], runs[1][3])


def test_ray_backend_replaces_a_killed_worker(small):
    ray = pytest.importorskip("ray")
    import signal
    serial = OpenAIES("CartPole-v1", seed=6, backend="serial", **small)
    on_ray = OpenAIES("CartPole-v1", seed=6, backend="ray", n_workers=2, **small)
    try:
        serial._advance(0.0)
        on_ray._advance(0.0)
        backend = on_ray.backend
        pid = ray.get(backend.actors[0].pid.remote())
        os.kill(pid, signal.SIGKILL)  # the worker dies between generations
        serial._advance(0.0)
        on_ray._advance(0.0)  # its chunk is redone on a fresh actor
        assert backend.replaced >= 1
        np.testing.assert_array_equal(serial.center, on_ray.center)
        assert serial.num_timesteps == on_ray.num_timesteps
    finally:
        on_ray.close()
        ray.shutdown()


def test_process_backend_survives_a_killed_worker(small):
    import signal
    serial = OpenAIES("CartPole-v1", seed=8, backend="serial", **small)
    procs = OpenAIES("CartPole-v1", seed=8, backend="process", n_workers=2, **small)
    try:
        serial._advance(0.0)
        procs._advance(0.0)
        pid = procs.backend.pids()[0]
        os.kill(pid, signal.SIGKILL)  # a worker dies between generations
        serial._advance(0.0)
        procs._advance(0.0)  # it is started again and its chunk redone
        assert procs.backend.restarts == 1 and pid not in procs.backend.pids()
        np.testing.assert_array_equal(serial.center, procs.center)
    finally:
        procs.close()


def test_default_backend_is_process_with_several_cores(monkeypatch):
    import agents.backends as b
    monkeypatch.setattr(b, "_cpu_count", lambda: 4)
    assert b.default_backend() == "process"
    monkeypatch.setattr(b, "_cpu_count", lambda: 1)
    assert b.default_backend() == "serial"
