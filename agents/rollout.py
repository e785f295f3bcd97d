"""The on-policy rollout: a vector env stepped by the policy, written into a RolloutBuffer.

:class:`OnPolicyRollout` owns the vector env and what it carries from one rollout to the next
(the last observation, the recurrent state, episode bookkeeping), so that consecutive rollouts
continue the same episodes. Per step it:

1. stores the recurrent state before every ``seq_len``-th step (for truncated BPTT);
2. acts (sampling from the trainer's generator; gSDE matrices redrawn every
   ``sde_sample_freq`` steps);
3. steps the envs with ``Box`` actions clipped to the space;
4. scales the rewards (:class:`RewardScaler`), normalises the next observations (updating the
   statistics), and records finished episodes;
5. bootstraps a truncated episode from the value of its final observation.

Gymnasium's contract is kept exactly: ``terminated`` and ``truncated`` apart, the vector env's
``autoreset_mode`` honoured (``same_step``: the final observation is in
``infos["final_obs"]``; ``next_step``: the step after an episode ends only resets, and is
masked out of the losses), and the LSTM state zeroed at episode starts.
"""
from __future__ import annotations

import numpy as np

from rlstm.policy import RunningMeanStd
from rlstm.policy.predict import clip_actions

from .buffers import RolloutBuffer
from .env_factory import as_env_source, check_env_output

__all__ = ["OnPolicyRollout", "RewardScaler"]


class RewardScaler:
    """Rewards divided by the running std of the discounted return (SB3's VecNormalize),
    then clipped to ``[-clip, clip]``."""

    def __init__(self, gamma: float, clip: float):
        self.gamma, self.clip = float(gamma), float(clip)
        self.rms = RunningMeanStd(())
        self._returns = None

    def reset(self, n_envs: int) -> None:
        self._returns = np.zeros(n_envs)

    def scale(self, rewards: np.ndarray, done: np.ndarray, valid: np.ndarray) -> np.ndarray:
        self._returns = self._returns * self.gamma + rewards
        self.rms.update(self._returns[valid])
        self._returns[done] = 0.0
        return np.clip(rewards / np.sqrt(self.rms.var + 1e-8), -self.clip, self.clip)


def _final_obs_batch(next_obs, final_obs, done: np.ndarray):
    """The true last observations of the envs that finished (``same_step`` autoreset), with
    ``next_obs`` for the others. ``final_obs`` is the object array of ``infos['final_obs']``."""
    rows = np.flatnonzero(done)
    first = final_obs[rows[0]]

    def fill(x, *finals):
        x = np.array(x, copy=True)
        x[rows] = np.stack(finals)
        return x
    if isinstance(first, dict):
        return {k: fill(next_obs[k], *(final_obs[i][k] for i in rows)) for k in first}
    if isinstance(first, tuple):
        return tuple(fill(next_obs[j], *(final_obs[i][j] for i in rows))
                     for j in range(len(first)))
    return fill(next_obs, *(final_obs[i] for i in rows))


class OnPolicyRollout:
    """``n_envs`` envs stepped by ``policy``; :meth:`collect` fills one rollout buffer.

    Args:
        env: an :class:`agents.env_factory.EnvSource` (or anything :func:`as_env_source`
            takes).
        policy: the :class:`rlstm.policy.LSTMPolicy` that acts.
        obs_normalizer: the trainer's normaliser (updated here), or None.
        reward_scaler: a :class:`RewardScaler`, or None.
        n_envs, vec_env, autoreset_mode, sde_sample_freq: as in
            :class:`agents.onpolicy.OnPolicyConfig`.
    """

    def __init__(self, env, policy, obs_normalizer, reward_scaler, n_envs: int,
                 vec_env: str = "sync", autoreset_mode: str = "same_step",
                 sde_sample_freq: int = -1, env_name: str = "the env"):
        self.env, self.policy = as_env_source(env), policy
        self.obs_normalizer, self.reward_scaler = obs_normalizer, reward_scaler
        self.n_envs, self.vec_env, self.autoreset_mode = n_envs, vec_env, autoreset_mode
        self.sde_sample_freq = sde_sample_freq
        self.env_name = env_name
        self.envs = None

    def _for_policy(self, obs, update: bool):
        """Observations as the policy sees them (normalised, the statistics updated)."""
        if self.obs_normalizer is None:
            return obs
        if update:
            self.obs_normalizer.update(obs)
        return self.obs_normalizer.normalize(obs, self.policy.dtype)

    def start(self, seed: int) -> None:
        """Reset every env (``seed`` seeds them all) and the carried state."""
        if self.envs is None:
            self.envs = self.env.vector_env(self.n_envs, self.vec_env, self.autoreset_mode)
        n = self.n_envs
        obs, _ = self._call(self.envs.reset, seed=seed)
        check_env_output(obs, 0.0, f"{self.env_name}, at reset")
        self._obs = self._for_policy(obs, update=True)
        self._state = self.policy.initial_state(n)
        self._episode_start = np.ones(n, dtype=bool)
        self._pending_reset = np.zeros(n, dtype=bool)  # next_step: the next step() resets
        self._ep_return = np.zeros(n)
        self._ep_length = np.zeros(n, dtype=np.int64)
        self._sde_noise = None
        if self.reward_scaler is not None:
            self.reward_scaler.reset(n)

    def collect(self, buf: RolloutBuffer, rng: np.random.Generator) -> list[tuple[float, int]]:
        """Fill ``buf`` with ``buf.n_steps`` steps of every env and compute its returns and
        advantages; returns ``(return, length)`` of each episode that ended."""
        policy, n = self.policy, self.n_envs
        next_step = self.autoreset_mode == "next_step"
        freq = self.sde_sample_freq
        episodes = []
        buf.reset()
        trunc_prev = np.zeros(n, dtype=bool)
        for t in range(buf.n_steps):
            if t % buf.seq_len == 0:
                buf.add_state(self._state)
            if policy.use_sde and (t == 0 or (freq > 0 and t % freq == 0)):
                self._sde_noise = policy.sample_sde_noise(n, rng)
            actions, values, log_probs, state = policy.act(
                self._obs, self._state, self._episode_start, rng=rng,
                sde_noise=self._sde_noise if policy.use_sde else None)
            if next_step and trunc_prev.any():  # values[t] is V(final obs) of those episodes
                buf.final_values[t - 1, trunc_prev] = values[trunc_prev]
            next_obs, rewards, terminated, truncated, infos = self._call(
                self.envs.step, clip_actions(policy.action_space, actions))
            check_env_output(next_obs, rewards, f"{self.env_name}, step {t} of the rollout")
            valid = ~self._pending_reset
            done = terminated | truncated
            self._ep_return += rewards
            self._ep_length += valid
            episodes += [(float(self._ep_return[i]), int(self._ep_length[i]))
                         for i in np.flatnonzero(done)]
            self._ep_return[done] = 0.0
            self._ep_length[done] = 0
            rewards = np.asarray(rewards, dtype=np.float64)
            if self.reward_scaler is not None:
                rewards = self.reward_scaler.scale(rewards, done, valid)
            norm_next = self._for_policy(next_obs, update=True)
            if not next_step and truncated.any():
                final = _final_obs_batch(next_obs, infos["final_obs"], truncated)
                final = self._for_policy(final, update=False)
                _, v_final, _, _ = policy.act(final, state, np.zeros(n, bool),
                                              deterministic=True)
                buf.final_values[t, truncated] = v_final[truncated]
            buf.add(self._obs, actions, rewards, self._episode_start, values, log_probs,
                    terminated, truncated, valid)
            self._obs, self._state = norm_next, state
            if next_step:
                self._episode_start = self._pending_reset.copy()
                self._pending_reset = done & ~self._pending_reset
            else:
                self._episode_start = done
            trunc_prev = truncated & next_step
        _, last_values, _, _ = policy.act(self._obs, self._state, self._episode_start,
                                          deterministic=True)
        buf.final_values[-1, trunc_prev] = last_values[trunc_prev]
        buf.compute_returns_and_advantages(last_values)
        return episodes

    def _call(self, fn, *args, **kwargs):
        """``fn(...)`` of the vector env, with a dead async worker reported as such."""
        try:
            return fn(*args, **kwargs)
        except (EOFError, BrokenPipeError, ConnectionResetError) as e:
            try:
                self.envs.close(terminate=True)
            except Exception:  # noqa: BLE001 - the pipes are broken; the processes go anyway
                pass
            self.envs = None  # the next learn() makes new envs
            raise RuntimeError(f"a worker process of the async vector env ({self.env_name}) "
                               f"died ({type(e).__name__}); see its traceback above, or use "
                               f"vec_env='sync' to run the envs in this process") from e

    def close(self) -> None:
        if self.envs is not None and self.env.owned():  # a given env stays the user's
            self.envs.close()
        self.envs = None


class RolloutWorker:
    """One backend worker of a policy-gradient trainer: a slice of the envs, a copy of the
    policy, and the rollout state of its envs, kept from one iteration to the next.

    Every iteration the trainer sends the weights and the normalisation statistics once
    (``shared``) and, per worker, where its random numbers come from (``own``). The worker
    steps its envs, computes GAE on its slice and sends back plain arrays (the buffer's
    ``parts``), its episodes, and its statistics. With one worker, it continues the trainer's
    own generator and statistics exactly, so the run is the run of one process; with several,
    worker ``k`` draws from ``default_rng([seed, k])`` and its statistics are merged in worker
    order, so a run is the same on every backend.

    Args:
        env: an :class:`agents.env_factory.EnvSource`.
        policy_recipe: ``(observation_space, action_space, LSTMPolicy.config())``.
        envs: ``(start, stop)``: the global indices of this worker's envs (env ``i`` is reset
            with ``seed + i``, whichever worker holds it).
        n_steps, seq_len, gamma, gae_lambda: as the trainer's config.
        obs_norm, reward: ``ObsNormalizer.config()`` / ``(gamma, clip)`` or None.
        vec_env, autoreset_mode, sde_sample_freq, env_name: as :class:`OnPolicyRollout`.
    """

    def __init__(self, env, policy_recipe, envs: tuple[int, int], n_steps: int,
                 seq_len: int, gamma: float, gae_lambda: float, obs_norm: dict | None,
                 reward: tuple[float, float] | None, vec_env: str = "sync",
                 autoreset_mode: str = "same_step", sde_sample_freq: int = -1,
                 env_name: str = "the env"):
        from rlstm.policy import LSTMPolicy, ObsNormalizer
        obs_space, act_space, config = policy_recipe
        self.policy = LSTMPolicy(obs_space, act_space, **config)
        self.first_env, n = envs[0], envs[1] - envs[0]
        self.obs_normalizer = None if obs_norm is None else ObsNormalizer.from_config(
            obs_norm, self.policy.observation_space)
        self.reward_scaler = None if reward is None else RewardScaler(*reward)
        self.rollout = OnPolicyRollout(env, self.policy, self.obs_normalizer,
                                       self.reward_scaler, n, vec_env, autoreset_mode,
                                       sde_sample_freq, env_name)
        self.buffer = RolloutBuffer(n_steps, n, seq_len, gamma, gae_lambda)
        self.started = False

    def start(self, shared, seed: int) -> dict:
        """Reset the envs (env ``i`` with ``seed + i``) and the carried state; returns the
        statistics (the first observations count)."""
        self._load(shared)
        self.rollout.start(seed=seed + self.first_env)
        self.started = True
        return self._statistics(shared)

    def _statistics(self, shared) -> dict:
        out = {}
        for key, stats in (("obs_norm", self.obs_normalizer),
                           ("ret_rms", self.reward_scaler and self.reward_scaler.rms)):
            if stats is not None:
                out[key] = {"state": stats.state_dict(), "since": stats.since(shared[key])}
        return out

    def _load(self, shared) -> None:
        if shared is None:
            return
        self.policy.flat_params[...] = shared["params"]
        if self.obs_normalizer is not None:
            self.obs_normalizer.load_state_dict(shared["obs_norm"])
        if self.reward_scaler is not None:
            self.reward_scaler.rms.load_state_dict(shared["ret_rms"])

    def collect(self, shared, own) -> dict:
        """One rollout of this worker's envs with the trainer's current weights."""
        from .checkpoint import rng_from_array, rng_to_array
        self._load(shared)
        if not self.started:  # a replacement for a worker that died: fresh envs
            self.rollout.start(seed=own["fresh_seed"] + self.first_env)
            self.started = True
        rng = rng_from_array(own["rng"]) if "rng" in own else \
            np.random.default_rng([own["seed"], own["worker"]])
        episodes = self.rollout.collect(self.buffer, rng)
        return {"parts": self.buffer.parts(), "episodes": episodes, "rng": rng_to_array(rng),
                **self._statistics(shared)}

    def close(self) -> None:
        self.rollout.close()
