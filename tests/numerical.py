"""Tiny centred-difference gradient helpers for the reference/ tests (numpy only).

Kept local on purpose: the reference layers are the oracle for autocnn, so their
tests must not depend on anything autocnn provides.

The differences are taken in x87 extended precision (np.longdouble, 64-bit mantissa)
where the machine has it: the perturbed input is a long-double copy, so every op that
touches it runs in long double, without BLAS. Rounding in the difference quotient is
then ~eps_ld * |f| / h ~ 1e-13 at h = 1e-6 (against ~1e-11 in float64 at h = 1e-5, the
error that made batchnorm's near-zero entries miss 1e-6 under some BLAS kernels), and
the truncation error ~h^2 |f'''| ~ 1e-12: the numerical side is accurate to ~1e-10
relative, so the tests' tolerances bound the analytic gradient's error, not the
finite difference's.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

#: Whether np.longdouble carries more precision than float64 on this machine.
EXTENDED_PRECISION = np.finfo(np.longdouble).eps < np.finfo(np.float64).eps
#: Default step: balances truncation (~h^2) against rounding (~eps / h) for the precision used.
DEFAULT_STEP = 1e-6 if EXTENDED_PRECISION else 1e-5


def numerical_gradient_array(
    f: Callable[[np.ndarray], np.ndarray], x: np.ndarray, df: np.ndarray, h: float | None = None,
    extended: bool = True,
) -> np.ndarray:
    """
    Centred-difference estimate of d/dx sum(f(x) * df), i.e. the gradient that a
    backward pass receiving upstream gradient df should return for x.

    With extended (the default) and a float64 x on a machine with x87 long double, f is
    called with a long-double copy of x; otherwise x itself is perturbed in place one
    element at a time and restored afterwards. The result has x's dtype.
    """
    use_extended = extended and EXTENDED_PRECISION and x.dtype == np.float64
    h = (DEFAULT_STEP if use_extended else 1e-5) if h is None else h
    work = x.astype(np.longdouble) if use_extended else x
    weights = np.asarray(df, dtype=np.longdouble) if use_extended else df
    grad = np.zeros(x.shape, dtype=work.dtype)
    for index in np.ndindex(*x.shape):
        original = work[index]
        work[index] = original + h
        f_plus = np.array(f(work), copy=True)  # copy: f may return a view of x
        work[index] = original - h
        f_minus = np.array(f(work), copy=True)
        work[index] = original
        grad[index] = np.sum((f_plus - f_minus) * weights) / (2 * h)
    return grad.astype(x.dtype)


def numerical_gradient(f: Callable[[np.ndarray], float], x: np.ndarray, h: float | None = None,
                       extended: bool = True) -> np.ndarray:
    """Centred-difference gradient of a scalar function f at x."""
    return numerical_gradient_array(f, x, np.float64(1.0), h, extended)


def rel_error(x: np.ndarray, y: np.ndarray) -> float:
    """Maximum elementwise relative error, with a 1e-8 floor on the denominator."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    return float(np.max(np.abs(x - y) / np.maximum(1e-8, np.abs(x) + np.abs(y))))


#: How far apart a correct gradient and its difference quotient can be in absolute terms,
#: with unit-size inputs and upstream gradients: the quotient's rounding, ~eps * sum|f df| / h,
#: is ~1e-12 for a few dozen outputs in extended precision (~1e-10 without); 10x margin.
NUMERICAL_ATOL = 1e-11 if EXTENDED_PRECISION else 1e-9


def close_to_numerical(analytic: np.ndarray, numeric: np.ndarray, tol: float = 1e-7) -> bool:
    """
    rel_error(analytic, numeric) < tol, or every entry within tol of the gradient's largest
    entry (or within NUMERICAL_ATOL).

    For the normalisations: their gradients have entries that cancel to far below the
    others (each row or group of dx sums to zero; two values a row normalises to nearly
    +-1 leave it nearly flat), where the quotient's own error, ~1e-12 absolute from rounding
    and up to ~1e-9 from truncation on narrow rows, is what the elementwise ratio measures.
    """
    if rel_error(analytic, numeric) < tol:
        return True
    difference = np.abs(np.asarray(analytic, np.float64) - np.asarray(numeric, np.float64))
    scale = float(np.max(np.abs(np.asarray(numeric, np.float64)), initial=0.0))
    return float(np.max(difference, initial=0.0)) < max(tol * scale, NUMERICAL_ATOL)
