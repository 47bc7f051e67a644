"""Convenience "sandwich" layers composed from the hand-written layers.

Each forward returns (out, cache) where cache is the tuple of the caches of its
parts; each backward unwinds those parts in reverse order. The convolutional
sandwiches use the fast layers.

Each forward checks all of its inputs before computing anything (so a bad pool_param
cannot leave bn_param's running statistics half-updated), in the same order and with
the same messages as autocnn's sandwiches; each backward checks its cache, and its first
part checks dout.
"""

from __future__ import annotations

import numpy as np

from .conv_layers import spatial_batchnorm_backward, spatial_batchnorm_forward
from .fast_layers import (
    conv_backward_fast,
    conv_forward_fast,
    max_pool_backward_fast,
    max_pool_forward_fast,
)
from .layers import (
    affine_backward,
    affine_forward,
    batchnorm_backward,
    batchnorm_forward,
    relu_backward,
    relu_forward,
)
from .validation import check_affine, check_cache, check_conv, check_conv_pool, check_sandwich_batchnorm

# ---------------------------------------------------------------------------
# Fully connected sandwiches
# ---------------------------------------------------------------------------


__all__ = ["affine_relu_forward", "affine_relu_backward", "affine_batchnorm_relu_forward",
           "affine_batchnorm_relu_backward", "conv_relu_forward", "conv_relu_backward",
           "conv_relu_pool_forward", "conv_relu_pool_backward", "conv_batchnorm_relu_forward",
           "conv_batchnorm_relu_backward", "conv_batchnorm_relu_pool_forward",
           "conv_batchnorm_relu_pool_backward"]


def affine_relu_forward(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, tuple]:
    """
    Convenience layer that performs an affine transform followed by a ReLU.

    Inputs:
    - x: Input to the affine layer, of shape (N, d_1, ..., d_k)
    - w, b: Weights (D, M) and biases (M,) for the affine layer

    Returns a tuple of:
    - out: Output from the ReLU, of shape (N, M)
    - cache: Object to give to the backward pass
    """
    a, fc_cache = affine_forward(x, w, b)
    out, relu_cache = relu_forward(a)
    return out, (fc_cache, relu_cache)


def affine_relu_backward(
    dout: np.ndarray, cache: tuple
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """
    Backward pass for the affine-relu convenience layer.

    Returns a tuple of:
    - dx (N, d_1, ..., d_k), dw (D, M), db (M,)
    """
    check_cache(cache, "affine_relu_forward", length=2)
    fc_cache, relu_cache = cache
    da = relu_backward(dout, relu_cache)
    return affine_backward(da, fc_cache)


def affine_batchnorm_relu_forward(
    x: np.ndarray,
    w: np.ndarray,
    b: np.ndarray,
    gamma: np.ndarray,
    beta: np.ndarray,
    bn_param: dict,
) -> tuple[np.ndarray, tuple]:
    """
    Convenience layer: affine - batchnorm - ReLU.

    Inputs:
    - x: Input to the affine layer, of shape (N, d_1, ..., d_k)
    - w, b: Weights (D, M) and biases (M,) for the affine layer
    - gamma, beta: Scale and shift (M,) for batch normalisation
    - bn_param: Dictionary of batchnorm parameters (see layers.batchnorm_forward)

    Returns a tuple of:
    - out: Output from the ReLU, of shape (N, M)
    - cache: Object to give to the backward pass
    """
    check_affine(x, w, b)
    check_sandwich_batchnorm(gamma, beta, bn_param, w.shape[1])
    a, fc_cache = affine_forward(x, w, b)
    a_normed, bn_cache = batchnorm_forward(a, gamma, beta, bn_param)
    out, relu_cache = relu_forward(a_normed)
    return out, (fc_cache, bn_cache, relu_cache)


def affine_batchnorm_relu_backward(
    dout: np.ndarray, cache: tuple
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """
    Backward pass for the affine-batchnorm-relu convenience layer.

    Returns a tuple of:
    - dx (N, d_1, ..., d_k), dw (D, M), db (M,), dgamma (M,), dbeta (M,)
    """
    check_cache(cache, "affine_batchnorm_relu_forward", length=3)
    fc_cache, bn_cache, relu_cache = cache
    da_normed = relu_backward(dout, relu_cache)
    da, dgamma, dbeta = batchnorm_backward(da_normed, bn_cache)
    dx, dw, db = affine_backward(da, fc_cache)
    return dx, dw, db, dgamma, dbeta


# ---------------------------------------------------------------------------
# Convolutional sandwiches
# ---------------------------------------------------------------------------


def conv_relu_forward(
    x: np.ndarray, w: np.ndarray, b: np.ndarray, conv_param: dict
) -> tuple[np.ndarray, tuple]:
    """
    A convenience layer that performs a convolution followed by a ReLU.

    Inputs:
    - x: Input to the convolutional layer, of shape (N, C, H, W)
    - w, b, conv_param: Weights (F, C, HH, WW), biases (F,) and parameters for the
      convolutional layer

    Returns a tuple of:
    - out: Output from the ReLU, of shape (N, F, H', W')
    - cache: Object to give to the backward pass
    """
    a, conv_cache = conv_forward_fast(x, w, b, conv_param)
    out, relu_cache = relu_forward(a)
    return out, (conv_cache, relu_cache)


def conv_relu_backward(dout: np.ndarray, cache: tuple) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """
    Backward pass for the conv-relu convenience layer.

    Returns a tuple of:
    - dx (N, C, H, W), dw (F, C, HH, WW), db (F,)
    """
    check_cache(cache, "conv_relu_forward", length=2)
    conv_cache, relu_cache = cache
    da = relu_backward(dout, relu_cache)
    return conv_backward_fast(da, conv_cache)


def conv_relu_pool_forward(
    x: np.ndarray, w: np.ndarray, b: np.ndarray, conv_param: dict, pool_param: dict
) -> tuple[np.ndarray, tuple]:
    """
    Convenience layer that performs a convolution, a ReLU, and a max pool.

    Inputs:
    - x: Input to the convolutional layer, of shape (N, C, H, W)
    - w, b, conv_param: Weights (F, C, HH, WW), biases (F,) and parameters for the
      convolutional layer
    - pool_param: Parameters for the pooling layer

    Returns a tuple of:
    - out: Output from the pooling layer, of shape (N, F, H'', W'')
    - cache: Object to give to the backward pass
    """
    check_conv_pool(x, w, b, conv_param, pool_param)
    a, conv_relu_cache = conv_relu_forward(x, w, b, conv_param)
    out, pool_cache = max_pool_forward_fast(a, pool_param)
    return out, (conv_relu_cache, pool_cache)


def conv_relu_pool_backward(
    dout: np.ndarray, cache: tuple
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """
    Backward pass for the conv-relu-pool convenience layer.

    Returns a tuple of:
    - dx (N, C, H, W), dw (F, C, HH, WW), db (F,)
    """
    check_cache(cache, "conv_relu_pool_forward", length=2)
    conv_relu_cache, pool_cache = cache
    da = max_pool_backward_fast(dout, pool_cache)
    return conv_relu_backward(da, conv_relu_cache)


def conv_batchnorm_relu_forward(
    x: np.ndarray,
    w: np.ndarray,
    b: np.ndarray,
    gamma: np.ndarray,
    beta: np.ndarray,
    conv_param: dict,
    bn_param: dict,
) -> tuple[np.ndarray, tuple]:
    """
    Convenience layer: convolution - spatial batchnorm - ReLU.

    Inputs:
    - x: Input to the convolutional layer, of shape (N, C, H, W)
    - w, b, conv_param: Weights (F, C, HH, WW), biases (F,) and parameters for the
      convolutional layer
    - gamma, beta: Per-channel scale and shift (F,) for spatial batchnorm
    - bn_param: Dictionary of batchnorm parameters (see layers.batchnorm_forward)

    Returns a tuple of:
    - out: Output from the ReLU, of shape (N, F, H', W')
    - cache: Object to give to the backward pass
    """
    check_conv(x, w, b, conv_param)
    check_sandwich_batchnorm(gamma, beta, bn_param, w.shape[0])
    a, conv_cache = conv_forward_fast(x, w, b, conv_param)
    a_normed, bn_cache = spatial_batchnorm_forward(a, gamma, beta, bn_param)
    out, relu_cache = relu_forward(a_normed)
    return out, (conv_cache, bn_cache, relu_cache)


def conv_batchnorm_relu_backward(
    dout: np.ndarray, cache: tuple
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """
    Backward pass for the conv-batchnorm-relu convenience layer.

    Returns a tuple of:
    - dx (N, C, H, W), dw (F, C, HH, WW), db (F,), dgamma (F,), dbeta (F,)
    """
    check_cache(cache, "conv_batchnorm_relu_forward", length=3)
    conv_cache, bn_cache, relu_cache = cache
    da_normed = relu_backward(dout, relu_cache)
    da, dgamma, dbeta = spatial_batchnorm_backward(da_normed, bn_cache)
    dx, dw, db = conv_backward_fast(da, conv_cache)
    return dx, dw, db, dgamma, dbeta


def conv_batchnorm_relu_pool_forward(
    x: np.ndarray,
    w: np.ndarray,
    b: np.ndarray,
    gamma: np.ndarray,
    beta: np.ndarray,
    conv_param: dict,
    bn_param: dict,
    pool_param: dict,
) -> tuple[np.ndarray, tuple]:
    """
    Convenience layer: convolution - spatial batchnorm - ReLU - max pool.

    Inputs: as conv_batchnorm_relu_forward, plus
    - pool_param: Parameters for the pooling layer

    Returns a tuple of:
    - out: Output from the pooling layer, of shape (N, F, H'', W'')
    - cache: Object to give to the backward pass
    """
    check_conv_pool(x, w, b, conv_param, pool_param)
    check_sandwich_batchnorm(gamma, beta, bn_param, w.shape[0])
    a, conv_bn_relu_cache = conv_batchnorm_relu_forward(x, w, b, gamma, beta, conv_param, bn_param)
    out, pool_cache = max_pool_forward_fast(a, pool_param)
    return out, (conv_bn_relu_cache, pool_cache)


def conv_batchnorm_relu_pool_backward(
    dout: np.ndarray, cache: tuple
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """
    Backward pass for the conv-batchnorm-relu-pool convenience layer.

    Returns a tuple of:
    - dx (N, C, H, W), dw (F, C, HH, WW), db (F,), dgamma (F,), dbeta (F,)
    """
    check_cache(cache, "conv_batchnorm_relu_pool_forward", length=2)
    conv_bn_relu_cache, pool_cache = cache
    da = max_pool_backward_fast(dout, pool_cache)
    return conv_batchnorm_relu_backward(da, conv_bn_relu_cache)
