"""Tiny centred-difference gradient helpers for the reference/ tests (numpy only).

Kept local on purpose: the reference layers are the oracle for autocnn, so their
tests must not depend on anything autocnn provides.
"""

from __future__ import annotations

from typing import Callable

import numpy as np


def numerical_gradient_array(
    f: Callable[[np.ndarray], np.ndarray], x: np.ndarray, df: np.ndarray, h: float = 1e-5
) -> np.ndarray:
    """
    Centred-difference estimate of d/dx sum(f(x) * df), i.e. the gradient that a
    backward pass receiving upstream gradient df should return for x.

    x is perturbed in place one element at a time and restored afterwards.
    """
    grad = np.zeros_like(x)
    for index in np.ndindex(*x.shape):
        original = x[index]
        x[index] = original + h
        f_plus = np.array(f(x), copy=True)  # copy: f may return a view of x
        x[index] = original - h
        f_minus = np.array(f(x), copy=True)
        x[index] = original
        grad[index] = np.sum((f_plus - f_minus) * df) / (2 * h)
    return grad


def numerical_gradient(f: Callable[[np.ndarray], float], x: np.ndarray, h: float = 1e-5) -> np.ndarray:
    """Centred-difference gradient of a scalar function f at x."""
    return numerical_gradient_array(f, x, np.float64(1.0), h)


def rel_error(x: np.ndarray, y: np.ndarray) -> float:
    """Maximum elementwise relative error, with a 1e-8 floor on the denominator."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    return float(np.max(np.abs(x - y) / np.maximum(1e-8, np.abs(x) + np.abs(y))))
