"""The primitives behind the fast conv and pool formulations, and those formulations.

`im2col` / `col2im` (patch matrices) and `window_take` / `window_put` (one element per
window) are the linear operators the default conv and max pool are built on. Each must be
the adjoint of its partner, differentiate to second order with autograd's own checker, and
give the reference's numbers in float64 to 1e-10 over strides, pads, odd and non-square
shapes, and ties.
"""

import numpy as np
import pytest
from autograd import make_vjp
from autograd.test_util import check_grads
from autograd.tracer import getval
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from autocnn.core import ops
import autocnn.core.blockwise
import autocnn.core.primitives
from autocnn.core.primitives import col2im, col2im_gemm, conv_gemm, gemm_tt, im2col, window_maxima, window_put, window_take
from reference.conv_layers import (
    conv_backward_naive,
    conv_forward_naive,
    max_pool_backward_naive,
    max_pool_forward_naive,
)

rng = np.random.RandomState(5)

# (x shape, window, stride): square, non-square, odd, strided, ragged, 1x1, whole image.
WINDOW_CASES = [
    ((2, 3, 7, 6), (3, 2), 1),
    ((2, 3, 8, 8), (3, 3), 2),
    ((1, 2, 9, 7), (2, 3), 3),
    ((3, 1, 5, 5), (1, 1), 1),
    ((2, 2, 6, 9), (4, 4), 2),
    ((1, 3, 4, 5), (4, 5), 1),
]

# (x shape, (F, HH, WW), stride, pad)
CONV_CASES = [
    ((2, 3, 7, 6), (4, 3, 2), 1, 0),
    ((2, 3, 8, 8), (4, 3, 3), 1, 1),
    ((3, 2, 9, 7), (5, 3, 3), 2, 1),
    ((1, 4, 10, 11), (3, 5, 3), 3, 2),
    ((2, 3, 5, 5), (2, 1, 1), 1, 0),
    ((2, 1, 6, 10), (3, 4, 4), 2, 0),
    ((1, 3, 32, 32), (2, 7, 7), 1, 3),
]

# (x shape, (pool_height, pool_width, stride)); the second does not tile (a ragged edge),
# which the primitives handle but the reference's input contract rejects.
POOL_CASES = [
    ((2, 3, 8, 8), (2, 2, 2)),
    ((2, 3, 7, 9), (2, 2, 2)),
    ((2, 3, 7, 7), (3, 3, 2)),
    ((3, 2, 6, 7), (2, 3, 1)),
    ((2, 2, 9, 8), (3, 2, 3)),
    ((1, 1, 5, 5), (1, 1, 1)),
    ((2, 3, 12, 12), (4, 4, 4)),
]


def im2col_by_definition(x, window, stride):
    """cols[(c, p, q), (n, i, j)] = x[n, c, i*stride + p, j*stride + q], one loop per index."""
    n, c, h, w = x.shape
    kh, kw = window
    out_h, out_w = 1 + (h - kh) // stride, 1 + (w - kw) // stride
    cols = np.zeros((c, kh, kw, n, out_h, out_w))
    for p in range(kh):
        for q in range(kw):
            for i in range(out_h):
                for j in range(out_w):
                    cols[:, p, q, :, i, j] = x[:, :, i * stride + p, j * stride + q].T
    return cols.reshape(c * kh * kw, n * out_h * out_w)


@pytest.mark.parametrize("shape,window,stride", WINDOW_CASES)
def test_im2col_matches_its_definition(shape, window, stride):
    x = rng.randn(*shape)
    cols = im2col(x, window, stride)
    assert cols.flags.c_contiguous
    np.testing.assert_array_equal(cols, im2col_by_definition(x, window, stride))


@pytest.mark.parametrize("shape,window,stride", WINDOW_CASES)
def test_col2im_is_the_adjoint_of_im2col(shape, window, stride):
    """<im2col(x), c> == <x, col2im(c)> for any x, c: the defining property."""
    x = rng.randn(*shape)
    c = rng.randn(*im2col(x, window, stride).shape)
    lhs = np.sum(im2col(x, window, stride) * c)
    rhs = np.sum(x * col2im(c, shape[2:], window, stride))
    assert abs(lhs - rhs) <= 1e-12 * max(1.0, abs(lhs))


@pytest.mark.parametrize("shape,window,stride", WINDOW_CASES)
def test_col2im_gives_the_same_image_whatever_the_layout_of_cols(shape, window, stride):
    """col2im reads cols through a reshaped view, so any memory layout must give the same image."""
    x = rng.randn(*shape)
    c = rng.randn(*im2col(x, window, stride).shape)
    stored_transposed = np.ascontiguousarray(c.T).T  # same values, memory in (M, K) order
    np.testing.assert_allclose(col2im(stored_transposed, shape[2:], window, stride),
                               col2im(c, shape[2:], window, stride), rtol=0, atol=1e-12)


@pytest.mark.parametrize("shape,window,stride", WINDOW_CASES[:4])
def test_im2col_and_col2im_second_order(shape, window, stride):
    x = rng.randn(*shape)
    check_grads(lambda x: im2col(x, window, stride), modes=["rev"], order=2)(x)
    c = rng.randn(*im2col(x, window, stride).shape)
    check_grads(lambda c: col2im(c, shape[2:], window, stride), modes=["rev"], order=2)(c)


@pytest.mark.parametrize("k,m,f", [(1, 1, 1), (3, 7, 2), (12, 40, 5)])
def test_gemm_tt_is_the_transposed_product_and_differentiates_twice(k, m, f):
    a, b = rng.randn(k, m), rng.randn(f, k)
    np.testing.assert_allclose(gemm_tt(a, b), a.T @ b.T, rtol=1e-12, atol=1e-12)
    check_grads(gemm_tt, modes=["rev"], order=2)(a, b)


@pytest.mark.parametrize("shape,pool", POOL_CASES)
def test_window_maxima_are_the_maxima_and_the_first_argmax(shape, pool):
    ph, pw, stride = pool
    x = rng.randn(*shape)
    x[0, 0] = np.round(x[0, 0])  # many ties
    maxima, choice = window_maxima(x, (ph, pw), stride)
    np.testing.assert_array_equal(maxima, window_take(x, choice, (ph, pw), stride))
    out_h, out_w = choice.shape[2:]
    for i in range(out_h):
        for j in range(out_w):
            window = x[:, :, i * stride : i * stride + ph, j * stride : j * stride + pw].reshape(shape[:2] + (-1,))
            np.testing.assert_array_equal(choice[:, :, i, j], np.argmax(window, axis=2))
            np.testing.assert_array_equal(maxima[:, :, i, j], np.max(window, axis=2))


@pytest.mark.parametrize("shape,pool", POOL_CASES)
def test_window_put_is_the_adjoint_of_window_take(shape, pool):
    ph, pw, stride = pool
    x = rng.randn(*shape)
    _, choice = window_maxima(rng.randn(*shape), (ph, pw), stride)
    g = rng.randn(*choice.shape)
    lhs = np.sum(window_take(x, choice, (ph, pw), stride) * g)
    rhs = np.sum(x * window_put(g, choice, shape[2:], (ph, pw), stride))
    assert abs(lhs - rhs) <= 1e-12 * max(1.0, abs(lhs))


@pytest.mark.parametrize("shape,pool", POOL_CASES[:4])
def test_window_take_and_put_second_order(shape, pool):
    ph, pw, stride = pool
    x = rng.randn(*shape)
    _, choice = window_maxima(x, (ph, pw), stride)
    check_grads(lambda x: window_take(x, choice, (ph, pw), stride), modes=["rev"], order=2)(x)
    g = rng.randn(*choice.shape)
    check_grads(lambda g: window_put(g, choice, shape[2:], (ph, pw), stride), modes=["rev"], order=2)(g)


def assert_conv_matches_reference(x, w, b, stride, pad, tol=1e-10):
    out, cache = conv_forward_naive(x, w, b, {"stride": stride, "pad": pad})
    vjp, ours = make_vjp(lambda args: ops.conv2d(*args, stride, pad, impl="fast"))((x, w, b))
    g = rng.randn(*out.shape)
    np.testing.assert_allclose(ours, out, rtol=0, atol=tol)
    np.testing.assert_allclose(ours, ops.conv2d(x, w, b, stride, pad, impl="scipy"), rtol=0, atol=tol)
    for derived, written in zip(vjp(g), conv_backward_naive(g, cache)):
        np.testing.assert_allclose(derived, written, rtol=0, atol=tol)


@pytest.mark.parametrize("shape,filters,stride,pad", CONV_CASES)
def test_fast_conv_matches_reference_in_float64(shape, filters, stride, pad):
    f, kh, kw = filters
    x, w, b = rng.randn(*shape), rng.randn(f, shape[1], kh, kw), rng.randn(f)
    assert_conv_matches_reference(x, w, b, stride, pad)


def split_between(monkeypatch, threads: int) -> None:
    """Have autocnn.core.blockwise split a batch between this many threads, whatever BLAS runs with."""
    monkeypatch.setattr(autocnn.core.blockwise, "blas_threads", lambda: threads)


@pytest.mark.parametrize("threads", [1, 3])
@pytest.mark.parametrize("block_fraction", [0.0, 0.5])
@pytest.mark.parametrize("shape,filters,stride,pad", CONV_CASES)
def test_fast_conv_in_image_blocks_matches_reference_in_float64(monkeypatch, shape, filters, stride, pad, block_fraction,
                                                                threads):
    # Patch matrices not kept whole are formed a block of images at a time (one image per
    # block, or half the batch), by one thread or split between three: the same layer and
    # gradients as the hand-written one.
    f, kh, kw = filters
    padded = (shape[0], shape[1], shape[2] + 2 * pad, shape[3] + 2 * pad)
    patch_bytes = 8 * shape[1] * kh * kw * int(np.prod(autocnn.core.primitives.window_count(padded[2:], (kh, kw), stride)))
    monkeypatch.setattr(autocnn.core.primitives, "_PATCH_BLOCK_BYTES", max(1, int(block_fraction * patch_bytes * shape[0])))
    monkeypatch.setattr(autocnn.core.primitives, "_KEPT_PATCH_BYTES", 0)
    split_between(monkeypatch, threads)
    assert not autocnn.core.primitives.patch_matrix_is_kept(padded, (kh, kw), stride, 8)
    x, w, b = rng.randn(*shape), rng.randn(f, shape[1], kh, kw), rng.randn(f)
    assert_conv_matches_reference(x, w, b, stride, pad)


@pytest.mark.parametrize("shape,filters,stride,pad", CONV_CASES[:4])
def test_fast_conv_second_order(shape, filters, stride, pad):
    f, kh, kw = filters
    x, w, b = rng.randn(*shape), rng.randn(f, shape[1], kh, kw), rng.randn(f)
    check_grads(lambda x, w, b: ops.conv2d(x, w, b, stride, pad, impl="fast"), modes=["rev"], order=2)(x, w, b)


def assert_pool_matches_reference(x, ph, pw, stride):
    out, cache = max_pool_forward_naive(x, {"pool_height": ph, "pool_width": pw, "stride": stride})
    vjp, ours = make_vjp(lambda x: ops.max_pool2d(x, ph, pw, stride, impl="fast"))(x)
    g = rng.randn(*out.shape)
    np.testing.assert_array_equal(ours, out)
    np.testing.assert_allclose(vjp(g), max_pool_backward_naive(g, cache), rtol=0, atol=1e-12)


@pytest.mark.parametrize("shape,pool", [case for case in POOL_CASES if case[0][2:] != (7, 9)])
def test_fast_pool_matches_reference_including_ties(shape, pool):
    x = rng.randn(*shape)
    x[:, 0] = 0.0  # relu-like plateaus: every window of channel 0 is a tie
    assert_pool_matches_reference(x, *pool)


@pytest.mark.parametrize("shape,pool", POOL_CASES[:4])
def test_fast_pool_second_order(shape, pool):
    check_grads(lambda x: ops.max_pool2d(x, *pool, impl="fast"), modes=["rev"], order=2)(rng.randn(*shape))


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(1, 3), c=st.integers(1, 3), f=st.integers(1, 3),
    h=st.integers(1, 9), w=st.integers(1, 9), kh=st.integers(1, 4), kw=st.integers(1, 4),
    stride=st.integers(1, 3), pad=st.integers(0, 2), seed=st.integers(0, 2**16),
)
def test_fast_conv_matches_reference_on_drawn_shapes(n, c, f, h, w, kh, kw, stride, pad, seed):
    # Inside the reference's input contract: the window fits and the stride divides the span.
    assume(kh <= h + 2 * pad and kw <= w + 2 * pad and (h + 2 * pad - kh) % stride == 0 and (w + 2 * pad - kw) % stride == 0)
    draw = np.random.RandomState(seed)
    assert_conv_matches_reference(draw.randn(n, c, h, w), draw.randn(f, c, kh, kw), draw.randn(f), stride, pad)


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(1, 3), c=st.integers(1, 3), h=st.integers(1, 9), w=st.integers(1, 9),
    ph=st.integers(1, 4), pw=st.integers(1, 4), stride=st.integers(1, 4), seed=st.integers(0, 2**16),
)
def test_fast_pool_matches_reference_on_drawn_shapes(n, c, h, w, ph, pw, stride, seed):
    assume(ph <= h and pw <= w and (h - ph) % stride == 0 and (w - pw) % stride == 0)
    x = np.random.RandomState(seed).randn(n, c, h, w)
    x[:, :, ::2] = np.maximum(x[:, :, ::2], 0.0)  # some ties at zero
    assert_pool_matches_reference(x, ph, pw, stride)


def test_float32_stays_float32():
    """No silent upcast: float32 in, float32 values and gradients out (BLAS speed)."""
    x, w, b = (a.astype(np.float32) for a in (rng.randn(2, 3, 8, 8), rng.randn(4, 3, 3, 3), rng.randn(4)))
    vjp, out = make_vjp(lambda args: ops.max_pool2d(ops.conv2d(*args, 1, 1), 2, 2, 2))((x, w, b))
    assert out.dtype == np.float32
    assert all(grad.dtype == np.float32 for grad in vjp(np.ones_like(out)))


@pytest.mark.parametrize("shape,pool", POOL_CASES)
@pytest.mark.parametrize("axes", [(0, 2, 3, 1), (1, 0, 2, 3)], ids=["channels-last", "channel-major"])
def test_pool_is_the_same_whatever_the_memory_layout(shape, pool, axes):
    """After a conv the image is a channel-major array viewed as NCHW; results must not depend on it."""
    x = rng.randn(*shape)
    x_relaid = np.ascontiguousarray(x.transpose(axes)).transpose(np.argsort(axes))
    vjp, out = make_vjp(lambda x: ops.max_pool2d(x, *pool, impl="fast"))(x)
    vjp_relaid, out_relaid = make_vjp(lambda x: ops.max_pool2d(x, *pool, impl="fast"))(x_relaid)
    g = rng.randn(*out.shape)
    np.testing.assert_array_equal(out_relaid, out)
    np.testing.assert_array_equal(vjp_relaid(g), vjp(g))


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("images_per_block", [1, 2, 100])
@pytest.mark.parametrize("shape,window,stride", WINDOW_CASES)
def test_col2im_gemm_is_col2im_of_the_product_whatever_the_blocks(monkeypatch, shape, window, stride, images_per_block,
                                                                   threads):
    # A conv's input gradient is formed a few images at a time in each thread; force 1- and
    # 2-image blocks (ragged last ones too), one block for all, one thread and two.
    split_between(monkeypatch, threads)
    x = rng.randn(*shape)
    f, k = 3, shape[1] * window[0] * window[1]
    rows = im2col(x, window, stride).shape[1]
    w_mat, g = rng.randn(f, k), rng.randn(rows, f)
    pixels = rows // shape[0]
    monkeypatch.setattr(autocnn.core.primitives, "_PATCH_BLOCK_BYTES", images_per_block * k * pixels * 8)
    expected = col2im(w_mat.T @ g.T, shape[2:], window, stride)
    np.testing.assert_allclose(col2im_gemm(w_mat, g, shape[2:], window, stride), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("images_per_block", [1, 2, 100])
@pytest.mark.parametrize("shape,window,stride", WINDOW_CASES)
def test_conv_gemm_and_its_filter_gradient_whatever_the_blocks(monkeypatch, shape, window, stride, images_per_block,
                                                                threads):
    # The forward GEMM and dW form the patches a few images at a time in each thread; force
    # 1- and 2-image blocks (ragged last ones too), one block for all, one thread and two:
    # the same numbers as one GEMM.
    split_between(monkeypatch, threads)
    x = rng.randn(*shape)
    f, k = 3, shape[1] * window[0] * window[1]
    cols = im2col(x, window, stride)
    w_mat, g = rng.randn(f, k), rng.randn(cols.shape[1], f)
    pixels = cols.shape[1] // shape[0]
    monkeypatch.setattr(autocnn.core.primitives, "_PATCH_BLOCK_BYTES", images_per_block * k * pixels * 8)
    for kept in (None, cols):  # formed in blocks, or handed in whole
        np.testing.assert_allclose(conv_gemm(x, w_mat, kept, window, stride), cols.T @ w_mat.T, rtol=1e-12, atol=1e-12)
        vjp, _ = make_vjp(lambda w_mat: conv_gemm(x, w_mat, kept, window, stride))(w_mat)
        np.testing.assert_allclose(vjp(g), (cols @ g).T, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("shape,window,stride", WINDOW_CASES[:3])
def test_conv_gemm_and_col2im_gemm_second_order(shape, window, stride):
    x = rng.randn(*shape)
    f, k = 2, shape[1] * window[0] * window[1]
    w_mat = rng.randn(f, k)
    g = rng.randn(im2col(x, window, stride).shape[1], f)
    check_grads(lambda x, w_mat: conv_gemm(x, w_mat, None, window, stride), modes=["rev"], order=2)(x, w_mat)
    # cols a plain constant, as ops.conv2d hands it in for small batches; the gradients still follow x.
    check_grads(lambda x, w_mat: conv_gemm(x, w_mat, im2col(getval(x), window, stride), window, stride),
                modes=["rev"], order=2)(x, w_mat)
    check_grads(lambda w_mat, g: col2im_gemm(w_mat, g, shape[2:], window, stride), modes=["rev"], order=2)(w_mat, g)


def test_fast_conv_mixed_second_derivative_follows_x_through_the_patches():
    # dW is formed from patch blocks of plain values when nothing is traced; differentiated
    # again with respect to x it must follow x (check_grads' second order does not reach
    # this mixed term).
    import autograd
    import autograd.numpy as anp

    x, w, b = rng.randn(2, 3, 7, 6), rng.randn(2, 3, 3, 2), rng.randn(2)
    g = rng.randn(*ops.conv2d(x, w, b, 1, 1).shape)
    v = rng.randn(*w.shape)

    def dw_along_v(x):
        dw = autograd.grad(lambda w: anp.sum(ops.conv2d(x, w, b, 1, 1, impl="fast") * g))(w)
        return anp.sum(dw * v)

    direction, eps = rng.randn(*x.shape), 1e-6
    numerical = (dw_along_v(x + eps * direction) - dw_along_v(x - eps * direction)) / (2 * eps)
    assert np.sum(autograd.grad(dw_along_v)(x) * direction) == pytest.approx(numerical, rel=1e-6)


@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("m,k,n", [(300, 200, 100), (40, 300, 700), (3, 4, 5)])
def test_split_matmul_is_the_product_whatever_the_threads(monkeypatch, threads, m, k, n):
    # Split by rows (tall), by columns (wide), and too small to split.
    from autocnn.core.primitives import matmul

    monkeypatch.setattr(autocnn.core.blockwise, "blas_threads", lambda: threads)
    a, b = rng.randn(m, k), rng.randn(k, n)
    out = matmul(a, b)
    assert out.flags.c_contiguous
    np.testing.assert_allclose(out, a @ b, rtol=1e-13, atol=1e-12)
    vjp, _ = make_vjp(lambda args: matmul(*args))((a, b))
    g = rng.randn(m, n)
    da, db = vjp(g)
    np.testing.assert_allclose(da, g @ b.T, rtol=1e-13, atol=1e-12)
    np.testing.assert_allclose(db, a.T @ g, rtol=1e-13, atol=1e-12)
    assert db.flags.c_contiguous


def test_split_matmul_second_order_and_float32():
    from autocnn.core.primitives import matmul

    check_grads(lambda a, b: matmul(a, b), modes=["rev"], order=2)(rng.randn(4, 3), rng.randn(3, 5))
    a, b = rng.randn(600, 90).astype(np.float32), rng.randn(90, 80).astype(np.float32)
    assert matmul(a, b).dtype == np.float32
