"""autocnn.core.derive: one autograd root per input, gradients equal to autograd.grad's own."""

import autograd
import autograd.numpy as anp
import numpy as np
import pytest
from autograd.test_util import check_grads

from autocnn.core import derive
from autocnn.core.primitives import half_squared_norm

rng = np.random.RandomState(0)


def _objective(params):
    """
    Uses w twice (a layer and a weight decay), indexes scores (a sparse VJP), decays a
    parameter nothing else uses, decays an intermediate (2 b), and ignores 'unused'.
    """
    scores = anp.dot(params["x"], params["w"]) + params["b"]
    picked = scores[np.arange(3), np.array([0, 2, 1])]
    value = (anp.sum(anp.tanh(scores)) - anp.sum(picked) + 0.1 * half_squared_norm(params["w"])
             + 0.3 * half_squared_norm(params["decay_only"]) + half_squared_norm(2.0 * params["b"]))
    return value, {"mean": anp.mean(scores)}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_value_and_grad_with_aux_matches_autograd(dtype):
    params = {"x": rng.randn(3, 4).astype(dtype), "w": rng.randn(4, 5).astype(dtype),
              "b": rng.randn(5).astype(dtype), "unused": rng.randn(2).astype(dtype),
              "decay_only": rng.randn(40000).astype(dtype)}  # more than one block of _add_scaled
    value, grads, aux = derive.value_and_grad_with_aux(_objective, params)
    expected = autograd.grad(lambda p: _objective(p)[0])(params)
    assert value == pytest.approx(_objective(params)[0], rel=1e-6)
    assert set(grads) == set(params)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    for name in params:
        assert grads[name].dtype == dtype and grads[name].shape == params[name].shape
        np.testing.assert_allclose(grads[name], expected[name], rtol=tol, atol=tol)
    np.testing.assert_array_equal(grads["unused"], 0)
    assert type(aux["mean"]) is not autograd.numpy.numpy_boxes.ArrayBox
    assert np.isclose(aux["mean"], np.mean(params["x"] @ params["w"] + params["b"]))


def test_a_gradient_never_aliases_dout_or_another_gradient():
    x, y = rng.randn(2, 3), rng.randn(2, 3)
    dout = rng.randn(2, 3)
    kept = dout.copy()
    # The VJP of x + y hands the same g to both inputs, and that g is the caller's dout.
    _, cache = derive.forward(lambda x, y: x + y, x, y)
    dx, dy = derive.backward(dout, cache)
    np.testing.assert_array_equal(dx, dout)
    np.testing.assert_array_equal(dy, dout)
    dx += 1.0
    np.testing.assert_array_equal(dout, kept)
    np.testing.assert_array_equal(dy, kept)
    # An op returning its input unchanged.
    _, cache = derive.forward(lambda x: x, x)
    dx = derive.backward(dout, cache)
    assert not np.shares_memory(dx, dout)


def test_a_weight_used_twice_gets_the_sum_and_repeated_backward_passes_agree():
    x, w = rng.randn(6, 4), rng.randn(4, 3)

    def op(x, w):
        return anp.dot(x, w) * half_squared_norm(w)

    out, cache = derive.forward(op, x, w)
    dout = rng.randn(*out.shape)
    first = derive.backward(dout, cache)
    second = derive.backward(dout, cache)  # in-place summation must not change what the cache holds
    expected = autograd.grad(lambda w: anp.sum(op(x, w) * dout))(w)
    np.testing.assert_allclose(first[1], expected, rtol=1e-12)
    np.testing.assert_array_equal(first[1], second[1])


def test_float64_dout_keeps_float32_gradients():
    x = rng.randn(2, 3).astype(np.float32)
    _, cache = derive.forward(lambda x: 2.0 * x, x)
    dx = derive.backward(rng.randn(2, 3), cache)
    assert dx.dtype == np.float32


def test_half_squared_norm_value_and_second_order():
    w = rng.randn(3, 4)
    assert half_squared_norm(w) == pytest.approx(0.5 * np.sum(w * w), rel=1e-14)
    check_grads(half_squared_norm, modes=["rev"], order=2)(w)
    assert half_squared_norm(w.astype(np.float32)).dtype == np.float32


@pytest.mark.parametrize("layout", ["C", "F"])
def test_weight_decay_contribution_adds_itself_in_whatever_the_layout(layout):
    from autocnn.core.primitives import _add_scaled

    w = rng.randn(300, 250)
    total = np.array(rng.randn(300, 250), order=layout)
    expected = total + 0.7 * w
    assert _add_scaled(total, w, 0.7) is total
    np.testing.assert_allclose(total, expected, rtol=1e-15)
