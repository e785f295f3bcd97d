"""``Trainer``: what every trainer is, whatever its algorithm.

A trainer owns an env factory, an :class:`~rlstm.policy.LSTMPolicy`, the observation
normaliser, one random generator, and the counters of its run. This class writes, once for
every algorithm (policy gradient and evolution alike):

- construction, ``Trainer(env, config=None, *, seed=None, **overrides)``, with the config
  checked field by field (:mod:`agents.config`);
- the ``learn`` loop: progress bar, callbacks, logging, checkpoints, Ctrl-C, divergence;
- ``predict`` (:class:`rlstm.policy.Predictor`);
- ``save`` and ``load``, in one file format (:mod:`agents.checkpoint`).

An algorithm subclasses it (through :class:`agents.onpolicy.OnPolicyTrainer` or
:class:`agents.es.EvolutionTrainer`) and implements one iteration and its own state:

- ``_init_algorithm()``: its optimizer or search distribution (no workers, no envs);
- ``_iteration(progress) -> dict``: one rollout and update, or one generation; it advances
  ``num_timesteps`` and returns the statistics to log;
- ``_algorithm_state() -> dict`` / ``_load_algorithm_state(arrays, meta)``: its arrays (saved
  under ``algo/``) and JSON state, enough to continue bit for bit.

**Exact resume.** ``learn(N); save; load; learn(M)`` gives the run of ``learn(N); learn(M)``:
every random draw comes from ``self.rng``, which is saved, and each ``learn`` starts its envs
from seeds drawn from it. After every iteration the trainer keeps a snapshot of its state (what
``save`` would write); Ctrl-C writes that snapshot to the checkpoint and rolls the trainer back
to it, so a run interrupted anywhere resumes from the last whole iteration. When an iteration
diverges (NaN or inf), the trainer is rolled back the same way and :class:`TrainingDiverged`
is raised; a diverged model is never written over a file.
"""
from __future__ import annotations

import dataclasses
import os
import time
from contextlib import nullcontext
from typing import Any, ClassVar

import numpy as np
from threadpoolctl import threadpool_limits
from tqdm.auto import tqdm

from rlstm.errors import TrainingDiverged
from rlstm.io import describe, rebuild
from rlstm.policy import LSTMPolicy, ObsNormalizer, Predictor
from rlstm.policy.normalize import normalizes
from rlstm.validation import check_int, check_value

from . import checkpoint
from .callbacks import as_callbacks
from .config import TrainerConfig, make_config
from .env_factory import EnvSource, as_env_source
from .logger import COMMON_FIELDS, TRAINING_LABEL, RunLogger, format_row

__all__ = ["Trainer", "TrainingDiverged", "check_spaces"]


class Trainer:
    """Base of every trainer: ``Trainer(env, config=None, *, seed=None, **overrides)``.

    ``env`` is a Gymnasium id, a zero-argument callable returning an env, or an Env class;
    ``overrides`` replace fields of ``config`` (e.g. ``PPO("CartPole-v1", n_envs=4)``).
    """

    config_class: ClassVar[type] = TrainerConfig
    default_env: ClassVar[str] = "rlstm/CartPoleNoVel-v1"
    """What ``rlstm train ALGO`` trains on when no env is given."""
    default_timesteps: ClassVar[int] = 100_000
    """The budget of ``rlstm train ALGO ENV`` when none is given or tuned."""
    log_fields: ClassVar[list[str]] = COMMON_FIELDS
    """The columns of ``progress.csv``."""
    curve_label: ClassVar[str] = TRAINING_LABEL
    """What ``ep_return_mean`` is: its legend in ``learning_curve.png``."""

    def __init__(self, env, config=None, *, seed: int | None = None, **overrides):
        if config is not None and not isinstance(config, self.config_class) and \
                isinstance(env, str) and env.endswith("Policy"):
            raise TypeError(f"rlstm trainers take the env first and build their LSTM policy "
                            f"themselves: write {type(self).__name__}(env, ...) instead of "
                            f"Stable-Baselines3's {type(self).__name__}({env!r}, env, ...); "
                            f"the policy's settings are config fields (hidden_size, "
                            f"mlp_hidden, policy_kwargs)")
        self.config = make_config(self.config_class, config, overrides)
        if seed is not None:
            seed = check_int("seed", seed, 0)
        self.seed = seed
        self._env = as_env_source(env).filtered(self.config.obs_keys)
        self.env_id = self._env.env_id
        self._adapt_to_env(self._env, overrides)
        observation_space, action_space = self._env.spaces()
        self._inspect_env(self._env)
        self._env_checked = True
        self._build(observation_space, action_space)

    # ------------------------------------------------------------------ subclass hooks
    def _adapt_to_env(self, source, overrides: dict) -> None:
        """Fit the config to the form the env came in (a VectorEnv sets ``n_envs``)."""

    def _inspect_env(self, source) -> None:
        """Read what the algorithm needs from the env (e.g. its time limit)."""

    def _policy_kwargs(self) -> dict:
        """Keyword arguments for the policy beyond the shared config fields."""
        return {}

    def _init_algorithm(self) -> None:
        raise NotImplementedError

    def _start_learning(self) -> None:
        """Called at the start of every ``learn`` (e.g. to reset the envs)."""

    def _iteration(self, progress: float) -> dict:
        raise NotImplementedError

    def _algorithm_state(self) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def _algorithm_meta(self) -> dict:
        """JSON-able state of the algorithm, saved in the header."""
        return {}

    def _load_algorithm_state(self, arrays: dict[str, np.ndarray], meta: dict) -> None:
        raise NotImplementedError

    def _finite(self) -> bool:
        """Whether the algorithm's state is finite (checked after every iteration)."""
        return bool(np.isfinite(self.policy.flat_params).all())

    def _done(self, row: dict) -> bool:
        """Whether ``learn`` should stop after the iteration that logged ``row``."""
        return False

    def close(self) -> None:
        """Close envs, workers and loggers (a later ``learn`` starts them again)."""
        self.logger.close()

    # ------------------------------------------------------------------ construction
    def _policy_arguments(self) -> dict:
        """The keyword arguments of the policy this trainer's config describes."""
        cfg = self.config
        return {"hidden_size": cfg.hidden_size, "num_layers": cfg.num_layers,
                "dtype": np.dtype(cfg.dtype), "mlp_hidden": cfg.mlp_hidden,
                "head_hidden": cfg.head_hidden, **self._policy_kwargs(), **cfg.policy_kwargs}

    def _build(self, observation_space, action_space, policy: LSTMPolicy | None = None) -> None:
        """Everything but the env: used by ``__init__`` and by ``load`` (which passes the
        policy it read)."""
        cfg = self.config
        self.observation_space, self.action_space = observation_space, action_space
        policy_seed, rng_seed, predict_seed = (
            int(s.generate_state(1)[0]) for s in np.random.SeedSequence(self.seed).spawn(3))
        self.policy = policy if policy is not None else LSTMPolicy(
            observation_space, action_space, seed=policy_seed, **self._policy_arguments())
        self.obs_normalizer = (ObsNormalizer.for_space(observation_space, cfg.clip_obs)
                               if cfg.normalize_obs and normalizes(observation_space) else None)
        self.predictor = Predictor(self.policy, self.obs_normalizer, seed=predict_seed)
        self.rng = np.random.default_rng(rng_seed)
        self.num_timesteps = 0
        self.iterations = 0
        self.episode_returns: list[float] = []
        self.episode_lengths: list[int] = []
        self.log_extra: dict[str, float] = {}
        self.last_row: dict | None = None
        self.logger = RunLogger(cfg.log_dir, self.log_fields, cfg.tensorboard,
                                label=self.curve_label)
        self._init_algorithm()

    def _require_env(self) -> EnvSource:
        """The env (made from the saved id if the model was loaded without one); the first
        time, its spaces are checked against the model's."""
        if self._env is None:
            if self.env_id is None:
                raise ValueError("this model was loaded without an env and was not trained on "
                                 "a Gymnasium id; pass env= to load() to continue training")
            self._env = as_env_source(self.env_id).filtered(self.config.obs_keys)
        if not self._env_checked:
            check_spaces(self, *self._env.spaces())
            self._env_checked = True
        return self._env

    @property
    def checkpoint_path(self) -> str | None:
        d = self.config.log_dir
        return None if d is None else os.path.join(d, "checkpoint.rlstm")

    @property
    def history(self) -> list[dict]:
        """The logged rows so far (what ``progress.csv`` holds)."""
        return self.logger.rows

    # ------------------------------------------------------------------ learn
    def learn(self, total_timesteps: int, progress_bar: bool = False, callback=None,
              reset_num_timesteps: bool = False):
        """Train for ``total_timesteps`` more environment steps (rounded up to whole
        iterations); returns ``self``.

        Calling it again continues the same run. ``callback``: a
        :class:`~agents.callbacks.Callback`, a function ``f(model)`` (``False`` stops) or a
        list of them. ``reset_num_timesteps=True`` (Stable-Baselines3's default, here not)
        starts the step and iteration counters from 0 again; the weights, optimizer and
        statistics carry on either way. Ctrl-C writes ``log_dir/checkpoint.rlstm`` (the last
        whole iteration) and re-raises.
        """
        total = check_int("total_timesteps", total_timesteps, 1)
        callbacks = as_callbacks(callback)
        if check_value("reset_num_timesteps", reset_num_timesteps, bool):
            self.num_timesteps = self.iterations = 0
            self.logger.restart()
        self._require_env()
        threads = self.config.blas_threads
        with threadpool_limits(threads) if threads is not None else nullcontext():
            self._learn(total, progress_bar, callbacks)
        return self

    def _learn(self, total: int, progress_bar: bool, callbacks: list) -> None:
        cfg = self.config
        start, t0 = self.num_timesteps, time.perf_counter()
        target = start + total
        next_ckpt = start + cfg.checkpoint_freq if cfg.checkpoint_freq else None
        bar = tqdm(total=total, disable=not progress_bar, unit="step", dynamic_ncols=True,
                   desc=type(self).__name__)
        boundary = self._snapshot()
        try:
            self._start_learning()
            for cb in callbacks:
                cb.on_training_start(self)
            while self.num_timesteps < target:
                try:
                    stats = self._advance((self.num_timesteps - start) / total)
                except TrainingDiverged as e:
                    self._restore(*boundary)
                    self._keep(boundary, start)
                    raise TrainingDiverged(self._diverged_message(e)) from None
                except Exception:  # an env fault, a dead worker: back to the last iteration
                    self._restore(*boundary)
                    self._keep(boundary, start)
                    raise
                boundary = self._snapshot()
                elapsed = time.perf_counter() - t0
                row = {"timesteps": self.num_timesteps, "iterations": self.iterations,
                       "time_elapsed": round(elapsed, 3),
                       "fps": round((self.num_timesteps - start) / max(elapsed, 1e-9), 1),
                       **stats}
                self.last_row = row
                self.log_extra = {}
                keep_going = all([cb.on_iteration(self) for cb in callbacks])
                row.update(self.log_extra)
                if self.iterations % cfg.log_every == 0:
                    self.logger.log(row)
                    if cfg.verbose:
                        print(format_row(row), flush=True)
                bar.update(min(self.num_timesteps, target) - start - bar.n)
                if row.get("ep_return_mean") is not None:
                    bar.set_postfix(ep_return=f"{row['ep_return_mean']:.1f}", refresh=False)
                if next_ckpt is not None and self.num_timesteps >= next_ckpt:
                    self._write(self.checkpoint_path, *boundary)
                    next_ckpt = self.num_timesteps + cfg.checkpoint_freq
                if not keep_going or self._done(row):
                    break
        except KeyboardInterrupt:
            self._restore(*boundary)
            if self.checkpoint_path:
                self._write(self.checkpoint_path, *boundary)
                bar.write(f"interrupted: the last whole iteration is saved in "
                          f"{self.checkpoint_path}")
            raise
        finally:
            bar.close()
        if self.checkpoint_path:
            self.save(self.checkpoint_path)
            self.logger.plot(f"{type(self).__name__} on {self.env_id or 'env'}")
        for cb in callbacks:
            cb.on_training_end(self)

    def _keep(self, boundary, start: int) -> None:
        """After a fault: write the last whole iteration to ``checkpoint_path`` when this
        ``learn`` call got that far, so a failed run keeps its work (the checkpoint only ever
        moves forward to a finite, whole iteration)."""
        if self.checkpoint_path and self.num_timesteps > start:
            try:
                self._write(self.checkpoint_path, *boundary)
            except Exception:  # noqa: BLE001 - the original error is the one to report
                pass

    def _advance(self, progress: float) -> dict:
        """One whole iteration: the algorithm's :meth:`_iteration`, the divergence check and
        the iteration counter. ``progress`` is the fraction of this ``learn`` call done."""
        stats = self._iteration(progress)
        if not self._finite():
            raise TrainingDiverged("a parameter became NaN or inf")
        self.iterations += 1
        return stats

    def _diverged_message(self, error: Exception) -> str:
        path = self.checkpoint_path
        where = (f"; the last good checkpoint is {path}" if path and os.path.exists(path)
                 else "")
        return (f"training diverged at timestep {self.num_timesteps}: {error}. The model is "
                f"left at its last whole iteration{where}. Try a smaller learning rate or "
                f"step size.")

    # ------------------------------------------------------------------ predict
    def predict(self, obs, state=None, episode_start=None, deterministic: bool = False):
        """``action, state`` for one observation or a batch (as a vector env returns it).

        ``state=None`` starts fresh episodes; pass the returned ``state`` back with
        ``episode_start`` True for rows whose episode just began. Observations are normalised
        as in training and ``Box`` actions clipped to the action space. Sampling uses a
        generator of its own, so predicting never changes the training run.
        """
        return self.predictor.predict(obs, state, episode_start, deterministic)

    # ------------------------------------------------------------------ files
    def _snapshot(self) -> tuple[dict, dict]:
        """``(arrays, header)`` of the trainer file: everything needed to continue."""
        arrays = {"policy/flat_params": self.policy.flat_params.copy(),
                  "trainer/rng": checkpoint.rng_to_array(self.rng),
                  "trainer/episode_returns": np.asarray(self.episode_returns[-100:],
                                                        dtype=np.float64),
                  "trainer/episode_lengths": np.asarray(self.episode_lengths[-100:],
                                                        dtype=np.int64)}
        if self.obs_normalizer is not None:
            arrays.update(self.obs_normalizer.state_dict("obs_norm/"))
        arrays.update({f"algo/{k}": np.array(v, copy=True)
                       for k, v in self._algorithm_state().items()})
        header = {
            "trainer": {"algorithm": type(self).__name__,
                        "config": dataclasses.asdict(self.config), "seed": self.seed,
                        "env_id": self.env_id, "num_timesteps": self.num_timesteps,
                        "iterations": self.iterations,
                        "algorithm_state": self._algorithm_meta()},
            "policy": describe(self.policy),
            "obs_norm": None if self.obs_normalizer is None else self.obs_normalizer.config()}
        return arrays, header

    def _write(self, path, arrays: dict, header: dict) -> None:
        if not np.isfinite(arrays["policy/flat_params"]).all():
            raise TrainingDiverged(f"refusing to write NaN/inf parameters to {path}: the file "
                                   f"there (if any) is kept")
        checkpoint.write(path, type(self).__name__, arrays, header)

    def save(self, path) -> None:
        """Write everything needed to continue the run, or to act, to ``path`` (rlstm's
        pickle-free format, written atomically). Refuses non-finite parameters."""
        self._write(os.fspath(path), *self._snapshot())

    def _restore(self, arrays: dict, header: dict, where: str = "the snapshot") -> None:
        """Load a trainer file's ``(arrays, header)`` into this trainer (same architecture)."""
        t = header["trainer"]
        try:
            self.policy.set_flat_params(arrays["policy/flat_params"])
            if self.obs_normalizer is not None:
                self.obs_normalizer.load_state_dict(arrays, "obs_norm/")
            self.rng = checkpoint.rng_from_array(arrays["trainer/rng"])
            self.num_timesteps = check_int("num_timesteps", t["num_timesteps"], 0)
            self.iterations = check_int("iterations", t["iterations"], 0)
            self.episode_returns = [float(x) for x in arrays["trainer/episode_returns"]]
            self.episode_lengths = [int(x) for x in arrays["trainer/episode_lengths"]]
            self._load_algorithm_state({k[5:]: v for k, v in arrays.items()
                                        if k.startswith("algo/")},
                                       t.get("algorithm_state") or {})
        except KeyError as e:
            raise ValueError(f"{where} is missing the entry {e}") from None
        except (TypeError, ValueError) as e:
            raise ValueError(f"{where} is not a valid {type(self).__name__} file: {e}") from None
        if not self._finite():
            raise ValueError(f"{where} holds NaN or inf in the {type(self).__name__}'s state")

    @classmethod
    def load(cls, path, env=None, **overrides) -> "Trainer":
        """Rebuild a trainer saved by :meth:`save`, ready to ``predict`` with no env and no
        workers. ``env`` (default: the saved Gymnasium id) is needed only to continue
        training; ``overrides`` change config fields for the continued run (e.g.
        ``log_dir``). A file that is not a saved ``cls`` raises ``ValueError``."""
        where = os.fspath(path)
        arrays, header = checkpoint.read(path, cls.__name__)
        t = header["trainer"]
        # the policy first: its sizes are checked against the saved parameters before anything
        # is allocated
        policy = rebuild(header["policy"], arrays.get("policy/flat_params"), where)
        if not isinstance(policy, LSTMPolicy):
            raise ValueError(f"{where}: its policy section holds a {type(policy).__name__}")
        try:
            saved = dict(t["config"])
            names = {f.name for f in dataclasses.fields(cls.config_class)}
            config = make_config(cls.config_class, None,
                                 {k: v for k, v in saved.items() if k in names})
            config = make_config(cls.config_class, config, overrides)
            seed = t["seed"]
            if seed is not None:
                seed = check_int("seed", seed, 0)
        except KeyError as e:
            raise ValueError(f"{where} is missing the header entry {e}") from None
        except (TypeError, ValueError, AttributeError) as e:
            raise ValueError(f"{where} has an invalid trainer header: {e}") from None
        self = cls.__new__(cls)
        self.config, self.seed = config, seed
        saved_id = t.get("env_id")
        if env is None:
            self._env, self.env_id = None, saved_id if isinstance(saved_id, str) else None
        else:
            self._env = as_env_source(env).filtered(config.obs_keys)
            self.env_id = self._env.env_id or (saved_id if isinstance(saved_id, str) else None)
        self._env_checked = False
        built = policy.config()
        for key, value in self._policy_arguments().items():
            mine = np.dtype(value).name if key == "dtype" else \
                list(value) if isinstance(value, tuple) else value
            if key not in ("use_sde", "sde_learn_features") and built.get(key, mine) != mine:
                raise ValueError(f"{where}: the trainer config says {key}={mine!r}, its policy "
                                 f"was built with {built.get(key)!r} (a setting that changes "
                                 f"the policy cannot be overridden at load)")
        self._load_env_meta(t.get("algorithm_state") or {})
        self._build(policy.observation_space, policy.action_space, policy)
        if header.get("obs_norm") is None and self.obs_normalizer is not None:
            # saved without statistics (a Dict/Tuple observation from before such parts were
            # normalised): it keeps acting and training on unnormalised observations
            self.obs_normalizer = self.predictor.obs_normalizer = None
        self._restore(arrays, header, where)
        self.logger.append = True  # a loaded run continues its progress.csv
        return self

    def _load_env_meta(self, meta: dict) -> None:
        """At load, instead of :meth:`_inspect_env`: read what it would have read from the
        saved algorithm state."""

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(env={self.env_id!r}, timesteps={self.num_timesteps}, "
                f"params={self.policy.num_params})")

    # for type checkers: attributes set by _build
    policy: LSTMPolicy
    obs_normalizer: ObsNormalizer | None
    predictor: Predictor
    rng: np.random.Generator
    config: Any


def check_spaces(model, observation_space, action_space) -> None:
    """A ``ValueError`` showing both spaces when an env's differ from the model's."""
    for what, mine, theirs in (("observation", model.observation_space, observation_space),
                               ("action", model.action_space, action_space)):
        if mine != theirs:
            raise ValueError(f"the env's {what} space {theirs} differs from the model's "
                             f"{mine}")
