"""rlstm.ctc_loss against the NumPy reference, brute-force enumeration, central differences,
torch.nn.functional.ctc_loss, and its edge cases and errors."""
from __future__ import annotations

import numpy as np
import pytest

from rlstm import ctc_loss
from rlstm.reference import ctc as ref
from rlstm.reference.gradcheck import central_difference

CTC_TOL = {np.dtype(np.float32): dict(rtol=1e-4, atol=1e-4),
           np.dtype(np.float64): dict(rtol=1e-10, atol=1e-11)}


def _problem(rng, T, B, C, S, dtype, scale=2.0):
    logits = (scale * rng.standard_normal((T, B, C))).astype(dtype)
    tl = rng.integers(0, S + 1, B)
    tg = rng.integers(1, C, (B, S))
    il = rng.integers(max(1, T // 2), T + 1, B)
    return logits, tg, il, tl


def test_reference_equals_brute_force(rng):
    for T, C, target in [(4, 3, [1, 2]), (5, 3, [1, 1]), (3, 2, []), (4, 3, [2]),
                         (5, 4, [3, 1, 3]), (2, 3, [1, 1])]:  # the last is impossible
        logits = rng.standard_normal((T, C)) * 1.5
        want = ref.brute_force_loss(logits, target)
        got, _ = ref.loss_and_grad(logits, target)
        if np.isinf(want):
            assert np.isinf(got)
        else:
            np.testing.assert_allclose(got, want, rtol=1e-12)


@pytest.mark.parametrize("padded", [True, False])
@pytest.mark.parametrize("blank", [0, 4])
def test_matches_reference(padded, blank, dtype, rng):
    T, B, C, S = 12, 5, 6, 4
    logits, tg, il, tl = _problem(rng, T, B, C, S, dtype)
    tg[tg == blank] = (blank + 1) % C
    tg[0, :3] = [1, 1, 1] if blank != 1 else [2, 2, 2]   # repeats need blanks between them
    tl[0], tl[1], il[1] = 3, 0, T                          # a zero-length target
    targets = tg if padded else np.concatenate([tg[b, :tl[b]] for b in range(B)])
    losses, dlogits = ctc_loss(logits, targets, il, tl, blank=blank)
    assert losses.dtype == dtype and dlogits.dtype == dtype and dlogits.shape == (T, B, C)
    for b in range(B):
        want, grad = ref.loss_and_grad(logits[:il[b], b].astype(np.float64), tg[b, :tl[b]],
                                       blank)
        np.testing.assert_allclose(losses[b], want, **CTC_TOL[dtype])
        np.testing.assert_allclose(dlogits[:il[b], b], grad, **CTC_TOL[dtype])
        assert (dlogits[il[b]:, b] == 0).all()
    assert np.abs(dlogits).max() > 0.1


def test_gradient_by_central_differences(rng):
    logits, tg, il, tl = _problem(rng, 7, 3, 4, 3, np.float64)
    tl[:] = [3, 1, 0]
    w = rng.random(3) + 0.5

    def loss():
        return float((w * ctc_loss(logits, tg, il, tl)[0]).sum())

    _, dlogits = ctc_loss(logits, tg, il, tl)
    numeric = central_difference(loss, logits)
    np.testing.assert_allclose(dlogits * w[None, :, None], numeric, rtol=1e-6, atol=1e-8)


def test_impossible_alignment_is_inf_or_zero_never_nan(dtype):
    logits = np.zeros((3, 2, 4), dtype=dtype)
    tg = np.array([[1, 1, 2], [1, 2, 3]])
    tl = np.array([3, 3])              # row 0 needs 4 steps (a blank between the two 1s)
    il = np.array([3, 2])              # row 1 has only 2 steps for 3 labels
    losses, d = ctc_loss(logits, tg, il, tl)
    assert np.isinf(losses).all() and (losses > 0).all()
    assert not np.isnan(d).any() and (d == 0).all()
    losses, d = ctc_loss(logits, tg, il, tl, zero_infinity=True)
    assert (losses == 0).all() and (d == 0).all()


def test_extreme_logits_stay_finite(dtype):
    logits = np.zeros((6, 1, 3), dtype=dtype)
    logits[:, 0, 0] = 80.0             # the blank is almost certain: the target is very unlikely
    losses, d = ctc_loss(logits, np.array([[1, 2]]), [6], [2])
    assert np.isfinite(losses).all() and losses[0] > 100 and np.isfinite(d).all()


def test_reductions(dtype, rng):
    logits, tg, il, tl = _problem(rng, 8, 4, 5, 3, dtype)
    losses, d = ctc_loss(logits, tg, il, tl)
    s, ds = ctc_loss(logits, tg, il, tl, reduction="sum")
    m, dm = ctc_loss(logits, tg, il, tl, reduction="mean")
    np.testing.assert_allclose(s, losses.sum(), rtol=1e-6)
    np.testing.assert_array_equal(ds, d)
    scale = 1.0 / (np.maximum(tl, 1) * 4)
    np.testing.assert_allclose(m, (losses * scale).sum(), rtol=1e-6)
    np.testing.assert_allclose(dm, d * scale[None, :, None], rtol=1e-6)


def test_zero_length_targets_at_either_end_of_concatenated_targets():
    losses, _ = ctc_loss(np.zeros((4, 2, 3)), np.array([1, 2]), [4, 4], [2, 0])
    losses2, _ = ctc_loss(np.zeros((4, 2, 3)), np.array([1, 2]), [4, 4], [0, 2])
    np.testing.assert_allclose(losses, losses2[::-1])
    np.testing.assert_allclose(losses[1], 4 * np.log(3))  # only the all-blank path


def test_empty_input_lengths_and_batch():
    losses, d = ctc_loss(np.zeros((3, 2, 3)), np.array([[1], [1]]), [0, 0], [0, 1])
    assert losses[0] == 0 and np.isinf(losses[1]) and (d == 0).all()
    losses, d = ctc_loss(np.zeros((3, 0, 3)), np.zeros((0, 2), int), np.zeros(0, int),
                         np.zeros(0, int))
    assert losses.shape == (0,) and d.shape == (3, 0, 3)


@pytest.mark.parametrize("kwargs,exc,match", [
    (dict(logits=np.zeros((3, 2))), ValueError, "3 dimensions"),
    (dict(logits=np.full((3, 2, 4), np.nan)), ValueError, "NaN"),
    (dict(targets=np.array([[1.0, 2.0], [1.0, 2.0]])), TypeError, "integer"),
    (dict(targets=np.array([[1, 0], [1, 2]])), ValueError, "blank"),
    (dict(targets=np.array([[1, 4], [1, 2]])), ValueError, r"\[0, C=4\)"),
    (dict(targets=np.array([1, 2, 3])), ValueError, "sum\\(target_lengths\\)"),
    (dict(targets=np.zeros((3, 2), int) + 1), ValueError, "B=2"),
    (dict(input_lengths=[3, 4]), ValueError, "input_lengths"),
    (dict(input_lengths=[3]), ValueError, "shape"),
    (dict(input_lengths=[3.0, 3.0]), TypeError, "integers"),
    (dict(target_lengths=[2, 3]), ValueError, "<= S=2"),
    (dict(target_lengths=[-1, 2]), ValueError, ">= 0"),
    (dict(blank=4), ValueError, "blank"),
    (dict(blank=1.0), TypeError, "blank"),
    (dict(reduction="avg"), ValueError, "reduction"),
    (dict(zero_infinity="yes"), TypeError, "zero_infinity"),
])
def test_bad_input_gets_clear_errors(kwargs, exc, match):
    args = dict(logits=np.zeros((3, 2, 4)), targets=np.array([[1, 2], [3, 1]]),
                input_lengths=[3, 3], target_lengths=[2, 2])
    args.update(kwargs)
    with pytest.raises(exc, match=match):
        ctc_loss(**args)


# --------------------------------------------------------------------------- property test
from hypothesis import given, strategies as st  # noqa: E402


@given(st.data())
def test_random_problems_match_the_reference(data):
    """Random shapes, lengths (impossible ones included), blanks and repeats."""
    T = data.draw(st.integers(0, 7))
    B = data.draw(st.integers(1, 3))
    C = data.draw(st.integers(1, 4))
    blank = data.draw(st.integers(0, C - 1))
    labels = [c for c in range(C) if c != blank]
    S = data.draw(st.integers(0, 4 if labels else 0))
    rng = np.random.default_rng(data.draw(st.integers(0, 2 ** 32 - 1)))
    logits = 3 * rng.standard_normal((T, B, C))
    tg = rng.choice(labels, (B, S)) if labels and S else np.zeros((B, S), int)
    tl = rng.integers(0, S + 1, B)
    il = rng.integers(0, T + 1, B)
    padded = data.draw(st.booleans())
    targets = tg if padded else np.concatenate([tg[b, :tl[b]] for b in range(B)]).astype(int)
    losses, d = ctc_loss(logits, targets, il, tl, blank=blank)
    assert not np.isnan(losses).any() and not np.isnan(d).any()
    for b in range(B):
        want, grad = ref.loss_and_grad(logits[:il[b], b], tg[b, :tl[b]], blank)
        if np.isinf(want):
            assert np.isinf(losses[b]) and (d[:, b] == 0).all()
        else:
            np.testing.assert_allclose(losses[b], want, rtol=1e-10, atol=1e-12)
            np.testing.assert_allclose(d[:il[b], b], grad, rtol=1e-9, atol=1e-12)


def test_threads_share_the_batch_with_identical_results(rng):
    logits, tg, il, tl = _problem(rng, 60, 13, 6, 8, np.float32)
    one = ctc_loss(logits, tg, il, tl, num_threads=1)
    many = ctc_loss(logits, tg, il, tl, num_threads=4)
    import rlstm.ctc as ctc_module
    old = ctc_module._WORK_PER_THREAD
    ctc_module._WORK_PER_THREAD = 1          # force the threaded path for this small problem
    try:
        forced = ctc_loss(logits, tg, il, tl, num_threads=4)
    finally:
        ctc_module._WORK_PER_THREAD = old
    for got in (many, forced):
        np.testing.assert_array_equal(got[0], one[0])
        np.testing.assert_array_equal(got[1], one[1])
    with pytest.raises(ValueError, match="num_threads"):
        ctc_loss(logits, tg, il, tl, num_threads=0)


def test_threaded_path_works_in_a_forked_child(rng):
    import multiprocessing as mp
    if "fork" not in mp.get_all_start_methods():
        pytest.skip("no fork on this platform")
    logits, tg, il, tl = _problem(rng, 200, 32, 6, 10, np.float32)
    il[:], tl[:] = 200, 10        # 200 * 32 * 21 alpha-beta cells: two threads share the batch
    want = ctc_loss(logits, tg, il, tl, num_threads=2)[0]  # the parent's pool exists now
    with mp.get_context("fork").Pool(1) as pool:
        got = pool.apply_async(ctc_loss, (logits, tg, il, tl), {"num_threads": 2}).get(60)[0]
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("value", [0.0, 1e3, 1e6, 1e8, -1e8, 3e37])
def test_ctc_is_exact_for_equal_logits_of_any_size(dtype, value):
    """Equal logits mean a uniform softmax whatever their size; the log-softmax subtracts the
    row maximum before the log-sum, so 1e8 in float32 does not round the log-probabilities to
    0 (which gave a negative loss, -11.52)."""
    T, C = 10, 5
    logits = np.full((T, 1, C), value, dtype)
    loss, grad = ctc_loss(logits, np.array([[1, 2]]), np.array([T]), np.array([2]))
    want, gwant = ctc_loss(np.zeros((T, 1, C)), np.array([[1, 2]]), np.array([T]),
                                 np.array([2]))
    np.testing.assert_allclose(loss, want, rtol=1e-6)
    np.testing.assert_allclose(grad, gwant, atol=1e-6)


@pytest.mark.parametrize("dtype,shift,tol", [(np.float32, 1e3, 2e-3), (np.float64, 1e8, 1e-6),
                                             (np.float64, -1e8, 1e-6)])
def test_ctc_is_shift_invariant(dtype, shift, tol):
    """A constant added to every logit changes neither the loss nor its gradient (up to the
    rounding of the shifted logits themselves)."""
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((12, 3, 5))
    args = (np.array([[1, 2, 3], [2, 2, 0], [4, 1, 1]]), np.array([12, 10, 12]),
            np.array([3, 2, 3]))
    want, gwant = ctc_loss(logits, *args)
    got, g = ctc_loss((logits + shift).astype(dtype), *args)
    np.testing.assert_allclose(got, want, rtol=tol)
    np.testing.assert_allclose(g, gwant, atol=tol)
