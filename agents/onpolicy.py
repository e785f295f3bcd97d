"""What the recurrent policy-gradient trainers (PPO, A2C, REINFORCE) share.

One iteration of :class:`OnPolicyTrainer` collects ``n_envs * n_steps`` transitions
(:mod:`agents.rollout`), computes GAE(lambda) (:mod:`agents.buffers`), and hands the buffer to
the algorithm's ``_update`` (in ``ppo.py``, ``a2c.py``, ``reinforce.py``), which computes its
loss (:mod:`agents.losses`) and calls :meth:`OnPolicyTrainer.apply_gradients`. The learning
rate decays linearly over each ``learn`` call unless ``lr_schedule="constant"``.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Annotated, Literal

import numpy as np

from rlstm.optim import Adam, clip_grad_norm

from .backends import make_backend, split_evenly
from .buffers import RolloutBuffer
from .checkpoint import rng_from_array, rng_to_array
from .config import AtLeast1, Range, TrainerConfig
from .logger import COMMON_FIELDS
from .rollout import RewardScaler, RolloutWorker
from .trainer import Trainer, TrainingDiverged

__all__ = ["OnPolicyConfig", "OnPolicyTrainer"]

Positive = Annotated[float, Range(0, low_open=True)]
Unit = Annotated[float, Range(0, 1)]
NonNegative = Annotated[float, Range(0)]


@dataclass
class OnPolicyConfig(TrainerConfig):
    """Settings every policy-gradient trainer shares (plus those of
    :class:`agents.config.TrainerConfig`)."""

    n_envs: AtLeast1 = 8
    """Parallel environments in the vector env."""
    n_steps: AtLeast1 = 32
    """Steps per env per rollout; a rollout is ``n_envs * n_steps`` transitions."""
    seq_len: AtLeast1 | None = None
    """Length of the truncated-BPTT sequences the rollout is cut into (``None``: ``n_steps``).
    Must divide ``n_steps``."""
    gamma: Unit = 0.98
    """Discount factor."""
    gae_lambda: Unit = 0.8
    """GAE(lambda) parameter (1.0: Monte-Carlo returns, 0.0: one-step TD)."""
    learning_rate: Positive = 1e-3
    """Adam step size (initial value when ``lr_schedule="linear"``)."""
    lr_schedule: Literal["constant", "linear"] = "linear"
    """``"constant"`` or ``"linear"`` (decays to 0 at the end of each ``learn`` call)."""
    max_grad_norm: Positive = 0.5
    """Global gradient-norm clip."""
    ent_coef: NonNegative = 0.0
    """Entropy bonus coefficient."""
    vf_coef: NonNegative = 0.5
    """Value-loss coefficient: the loss adds ``vf_coef * mean((V - R)^2)`` (SB3's convention)."""
    normalize_advantage: bool = True
    """Standardize advantages per minibatch."""
    normalize_reward: bool = True
    """Scale rewards by the running std of the discounted return (as SB3's VecNormalize)."""
    clip_reward: Positive = 10.0
    """Clip normalized rewards to ``[-clip_reward, clip_reward]``."""
    shared_core: bool = False
    """One LSTM for actor and critic (``True``) or a separate critic LSTM (``False``)."""
    use_sde: bool = False
    """Generalized state-dependent exploration for Box actions (gSDE, Raffin et al. 2022, as
    SB3's ``use_sde``): the action noise is the actor LSTM's output times an exploration matrix
    per env, held for ``sde_sample_freq`` steps, so exploration is smooth in time. It is what
    MountainCarContinuous needs. Ignored for action spaces without a Box part."""
    sde_sample_freq: int = -1
    """Redraw the gSDE exploration matrices every this many steps (``-1``: once per rollout)."""
    vec_env: Literal["sync", "async"] = "sync"
    """``"sync"`` (one process) or ``"async"`` (one subprocess per env)."""
    autoreset_mode: Literal["same_step", "next_step"] = "same_step"
    """The vector env's autoreset mode: ``"same_step"`` (an ending episode is reset within the
    same ``step``, as SB3's vector envs do, so no step is spent on resets) or ``"next_step"``
    (Gymnasium's default: the step after an episode ends only resets; those steps are counted
    but masked out of the losses)."""

    @property
    def sequence_length(self) -> int:
        """``seq_len``, or ``n_steps`` when it is None."""
        return self.n_steps if self.seq_len is None else self.seq_len

    def check(self) -> None:
        super().check()
        name = type(self).__name__
        if self.n_steps % self.sequence_length:
            raise ValueError(f"{name}.seq_len ({self.seq_len}) must divide n_steps "
                             f"({self.n_steps}); e.g. seq_len=None (= n_steps)")
        if not (self.sde_sample_freq == -1 or self.sde_sample_freq >= 1):
            raise ValueError(f"{name}.sde_sample_freq must be -1 (once per rollout) or >= 1, "
                             f"got {self.sde_sample_freq}")

    def _policy_fields(self) -> tuple[str, ...]:
        return super()._policy_fields() + ("shared_core", "use_sde")


class OnPolicyTrainer(Trainer):
    """Base of PPO, A2C and REINFORCE: a subclass sets ``config_class`` and implements
    ``_update(buffer, progress) -> dict`` of statistics."""

    config_class = OnPolicyConfig
    log_fields = COMMON_FIELDS + ["episodes", "ep_length_mean", "loss", "pg_loss",
                                  "value_loss", "entropy", "approx_kl", "clip_fraction",
                                  "explained_variance", "grad_norm", "learning_rate"]

    def _policy_kwargs(self) -> dict:
        return {"shared_core": self.config.shared_core, "use_sde": self.config.use_sde}

    def _adapt_to_env(self, source, overrides: dict) -> None:
        """A given VectorEnv sets ``n_envs`` and ``autoreset_mode``; a given Env instance is
        the one env (``n_envs=1``), as Stable-Baselines3 uses one."""
        if source.factory is not None:
            return
        n = source.num_envs or 1
        if overrides.get("n_envs", n) != n:
            form = "VectorEnv holds" if source.vector is not None else "Env instance is"
            raise ValueError(f"n_envs={overrides['n_envs']}, but the given {form} {n} env(s); "
                             f"to run more, pass a Gymnasium id, an Env class or a callable")
        changes = {"n_envs": n}
        if source.autoreset_mode is not None:
            changes["autoreset_mode"] = source.autoreset_mode
        if self.config.backend != "serial" or (self.config.n_workers or 1) > 1:
            raise ValueError("a given Env instance or VectorEnv lives in this process: use "
                             "backend='serial' with one worker, or pass a Gymnasium id, an Env "
                             "class or a callable so that workers can make their own envs")
        self.config = dataclasses.replace(self.config, **changes)

    def _init_algorithm(self) -> None:
        cfg = self.config
        self.optimizer = Adam(self.policy, lr=cfg.learning_rate, eps=1e-5)
        self.reward_scaler = (RewardScaler(cfg.gamma, cfg.clip_reward)
                              if cfg.normalize_reward else None)
        self.buffer = RolloutBuffer(cfg.n_steps, cfg.n_envs, cfg.sequence_length, cfg.gamma,
                                    cfg.gae_lambda)
        self.workers = None
        self._reset_seed = 0

    # ------------------------------------------------------------------ rollout workers
    def _slices(self) -> list[tuple[int, int]]:
        cfg = self.config
        n = cfg.n_workers or (1 if cfg.backend == "serial" else None)
        if n is None:
            from .backends import _cpu_count
            n = _cpu_count()
        return split_evenly(cfg.n_envs, n)

    def _make_workers(self):
        """The backend and its rollout workers, one env slice each (see
        :class:`agents.rollout.RolloutWorker`)."""
        cfg, env = self.config, self._require_env()
        recipe = (self.observation_space, self.action_space, self.policy.config())
        norm = None if self.obs_normalizer is None else self.obs_normalizer.config()
        reward = None if self.reward_scaler is None else (cfg.gamma, cfg.clip_reward)
        slices, name = self._slices(), self.env_id or "the env"

        def factory(k: int) -> RolloutWorker:
            return RolloutWorker(env, recipe, slices[k], cfg.n_steps, cfg.sequence_length,
                                 cfg.gamma, cfg.gae_lambda, norm, reward, cfg.vec_env,
                                 cfg.autoreset_mode, cfg.sde_sample_freq, name)
        kwargs = {"address": cfg.address} if cfg.backend == "ray" else {}
        return make_backend(cfg.backend, factory, len(slices), **kwargs)

    def _shared(self) -> dict:
        """What every worker receives once per call: the weights and the statistics."""
        return {"params": self.policy.flat_params,
                "obs_norm": None if self.obs_normalizer is None else
                self.obs_normalizer.state_dict(),
                "ret_rms": None if self.reward_scaler is None else
                self.reward_scaler.rms.state_dict()}

    def _start_learning(self) -> None:
        """Fresh envs, seeded from the trainer's generator (so a resumed run is identical)."""
        if self.workers is None:
            self.workers = self._make_workers()
        self._reset_seed = int(self.rng.integers(2 ** 31 - 1))
        self._merge(self.workers.call("start", self._shared(),
                                      [self._reset_seed] * self.workers.n_workers))

    def _collect(self) -> list[tuple[float, int]]:
        """One rollout of every env into :attr:`buffer`, the statistics merged; returns the
        episodes that ended, in order."""
        K = self.workers.n_workers
        fresh = (self._reset_seed + 1_000_003 * (self.iterations + 1)) % (2 ** 31 - 1)
        if K == 1:  # the worker continues this trainer's own generator
            own = [{"rng": rng_to_array(self.rng), "fresh_seed": fresh}]
        else:
            seed = int(self.rng.integers(2 ** 63))
            own = [{"seed": seed, "worker": k, "fresh_seed": fresh} for k in range(K)]
        results = self.workers.call("collect", self._shared(), own)
        self.buffer.load_parts([r["parts"] for r in results])
        self._merge(results)
        if K == 1:
            self.rng = rng_from_array(results[0]["rng"])
        return [ep for r in results for ep in r["episodes"]]

    def _merge(self, results: list[dict]) -> None:
        """Fold the workers' observation and return statistics into the trainer's: one
        worker's become the trainer's exactly; several are merged in worker order."""
        for key, stats in (("obs_norm", self.obs_normalizer),
                           ("ret_rms", self.reward_scaler and self.reward_scaler.rms)):
            if stats is None:
                continue
            if len(results) == 1:
                stats.load_state_dict(results[0][key]["state"])
            else:
                for r in results:
                    stats.update_from_moments(*r[key]["since"])

    def _iteration(self, progress: float) -> dict:
        cfg = self.config
        lr = cfg.learning_rate * (1.0 - progress if cfg.lr_schedule == "linear" else 1.0)
        self.optimizer.lr = max(lr, 1e-12)
        episodes = self._collect()
        self.num_timesteps += cfg.n_envs * cfg.n_steps
        for ret, length in episodes:
            self.episode_returns.append(ret)
            self.episode_lengths.append(length)
        stats = self._update(self.buffer, progress)
        recent = self.episode_returns[-100:]
        return {"episodes": len(self.episode_returns),
                "ep_return_mean": float(np.mean(recent)) if recent else None,
                "ep_length_mean": float(np.mean(self.episode_lengths[-100:])) if recent else None,
                "learning_rate": self.optimizer.lr,
                "explained_variance": self._explained_variance(self.buffer), **stats}

    def _update(self, buf: RolloutBuffer, progress: float) -> dict:  # pragma: no cover
        raise NotImplementedError

    def apply_gradients(self, loss: float, dlog_probs, dentropy, dvalues, cache) -> float:
        """Backpropagate the loss's gradients with respect to the policy outputs, clip the
        global norm to ``max_grad_norm`` and take one Adam step; returns the norm before
        clipping. A non-finite loss, gradient or parameter raises :class:`TrainingDiverged`."""
        policy = self.policy
        if not np.isfinite(loss):
            raise TrainingDiverged(f"the loss is {loss}")
        for name, d in (("dlog_probs", dlog_probs), ("dentropy", dentropy),
                        ("dvalues", dvalues)):
            if not np.isfinite(d).all():
                raise TrainingDiverged(f"the loss's gradient {name} contains NaN or inf")
        policy.zero_grad()
        try:
            policy.backward(dlog_probs, dentropy, dvalues, cache)
        except ValueError as e:  # an overflow inside the backward pass (huge weights)
            if "NaN or inf" not in str(e):
                raise
            raise TrainingDiverged(f"the backward pass overflowed ({e})") from None
        grad_norm = clip_grad_norm(policy.flat_grads, self.config.max_grad_norm)
        if not np.isfinite(grad_norm):
            raise TrainingDiverged("the gradient contains NaN or inf")
        self.optimizer.step()
        if not np.isfinite(policy.flat_params).all():
            raise TrainingDiverged("a parameter became NaN or inf")
        return grad_norm

    @staticmethod
    def _explained_variance(buf: RolloutBuffer) -> float:
        m = buf.valid
        y, v = buf.returns[m], buf.values[m]
        var = np.var(y)
        return float("nan") if var == 0 else float(1 - np.var(y - v) / var)

    # ------------------------------------------------------------------ state
    def _algorithm_state(self) -> dict[str, np.ndarray]:
        out = {f"optim/{k}": np.asarray(v) for k, v in self.optimizer.state_dict().items()}
        if self.reward_scaler is not None:
            out.update(self.reward_scaler.rms.state_dict("ret_rms/"))
        return out

    def _load_algorithm_state(self, arrays: dict, meta: dict) -> None:
        self.optimizer.load_state_dict({k[6:]: v for k, v in arrays.items()
                                        if k.startswith("optim/")})
        if self.reward_scaler is not None:
            self.reward_scaler.rms.load_state_dict(arrays, "ret_rms/")

    def close(self) -> None:
        if self.workers is not None:
            self.workers.close()
            self.workers = None
        super().close()
