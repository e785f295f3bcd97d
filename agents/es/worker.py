"""The evolution worker: it turns small jobs into members and plays their episodes.

A backend (:mod:`agents.backends`) holds one :class:`Evaluator` per worker process or Ray
actor. Each generation it receives a *payload* every member shares (the center, step sizes,
the observation normaliser) and one small *job* per member; only noise indices, seed lists or
(for CMA-ES) vectors travel, never a population of weight vectors.
"""
from __future__ import annotations

from typing import Callable

import gymnasium as gym
import numpy as np

from rlstm.policy import LSTMPolicy
from rlstm.population import PopulationPolicy

from ..env_factory import check_env_output
from .noise import NoiseTable

__all__ = ["Evaluator"]


def _row(actions, i):
    """Row ``i`` of a batched Tuple/Dict action structure (nested)."""
    if isinstance(actions, tuple):
        return tuple(_row(a, i) for a in actions)
    if isinstance(actions, dict):
        return {k: _row(a, i) for k, a in actions.items()}
    return actions[i]


def _take(obs, rows):
    """Rows of a batched observation (array, or Dict/Tuple of them)."""
    if isinstance(obs, dict):
        return {k: _take(v, rows) for k, v in obs.items()}
    if isinstance(obs, tuple):
        return tuple(_take(v, rows) for v in obs)
    return obs[rows]


class Evaluator:
    """The worker object: materialises members from small jobs and plays their episodes.

    All members of one call, and all their episodes, run in lockstep: one
    :class:`rlstm.population.PopulationPolicy` call per time step advances every member's LSTM
    with its own weights. Only envs whose episode is still running are stepped.

    A job is a tuple ``(kind, data, seeds, record)``:

    - ``("center", None, ...)``: the payload's center;
    - ``("noise", (index, sign), ...)``: ``center + sign * sigma * noise[index:index + n]``
      (``sigma`` a scalar or a per-parameter vector, optionally times ``payload["mask"]``);
    - ``("genome", indices, ...)``: ``base + sigma * sum_k noise[indices[k]:... + n]`` (GA);
    - ``("vector", theta, ...)``: the vector itself (CMA-ES);

    ``seeds`` are the episode seeds, ``record`` whether to return observation statistics.
    Observations are normalised by ``payload["obs_normalizer"]`` (an
    :class:`rlstm.policy.ObsNormalizer`) when the payload has one. A call returns, per job,
    ``(mean_return, steps, episode_returns, obs_stats_or_None)`` with
    ``obs_stats = (count, sum, sum of squares)`` of the observations the member saw.
    """

    def __init__(self, env_fn: Callable, template, noise_spec: dict,
                 max_episode_steps: int, env_name: str = "the env"):
        self.env_fn = env_fn
        self.env_name = env_name
        self.template = template
        self.noise_spec = noise_spec
        self.max_episode_steps = int(max_episode_steps)
        self._envs: list = []
        self._noise = None
        self._genomes: dict[tuple, np.ndarray] = {}

    def __getstate__(self):
        """For Ray (cloudpickle): the template travels as its recipe, because pickling a
        module's arrays separately would break their views into ``flat_params``."""
        d = dict(self.__dict__)
        d["_envs"], d["_noise"], d["_genomes"] = [], None, {}
        t = d.pop("template")
        d["_template_recipe"] = (t.observation_space, t.action_space, t.config(),
                                 t.flat_params.copy())
        return d

    def __setstate__(self, d):
        obs_space, act_space, config, flat = d.pop("_template_recipe")
        self.__dict__.update(d)
        self.template = LSTMPolicy(obs_space, act_space, **config)
        self.template.flat_params[...] = flat

    @property
    def noise(self) -> NoiseTable:
        if self._noise is None:
            self._noise = NoiseTable(**self.noise_spec)
        return self._noise

    # -- members
    def materialize(self, payload: dict, kind: str, data) -> np.ndarray:
        n = payload["center"].size if "center" in payload else payload["base"].size
        if kind == "center":
            return payload["center"]
        if kind == "noise":
            index, sign = data
            eps = self.noise.get(index, n)
            step = payload["sigma"] * eps
            if payload.get("mask") is not None:
                step = step * payload["mask"]
            return payload["center"] + sign * step
        if kind == "genome":
            return self.genome_params(payload["base"], payload["sigma"], tuple(data))
        if kind == "vector":
            return np.asarray(data, dtype=np.float64)
        raise ValueError(f"unknown job kind {kind!r}")

    def genome_params(self, base: np.ndarray, sigma: float, genome: tuple) -> np.ndarray:
        """``base + sigma * sum(noise[i] for i in genome)``, reusing the parent's vector."""
        key = (base.size, float(sigma), genome)
        hit = self._genomes.get(key)
        if hit is not None:
            return hit
        if not genome:
            theta = np.asarray(base, dtype=np.float64).copy()
        else:
            parent = self.genome_params(base, sigma, genome[:-1])
            theta = parent + sigma * self.noise.get(genome[-1], base.size)
        if len(self._genomes) > 4096:
            self._genomes.clear()
        self._genomes[key] = theta
        return theta

    # -- episodes
    def _env_pool(self, n: int) -> list:
        while len(self._envs) < n:
            self._envs.append(self.env_fn())
        return self._envs[:n]

    def evaluate(self, payload: dict, jobs: list) -> list:

        out: list = [None] * len(jobs)
        by_count: dict[int, list[int]] = {}
        for k, job in enumerate(jobs):  # members with equal episode counts run together
            by_count.setdefault(len(job[2]), []).append(k)
        n_params = self.template.flat_params.size
        for E, ks in by_count.items():
            P = len(ks)
            params = np.empty((P, n_params), dtype=self.template.flat_params.dtype)
            for row, k in enumerate(ks):
                params[row] = self.materialize(payload, jobs[k][0], jobs[k][1])
            seeds = np.asarray([jobs[k][2] for k in ks], dtype=np.int64).reshape(P * E)
            record = np.repeat(np.asarray([bool(jobs[k][3]) for k in ks]), E)
            returns, lengths, stats = self.rollout(params, seeds, record,
                                                   payload.get("obs_normalizer"))
            returns, lengths = returns.reshape(P, E), lengths.reshape(P, E)
            for row, k in enumerate(ks):
                out[k] = (float(returns[row].mean()), int(lengths[row].sum()),
                          returns[row].copy(), stats[row] if jobs[k][3] else None)
        return out

    def rollout(self, params: np.ndarray, seeds: np.ndarray, record: np.ndarray,
                obs_normalizer=None):
        """Play one episode per row of ``seeds`` (members own ``len(seeds) // P`` rows each)."""
        P = params.shape[0]
        n = seeds.size
        E = n // P
        envs = self._env_pool(n)
        first = [env.reset(seed=int(s))[0] for env, s in zip(envs, seeds)]
        ospace = envs[0].observation_space
        flat_obs = isinstance(ospace, (gym.spaces.Box, gym.spaces.Discrete,
                                       gym.spaces.MultiDiscrete, gym.spaces.MultiBinary))
        if flat_obs:  # one array, rows overwritten in place
            obs = np.stack([np.asarray(o) for o in first])
        else:  # Dict / Tuple observations: batched by Gymnasium's own helpers
            from gymnasium.vector.utils import concatenate, create_empty_array
            obs_list = list(first)
            obs_buf = create_empty_array(ospace, n)
            obs = concatenate(ospace, obs_list, obs_buf)
        pop = PopulationPolicy(self.template, params, batch_per_member=E)
        state = pop.initial_state()
        norm = obs_normalizer is not None
        float_obs = isinstance(obs, np.ndarray) and obs.dtype.kind == "f"
        check_env_output(obs, 0.0, f"{self.env_name}, at reset")
        returns = np.zeros(n, dtype=np.float64)
        lengths = np.zeros(n, dtype=np.int64)
        active = np.ones(n, dtype=bool)
        dim = obs_normalizer.size if norm else 0
        s1 = np.zeros((P, dim))
        s2 = np.zeros((P, dim))
        cnt = np.zeros(P)
        rec_rows = np.flatnonzero(record)
        space = envs[0].action_space
        box = isinstance(space, gym.spaces.Box)
        rows = np.arange(n)      # env rows the population covers now (member-major)
        members = np.arange(P)   # the members it holds now
        for _ in range(self.max_episode_steps):
            if rec_rows.size and dim:
                live = rec_rows[active[rec_rows]]
                flat = (obs[live].reshape(live.size, dim).astype(np.float64) if flat_obs
                        else obs_normalizer.gather(_take(obs, live)))
                np.add.at(s1, live // E, flat)
                np.add.at(s2, live // E, flat * flat)
                np.add.at(cnt, live // E, 1)
            xo = obs if rows.size == n else _take(obs, rows)
            x = obs_normalizer.normalize(xo, self.template.dtype) if norm else xo
            actions, state = pop.act(x, state)
            if box:
                actions = np.clip(actions, space.low, space.high)
            if isinstance(actions, np.ndarray) and actions.ndim == 1:
                actions = actions.tolist()  # Python ints pass Discrete.contains fastest
            for j in np.flatnonzero(active[rows]):
                i = rows[j]
                a = _row(actions, j) if isinstance(actions, (tuple, dict)) else actions[j]
                o, r, term, trunc, _ = envs[i].step(a)
                if flat_obs:
                    obs[i] = o
                else:
                    obs_list[i] = o
                returns[i] += float(r)
                lengths[i] += 1
                if term or trunc:
                    active[i] = False
            if not flat_obs:
                obs = concatenate(ospace, obs_list, obs_buf)
            # NaN/inf from the env: one vectorised test per step (every leaf for Dict/Tuple)
            if not flat_obs or not np.isfinite(returns).all() or \
                    (float_obs and not np.isfinite(obs).all()):
                check_env_output(obs, returns, f"{self.env_name}, episode step "
                                               f"{int(lengths.max())} of a member's rollout")
            if not active.any():
                break
            # once half the members are done, drop them: the kernel then steps only the rest
            alive = active[rows].reshape(-1, E).any(axis=1)
            if alive.sum() <= alive.size // 2:
                keep = np.flatnonzero(alive)
                local = (keep[:, None] * E + np.arange(E)).reshape(-1)
                members, rows = members[keep], rows[local]
                pop = PopulationPolicy(self.template, params[members], batch_per_member=E)
                state = tuple(np.ascontiguousarray(s[:, local]) for s in state)
        stats = [(cnt[k], s1[k], s2[k]) for k in range(P)]
        return returns, lengths, stats
