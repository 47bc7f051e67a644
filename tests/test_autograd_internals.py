"""autocnn.core.autograd_internals against autograd's public make_vjp and grad.

If an autograd release changes the tracer or the backward-pass building blocks this
module wraps, these tests fail first and name the piece.
"""

from __future__ import annotations

import autograd.numpy as anp
import numpy as np
from autograd import grad, make_vjp
from autograd.extend import SparseObject

from autocnn.core import autograd_internals as internals


def _f(a, b):
    return anp.sum(anp.tanh(a @ b) * a[:, :1]) + anp.sum(b ** 2)


def _summed(parts, leaf):
    total = np.zeros_like(leaf)
    for part in parts:
        total = part.mut_add(total) if isinstance(part, SparseObject) else total + part
    return total


def test_trace_and_backpropagate_give_make_vjps_gradients():
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((3, 4)), rng.standard_normal((4, 2))
    end_value, end_node, roots = internals.trace(lambda boxes: _f(*boxes), [a, b])
    parts = internals.backpropagate(1.0, end_node, roots)
    ours = [_summed(parts[root], leaf) for root, leaf in zip(roots, (a, b))]
    for argnum, ours_grad in enumerate(ours):
        vjp, value = make_vjp(_f, argnum)(a, b)
        np.testing.assert_allclose(ours_grad, vjp(1.0), rtol=1e-14, atol=1e-14)
        np.testing.assert_allclose(end_value, value, rtol=0)


def test_an_output_that_ignores_the_inputs_has_no_end_node():
    _, end_node, roots = internals.trace(lambda boxes: np.float64(3.0), [np.ones(2)])
    assert end_node is None and internals.backpropagate(1.0, end_node, roots) == {roots[0]: []}


def test_stop_gradient_cuts_the_trace():
    x = np.array([0.5, -1.5, 2.0])

    def f(v):
        return anp.sum(v * internals.stop_gradient(v))  # d/dv = stop(v), not 2v

    np.testing.assert_allclose(grad(f)(x), x)
    assert not internals.is_traced(internals.stop_gradient(x))


def test_value_of_and_is_traced_see_through_boxes():
    seen = {}

    def f(v):
        seen["traced"] = internals.is_traced(v)
        seen["value"] = internals.value_of(v)
        return anp.sum(v)

    x = np.arange(3.0)
    grad(f)(x)
    assert seen["traced"] and type(seen["value"]) is np.ndarray
    np.testing.assert_array_equal(seen["value"], x)
