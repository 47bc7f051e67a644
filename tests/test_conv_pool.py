"""A conv and the max pool after it as one op (autocnn.core.ops.conv2d_max_pool).

The conv's output is formed and pooled a cache-sized block of images at a time, and its
gradient put back and multiplied the same way: `conv_window_take` (the pooled conv, given
each window's choice) and its two adjoints. The op must be max_pool2d(conv2d(...)) to
rounding, give the reference's conv-relu-pool layer and gradients in float64, whatever the
threads and blocks, differentiate to second order, and never hold the conv's full output.
"""

import tracemalloc

import numpy as np
import pytest
from autograd import make_vjp
from autograd.test_util import check_grads

import autocnn.core.blockwise
import autocnn.core.primitives as primitives
from autocnn.core import ops
from autocnn.core.primitives import (PooledConvShape, conv_window_maxima, conv_window_put_transpose, conv_window_take,
                                     conv_window_weight_gradient, window_maxima)
from reference.layer_utils import conv_relu_pool_backward, conv_relu_pool_forward

rng = np.random.RandomState(5)

# (x shape, (F, k), pad, pool): the >65% net's layer shrunk, 3x3 same, no pad, pools that
# leave a margin of the conv's output unpooled (7x9 by 2, 8x8 by 3), more filters than
# patch rows (1x1 kernel, F > C), one image.
CASES = [
    ((3, 3, 12, 12), (4, 7), 3, 2),
    ((2, 4, 8, 8), (5, 3), 1, 2),
    ((2, 2, 9, 11), (3, 3), 0, 2),
    ((2, 3, 8, 8), (2, 3), 1, 3),
    ((2, 2, 6, 6), (7, 1), 0, 2),
    ((1, 3, 6, 6), (3, 3), 1, 2),
]


def unfused(x, w, b, pad, pool):
    return ops.max_pool2d(ops.conv2d(x, w, b, 1, pad), pool, pool, pool)


@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("shape,filters,pad,pool", CASES)
def test_equals_max_pool_of_conv_in_float64(monkeypatch, shape, filters, pad, pool, threads):
    monkeypatch.setattr(autocnn.core.blockwise, "blas_threads", lambda: threads)
    f, k = filters
    x, w, b = rng.randn(*shape), rng.randn(f, shape[1], k, k), rng.randn(f)
    vjp_fused, fused = make_vjp(lambda args: ops.conv2d_max_pool(*args, pad, pool))((x, w, b))
    vjp_plain, plain = make_vjp(lambda args: unfused(*args, pad, pool))((x, w, b))
    np.testing.assert_allclose(fused, plain, rtol=0, atol=1e-12)
    g = rng.randn(*plain.shape)
    for mine, theirs in zip(vjp_fused(g), vjp_plain(g)):
        np.testing.assert_allclose(mine, theirs, rtol=0, atol=1e-11)


@pytest.mark.parametrize("block_bytes", [1, 3 * 4 * 49 * 144 * 8 + 8, 2**30])
def test_matches_the_reference_conv_relu_pool_whatever_the_blocks(monkeypatch, block_bytes):
    # One image per block, a ragged block (two images and a bit), one block for all.
    monkeypatch.setattr(primitives, "_PATCH_BLOCK_BYTES", block_bytes)
    monkeypatch.setattr(autocnn.core.blockwise, "blas_threads", lambda: 2)
    x, w, b = rng.randn(5, 3, 12, 12), rng.randn(4, 3, 7, 7), rng.randn(4)
    conv_param, pool_param = {"stride": 1, "pad": 3}, {"pool_height": 2, "pool_width": 2, "stride": 2}
    out, cache = conv_relu_pool_forward(x, w, b, conv_param, pool_param)
    vjp, ours = make_vjp(lambda args: ops.relu(ops.conv2d_max_pool(*args, 3, 2)))((x, w, b))
    np.testing.assert_allclose(ours, out, rtol=0, atol=1e-11)
    g = rng.randn(*out.shape)
    for derived, written in zip(vjp(g), conv_relu_pool_backward(g, cache)):
        np.testing.assert_allclose(derived, written, rtol=0, atol=1e-11)


def test_the_choice_is_the_first_maximum_of_the_conv_output():
    x_pad, w_mat = rng.randn(3, 2, 9, 9), rng.randn(4, 2 * 3 * 3)
    x_pad[0] = 0  # image 0's conv output is all zeros: every window a tie, won by its first element
    shape = PooledConvShape((3, 3), 1, (2, 2), 2)
    conv = np.einsum("fk,knp->nfp", w_mat, primitives.im2col(x_pad, (3, 3), 1).reshape(18, 3, 49)).reshape(3, 4, 7, 7)
    maxima, choice = conv_window_maxima(x_pad, w_mat, shape)
    expected_maxima, expected_choice = window_maxima(conv, (2, 2), 2)
    np.testing.assert_allclose(maxima, expected_maxima, rtol=1e-13)
    np.testing.assert_array_equal(choice, expected_choice)
    np.testing.assert_array_equal(choice[0], 0)
    assert maxima.flags.c_contiguous and choice.flags.c_contiguous
    np.testing.assert_allclose(conv_window_take(x_pad, w_mat, choice, shape), maxima, rtol=1e-13)


@pytest.mark.parametrize("pool,pool_stride", [((2, 2), 2), ((3, 3), 2), ((2, 3), 1)])
def test_the_three_pooled_conv_primitives_are_adjoint(pool, pool_stride):
    """<A(x, w), g> = <x, B(g, w)> = <w, C(x, g)>, overlapping pool windows included."""
    shape = PooledConvShape((3, 2), 1, pool, pool_stride)
    x, w_mat = rng.randn(2, 3, 9, 8), rng.randn(4, 3 * 3 * 2)
    _, choice = conv_window_maxima(x, w_mat, shape)
    g = rng.randn(*choice.shape)
    forward = np.sum(conv_window_take(x, w_mat, choice, shape) * g)
    assert np.sum(x * conv_window_put_transpose(g, w_mat, choice, x.shape[2:], shape)) == pytest.approx(forward,
                                                                                                          rel=1e-12)
    assert np.sum(w_mat * conv_window_weight_gradient(x, g, choice, shape)) == pytest.approx(forward, rel=1e-12)


def test_second_order():
    x, w, b = rng.randn(2, 2, 6, 6), rng.randn(3, 2, 3, 3), rng.randn(3)
    check_grads(lambda x, w, b: ops.conv2d_max_pool(x, w, b, 1, 2), modes=["rev"], order=2)(x, w, b)
    shape = PooledConvShape((3, 3), 1, (3, 3), 2)  # overlapping windows: the put adds
    x_pad, w_mat = rng.randn(2, 2, 8, 8), rng.randn(3, 18)
    _, choice = conv_window_maxima(x_pad, w_mat, shape)
    g = rng.randn(*choice.shape)
    check_grads(lambda x, w: conv_window_take(x, w, choice, shape), modes=["rev"], order=2)(x_pad, w_mat)
    check_grads(lambda g, w: conv_window_put_transpose(g, w, choice, (8, 8), shape), modes=["rev"], order=2)(g, w_mat)
    check_grads(lambda x, g: conv_window_weight_gradient(x, g, choice, shape), modes=["rev"], order=2)(x_pad, g)


def test_float32_stays_float32():
    x, w, b = (rng.randn(*shape).astype(np.float32) for shape in ((2, 3, 8, 8), (4, 3, 3, 3), (4,)))
    vjp, out = make_vjp(lambda args: ops.conv2d_max_pool(*args, 1, 2))((x, w, b))
    assert out.dtype == np.float32
    assert all(grad.dtype == np.float32 for grad in vjp(np.ones_like(out)))


def peak_traced_bytes(function, *args) -> int:
    tracemalloc.start()
    try:
        function(*args)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_the_conv_output_is_never_held_whole(monkeypatch):
    # The >65% net's layer on 64 images, float64: conv output 16 MB, patch matrix 74 MB.
    # Conv then pool holds both at some point; the fused op holds neither (each thread
    # only a 2 MB block of patches), so what it holds grows with the images' own size.
    monkeypatch.setattr(autocnn.core.blockwise, "blas_threads", lambda: 2)
    x, w, b = rng.randn(64, 3, 32, 32), rng.randn(32, 3, 7, 7), rng.randn(32)

    def forward_and_backward(op):
        vjp, out = make_vjp(op)((x, w, b))
        vjp(np.ones_like(out))

    fused = peak_traced_bytes(forward_and_backward, lambda args: ops.conv2d_max_pool(*args, 3, 2))
    separate = peak_traced_bytes(forward_and_backward, lambda args: unfused(*args, 3, 2))
    assert fused < separate / 3, f"fused {fused / 2**20:.1f} MB, separate {separate / 2**20:.1f} MB"


def test_models_without_batchnorm_pool_their_convs_in_one_op(monkeypatch):
    from autocnn.core.models import ConvNet, ThreeLayerConvNet

    calls = []
    monkeypatch.setattr(ops, "conv2d_max_pool", lambda *args: calls.append(args) or ops.max_pool2d(
        ops.conv2d(*args[:3], 1, args[3]), args[4], args[4], args[4]))
    X, y = rng.randn(2, 3, 8, 8), np.array([1, 2])
    ThreeLayerConvNet(input_dim=(3, 8, 8), num_filters=2, filter_size=3, hidden_dim=4, dtype=np.float64).loss(X, y)
    assert len(calls) == 1
    ConvNet(input_dim=(3, 8, 8), blocks=((2, 2), (3,)), hidden_dims=(4,), use_batchnorm=False,
            dtype=np.float64).loss(X, y)
    assert len(calls) == 3  # each block's last conv
    ConvNet(input_dim=(3, 8, 8), blocks=((2,),), hidden_dims=(4,), use_batchnorm=True, dtype=np.float64).loss(X, y)
    ThreeLayerConvNet(input_dim=(3, 8, 8), num_filters=2, filter_size=3, hidden_dim=4, dtype=np.float64,
                      conv_impl="scipy").loss(X, y)
    assert len(calls) == 3  # a batchnorm between, or another formulation: conv and pool apart
