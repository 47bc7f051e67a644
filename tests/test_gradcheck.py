"""Numerical gradients of functions whose gradients are known in closed form."""

import numpy as np
import pytest

from autocnn.tools.gradcheck import (eval_numerical_gradient, eval_numerical_gradient_array,
                               grad_check_sparse, rel_error)


def test_rel_error_formula():
    assert rel_error(np.array([1.0]), np.array([1.0])) == 0.0
    assert rel_error(np.array([1.0, 2.0]), np.array([3.0, 2.0])) == pytest.approx(0.5)
    # Both zero: the 1e-8 floor avoids 0 / 0.
    assert rel_error(np.zeros(3), np.zeros(3)) == 0.0
    assert rel_error(np.array([0.0]), np.array([1e-9])) == pytest.approx(0.1)


def test_gradient_of_sum_of_squares_and_x_restored(capsys):
    rng = np.random.RandomState(1)
    x = rng.randn(3, 4)
    original = x.copy()
    grad = eval_numerical_gradient(lambda a: np.sum(a**2), x, verbose=True)
    assert rel_error(grad, 2 * original) < 1e-8
    np.testing.assert_array_equal(x, original)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 12
    assert lines[0].startswith("(0, 0) ")


def test_gradient_of_nonlinear_function_quiet(capsys):
    rng = np.random.RandomState(2)
    x = rng.randn(5)
    grad = eval_numerical_gradient(lambda a: np.sum(np.sin(a) * a), x, verbose=False)
    assert rel_error(grad, np.cos(x) * x + np.sin(x)) < 1e-8
    assert capsys.readouterr().out == ""


def test_float32_input():
    rng = np.random.RandomState(3)
    x = rng.randn(2, 3).astype(np.float32)
    original = x.copy()
    # x + h and x - h round to float32; dividing by the step actually taken keeps
    # the result exact for a quadratic (a fixed 2h would be off by up to ~1e-4).
    grad = eval_numerical_gradient(lambda a: np.sum(a.astype(np.float64) ** 2), x, verbose=False, h=1e-3)
    assert rel_error(grad, 2 * original.astype(np.float64)) < 1e-9
    assert x.dtype == np.float32
    np.testing.assert_array_equal(x, original)


def test_gradient_array_of_elementwise_and_matrix_functions():
    rng = np.random.RandomState(4)
    x = rng.randn(3, 4)
    dout = rng.randn(3, 4)
    grad = eval_numerical_gradient_array(np.tanh, x, dout)
    assert rel_error(grad, dout * (1 - np.tanh(x) ** 2)) < 1e-8

    weights = rng.randn(4, 2)
    dout = rng.randn(3, 2)
    grad = eval_numerical_gradient_array(lambda a: a @ weights, x, dout)
    assert rel_error(grad, dout @ weights.T) < 1e-8


def test_gradient_array_when_f_returns_a_view_of_x():
    x = np.array([1.0, -2.0, 3.0])
    dout = np.array([0.5, 1.0, -1.0])
    grad = eval_numerical_gradient_array(lambda a: a, x, dout)
    assert rel_error(grad, dout) < 1e-8


def test_float32_gradient_array():
    x = np.array([[0.5, -1.5]], dtype=np.float32)
    dout = np.array([[1.0, 2.0]], dtype=np.float32)
    grad = eval_numerical_gradient_array(lambda a: 3 * a, x, dout, h=1e-3)
    # f itself rounds to float32 (about 1e-7 relative), which limits the accuracy.
    assert rel_error(grad, 3 * dout) < 1e-4


def test_grad_check_sparse_prints_classic_lines(capsys):
    rng = np.random.RandomState(5)
    x = rng.randn(10, 10)
    errors = grad_check_sparse(lambda a: np.sum(a**2), x, 2 * x, num_checks=4,
                               rng=np.random.RandomState(0))
    assert len(errors) == 4 and max(errors) < 1e-8
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 4
    for line in lines:
        assert line.startswith("numerical: ") and " analytic: " in line and ", relative error: " in line


def test_grad_check_sparse_reports_a_wrong_gradient(capsys):
    x = np.ones((2, 2))
    errors = grad_check_sparse(lambda a: np.sum(a**2), x, 3 * x, num_checks=2)
    assert min(errors) == pytest.approx(0.2)


def test_integer_input_is_refused():
    with pytest.raises(TypeError, match="floating point"):
        eval_numerical_gradient(np.sum, np.arange(3), verbose=False)
