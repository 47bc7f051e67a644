"""Tests for reference/layers.py and the fully connected sandwiches in reference/layer_utils.py.

Gradient checks run in float64 against centred differences (tests/numerical.py).
With h = 1e-5 the truncation and round-off errors are ~1e-10 relative, so the
thresholds below (1e-7 unless stated) sit well under the notebook's 1e-5 while
leaving room for the odd small-magnitude entry. Inputs are drawn from fixed
seeds so that no sample lands within h of a ReLU / hinge kink.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numerical import close_to_numerical, numerical_gradient, numerical_gradient_array, rel_error

from reference.layer_utils import (
    affine_batchnorm_relu_backward,
    affine_batchnorm_relu_forward,
    affine_relu_backward,
    affine_relu_forward,
)
from reference.layers import (
    affine_backward,
    affine_forward,
    batchnorm_backward,
    batchnorm_backward_alt,
    batchnorm_forward,
    dropout_backward,
    dropout_forward,
    layernorm_backward,
    layernorm_forward,
    relu_backward,
    relu_forward,
    softmax_loss,
    svm_loss,
)

GRAD_TOL = 1e-7
# Batchnorm's dx has entries near zero (the rows are coupled through the batch mean).
# In float64 the difference quotient's round-off (~1e-11 absolute) alone gave those an
# elementwise relative error of a few 1e-7; taken in extended precision (tests/numerical.py)
# it is ~1e-13, so batchnorm is held to the same bound as every other layer.
BATCHNORM_GRAD_TOL = GRAD_TOL


def rng_for(*key: int) -> np.random.Generator:
    return np.random.default_rng(list(key))


# ---------------------------------------------------------------------------
# Package hygiene
# ---------------------------------------------------------------------------


# ---------------------------------------------------------------------------
# Affine
# ---------------------------------------------------------------------------


def test_affine_forward_matches_hand_computation():
    x = np.arange(12, dtype=np.float64).reshape(2, 2, 3)  # flattened per example to 6 values
    w = np.ones((6, 2))
    w[:, 1] = np.arange(6)
    b = np.array([0.5, -1.0])
    out, _ = affine_forward(x, w, b)
    expected = np.array(
        [[0 + 1 + 2 + 3 + 4 + 5 + 0.5, 0 * 0 + 1 * 1 + 2 * 2 + 3 * 3 + 4 * 4 + 5 * 5 - 1.0],
         [6 + 7 + 8 + 9 + 10 + 11 + 0.5, 6 * 0 + 7 * 1 + 8 * 2 + 9 * 3 + 10 * 4 + 11 * 5 - 1.0]]
    )  # fmt: skip
    np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize("x_shape", [(1, 5), (4, 6), (3, 2, 3, 2)])
def test_affine_backward_matches_numerical(x_shape):
    rng = rng_for(1, *x_shape)
    x = rng.standard_normal(x_shape)
    w = rng.standard_normal((int(np.prod(x_shape[1:])), 5))
    b = rng.standard_normal(5)
    out, cache = affine_forward(x, w, b)
    dout = rng.standard_normal(out.shape)

    dx, dw, db = affine_backward(dout, cache)

    assert dx.shape == x.shape and dw.shape == w.shape and db.shape == b.shape
    assert rel_error(dx, numerical_gradient_array(lambda v: affine_forward(v, w, b)[0], x, dout)) < GRAD_TOL
    assert rel_error(dw, numerical_gradient_array(lambda v: affine_forward(x, v, b)[0], w, dout)) < GRAD_TOL
    assert rel_error(db, numerical_gradient_array(lambda v: affine_forward(x, w, v)[0], b, dout)) < GRAD_TOL


# ---------------------------------------------------------------------------
# ReLU
# ---------------------------------------------------------------------------


def test_relu_forward_and_zero_gradient_at_and_below_zero():
    x = np.array([[-2.0, -0.0, 0.0, 1e-12, 3.0]])
    out, cache = relu_forward(x)
    np.testing.assert_array_equal(out, [[0, 0, 0, 1e-12, 3.0]])
    dx = relu_backward(np.full_like(x, 7.0), cache)
    np.testing.assert_array_equal(dx, [[0, 0, 0, 7.0, 7.0]])


def test_relu_backward_matches_numerical():
    rng = rng_for(2)
    x = rng.standard_normal((4, 3, 5))
    x[np.abs(x) < 1e-3] = 0.5  # stay clear of the kink
    dout = rng.standard_normal(x.shape)
    dx = relu_backward(dout, relu_forward(x)[1])
    assert rel_error(dx, numerical_gradient_array(lambda v: relu_forward(v)[0], x, dout)) < GRAD_TOL


# ---------------------------------------------------------------------------
# Batch normalisation
# ---------------------------------------------------------------------------


def test_batchnorm_train_forward_normalises_each_feature():
    rng = rng_for(3)
    x = 5 * rng.standard_normal((200, 3)) + 12
    gamma, beta = np.array([1.0, 2.0, 3.0]), np.array([0.0, -1.0, 4.0])
    out, _ = batchnorm_forward(x, gamma, beta, {"mode": "train"})
    np.testing.assert_allclose(out.mean(axis=0), beta, atol=1e-12)
    # Biased variance + eps: std is slightly below gamma.
    expected_std = gamma * np.sqrt(x.var(axis=0) / (x.var(axis=0) + 1e-5))
    np.testing.assert_allclose(out.std(axis=0), expected_std, rtol=1e-12)


def test_batchnorm_running_statistics_follow_the_specified_update():
    rng = rng_for(4)
    gamma, beta = np.ones(4, dtype=np.float32), np.zeros(4, dtype=np.float32)
    bn_param = {"mode": "train", "momentum": 0.8}
    batches = [rng.standard_normal((10, 4)).astype(np.float32) * 3 + 1 for _ in range(3)]

    expected_mean = np.zeros(4, dtype=np.float32)
    expected_var = np.zeros(4, dtype=np.float32)
    for x in batches:
        batchnorm_forward(x, gamma, beta, bn_param)
        expected_mean = 0.8 * expected_mean + 0.2 * x.mean(axis=0)
        expected_var = 0.8 * expected_var + 0.2 * x.var(axis=0)  # biased variance
        assert bn_param["running_mean"].dtype == np.float32
        assert bn_param["running_var"].dtype == np.float32
        np.testing.assert_allclose(bn_param["running_mean"], expected_mean, rtol=1e-5)
        np.testing.assert_allclose(bn_param["running_var"], expected_var, rtol=1e-5)


def test_batchnorm_running_statistics_start_at_zero_with_default_momentum():
    x = rng_for(5).standard_normal((6, 3))
    bn_param = {"mode": "train"}
    batchnorm_forward(x, np.ones(3), np.zeros(3), bn_param)
    np.testing.assert_allclose(bn_param["running_mean"], 0.1 * x.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(bn_param["running_var"], 0.1 * x.var(axis=0), rtol=1e-12)


def test_batchnorm_test_mode_uses_running_statistics_and_leaves_them_alone():
    rng = rng_for(6)
    x = rng.standard_normal((5, 3))
    gamma, beta = rng.standard_normal(3), rng.standard_normal(3)
    running_mean, running_var = rng.standard_normal(3), rng.random(3) + 0.5
    bn_param = {"mode": "test", "eps": 1e-3, "running_mean": running_mean.copy(), "running_var": running_var.copy()}

    out, _ = batchnorm_forward(x, gamma, beta, bn_param)

    expected = gamma * (x - running_mean) / np.sqrt(running_var + 1e-3) + beta
    np.testing.assert_allclose(out, expected, rtol=1e-12)
    np.testing.assert_array_equal(bn_param["running_mean"], running_mean)
    np.testing.assert_array_equal(bn_param["running_var"], running_var)


def test_batchnorm_rejects_unknown_mode():
    with pytest.raises(ValueError):
        batchnorm_forward(np.ones((2, 2)), np.ones(2), np.zeros(2), {"mode": "eval"})


def _batchnorm_case(mode: str, shape: tuple[int, int], seed: int, scale: float = 4.0):
    rng = rng_for(7, seed)
    x = scale * rng.standard_normal(shape) + 10
    gamma, beta = rng.standard_normal(shape[1]), rng.standard_normal(shape[1])
    bn_param = {"mode": mode}
    if mode == "test":
        bn_param.update(running_mean=rng.standard_normal(shape[1]), running_var=rng.random(shape[1]) + 0.5)
    return x, gamma, beta, bn_param, rng.standard_normal(shape)


@pytest.mark.parametrize("backward", [batchnorm_backward, batchnorm_backward_alt])
@pytest.mark.parametrize(
    "mode,shape,scale",
    [
        ("train", (4, 5), 4.0),
        ("train", (7, 3), 4.0),
        # With two examples x_hat is +-1 whatever x is unless eps matters, so the
        # spread is kept near sqrt(eps) to make dx non-negligible.
        # (its curvature is then large, hence the smaller step h below).
        ("train", (2, 3), 1e-2),
        ("test", (4, 5), 4.0),
    ],
)
def test_batchnorm_backward_matches_numerical(backward, mode, shape, scale):
    x, gamma, beta, bn_param, dout = _batchnorm_case(mode, shape, seed=shape[0], scale=scale)
    h = 1e-5 * min(1.0, scale)

    def forward(x_, gamma_, beta_):
        return batchnorm_forward(x_, gamma_, beta_, bn_param)[0]

    _, cache = batchnorm_forward(x, gamma, beta, bn_param)
    dx, dgamma, dbeta = backward(dout, cache)

    dx_num = numerical_gradient_array(lambda v: forward(v, gamma, beta), x, dout, h)
    dgamma_num = numerical_gradient_array(lambda v: forward(x, v, beta), gamma, dout, h)
    dbeta_num = numerical_gradient_array(lambda v: forward(x, gamma, v), beta, dout, h)
    assert rel_error(dx, dx_num) < BATCHNORM_GRAD_TOL
    assert rel_error(dgamma, dgamma_num) < GRAD_TOL
    assert rel_error(dbeta, dbeta_num) < GRAD_TOL


@pytest.mark.parametrize("mode", ["train", "test"])
def test_batchnorm_backward_alt_equals_batchnorm_backward(mode):
    x, gamma, beta, bn_param, dout = _batchnorm_case(mode, (50, 8), seed=1)
    _, cache = batchnorm_forward(x, gamma, beta, bn_param)
    for staged, closed_form in zip(batchnorm_backward(dout, cache), batchnorm_backward_alt(dout, cache)):
        assert rel_error(staged, closed_form) < 1e-10


def test_batchnorm_keeps_float32():
    x = rng_for(8).standard_normal((6, 4)).astype(np.float32)
    gamma, beta = np.ones(4, np.float32), np.zeros(4, np.float32)
    out, cache = batchnorm_forward(x, gamma, beta, {"mode": "train"})
    assert out.dtype == np.float32
    assert all(g.dtype == np.float32 for g in batchnorm_backward(np.ones_like(out), cache))
    assert all(g.dtype == np.float32 for g in batchnorm_backward_alt(np.ones_like(out), cache))


# ---------------------------------------------------------------------------
# Layer normalisation
# ---------------------------------------------------------------------------


def test_layernorm_forward_normalises_each_row():
    rng = rng_for(20)
    x = 5 * rng.standard_normal((4, 60)) + rng.standard_normal((4, 1)) * 10
    gamma, beta = rng.standard_normal(60), rng.standard_normal(60)
    out, _ = layernorm_forward(x, gamma, beta, {"eps": 1e-3})
    x_hat = (out - beta) / gamma
    row_var = x.var(axis=1)
    np.testing.assert_allclose(x_hat.mean(axis=1), 0, atol=1e-12)
    np.testing.assert_allclose(x_hat.std(axis=1), np.sqrt(row_var / (row_var + 1e-3)), rtol=1e-12)


def test_layernorm_is_batchnorm_of_the_transpose():
    """Normalising rows is normalising the columns of x.T: the two layers agree to rounding."""
    x = 3 * rng_for(21).standard_normal((5, 8)) + 2
    out, _ = layernorm_forward(x, np.ones(8), np.zeros(8), {})
    transposed, _ = batchnorm_forward(x.T.copy(), np.ones(5), np.zeros(5), {"mode": "train"})
    np.testing.assert_allclose(out, transposed.T, rtol=1e-12, atol=1e-14)


def test_layernorm_is_the_same_in_both_modes_and_keeps_float32():
    x = rng_for(22).standard_normal((3, 6)).astype(np.float32)
    gamma, beta = np.full(6, 2.0, np.float32), np.ones(6, np.float32)
    train, cache = layernorm_forward(x, gamma, beta, {"mode": "train"})
    test, _ = layernorm_forward(x, gamma, beta, {"mode": "test"})
    np.testing.assert_array_equal(train, test)
    assert train.dtype == np.float32
    assert all(g.dtype == np.float32 for g in layernorm_backward(np.ones_like(train), cache))


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 4), d=st.integers(1, 7), eps=st.sampled_from([1e-5, 1e-2]),
       scale=st.sampled_from([1e-2, 1.0, 4.0]), seed=st.integers(0, 2**16))
def test_layernorm_backward_matches_numerical(n, d, eps, scale, seed):
    """Any batch size (1 included) and width; spreads near sqrt(eps) make eps matter."""
    rng = rng_for(23, seed)
    x = scale * rng.standard_normal((n, d)) + rng.standard_normal((n, 1))
    gamma, beta, dout = rng.standard_normal(d), rng.standard_normal(d), rng.standard_normal((n, d))
    ln_param = {"eps": eps}

    def forward(x_, gamma_, beta_):
        return layernorm_forward(x_, gamma_, beta_, ln_param)[0]

    _, cache = layernorm_forward(x, gamma, beta, ln_param)
    dx, dgamma, dbeta = layernorm_backward(dout, cache)
    assert dx.shape == x.shape and dgamma.shape == gamma.shape and dbeta.shape == beta.shape
    assert close_to_numerical(dx, numerical_gradient_array(lambda v: forward(v, gamma, beta), x, dout))
    assert close_to_numerical(dgamma, numerical_gradient_array(lambda v: forward(x, v, beta), gamma, dout))
    assert close_to_numerical(dbeta, numerical_gradient_array(lambda v: forward(x, gamma, v), beta, dout))


def test_layernorm_backward_refuses_a_batchnorm_cache():
    x = rng_for(24).standard_normal((4, 3))
    _, bn_cache = batchnorm_forward(x, np.ones(3), np.zeros(3), {"mode": "train"})
    with pytest.raises(ValueError, match="layernorm_forward"):
        layernorm_backward(np.ones_like(x), bn_cache)


# ---------------------------------------------------------------------------
# Dropout
# ---------------------------------------------------------------------------


def test_dropout_mask_follows_the_documented_convention_exactly():
    x = rng_for(9).standard_normal((30, 20))
    out, _ = dropout_forward(x, {"mode": "train", "p": 0.3, "seed": 123})
    keep = np.random.RandomState(123).rand(*x.shape) < 0.3
    np.testing.assert_array_equal(out, x * keep / 0.3)


def test_dropout_without_seed_draws_from_the_global_numpy_generator():
    x = rng_for(10).standard_normal((8, 9))
    for param in ({"mode": "train", "p": 0.6}, {"mode": "train", "p": 0.6, "seed": None}):
        np.random.seed(77)
        out, _ = dropout_forward(x, param)
        np.random.seed(77)
        keep = np.random.rand(*x.shape) < 0.6
        np.testing.assert_array_equal(out, x * keep / 0.6)


def test_dropout_same_seed_same_mask_and_different_seed_different_mask():
    x = np.ones((50, 40))
    first, _ = dropout_forward(x, {"mode": "train", "p": 0.5, "seed": 1})
    again, _ = dropout_forward(x, {"mode": "train", "p": 0.5, "seed": 1})
    other, _ = dropout_forward(x, {"mode": "train", "p": 0.5, "seed": 2})
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)


@pytest.mark.parametrize("p", [0.25, 0.5, 0.9])
def test_dropout_keeps_a_fraction_p_and_preserves_the_mean(p):
    x = np.ones((500, 500)) * 2.0
    out, _ = dropout_forward(x, {"mode": "train", "p": p, "seed": 0})
    assert abs(np.mean(out != 0) - p) < 0.01
    assert abs(out.mean() - 2.0) < 0.05
    assert set(np.unique(out)) <= {0.0, 2.0 / p}


def test_dropout_test_mode_is_identity_in_both_directions():
    x = rng_for(11).standard_normal((4, 5))
    out, cache = dropout_forward(x, {"mode": "test", "p": 0.5})
    np.testing.assert_array_equal(out, x)
    dout = rng_for(12).standard_normal((4, 5))
    np.testing.assert_array_equal(dropout_backward(dout, cache), dout)


def test_dropout_backward_matches_numerical_with_fixed_seed():
    rng = rng_for(13)
    x = rng.standard_normal((6, 7))
    dout = rng.standard_normal(x.shape)
    param = {"mode": "train", "p": 0.4, "seed": 5}
    _, cache = dropout_forward(x, param)
    dx = dropout_backward(dout, cache)
    dx_num = numerical_gradient_array(lambda v: dropout_forward(v, param)[0], x, dout)
    assert np.any(dx == 0) and np.any(dx != 0)
    assert rel_error(dx, dx_num) < GRAD_TOL


def test_dropout_keeps_float32():
    x = rng_for(14).standard_normal((5, 5)).astype(np.float32)
    out, cache = dropout_forward(x, {"mode": "train", "p": 0.5, "seed": 0})
    assert out.dtype == np.float32
    assert dropout_backward(np.ones_like(out), cache).dtype == np.float32


# ---------------------------------------------------------------------------
# Losses
# ---------------------------------------------------------------------------


def test_softmax_loss_of_uniform_scores_is_log_num_classes():
    loss, dx = softmax_loss(np.zeros((3, 10)), np.array([0, 4, 9]))
    assert loss == pytest.approx(np.log(10), rel=1e-12)
    expected = np.full((3, 10), 0.1 / 3)
    expected[[0, 1, 2], [0, 4, 9]] -= 1 / 3
    np.testing.assert_allclose(dx, expected, atol=1e-15)


def test_svm_loss_matches_hand_computation():
    x = np.array([[3.0, 1.0, 2.5], [0.0, 2.0, -1.0]])
    y = np.array([0, 2])
    # row 0: max(0, 1-3+1) + max(0, 2.5-3+1) = 0 + 0.5; row 1: (0+1+1) + (2+1+1) = 2 + 4
    loss, dx = svm_loss(x, y)
    assert loss == pytest.approx((0.5 + 6.0) / 2, rel=1e-15)
    np.testing.assert_allclose(dx, np.array([[-1.0, 0.0, 1.0], [1.0, 1.0, -2.0]]) / 2, atol=1e-15)


@pytest.mark.parametrize("loss_fn", [softmax_loss, svm_loss])
@pytest.mark.parametrize("num_examples,num_classes", [(1, 3), (10, 5), (7, 10)])
def test_loss_gradient_matches_numerical(loss_fn, num_examples, num_classes):
    rng = rng_for(15, num_examples, num_classes)
    x = rng.standard_normal((num_examples, num_classes))
    y = rng.integers(num_classes, size=num_examples)
    _, dx = loss_fn(x, y)
    dx_num = numerical_gradient(lambda v: loss_fn(v, y)[0], x)
    assert rel_error(dx, dx_num) < GRAD_TOL


@pytest.mark.parametrize("loss_fn", [softmax_loss, svm_loss])
def test_losses_are_stable_for_scores_of_magnitude_1e5(loss_fn):
    rng = rng_for(16)
    x = rng.standard_normal((6, 4))
    y = rng.integers(4, size=6)
    loss_small, dx_small = loss_fn(x, y)
    # Underflow of exp(-huge) to 0 is the intended outcome; overflow or NaN is not.
    with warnings.catch_warnings(), np.errstate(over="raise", invalid="raise", divide="raise"):
        warnings.simplefilter("error")
        loss_shifted, dx_shifted = loss_fn(x + 1e5, y)  # both losses are shift invariant
        loss_big, dx_big = loss_fn(x * 1e5, y)
    assert loss_shifted == pytest.approx(loss_small, rel=1e-9)
    np.testing.assert_allclose(dx_shifted, dx_small, atol=1e-9)
    assert np.isfinite(loss_big) and np.all(np.isfinite(dx_big))
    assert loss_big > 1e3  # some correct class is beaten by a margin of order 1e5


def test_softmax_loss_with_huge_scores_has_the_limiting_value():
    x = np.array([[1e5, 0.0, -1e5], [0.0, 2e5, 0.0]])
    y = np.array([1, 1])
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        loss, dx = softmax_loss(x, y)
    # Row 0 puts all mass on class 0: loss 1e5; row 1 is right with certainty: loss 0.
    assert loss == pytest.approx(1e5 / 2, rel=1e-12)
    np.testing.assert_allclose(dx, np.array([[1.0, -1.0, 0.0], [0.0, 0.0, 0.0]]) / 2, atol=1e-15)


@pytest.mark.parametrize("loss_fn", [softmax_loss, svm_loss])
def test_losses_keep_float32(loss_fn):
    x = rng_for(17).standard_normal((4, 3)).astype(np.float32)
    _, dx = loss_fn(x, np.array([0, 1, 2, 0]))
    assert dx.dtype == np.float32


# ---------------------------------------------------------------------------
# Fully connected sandwiches
# ---------------------------------------------------------------------------


def test_affine_relu_sandwich_is_the_composition_and_matches_numerical():
    rng = rng_for(18)
    x, w, b = rng.standard_normal((3, 2, 4)), rng.standard_normal((8, 6)), rng.standard_normal(6)
    out, cache = affine_relu_forward(x, w, b)
    np.testing.assert_array_equal(out, np.maximum(x.reshape(3, -1) @ w + b, 0))
    dout = rng.standard_normal(out.shape)
    dx, dw, db = affine_relu_backward(dout, cache)
    assert rel_error(dx, numerical_gradient_array(lambda v: affine_relu_forward(v, w, b)[0], x, dout)) < GRAD_TOL
    assert rel_error(dw, numerical_gradient_array(lambda v: affine_relu_forward(x, v, b)[0], w, dout)) < GRAD_TOL
    assert rel_error(db, numerical_gradient_array(lambda v: affine_relu_forward(x, w, v)[0], b, dout)) < GRAD_TOL


def test_affine_batchnorm_relu_sandwich_matches_numerical():
    rng = rng_for(19)
    x, w, b = rng.standard_normal((5, 4)), rng.standard_normal((4, 3)), rng.standard_normal(3)
    gamma, beta = rng.standard_normal(3), rng.standard_normal(3)
    bn_param = {"mode": "train"}
    args = [x, w, b, gamma, beta]
    out, cache = affine_batchnorm_relu_forward(*args, bn_param)
    dout = rng.standard_normal(out.shape)
    grads = affine_batchnorm_relu_backward(dout, cache)
    for position, (arg, grad) in enumerate(zip(args, grads)):

        def forward(v, position=position):
            return affine_batchnorm_relu_forward(*args[:position], v, *args[position + 1 :], bn_param)[0]

        grad_num = numerical_gradient_array(forward, arg, dout)
        if arg is b:
            # Batchnorm subtracts the batch mean, so the affine bias has no effect.
            assert np.max(np.abs(grad)) < 1e-12 and np.max(np.abs(grad_num)) < 1e-9
        else:
            assert rel_error(grad, grad_num) < BATCHNORM_GRAD_TOL, position
