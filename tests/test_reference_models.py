"""Tests for reference/cnn.py (ThreeLayerConvNet) and reference/fc_net.py (FullyConnectedNet).

How the gradient checks are made honest
---------------------------------------
The notebook's cell [3] check (2 inputs of 3x16x16, 3 filters of 3x3, hidden 7,
weight_scale 1e-3, h = 1e-6) evaluated in float64 cannot separate a correct
gradient from round-off: the loss is ~2.3 so each difference quotient carries
~1e-10 of noise while many gradient entries are ~1e-6, which is why the notebook
tolerates 1e-2 for W1 / W2 and its own printout exceeds 1e-5 elsewhere. Here the
analytic gradients come from the float64 model, but the centred differences are
taken on an extended-precision (x87 long double) copy of the same model, which
cuts that noise by ~2000x. The remaining source of error is a ReLU input or a
max-pool near-tie within h of its kink, which depends on the random draw: so the
np.random seed is fixed, to one for which no kink is crossed. With that, every
parameter passes the notebook's thresholds (W1, W2 <= 1e-2; the rest <= 1e-5)
with a wide margin, and we additionally assert the tighter bound printed below.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
from numerical import numerical_gradient, rel_error

from reference.cnn import ThreeLayerConvNet
from reference.fc_net import FullyConnectedNet

# np.random seeds of the fixed draws (inputs, labels, weights) for the gradient checks.
GRADCHECK_SEED = 4
FC_GRADCHECK_SEED = 3
NOTEBOOK_TOL = {"W1": 1e-2, "W2": 1e-2}  # every other parameter: 1e-5
TIGHT_TOL = 1e-5  # what this seed actually achieves for every parameter, W1 / W2 included

needs_extended_precision = pytest.mark.skipif(
    np.finfo(np.longdouble).eps > 1e-18,
    reason="the numerical side of the check needs x87 extended precision (np.longdouble)",
)


def numerical_model_gradients(model, X, y, h):
    """Centred differences of model.loss(X, y)[0], evaluated in extended precision on a copy."""
    extended = copy.deepcopy(model)
    extended.dtype = np.longdouble
    extended.params = {name: value.astype(np.longdouble) for name, value in model.params.items()}
    return {
        name: numerical_gradient(lambda _: extended.loss(X, y)[0], extended.params[name], h).astype(np.float64)
        for name in extended.params
    }


def assert_model_gradients_match(model, X, y, h, cancelled=()):
    """Check every gradient; parameters in `cancelled` have a true gradient of zero."""
    loss, grads = model.loss(X, y)
    assert np.isfinite(loss)
    assert sorted(grads) == sorted(model.params)
    numerical = numerical_model_gradients(model, X, y, h)
    for name in sorted(grads):
        assert grads[name].shape == model.params[name].shape
        if name in cancelled:
            assert np.max(np.abs(grads[name])) < 1e-12 and np.max(np.abs(numerical[name])) < 1e-9, name
            continue
        error = rel_error(numerical[name], grads[name])
        assert error <= NOTEBOOK_TOL.get(name, 1e-5), (name, error)
        assert error <= TIGHT_TOL, (name, error)


def notebook_cell_3_model(use_batchnorm: bool, reg: float = 0.0):
    np.random.seed(GRADCHECK_SEED)
    num_inputs, input_dim, num_classes = 2, (3, 16, 16), 10
    X = np.random.randn(num_inputs, *input_dim)
    y = np.random.randint(num_classes, size=num_inputs)
    model = ThreeLayerConvNet(
        num_filters=3,
        filter_size=3,
        input_dim=input_dim,
        hidden_dim=7,
        reg=reg,
        dtype=np.float64,
        use_batchnorm=use_batchnorm,
    )
    return model, X, y


# ---------------------------------------------------------------------------
# ThreeLayerConvNet
# ---------------------------------------------------------------------------


@needs_extended_precision
@pytest.mark.parametrize("use_batchnorm", [False, True])
def test_three_layer_convnet_passes_the_notebook_gradient_check(use_batchnorm):
    model, X, y = notebook_cell_3_model(use_batchnorm)
    assert_model_gradients_match(model, X, y, h=1e-6)


@needs_extended_precision
def test_three_layer_convnet_regularization_gradient():
    model, X, y = notebook_cell_3_model(use_batchnorm=False, reg=0.7)
    assert_model_gradients_match(model, X, y, h=1e-6)


def test_three_layer_convnet_regularization_adds_half_reg_times_squared_weights():
    model, X, y = notebook_cell_3_model(use_batchnorm=True, reg=0.0)
    loss_plain, grads_plain = model.loss(X, y)
    model.reg = 0.3
    loss_reg, grads_reg = model.loss(X, y)
    penalty = 0.5 * 0.3 * sum(np.sum(model.params[name] ** 2) for name in ("W1", "W2", "W3"))
    assert loss_reg - loss_plain == pytest.approx(penalty, rel=1e-9)
    for name in grads_plain:
        expected = grads_plain[name] + (0.3 * model.params[name] if name in ("W1", "W2", "W3") else 0)
        np.testing.assert_allclose(grads_reg[name], expected, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("use_batchnorm", [False, True])
def test_three_layer_convnet_parameters_have_the_specified_shapes_and_init(use_batchnorm):
    np.random.seed(0)
    model = ThreeLayerConvNet(
        input_dim=(3, 10, 12), num_filters=4, filter_size=5, hidden_dim=6, num_classes=7,
        weight_scale=0.5, use_batchnorm=use_batchnorm,
    )  # fmt: skip
    expected_shapes = {
        "W1": (4, 3, 5, 5), "b1": (4,), "W2": (4 * 5 * 6, 6), "b2": (6,), "W3": (6, 7), "b3": (7,),
    }  # fmt: skip
    if use_batchnorm:
        expected_shapes.update(gamma1=(4,), beta1=(4,), gamma2=(6,), beta2=(6,))
    assert {name: p.shape for name, p in model.params.items()} == expected_shapes
    assert all(p.dtype == np.float32 for p in model.params.values())
    for name, p in model.params.items():
        if name.startswith("W"):
            assert 0.3 < p.std() < 0.7  # weight_scale * randn
        elif name.startswith("gamma"):
            np.testing.assert_array_equal(p, 1)
        else:
            np.testing.assert_array_equal(p, 0)
    assert model.bn_params == ([{"mode": "train"}, {"mode": "train"}] if use_batchnorm else [])


@pytest.mark.parametrize("use_batchnorm", [False, True])
def test_three_layer_convnet_modes_scores_and_float32(use_batchnorm):
    np.random.seed(1)
    model = ThreeLayerConvNet(input_dim=(3, 8, 8), num_filters=4, filter_size=3, hidden_dim=5, use_batchnorm=use_batchnorm)
    X = np.random.randn(6, 3, 8, 8)  # float64 input: loss() must cast it to float32
    y = np.random.randint(10, size=6)

    loss, grads = model.loss(X, y)
    assert all(bn_param["mode"] == "train" for bn_param in model.bn_params)
    assert all(g.dtype == np.float32 for g in grads.values())
    # Small weights give near-uniform class scores: loss close to log(10).
    assert loss == pytest.approx(np.log(10), abs=0.01)

    scores = model.loss(X)
    assert scores.shape == (6, 10) and scores.dtype == np.float32
    assert all(bn_param["mode"] == "test" for bn_param in model.bn_params)
    if use_batchnorm:
        assert model.bn_params[0]["running_mean"].shape == (4,)
        assert model.bn_params[1]["running_mean"].shape == (5,)
        # Test-time scores depend on each example alone, not on the rest of the batch.
        np.testing.assert_allclose(model.loss(X[:2]), scores[:2], rtol=1e-5, atol=1e-7)


def test_three_layer_convnet_float32_gradients_agree_with_float64():
    model64, X, y = notebook_cell_3_model(use_batchnorm=False)
    model32 = copy.deepcopy(model64)
    model32.dtype = np.float32
    model32.params = {name: value.astype(np.float32) for name, value in model64.params.items()}
    model64.params = {name: value.astype(np.float32).astype(np.float64) for name, value in model64.params.items()}
    loss64, grads64 = model64.loss(X, y)
    loss32, grads32 = model32.loss(X, y)
    assert loss32 == pytest.approx(loss64, rel=1e-6)
    for name in grads64:
        scale = np.max(np.abs(grads64[name]))
        assert np.max(np.abs(grads32[name] - grads64[name])) <= 1e-3 * scale + 1e-12, name


# ---------------------------------------------------------------------------
# FullyConnectedNet
# ---------------------------------------------------------------------------


def fc_case(use_batchnorm: bool, dropout: float, reg: float):
    np.random.seed(FC_GRADCHECK_SEED)
    N, D, H1, H2, C = 4, 15, 20, 30, 10
    X = np.random.randn(N, D)
    y = np.random.randint(C, size=N)
    model = FullyConnectedNet(
        [H1, H2], input_dim=D, num_classes=C, dropout=dropout, use_batchnorm=use_batchnorm,
        reg=reg, weight_scale=5e-2, dtype=np.float64, seed=123,
    )  # fmt: skip
    return model, X, y


@needs_extended_precision
@pytest.mark.parametrize(
    "use_batchnorm,dropout,reg",
    [(False, 1, 0.0), (False, 0.5, 0.0), (True, 1, 3.14), (True, 0.5, 0.0), (True, 0.5, 3.14)],
)
def test_fully_connected_net_gradient_check(use_batchnorm, dropout, reg):
    model, X, y = fc_case(use_batchnorm, dropout, reg)
    # Batchnorm subtracts the batch mean right after each hidden affine layer,
    # so the hidden biases have a true gradient of zero.
    cancelled = ("b1", "b2") if use_batchnorm else ()
    assert_model_gradients_match(model, X, y, h=1e-5, cancelled=cancelled)


def test_fully_connected_net_parameters_and_bookkeeping():
    np.random.seed(0)
    model = FullyConnectedNet([5, 6], input_dim=4, num_classes=3, dropout=0.25, use_batchnorm=True, seed=9)
    expected_shapes = {
        "W1": (4, 5), "b1": (5,), "gamma1": (5,), "beta1": (5,),
        "W2": (5, 6), "b2": (6,), "gamma2": (6,), "beta2": (6,),
        "W3": (6, 3), "b3": (3,),
    }  # fmt: skip
    assert {name: p.shape for name, p in model.params.items()} == expected_shapes
    assert all(p.dtype == np.float32 for p in model.params.values())
    assert model.num_layers == 3 and model.use_dropout
    assert model.dropout_param == {"mode": "train", "p": 0.25, "seed": 9}
    assert model.bn_params == [{"mode": "train"}, {"mode": "train"}]

    plain = FullyConnectedNet([5], input_dim=4, num_classes=3)
    assert not plain.use_dropout and plain.bn_params == []
    assert sorted(plain.params) == ["W1", "W2", "b1", "b2"]
    assert "seed" not in FullyConnectedNet([5], input_dim=4, dropout=0.5).dropout_param


def test_fully_connected_net_modes_follow_y_and_dropout_is_off_at_test_time():
    np.random.seed(2)
    model = FullyConnectedNet([8, 8], input_dim=6, num_classes=4, dropout=0.5, use_batchnorm=True, seed=3, weight_scale=0.5)
    X, y = np.random.randn(5, 6), np.random.randint(4, size=5)

    loss, grads = model.loss(X, y)
    assert model.dropout_param["mode"] == "train"
    assert all(bn_param["mode"] == "train" for bn_param in model.bn_params)
    assert all(g.dtype == np.float32 for g in grads.values())

    scores = model.loss(X)
    assert scores.shape == (5, 4) and scores.dtype == np.float32
    assert model.dropout_param["mode"] == "test"
    assert all(bn_param["mode"] == "test" for bn_param in model.bn_params)
    # Without dropout or batch statistics, scores of an example do not depend on its batch.
    np.testing.assert_allclose(model.loss(X[:1]), scores[:1], rtol=1e-5, atol=1e-7)

    # A seeded dropout mask makes the training loss reproducible.
    assert model.loss(X, y)[0] == model.loss(X, y)[0]


def test_fully_connected_net_regularization_adds_half_reg_times_squared_weights():
    model, X, y = fc_case(use_batchnorm=False, dropout=1, reg=0.0)
    loss_plain, _ = model.loss(X, y)
    model.reg = 2.0
    loss_reg, _ = model.loss(X, y)
    penalty = 0.5 * 2.0 * sum(np.sum(model.params[f"W{layer}"] ** 2) for layer in (1, 2, 3))
    assert loss_reg - loss_plain == pytest.approx(penalty, rel=1e-9)
