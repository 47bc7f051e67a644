"""The linear operators autograd cannot trace through, registered as autograd primitives.

Everything else in autocnn is a composition of ``autograd.numpy`` calls, and autograd
derives its gradient. A few things need help, because their forward leaves numpy's traced
functions or would make autograd's own VJPs slow:

* ``sliding_windows`` reads overlapping windows through ``as_strided`` (a view autograd
  cannot see through). Its adjoint ``overlap_add`` sums windows back onto the image.
* ``im2col`` copies the same windows into one contiguous patch matrix, the layout in
  which a convolution is a single GEMM; its adjoint ``col2im`` adds them back.
* ``gemm_tt`` is that GEMM, a.T @ b.T computed in the orientation BLAS runs fastest
  (bilinear, VJPs are autograd.numpy matmuls).
* ``matmul`` is a @ b split between threads (the affine layers' GEMMs), its VJPs matmuls.
* ``conv_gemm`` is the conv layer's GEMM as one node of x and the filters (bilinear),
  formed a cache-sized block of images at a time, the batch split between threads
  (``autocnn.core.blockwise.split_batch``), and so are its VJPs: dW forms the patch blocks
  again, and the x-VJP ``col2im_gemm`` (bilinear) the patch-gradient blocks; no matrix
  the size of im2col's is ever held.
* ``conv_taps`` is a stride-1 conv with enough channels, on images laid out one row of
  channels per pixel of a padded grid (``to_pixel_rows``; its adjoint ``from_pixel_rows``
  crops): one GEMM per filter tap, on runs of whole rows, no patch matrix. Its two adjoints,
  ``conv_taps_transpose`` (dx) and ``conv_taps_weight_gradient`` (dW), are the same GEMMs
  on other operands, and the three are each other's VJPs.
* ``window_take`` picks one element of every window (max pooling picks the maximum);
  its adjoint ``window_put`` puts values back at the picked places. The choice is an
  integer argument, not differentiated, so both are linear in their array argument.
* ``conv_window_take`` is max pooling of a conv's output given the choice (window_take
  of conv_gemm), formed and pooled a block of images at a time so the conv's full output is
  never held; its adjoints ``conv_window_put_transpose`` (dx) and
  ``conv_window_weight_gradient`` (dW) put the pooled gradient back a block at a time, and
  the three are each other's VJPs. ``conv_window_maxima`` makes the choice (plain numpy).
* ``correlate_valid`` calls ``scipy.signal.correlate``, which autograd cannot trace.
* ``channel_sum`` sums over all but the channel axis (batchnorm's statistics); its VJP is
  a broadcast view where np.sum's writes zeros and adds g into them.
* ``half_squared_norm`` is the weight-decay term 0.5 * <w, w>: traced as w * w or as a
  dot product, w has two uses whose gradients autograd sums in two extra full-size passes;
  its gradient is just g * w, which it adds straight into the weight's gradient sum.

All but the last are linear (correlate_valid and gemm_tt in each argument), so each VJP is
the adjoint operator, and every adjoint is written with these same primitives plus
``autograd.numpy``.
The VJPs are therefore traceable themselves and derivatives of any order work (checked
with ``autograd.test_util``), the way autograd treats its own ``scipy.signal.convolve``.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import autograd.numpy as anp
import numpy as np
import scipy.signal
from autograd.extend import SparseObject, defvjp, primitive, vspace

from autocnn.core.autograd_internals import is_traced, value_of
from autocnn.core.blockwise import for_each_block, split_batch


# ------------------------------------------------------------------ plain helpers
# (numpy on plain arrays; never traced, so never differentiated)


def window_count(image_size: tuple[int, int], window: tuple[int, int], stride: int) -> tuple[int, int]:
    """(H', W'): how many windows fit along each spatial axis, one every `stride` pixels."""
    (h, w), (kh, kw) = image_size, window
    return 1 + (h - kh) // stride, 1 + (w - kw) // stride


def _window_view(x: np.ndarray, window: tuple[int, int], stride: int) -> np.ndarray:
    """Read-only (N, C, H', W', kh, kw) view of every window of x; nothing is copied."""
    # as_strided itself: sliding_window_view's argument checks cost more than the view,
    # and this runs once per block of a few images in the pooled conv's im2col.
    n, c = x.shape[:2]
    strides = x.strides
    return np.lib.stride_tricks.as_strided(
        x, (n, c) + window_count(x.shape[2:], window, stride) + tuple(window),
        strides[:2] + (strides[2] * stride, strides[3] * stride) + strides[2:], writeable=False)


def _window_offsets(window: tuple[int, int], stride: int, out_size: tuple[int, int]):
    """
    Yield ((i, j), index) for every offset (i, j) inside a window, in row-major order;
    x[index] is the (N, C, H', W') strided slice holding element (i, j) of every window.
    """
    out_h, out_w = out_size
    for i in range(window[0]):
        rows = slice(i, i + stride * (out_h - 1) + 1, stride)
        for j in range(window[1]):
            yield (i, j), (slice(None), slice(None), rows, slice(j, j + stride * (out_w - 1) + 1, stride))


def _in_layout_of(a: np.ndarray, like: np.ndarray) -> np.ndarray:
    """a itself if its axes are laid out in memory in the same order as like's, else a copy that is."""
    if np.array_equal(np.argsort(a.strides, kind="stable"), np.argsort(like.strides, kind="stable")):
        return a
    copy = np.empty_like(like, dtype=a.dtype)
    copy[...] = a
    return copy


def _batch_chunks(n: int, bytes_per_example: int, budget: int = 1 << 20, offset: int = 0):
    """Slices of the batch axis offset:offset + n holding about `budget` bytes each (at least one example)."""
    step = max(1, budget // max(1, bytes_per_example))
    for start in range(offset, offset + n, step):
        yield slice(start, min(offset + n, start + step))


@primitive
def sliding_windows(x: np.ndarray, window: tuple[int, int], stride: int) -> np.ndarray:
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
    return _window_view(x, window, stride)


def _overlap_add(patches: np.ndarray, image_size: tuple[int, int], stride: int) -> np.ndarray:
    """
    Adjoint of `sliding_windows`: add every patch back where it was taken from.

    Inputs:
    - patches: Array of shape (N, C, H', W', kh, kw); any memory layout
    - image_size: (H, W) of the image the patches were taken from
    - stride: The stride they were taken with

    Returns:
    - image: Array of shape (N, C, H, W); pixels covered by several windows receive
      the sum of their patches, pixels covered by none receive zero.
    """
    n, c, out_h, out_w, kh, kw = patches.shape
    image = np.zeros((n, c) + tuple(image_size), dtype=patches.dtype)
    # One strided slice per kernel offset: kh * kw vectorised adds, no per-pixel loop.
    # Done a few images at a time so each image's block stays in cache across the adds.
    for batch in _batch_chunks(n, max(image[0].nbytes, patches[0].nbytes)):
        for (i, j), at in _window_offsets((kh, kw), stride, (out_h, out_w)):
            image[batch][at] += patches[batch, :, :, :, i, j]
    return image


overlap_add = primitive(_overlap_add)


defvjp(
    sliding_windows,
    lambda ans, x, window, stride: lambda g: overlap_add(g, x.shape[2:], stride),
)
defvjp(
    overlap_add,
    lambda ans, patches, image_size, stride: lambda g: sliding_windows(g, patches.shape[4:], stride),
)


def _im2col(x: np.ndarray, window: tuple[int, int], stride: int, out: np.ndarray | None = None) -> np.ndarray:
    """
    The windows of a batch copied into one contiguous patch matrix (the classic im2col).

    Inputs:
    - x: Array of shape (N, C, H, W)
    - window: (kh, kw), patch height and width
    - stride: Step between patch origins
    - out: Optional C-contiguous array of the result's shape and dtype to write into

    Returns:
    - cols: C-contiguous array of shape (C * kh * kw, N * H' * W') with
      cols[(c * kh + p) * kw + q, (n * H' + i) * W' + j] = x[n, c, i*stride + p, j*stride + q];
      rows are ordered like w.reshape(F, -1), so a whole conv layer is one GEMM.
    """
    # Copying in (c, p, q, n, i, j) order keeps runs of W' pixels contiguous on both sides.
    patches = _window_view(x, window, stride).transpose(1, 4, 5, 0, 2, 3)
    if out is None:
        return np.ascontiguousarray(patches).reshape(patches.shape[0] * window[0] * window[1], -1)
    np.copyto(out.reshape(patches.shape), patches)  # out is C-contiguous: a view, never a copy
    return out


def _col2im(cols: np.ndarray, image_size: tuple[int, int], window: tuple[int, int], stride: int) -> np.ndarray:
    """
    Adjoint of `im2col`: add every column of patches back where it was taken from.

    Inputs:
    - cols: Array of shape (C * kh * kw, N * H' * W'); any memory layout
    - image_size, window, stride: (H, W) of the images and the window and stride used

    Returns:
    - image: Array of shape (N, C, H, W)
    """
    (h, w), (kh, kw) = image_size, window
    out_h, out_w = window_count(image_size, window, stride)
    n, c = cols.shape[1] // (out_h * out_w), cols.shape[0] // (kh * kw)
    # A channel-major (C, N, H, W) image, returned as its NCHW view: the memory layout the
    # conv's output has too.
    image = np.zeros((c, n, h, w), dtype=cols.dtype)
    _col2im_add(image, cols, window, stride)
    return image.transpose(1, 0, 2, 3)


def _col2im_add(image: np.ndarray, cols: np.ndarray, window: tuple[int, int], stride: int) -> None:
    """image (C, N, H, W), in place: += the patches in cols (C * kh * kw, N * H' * W') put back."""
    c, n, h, w = image.shape
    (kh, kw) = window
    out_h, out_w = window_count((h, w), window, stride)
    # Splitting axes never copies, whatever the layout: this is a view of cols. Each kernel
    # offset's block is then one strided slice of the image.
    patches = np.reshape(cols, (c, kh, kw, n, out_h, out_w))
    for batch in _batch_chunks(n, c * max(h * w, kh * kw * out_h * out_w) * cols.itemsize):
        for (i, j), at in _window_offsets((kh, kw), stride, (out_h, out_w)):
            image[:, batch][at] += patches[:, i, j, batch]


im2col = primitive(_im2col)
col2im = primitive(_col2im)
defvjp(im2col, lambda ans, x, window, stride: lambda g: col2im(g, x.shape[2:], window, stride))
defvjp(col2im, lambda ans, cols, image_size, window, stride: lambda g: im2col(g, window, stride))


def _gemm_tt(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """
    a.T @ b.T, computed as the transpose of b @ a. Bilinear: linear in each argument.

    The same numbers as matmul(a.T, b.T); only the BLAS call differs. For a conv's patch
    matrix a (C*HH*WW, N*H'*W') and filters b (F, C*HH*WW), OpenBLAS runs b @ a about 2.4x
    faster on 2 cores than a.T @ b.T, and autograd's own matmul VJPs would need a
    G @ a.T product that is slower still (seconds) for this long contraction. The VJPs
    below are matmuls in the fast orientations, written with autograd.numpy.

    Inputs:
    - a: Array of shape (K, M)
    - b: Array of shape (F, K)

    Returns:
    - out: Array of shape (M, F), a transposed view of the C-contiguous (F, M) product
    """
    return np.matmul(b, a).T


gemm_tt = primitive(_gemm_tt)


def _c_ordered(x):
    """x, or a C-ordered copy of it (traceable: anp.array); the layout is read off the value."""
    return x if value_of(x).flags.c_contiguous else anp.array(x, order="C")


# out = a^T b^T: for an upstream g (M, F), da = b^T g^T (K, M) and db = (a g)^T (F, K).
# da's product is only fast with g^T C-contiguous (g arrives so when the layers keep the
# conv's channel-major layout; after a batchnorm it may not): else copy the small g^T.
defvjp(
    gemm_tt,
    lambda ans, a, b: lambda g: anp.matmul(anp.transpose(b), _c_ordered(anp.transpose(g))),
    lambda ans, a, b: lambda g: anp.transpose(anp.matmul(a, g)),
)


def _matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """
    a @ b for matrices, the larger of the product's sides split between threads
    (autocnn.core.blockwise.split_batch), each part one single-threaded GEMM. Bilinear.

    The same numbers as np.matmul up to the GEMM's own blocking; the VJPs are matmuls
    again, each split the same way.

    Inputs:
    - a: Array of shape (M, K); b: Array of shape (K, N)

    Returns:
    - out: C-contiguous array of shape (M, N)
    """
    (m, k), n = a.shape, b.shape[1]
    if m * n * k < _SPLIT_MATMUL_MIN_FLOPS:
        return np.matmul(a, b)
    out = np.empty((m, n), dtype=np.result_type(a, b))
    if m >= n:
        split_batch(lambda first, last: np.matmul(a[first:last], b, out=out[first:last]), m)
    else:
        split_batch(lambda first, last: np.matmul(a, b[:, first:last], out=out[:, first:last]), n)
    return out


# Products smaller than this (multiply-adds) are not worth a thread hand-off.
_SPLIT_MATMUL_MIN_FLOPS = 2**22

matmul = primitive(_matmul)
# d(a @ b) = da @ b + a @ db: for an upstream g, da = g b^T and db = a^T g.
defvjp(
    matmul,
    lambda ans, a, b: lambda g: matmul(g, anp.transpose(b)),
    lambda ans, a, b: lambda g: matmul(anp.transpose(a), g),
)

# Bytes of patches (or patch gradients) each thread forms and multiplies at a time: about
# what a core's L2 cache holds, so the block is still there when the GEMM reads it.
_PATCH_BLOCK_BYTES = 2 * 2**20
# Patch matrices up to this size are built whole, once, and kept for the filter gradient.
_KEPT_PATCH_BYTES = 16 * 2**20


def _image_blocks(first: int, last: int, k: int, pixels: int, itemsize: int):
    """(start, stop) image ranges of first:last whose (k, images * pixels) patch block holds about _PATCH_BLOCK_BYTES."""
    images_per_block = max(1, _PATCH_BLOCK_BYTES // (k * pixels * itemsize))
    for start in range(first, last, images_per_block):
        yield start, min(last, start + images_per_block)


def _scratch(first: int, last: int, k: int, pixels: int, dtype: np.dtype,
             rows: int | None = None) -> Callable[[int], np.ndarray]:
    """
    A thread's block buffer, sized for the largest of its patch blocks (k rows) and reused
    for each: block(images) is a C-contiguous (rows, images * pixels) array in it, rows = k
    unless given (a buffer for another matrix of the same blocks of images).
    """
    images = max(stop - start for start, stop in _image_blocks(first, last, k, pixels, dtype.itemsize))
    rows = k if rows is None else rows
    buffer = np.empty(rows * images * pixels, dtype=dtype)
    return lambda count: buffer[: rows * count * pixels].reshape(rows, count * pixels)


def _summed_over_ranges(partial_sum: Callable[[int, int], np.ndarray], n: int) -> np.ndarray:
    """split_batch(partial_sum, n), the ranges' partial sums added in range order (the same
    numbers whichever thread ran which range)."""
    total, *others = split_batch(partial_sum, n)
    for other in others:
        total += other
    return total


def _conv_gemm(x: np.ndarray, w_mat: np.ndarray, cols: np.ndarray | None, window: tuple[int, int],
               stride: int) -> np.ndarray:
    """
    A conv layer's one GEMM, gemm_tt(im2col(x), w_mat). Bilinear in x and w_mat.

    With cols = im2col(x) handed in (a small patch matrix), that matrix is multiplied and
    kept for dW. With cols None, the batch is split between threads (autocnn.core.blockwise),
    and each copies a cache-sized block of its images' patches at a time (im2col into a
    buffer of its own) and multiplies it; dW forms the blocks again. The whole
    (C * kh * kw, N * H' * W') patch matrix (600 MB for the >65% net's first layer at batch
    1000) is never held, forward or backward, nor written through to main memory.

    Inputs:
    - x: Padded images of shape (N, C, H, W); differentiated
    - w_mat: Filters as a matrix, shape (F, C * kh * kw); differentiated
    - cols: im2col(x, window, stride) of the plain values, or None (not differentiated:
      x's gradient is taken through x itself)
    - window, stride: The filter size and stride

    Returns:
    - rows: Array of shape (N * H' * W', F), a transposed view of the C-contiguous
      (F, N * H' * W') product (channel-major, as from gemm_tt)
    """
    if cols is not None:
        return _gemm_tt(cols, w_mat)
    pixels = int(np.prod(window_count(x.shape[2:], window, stride)))
    n, k = x.shape[0], w_mat.shape[1]
    dtype = np.result_type(x, w_mat)
    out = np.empty((w_mat.shape[0], n * pixels), dtype=dtype)

    def forward(first: int, last: int) -> None:
        scratch = _scratch(first, last, k, pixels, dtype)
        for start, stop in _image_blocks(first, last, k, pixels, dtype.itemsize):
            patches = _im2col(x[start:stop], window, stride, scratch(stop - start))
            np.matmul(w_mat, patches, out=out[:, start * pixels : stop * pixels])

    split_batch(forward, n)
    return out.T


def _conv_weight_gradient(x: np.ndarray, g: np.ndarray, window: tuple[int, int], stride: int) -> np.ndarray:
    """
    (im2col(x) @ g)^T, a block of images at a time in each thread: a conv's filter gradient
    (F, C * kh * kw) from its padded input x (N, C, H, W) and output gradient rows g
    (N * H' * W', F). The threads' partial sums are added in range order.
    """
    pixels = int(np.prod(window_count(x.shape[2:], window, stride)))
    n, k = x.shape[0], x.shape[1] * window[0] * window[1]
    dtype = np.result_type(x, g)

    def partial_sum(first: int, last: int) -> np.ndarray:
        scratch, total = _scratch(first, last, k, pixels, dtype), np.zeros((k, g.shape[1]), dtype=dtype)
        for start, stop in _image_blocks(first, last, k, pixels, dtype.itemsize):
            patches = _im2col(x[start:stop], window, stride, scratch(stop - start))
            total += patches @ g[start * pixels : stop * pixels]
        return total

    return _summed_over_ranges(partial_sum, n).T


def _col2im_gemm(w_mat: np.ndarray, g: np.ndarray, image_size: tuple[int, int], window: tuple[int, int],
                 stride: int) -> np.ndarray:
    """
    col2im(w_mat^T @ g^T): a conv's input gradient from its output gradient rows g
    (N * H' * W', F). Bilinear in w_mat and g.

    Formed a block of images at a time in each thread, so each block of the
    (C * kh * kw, N * H' * W') patch-gradient matrix is added back while still in cache; the
    whole matrix is never written.

    Returns:
    - image: Array of shape (N, C, H, W) (channel-major memory)
    """
    (h, w), (kh, kw) = image_size, window
    pixels = int(np.prod(window_count(image_size, window, stride)))
    n, k = g.shape[0] // pixels, w_mat.shape[1]
    dtype = np.result_type(w_mat, g)
    image = np.zeros((k // (kh * kw), n, h, w), dtype=dtype)
    w_t, g_t = w_mat.T, g.T  # (K, F), (F, N * H' * W')

    def backward(first: int, last: int) -> None:
        scratch = _scratch(first, last, k, pixels, dtype)
        for start, stop in _image_blocks(first, last, k, pixels, dtype.itemsize):
            patch_gradients = scratch(stop - start)
            np.matmul(w_t, g_t[:, start * pixels : stop * pixels], out=patch_gradients)
            _col2im_add(image[:, start:stop], patch_gradients, window, stride)

    split_batch(backward, n)
    return image.transpose(1, 0, 2, 3)


conv_gemm = primitive(_conv_gemm)
col2im_gemm = primitive(_col2im_gemm)


def patch_matrix_is_kept(x_shape: tuple[int, ...], window: tuple[int, int], stride: int, itemsize: int) -> bool:
    """Whether im2col of an (N, C, H, W) batch is small enough to build whole and keep for dW."""
    n, c = x_shape[:2]
    pixels = int(np.prod(window_count(x_shape[2:], window, stride)))
    return n * c * window[0] * window[1] * pixels * itemsize <= _KEPT_PATCH_BYTES


def _conv_gemm_vjp_w(ans, x, w_mat, cols, window, stride):
    def vjp(g):
        if is_traced(x) or is_traced(g):  # differentiated again: the patches traced from x itself
            return anp.transpose(anp.matmul(im2col(x, window, stride), g))
        if cols is not None:
            return anp.transpose(anp.matmul(cols, g))
        return _conv_weight_gradient(x, g, window, stride)

    return vjp


defvjp(
    conv_gemm,
    lambda ans, x, w_mat, cols, window, stride: lambda g: col2im_gemm(w_mat, g, x.shape[2:], window, stride),
    _conv_gemm_vjp_w,
)
# Bilinear: for an upstream image h, d w_mat = (im2col(h) g)^T and d g = conv of h with w_mat.
defvjp(
    col2im_gemm,
    lambda ans, w_mat, g, image_size, window, stride: lambda h: anp.transpose(anp.matmul(im2col(h, window, stride), g)),
    lambda ans, w_mat, g, image_size, window, stride: lambda h: gemm_tt(im2col(h, window, stride), w_mat),
)


# ------------------------------------------------------------------ stride-1 convs on pixel rows
#
# Images padded onto a grid of Gh x Gw pixels, each pixel one row of channels (pixel-major),
# turn a stride-1 conv into a sum of one GEMM per filter tap: the output row of pixel m is
# sum over taps (p, q) of input row m + p * Gw + q times that tap's (C, F) weights. No patch
# matrix is formed, forward or backward; every GEMM operand is a run of whole rows, in the
# (pixels, C) @ (C, F) orientation OpenBLAS runs fastest at a conv's shapes. Output rows
# whose window leaves the image (the grid's right and bottom margins) are computed too and
# cropped away, which costs Gh * Gw / (H' * W') times the GEMM work; neighbouring images
# share their padding (pixel_grid) to keep that small (9 x 9 for the 8 x 8 images of a
# 3 x 3 conv, not 10 x 10).


def _tap_shifts(window: tuple[int, int], grid_width: int) -> list[int]:
    """How many rows further on tap (p, q) reads, for the taps in row-major order."""
    return [p * grid_width + q for p in range(window[0]) for q in range(window[1])]


def _rows_per_block(width: int, itemsize: int) -> int:
    """Rows of a `width`-wide array in about _ROW_BLOCK_BYTES (at least 64)."""
    return max(64, _ROW_BLOCK_BYTES // (width * itemsize))


# Bytes of one operand's rows each thread multiplies at a time: the operands of all the
# taps, and the accumulated output, then stay in a core's L2 cache.
_ROW_BLOCK_BYTES = 2**19


def pixel_grid(image_size: tuple[int, int], window: tuple[int, int], pad: int) -> tuple[tuple[int, int], int]:
    """
    The smallest grid `conv_taps` can run a stride-1 conv with zero padding on.

    Neighbouring images share their padding: a tap reaching past an image's bottom edge
    reads the top padding rows of the next image's grid, and one reaching past its right
    edge reads the left padding columns of the next grid row. So each grid adds `pad` rows
    and columns to the image, not 2 * pad, and the last image is followed by a short tail
    of zero rows.

    Inputs:
    - image_size: (H, W) of the images
    - window: (kh, kw) of the filters
    - pad: Zeros on each side of the images (the images sit at (pad, pad) in their grids)

    Returns a tuple of:
    - grid_size: (Gh, Gw) = (H + pad, W + pad), or more where the conv's output is larger
      than that (pad > k - 1)
    - tail: Zero rows after the last image's grid, for to_pixel_rows
    """
    conv_size = window_count((image_size[0] + 2 * pad, image_size[1] + 2 * pad), window, 1)
    grid_h, grid_w = (max(side + pad, out) for side, out in zip(image_size, conv_size))
    # The last output pixel's last tap reads row ((N - 1) * Gh + H + 2 * pad - 1) * Gw + W + 2 * pad - 1.
    tail = (image_size[0] + 2 * pad - 1 - grid_h) * grid_w + image_size[1] + 2 * pad
    return (grid_h, grid_w), max(0, tail)


def _to_pixel_rows(x: np.ndarray, grid_size: tuple[int, int], offset: tuple[int, int], tail: int = 0) -> np.ndarray:
    """
    Images placed on zero grids, one row of channels per grid pixel. Linear in x.

    Inputs:
    - x: Array of shape (N, C, H, W), any memory layout
    - grid_size: (Gh, Gw), at least (offset[0] + H, offset[1] + W)
    - offset: (top, left) of the images in their grids (the padding, for a conv's input)
    - tail: Zero rows after the last image's grid

    Returns:
    - rows: C-contiguous array of shape (N * Gh * Gw + tail, C) with
      rows[(n * Gh + top + i) * Gw + left + j, c] = x[n, c, i, j], and zero elsewhere
    """
    n, c, h, w = x.shape
    (grid_h, grid_w), (top, left) = grid_size, offset
    rows = np.zeros((n * grid_h * grid_w + tail, c), dtype=x.dtype)
    inside = rows[: n * grid_h * grid_w].reshape(n, grid_h, grid_w, c)[:, top : top + h, left : left + w]

    def copy(first: int, last: int) -> None:
        inside[first:last] = x[first:last].transpose(0, 2, 3, 1)

    split_batch(copy, n, calls_blas=False)
    return rows


def _from_pixel_rows(rows: np.ndarray, n: int, grid_size: tuple[int, int], offset: tuple[int, int],
                     size: tuple[int, int]) -> np.ndarray:
    """
    Adjoint of `_to_pixel_rows`: the (N, C, h, w) block at `offset` of every image's grid
    (rows after the N grids, the tail, are not read).

    Returns a view of rows when their pixels can be split off without a copy (conv_taps'
    channel-major rows and to_pixel_rows' pixel-major ones both can).
    """
    (grid_h, grid_w), (top, left), (h, w) = grid_size, offset, size
    grids = np.reshape(rows[: n * grid_h * grid_w], (n, grid_h, grid_w, rows.shape[1]))
    return grids[:, top : top + h, left : left + w].transpose(0, 3, 1, 2)


to_pixel_rows = primitive(_to_pixel_rows)
from_pixel_rows = primitive(_from_pixel_rows)
defvjp(to_pixel_rows,
       lambda ans, x, grid_size, offset, tail=0: lambda g: from_pixel_rows(
           g, x.shape[0], grid_size, offset, x.shape[2:]))
defvjp(from_pixel_rows,
       lambda ans, rows, n, grid_size, offset, size: lambda g: to_pixel_rows(
           g, grid_size, offset, rows.shape[0] - n * grid_size[0] * grid_size[1]))


def _taps(w: np.ndarray, dtype: np.dtype, transposed: bool) -> list[np.ndarray]:
    """Each tap's weights, C-contiguous: w[:, :, p, q].T (C, F) if transposed, else w[:, :, p, q] (F, C)."""
    return [np.ascontiguousarray(w[:, :, p, q].T if transposed else w[:, :, p, q], dtype=dtype)
            for p in range(w.shape[2]) for q in range(w.shape[3])]


def _conv_taps(rows: np.ndarray, w: np.ndarray, grid_size: tuple[int, int]) -> np.ndarray:
    """
    A stride-1 cross-correlation on pixel rows: one GEMM per filter tap. Bilinear.

    Inputs:
    - rows: Pixel rows of shape (M, C), M = N * Gh * Gw (+ a tail), as from `to_pixel_rows`
    - w: Filters of shape (F, C, kh, kw)
    - grid_size: (Gh, Gw)

    Returns:
    - out: Array of shape (M, F), a transposed view of C-contiguous (F, M) memory
      (channel-major), with out[m] = sum_{p, q} rows[m + p * Gw + q] @ w[:, :, p, q].T for the rows m whose taps
      all fall inside the array (m < M - (kh - 1) * Gw - (kw - 1)), zero after them. With
      the images laid out by pixel_grid and to_pixel_rows (zero padding shared between
      neighbours, and the tail), row (n * Gh + i) * Gw + j is the conv's output pixel (i, j)
      of image n.
    """
    shifts = _tap_shifts(w.shape[2:], grid_size[1])
    dtype = np.result_type(rows, w)
    taps = _taps(w, dtype, transposed=True)
    valid = max(0, rows.shape[0] - shifts[-1])
    out_t = np.empty((w.shape[0], rows.shape[0]), dtype=dtype)  # returned as its transpose
    out_t[:, valid:] = 0
    block_rows = _rows_per_block(max(rows.shape[1], w.shape[0]), dtype.itemsize)

    def forward(first: int, last: int) -> None:
        sums, product = (np.empty((min(block_rows, last - first), w.shape[0]), dtype=dtype) for _ in range(2))
        for start in range(first, last, block_rows):
            stop = min(last, start + block_rows)
            block_sum, block_product = sums[: stop - start], product[: stop - start]
            np.matmul(rows[start:stop], taps[0], out=block_sum)  # tap (0, 0) reads the rows themselves
            for shift, tap in zip(shifts[1:], taps[1:]):
                np.matmul(rows[start + shift : stop + shift], tap, out=block_product)
                block_sum += block_product
            # Written channel-major while in cache: ufuncs on the cropped output then run
            # along image rows, not along rows of F channels (several times slower).
            out_t[:, start:stop] = block_sum.T

    split_batch(forward, valid)
    return out_t.T


def _conv_taps_transpose(g: np.ndarray, w: np.ndarray, grid_size: tuple[int, int]) -> np.ndarray:
    """
    Adjoint of `conv_taps` in its rows: a conv's input gradient on pixel rows. Bilinear.

    Inputs:
    - g: Output gradient rows of shape (M, F); rows past the last valid one are not read
    - w: Filters of shape (F, C, kh, kw)
    - grid_size: (Gh, Gw)

    Returns:
    - dx: Array of shape (M, C), a transposed view of C-contiguous (C, M) memory, dx[m] = sum_{p, q} g[m - p * Gw - q] @ w[:, :, p, q]
      over the taps whose row m - p * Gw - q is a valid one
    """
    shifts = _tap_shifts(w.shape[2:], grid_size[1])
    dtype = np.result_type(g, w)
    taps = _taps(w, dtype, transposed=False)
    valid = max(0, g.shape[0] - shifts[-1])
    dx_t = np.empty((w.shape[1], g.shape[0]), dtype=dtype)  # returned as its transpose
    block_rows = _rows_per_block(max(g.shape[1], w.shape[1]), dtype.itemsize)

    def backward(first: int, last: int) -> None:
        # Each thread gathers into its own rows of dx: no two threads write the same row.
        sums, product = (np.empty((min(block_rows, last - first), w.shape[1]), dtype=dtype) for _ in range(2))
        for start in range(first, last, block_rows):
            stop = min(last, start + block_rows)
            block_sum = sums[: stop - start]
            block_sum[...] = 0
            for shift, tap in zip(shifts, taps):
                low, high = max(start - shift, 0), min(stop - shift, valid)
                if low < high:
                    np.matmul(g[low:high], tap, out=product[: high - low])
                    block_sum[low + shift - start : high + shift - start] += product[: high - low]
            dx_t[:, start:stop] = block_sum.T  # channel-major, as conv_taps' output

    split_batch(backward, g.shape[0])
    return dx_t.T


def _conv_taps_weight_gradient(rows: np.ndarray, g: np.ndarray, window: tuple[int, int],
                               grid_size: tuple[int, int]) -> np.ndarray:
    """
    Adjoint of `conv_taps` in its filters: the filter gradient. Bilinear.

    Inputs:
    - rows: Input pixel rows of shape (M, C)
    - g: Output gradient rows of shape (M, F); rows past the last valid one are not read
    - window: (kh, kw)
    - grid_size: (Gh, Gw)

    Returns:
    - dw: Array of shape (F, C, kh, kw), dw[:, :, p, q] = sum_m g[m].T rows[m + p * Gw + q]
      over the valid rows m; the threads' partial sums are added in range order
    """
    shifts = _tap_shifts(window, grid_size[1])
    dtype = np.result_type(rows, g)
    valid = max(0, rows.shape[0] - shifts[-1])
    f, c = g.shape[1], rows.shape[1]
    block_rows = _rows_per_block(max(f, c), dtype.itemsize)

    def partial_sum(first: int, last: int) -> np.ndarray:
        total, product = np.zeros((len(shifts), f, c), dtype=dtype), np.empty((f, c), dtype=dtype)
        for start in range(first, last, block_rows):
            stop = min(last, start + block_rows)
            g_block = g[start:stop].T
            for tap, shift in enumerate(shifts):
                np.matmul(g_block, rows[start + shift : stop + shift], out=product)
                total[tap] += product
        return total

    return _summed_over_ranges(partial_sum, valid).reshape(window + (f, c)).transpose(2, 3, 0, 1)


conv_taps = primitive(_conv_taps)
conv_taps_transpose = primitive(_conv_taps_transpose)
conv_taps_weight_gradient = primitive(_conv_taps_weight_gradient)
# The three close under their adjoints (A = conv_taps, B = its transpose, C = the filter
# gradient): <A(x, w), g> = <x, B(g, w)> = <w, C(x, g)>, so each VJP is one of the three.
defvjp(
    conv_taps,
    lambda ans, rows, w, grid_size: lambda g: conv_taps_transpose(g, w, grid_size),
    lambda ans, rows, w, grid_size: lambda g: conv_taps_weight_gradient(rows, g, w.shape[2:], grid_size),
)
defvjp(
    conv_taps_transpose,
    lambda ans, g, w, grid_size: lambda h: conv_taps(h, w, grid_size),
    lambda ans, g, w, grid_size: lambda h: conv_taps_weight_gradient(h, g, w.shape[2:], grid_size),
)
defvjp(
    conv_taps_weight_gradient,
    lambda ans, rows, g, window, grid_size: lambda v: conv_taps_transpose(g, v, grid_size),
    lambda ans, rows, g, window, grid_size: lambda v: conv_taps(rows, v, grid_size),
)


def conv_taps_pay_off(x_shape: tuple[int, ...], window: tuple[int, int], stride: int, pad: int) -> bool:
    """
    Whether a conv of (N, C, H, W) images is computed by `conv_taps` rather than through
    patch matrices: stride 1, enough channels that each tap's GEMM is worth a call, and a
    grid margin that adds little GEMM work.
    """
    if stride != 1:
        return False
    c, h, w = x_shape[1:]
    (grid_h, grid_w), _ = pixel_grid((h, w), window, pad)
    out_h, out_w = window_count((h + 2 * pad, w + 2 * pad), window, 1)
    return c >= _TAPS_MIN_CHANNELS and grid_h * grid_w <= _TAPS_MAX_GRID_WASTE * out_h * out_w


_TAPS_MIN_CHANNELS = 16
# Grid pixels per output pixel the per-tap GEMMs may compute: a 3 x 3 conv on 2 x 2 images
# (grid 3 x 3) still beats the patch matrix, on 1 x 1 images (grid 2 x 2) it no longer does.
_TAPS_MAX_GRID_WASTE = 2.5


def window_maxima(x: np.ndarray, window: tuple[int, int], stride: int) -> tuple[np.ndarray, np.ndarray]:
    """
    The maximum of every window and which element is its first maximum (row-major order,
    as np.argmax).

    A plain function of plain arrays: the choice is piecewise constant in x, so it carries
    no gradient; `window_take(x, choice, ...)` is then max pooling (and may be handed the
    maxima found here so it need not gather them again).

    Inputs:
    - x: Array of shape (N, C, H, W)
    - window, stride: As for `sliding_windows`

    Returns a tuple of:
    - maxima: Array of shape (N, C, H', W')
    - choice: Integer array of shape (N, C, H', W'); choice = p * kw + q picks
      x[n, c, i * stride + p, j * stride + q]
    Both keep x's memory layout (channel-major after a conv), so ufuncs walk input and
    outputs in the same order.
    """
    n, c, h, w = x.shape
    out_size = window_count((h, w), window, stride)
    index_type = np.min_scalar_type(window[0] * window[1] - 1)
    maxima = np.empty_like(x[:, :, : out_size[0], : out_size[1]])
    choice = np.empty_like(maxima, dtype=index_type)

    def choose(first: int, last: int) -> None:
        for batch in _batch_chunks(last - first, x[0].nbytes, offset=first):
            _choose_first_maxima(x[batch], window, stride, maxima[batch], choice[batch])

    split_batch(choose, n, calls_blas=False)
    return maxima, choice


def _choose_first_maxima(xs: np.ndarray, window: tuple[int, int], stride: int, maxima: np.ndarray,
                         choice: np.ndarray) -> None:
    """window_maxima of a few images xs (N, C, H, W), written into maxima and choice (N, C, H', W')."""
    # Knock-out rounds between neighbouring candidates, each a whole-slice ufunc (no
    # per-window loop). On a tie the earlier offset stays, so the winner is the first
    # maximum; the left group of every match holds the smaller offsets.
    index_type = choice.dtype
    level = [(xs[at], i * window[1] + j) for (i, j), at in _window_offsets(window, stride, maxima.shape[2:])]
    while len(level) > 1:
        merged = [(np.maximum(va, vb), _winner(vb > va, ka, kb, index_type))
                  for (va, ka), (vb, kb) in zip(level[0::2], level[1::2])]
        level = merged + level[len(merged) * 2 :]
    maxima[...], choice[...] = level[0]


def _winner(right: np.ndarray, left_index, right_index, index_type: np.dtype) -> np.ndarray:
    """right_index where `right` holds, else left_index; each an offset (int) or an array of them."""
    if isinstance(left_index, int) and isinstance(right_index, int):
        if right_index == left_index + 1 and index_type.itemsize == 1:
            # Neighbouring offsets (the first round): the boolean's byte already is 0 or 1.
            won = right.view(index_type)
            return won + index_type.type(left_index) if left_index else won
    # left + right * (right_index - left_index) in the unsigned index type: wrapping
    # arithmetic, exact in the end, and several times faster than np.where on small integers.
    left = np.asarray(left_index, dtype=index_type)
    won = np.multiply(right, np.subtract(right_index, left, dtype=index_type), dtype=index_type)
    won += left
    return won


def _window_take(
    x: np.ndarray, choice: np.ndarray, window: tuple[int, int], stride: int, taken: np.ndarray | None = None
) -> np.ndarray:
    """
    One chosen element of every window: out[n, c, i, j] = x[n, c, i*stride + p, j*stride + q]
    with (p, q) = divmod(choice[n, c, i, j], kw). Linear in x.

    Inputs:
    - x: Array of shape (N, C, H, W)
    - choice: Integer array of shape (N, C, H', W'), e.g. from `window_maxima`
    - window, stride: The windows the choice refers to
    - taken: Optional, those very elements when the caller already has them (max pooling
      gets them with the choice); they are returned instead of gathered a second time

    Returns:
    - out: Array of shape (N, C, H', W')
    """
    if taken is not None:
        return taken
    out = np.empty_like(choice, dtype=x.dtype)
    for batch in _batch_chunks(x.shape[0], x[0].nbytes):
        _take_chosen(x[batch], choice[batch], window, stride, out[batch])
    return out


def _take_chosen(xs: np.ndarray, chosen: np.ndarray, window: tuple[int, int], stride: int, out: np.ndarray) -> None:
    """window_take of a few images xs (N, C, H, W), written into out (N, C, H', W')."""
    candidates = [xs[at] for _, at in _window_offsets(window, stride, chosen.shape[2:])]
    np.choose(chosen, candidates, out=out)


def _window_put(
    g: np.ndarray, choice: np.ndarray, image_size: tuple[int, int], window: tuple[int, int], stride: int
) -> np.ndarray:
    """
    Adjoint of `window_take`: each g[n, c, i, j] is added at the element its window chose.

    Inputs:
    - g: Array of shape (N, C, H', W')
    - choice, window, stride: As for `window_take`
    - image_size: (H, W) of the image

    Returns:
    - image: Array of shape (N, C, H, W), zero where no window chose the element
    """
    n, c = g.shape[:2]
    # Mixed memory layouts (g from a reshape is NCHW, choice follows the image, which is
    # channel-major after a conv) make every ufunc below stride badly: one quarter-size
    # copy of g into choice's layout is several times cheaper.
    g = _in_layout_of(g, choice)
    fill = np.empty_like if _windows_tile(image_size, window, stride, g.shape[2:]) else np.zeros_like
    image = fill(choice, dtype=g.dtype, shape=(n, c) + tuple(image_size))

    def put(first: int, last: int) -> None:
        for batch in _batch_chunks(last - first, image[0].nbytes, offset=first):
            _put_chosen(g[batch], choice[batch], window, stride, image[batch])

    split_batch(put, n, calls_blas=False)
    return image


def _windows_tile(image_size: tuple[int, int], window: tuple[int, int], stride: int,
                  out_size: tuple[int, int]) -> bool:
    """Whether the windows cover every element of the image exactly once (no zero fill needed)."""
    return window[0] == window[1] == stride and tuple(image_size) == (out_size[0] * stride, out_size[1] * stride)


def _put_chosen(gs: np.ndarray, chosen: np.ndarray, window: tuple[int, int], stride: int, image: np.ndarray) -> None:
    """window_put of a few images' gradients gs (N, C, H', W') into image (N, C, H, W), in place:
    zero-filled beforehand unless the windows tile it (their elements are then overwritten)."""
    overlapping = stride < max(window)
    for (i, j), at in _window_offsets(window, stride, gs.shape[2:]):
        picked = chosen == i * window[1] + j
        if overlapping:  # an element may be chosen by several windows
            image[at] += gs * picked
        else:
            np.multiply(gs, picked, out=image[at])


window_take = primitive(_window_take)
window_put = primitive(_window_put)
defvjp(
    window_take,
    lambda ans, x, choice, window, stride, taken=None: lambda g: window_put(g, choice, x.shape[2:], window, stride),
)
defvjp(
    window_put,
    lambda ans, g, choice, image_size, window, stride: lambda h: window_take(h, choice, window, stride),
)


# ------------------------------------------------------------------ a conv's output, max pooled
#
# A conv block that ends in max pooling without a batchnorm between (the notebook's
# three-layer net) only ever needs the pooled values of the conv. Formed a cache-sized block
# of images at a time, each block's conv output is pooled (and, backward, each block's
# pooled gradient put back) while still in cache: the full (N, F, H', W') output and its
# gradient never reach main memory. The choice of each window's first maximum is made on
# the values, as window_maxima makes it; given the choice, the pooled conv is bilinear in
# the images and the filters, and its three primitives close under their adjoints like
# conv_taps': conv_window_take (A), its transpose in the images (B) and its filter
# gradient (C), <A(x, w), g> = <x, B(g, w)> = <w, C(x, g)>.


class PooledConvShape(NamedTuple):
    """A conv's kernel (kh, kw) and stride, and the max pool's window and stride on its output."""

    kernel: tuple[int, int]
    stride: int
    pool: tuple[int, int]
    pool_stride: int


def _conv_blocks(image_size: tuple[int, int], f: int, k: int, dtype: np.dtype, shape: PooledConvShape, first: int,
                 last: int, x: np.ndarray | None = None):
    """
    Yield (start, stop, patches, conv) for cache-sized blocks of images first:last: a
    (K, images * pixels) patch matrix, the block's im2col of x when x is given, and a
    scratch (images, F, H', W') view of pixel-major (images * pixels, F) memory for the
    block's conv output (or its gradient): OpenBLAS multiplies patches.T @ w_mat.T, the
    pixels as rows, faster than w_mat @ patches at a conv's shapes. Both live in buffers
    of the calling thread, reused block after block.
    """
    conv_size = window_count(image_size, shape.kernel, shape.stride)
    pixels = conv_size[0] * conv_size[1]
    patches_of, conv_of = _scratch(first, last, k, pixels, dtype), _scratch(first, last, k, pixels, dtype, rows=f)
    for start, stop in _image_blocks(first, last, k, pixels, dtype.itemsize):
        patches = patches_of(stop - start)
        if x is not None:
            _im2col(x[start:stop], shape.kernel, shape.stride, patches)
        conv = conv_of(stop - start).reshape(stop - start, *conv_size, f).transpose(0, 3, 1, 2)
        yield start, stop, patches, conv


def _pixel_rows(conv: np.ndarray) -> np.ndarray:
    """The (images * pixels, F) matrix behind a block's (images, F, H', W') view from _conv_blocks."""
    return conv.transpose(0, 2, 3, 1).reshape(-1, conv.shape[1])


def _block_convs(x: np.ndarray, w_mat: np.ndarray, dtype: np.dtype, shape: PooledConvShape, first: int, last: int):
    """Yield (start, stop, conv): the conv output (images, F, H', W') of each of _conv_blocks' blocks of x."""
    for start, stop, patches, conv in _conv_blocks(x.shape[2:], *w_mat.shape, dtype, shape, first, last, x):
        np.matmul(patches.T, w_mat.T, out=_pixel_rows(conv))
        yield start, stop, conv


def _conv_window_maxima(x: np.ndarray, w_mat: np.ndarray, shape: PooledConvShape) -> tuple[np.ndarray, np.ndarray]:
    """
    window_maxima of a conv's output, the conv formed and pooled a block of images at a time.

    A plain function of plain arrays (the choice carries no gradient); conv_window_take
    with this choice is then the pooled conv, and may be handed these maxima.

    Inputs:
    - x: Padded images of shape (N, C, H, W)
    - w_mat: Filters as a matrix, shape (F, C * kh * kw)
    - shape: The conv's and the pool's windows and strides

    Returns a tuple of:
    - maxima: C-contiguous array of shape (N, F, Hp, Wp), the pooled conv (no bias)
    - choice: C-contiguous integer array of shape (N, F, Hp, Wp), as from window_maxima
      on the conv's output
    """
    conv_size = window_count(x.shape[2:], shape.kernel, shape.stride)
    pooled = (x.shape[0], w_mat.shape[0]) + window_count(conv_size, shape.pool, shape.pool_stride)
    dtype = np.result_type(x, w_mat)
    maxima = np.empty(pooled, dtype=dtype)
    choice = np.empty(pooled, dtype=np.min_scalar_type(shape.pool[0] * shape.pool[1] - 1))

    def forward(first: int, last: int) -> None:
        for start, stop, conv in _block_convs(x, w_mat, dtype, shape, first, last):
            _choose_first_maxima(conv, shape.pool, shape.pool_stride, maxima[start:stop], choice[start:stop])

    split_batch(forward, x.shape[0])
    return maxima, choice


def _conv_window_take(x: np.ndarray, w_mat: np.ndarray, choice: np.ndarray, shape: PooledConvShape,
                      taken: np.ndarray | None = None) -> np.ndarray:
    """
    The chosen element of every pool window of a conv's output: window_take(conv(x, w_mat),
    choice). Bilinear in x and w_mat.

    Inputs:
    - x: Padded images of shape (N, C, H, W)
    - w_mat: Filters as a matrix, shape (F, C * kh * kw)
    - choice: Integer array of shape (N, F, Hp, Wp), e.g. from conv_window_maxima
    - shape: The conv's and the pool's windows and strides
    - taken: Optional, those very values when the caller has them (conv_window_maxima
      finds them with the choice); returned instead of computed again

    Returns:
    - out: Array of shape (N, F, Hp, Wp)
    """
    if taken is not None:
        return taken
    dtype = np.result_type(x, w_mat)
    out = np.empty(choice.shape, dtype=dtype)

    def forward(first: int, last: int) -> None:
        for start, stop, conv in _block_convs(x, w_mat, dtype, shape, first, last):
            _take_chosen(conv, choice[start:stop], shape.pool, shape.pool_stride, out[start:stop])

    split_batch(forward, x.shape[0])
    return out


def _put_pooled_gradient(g: np.ndarray, choice: np.ndarray, shape: PooledConvShape, conv: np.ndarray) -> None:
    """The conv-output gradient of a block, window_put of its pooled gradient g, into conv."""
    if not _windows_tile(conv.shape[2:], shape.pool, shape.pool_stride, g.shape[2:]):
        conv[...] = 0
    _put_chosen(g, choice, shape.pool, shape.pool_stride, conv)


def _conv_window_put_transpose(g: np.ndarray, w_mat: np.ndarray, choice: np.ndarray, image_size: tuple[int, int],
                               shape: PooledConvShape) -> np.ndarray:
    """
    Adjoint of `conv_window_take` in its images: col2im of w_mat^T times the pooled gradient
    put back at the chosen elements. Bilinear in g and w_mat.

    Inputs:
    - g: Gradient of the pooled output, shape (N, F, Hp, Wp)
    - w_mat: Filters as a matrix, shape (F, C * kh * kw)
    - choice: Integer array of g's shape
    - image_size: (H, W) of the padded images
    - shape: The conv's and the pool's windows and strides

    Returns:
    - image: Array of shape (N, C, H, W) (channel-major memory)
    """
    n, k = g.shape[0], w_mat.shape[1]
    dtype = np.result_type(g, w_mat)
    image = np.zeros((k // (shape.kernel[0] * shape.kernel[1]), n) + tuple(image_size), dtype=dtype)
    w_t = w_mat.T

    def backward(first: int, last: int) -> None:
        for start, stop, patch_gradients, conv_gradient in _conv_blocks(image_size, *w_mat.shape, dtype, shape,
                                                                         first, last):
            _put_pooled_gradient(g[start:stop], choice[start:stop], shape, conv_gradient)
            np.matmul(w_t, _pixel_rows(conv_gradient).T, out=patch_gradients)
            _col2im_add(image[:, start:stop], patch_gradients, shape.kernel, shape.stride)

    split_batch(backward, n)
    return image.transpose(1, 0, 2, 3)


def _conv_window_weight_gradient(x: np.ndarray, g: np.ndarray, choice: np.ndarray,
                                 shape: PooledConvShape) -> np.ndarray:
    """
    Adjoint of `conv_window_take` in its filters: the conv's filter gradient from the pooled
    gradient g (N, F, Hp, Wp), put back at the chosen elements a block at a time. Bilinear
    in x and g; the threads' partial sums are added in range order.

    Returns:
    - dw_mat: Array of shape (F, C * kh * kw)
    """
    f, k = g.shape[1], x.shape[1] * shape.kernel[0] * shape.kernel[1]
    dtype = np.result_type(x, g)

    def partial_sum(first: int, last: int) -> np.ndarray:
        total = np.zeros((k, f), dtype=dtype)
        for start, stop, patches, conv_gradient in _conv_blocks(x.shape[2:], f, k, dtype, shape, first, last, x):
            _put_pooled_gradient(g[start:stop], choice[start:stop], shape, conv_gradient)
            total += patches @ _pixel_rows(conv_gradient)
        return total

    return np.ascontiguousarray(_summed_over_ranges(partial_sum, x.shape[0]).T)


conv_window_take = primitive(_conv_window_take)
conv_window_put_transpose = primitive(_conv_window_put_transpose)
conv_window_weight_gradient = primitive(_conv_window_weight_gradient)
conv_window_maxima = _conv_window_maxima
defvjp(
    conv_window_take,
    lambda ans, x, w_mat, choice, shape, taken=None: lambda g: conv_window_put_transpose(g, w_mat, choice,
                                                                                         x.shape[2:], shape),
    lambda ans, x, w_mat, choice, shape, taken=None: lambda g: conv_window_weight_gradient(x, g, choice, shape),
)
defvjp(
    conv_window_put_transpose,
    lambda ans, g, w_mat, choice, image_size, shape: lambda h: conv_window_take(h, w_mat, choice, shape),
    lambda ans, g, w_mat, choice, image_size, shape: lambda h: conv_window_weight_gradient(h, g, choice, shape),
)
defvjp(
    conv_window_weight_gradient,
    lambda ans, x, g, choice, shape: lambda v: conv_window_put_transpose(g, v, choice, x.shape[2:], shape),
    lambda ans, x, g, choice, shape: lambda v: conv_window_take(x, v, choice, shape),
)


@primitive
def correlate_valid(x: np.ndarray, w: np.ndarray) -> np.ndarray:
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
    return np.stack(per_filter, axis=1).astype(np.result_type(x, w), copy=False)


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


@primitive
def half_squared_norm(w: np.ndarray):
    """0.5 * sum(w ** 2), read in one BLAS dot product (float32 stays float32)."""
    flat = w.ravel()
    return 0.5 * np.dot(flat, flat)


def _half_squared_norm_vjp(ans, w):
    def vjp(g):
        if is_traced(g) or is_traced(w):  # differentiated again: stay traceable
            return g * w
        # A contribution that adds g * w into the gradient sum itself, block by block, the
        # way autograd's indexing VJPs add theirs: no full-size g * w array is written and
        # read back (for the 8.2M hidden weights, two of the five passes).
        return SparseObject(vspace(w), lambda total: _add_scaled(total, w, g))

    return vjp


def _add_scaled(total: np.ndarray, w: np.ndarray, scale) -> np.ndarray:
    """total += scale * w, in place, a cache-sized block at a time (autocnn.core.blockwise); returns total."""
    flat_total = total.reshape(-1)
    if not np.shares_memory(flat_total, total):  # reshape had to copy: add in total's own layout
        total += scale * w
        return total

    def add(total_block, w_block):
        total_block += scale * w_block

    for_each_block(add, flat_total, np.ravel(w))
    return total


defvjp(half_squared_norm, _half_squared_norm_vjp)


@primitive
def channel_sum(x: np.ndarray) -> np.ndarray:
    """
    Sum over every axis but axis 1 (the feature / channel axis), keeping the axes.

    Inputs:
    - x: Array of shape (N, C, ...)

    Returns:
    - sums: Array of shape (1, C, 1, ...), broadcastable against x
    """
    return np.sum(x, axis=(0,) + tuple(range(2, x.ndim)), keepdims=True)


# The adjoint of a sum is a broadcast: a read-only view of g, nothing is written. (np.sum's
# VJP materialises it as zeros plus g, two full-size passes.) Views reaching a gradient sum
# are never added into: autograd and autocnn.core.derive add them into arrays of their own.
defvjp(channel_sum, lambda ans, x: lambda g: anp.broadcast_to(g, anp.shape(x)))
