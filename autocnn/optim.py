"""First-order update rules used by :class:`autocnn.solver.Solver`.

Every rule has the same contract as the notebook's ``optim.py``::

    next_w, config = update(w, dw, config)

Inputs:
- w: A numpy array of any shape holding the current weights.
- dw: A numpy array of the same shape as w holding the gradient of the loss
  with respect to w.
- config: A dictionary of hyperparameters (learning rate, momentum, ...) and
  the rule's running state (velocity, moment estimates, ...). If None, a new
  dictionary holding the classic default hyperparameters is created.

Returns a tuple of:
- next_w: The updated weights, a new array with the shape and dtype of w
  (w itself is left untouched, so a caller holding on to it is not surprised).
- config: The same dictionary, with its running state advanced one step. Pass
  it back in on the next call for this parameter.

Scalars in config are read through ``float()`` so that a learning rate stored
as ``np.float64`` and one stored as a Python float give bitwise the same
float32 update (numpy would otherwise promote float32 weights to float64).
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

UpdateRule = Callable[[np.ndarray, np.ndarray, "dict[str, Any] | None"], "tuple[np.ndarray, dict[str, Any]]"]


def _prepare(w: np.ndarray, dw: np.ndarray, config: dict[str, Any] | None,
             defaults: dict[str, Any]) -> dict[str, Any]:
    """Check that w and dw match and fill config with the defaults it lacks."""
    if np.shape(w) != np.shape(dw):
        raise ValueError(f"gradient shape {np.shape(dw)} does not match weight shape {np.shape(w)}")
    if config is None:
        config = {}
    for key, value in defaults.items():
        config.setdefault(key, value)
    return config


def _as_weight_dtype(value: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Return value in the dtype of w (float32 weights stay float32)."""
    return np.asarray(value).astype(np.asarray(w).dtype, copy=False)


def sgd(w: np.ndarray, dw: np.ndarray,
        config: dict[str, Any] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
    """
    Performs vanilla stochastic gradient descent: w <- w - learning_rate * dw.

    config format:
    - learning_rate: Scalar learning rate (default 1e-2).
    """
    config = _prepare(w, dw, config, {"learning_rate": 1e-2})
    learning_rate = float(config["learning_rate"])
    next_w = w - learning_rate * dw
    return _as_weight_dtype(next_w, w), config


def sgd_momentum(w: np.ndarray, dw: np.ndarray,
                 config: dict[str, Any] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
    """
    Performs stochastic gradient descent with momentum:

        v <- momentum * v - learning_rate * dw
        w <- w + v

    config format:
    - learning_rate: Scalar learning rate (default 1e-2).
    - momentum: Scalar between 0 and 1 giving the momentum value; 0 turns this
      into plain sgd (default 0.9).
    - velocity: A numpy array of the same shape as w and dw used to store a
      moving average of the gradients (created as zeros on the first call).
    """
    config = _prepare(w, dw, config, {"learning_rate": 1e-2, "momentum": 0.9})
    learning_rate = float(config["learning_rate"])
    momentum = float(config["momentum"])
    velocity = config.get("velocity")
    if velocity is None:
        velocity = np.zeros_like(w)

    velocity = _as_weight_dtype(momentum * velocity - learning_rate * dw, w)
    next_w = _as_weight_dtype(w + velocity, w)

    config["velocity"] = velocity
    return next_w, config


def rmsprop(w: np.ndarray, dw: np.ndarray,
            config: dict[str, Any] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
    """
    Uses the RMSProp update rule, which uses a moving average of squared
    gradient values to set adaptive per-parameter learning rates:

        cache <- decay_rate * cache + (1 - decay_rate) * dw**2
        w <- w - learning_rate * dw / (sqrt(cache) + epsilon)

    config format:
    - learning_rate: Scalar learning rate (default 1e-2).
    - decay_rate: Scalar between 0 and 1 giving the decay rate for the squared
      gradient cache (default 0.99).
    - epsilon: Small scalar used for smoothing to avoid dividing by zero
      (default 1e-8).
    - cache: Moving average of second moments of gradients, same shape as w
      (created as zeros on the first call).
    """
    config = _prepare(w, dw, config,
                      {"learning_rate": 1e-2, "decay_rate": 0.99, "epsilon": 1e-8})
    learning_rate = float(config["learning_rate"])
    decay_rate = float(config["decay_rate"])
    epsilon = float(config["epsilon"])
    cache = config.get("cache")
    if cache is None:
        cache = np.zeros_like(w)

    cache = _as_weight_dtype(decay_rate * cache + (1.0 - decay_rate) * dw * dw, w)
    next_w = _as_weight_dtype(w - learning_rate * dw / (np.sqrt(cache) + epsilon), w)

    config["cache"] = cache
    return next_w, config


def adam(w: np.ndarray, dw: np.ndarray,
         config: dict[str, Any] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
    """
    Uses the Adam update rule, which keeps moving averages of both the
    gradients and their squares, with a bias correction term:

        t <- t + 1
        m <- beta1 * m + (1 - beta1) * dw
        v <- beta2 * v + (1 - beta2) * dw**2
        m_hat <- m / (1 - beta1**t);  v_hat <- v / (1 - beta2**t)
        w <- w - learning_rate * m_hat / (sqrt(v_hat) + epsilon)

    The step counter t is incremented before use, so the first update has
    t = 1 and the bias correction divides by (1 - beta1) and (1 - beta2).

    config format:
    - learning_rate: Scalar learning rate (default 1e-3).
    - beta1: Decay rate for the moving average of the first moment of the
      gradient (default 0.9).
    - beta2: Decay rate for the moving average of the second moment of the
      gradient (default 0.999).
    - epsilon: Small scalar used for smoothing to avoid dividing by zero
      (default 1e-8).
    - m: Moving average of the gradient, same shape as w (zeros at first).
    - v: Moving average of the squared gradient, same shape as w (zeros at first).
    - t: Number of updates made so far, an int (0 at first).
    """
    config = _prepare(w, dw, config,
                      {"learning_rate": 1e-3, "beta1": 0.9, "beta2": 0.999,
                       "epsilon": 1e-8, "t": 0})
    learning_rate = float(config["learning_rate"])
    beta1 = float(config["beta1"])
    beta2 = float(config["beta2"])
    epsilon = float(config["epsilon"])
    first_moment = config.get("m")
    if first_moment is None:
        first_moment = np.zeros_like(w)
    second_moment = config.get("v")
    if second_moment is None:
        second_moment = np.zeros_like(w)
    step = int(config["t"]) + 1

    first_moment = _as_weight_dtype(beta1 * first_moment + (1.0 - beta1) * dw, w)
    second_moment = _as_weight_dtype(beta2 * second_moment + (1.0 - beta2) * dw * dw, w)
    # Early on m and v are biased towards their zero start; undo that.
    first_unbiased = first_moment / (1.0 - beta1 ** step)
    second_unbiased = second_moment / (1.0 - beta2 ** step)
    next_w = _as_weight_dtype(
        w - learning_rate * first_unbiased / (np.sqrt(second_unbiased) + epsilon), w)

    config["m"] = first_moment
    config["v"] = second_moment
    config["t"] = step
    return next_w, config


#: The update rules a :class:`~autocnn.solver.Solver` accepts by name.
UPDATE_RULES: dict[str, UpdateRule] = {
    "sgd": sgd,
    "sgd_momentum": sgd_momentum,
    "rmsprop": rmsprop,
    "adam": adam,
}
