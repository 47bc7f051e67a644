"""The linear operators autograd cannot trace through, registered as autograd primitives.

Everything else in autocnn is a composition of ``autograd.numpy`` calls, and autograd
derives its gradient. Two things need help, because their forward leaves numpy's traced
functions:

* ``sliding_windows`` reads overlapping windows through ``as_strided`` (a view autograd
  cannot see through). Its adjoint ``overlap_add`` sums windows back onto the image.
* ``correlate_valid`` calls ``scipy.signal.correlate``, which autograd cannot trace.

All three are linear, so each VJP is the adjoint operator, and every adjoint is written
with these same primitives plus ``autograd.numpy``. The VJPs are therefore traceable
themselves and derivatives of any order work (checked with ``autograd.test_util``), the
way autograd treats its own ``scipy.signal.convolve``.
"""

from __future__ import annotations

import autograd.numpy as anp
import numpy as onp
import scipy.signal
from autograd.extend import defvjp, primitive


@primitive
def sliding_windows(x: onp.ndarray, window: tuple[int, int], stride: int) -> onp.ndarray:
    """
    Every (window)-sized patch of the last two axes, taken every `stride` pixels.

    Inputs:
    - x: Array of shape (N, C, H, W)
    - window: (kh, kw), patch height and width, each at most H and W
    - stride: Step between patch origins, >= 1

    Returns:
    - patches: Read-only view of shape (N, C, H', W', kh, kw) with
      H' = 1 + (H - kh) // stride, W' = 1 + (W - kw) // stride, and
      patches[n, c, i, j] = x[n, c, i*stride : i*stride+kh, j*stride : j*stride+kw]
    """
    views = onp.lib.stride_tricks.sliding_window_view(x, window, axis=(2, 3))
    return views[:, :, ::stride, ::stride]


@primitive
def overlap_add(patches: onp.ndarray, image_size: tuple[int, int], stride: int) -> onp.ndarray:
    """
    Adjoint of `sliding_windows`: add every patch back where it was taken from.

    Inputs:
    - patches: Array of shape (N, C, H', W', kh, kw)
    - image_size: (H, W) of the image the patches were taken from
    - stride: The stride they were taken with

    Returns:
    - image: Array of shape (N, C, H, W); pixels covered by several windows receive
      the sum of their patches, pixels covered by none receive zero.
    """
    n, c, out_h, out_w, kh, kw = patches.shape
    image = onp.zeros((n, c) + tuple(image_size), dtype=patches.dtype)
    # One strided slice per kernel offset: kh * kw vectorised adds, no per-pixel loop.
    by_offset = onp.moveaxis(patches, (4, 5), (0, 1))
    for i in range(kh):
        rows = slice(i, i + stride * out_h, stride)
        for j in range(kw):
            image[:, :, rows, j : j + stride * out_w : stride] += by_offset[i, j]
    return image


defvjp(
    sliding_windows,
    lambda ans, x, window, stride: lambda g: overlap_add(g, x.shape[2:], stride),
)
defvjp(
    overlap_add,
    lambda ans, patches, image_size, stride: lambda g: sliding_windows(g, patches.shape[4:], stride),
)


@primitive
def correlate_valid(x: onp.ndarray, w: onp.ndarray) -> onp.ndarray:
    """
    Multi-channel 'valid' cross-correlation computed by ``scipy.signal.correlate``.

    Inputs:
    - x: Array of shape (N, C, H, W)
    - w: Filters of shape (F, C, kh, kw)

    Returns:
    - out: Array of shape (N, F, H - kh + 1, W - kw + 1) with
      out[n, f] = sum_c correlate(x[n, c], w[f, c], mode='valid')
    """
    # Correlating the whole batch with one (1, C, kh, kw) filter in 'valid' mode sums over
    # the channel axis (sizes equal) and keeps the batch axis (size 1): one call per filter.
    per_filter = [scipy.signal.correlate(x, filt[None], mode="valid")[:, 0] for filt in w]
    return onp.stack(per_filter, axis=1).astype(onp.result_type(x, w), copy=False)


def _correlate_valid_vjp_x(ans, x, w):
    kh, kw = w.shape[2:]

    def vjp(g):
        # dx = g fully convolved with w: pad g by the kernel size minus one, correlate with
        # the filters flipped in space and with their in/out channels swapped.
        padded = anp.pad(g, ((0, 0), (0, 0), (kh - 1, kh - 1), (kw - 1, kw - 1)), mode="constant")
        return correlate_valid(padded, anp.transpose(w[:, :, ::-1, ::-1], (1, 0, 2, 3)))

    return vjp


def _correlate_valid_vjp_w(ans, x, w):
    def vjp(g):
        # dw[f, c] = sum_n correlate(x[n, c], g[n, f]): the batch becomes the channel axis.
        per_channel = correlate_valid(anp.transpose(x, (1, 0, 2, 3)), anp.transpose(g, (1, 0, 2, 3)))
        return anp.transpose(per_channel, (1, 0, 2, 3))

    return vjp


defvjp(correlate_valid, _correlate_valid_vjp_x, _correlate_valid_vjp_w)
