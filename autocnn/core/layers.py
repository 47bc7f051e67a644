"""The notebook's layer API (``nndl/layers.py``, ``conv_layers.py``, ``fast_layers.py``), derived.

Every ``*_forward`` runs a forward op from ``autocnn.core.ops`` through ``autocnn.core.derive``;
every ``*_backward`` is ``autocnn.core.derive.backward``, autograd's vector-Jacobian product of
that forward. No backward here is written by hand. Names, signatures and dict keys match
``reference`` (the hand-written oracle), so a notebook can import this module instead of
its own layers and run unchanged. Caches are opaque: pass them only to autocnn backwards.
Inputs are checked against the notebook API's contract (``reference.validation``, shared
with the hand-written side): bad shapes or parameters raise ValueError naming them.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from autocnn.core import ops
from autocnn.core.derive import DerivedCache, backward, forward, forward_with_aux
from autocnn.core.param_dicts import batchnorm_settings, dropout_keep
from reference import validation

__all__ = ["affine_forward", "affine_backward", "relu_forward", "relu_backward", "batchnorm_forward",
           "batchnorm_backward", "batchnorm_backward_alt", "layernorm_forward", "layernorm_backward",
           "dropout_forward", "dropout_backward", "softmax_loss", "svm_loss", "conv_forward_naive",
           "conv_backward_naive", "conv_forward_fast", "conv_backward_fast", "max_pool_forward_naive",
           "max_pool_backward_naive", "max_pool_forward_fast", "max_pool_backward_fast",
           "spatial_batchnorm_forward", "spatial_batchnorm_backward", "spatial_groupnorm_forward",
           "spatial_groupnorm_backward"]


Cache = DerivedCache


# --------------------------------------------------------------------------- dense layers

def affine_forward(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, Cache]:
    """
    Inputs:
    - x: Array of shape (N, d_1, ..., d_k)
    - w: Weights of shape (d_1 * ... * d_k, M)
    - b: Biases of shape (M,)

    Returns a tuple of:
    - out: Array of shape (N, M)
    - cache: For affine_backward, which returns (dx, dw, db) shaped like (x, w, b)
    """
    validation.check_affine(x, w, b)
    return forward(ops.affine, x, w, b)


affine_backward = backward


def relu_forward(x: np.ndarray) -> tuple[np.ndarray, Cache]:
    """
    Inputs:
    - x: Array of any shape

    Returns a tuple of:
    - out: max(0, x), same shape
    - cache: For relu_backward, which returns dx
    """
    validation.check_float_array("x", x)
    return forward(ops.relu, x)


relu_backward = backward


def _batchnorm_layer(op, x, gamma, beta, bn_param: dict) -> tuple[np.ndarray, Cache]:
    """Run a batchnorm op, writing its updated running statistics into bn_param."""
    validation.check_batchnorm(x, gamma, beta, bn_param, spatial=op is ops.spatial_batchnorm)
    settings = batchnorm_settings(bn_param, gamma.shape[0], x.dtype)
    out, (running_mean, running_var), cache = forward_with_aux(op, x, gamma, beta, **settings)
    bn_param["running_mean"], bn_param["running_var"] = running_mean, running_var
    return out, cache


def batchnorm_forward(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, bn_param: dict) -> tuple[np.ndarray, Cache]:
    """
    Inputs:
    - x: Array of shape (N, D)
    - gamma, beta: Scale and shift of shape (D,)
    - bn_param: Dict with 'mode' ('train' or 'test'), optional 'eps' (1e-5) and
      'momentum' (0.9), and 'running_mean' / 'running_var' of shape (D,), created as
      zeros on first use and updated in place in training mode

    Returns a tuple of:
    - out: Array of shape (N, D)
    - cache: For batchnorm_backward, which returns (dx, dgamma, dbeta)
    """
    return _batchnorm_layer(ops.batchnorm, x, gamma, beta, bn_param)


batchnorm_backward = backward
# The notebook's "alternative" backward is a simplified hand derivation; autograd's VJP
# is the same function, so both names are one.
batchnorm_backward_alt = backward


def layernorm_forward(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, ln_param: dict) -> tuple[np.ndarray, Cache]:
    """
    Inputs:
    - x: Array of shape (N, D); each row is normalized over its D features
    - gamma, beta: Scale and shift of shape (D,)
    - ln_param: Dict with optional 'eps' (1e-5); other keys (e.g. 'mode') are ignored,
      since the layer is the same at train and test time

    Returns a tuple of:
    - out: Array of shape (N, D)
    - cache: For layernorm_backward, which returns (dx, dgamma, dbeta)
    """
    validation.check_layernorm(x, gamma, beta, ln_param)
    return forward(ops.layernorm, x, gamma, beta, eps=ln_param.get("eps", 1e-5))


layernorm_backward = backward


def dropout_forward(x: np.ndarray, dropout_param: dict) -> tuple[np.ndarray, Cache]:
    """
    Inputs:
    - x: Array of any shape
    - dropout_param: Dict with 'p' (probability of KEEPING a unit), 'mode' ('train' or
      'test') and optional 'seed', which makes the mask reproducible (and equal to the
      reference layer's for the same seed)

    Returns a tuple of:
    - out: Array of x's shape
    - cache: For dropout_backward, which returns dx
    """
    validation.check_dropout(x, dropout_param)
    keep_prob, keep = dropout_keep(dropout_param, x.shape)
    return forward(ops.dropout, x, keep_prob=keep_prob, keep=keep)


dropout_backward = backward


def _loss_and_grad(op, x: np.ndarray, y: np.ndarray) -> tuple[Any, np.ndarray]:
    validation.check_scores_and_labels(x, y)
    loss, cache = forward(op, x, y=y)
    return loss, backward(np.ones_like(loss), cache)


def softmax_loss(x: np.ndarray, y: np.ndarray) -> tuple[Any, np.ndarray]:
    """
    Inputs:
    - x: Scores of shape (N, C)
    - y: Labels of shape (N,), 0 <= y[i] < C

    Returns a tuple of:
    - loss: Mean cross-entropy
    - dx: Its gradient with respect to x, shape (N, C)
    """
    return _loss_and_grad(ops.softmax_loss, x, y)


def svm_loss(x: np.ndarray, y: np.ndarray) -> tuple[Any, np.ndarray]:
    """
    Inputs:
    - x: Scores of shape (N, C)
    - y: Labels of shape (N,), 0 <= y[i] < C

    Returns a tuple of:
    - loss: Mean multiclass hinge loss
    - dx: Its gradient with respect to x, shape (N, C)
    """
    return _loss_and_grad(ops.svm_loss, x, y)


# ---------------------------------------------------------------- conv_layers / fast_layers

def _conv_layer(x, w, b, conv_param: dict, impl: str) -> tuple[np.ndarray, Cache]:
    validation.check_conv(x, w, b, conv_param)
    return forward(ops.conv2d, x, w, b, stride=conv_param["stride"], pad=conv_param["pad"], impl=impl)


def _pool_layer(x, pool_param: dict, impl: str) -> tuple[np.ndarray, Cache]:
    validation.check_pool(x, pool_param)
    return forward(
        ops.max_pool2d,
        x,
        pool_height=pool_param["pool_height"],
        pool_width=pool_param["pool_width"],
        stride=pool_param["stride"],
        impl=impl,
    )


def conv_forward_naive(x: np.ndarray, w: np.ndarray, b: np.ndarray, conv_param: dict) -> tuple[np.ndarray, Cache]:
    """
    Convolution computed with ``scipy.signal.correlate`` (the formulation that reads like
    the definition; see conv_forward_fast for the fast one).

    Inputs:
    - x: Images of shape (N, C, H, W)
    - w: Filters of shape (F, C, HH, WW)
    - b: Biases of shape (F,)
    - conv_param: Dict with 'stride' and 'pad' (zeros on each side of H and W)

    Returns a tuple of:
    - out: Array of shape (N, F, H', W'), H' = 1 + (H + 2 * pad - HH) // stride,
      W' = 1 + (W + 2 * pad - WW) // stride
    - cache: For conv_backward_naive, which returns (dx, dw, db)
    """
    return _conv_layer(x, w, b, conv_param, impl="scipy")


conv_backward_naive = backward


def conv_forward_fast(x: np.ndarray, w: np.ndarray, b: np.ndarray, conv_param: dict) -> tuple[np.ndarray, Cache]:
    """As conv_forward_naive, computed as strided windows contracted with w in one GEMM."""
    return _conv_layer(x, w, b, conv_param, impl="fast")


conv_backward_fast = backward


def max_pool_forward_naive(x: np.ndarray, pool_param: dict) -> tuple[np.ndarray, Cache]:
    """
    Inputs:
    - x: Array of shape (N, C, H, W)
    - pool_param: Dict with 'pool_height', 'pool_width' and 'stride'; windows may overlap

    Returns a tuple of:
    - out: Array of shape (N, C, H', W'), H' = 1 + (H - pool_height) // stride,
      W' = 1 + (W - pool_width) // stride
    - cache: For max_pool_backward_naive, which returns dx
    """
    return _pool_layer(x, pool_param, impl="windows")


max_pool_backward_naive = backward


def max_pool_forward_fast(x: np.ndarray, pool_param: dict) -> tuple[np.ndarray, Cache]:
    """As max_pool_forward_naive, by reshaping when the windows tile the image."""
    return _pool_layer(x, pool_param, impl="fast")


max_pool_backward_fast = backward


def spatial_batchnorm_forward(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, bn_param: dict) -> tuple[np.ndarray, Cache]:
    """
    Inputs:
    - x: Array of shape (N, C, H, W)
    - gamma, beta: Scale and shift of shape (C,)
    - bn_param: As for batchnorm_forward, statistics of shape (C,)

    Returns a tuple of:
    - out: Array of shape (N, C, H, W)
    - cache: For spatial_batchnorm_backward, which returns (dx, dgamma, dbeta)
    """
    return _batchnorm_layer(ops.spatial_batchnorm, x, gamma, beta, bn_param)


spatial_batchnorm_backward = backward


def spatial_groupnorm_forward(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, G: int,
                              gn_param: dict) -> tuple[np.ndarray, Cache]:
    """
    Inputs:
    - x: Array of shape (N, C, H, W); each image's channels are split into G groups of
      C // G consecutive channels, each normalized over its channels and pixels
    - gamma, beta: Scale and shift per channel, of shape (1, C, 1, 1) as the notebook
      makes them, or (C,); their gradients come back in the same shape
    - G: Number of groups, a divisor of C
    - gn_param: Dict with optional 'eps' (1e-5)

    Returns a tuple of:
    - out: Array of shape (N, C, H, W)
    - cache: For spatial_groupnorm_backward, which returns (dx, dgamma, dbeta)
    """
    validation.check_groupnorm(x, gamma, beta, G, gn_param)
    return forward(ops.spatial_groupnorm, x, gamma, beta, groups=int(G), eps=gn_param.get("eps", 1e-5))


spatial_groupnorm_backward = backward
