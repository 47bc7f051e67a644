"""First-order update rules used by :class:`autocnn.training.solver.Solver`.

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

The running state (velocity, cache, m, v) is advanced in place: the arrays in config
are the rule's own from the first call on, as the notebook's loop passes config back
each step. A state array handed in with another dtype or memory layout than w is
first copied to w's dtype, C order.

Scalars in config are read through ``float()`` so that a learning rate stored
as ``np.float64`` and one stored as a Python float give bitwise the same
float32 update (numpy would otherwise promote float32 weights to float64).

Each rule is a few elementwise lines of numpy run block by block (``autocnn.core.blockwise``),
so the temporaries stay in cache instead of making a pass through memory per line; the
result is bitwise that of the whole-array formulas (tested).
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from autocnn.core.blockwise import for_each_block

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


def _state(config: dict[str, Any], key: str, w: np.ndarray) -> np.ndarray:
    """config[key] as an array the rule may update in place (zeros if absent), stored back in config."""
    state = config.get(key)
    if state is None:
        state = np.zeros(w.shape, w.dtype)
    elif np.shape(state) != w.shape:
        raise ValueError(f"config['{key}'] has shape {np.shape(state)}, but the weights have shape {w.shape}")
    elif not (isinstance(state, np.ndarray) and state.dtype == w.dtype and state.flags.c_contiguous
              and state.flags.writeable):
        state = np.array(state, dtype=w.dtype, order="C")
    config[key] = state
    return state


def _blockwise(update: Callable[..., None], w: np.ndarray, dw: np.ndarray, *state: np.ndarray) -> np.ndarray:
    """
    Run update(w, dw, *state, next_w) on matching blocks of the flattened arrays
    (autocnn.core.blockwise: cache-sized blocks, two threads for large arrays).

    update reads blocks of w and dw, advances the state blocks in place and writes the
    block of the new weights into next_w (also in place). Returns next_w, a new array.
    """
    w = np.asarray(w)
    dw = np.asarray(dw).astype(w.dtype, copy=False)
    next_w = np.empty(w.shape, w.dtype)
    # ravel may copy the read-only w and dw; the state and next_w are C-contiguous, so
    # reshape gives views of the memory the blocks must write.
    for_each_block(update, np.ravel(w), np.ravel(dw), *(a.reshape(-1) for a in (*state, next_w)))
    return next_w


def sgd(w: np.ndarray, dw: np.ndarray,
        config: dict[str, Any] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
    """
    Performs vanilla stochastic gradient descent: w <- w - learning_rate * dw.

    config format:
    - learning_rate: Scalar learning rate (default 1e-2).
    """
    config = _prepare(w, dw, config, {"learning_rate": 1e-2})
    learning_rate = float(config["learning_rate"])

    def update(w, dw, next_w):
        np.subtract(w, learning_rate * dw, out=next_w)

    return _blockwise(update, w, dw), config


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

    def update(w, dw, velocity, next_w):
        velocity *= momentum
        velocity -= learning_rate * dw
        np.add(w, velocity, out=next_w)

    return _blockwise(update, w, dw, _state(config, "velocity", w)), config


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

    def update(w, dw, cache, next_w):
        cache *= decay_rate
        cache += (1.0 - decay_rate) * dw * dw
        np.subtract(w, learning_rate * dw / (np.sqrt(cache) + epsilon), out=next_w)

    return _blockwise(update, w, dw, _state(config, "cache", w)), config


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
    step = int(config["t"]) + 1
    # Early on m and v are biased towards their zero start; dividing by these undoes that.
    m_correction, v_correction = 1.0 - beta1 ** step, 1.0 - beta2 ** step

    def update(w, dw, m, v, next_w):
        # The formulas above, operation for operation, written into the state, next_w's block
        # and one scratch block: no other temporaries.
        scratch = np.empty_like(m)
        m *= beta1
        m += np.multiply(dw, 1.0 - beta1, out=scratch)  # m <- beta1 * m + (1 - beta1) * dw
        v *= beta2
        np.multiply(dw, 1.0 - beta2, out=scratch)
        scratch *= dw
        v += scratch  # v <- beta2 * v + (1 - beta2) * dw * dw
        np.divide(v, v_correction, out=scratch)
        np.sqrt(scratch, out=scratch)
        scratch += epsilon  # sqrt(v_hat) + epsilon
        np.divide(m, m_correction, out=next_w)
        next_w *= learning_rate
        next_w /= scratch  # learning_rate * m_hat / (sqrt(v_hat) + epsilon)
        np.subtract(w, next_w, out=next_w)

    next_w = _blockwise(update, w, dw, _state(config, "m", w), _state(config, "v", w))
    config["t"] = step
    return next_w, config


#: The update rules a :class:`~autocnn.training.solver.Solver` accepts by name.
UPDATE_RULES: dict[str, UpdateRule] = {
    "sgd": sgd,
    "sgd_momentum": sgd_momentum,
    "rmsprop": rmsprop,
    "adam": adam,
}
