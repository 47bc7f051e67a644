"""Naive (loop-based) convolution and max pooling, plus spatial batch normalisation.

The naive layers loop over output positions so that each line reads like the
definition; reference.fast_layers holds the vectorised versions that must agree.
"""

from __future__ import annotations

import numpy as np

from .layers import _normalize_rows, _normalize_rows_backward, batchnorm_backward_alt, batchnorm_forward
from .validation import check_batchnorm, check_cache, check_conv, check_dout, check_groupnorm, check_pool


__all__ = ["conv_forward_naive", "conv_backward_naive", "max_pool_forward_naive", "max_pool_backward_naive",
           "spatial_batchnorm_forward", "spatial_batchnorm_backward", "spatial_groupnorm_forward",
           "spatial_groupnorm_backward"]


def _output_size(input_size: int, window: int, stride: int, pad: int = 0) -> int:
    """
    Number of window positions along one axis: 1 + (input + 2 * pad - window) / stride,
    a whole number for the geometries check_conv / check_pool let through.
    """
    return 1 + (input_size + 2 * pad - window) // stride


def conv_forward_naive(
    x: np.ndarray, w: np.ndarray, b: np.ndarray, conv_param: dict
) -> tuple[np.ndarray, tuple]:
    """
    A naive implementation of the forward pass for a convolutional layer.

    The input consists of N data points, each with C channels, height H and width
    W. We convolve each input with F different filters, where each filter spans
    all C channels and has height HH and width WW.

    Inputs:
    - x: Input data of shape (N, C, H, W)
    - w: Filter weights of shape (F, C, HH, WW)
    - b: Biases, of shape (F,)
    - conv_param: A dictionary with the following keys:
      - 'stride': The number of pixels between adjacent receptive fields in the
        horizontal and vertical directions.
      - 'pad': The number of pixels that will be used to zero-pad the input
        on both sides of each spatial axis.

    Returns a tuple of:
    - out: Output data, of shape (N, F, H', W') where H' and W' are given by
      H' = 1 + (H + 2 * pad - HH) // stride
      W' = 1 + (W + 2 * pad - WW) // stride
    - cache: (x, w, b, conv_param)
    """
    out_h, out_w = check_conv(x, w, b, conv_param)
    stride, pad = conv_param["stride"], conv_param["pad"]
    N = x.shape[0]
    F, _, HH, WW = w.shape

    x_padded = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    out = np.empty((N, F, out_h, out_w), dtype=np.result_type(x, w, b))
    for i in range(out_h):
        for j in range(out_w):
            top, left = i * stride, j * stride
            receptive_field = x_padded[:, :, top : top + HH, left : left + WW]  # (N, C, HH, WW)
            # Dot every example's receptive field with every filter over (C, HH, WW).
            out[:, :, i, j] = np.tensordot(receptive_field, w, axes=([1, 2, 3], [1, 2, 3])) + b

    return out, (x, w, b, conv_param)


def conv_backward_naive(
    dout: np.ndarray, cache: tuple
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """
    A naive implementation of the backward pass for a convolutional layer.

    Inputs:
    - dout: Upstream derivatives, of shape (N, F, H', W')
    - cache: A tuple of (x, w, b, conv_param) as in conv_forward_naive

    Returns a tuple of:
    - dx: Gradient with respect to x, of shape (N, C, H, W)
    - dw: Gradient with respect to w, of shape (F, C, HH, WW)
    - db: Gradient with respect to b, of shape (F,)
    """
    check_cache(cache, "conv_forward_naive", length=4)
    x, w, _, conv_param = cache
    stride, pad = conv_param["stride"], conv_param["pad"]
    N, _, H, W = x.shape
    F, _, HH, WW = w.shape
    out_h, out_w = _output_size(H, HH, stride, pad), _output_size(W, WW, stride, pad)
    check_dout(dout, (N, F, out_h, out_w))

    x_padded = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    dx_padded = np.zeros_like(x_padded)
    dw = np.zeros_like(w)
    for i in range(out_h):
        for j in range(out_w):
            top, left = i * stride, j * stride
            window = (slice(None), slice(None), slice(top, top + HH), slice(left, left + WW))
            dout_ij = dout[:, :, i, j]  # (N, F)
            # out[n, f, i, j] = sum(x_window[n] * w[f]) + b[f]
            dx_padded[window] += np.tensordot(dout_ij, w, axes=(1, 0))  # (N, C, HH, WW)
            dw += np.tensordot(dout_ij, x_padded[window], axes=(0, 0))  # (F, C, HH, WW)

    dx = dx_padded[:, :, pad : pad + H, pad : pad + W]
    db = dout.sum(axis=(0, 2, 3))
    return dx, dw, db


def max_pool_forward_naive(x: np.ndarray, pool_param: dict) -> tuple[np.ndarray, tuple]:
    """
    A naive implementation of the forward pass for a max pooling layer.
    Windows may overlap (stride < pool size).

    Inputs:
    - x: Input data, of shape (N, C, H, W)
    - pool_param: dictionary with the following keys:
      - 'pool_height': The height of each pooling region
      - 'pool_width': The width of each pooling region
      - 'stride': The distance between adjacent pooling regions

    Returns a tuple of:
    - out: Output data, of shape (N, C, H', W') where
      H' = 1 + (H - pool_height) // stride, W' = 1 + (W - pool_width) // stride
    - cache: (x, pool_param)
    """
    out_h, out_w = check_pool(x, pool_param)
    pool_h, pool_w = pool_param["pool_height"], pool_param["pool_width"]
    stride = pool_param["stride"]
    N, C = x.shape[:2]

    out = np.empty((N, C, out_h, out_w), dtype=x.dtype)
    for i in range(out_h):
        for j in range(out_w):
            top, left = i * stride, j * stride
            out[:, :, i, j] = x[:, :, top : top + pool_h, left : left + pool_w].max(axis=(2, 3))

    return out, (x, pool_param)


def max_pool_backward_naive(dout: np.ndarray, cache: tuple) -> np.ndarray:
    """
    A naive implementation of the backward pass for a max pooling layer.

    Each window routes its upstream gradient to its maximum; on ties the first
    maximum in row-major window order receives it. Gradients of overlapping
    windows that pick the same input accumulate.

    Inputs:
    - dout: Upstream derivatives, of shape (N, C, H', W')
    - cache: A tuple of (x, pool_param) as in the forward pass.

    Returns:
    - dx: Gradient with respect to x, of shape (N, C, H, W)
    """
    check_cache(cache, "max_pool_forward_naive", length=2)
    x, pool_param = cache
    pool_h, pool_w = pool_param["pool_height"], pool_param["pool_width"]
    stride = pool_param["stride"]
    N, C, H, W = x.shape
    out_h, out_w = _output_size(H, pool_h, stride), _output_size(W, pool_w, stride)
    check_dout(dout, (N, C, out_h, out_w))

    # Broadcastable (N, 1) and (1, C) indices to address one element per (n, c).
    n_index = np.arange(N)[:, None]
    c_index = np.arange(C)[None, :]

    dx = np.zeros_like(x)
    for i in range(out_h):
        for j in range(out_w):
            top, left = i * stride, j * stride
            window = x[:, :, top : top + pool_h, left : left + pool_w]
            # np.argmax returns the first maximum of the row-major flattened window.
            flat_argmax = window.reshape(N, C, -1).argmax(axis=2)
            row, col = np.divmod(flat_argmax, pool_w)
            # Within one window position every (n, c) pair is distinct: no lost updates.
            dx[n_index, c_index, top + row, left + col] += dout[:, :, i, j]

    return dx


def spatial_batchnorm_forward(
    x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, bn_param: dict
) -> tuple[np.ndarray, dict]:
    """
    Computes the forward pass for spatial batch normalisation: each channel is
    normalised over the N, H and W axes by treating every pixel as an example of
    vanilla batch normalisation.

    Inputs:
    - x: Input data of shape (N, C, H, W)
    - gamma: Scale parameter, of shape (C,)
    - beta: Shift parameter, of shape (C,)
    - bn_param: Dictionary as for batchnorm_forward ('mode', 'eps', 'momentum',
      'running_mean', 'running_var'); running statistics have shape (C,).

    Returns a tuple of:
    - out: Output data, of shape (N, C, H, W)
    - cache: Values needed for the backward pass: batchnorm_forward's cache of the
      pixels, plus x's shape under 'spatial_shape'
    """
    check_batchnorm(x, gamma, beta, bn_param, spatial=True)
    N, C, H, W = x.shape
    pixels_by_channel = x.transpose(0, 2, 3, 1).reshape(-1, C)  # (N*H*W, C)
    out_flat, cache = batchnorm_forward(pixels_by_channel, gamma, beta, bn_param)
    out = out_flat.reshape(N, H, W, C).transpose(0, 3, 1, 2)
    # The pixel cache alone cannot tell (N, H, W) apart from other shapes with N*H*W pixels.
    cache["spatial_shape"] = x.shape
    return out, cache


def spatial_batchnorm_backward(
    dout: np.ndarray, cache: dict
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """
    Computes the backward pass for spatial batch normalisation.

    Inputs:
    - dout: Upstream derivatives, of shape (N, C, H, W)
    - cache: Values from the forward pass

    Returns a tuple of:
    - dx: Gradient with respect to inputs, of shape (N, C, H, W)
    - dgamma: Gradient with respect to scale parameter, of shape (C,)
    - dbeta: Gradient with respect to shift parameter, of shape (C,)
    """
    check_cache(cache, "spatial_batchnorm_forward", key="spatial_shape")
    check_dout(dout, cache["spatial_shape"])
    N, C, H, W = dout.shape
    dout_flat = dout.transpose(0, 2, 3, 1).reshape(-1, C)
    # The closed-form backward is the cheaper of the two equal vanilla versions.
    dx_flat, dgamma, dbeta = batchnorm_backward_alt(dout_flat, cache)
    dx = dx_flat.reshape(N, H, W, C).transpose(0, 3, 1, 2)
    return dx, dgamma, dbeta


def spatial_groupnorm_forward(
    x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, G: int, gn_param: dict
) -> tuple[np.ndarray, dict]:
    """
    Computes the forward pass for spatial group normalisation: the C channels of each
    image are split into G groups of C // G consecutive channels; each group is
    normalised over its channels and pixels together, then each channel is scaled and
    shifted. Nothing is shared between images, so train and test time are the same.

    Inputs:
    - x: Input data of shape (N, C, H, W)
    - gamma: Scale parameter, of shape (1, C, 1, 1) (as the notebook makes it) or (C,)
    - beta: Shift parameter, of shape (1, C, 1, 1) or (C,)
    - G: Integer number of groups to split into, a divisor of C
    - gn_param: Dictionary with the following keys:
      - eps: Constant for numeric stability, default 1e-5

    Returns a tuple of:
    - out: Output data, of shape (N, C, H, W)
    - cache: Values needed for the backward pass
    """
    check_groupnorm(x, gamma, beta, G, gn_param)
    N, C, H, W = x.shape
    # Consecutive channels of one image are contiguous in (N, C, H, W): one row per group.
    x_hat_rows, inv_std = _normalize_rows(x.reshape(N * G, -1), gn_param.get("eps", 1e-5))
    x_hat = x_hat_rows.reshape(x.shape)
    out = gamma.reshape(1, C, 1, 1) * x_hat + beta.reshape(1, C, 1, 1)
    cache = {"group_x_hat": x_hat, "group_inv_std": inv_std, "gamma": gamma, "beta_shape": beta.shape, "G": G}
    return out, cache


def spatial_groupnorm_backward(
    dout: np.ndarray, cache: dict
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """
    Computes the backward pass for spatial group normalisation.

    Inputs:
    - dout: Upstream derivatives, of shape (N, C, H, W)
    - cache: Values from the forward pass

    Returns a tuple of:
    - dx: Gradient with respect to inputs, of shape (N, C, H, W)
    - dgamma: Gradient with respect to the scale parameter, of gamma's shape
    - dbeta: Gradient with respect to the shift parameter, of beta's shape
    """
    check_cache(cache, "spatial_groupnorm_forward", key="group_x_hat")
    x_hat, gamma, G = cache["group_x_hat"], cache["gamma"], cache["G"]
    check_dout(dout, x_hat.shape)
    N, C, H, W = dout.shape
    dgamma = np.sum(dout * x_hat, axis=(0, 2, 3)).reshape(gamma.shape)
    dbeta = dout.sum(axis=(0, 2, 3)).reshape(cache["beta_shape"])
    dx_hat = (dout * gamma.reshape(1, C, 1, 1)).reshape(N * G, -1)
    dx = _normalize_rows_backward(dx_hat, x_hat.reshape(N * G, -1), cache["group_inv_std"])
    return dx.reshape(dout.shape), dgamma, dbeta
