"""Evolino-style hybrids (Schmidhuber, Wierstra, Gagliolo & Gomez 2007): evolve the recurrent
weights, compute the linear readout.

- :class:`Evolino` (reinforcement learning): antithetic ES (as :class:`OpenAIES`) on every
  parameter *except* the action readout (``action.*`` and ``log_std``); the readout is moved by a
  REINFORCE policy-gradient step on episodes of the center policy after each generation.
- :class:`EvolinoSequence` (supervised sequences): ES on the LSTM weights; for every member the
  readout ``y = [h, 1] @ W`` is fitted by (ridge) least squares on the member's own hidden
  states after a washout, and the member's fitness is minus its mean squared error. This is
  Evolino's division of labour: evolution finds the memory, linear algebra the output.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import numpy as np

from rlstm import LSTM, TrainingDiverged
from rlstm.optim import Adam
from rlstm.policy.predict import clip_actions
from rlstm.serialization import load_arrays, save_arrays
from rlstm.validation import as_float_array, check_int

from ..checkpoint import rng_from_array, rng_to_array
from ..config import AtLeast1, Range
from .noise import MAX_NOISE_TABLE, NoiseTable
from .openai_es import OpenAIES, OpenAIESConfig, es_gradient

__all__ = ["Evolino", "EvolinoConfig", "EvolinoSequence", "fit_readout"]


# ---------------------------------------------------------------------------------- RL
@dataclass
class EvolinoConfig(OpenAIESConfig):
    """Evolino (RL) settings: OpenAI-ES on the core, policy gradient on the readout."""

    pg_episodes: AtLeast1 = 4
    """Episodes of the stochastic center policy per generation for the readout's PG step."""
    pg_learning_rate: Annotated[float, Range(0, low_open=True)] = 0.01
    """Adam step size of the readout's policy-gradient step."""


class Evolino(OpenAIES):
    """Evolve the LSTM (and encoder) by ES; learn the action readout by policy gradient."""

    config_class = EvolinoConfig

    def _init_strategy(self) -> None:
        super()._init_strategy()
        readout = np.zeros(self.num_params, dtype=bool)
        for name, (o, shape) in self.policy.param_layout.items():
            if name.startswith("action.") or name == "log_std":
                readout[o:o + int(np.prod(shape))] = True
        self.readout_mask = readout
        self._evolve_mask = (~readout).astype(np.float32)
        self._pg_grad = np.zeros_like(self._theta)
        self.pg_optimizer = Adam(self._theta, self._pg_grad, lr=self.config.pg_learning_rate)

    def _ask(self):
        payload, members, groups, idx = super()._ask()
        payload["mask"] = self._evolve_mask
        return payload, members, groups, idx

    def _tell(self, idx, fitness: np.ndarray) -> None:
        f = fitness.reshape(-1, 2)
        g = es_gradient(self.noise, idx, f[:, 0], f[:, 1], self.num_params)
        self._grad[...] = (-g + self.config.weight_decay * self._theta) * self._evolve_mask
        self.optimizer.step()
        self._sync_policy()
        self.num_timesteps += self._policy_gradient_step()

    def _policy_gradient_step(self) -> int:
        """REINFORCE on the readout: episodes of the stochastic center, normalised returns."""
        policy = self.policy
        env = self._require_env().copies("Evolino's policy-gradient episodes")()
        obs_l, act_l, start_l, ret_l = [], [], [], []
        for _ in range(self.config.pg_episodes):
            obs, _ = env.reset(seed=int(self.rng.integers(2 ** 31 - 1)))
            state, rewards, first = policy.initial_state(1), [], True
            for _ in range(self.max_episode_steps):
                x = self.predictor.normalize(np.asarray(obs)[None])
                a, _, _, state = policy.act(x, state, None, rng=self.rng)
                obs_l.append(x[0])
                act_l.append(a[0])
                start_l.append(first)
                first = False
                obs, r, term, trunc, _ = env.step(clip_actions(env.action_space, a[0]))
                rewards.append(float(r))
                if term or trunc:
                    break
            ret_l.append(np.cumsum(rewards[::-1])[::-1])  # undiscounted returns-to-go
        env.close()
        adv = np.concatenate(ret_l)
        adv = (adv - adv.mean()) / (adv.std() + 1e-8)
        T = adv.size
        obs_seq = np.asarray(obs_l)[:, None]
        act_seq = np.asarray(act_l)[:, None]
        starts = np.asarray(start_l)[:, None]
        _, _, _, cache = policy.evaluate(obs_seq, act_seq, None, starts)
        policy.zero_grad()
        policy.backward((adv / T)[:, None], None, None, cache)
        self._pg_grad[...] = -policy.flat_grads.astype(np.float64) * self.readout_mask
        self.pg_optimizer.step()
        return T

    def _strategy_state(self) -> dict:
        out = super()._strategy_state()
        out.update({"pg_optim/" + k: np.asarray(v)
                    for k, v in self.pg_optimizer.state_dict().items()})
        return out

    def _load_strategy_state(self, arrays: dict) -> None:
        super()._load_strategy_state({k: v for k, v in arrays.items()
                                      if not k.startswith("pg_optim/")})
        self.pg_optimizer.load_state_dict({k[9:]: v for k, v in arrays.items()
                                           if k.startswith("pg_optim/")})


# ---------------------------------------------------------------------------------- supervised
def fit_readout(features: np.ndarray, targets: np.ndarray, ridge: float = 1e-6) -> np.ndarray:
    """Least squares ``W = argmin |[F, 1] W - Y|^2 + ridge |W|^2``: shape ``(H + 1, K)``."""
    F = np.concatenate([features, np.ones((features.shape[0], 1))], axis=1)
    A = F.T @ F
    A[np.diag_indices_from(A)] += ridge * max(1.0, np.trace(A) / A.shape[0])
    return np.linalg.solve(A, F.T @ targets)


class EvolinoSequence:
    """Supervised Evolino: ``fit(X, Y)`` on time-major sequences ``(T, B, D)`` -> ``(T, B, K)``.

    Args:
        input_size, output_size: D and K.
        hidden_size, num_layers: the LSTM.
        population_size: members per generation (even: antithetic pairs).
        sigma, learning_rate: ES noise and Adam step size on the LSTM weights.
        washout: leading steps of every sequence left out of the least-squares fit and of the
            error (the network's state settles there).
        ridge: relative ridge term of the readout fit.
        seed: seeds the LSTM initialisation and the noise indices.
        noise_table_size: numbers in the shared noise table.
    """

    kind = "EvolinoSequence"

    def __init__(self, input_size: int, output_size: int, hidden_size: int = 20,
                 num_layers: int = 1, *, population_size: int = 32, sigma: float = 0.05,
                 learning_rate: float = 0.02, washout: int = 20, ridge: float = 1e-6,
                 seed: int | None = None, noise_table_size: int = 2 ** 22):
        self.input_size = check_int("input_size", input_size, 1)
        self.output_size = check_int("output_size", output_size, 1)
        self.population_size = check_int("population_size", population_size, 2)
        if self.population_size % 2:
            raise ValueError("population_size must be even (antithetic pairs)")
        if not (sigma > 0 and learning_rate > 0 and ridge >= 0):
            raise ValueError("sigma and learning_rate must be > 0 and ridge >= 0")
        self.sigma, self.learning_rate, self.ridge = float(sigma), float(learning_rate), \
            float(ridge)
        self.washout = check_int("washout", washout, 0)
        self.seed = seed
        self.lstm = LSTM(input_size, hidden_size, num_layers, dtype=np.float64, seed=seed)
        self.noise_table_size = check_int("noise_table_size", noise_table_size, 1)
        if self.noise_table_size > MAX_NOISE_TABLE:
            raise ValueError(f"noise_table_size must be <= {MAX_NOISE_TABLE} "
                             f"({MAX_NOISE_TABLE * 4 >> 30} GiB), got {noise_table_size}")
        if self.lstm.num_params > self.noise_table_size:
            raise ValueError(f"the noise table holds {noise_table_size} numbers, fewer than "
                             f"the {self.lstm.num_params} weights; pass noise_table_size >= "
                             f"{self.lstm.num_params}")
        self._noise = None
        self.rng = np.random.default_rng(seed)
        self.theta = self.lstm.flat_params.copy()
        self._grad = np.zeros_like(self.theta)
        self.optimizer = Adam(self.theta, self._grad, lr=self.learning_rate)
        self.readout = np.zeros((hidden_size + 1, self.output_size))
        self.generation = 0
        self.history: list[float] = []

    @property
    def noise(self) -> NoiseTable:
        """The shared noise table (built at the first ``fit``: loading to predict needs
        none)."""
        if self._noise is None:
            self._noise = NoiseTable(self.noise_table_size, 7, np.float32)
        return self._noise

    def _check(self, X, Y=None):
        X = as_float_array(X, np.float64, "X", ndim=3)
        if X.shape[2] != self.input_size:
            raise ValueError(f"X must have shape (T, B, {self.input_size}), got {X.shape}")
        if Y is None:
            return X
        Y = as_float_array(Y, np.float64, "Y", ndim=3)
        if Y.shape != X.shape[:2] + (self.output_size,):
            raise ValueError(f"Y must have shape {X.shape[:2] + (self.output_size,)}, got "
                             f"{Y.shape}")
        if X.shape[0] <= self.washout:
            raise ValueError(f"sequences must be longer than washout={self.washout}")
        return X, Y

    def _features(self, theta, X):
        self.lstm.flat_params[...] = theta
        h, _ = self.lstm(X)  # the whole sequence in one kernel call per layer
        return h[self.washout:].reshape(-1, h.shape[2])

    def _member_error(self, theta, X, Yw):
        F = self._features(theta, X)
        W = fit_readout(F, Yw, self.ridge)
        pred = F @ W[:-1] + W[-1]
        return float(np.mean((pred - Yw) ** 2)), W

    def fit(self, X, Y, generations: int = 100, callback=None):
        """Evolve for ``generations`` more generations; keeps the readout of the center."""
        X, Y = self._check(X, Y)
        generations = check_int("generations", generations, 1)
        Yw = Y[self.washout:].reshape(-1, self.output_size)
        n = self.lstm.num_params
        for _ in range(generations):
            idx = self.noise.sample_index(self.rng, n, self.population_size // 2)
            err = np.empty((idx.size, 2))
            for k, i in enumerate(idx):
                eps = self.noise.get(i, n)
                err[k, 0] = self._member_error(self.theta + self.sigma * eps, X, Yw)[0]
                err[k, 1] = self._member_error(self.theta - self.sigma * eps, X, Yw)[0]
            g = es_gradient(self.noise, idx, -err[:, 0], -err[:, 1], n)
            self._grad[...] = -g
            self.optimizer.step()
            mse, self.readout = self._member_error(self.theta, X, Yw)
            self.generation += 1
            self.history.append(mse)
            if callback is not None and callback(self, mse) is False:
                break
        self.lstm.flat_params[...] = self.theta
        return self

    def predict(self, X, state=None):
        """Outputs ``(T, B, K)`` and the final LSTM state (feed it back to continue)."""
        X = self._check(X)
        self.lstm.flat_params[...] = self.theta
        h, state = self.lstm(X, state)
        F = h.reshape(-1, h.shape[2])
        out = F @ self.readout[:-1] + self.readout[-1]
        return out.reshape(X.shape[0], X.shape[1], self.output_size), state

    def save(self, path) -> None:
        """Write the run (weights, readout, optimizer, generator) to ``path``; refuses NaN/inf
        weights, so a good file is never replaced by a diverged one."""
        if not (np.isfinite(self.theta).all() and np.isfinite(self.readout).all()):
            raise TrainingDiverged(f"refusing to save NaN/inf weights to {path}")
        arrays = {"theta": self.theta, "readout": self.readout,
                  "rng": rng_to_array(self.rng),
                  **{"opt_" + k: np.asarray(v) for k, v in self.optimizer.state_dict().items()}}
        meta = {"input_size": self.input_size, "output_size": self.output_size,
                "hidden_size": self.lstm.hidden_size, "num_layers": self.lstm.num_layers,
                "population_size": self.population_size, "sigma": self.sigma,
                "learning_rate": self.learning_rate, "washout": self.washout,
                "ridge": self.ridge, "noise_table_size": self.noise_table_size,
                "generation": self.generation}
        save_arrays(path, arrays, kind=self.kind, meta=meta)

    @classmethod
    def load(cls, path) -> "EvolinoSequence":
        """Read a file written by :meth:`save`. Sizes in the header are checked against the
        saved weights before anything is built; a bad file is a ``ValueError`` naming it."""
        arrays, h = load_arrays(path, kind=cls.kind)
        try:
            D, K, H, L = (check_int(k, h[k], 1) for k in ("input_size", "output_size",
                                                          "hidden_size", "num_layers"))
            theta, readout = arrays["theta"], arrays["readout"]
            # the LSTM's parameter count, computed before the LSTM is built
            expected = 4 * H * (D + H) + 8 * H + (L - 1) * (4 * H * 2 * H + 8 * H)
            if theta.shape != (expected,) or readout.shape != (H + 1, K):
                raise ValueError(f"the header describes {expected} LSTM weights and a "
                                 f"({H + 1}, {K}) readout, the file holds {theta.shape} and "
                                 f"{readout.shape}")
            if not (np.isfinite(theta).all() and np.isfinite(readout).all()):
                raise ValueError("the weights contain NaN or inf")
            m = cls(D, K, H, L, population_size=h["population_size"], sigma=h["sigma"],
                    learning_rate=h["learning_rate"], washout=h["washout"], ridge=h["ridge"],
                    noise_table_size=h["noise_table_size"])
            m.theta[...] = theta
            m.readout[...] = readout
            m.optimizer.load_state_dict({k[4:]: v for k, v in arrays.items()
                                         if k.startswith("opt_")})
            m.rng = rng_from_array(arrays["rng"])
            m.generation = check_int("generation", h["generation"], 0)
        except KeyError as e:
            raise ValueError(f"{path} is missing the entry {e}") from None
        except TypeError as e:
            raise ValueError(f"{path} has an invalid entry: {e}") from None
        except ValueError as e:
            raise ValueError(f"{path}: {e}") from None
        m.lstm.flat_params[...] = m.theta
        return m
