"""Forward passes only: each layer written as the math, in ``autograd.numpy``.

No function here knows its gradient. Models and ``autocnn.core.layers`` hand these to autograd,
which derives every backward pass. The only help autograd gets is in
``autocnn.core.primitives`` (window extraction, patch matrices, a conv's GEMMs per filter tap,
a conv max pooled a block of images at a time, picking one element per window, the affine GEMM
split between threads, and scipy's correlation: linear operators whose adjoints are written
with themselves).

Shapes follow the notebook: images (N, C, H, W), filters (F, C, HH, WW), scores (N, K).
"""

from __future__ import annotations

from typing import Literal

import autograd.numpy as anp
import autograd.scipy.signal
import numpy as np
from autograd.scipy.special import logsumexp

from autocnn.core.autograd_internals import stop_gradient
from autocnn.core.primitives import (PooledConvShape, channel_sum, conv_gemm, conv_taps, conv_taps_pay_off,
                                     conv_window_maxima, conv_window_take, correlate_valid, from_pixel_rows,
                                     half_squared_norm, im2col, matmul, patch_matrix_is_kept, pixel_grid,
                                     sliding_windows, to_pixel_rows, window_count, window_maxima, window_take)

ConvImpl = Literal["fast", "scipy", "autograd-convolve", "pure"]
PoolImpl = Literal["fast", "windows", "pure"]
CONV_IMPLS: tuple[str, ...] = ("fast", "scipy", "autograd-convolve", "pure")
POOL_IMPLS: tuple[str, ...] = ("fast", "windows", "pure")


def affine(x, w, b):
    """
    out = x w + b, each example flattened to a row.

    Inputs:
    - x: Array of shape (N, d_1, ..., d_k) with D = d_1 * ... * d_k
    - w: Weights of shape (D, M)
    - b: Biases of shape (M,)

    Returns:
    - out: Array of shape (N, M)
    """
    # autocnn's matmul: split between threads like the convs (see there), and its VJP
    # returns dw C-contiguous (autograd's VJP of dot returns a Fortran-order view, slow to
    # add into the C-order gradient buffer).
    return matmul(anp.reshape(x, (x.shape[0], -1)), w) + b


def relu(x):
    """max(0, x) elementwise; the kink at 0 gets slope 0, as the hand-written relu does."""
    # x times its (constant) mask rather than anp.where(x > 0, x, 0.0): autograd's VJP of
    # where fills with float64 zeros, which silently turned every float32 gradient below
    # a relu into float64 (2x slower GEMMs); the VJP of this product is g * mask, in g's dtype.
    return x * (x > 0)


def conv2d(x, w, b, stride: int = 1, pad: int = 0, impl: ConvImpl = "fast"):
    """
    Cross-correlation of a batch of images with a bank of filters (a conv layer).

    out[n, f, i, j] = b[f] + sum_{c, p, q} x_pad[n, c, i*stride + p, j*stride + q] * w[f, c, p, q]

    Inputs:
    - x: Images of shape (N, C, H, W)
    - w: Filters of shape (F, C, HH, WW)
    - b: Biases of shape (F,)
    - stride: Step between receptive fields
    - pad: Zeros added on each side of H and W
    - impl: How the sum is computed; all give the same numbers:
      'fast'  - stride 1 with enough channels: one GEMM per filter tap on the padded
                images as rows of channels (conv_taps); otherwise the im2col patch
                matrix of the batch times w as a matrix (one GEMM),
      'scipy' - ``scipy.signal.correlate`` per filter, then every stride-th output,
      'autograd-convolve' - autograd's own ``autograd.scipy.signal.convolve`` (baseline),
      'pure'  - strided slices and sums in autograd.numpy, no derivative rule at all.

    Returns:
    - out: Array of shape (N, F, H', W'), H' = 1 + (H + 2 * pad - HH) // stride,
      W' = 1 + (W + 2 * pad - WW) // stride
    """
    kernel = (w.shape[2], w.shape[3])
    if impl == "fast" and conv_taps_pay_off(x.shape, kernel, stride, pad):
        # Stride 1 with enough channels: the padded images as one row of channels per pixel,
        # and the conv one GEMM per filter tap on those rows (see conv_taps); autograd's
        # VJPs are the same GEMMs again. Crop the outputs whose window left the image.
        grid, tail = pixel_grid(x.shape[2:], kernel, pad)
        out_rows = conv_taps(to_pixel_rows(x, grid, (pad, pad), tail), w, grid)
        out_size = window_count((x.shape[2] + 2 * pad, x.shape[3] + 2 * pad), kernel, 1)
        return from_pixel_rows(out_rows, x.shape[0], grid, (0, 0), out_size) + anp.reshape(b, (1, -1, 1, 1))
    x_pad = anp.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)), mode="constant") if pad else x
    if impl == "fast":
        # The whole layer is one GEMM, (N * H' * W', C * HH * WW) @ (C * HH * WW, F). Its
        # result is channel-major (F, N, H', W') memory and the NCHW output a view of it;
        # elementwise ops keep that layout, so the gradient comes back in it and the backward
        # GEMMs run in BLAS's fast orientation without copies. A small patch matrix is built
        # once from the plain values and kept for dW; a bigger one is formed a cache-sized
        # block of images at a time in each thread, never whole (see conv_gemm). dx is taken
        # through x_pad itself.
        cols = None
        if patch_matrix_is_kept(x_pad.shape, kernel, stride, np.result_type(x_pad, w).itemsize):
            cols = im2col(stop_gradient(x_pad), kernel, stride)  # (C * HH * WW, N * H' * W')
        out_h, out_w = window_count(x_pad.shape[2:], kernel, stride)
        rows = conv_gemm(x_pad, anp.reshape(w, (w.shape[0], -1)), cols, kernel, stride)  # (N * H' * W', F)
        out = anp.transpose(anp.reshape(rows, (x.shape[0], out_h, out_w, w.shape[0])), (0, 3, 1, 2))
    elif impl == "scipy":
        out = correlate_valid(x_pad, w)[:, :, ::stride, ::stride]
    elif impl == "pure":
        out = _conv2d_from_slices(x_pad, w, stride)
    elif impl == "autograd-convolve":
        # convolve flips its kernel, so flip it back to get a correlation.
        flipped = w[:, :, ::-1, ::-1]
        full = autograd.scipy.signal.convolve(
            x_pad, flipped, axes=([2, 3], [2, 3]), dot_axes=([1], [1]), mode="valid"
        )
        out = full[:, :, ::stride, ::stride]
    else:
        raise ValueError(f"conv impl must be one of {CONV_IMPLS}, got {impl!r}")
    return out + anp.reshape(b, (1, -1, 1, 1))


def max_pool2d(x, pool_height: int, pool_width: int, stride: int, impl: PoolImpl = "fast"):
    """
    Maximum over each pool_height x pool_width window, windows every `stride` pixels.

    Inputs:
    - x: Array of shape (N, C, H, W)
    - pool_height, pool_width: Window size
    - stride: Step between windows (windows overlap when stride < window)
    - impl: 'fast' takes each window's first maximum (ties go to the first in row-major
      order, like the reference); 'windows' takes anp.max over strided windows (ties share
      the gradient); 'pure' takes anp.maximum of strided slices, no derivative rule at all
      (ties share the gradient).

    Returns:
    - out: Array of shape (N, C, H', W'), H' = 1 + (H - pool_height) // stride,
      W' = 1 + (W - pool_width) // stride
    """
    if impl not in POOL_IMPLS:
        raise ValueError(f"pool impl must be one of {POOL_IMPLS}, got {impl!r}")
    window = (pool_height, pool_width)
    if impl == "pure":
        return _max_pool_from_slices(x, window, stride)
    if impl == "fast":
        # The max of a window is its first maximal element: choose it on the values (the
        # choice is piecewise constant, so carries no gradient), then take it (linear;
        # the maxima found while choosing are handed over rather than gathered again).
        # autograd's VJP is then one scatter of g, not anp.max's full-size where/repeat.
        maxima, choice = window_maxima(stop_gradient(x), window, stride)
        return window_take(x, choice, window, stride, taken=maxima)
    return anp.max(sliding_windows(x, window, stride), axis=(4, 5))


def conv2d_max_pool(x, w, b, pad: int, pool: int):
    """
    A conv (stride 1) and the max pool after it: max_pool2d(conv2d(x, w, b, 1, pad), pool,
    pool, pool), computed without the conv's full-size output.

    The bias is added after the pool: a per-channel constant moves out of a maximum
    without changing which element wins. The conv is formed and pooled a cache-sized
    block of images at a time, and so is its gradient (see conv_window_take); each
    window's first maximum is chosen on the values, as max_pool2d's 'fast' chooses it.

    Inputs:
    - x: Images of shape (N, C, H, W)
    - w: Filters of shape (F, C, HH, WW)
    - b: Biases of shape (F,)
    - pad: Zeros added on each side of H and W
    - pool: Side and stride of the pool's windows

    Returns:
    - out: Array of shape (N, F, Hp, Wp), C-contiguous, Hp = 1 + (H + 2 * pad - HH + 1 - pool) // pool
      and Wp likewise
    """
    x_pad = anp.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)), mode="constant") if pad else x
    w_mat = anp.reshape(w, (w.shape[0], -1))
    shape = PooledConvShape((w.shape[2], w.shape[3]), 1, (pool, pool), pool)
    maxima, choice = conv_window_maxima(stop_gradient(x_pad), stop_gradient(w_mat), shape)
    return conv_window_take(x_pad, w_mat, choice, shape, taken=maxima) + anp.reshape(b, (1, -1, 1, 1))


def _tap(x, p: int, q: int, out_size: tuple[int, int], stride: int):
    """x[..., p + stride * i, q + stride * j] for every output position (i, j): a strided slice."""
    return x[:, :, p:p + stride * (out_size[0] - 1) + 1:stride, q:q + stride * (out_size[1] - 1) + 1:stride]


def _conv2d_from_slices(x_pad, w, stride: int):
    """
    The correlation as the definition reads, in autograd.numpy only: every filter tap (p, q)
    meets one strided slice of the image, and the output sums those slices weighted by the
    tap over channels. autograd differentiates the slices and sums itself; nothing here
    states a derivative.

    Inputs:
    - x_pad: Padded images of shape (N, C, Hp, Wp)
    - w: Filters of shape (F, C, HH, WW)
    - stride: Step between receptive fields

    Returns:
    - out: Array of shape (N, F, H', W'), without the bias
    """
    out_size = window_count(x_pad.shape[2:], w.shape[2:], stride)
    out = 0.0
    for p in range(w.shape[2]):
        for q in range(w.shape[3]):
            out = out + anp.einsum("nchw,fc->nfhw", _tap(x_pad, p, q, out_size, stride), w[:, :, p, q])
    return out


def _max_pool_from_slices(x, window: tuple[int, int], stride: int):
    """
    Max pooling as the elementwise maximum of the window's strided slices (one per window
    position), in autograd.numpy only, with no derivative rule stated.

    Inputs:
    - x: Array of shape (N, C, H, W)
    - window: (pool_height, pool_width)
    - stride: Step between windows

    Returns:
    - out: Array of shape (N, C, H', W')
    """
    out_size = window_count(x.shape[2:], window, stride)
    out = _tap(x, 0, 0, out_size, stride)
    for p in range(window[0]):
        for q in range(window[1]):
            if p or q:
                out = anp.maximum(out, _tap(x, p, q, out_size, stride))
    return out


def batchnorm(x, gamma, beta, running_mean, running_var, train: bool, momentum: float = 0.9, eps: float = 1e-5):
    """
    Batch normalization per feature (axis 1), over the batch and any further axes.

    y = gamma * (x - mu) / sqrt(var + eps) + beta, with mu and var the batch statistics
    in training and the running statistics at test time.

    Inputs:
    - x: Array of shape (N, D), or (N, C, H, W) for spatial batchnorm (see there)
    - gamma, beta: Scale and shift of shape (D,)
    - running_mean, running_var: Running statistics of shape (D,)
    - train: Normalise with the batch statistics (True) or the running ones (False)
    - momentum: Weight of the old running statistics in their update
    - eps: Added to the variance for numerical stability

    Returns a tuple of:
    - out: Array of x's shape
    - running_mean, running_var: The updated running statistics (unchanged at test
      time), returned as values rather than written anywhere, so traced code stays pure
    """
    per_feature = (1, -1) + (1,) * (x.ndim - 2)  # a (D,) vector broadcast against x
    if train:
        # channel_sum divided by a Python int: its VJP is a broadcast view, where anp.sum's
        # builds zeros plus a repeat, and anp.mean / anp.var's divide by a numpy int64 that
        # turns float32 gradients into float64.
        n = x.size // x.shape[1]
        mean = channel_sum(x) / n
        centered = x - mean
        var = channel_sum(centered * centered) / n
        running_mean = momentum * running_mean + (1 - momentum) * anp.reshape(mean, (-1,))
        running_var = momentum * running_var + (1 - momentum) * anp.reshape(var, (-1,))
    else:
        mean, var = anp.reshape(running_mean, per_feature), anp.reshape(running_var, per_feature)
        centered = x - mean
    # gamma / std folded into one scale per feature first: two full-size passes forward
    # (times, plus) and their VJPs, instead of x_hat, gamma * x_hat, + beta.
    scale = anp.reshape(gamma, per_feature) / anp.sqrt(var + eps)
    return centered * scale + anp.reshape(beta, per_feature), running_mean, running_var


def spatial_batchnorm(x, gamma, beta, running_mean, running_var, train: bool, momentum: float = 0.9, eps: float = 1e-5):
    """
    Batch normalization per channel, over the batch and both spatial axes: `batchnorm`
    of a 4-D array, computed in x's own layout (no transposes to one row per pixel).

    Inputs:
    - x: Array of shape (N, C, H, W)
    - gamma, beta, running_mean, running_var: Arrays of shape (C,)
    - train, momentum, eps: As for `batchnorm`

    Returns a tuple of:
    - out: Array of shape (N, C, H, W)
    - running_mean, running_var: Updated running statistics of shape (C,)
    """
    return batchnorm(x, gamma, beta, running_mean, running_var, train, momentum, eps)


def _normalize(x, axes: tuple[int, ...], eps: float):
    """
    (x - mean) / sqrt(var + eps), mean and biased var taken over `axes` of x.

    Sums divided by a Python int, not anp.mean / anp.var: those divide by a numpy int64,
    which turns float32 values and gradients into float64.
    """
    count = int(np.prod([x.shape[axis] for axis in axes]))
    mean = anp.sum(x, axis=axes, keepdims=True) / count
    centered = x - mean
    var = anp.sum(centered * centered, axis=axes, keepdims=True) / count
    return centered / anp.sqrt(var + eps)


def layernorm(x, gamma, beta, eps: float = 1e-5):
    """
    Layer normalization: each example normalized over its own features.

    y[i, j] = gamma[j] * (x[i, j] - mu_i) / sqrt(var_i + eps) + beta[j], with mu_i and
    var_i the mean and biased variance of row i. There are no running statistics: the
    layer is the same function at train and test time.

    Inputs:
    - x: Array of shape (N, D)
    - gamma, beta: Scale and shift of shape (D,)
    - eps: Added to the variance for numerical stability

    Returns:
    - out: Array of shape (N, D)
    """
    return _normalize(x, (1,), eps) * gamma + beta


def spatial_groupnorm(x, gamma, beta, groups: int, eps: float = 1e-5):
    """
    Group normalization: each image's channels split into `groups` runs of consecutive
    channels, each run normalized over its channels and pixels together, then a scale and
    shift per channel.

    y[n, c, h, w] = gamma[c] * (x[n, c, h, w] - mu_{n,g}) / sqrt(var_{n,g} + eps) + beta[c],
    with g = c // (C / groups) and mu, var the mean and biased variance of group g of image n.

    Inputs:
    - x: Array of shape (N, C, H, W)
    - gamma, beta: Scale and shift, of shape (1, C, 1, 1) as the notebook makes them, or (C,)
    - groups: Number of groups G; must divide C
    - eps: Added to the variance for numerical stability

    Returns:
    - out: Array of shape (N, C, H, W)
    """
    n, c, h, w = x.shape
    grouped = anp.reshape(x, (n, groups, c // groups, h, w))
    x_hat = anp.reshape(_normalize(grouped, (2, 3, 4), eps), x.shape)
    return x_hat * anp.reshape(gamma, (1, c, 1, 1)) + anp.reshape(beta, (1, c, 1, 1))


def dropout_mask(shape: tuple[int, ...], keep_prob: float, rng: np.random.RandomState | None = None) -> np.ndarray:
    """
    The units inverted dropout keeps: True with probability keep_prob.

    Drawn as ``rng.rand(*shape) < keep_prob``, the reference layer's convention, so the
    same seed keeps the same units on both sides. ``rng=None`` draws from ``anp.random``.
    """
    rng = np.random if rng is None else rng
    return rng.rand(*shape) < keep_prob


def dropout(x, keep_prob: float, keep):
    """
    Inverted dropout: drop units, scale the survivors by 1 / keep_prob so the expected
    activation equals the test-time one.

    Inputs:
    - x: Array of any shape
    - keep_prob: Probability of keeping a unit, in (0, 1]
    - keep: Boolean mask of x's shape, e.g. from `dropout_mask`

    Returns:
    - out: Array of x's shape
    """
    return x * keep / keep_prob


def softmax_loss(scores, y):
    """
    Mean cross-entropy of the softmax of the scores.

    loss = mean_i( log sum_j exp(s_ij) - s_{i, y_i} ); logsumexp subtracts the row max,
    so scores of magnitude 1e5 neither overflow nor lose the loss.

    Inputs:
    - scores: Array of shape (N, K)
    - y: Integer labels of shape (N,), 0 <= y[i] < K

    Returns:
    - loss: Scalar
    """
    n = scores.shape[0]
    return anp.mean(logsumexp(scores, axis=1) - scores[anp.arange(n), y])


def svm_loss(scores, y):
    """
    Mean multiclass hinge loss with margin 1.

    loss = mean_i sum_{j != y_i} max(0, s_ij - s_{i, y_i} + 1)

    Inputs:
    - scores: Array of shape (N, K)
    - y: Integer labels of shape (N,), 0 <= y[i] < K

    Returns:
    - loss: Scalar
    """
    n = scores.shape[0]
    correct = scores[anp.arange(n), y]
    margins = scores - anp.reshape(correct, (n, 1)) + 1.0
    is_correct = np.arange(scores.shape[1]) == np.reshape(y, (n, 1))
    return anp.sum(relu(anp.where(is_correct, 0.0, margins))) / n


def l2_penalty(weights, reg: float):
    """0.5 * reg * sum of squared entries over all the given weight arrays."""
    return reg * sum(half_squared_norm(w) for w in weights)
