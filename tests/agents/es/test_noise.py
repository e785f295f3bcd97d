"""The shared noise table: index arithmetic, batches, weighted sums, the same table in every
process."""
import numpy as np
import pytest

from agents.es import NoiseTable


def test_noise_table_index_arithmetic():
    t = NoiseTable(size=10, seed=5)
    np.testing.assert_array_equal(t.get(3, 4), t.table[3:7])
    np.testing.assert_array_equal(t.batch([0, 6], 4), np.stack([t.table[0:4], t.table[6:10]]))
    idx = t.sample_index(np.random.default_rng(0), 7, 2000)
    assert idx.min() == 0 and idx.max() == 3  # the last slice ends exactly at the table's end
    assert set(np.unique(idx)) == {0, 1, 2, 3}
    with pytest.raises(ValueError, match="out of range"):
        t.get(4, 7)
    with pytest.raises(ValueError, match="noise indices"):
        t.batch([-1], 2)
    with pytest.raises(ValueError, match="noise_table_size"):
        t.check_dim(11)
    np.testing.assert_allclose(t.weighted_sum([1, 2], [2.0, -1.0], 3),
                               2 * t.table[1:4].astype(float) - t.table[2:5])
    # the same (size, seed) gives the same table in every process
    np.testing.assert_array_equal(NoiseTable(size=10, seed=5).table,
                                  np.random.default_rng(5).standard_normal(10, np.float32))
