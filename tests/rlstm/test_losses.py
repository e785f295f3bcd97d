"""rlstm.losses: MSE and cross-entropy values by hand, gradients by central differences,
ignore_index, dtypes (test_train.py covers the default ignore_index=-1 case)."""
import numpy as np
import pytest

from rlstm.losses import cross_entropy_loss, mse_loss
from rlstm.reference.gradcheck import central_difference


def test_mse_by_hand():
    loss, grad = mse_loss(np.array([[1.0, 2.0], [3.0, -1.0]]), np.array([[0.0, 4.0],
                                                                       [3.0, 1.0]]))
    assert loss == 2.25  # (1 + 4 + 0 + 4) / 4
    np.testing.assert_array_equal(grad, [[0.5, -1.0], [0.0, -1.0]])  # 2 (pred - target) / 4


def test_mse_keeps_float32_and_matches_float64():
    rng = np.random.default_rng(0)
    pred, target = rng.standard_normal((2, 5, 3, 2))
    loss64, grad64 = mse_loss(pred, target)
    loss32, grad32 = mse_loss(pred.astype(np.float32), target.astype(np.float32))
    assert grad32.dtype == np.float32 and grad32.shape == pred.shape
    assert loss32 == pytest.approx(loss64, rel=1e-6)
    np.testing.assert_allclose(grad32, grad64, rtol=1e-5, atol=1e-7)


def test_mse_of_nothing_is_zero():
    loss, grad = mse_loss(np.zeros((0, 3)), np.zeros((0, 3)))
    assert loss == 0.0 and grad.shape == (0, 3)


def test_cross_entropy_by_hand():
    # p = (1/4, 3/4): loss -log p[label], gradient p - onehot, averaged over the 2 rows
    logits = np.array([[0.0, np.log(3.0)], [np.log(3.0), 0.0]])
    loss, grad = cross_entropy_loss(logits, np.array([1, 1]))
    assert loss == pytest.approx((-np.log(0.75) - np.log(0.25)) / 2, rel=1e-14)
    np.testing.assert_allclose(grad, [[0.125, -0.125], [0.375, -0.375]], rtol=1e-14)


@pytest.mark.parametrize("ignore_index", [-100, 2])
def test_cross_entropy_ignore_index_drops_exactly_those_rows(ignore_index):
    rng = np.random.default_rng(1)
    logits = rng.standard_normal((4, 3, 5)) * 2
    labels = rng.integers(0, 5, (4, 3))
    labels[labels == 2] = 3  # class 2 appears only where it is ignored below
    labels[0, 0] = labels[2, 1] = labels[3, 2] = ignore_index
    loss, grad = cross_entropy_loss(logits, labels, ignore_index=ignore_index)
    keep = labels != ignore_index
    loss_kept, grad_kept = cross_entropy_loss(logits[keep], labels[keep], ignore_index=-1)
    assert loss == pytest.approx(loss_kept, rel=1e-14)
    np.testing.assert_allclose(grad[keep], grad_kept, rtol=1e-14)
    assert not grad[~keep].any()
    np.testing.assert_allclose(
        grad, central_difference(lambda: cross_entropy_loss(logits, labels, ignore_index)[0],
                                 logits), rtol=1e-6, atol=1e-9)


def test_cross_entropy_with_every_row_ignored_is_zero_not_nan():
    loss, grad = cross_entropy_loss(np.ones((3, 4)), np.full(3, -1))
    assert loss == 0.0 and grad.shape == (3, 4) and not grad.any()


def test_cross_entropy_float32_is_stable_for_large_logits():
    logits = np.array([[1e4, 0.0, -1e4], [50.0, 50.0, 0.0]], np.float32)
    loss, grad = cross_entropy_loss(logits, np.array([1, 0]))
    assert grad.dtype == np.float32 and np.isfinite(grad).all()
    assert loss == pytest.approx((1e4 + np.log(2.0)) / 2, rel=1e-6)
    np.testing.assert_allclose(grad, [[0.5, -0.5, 0.0], [-0.25, 0.25, 0.0]], atol=1e-6)


def test_cross_entropy_gradient_of_a_1d_batch_is_its_shape():
    rng = np.random.default_rng(2)
    logits = rng.standard_normal((6, 4))
    labels = rng.integers(0, 4, 6)
    _, grad = cross_entropy_loss(logits, labels)
    assert grad.shape == (6, 4)
    np.testing.assert_allclose(grad, central_difference(
        lambda: cross_entropy_loss(logits, labels)[0], logits), rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(grad.sum(axis=1), 0.0, atol=1e-15)  # softmax - onehot rows


def test_mse_refuses_pred_and_target_of_different_shapes():
    with pytest.raises(ValueError, match="shape"):
        mse_loss(np.zeros((3, 1)), np.ones(3))


@pytest.mark.parametrize("bad_label", [-2, 3])
def test_cross_entropy_refuses_labels_outside_the_classes(bad_label):
    with pytest.raises(ValueError, match="label"):
        cross_entropy_loss(np.zeros((2, 3)), np.array([bad_label, 0]))
