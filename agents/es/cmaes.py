"""CMA-ES through pycma (``cma``), full covariance for small policies, diagonal above a size.

Full CMA keeps a ``d x d`` covariance and an eigendecomposition: O(d^2) memory and O(d^3)
time, which LSTM policies outgrow quickly (pycma's users report running out of memory). Above
``diagonal_above`` parameters the trainer switches pycma to separable CMA (``CMA_diagonal``),
which is O(d). Candidates are full vectors (CMA samples from its own covariance), so they are
the one kind of job that carries weights; the mean still ships once per generation.

pycma draws from NumPy's global generator (seeded by its ``seed`` option); a checkpoint saves
that generator's state with the strategy so a resumed run continues the same sequence.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rlstm.validation import check_int

from .base import EvolutionConfig, EvolutionTrainer

__all__ = ["CMAES", "CMAESConfig"]


@dataclass
class CMAESConfig(EvolutionConfig):
    """CMA-ES settings."""

    population_size: int = 32
    """Candidates per generation (pycma's popsize)."""
    sigma_init: float = 0.1
    """Initial global step size."""
    diagonal_above: int = 2000
    """Use separable (diagonal) CMA when the policy has more parameters than this."""

    def validate(self) -> None:
        super().validate()
        if not self.sigma_init > 0:
            raise ValueError(f"sigma_init must be > 0, got {self.sigma_init}")
        check_int("diagonal_above", self.diagonal_above, 0)


class CMAES(EvolutionTrainer):
    """Covariance matrix adaptation (pycma). See :class:`CMAESConfig`."""

    config_class = CMAESConfig
    kind = "CMAES"

    def _init_strategy(self) -> None:
        import cma
        cfg = self.config
        self.diagonal = self.num_params > cfg.diagonal_above
        cma_seed = int(self.rng.integers(1, 2 ** 31 - 1))
        opts = {"popsize": cfg.population_size, "seed": cma_seed, "verbose": -9,
                "verb_disp": 0, "verb_log": 0, "CMA_diagonal": bool(self.diagonal),
                "tolfun": 0, "tolx": 0, "tolfunhist": 0, "tolstagnation": 10 ** 9,
                "maxiter": 10 ** 9,
                # CSA keeps all its state in arrays (TPA keeps injected samples in lists)
                "AdaptSigma": cma.sigma_adaptation.CMAAdaptSigmaCSA}
        self.es = cma.CMAEvolutionStrategy(self.policy.flat_params.astype(np.float64),
                                           cfg.sigma_init, opts)
        self._mean = np.array(self.es.mean, dtype=np.float64)

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
    # adaptation (mean, sigma, paths, covariance or its diagonal, counters), plus NumPy's
    # global generator, which pycma samples from.
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
        rng = np.random.get_state()
        out.update({"np_rng_key": rng[1].astype(np.uint32), "np_rng_pos": np.asarray(rng[2]),
                    "np_rng_gauss": np.asarray([rng[3], rng[4]], dtype=np.float64),
                    "mean": np.array(self.es.mean, dtype=np.float64)})
        return out

    def _load_strategy_state(self, a: dict) -> None:
        # one throw-away iteration creates pycma's lazily made attributes; everything numeric
        # is then overwritten, the global RNG included
        x = self.es.ask()
        self.es.tell(x, [0.0] * len(x))
        for prefix, get in self._PARTS:
            obj = get(self.es)
            for k, v in vars(obj).items():
                key = prefix + k
                if key not in a:
                    continue
                if isinstance(v, np.ndarray):
                    setattr(obj, k, np.array(a[key], dtype=v.dtype))
                elif isinstance(v, bool):
                    setattr(obj, k, bool(a[key]))
                elif isinstance(v, (int, np.integer)):
                    setattr(obj, k, int(a[key]))
                else:
                    setattr(obj, k, float(a[key]))
        np.random.set_state(("MT19937", a["np_rng_key"].astype(np.uint32),
                             int(a["np_rng_pos"]), int(a["np_rng_gauss"][0]),
                             float(a["np_rng_gauss"][1])))
        self.es.mean = np.array(a["mean"], dtype=np.float64)
        self._mean = np.array(self.es.mean, dtype=np.float64)
