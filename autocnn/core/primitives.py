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
* ``conv_gemm`` is the conv layer's GEMM as one node of x and the filters (bilinear),
  formed a cache-sized block of images at a time, the batch split between threads
  (``autocnn.core.blockwise.split_batch``), and so are its VJPs: dW forms the patch blocks
  again, and the x-VJP ``col2im_gemm`` (bilinear) the patch-gradient blocks; no matrix
  the size of im2col's is ever held.
* ``window_take`` picks one element of every window (max pooling picks the maximum);
  its adjoint ``window_put`` puts values back at the picked places. The choice is an
  integer argument, not differentiated, so both are linear in their array argument.
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

from typing import Callable

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
    views = np.lib.stride_tricks.sliding_window_view(x, window, axis=(2, 3))
    return views[:, :, ::stride, ::stride]


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


def _scratch(first: int, last: int, k: int, pixels: int, dtype: np.dtype) -> Callable[[int], np.ndarray]:
    """
    A thread's patch-block buffer, sized for the largest of its blocks and reused for each:
    block(images) is a C-contiguous (k, images * pixels) array in it.
    """
    images = max(stop - start for start, stop in _image_blocks(first, last, k, pixels, dtype.itemsize))
    buffer = np.empty(k * images * pixels, dtype=dtype)
    return lambda count: buffer[: k * count * pixels].reshape(k, count * pixels)


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

    total, *others = split_batch(partial_sum, n)
    for other in others:
        total += other
    return total.T


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
            xs = x[batch]
            # Knock-out rounds between neighbouring candidates, each a whole-slice ufunc (no
            # per-window loop). On a tie the earlier offset stays, so the winner is the first
            # maximum; the left group of every match holds the smaller offsets.
            level = [(xs[at], i * window[1] + j) for (i, j), at in _window_offsets(window, stride, out_size)]
            while len(level) > 1:
                merged = [(np.maximum(va, vb), _winner(vb > va, ka, kb, index_type))
                          for (va, ka), (vb, kb) in zip(level[0::2], level[1::2])]
                level = merged + level[len(merged) * 2 :]
            maxima[batch], choice[batch] = level[0]

    split_batch(choose, n, calls_blas=False)
    return maxima, choice


def _winner(right: np.ndarray, left_index, right_index, index_type: np.dtype) -> np.ndarray:
    """right_index where `right` holds, else left_index; each an offset (int) or an array of them."""
    if isinstance(left_index, int) and isinstance(right_index, int):
        if right_index == left_index + 1 and index_type.itemsize == 1:
            # Neighbouring offsets (the first round): the boolean's byte already is 0 or 1.
            won = right.view(index_type)
            return won + index_type.type(left_index) if left_index else won
        left_index, right_index = index_type.type(left_index), index_type.type(right_index)
    return np.where(right, right_index, left_index)


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
        xs = x[batch]
        candidates = [xs[at] for _, at in _window_offsets(window, stride, choice.shape[2:])]
        np.choose(choice[batch], candidates, out=out[batch])
    return out


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
    n, c, out_h, out_w = g.shape
    # Mixed memory layouts (g from a reshape is NCHW, choice follows the image, which is
    # channel-major after a conv) make every ufunc below stride badly: one quarter-size
    # copy of g into choice's layout is several times cheaper.
    g = _in_layout_of(g, choice)
    overlapping = stride < max(window)
    # Windows that tile the image exactly write every element once: no zero fill needed.
    tiles = window[0] == window[1] == stride and tuple(image_size) == (out_h * stride, out_w * stride)
    image = (np.empty_like if tiles else np.zeros_like)(choice, dtype=g.dtype, shape=(n, c) + tuple(image_size))

    def put(first: int, last: int) -> None:
        for batch in _batch_chunks(last - first, image[0].nbytes, offset=first):
            gs, chosen, block = g[batch], choice[batch], image[batch]
            for (i, j), at in _window_offsets(window, stride, (out_h, out_w)):
                picked = chosen == i * window[1] + j
                if overlapping:  # an element may be chosen by several windows
                    block[at] += gs * picked
                else:
                    np.multiply(gs, picked, out=block[at])

    split_batch(put, n, calls_blas=False)
    return image


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
