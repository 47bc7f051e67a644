"""Numerical gradients by centred differences, to check analytic gradients.

These mirror the notebook's ``utils/gradient_check.py``. Each function perturbs
its input array x in place, one element at a time, and always puts the original
value back, so x is unchanged afterwards (even if f raises).

Numerical gradients are returned as float64 arrays. For float32 inputs the
difference quotient divides by the step actually stored in x (x + h and x - h
are rounded to float32), which removes most of the error a fixed 2h would add;
float32 still needs a larger h (about 1e-3 to 1e-2) than float64 because f
itself is only accurate to about 1e-7 relative.
"""

from __future__ import annotations

from typing import Callable

import numpy as np


def _check_perturbable(x: np.ndarray) -> None:
    if not isinstance(x, np.ndarray) or not np.issubdtype(x.dtype, np.floating):
        raise TypeError(f"x must be a floating point numpy array to perturb it, got "
                        f"{type(x).__name__} of dtype {getattr(x, 'dtype', None)}")
    if not x.flags.writeable:
        raise ValueError("x must be writeable: the gradient check perturbs it in place")


def _centred_difference(f: Callable[[np.ndarray], object], x: np.ndarray, index: tuple,
                        h: float, reduce: Callable[[object, object], float]) -> float:
    """
    Return reduce(f(x + h e_i), f(x - h e_i)) / (step actually taken) at one index.

    reduce turns the two outputs into their (float64) difference; the outputs
    are copied first because f may return a view of x.
    """
    old_value = x[index]
    try:
        x[index] = old_value + h
        plus_value = float(x[index])
        output_plus = np.array(f(x), dtype=np.float64, copy=True)
        x[index] = old_value - h
        minus_value = float(x[index])
        output_minus = np.array(f(x), dtype=np.float64, copy=True)
    finally:
        x[index] = old_value
    return reduce(output_plus, output_minus) / (plus_value - minus_value)


def eval_numerical_gradient(f: Callable[[np.ndarray], float], x: np.ndarray,
                            verbose: bool = True, h: float = 1e-5) -> np.ndarray:
    """
    A naive implementation of the numerical gradient of f at x.

    Inputs:
    - f: A function that takes a single argument (the array x) and returns a scalar.
    - x: A floating point numpy array of any shape; the point at which to
      evaluate the gradient. It is perturbed in place and restored.
    - verbose: If True, print each index and its gradient as it is computed.
    - h: Step size of the centred difference.

    Returns:
    - grad: A float64 numpy array of the same shape as x with df/dx.
    """
    _check_perturbable(x)
    grad = np.zeros(x.shape, dtype=np.float64)
    iterator = np.nditer(x, flags=["multi_index"], op_flags=[["readwrite"]])
    while not iterator.finished:
        index = iterator.multi_index
        grad[index] = _centred_difference(f, x, index, h, lambda plus, minus: float(plus - minus))
        if verbose:
            print(index, grad[index])
        iterator.iternext()
    return grad


def eval_numerical_gradient_array(f: Callable[[np.ndarray], np.ndarray], x: np.ndarray,
                                  df: np.ndarray, h: float = 1e-5) -> np.ndarray:
    """
    Evaluate a numeric gradient for a function that accepts a numpy array and
    returns a numpy array, contracted with the upstream gradient df.

    Inputs:
    - f: A function that takes the array x and returns an array out.
    - x: A floating point numpy array; perturbed in place and restored.
    - df: Upstream gradient dL/dout, of the same shape as f(x).
    - h: Step size of the centred difference.

    Returns:
    - grad: A float64 numpy array of the same shape as x with
      dL/dx = sum(df * dout/dx).
    """
    _check_perturbable(x)
    upstream = np.asarray(df, dtype=np.float64)
    grad = np.zeros(x.shape, dtype=np.float64)
    iterator = np.nditer(x, flags=["multi_index"], op_flags=[["readwrite"]])
    while not iterator.finished:
        index = iterator.multi_index
        grad[index] = _centred_difference(
            f, x, index, h, lambda plus, minus: float(np.sum((plus - minus) * upstream)))
        iterator.iternext()
    return grad


def rel_error(x: np.ndarray, y: np.ndarray) -> float:
    """
    Returns the maximum relative error between x and y:
    max(|x - y| / max(1e-8, |x| + |y|)), elementwise, computed in float64.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    return float(np.max(np.abs(x - y) / np.maximum(1e-8, np.abs(x) + np.abs(y))))


def grad_check_sparse(f: Callable[[np.ndarray], float], x: np.ndarray, analytic_grad: np.ndarray,
                      num_checks: int = 10, h: float = 1e-5,
                      rng: np.random.RandomState | np.random.Generator | None = None) -> list[float]:
    """
    Sample a few random elements and compare the numerical gradient with the
    analytic one in those dimensions only, printing one line per check:
    'numerical: %f analytic: %f, relative error: %e'.

    Inputs:
    - f: A function that takes the array x and returns a scalar.
    - x: A floating point numpy array; perturbed in place and restored.
    - analytic_grad: Array of the same shape as x with the gradient to check.
    - num_checks: How many random elements to check.
    - h: Step size of the centred difference.
    - rng: Source of the random indices; None uses the global np.random, so
      np.random.seed() makes the choice reproducible.

    Returns:
    - errors: List of the num_checks relative errors (see rel_error).
    """
    _check_perturbable(x)
    if np.shape(analytic_grad) != x.shape:
        raise ValueError(f"analytic_grad has shape {np.shape(analytic_grad)} but x has shape {x.shape}")
    if rng is None:
        draw = np.random.randint
    else:
        draw = rng.integers if isinstance(rng, np.random.Generator) else rng.randint

    errors = []
    for _ in range(num_checks):
        index = tuple(int(draw(0, size)) for size in x.shape)
        numerical = _centred_difference(f, x, index, h, lambda plus, minus: float(plus - minus))
        analytic = float(analytic_grad[index])
        error = rel_error(numerical, analytic)
        print("numerical: %f analytic: %f, relative error: %e" % (numerical, analytic, error))
        errors.append(error)
    return errors
