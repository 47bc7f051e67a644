"""Hand-written fully connected layers, normalisation, dropout and losses (numpy only).

Every layer is a pair: ``*_forward`` returns ``(out, cache)`` and ``*_backward`` takes the
upstream gradient plus that cache and returns the gradients of the forward inputs.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .validation import (
    check_affine,
    check_batchnorm,
    check_cache,
    check_dout,
    check_dropout,
    check_float_array,
    check_layernorm,
    check_scores_and_labels,
)

# ---------------------------------------------------------------------------
# Affine
# ---------------------------------------------------------------------------


__all__ = ["affine_forward", "affine_backward", "relu_forward", "relu_backward", "batchnorm_forward",
           "batchnorm_backward", "batchnorm_backward_alt", "layernorm_forward", "layernorm_backward",
           "dropout_forward", "dropout_backward", "svm_loss", "softmax_loss"]


def affine_forward(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, tuple]:
    """
    Computes the forward pass of an affine (fully connected) layer.

    Each example x[i] of shape (d_1, ..., d_k) is flattened into a vector of
    dimension D = d_1 * ... * d_k before being multiplied by w.

    Inputs:
    - x: Input data of shape (N, d_1, ..., d_k)
    - w: Weights of shape (D, M)
    - b: Biases of shape (M,)

    Returns a tuple of:
    - out: Output of shape (N, M), out = x_flat @ w + b
    - cache: (x, w, b)
    """
    check_affine(x, w, b)
    out = x.reshape(x.shape[0], -1) @ w + b
    return out, (x, w, b)


def affine_backward(dout: np.ndarray, cache: tuple) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """
    Computes the backward pass of an affine layer.

    Inputs:
    - dout: Upstream derivative of shape (N, M)
    - cache: (x, w, b) from affine_forward

    Returns a tuple of:
    - dx: Gradient with respect to x, of shape (N, d_1, ..., d_k)
    - dw: Gradient with respect to w, of shape (D, M)
    - db: Gradient with respect to b, of shape (M,)
    """
    check_cache(cache, "affine_forward", length=3)
    x, w, _ = cache
    check_dout(dout, (x.shape[0], w.shape[1]))
    x_flat = x.reshape(x.shape[0], -1)
    dx = (dout @ w.T).reshape(x.shape)
    dw = x_flat.T @ dout
    db = dout.sum(axis=0)
    return dx, dw, db


# ---------------------------------------------------------------------------
# ReLU
# ---------------------------------------------------------------------------


def relu_forward(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """
    Computes the forward pass of a rectified linear unit, max(0, x).

    Inputs:
    - x: Input of any shape

    Returns a tuple of:
    - out: Output, of the same shape as x
    - cache: x
    """
    check_float_array("x", x)
    return np.maximum(x, 0), x


def relu_backward(dout: np.ndarray, cache: np.ndarray) -> np.ndarray:
    """
    Computes the backward pass of a ReLU. The subgradient at x == 0 is taken as 0.

    Inputs:
    - dout: Upstream derivative, of any shape
    - cache: Input x, of the same shape as dout

    Returns:
    - dx: Gradient with respect to x
    """
    check_cache(cache, "relu_forward")
    x = cache
    check_dout(dout, x.shape)
    return dout * (x > 0)


# ---------------------------------------------------------------------------
# Batch normalisation
# ---------------------------------------------------------------------------


def batchnorm_forward(
    x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, bn_param: dict
) -> tuple[np.ndarray, dict]:
    """
    Forward pass for batch normalisation.

    In train mode the batch is normalised with its own mean and biased variance,
    and exponentially decaying running averages are kept in bn_param:

        running_mean = momentum * running_mean + (1 - momentum) * batch_mean
        running_var  = momentum * running_var  + (1 - momentum) * batch_var

    In test mode the running averages are used instead of batch statistics.

    Inputs:
    - x: Data of shape (N, D)
    - gamma: Scale parameter of shape (D,)
    - beta: Shift parameter of shape (D,)
    - bn_param: Dictionary with the following keys:
      - mode: 'train' or 'test'; required
      - eps: Constant for numeric stability, default 1e-5
      - momentum: Constant for running mean / variance, default 0.9
      - running_mean: Array of shape (D,); created as zeros on first use
      - running_var: Array of shape (D,); created as zeros on first use

    Returns a tuple of:
    - out: Normalised, scaled and shifted data of shape (N, D)
    - cache: Values needed by batchnorm_backward / batchnorm_backward_alt
    """
    check_batchnorm(x, gamma, beta, bn_param)
    mode = bn_param["mode"]
    eps = bn_param.get("eps", 1e-5)
    momentum = bn_param.get("momentum", 0.9)

    num_features = x.shape[1]
    running_mean = bn_param.get("running_mean", np.zeros(num_features, dtype=x.dtype))
    running_var = bn_param.get("running_var", np.zeros(num_features, dtype=x.dtype))

    if mode == "train":
        batch_mean = x.mean(axis=0)
        centered = x - batch_mean
        batch_var = np.mean(centered * centered, axis=0)  # biased, same as np.var
        inv_std = 1.0 / np.sqrt(batch_var + eps)
        x_hat = centered * inv_std

        running_mean = momentum * running_mean + (1 - momentum) * batch_mean
        running_var = momentum * running_var + (1 - momentum) * batch_var
    else:  # "test", the only other mode check_batchnorm lets through
        inv_std = 1.0 / np.sqrt(running_var + eps)
        centered = x - running_mean
        x_hat = centered * inv_std

    # Keep the running statistics in x's dtype even if momentum was a float64 scalar.
    bn_param["running_mean"] = running_mean.astype(x.dtype, copy=False)
    bn_param["running_var"] = running_var.astype(x.dtype, copy=False)

    out = gamma * x_hat + beta
    cache = {"mode": mode, "x_hat": x_hat, "centered": centered, "inv_std": inv_std, "gamma": gamma}
    return out, cache


def _batchnorm_param_grads(dout: np.ndarray, cache: dict) -> tuple[np.ndarray, np.ndarray]:
    """Gradients of out = gamma * x_hat + beta with respect to gamma and beta (after checking dout)."""
    check_cache(cache, "batchnorm_forward", key="x_hat")
    check_dout(dout, cache["x_hat"].shape)
    dgamma = np.sum(dout * cache["x_hat"], axis=0)
    dbeta = dout.sum(axis=0)
    return dgamma, dbeta


def batchnorm_backward(dout: np.ndarray, cache: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """
    Backward pass for batch normalisation, walking the computational graph
    x -> centered -> var -> inv_std -> x_hat -> out one node at a time.

    Inputs:
    - dout: Upstream derivatives, of shape (N, D)
    - cache: Cache from batchnorm_forward

    Returns a tuple of:
    - dx: Gradient with respect to inputs x, of shape (N, D)
    - dgamma: Gradient with respect to scale parameter gamma, of shape (D,)
    - dbeta: Gradient with respect to shift parameter beta, of shape (D,)
    """
    dgamma, dbeta = _batchnorm_param_grads(dout, cache)
    inv_std, centered = cache["inv_std"], cache["centered"]
    dx_hat = dout * cache["gamma"]

    if cache["mode"] == "test":
        # Running statistics are constants, so the layer is affine in x.
        return dx_hat * inv_std, dgamma, dbeta

    num_examples = dout.shape[0]
    # x_hat = centered * inv_std
    dcentered = dx_hat * inv_std
    dinv_std = np.sum(dx_hat * centered, axis=0)
    # inv_std = (var + eps) ** -1/2
    dvar = -0.5 * inv_std**3 * dinv_std
    # var = mean(centered ** 2)
    dcentered += (2.0 / num_examples) * centered * dvar
    # centered = x - mean(x)
    dmean = -dcentered.sum(axis=0)
    dx = dcentered + dmean / num_examples
    return dx, dgamma, dbeta


def batchnorm_backward_alt(
    dout: np.ndarray, cache: dict
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """
    Backward pass for batch normalisation with dx in simplified closed form:

        dx = gamma * inv_std / N * (N * dout - sum(dout) - x_hat * sum(dout * x_hat))

    Inputs / outputs: same as batchnorm_backward.
    """
    dgamma, dbeta = _batchnorm_param_grads(dout, cache)
    gamma, inv_std, x_hat = cache["gamma"], cache["inv_std"], cache["x_hat"]

    if cache["mode"] == "test":
        return dout * gamma * inv_std, dgamma, dbeta

    num_examples = dout.shape[0]
    # dbeta = sum(dout) and dgamma = sum(dout * x_hat): the two batch-coupling terms.
    dx = (gamma * inv_std / num_examples) * (num_examples * dout - dbeta - x_hat * dgamma)
    return dx, dgamma, dbeta


# ---------------------------------------------------------------------------
# Layer normalisation
# ---------------------------------------------------------------------------


def _normalize_rows(rows: np.ndarray, eps: float) -> tuple[np.ndarray, np.ndarray]:
    """
    Normalise each row of a 2-D array over its own entries (layernorm; groupnorm's groups).

    Inputs:
    - rows: Array of shape (R, M)
    - eps: Added to each row's biased variance

    Returns a tuple of:
    - x_hat: (rows - row mean) / sqrt(row var + eps), of shape (R, M)
    - inv_std: 1 / sqrt(row var + eps), of shape (R, 1)
    """
    centered = rows - rows.mean(axis=1, keepdims=True)
    inv_std = 1.0 / np.sqrt(np.mean(centered * centered, axis=1, keepdims=True) + eps)
    return centered * inv_std, inv_std


def _normalize_rows_backward(dx_hat: np.ndarray, x_hat: np.ndarray, inv_std: np.ndarray) -> np.ndarray:
    """
    Gradient through `_normalize_rows`, given the gradient dx_hat of its x_hat.

    Per row, with M entries: x_hat = c * s, c = x - mean(x), s = (mean(c^2) + eps)^-1/2.
    A change dx moves c by dx - mean(dx) and s by -s^3 mean(c * dc), so

        dx = s * (dx_hat - mean(dx_hat) - x_hat * mean(dx_hat * x_hat))

    (mean(x_hat) = 0 makes the mean-of-dx term of c drop out of the last product).

    Inputs:
    - dx_hat, x_hat: Arrays of shape (R, M)
    - inv_std: Array of shape (R, 1), from _normalize_rows

    Returns:
    - dx: Array of shape (R, M)
    """
    mean_dx_hat = dx_hat.mean(axis=1, keepdims=True)
    mean_projection = np.mean(dx_hat * x_hat, axis=1, keepdims=True)
    return inv_std * (dx_hat - mean_dx_hat - x_hat * mean_projection)


def layernorm_forward(
    x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, ln_param: dict
) -> tuple[np.ndarray, dict]:
    """
    Forward pass for layer normalisation: each example (row) is normalised over its
    own features, then every feature is scaled and shifted. There are no running
    statistics, and train and test time compute the same thing.

    Inputs:
    - x: Data of shape (N, D)
    - gamma: Scale parameter of shape (D,)
    - beta: Shift parameter of shape (D,)
    - ln_param: Dictionary with the following keys:
      - eps: Constant for numeric stability, default 1e-5
      (any other key, such as a 'mode' set by a model, is ignored)

    Returns a tuple of:
    - out: Of shape (N, D)
    - cache: Values needed by layernorm_backward
    """
    check_layernorm(x, gamma, beta, ln_param)
    x_hat, inv_std = _normalize_rows(x, ln_param.get("eps", 1e-5))
    out = gamma * x_hat + beta
    return out, {"row_x_hat": x_hat, "row_inv_std": inv_std, "gamma": gamma}


def layernorm_backward(dout: np.ndarray, cache: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """
    Backward pass for layer normalisation.

    Inputs:
    - dout: Upstream derivatives, of shape (N, D)
    - cache: Cache from layernorm_forward

    Returns a tuple of:
    - dx: Gradient with respect to x, of shape (N, D)
    - dgamma: Gradient with respect to gamma, of shape (D,)
    - dbeta: Gradient with respect to beta, of shape (D,)
    """
    check_cache(cache, "layernorm_forward", key="row_x_hat")
    x_hat = cache["row_x_hat"]
    check_dout(dout, x_hat.shape)
    dgamma = np.sum(dout * x_hat, axis=0)
    dbeta = dout.sum(axis=0)
    dx = _normalize_rows_backward(dout * cache["gamma"], x_hat, cache["row_inv_std"])
    return dx, dgamma, dbeta


# ---------------------------------------------------------------------------
# Dropout
# ---------------------------------------------------------------------------


def dropout_forward(x: np.ndarray, dropout_param: dict) -> tuple[np.ndarray, tuple]:
    """
    Forward pass for inverted dropout.

    A unit is KEPT with probability p; kept units are scaled by 1 / p at train time
    so that nothing needs to change at test time. The mask is drawn as
    ``rng.rand(*x.shape) < p`` where rng is ``np.random.RandomState(seed)`` if a seed
    is given and the global ``np.random`` otherwise.

    Inputs:
    - x: Input data, of any shape
    - dropout_param: A dictionary with the following keys:
      - p: Probability of keeping each unit
      - mode: 'test' or 'train'. In test mode the input is returned unchanged.
      - seed: Optional seed for the random number generator, making the mask
        deterministic (used for gradient checking).

    Returns a tuple of:
    - out: Array of the same shape and dtype as x
    - cache: (dropout_param, keep_mask); in test mode keep_mask keeps every unit (a
      read-only all-True view of x's shape, so nothing is allocated)
    """
    check_dropout(x, dropout_param)
    p, mode = dropout_param["p"], dropout_param["mode"]
    seed = dropout_param.get("seed")
    rng = np.random.RandomState(seed) if seed is not None else np.random

    if mode == "train":
        keep_mask = rng.rand(*x.shape) < p
        out = (x * keep_mask / p).astype(x.dtype, copy=False)
    else:  # "test", the only other mode check_dropout lets through
        # Kept for its shape, which dropout_backward checks dout against.
        keep_mask = np.broadcast_to(np.True_, x.shape)
        out = x

    return out, (dropout_param, keep_mask)


def dropout_backward(dout: np.ndarray, cache: tuple) -> np.ndarray:
    """
    Backward pass for inverted dropout.

    Inputs:
    - dout: Upstream derivatives, of any shape
    - cache: (dropout_param, keep_mask) from dropout_forward

    Returns:
    - dx: Gradient with respect to x, same shape and dtype as dout
    """
    check_cache(cache, "dropout_forward", length=2)
    dropout_param, keep_mask = cache
    check_dout(dout, keep_mask.shape)
    if dropout_param["mode"] == "test":
        return dout
    return (dout * keep_mask / dropout_param["p"]).astype(dout.dtype, copy=False)


# ---------------------------------------------------------------------------
# Losses
# ---------------------------------------------------------------------------


def svm_loss(x: np.ndarray, y: np.ndarray) -> tuple[Any, np.ndarray]:
    """
    Computes the loss and gradient for the multiclass SVM (hinge) loss with margin 1:

        L = 1/N sum_i sum_{j != y_i} max(0, x[i, j] - x[i, y_i] + 1)

    Inputs:
    - x: Input data of shape (N, C) where x[i, j] is the score for the jth class
      for the ith input
    - y: Vector of integer labels of shape (N,) where 0 <= y[i] < C

    Returns a tuple of:
    - loss: Scalar giving the loss
    - dx: Gradient of the loss with respect to x, of shape (N, C)
    """
    check_scores_and_labels(x, y)
    num_examples = x.shape[0]
    rows = np.arange(num_examples)
    # Only score differences enter, so large scores cannot overflow anything.
    correct_scores = x[rows, y][:, None]
    margins = np.maximum(0, x - correct_scores + 1)
    margins[rows, y] = 0
    loss = margins.sum() / num_examples

    violated = margins > 0
    dx = violated.astype(x.dtype)
    # The correct class score is subtracted once for every violated margin.
    dx[rows, y] -= violated.sum(axis=1)
    dx /= num_examples
    return loss, dx


def softmax_loss(x: np.ndarray, y: np.ndarray) -> tuple[Any, np.ndarray]:
    """
    Computes the loss and gradient for softmax classification (mean cross-entropy).

    Inputs:
    - x: Input data of shape (N, C) where x[i, j] is the score for the jth class
      for the ith input
    - y: Vector of integer labels of shape (N,) where 0 <= y[i] < C

    Returns a tuple of:
    - loss: Scalar giving the loss
    - dx: Gradient of the loss with respect to x, of shape (N, C)
    """
    check_scores_and_labels(x, y)
    num_examples = x.shape[0]
    rows = np.arange(num_examples)
    # log-sum-exp trick: shifting each row by its max leaves softmax unchanged and
    # keeps every exponent <= 0, so nothing overflows.
    shifted = x - x.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    loss = -log_probs[rows, y].mean()

    dx = np.exp(log_probs)
    dx[rows, y] -= 1
    dx /= num_examples
    return loss, dx
