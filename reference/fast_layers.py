"""Vectorised convolution and max pooling in pure numpy (no Cython).

Same contracts as the naive layers in reference.conv_layers, but:

- convolution is im2col (a strided window view copied into one contiguous columns
  matrix) followed by a single BLAS matmul; the backward pass gets dw from one
  matmul, and dx from column gradients (formed one cache-sized block of images at
  a time) folded back by col2im, a loop over the HH * WW kernel offsets that adds
  one strided slice per offset;
- max pooling reshapes when the windows exactly tile the input and otherwise
  reduces a strided window view; the backward pass loops over the window offsets.

Nothing is upcast: float32 inputs give float32 outputs and gradients.
"""

from __future__ import annotations

from functools import reduce
from itertools import product

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .validation import check_cache, check_conv, check_dout, check_pool


__all__ = ["conv_forward_fast", "conv_backward_fast", "max_pool_forward_fast", "max_pool_backward_fast"]


def _pad_spatial(x: np.ndarray, pad: int) -> np.ndarray:
    """Zero-pad the two trailing (spatial) axes of x by `pad` on both sides."""
    if pad == 0:
        return x
    return np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))


def _sliding_windows(x: np.ndarray, window_h: int, window_w: int, stride: int) -> np.ndarray:
    """
    Read-only view of every window position of a (N, C, H, W) array.

    Returns an array of shape (N, C, H', W', window_h, window_w) with
    H' = 1 + (H - window_h) // stride and W' = 1 + (W - window_w) // stride,
    sharing memory with x (nothing is copied).
    """
    all_positions = sliding_window_view(x, (window_h, window_w), axis=(2, 3))
    return all_positions[:, :, ::stride, ::stride]


def _offset_slice(offset: int, stride: int, count: int) -> slice:
    """Slice picking element `offset` of each of `count` windows spaced `stride` apart."""
    return slice(offset, offset + stride * (count - 1) + 1, stride)


# ---------------------------------------------------------------------------
# Convolution
# ---------------------------------------------------------------------------

# Size of one block of column gradients in conv_backward_fast: about what the CPU
# caches hold, so each block is written and read back without a trip to memory.
_DCOLS_BLOCK_BYTES = 8 * 2**20


def _col2im_add(dx_padded: np.ndarray, dcols: np.ndarray, stride: int) -> None:
    """
    Add column gradients back onto the (padded) input they were taken from.

    Inputs:
    - dx_padded: Array of shape (C, N, Hp, Wp), updated in place
    - dcols: Array of shape (C, HH, WW, N, H', W'); dcols[c, kh, kw, n, i, j] is the
      gradient for input pixel (n, c, i * stride + kh, j * stride + kw)

    For a fixed kernel offset (kh, kw) those pixels form one strided slice of
    dx_padded, so the loop runs over the HH * WW offsets, not over pixels.
    """
    _, HH, WW, _, out_h, out_w = dcols.shape
    for kh in range(HH):
        rows = _offset_slice(kh, stride, out_h)
        for kw in range(WW):
            dx_padded[:, :, rows, _offset_slice(kw, stride, out_w)] += dcols[:, kh, kw]


def conv_forward_fast(
    x: np.ndarray, w: np.ndarray, b: np.ndarray, conv_param: dict
) -> tuple[np.ndarray, tuple]:
    """
    Fast forward pass for a convolutional layer (im2col + one matmul).

    Inputs:
    - x: Input data of shape (N, C, H, W)
    - w: Filter weights of shape (F, C, HH, WW)
    - b: Biases, of shape (F,)
    - conv_param: dictionary with keys 'stride' and 'pad' (zero padding on both sides)

    Returns a tuple of:
    - out: Output data, of shape (N, F, H', W') with
      H' = 1 + (H + 2 * pad - HH) // stride, W' = 1 + (W + 2 * pad - WW) // stride
    - cache: (x, w, b, conv_param, cols), cols being the im2col matrix of shape
      (C * HH * WW, N * H' * W')
    """
    check_conv(x, w, b, conv_param)
    stride, pad = conv_param["stride"], conv_param["pad"]
    N, C, _, _ = x.shape
    F, _, HH, WW = w.shape

    windows = _sliding_windows(_pad_spatial(x, pad), HH, WW, stride)  # (N, C, H', W', HH, WW)
    out_h, out_w = windows.shape[2:4]
    # Rows ordered (c, kh, kw) like w.reshape(F, -1); columns ordered (n, i, j).
    # This layout keeps runs of W' contiguous pixels, which makes the copy cheap.
    cols = np.ascontiguousarray(windows.transpose(1, 4, 5, 0, 2, 3)).reshape(C * HH * WW, -1)

    out = w.reshape(F, -1) @ cols  # (F, N * H' * W')
    out += b[:, None]
    # A transposed view rather than a copy: callers only rely on shape, not layout.
    out = out.reshape(F, N, out_h, out_w).transpose(1, 0, 2, 3)
    return out, (x, w, b, conv_param, cols)


def conv_backward_fast(
    dout: np.ndarray, cache: tuple
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """
    Fast backward pass for a convolutional layer.

    Inputs:
    - dout: Upstream derivatives, of shape (N, F, H', W')
    - cache: (x, w, b, conv_param, cols) from conv_forward_fast

    Returns a tuple of:
    - dx: Gradient with respect to x, of shape (N, C, H, W)
    - dw: Gradient with respect to w, of shape (F, C, HH, WW)
    - db: Gradient with respect to b, of shape (F,)
    """
    check_cache(cache, "conv_forward_fast", length=5)
    x, w, _, conv_param, cols = cache
    stride, pad = conv_param["stride"], conv_param["pad"]
    N, C, H, W = x.shape
    F, _, HH, WW = w.shape
    out_h, out_w = 1 + (H + 2 * pad - HH) // stride, 1 + (W + 2 * pad - WW) // stride
    check_dout(dout, (N, F, out_h, out_w))

    dout_mat = dout.transpose(1, 0, 2, 3).reshape(F, -1)  # (F, N * H' * W')
    db = dout_mat.sum(axis=1)
    # Same product as dout_mat @ cols.T; this operand order is markedly faster in
    # OpenBLAS when the contraction (N * H' * W') is this long.
    dw = (cols @ dout_mat.T).T.reshape(w.shape)

    # dx: dcols = w_mat.T @ dout_mat, folded back by col2im. It is formed a block of
    # images at a time so that each block of dcols stays in cache instead of
    # materialising a second matrix as large as cols.
    w_mat_t = w.reshape(F, -1).T  # (C * HH * WW, F)
    pixels_per_image = out_h * out_w
    images_per_block = max(1, _DCOLS_BLOCK_BYTES // (cols.shape[0] * pixels_per_image * cols.itemsize))
    dx_padded = np.zeros((C, N, H + 2 * pad, W + 2 * pad), dtype=np.result_type(w, dout))
    for first in range(0, N, images_per_block):
        last = min(N, first + images_per_block)
        dout_block = dout_mat[:, first * pixels_per_image : last * pixels_per_image]
        dcols = (w_mat_t @ dout_block).reshape(C, HH, WW, last - first, out_h, out_w)
        _col2im_add(dx_padded[:, first:last], dcols, stride)

    dx = dx_padded[:, :, pad : pad + H, pad : pad + W].transpose(1, 0, 2, 3)
    return np.ascontiguousarray(dx), dw, db


# ---------------------------------------------------------------------------
# Max pooling
# ---------------------------------------------------------------------------


# Bytes of input images per block in max_pool_backward_fast (see there).
_POOL_BLOCK_BYTES = 2**18


def _pool_geometry(pool_param: dict) -> tuple[int, int, int]:
    return pool_param["pool_height"], pool_param["pool_width"], pool_param["stride"]


def max_pool_forward_fast(x: np.ndarray, pool_param: dict) -> tuple[np.ndarray, tuple]:
    """
    Fast forward pass for a max pooling layer.

    When the windows are square, as wide as the stride, and tile the input exactly,
    x is reshaped to (N, C, H', pool, W', pool) and the maximum is taken first
    across window rows (whole contiguous image rows at a time) and then across
    window columns. Otherwise (overlapping, spaced-out or non-square windows) the
    maximum is taken over the pool_height * pool_width offsets of a strided window view.

    Elementwise np.maximum over slices is used instead of ndarray.max(axis=...)
    because numpy reduces tiny strided axes slowly.

    Inputs:
    - x: Input data, of shape (N, C, H, W)
    - pool_param: dictionary with keys 'pool_height', 'pool_width', 'stride'

    Returns a tuple of:
    - out: Output data, of shape (N, C, H', W') with
      H' = 1 + (H - pool_height) // stride, W' = 1 + (W - pool_width) // stride
    - cache: (x, pool_param, out)
    """
    check_pool(x, pool_param)
    pool_h, pool_w, stride = _pool_geometry(pool_param)
    N, C, H, W = x.shape

    tiles_exactly = pool_h == pool_w == stride and H % pool_h == 0 and W % pool_w == 0
    if tiles_exactly:
        tiles = x.reshape(N, C, H // pool_h, pool_h, W // pool_w, pool_w)
        row_max = reduce(np.maximum, (tiles[:, :, :, di] for di in range(pool_h)))
        out = reduce(np.maximum, (row_max[..., dj] for dj in range(pool_w)))
    else:
        windows = _sliding_windows(x, pool_h, pool_w, stride)  # (N, C, H', W', ph, pw)
        offsets = product(range(pool_h), range(pool_w))
        out = reduce(np.maximum, (windows[..., di, dj] for di, dj in offsets))
    return out, (x, pool_param, out)


def max_pool_backward_fast(dout: np.ndarray, cache: tuple) -> np.ndarray:
    """
    Fast backward pass for a max pooling layer.

    Each window sends its gradient to its first maximum in row-major order (the
    np.argmax convention, matching max_pool_backward_naive). The loop runs over
    the pool_height * pool_width offsets inside a window, each offset being one
    strided slice of x across all windows at once.

    Inputs:
    - dout: Upstream derivatives, of shape (N, C, H', W')
    - cache: (x, pool_param, out) from max_pool_forward_fast

    Returns:
    - dx: Gradient with respect to x, of shape (N, C, H, W)
    """
    check_cache(cache, "max_pool_forward_fast", length=3)
    x, pool_param, out = cache
    check_dout(dout, out.shape)
    pool_h, pool_w, stride = _pool_geometry(pool_param)
    _, _, out_h, out_w = out.shape

    # Windows overlap when the stride is smaller than the window; then one input
    # element can be the maximum of several windows and must collect all of them.
    windows_overlap = stride < pool_h or stride < pool_w

    # zeros_like keeps x's memory layout, so dx matches the upstream conv output's.
    dx = np.zeros_like(x, dtype=dout.dtype)
    # A cache-sized block of images at a time: each offset below re-reads the block's
    # x, out and dout, which then come from cache rather than memory.
    images_per_block = max(1, _POOL_BLOCK_BYTES // max(1, x[0].nbytes))
    for first in range(0, x.shape[0], images_per_block):
        block = slice(first, first + images_per_block)
        x_block, out_block, dout_block, dx_block = x[block], out[block], dout[block], dx[block]
        max_not_found_yet = np.ones(out_block.shape, dtype=bool)
        is_first_max = np.empty(out_block.shape, dtype=bool)
        for di in range(pool_h):
            rows = _offset_slice(di, stride, out_h)
            for dj in range(pool_w):
                at_offset = (slice(None), slice(None), rows, _offset_slice(dj, stride, out_w))
                np.equal(x_block[at_offset], out_block, out=is_first_max)
                is_first_max &= max_not_found_yet
                if windows_overlap:
                    dx_block[at_offset] += is_first_max * dout_block
                else:
                    np.multiply(is_first_max, dout_block, out=dx_block[at_offset])
                max_not_found_yet ^= is_first_max
    return dx
