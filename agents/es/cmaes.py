"""CMA-ES through pycma (``cma``), full covariance for small policies, diagonal above a size.

Full CMA keeps a ``d x d`` covariance and an eigendecomposition: O(d^2) memory and O(d^3)
time, which LSTM policies outgrow quickly (pycma's users report running out of memory). Above
``diagonal_above`` parameters the trainer switches pycma to separable CMA (``CMA_diagonal``),
which is O(d). Candidates are full vectors (CMA samples from its own covariance), so they are
the one kind of job that carries weights; the mean still ships once per generation.

pycma samples through its ``randn`` option, which the trainer points at a generator of its own
(seeded from the trainer's): two trainers in one process never share random numbers, NumPy's
global generator is never touched, and a checkpoint saves that generator so a resumed run
continues the same sequence.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import numpy as np

from ..checkpoint import rng_from_array, rng_to_array
from ..config import Range
from .base import EvolutionConfig, EvolutionTrainer

__all__ = ["CMAES", "CMAESConfig"]


@dataclass
class CMAESConfig(EvolutionConfig):
    """CMA-ES settings."""

    population_size: Annotated[int, Range(2)] = 32
    """Candidates per generation (pycma's popsize)."""
    sigma_init: Annotated[float, Range(0, low_open=True)] = 0.1
    """Initial global step size."""
    diagonal_above: Annotated[int, Range(0)] = 2000
    """Use separable (diagonal) CMA when the policy has more parameters than this."""


class CMAES(EvolutionTrainer):
    """Covariance matrix adaptation (pycma). See :class:`CMAESConfig`."""

    config_class = CMAESConfig

    def _init_strategy(self) -> None:
        import cma
        cfg = self.config
        self.diagonal = self.num_params > cfg.diagonal_above
        self._cma_rng = np.random.default_rng(int(self.rng.integers(1, 2 ** 31 - 1)))
        opts = {"popsize": cfg.population_size, "randn": self._randn, "verbose": -9,
                "verb_disp": 0, "verb_log": 0, "CMA_diagonal": bool(self.diagonal),
                "tolfun": 0, "tolx": 0, "tolfunhist": 0, "tolstagnation": 10 ** 9,
                "maxiter": 10 ** 9,
                # CSA keeps all its state in arrays (TPA keeps injected samples in lists)
                "AdaptSigma": cma.sigma_adaptation.CMAAdaptSigmaCSA}
        self.es = cma.CMAEvolutionStrategy(self.policy.flat_params.astype(np.float64),
                                           cfg.sigma_init, opts)
        self._mean = np.array(self.es.mean, dtype=np.float64)

    def _randn(self, *shape) -> np.ndarray:
        return self._cma_rng.standard_normal(shape)

    @property
    def center(self) -> np.ndarray:
        return self._mean

    def _ask(self):
        cands = self.es.ask()
        members = [("vector", np.asarray(x, dtype=np.float64)) for x in cands]
        return ({"center": self._mean.copy()}, members, np.arange(len(cands)), cands)

    def _tell(self, cands, fitness: np.ndarray) -> None:
        self.es.tell(cands, (-fitness).tolist())  # pycma minimises
        self._mean = np.array(self.es.mean, dtype=np.float64)

    # pycma's state: every numeric attribute of the strategy, its sampler and its step-size
    # adaptation (mean, sigma, paths, covariance or its diagonal, counters), plus the
    # generator it samples from.
    _PARTS = (("es_", lambda es: es), ("sm_", lambda es: es.sm),
              ("as_", lambda es: es.adapt_sigma), ("sv_", lambda es: es.sigma_vec),
              ("fit_", lambda es: es.fit))

    def _strategy_state(self) -> dict:
        out = {}
        for prefix, get in self._PARTS:
            for k, v in vars(get(self.es)).items():
                if isinstance(v, np.ndarray) and v.dtype.kind in "biuf":
                    out[prefix + k] = v.copy()
                elif isinstance(v, (bool, int, float, np.number)) and not isinstance(v, str):
                    out[prefix + k] = np.asarray(v)
        out.update({"cma_rng": rng_to_array(self._cma_rng),
                    "mean": np.array(self.es.mean, dtype=np.float64)})
        return out

    def _load_strategy_state(self, a: dict) -> None:
        # one throw-away iteration creates pycma's lazily made attributes; everything numeric
        # is then overwritten (and attributes pycma makes only in later iterations are set),
        # the generator included
        x = self.es.ask()
        self.es.tell(x, [0.0] * len(x))
        for prefix, get in self._PARTS:
            obj = get(self.es)
            current = vars(obj)
            for key, saved in a.items():
                if not key.startswith(prefix):
                    continue
                k = key[len(prefix):]
                v = current.get(k)
                if k not in current:  # made by pycma in a later iteration
                    setattr(obj, k, saved.item() if saved.ndim == 0 else np.array(saved))
                elif isinstance(v, np.ndarray):
                    setattr(obj, k, np.array(saved, dtype=v.dtype))
                elif isinstance(v, (bool, np.bool_)):
                    setattr(obj, k, bool(saved))
                elif isinstance(v, (int, np.integer)):
                    setattr(obj, k, int(saved))
                else:
                    setattr(obj, k, float(saved))
        self._cma_rng = rng_from_array(a["cma_rng"])
        self.es.mean = np.array(a["mean"], dtype=np.float64)
        self._mean = np.array(self.es.mean, dtype=np.float64)
