"""Where population members are evaluated: in this process, in local processes, or on Ray.

A backend holds one *worker object* per worker: any object with a method
``evaluate(payload, jobs) -> list`` (the trainers pass an ``agents.es.Evaluator``). Each
generation the trainer calls ``backend.map(payload, jobs)``:

- ``payload`` is what every member shares (the center, step sizes, normalisation statistics). It
  is sent once per generation to each worker (Ray: put once in the object store).
- ``jobs`` are small per-member descriptions (noise indices, seed lists, episode seeds). They are
  split into one contiguous chunk per worker, so a worker steps all its members in lockstep.

Results come back in job order. A worker's result never depends on how jobs were chunked, so
``serial`` and ``process`` runs with the same seed give the same numbers.
"""
from __future__ import annotations

import multiprocessing as mp
import os
import sys
from typing import Any, Sequence

import numpy as np

from rlstm.validation import check_choice, check_int

__all__ = ["BACKENDS", "make_backend", "SerialBackend", "ProcessBackend", "RayBackend",
           "default_backend", "split_jobs"]

BACKENDS = ("serial", "process", "ray")


def split_jobs(jobs: Sequence, n: int) -> list[list]:
    """``n`` contiguous chunks whose sizes differ by at most one (empty chunks dropped)."""
    jobs = list(jobs)
    n = max(1, min(n, len(jobs)))
    bounds = np.linspace(0, len(jobs), n + 1).round().astype(int)
    return [jobs[a:b] for a, b in zip(bounds[:-1], bounds[1:]) if b > a]


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def default_backend() -> str:
    """``"process"`` when more than one core is available, else ``"serial"``."""
    return "process" if _cpu_count() > 1 else "serial"


class SerialBackend:
    """Everything in the calling process: the reference for reproducibility."""

    name = "serial"

    def __init__(self, worker: Any, n_workers: int | None = None):
        self.worker = worker
        self.n_workers = 1

    def map(self, payload: Any, jobs: Sequence) -> list:
        return list(self.worker.evaluate(payload, list(jobs)))

    def close(self) -> None:
        pass


# ---------------------------------------------------------------------------- process backend
_WORKER = None
_LIMITS = None


def _process_init(worker) -> None:
    """Runs once in each worker process: keep the worker object, single-threaded BLAS."""
    global _WORKER, _LIMITS
    from threadpoolctl import threadpool_limits
    _LIMITS = threadpool_limits(limits=1)
    _WORKER = worker


def _process_task(args):
    payload, jobs = args
    return _WORKER.evaluate(payload, jobs)


class ProcessBackend:
    """Local worker processes, one BLAS thread each, one chunk of members per worker.

    Uses the ``fork`` start method where available, so the worker object (env factory, policy
    template, noise table) is inherited rather than pickled: lambdas work as env factories.
    A worker process that dies (killed, out of memory) breaks the pool; the pool is rebuilt
    and the generation's chunks are run again (up to ``max_retries`` times).
    """

    name = "process"

    def __init__(self, worker: Any, n_workers: int | None = None, max_retries: int = 2):
        self.n_workers = _cpu_count() if n_workers is None else check_int("n_workers",
                                                                           n_workers, 1)
        self.max_retries = check_int("max_retries", max_retries, 0)
        self._worker = worker
        method = "fork" if "fork" in mp.get_all_start_methods() and sys.platform != "darwin" \
            else "spawn"
        self._ctx = mp.get_context(method)
        self._pool = None
        self.restarts = 0
        self._start()

    def _start(self) -> None:
        from concurrent.futures import ProcessPoolExecutor
        self._pool = ProcessPoolExecutor(self.n_workers, mp_context=self._ctx,
                                         initializer=_process_init, initargs=(self._worker,))

    def map(self, payload: Any, jobs: Sequence) -> list:
        from concurrent.futures.process import BrokenProcessPool
        chunks = split_jobs(jobs, self.n_workers)
        for attempt in range(self.max_retries + 1):
            try:
                parts = list(self._pool.map(_process_task, [(payload, c) for c in chunks]))
                return [r for part in parts for r in part]
            except BrokenProcessPool:
                if attempt == self.max_retries:
                    raise RuntimeError(f"worker processes died {attempt + 1} times in one "
                                       f"generation; see the system log (out of memory?)")
                self._pool.shutdown(wait=False, cancel_futures=True)
                self.restarts += 1
                self._start()
        raise AssertionError("unreachable")

    def pids(self) -> list[int]:
        """Process ids of the live workers (started lazily by the first ``map``)."""
        return [p.pid for p in getattr(self._pool, "_processes", {}).values()]

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def __del__(self):  # pragma: no cover - best effort
        try:
            self.close()
        except Exception:
            pass


# ---------------------------------------------------------------------------- Ray backend
class RayBackend:
    """Ray actors, one per worker; a local Ray unless ``address`` names a cluster.

    The payload is ``ray.put`` once per generation and every actor reads the same object. An
    actor that dies (node lost, process killed, out of memory) is replaced by a fresh one and its
    chunk is run again, up to ``max_retries`` times per generation: no generation is lost and no
    exception reaches the trainer unless every retry failed.
    """

    name = "ray"

    def __init__(self, worker: Any, n_workers: int | None = None, address: str | None = None,
                 max_retries: int = 3, ray_init_kwargs: dict | None = None):
        try:
            import ray
        except ImportError as e:
            raise ImportError("backend='ray' needs Ray: pip install 'rlstm[ray]' (or "
                              "pip install 'ray[default]')") from e
        self._ray = ray
        if not ray.is_initialized():
            kwargs = dict(ray_init_kwargs or {})
            if address is not None:
                kwargs["address"] = address
            else:
                kwargs.setdefault("num_cpus", _cpu_count())
            kwargs.setdefault("include_dashboard", False)
            kwargs.setdefault("log_to_driver", False)
            ray.init(**kwargs)
        if n_workers is None:
            n_workers = max(1, int(ray.available_resources().get("CPU", _cpu_count())))
        self.n_workers = check_int("n_workers", n_workers, 1)
        self.max_retries = check_int("max_retries", max_retries, 0)
        self._worker_ref = ray.put(worker)
        self._actor_cls = ray.remote(num_cpus=1, max_restarts=0)(_RayWorker)
        self.actors = [self._new_actor() for _ in range(self.n_workers)]
        self.replaced = 0

    def _new_actor(self):
        return self._actor_cls.remote(self._worker_ref)

    def map(self, payload: Any, jobs: Sequence) -> list:
        ray = self._ray
        payload_ref = ray.put(payload)
        chunks = split_jobs(jobs, len(self.actors))
        results: list = [None] * len(chunks)
        pending = {self.actors[i].evaluate.remote(payload_ref, c): (i, 0)
                   for i, c in enumerate(chunks)}
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            ref = done[0]
            i, tries = pending.pop(ref)
            try:
                results[i] = ray.get(ref)
            except (ray.exceptions.RayActorError, ray.exceptions.WorkerCrashedError,
                    ray.exceptions.ObjectLostError) as e:
                if tries >= self.max_retries:
                    raise RuntimeError(f"Ray worker {i} failed {tries + 1} times in one "
                                       f"generation: {e}") from e
                try:
                    ray.kill(self.actors[i])
                except Exception:
                    pass
                self.actors[i] = self._new_actor()
                self.replaced += 1
                pending[self.actors[i].evaluate.remote(payload_ref, chunks[i])] = (i, tries + 1)
        return [r for part in results for r in part]

    def close(self) -> None:
        for a in getattr(self, "actors", []):
            try:
                self._ray.kill(a)
            except Exception:
                pass
        self.actors = []


class _RayWorker:
    """The actor: a worker object and single-threaded BLAS."""

    def __init__(self, worker):
        from threadpoolctl import threadpool_limits
        self._limits = threadpool_limits(limits=1)
        self.worker = worker

    def pid(self) -> int:
        return os.getpid()

    def evaluate(self, payload, jobs):
        return self.worker.evaluate(payload, jobs)


def make_backend(name: str | None, worker: Any, n_workers: int | None = None,
                 **kwargs) -> Any:
    """Build the backend called ``name`` (``None``: :func:`default_backend`)."""
    name = default_backend() if name is None else check_choice("backend", name, BACKENDS)
    if n_workers is not None:
        check_int("n_workers", n_workers, 1)
    if name == "serial":
        return SerialBackend(worker, n_workers)
    if name == "process":
        return ProcessBackend(worker, n_workers)
    return RayBackend(worker, n_workers, **kwargs)
