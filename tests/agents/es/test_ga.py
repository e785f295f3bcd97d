"""The deep GA: seed-list genomes rebuild the weights the workers evaluate."""
import numpy as np

from agents.es import GA, Evaluator


def test_ga_seed_lists_rebuild_the_stored_weights(small):
    m = GA("CartPole-v1", seed=0, backend="serial", truncation=3, **small)
    for _ in range(3):
        m._advance(0.0)
    assert len(m.elite) >= 1
    worker = Evaluator(m._require_env().factory, m.policy, m.noise.spec(), 40)
    rebuilt = worker.genome_params(m._base, m.config.sigma, m.elite)
    np.testing.assert_array_equal(rebuilt, m.center)
    np.testing.assert_array_equal(m.genome_params(m.elite), m.center)
    manual = m._base.copy()
    for i in m.elite:  # the mutation sigma * eps is formed in the table's float32
        manual = manual + (np.float32(m.config.sigma) * m.noise.table[i:i + m.num_params])
    np.testing.assert_allclose(m.center, manual, rtol=0, atol=1e-12)
    # a genome job and the vector it stands for play the same episode identically
    payload = {"base": m._base, "sigma": m.config.sigma, "center": m.center}
    r1 = worker.evaluate(payload, [("genome", m.elite, [7, 8], False)])
    r2 = worker.evaluate(payload, [("vector", m.center, [7, 8], False)])
    assert r1[0][:2] == r2[0][:2]
