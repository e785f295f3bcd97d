"""Where the work of an iteration runs: in this process, in local worker processes, or on Ray.

A backend holds ``n_workers`` persistent *worker objects*, worker ``k`` built by
``factory(k)`` inside its own process (or Ray actor). Workers keep their state between calls:
an evolution worker its env pool and noise table, a policy-gradient rollout worker its slice of
the envs with their recurrent states. A call sends every worker one method call:

- ``backend.call(method, shared, per_worker)`` runs ``worker_k.method(shared, per_worker[k])``
  on every worker and returns the results in worker order. ``shared`` (the policy weights and
  statistics) is sent once per worker; Ray puts it in its object store once.
- ``backend.map(payload, jobs)`` splits a list of small jobs into one contiguous chunk per
  worker and calls ``evaluate(payload, chunk)``: the evolution trainers' generation.

A worker that dies (killed, out of memory, its node lost) is replaced by a fresh one built by
the same factory, and its call is made again, up to ``max_retries`` times per call; after that
the call raises ``RuntimeError``. An exception raised *by* a worker's method (an env returning
NaN, a bad setting) is not a death: it is raised in the caller as it is. Worker processes ignore
Ctrl-C (the caller handles it and closes them) and exit when the caller's end of their pipe
closes, so no worker outlives the process that started it.
"""
from __future__ import annotations

import multiprocessing as mp
import os
import signal
import sys
import traceback
from typing import Any, Callable, Sequence

import numpy as np

from rlstm.validation import check_choice, check_int

__all__ = ["BACKENDS", "make_backend", "SerialBackend", "ProcessBackend", "RayBackend",
           "default_backend", "split_jobs", "split_evenly", "WorkerError"]

BACKENDS = ("serial", "process", "ray")


def split_evenly(n: int, k: int) -> list[tuple[int, int]]:
    """``k`` contiguous ``[start, stop)`` ranges over ``range(n)`` whose sizes differ by at most
    one (empty ranges dropped)."""
    k = max(1, min(k, n))
    bounds = np.linspace(0, n, k + 1).round().astype(int)
    return [(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]


def split_jobs(jobs: Sequence, n: int) -> list[list]:
    """``n`` contiguous chunks of ``jobs`` whose sizes differ by at most one."""
    jobs = list(jobs)
    return [jobs[a:b] for a, b in split_evenly(len(jobs), n)]


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def default_backend() -> str:
    """``"process"`` when more than one core is available, else ``"serial"``."""
    return "process" if _cpu_count() > 1 else "serial"


class WorkerError(RuntimeError):
    """A worker failed for good: it died ``max_retries + 1`` times in one call."""


class _Backend:
    """What every backend shares: ``map`` on top of ``call``."""

    n_workers: int

    def call(self, method: str, shared: Any, per_worker: Sequence) -> list:
        raise NotImplementedError

    def map(self, payload: Any, jobs: Sequence) -> list:
        """``evaluate(payload, chunk)`` on one contiguous chunk of ``jobs`` per worker; the
        results in job order (a worker's result never depends on how the jobs were split)."""
        chunks = split_jobs(jobs, self.n_workers)
        parts = self.call("evaluate", payload, chunks + [[]] * (self.n_workers - len(chunks)))
        return [r for part in parts for r in part]

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class SerialBackend(_Backend):
    """Every worker in the calling process, called in turn: the reference for
    reproducibility (the same numbers as the other backends with as many workers)."""

    name = "serial"

    def __init__(self, factory: Callable[[int], Any], n_workers: int | None = None):
        self.n_workers = 1 if n_workers is None else check_int("n_workers", n_workers, 1)
        self.workers = [factory(k) for k in range(self.n_workers)]

    def call(self, method: str, shared: Any, per_worker: Sequence) -> list:
        return [getattr(w, method)(shared, own) for w, own in zip(self.workers, per_worker)]

    def close(self) -> None:
        for w in self.workers:
            getattr(w, "close", lambda: None)()
        self.workers = []


# ---------------------------------------------------------------------------- processes
def _serve(conn, factory, k: int) -> None:
    """A worker process: build worker ``k``, then answer calls until the pipe closes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the caller's to handle
    from threadpoolctl import threadpool_limits
    limits = threadpool_limits(limits=1)
    try:
        worker = factory(k)
        while True:
            try:
                msg = conn.recv()
            except (EOFError, OSError):  # the caller is gone
                break
            if msg is None:
                break
            method, shared, own = msg
            try:
                conn.send(("ok", getattr(worker, method)(shared, own)))
            except Exception as e:  # noqa: BLE001 - sent back and raised in the caller
                conn.send(("error", e, traceback.format_exc()))
        getattr(worker, "close", lambda: None)()
    finally:
        del limits
        conn.close()


class ProcessBackend(_Backend):
    """Local worker processes, one BLAS thread each, one worker object each.

    Uses the ``fork`` start method where available, so the factory and what it captures (env
    factory, policy template, noise table) are inherited rather than pickled: lambdas work as
    env factories. A worker process that dies is started again and its call redone (up to
    ``max_retries`` times per call).
    """

    name = "process"

    def __init__(self, factory: Callable[[int], Any], n_workers: int | None = None,
                 max_retries: int = 2):
        self.n_workers = _cpu_count() if n_workers is None else check_int("n_workers",
                                                                           n_workers, 1)
        self.max_retries = check_int("max_retries", max_retries, 0)
        method = "fork" if "fork" in mp.get_all_start_methods() and sys.platform != "darwin" \
            else "spawn"
        self._ctx = mp.get_context(method)
        self._factory = factory
        self.restarts = 0
        self._workers = [self._start(k) for k in range(self.n_workers)]

    def _start(self, k: int):
        parent, child = self._ctx.Pipe()
        p = self._ctx.Process(target=_serve, args=(child, self._factory, k), daemon=True,
                              name=f"rlstm-worker-{k}")
        p.start()
        child.close()
        return p, parent

    def _restart(self, k: int) -> None:
        p, conn = self._workers[k]
        conn.close()
        if p.is_alive():
            p.kill()
        p.join(timeout=5)
        self.restarts += 1
        self._workers[k] = self._start(k)

    def pids(self) -> list[int]:
        """Process ids of the workers."""
        return [p.pid for p, _ in self._workers]

    def call(self, method: str, shared: Any, per_worker: Sequence) -> list:
        per_worker = list(per_worker)
        results: list = [None] * self.n_workers
        tries = [0] * self.n_workers
        error = None
        todo = list(range(self.n_workers))
        while todo:
            waiting, again = [], []
            for k in todo:
                try:
                    self._workers[k][1].send((method, shared, per_worker[k]))
                    waiting.append(k)
                except (BrokenPipeError, OSError) as e:  # it died since the last call
                    self._retry(k, tries, e)
                    again.append(k)
            for k in waiting:  # every reply is read, so no stale one is left in a pipe
                try:
                    reply = self._workers[k][1].recv()
                except (EOFError, OSError) as e:  # it died during the call
                    self._retry(k, tries, e)
                    again.append(k)
                    continue
                if reply[0] == "error":
                    error = error or reply[1]  # the worker's own exception, e.g. an env fault
                else:
                    results[k] = reply[1]
            todo = sorted(again)
        if error is not None:
            raise error
        return results

    def _retry(self, k: int, tries: list, error: BaseException) -> None:
        tries[k] += 1
        if tries[k] > self.max_retries:
            self.close()
            raise WorkerError(f"worker process {k} died {tries[k]} times in one call "
                              f"({type(error).__name__}); see the system log (out of "
                              f"memory?)")
        self._restart(k)

    def close(self) -> None:
        for p, conn in getattr(self, "_workers", []):
            try:
                conn.send(None)
            except (BrokenPipeError, OSError):
                pass
            conn.close()
        for p, _ in getattr(self, "_workers", []):
            p.join(timeout=5)
            if p.is_alive():
                p.kill()
                p.join(timeout=5)
        self._workers = []

    def __del__(self):  # pragma: no cover - best effort
        try:
            self.close()
        except Exception:
            pass


# ---------------------------------------------------------------------------- Ray
class RayBackend(_Backend):
    """Ray actors, one per worker; a local Ray unless ``address`` names a cluster.

    ``shared`` is ``ray.put`` once per call and every actor reads the same object. An actor
    that dies (node lost, process killed, out of memory) is replaced by a fresh one and its
    call is made again, up to ``max_retries`` times per call: no iteration is lost and no
    exception reaches the trainer unless every retry failed.
    """

    name = "ray"

    def __init__(self, factory: Callable[[int], Any], n_workers: int | None = None,
                 address: str | None = None, max_retries: int = 3,
                 ray_init_kwargs: dict | None = None):
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
        self._factory_ref = ray.put(factory)
        self._actor_cls = ray.remote(num_cpus=1, max_restarts=0)(_RayWorker)
        self.actors = [self._new_actor(k) for k in range(self.n_workers)]
        self.replaced = 0

    def _new_actor(self, k: int):
        return self._actor_cls.remote(self._factory_ref, k)

    def call(self, method: str, shared: Any, per_worker: Sequence) -> list:
        ray = self._ray
        shared_ref = ray.put(shared)
        per_worker = list(per_worker)
        results: list = [None] * self.n_workers
        pending = {self.actors[k].call.remote(method, shared_ref, per_worker[k]): (k, 0)
                   for k in range(self.n_workers)}
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            ref = done[0]
            k, tries = pending.pop(ref)
            try:
                results[k] = ray.get(ref)
            except (ray.exceptions.RayActorError, ray.exceptions.WorkerCrashedError,
                    ray.exceptions.ObjectLostError) as e:
                if tries >= self.max_retries:
                    raise WorkerError(f"Ray worker {k} failed {tries + 1} times in one call: "
                                      f"{e}") from e
                try:
                    ray.kill(self.actors[k])
                except Exception:
                    pass
                self.actors[k] = self._new_actor(k)
                self.replaced += 1
                pending[self.actors[k].call.remote(method, shared_ref, per_worker[k])] = \
                    (k, tries + 1)
            except ray.exceptions.RayTaskError as e:  # the worker's own exception
                cause = getattr(e, "cause", None)
                raise (cause if isinstance(cause, BaseException) else e) from None
        return results

    def close(self) -> None:
        for a in getattr(self, "actors", []):
            try:
                self._ray.kill(a)
            except Exception:
                pass
        self.actors = []


class _RayWorker:
    """The actor: a worker object built in the actor, and single-threaded BLAS."""

    def __init__(self, factory, k: int):
        from threadpoolctl import threadpool_limits
        self._limits = threadpool_limits(limits=1)
        self.worker = factory(k)

    def pid(self) -> int:
        return os.getpid()

    def call(self, method: str, shared, own):
        return getattr(self.worker, method)(shared, own)


def make_backend(name: str | None, factory: Callable[[int], Any], n_workers: int | None = None,
                 **kwargs) -> _Backend:
    """Build the backend called ``name`` (``None``: :func:`default_backend`) with workers
    ``factory(0), ..., factory(n_workers - 1)``."""
    name = default_backend() if name is None else check_choice("backend", name, BACKENDS)
    if n_workers is not None:
        check_int("n_workers", n_workers, 1)
    if name == "serial":
        return SerialBackend(factory, n_workers)
    if name == "process":
        return ProcessBackend(factory, n_workers)
    return RayBackend(factory, n_workers, **kwargs)
