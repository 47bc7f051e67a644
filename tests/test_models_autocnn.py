"""autocnn's models: autograd-derived loss gradients against the hand-written reference
models, against numerical gradients (the notebook's cell [3]), and to second order."""

import numpy as np
import pytest
from autograd import grad

import reference.cnn
import reference.fc_net
from autocnn.core import models, ops
from autocnn.tools.gradcheck import eval_numerical_gradient, rel_error


def copy_state(source, target):
    """Give target the source's params and batchnorm running statistics."""
    target.params = {name: value.copy() for name, value in source.params.items()}
    for src, dst in zip(source.bn_params, target.bn_params):
        dst.update({key: np.copy(value) for key, value in src.items()})


def assert_models_agree(ours, theirs, X, y, tol=1e-7):
    loss, grads = ours.loss(X, y)
    ref_loss, ref_grads = theirs.loss(X, y)
    assert abs(loss - ref_loss) <= tol * abs(ref_loss)
    assert sorted(grads) == sorted(ref_grads) == sorted(ours.params)
    for name in ref_grads:
        assert grads[name].shape == ref_grads[name].shape
        # Floor: a bias feeding batchnorm has gradient 0 up to rounding (~1e-17) on both sides.
        scale = max(np.max(np.abs(ref_grads[name])), 1e-8)
        error = np.max(np.abs(grads[name] - ref_grads[name])) / scale
        assert error <= tol, f"{name}: {error:.2e}"
    for ours_bn, ref_bn in zip(ours.bn_params, theirs.bn_params):
        np.testing.assert_allclose(ours_bn["running_mean"], ref_bn["running_mean"], rtol=1e-10, atol=1e-14)
        np.testing.assert_allclose(ours_bn["running_var"], ref_bn["running_var"], rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(ours.loss(X), theirs.loss(X), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("use_batchnorm", [False, True])
@pytest.mark.parametrize("reg", [0.0, 0.3])
def test_three_layer_convnet_matches_reference(use_batchnorm, reg):
    np.random.seed(0)
    kwargs = dict(input_dim=(3, 10, 8), num_filters=4, filter_size=5, hidden_dim=8, num_classes=6,
                  weight_scale=0.3, reg=reg, dtype=np.float64, use_batchnorm=use_batchnorm)
    theirs = reference.cnn.ThreeLayerConvNet(**kwargs)
    ours = models.ThreeLayerConvNet(**kwargs)
    copy_state(theirs, ours)
    X, y = np.random.randn(5, 3, 10, 8), np.random.randint(6, size=5)
    for _ in range(2):  # the second call starts from updated running statistics
        assert_models_agree(ours, theirs, X, y)


def test_three_layer_convnet_matches_reference_with_ties_everywhere():
    # Integer inputs and filters: conv outputs with exact ties and exact zeros in the pool
    # windows, where relu(pool(h)) (autocnn's order) and pool(relu(h)) (the reference's)
    # must still give the same gradient.
    rng = np.random.RandomState(3)
    kwargs = dict(input_dim=(2, 8, 8), num_filters=3, filter_size=3, hidden_dim=7, num_classes=4,
                  reg=0.0, dtype=np.float64)
    theirs, ours = reference.cnn.ThreeLayerConvNet(**kwargs), models.ThreeLayerConvNet(**kwargs)
    theirs.params["W1"] = rng.randint(-1, 2, size=theirs.params["W1"].shape).astype(np.float64)
    theirs.params["b1"] = np.array([0.0, -1.0, 1.0])
    copy_state(theirs, ours)
    X, y = rng.randint(-1, 2, size=(6, 2, 8, 8)).astype(np.float64), rng.randint(4, size=6)
    h = ops.conv2d(X, theirs.params["W1"], theirs.params["b1"], 1, 1)
    windows = h.reshape(6, 3, 4, 2, 4, 2).transpose(0, 1, 2, 4, 3, 5).reshape(6, 3, 4, 4, 4)
    window_max = windows.max(axis=-1, keepdims=True)
    assert np.mean(np.sum(windows == window_max, axis=-1) > 1) > 0.2  # many tied windows
    assert np.mean(window_max == 0) > 0.05  # some windows whose maximum is exactly 0
    assert_models_agree(ours, theirs, X, y)


@pytest.mark.parametrize("dropout", [1, 0.6])
@pytest.mark.parametrize("use_batchnorm", [False, True])
def test_fully_connected_net_matches_reference(dropout, use_batchnorm):
    np.random.seed(1)
    kwargs = dict(hidden_dims=[9, 7], input_dim=12, num_classes=5, dropout=dropout,
                  use_batchnorm=use_batchnorm, reg=0.1, weight_scale=0.5, dtype=np.float64, seed=42)
    theirs = reference.fc_net.FullyConnectedNet(**kwargs)
    ours = models.FullyConnectedNet(**kwargs)
    copy_state(theirs, ours)
    X, y = np.random.randn(6, 12), np.random.randint(5, size=6)
    assert_models_agree(ours, theirs, X, y)


def layernorm_net_by_hand(params, X, y, reg, hidden_layers, eps):
    """The 2018+ notebook's FullyConnectedNet(normalization='layernorm'), out of the hand-written
    reference layers: loss and grads, the backward chained by hand."""
    import reference.layers as ref

    h, caches = X, []
    for i in range(1, hidden_layers + 1):
        h, affine_cache = ref.affine_forward(h, params[f"W{i}"], params[f"b{i}"])
        h, norm_cache = ref.layernorm_forward(h, params[f"gamma{i}"], params[f"beta{i}"], {"eps": eps})
        h, relu_cache = ref.relu_forward(h)
        caches.append((affine_cache, norm_cache, relu_cache))
    last = hidden_layers + 1
    scores, last_cache = ref.affine_forward(h, params[f"W{last}"], params[f"b{last}"])
    loss, dscores = ref.softmax_loss(scores, y)
    weights = [name for name in params if name.startswith("W")]
    loss += 0.5 * reg * sum(np.sum(params[name] ** 2) for name in weights)
    grads = {}
    dh, grads[f"W{last}"], grads[f"b{last}"] = ref.affine_backward(dscores, last_cache)
    for i in range(hidden_layers, 0, -1):
        affine_cache, norm_cache, relu_cache = caches[i - 1]
        dh = ref.relu_backward(dh, relu_cache)
        dh, grads[f"gamma{i}"], grads[f"beta{i}"] = ref.layernorm_backward(dh, norm_cache)
        dh, grads[f"W{i}"], grads[f"b{i}"] = ref.affine_backward(dh, affine_cache)
    for name in weights:
        grads[name] += reg * params[name]
    return loss, grads


@pytest.mark.parametrize("reg", [0.0, 0.2])
def test_fully_connected_net_with_layernorm_matches_the_hand_written_layers(reg):
    np.random.seed(3)
    model = models.FullyConnectedNet([7, 6], input_dim=10, num_classes=4, normalization="layernorm", reg=reg,
                                     weight_scale=0.5, dtype=np.float64)
    assert model.normalization == "layernorm" and not model.use_batchnorm
    for i in (1, 2):  # away from gamma = 1, beta = 0, so their gradients are not trivially placed
        model.params[f"gamma{i}"] = np.random.randn(model.params[f"gamma{i}"].size)
        model.params[f"beta{i}"] = np.random.randn(model.params[f"beta{i}"].size)
        model.bn_params[i - 1]["eps"] = 1e-3
    X, y = np.random.randn(5, 10), np.random.randint(4, size=5)
    loss, grads = model.loss(X, y)
    ref_loss, ref_grads = layernorm_net_by_hand(model.params, X, y, reg, hidden_layers=2, eps=1e-3)
    assert abs(loss - ref_loss) <= 1e-12 * abs(ref_loss)
    assert sorted(grads) == sorted(ref_grads) == sorted(model.params)
    for name, ref_grad in ref_grads.items():
        error = np.max(np.abs(grads[name] - ref_grad)) / max(np.max(np.abs(ref_grad)), 1e-8)
        assert error <= 1e-10, f"{name}: {error:.2e}"
    # No running statistics: test mode computes the same scores as training mode.
    scores = model.loss(X)
    np.testing.assert_allclose(scores, model.forward(model.params, X, train=True)[0], rtol=1e-12)
    assert all(set(bn_param) <= {"mode", "eps"} for bn_param in model.bn_params)


def test_fully_connected_net_normalization_is_checked():
    with pytest.raises(ValueError, match="normalization must be one of"):
        models.FullyConnectedNet([4], input_dim=6, normalization="groupnorm")
    with pytest.raises(ValueError, match="contradicts"):
        models.FullyConnectedNet([4], input_dim=6, use_batchnorm=True, normalization="layernorm")
    as_flag = models.FullyConnectedNet([4], input_dim=6, use_batchnorm=True)
    by_name = models.FullyConnectedNet([4], input_dim=6, normalization="batchnorm")
    assert as_flag.normalization == by_name.normalization == "batchnorm"
    assert sorted(as_flag.params) == sorted(by_name.params)


@pytest.mark.parametrize("conv_impl", ["fast", "scipy"])
def test_conv_impls_give_the_same_model(conv_impl):
    np.random.seed(2)
    kwargs = dict(input_dim=(3, 8, 8), num_filters=3, filter_size=3, hidden_dim=5, dtype=np.float64, weight_scale=0.5)
    theirs = reference.cnn.ThreeLayerConvNet(**kwargs)
    ours = models.ThreeLayerConvNet(conv_impl=conv_impl, **kwargs)
    copy_state(theirs, ours)
    assert_models_agree(ours, theirs, np.random.randn(3, 3, 8, 8), np.random.randint(10, size=3))


def test_float32_model_stays_float32():
    model = models.ThreeLayerConvNet(input_dim=(3, 8, 8), num_filters=2, hidden_dim=4)
    loss, grads = model.loss(np.random.randn(2, 3, 8, 8), np.array([1, 2]))
    assert np.asarray(loss).dtype == np.float32
    assert all(g.dtype == np.float32 for g in grads.values())


@pytest.mark.parametrize("use_batchnorm", [False, True])
def test_notebook_gradient_check_cell(use_batchnorm):
    """The notebook's cell [3] on the autocnn model: W1, W2 within 1e-2, the rest 1e-5.

    Two sources of noise in the numerical side, so two departures, both stated:
    - Finite differences are wrong where a ReLU or a max-pool window sits near its kink,
      so the inputs come from a fixed seed (any run of the notebook is one such draw).
    - At the cell's default weight_scale=1e-3, the gradients of W3 and b1 are ~1e-6 and
      the centred difference's rounding error, eps * |loss| / h ~ 2e-10, is already
      ~1e-4 of them (the notebook's own printout has W3 at 2.8e-4). weight_scale=1e-2
      lifts them above that floor. The exact comparison with the hand-written
      reference (test_three_layer_convnet_matches_reference) has no such noise.
    """
    np.random.seed(12)
    num_inputs, input_dim = 2, (3, 16, 16)
    X = np.random.randn(num_inputs, *input_dim)
    y = np.random.randint(10, size=num_inputs)
    model = models.ThreeLayerConvNet(num_filters=3, filter_size=3, input_dim=input_dim, hidden_dim=7,
                                     dtype=np.float64, use_batchnorm=use_batchnorm, weight_scale=1e-2)
    loss, grads = model.loss(X, y)
    for name in sorted(grads):
        numerical = eval_numerical_gradient(lambda _: model.loss(X, y)[0], model.params[name], verbose=False, h=1e-6)
        tolerance = 1e-2 if name in ("W1", "W2") else 1e-5
        if np.max(np.abs(numerical)) < 1e-8:  # a bias feeding batchnorm: gradient exactly 0
            assert np.max(np.abs(grads[name])) < 1e-10, name
        else:
            assert rel_error(numerical, grads[name]) <= tolerance, name


def test_convnet_deeper_architecture_gradients():
    """A two-block ConvNet with batchnorm, dropout and the SVM loss, checked numerically."""
    np.random.seed(3)
    model = models.ConvNet(input_dim=(3, 8, 8), blocks=((4, 4), (5,)), hidden_dims=(6, 5), dropout=0.7,
                           loss="svm", reg=0.05, dtype=np.float64, seed=11)
    X, y = np.random.randn(4, 3, 8, 8), np.random.randint(10, size=4)
    _, grads = model.loss(X, y)
    assert model.loss(X).shape == (4, 10)
    for name in ("W1", "W3", "gamma2", "W5", "b6"):
        numerical = eval_numerical_gradient(lambda _: model.loss(X, y)[0], model.params[name], verbose=False, h=1e-5)
        assert rel_error(numerical, grads[name]) <= 1e-5, name


def test_convnet_rejects_bad_configuration():
    with pytest.raises(ValueError, match="loss"):
        models.ConvNet(loss="hinge")
    with pytest.raises(ValueError, match="filter_size"):
        models.ConvNet(filter_size=4)
    with pytest.raises(ValueError, match="pooling"):
        models.ConvNet(input_dim=(3, 4, 4), blocks=((2,), (2,), (2,)))


def test_hessian_vector_product_matches_finite_difference_of_gradients():
    """Second order: H v by autograd (grad of <grad, v>) equals (g(p + eps v) - g(p - eps v)) / 2 eps."""
    np.random.seed(4)
    model = models.ThreeLayerConvNet(input_dim=(3, 8, 8), num_filters=3, filter_size=3, hidden_dim=6,
                                     weight_scale=0.3, dtype=np.float64)
    X, y = np.random.randn(3, 3, 8, 8), np.random.randint(10, size=3)
    # Smooth in W3 and b3 with the rest fixed: the loss is softmax of an affine function.
    # Through W1 too, but away from kinks the finite difference is still exact to O(eps^2).
    names = ["W1", "W3"]

    def loss_of(flat_params):
        params = dict(model.params)
        params.update(flat_params)
        scores, _ = model.forward(params, X, train=True)
        return ops.softmax_loss(scores, y)

    point = {name: model.params[name] for name in names}
    direction = {name: np.random.randn(*point[name].shape) for name in names}
    gradient = grad(loss_of)

    def hvp(p):
        return grad(lambda q: sum(np.sum(gradient(q)[n] * direction[n]) for n in names))(p)

    exact = hvp(point)
    eps = 1e-5
    plus = gradient({n: point[n] + eps * direction[n] for n in names})
    minus = gradient({n: point[n] - eps * direction[n] for n in names})
    for name in names:
        finite = (plus[name] - minus[name]) / (2 * eps)
        assert rel_error(exact[name], finite) < 1e-5 or np.max(np.abs(exact[name] - finite)) < 1e-8, name
