"""Reused per-thread buffers for inference and backward (``rlstm.lstm.work_array``): results
never depend on what ran before, returned arrays never alias a buffer, threads do not share."""
from __future__ import annotations

import threading

import numpy as np
import pytest

from rlstm import GRU, LSTM
from rlstm.lstm import _SCRATCH, _SCRATCH_MAX_BYTES, _SCRATCH_MIN_BYTES, work_array


@pytest.fixture
def fresh_pool():
    """This thread's buffers as a new process has them (other tests grow the slots)."""
    saved = _SCRATCH.__dict__.pop("bufs", None)
    yield
    _SCRATCH.__dict__.pop("bufs", None)
    if saved is not None:
        _SCRATCH.bufs = saved


def test_work_array_reuses_a_slot_and_keeps_nothing_it_is_asked_to_keep(fresh_pool):
    a = work_array((512, 1024), np.float32, 0)
    b = work_array((256, 1024), np.float64, 0)
    assert np.shares_memory(a, b)                   # the same slot, the same memory
    assert b.shape == (256, 1024) and b.dtype == np.float64 and b.flags.c_contiguous
    c = work_array((512, 1024), np.float32, 1)
    assert not np.shares_memory(a, c)               # another slot
    kept = work_array((512, 1024), np.float32, 0, keep=True)
    assert not np.shares_memory(a, kept)
    big = work_array((_SCRATCH_MAX_BYTES // 4 + 1,), np.float32, 0)
    assert not np.shares_memory(a, big)             # past the cap: a new array
    small = work_array((_SCRATCH_MIN_BYTES // 8,), np.float32, 0)
    assert not np.shares_memory(a, small)           # small: a new array
    grown = work_array((1024, 1024), np.float32, 0)  # a larger request grows the slot
    assert grown.shape == (1024, 1024) and not np.shares_memory(a, grown)
    assert np.shares_memory(grown, work_array((512, 1024), np.float32, 0))


@pytest.mark.parametrize("kind", [LSTM, GRU])
def test_inference_outputs_own_their_memory_and_repeat_exactly(kind, rng):
    m = kind(5, 256, num_layers=2, bidirectional=True, seed=0)   # buffers of 1 MB and more
    x1 = rng.standard_normal((64, 32, 5))
    x2 = rng.standard_normal((80, 32, 5))
    y1, _ = m(x1)
    ref = y1.copy()
    y2, _ = m(x2)                                  # the same buffers, other shapes
    _, _, cache = m.forward(x2)
    m.backward(np.ones((80, 32, 512)), cache)         # backward's buffers too
    assert {0, 1, 2, 3} <= set(_SCRATCH.bufs)      # the sweeps and the gate gradients
    for arr in (y1, y2):
        for buf in _SCRATCH.bufs.values():
            assert not np.shares_memory(arr, buf)
    y1b, _ = m(x1)
    np.testing.assert_array_equal(y1b, ref)
    np.testing.assert_array_equal(y1, ref)      # the first result was not overwritten


def test_threads_running_inference_at_once_get_their_own_results(rng):
    m = LSTM(16, 256, num_layers=2, seed=0)
    xs = [rng.standard_normal((40, 32, 16)) for _ in range(4)]
    expected = [m(x)[0] for x in xs]
    got = [None] * len(xs)
    errors = []

    def run(i):
        try:
            for _ in range(10):
                y, _ = m(xs[i])
                if not np.array_equal(y, expected[i]):
                    raise AssertionError(f"thread {i} got another thread's numbers")
            got[i] = y
        except Exception as e:   # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(xs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    for g, e in zip(got, expected):
        np.testing.assert_array_equal(g, e)
