"""The autograd primitives and the conv/pool formulations built on them.

Primitives are the only places autograd is told a VJP; each VJP is written with the same
primitives, so autograd's own checker must pass to second order.
"""

import numpy as np
import pytest
from autograd.test_util import check_grads

from autocnn.core import ops
from autocnn.core.primitives import correlate_valid, overlap_add, sliding_windows

rng = np.random.RandomState(0)


def test_correlate_valid_matches_definition():
    x, w = rng.randn(2, 3, 6, 5), rng.randn(4, 3, 3, 2)
    expected = np.zeros((2, 4, 4, 4))
    for i in range(4):
        for j in range(4):
            expected[:, :, i, j] = np.tensordot(x[:, :, i : i + 3, j : j + 2], w, axes=([1, 2, 3], [1, 2, 3]))
    np.testing.assert_allclose(correlate_valid(x, w), expected, rtol=1e-12, atol=1e-12)


def test_correlate_valid_second_order():
    check_grads(correlate_valid, modes=["rev"], order=2)(rng.randn(2, 3, 6, 5), rng.randn(4, 3, 3, 2))


@pytest.mark.parametrize("window,stride", [((3, 2), 1), ((3, 3), 2), ((2, 2), 2), ((1, 4), 3)])
def test_windows_second_order(window, stride):
    x = rng.randn(2, 3, 7, 6)
    check_grads(lambda x: sliding_windows(x, window, stride), modes=["rev"], order=2)(x)
    patches = sliding_windows(x, window, stride)
    check_grads(lambda p: overlap_add(p, x.shape[2:], stride), modes=["rev"], order=2)(np.array(patches))


def test_overlap_add_is_the_adjoint_of_sliding_windows():
    """<windows(x), p> == <x, overlap_add(p)> for any x, p: the defining property."""
    x = rng.randn(2, 3, 9, 7)
    patches = rng.randn(*sliding_windows(x, (3, 2), 2).shape)
    lhs = np.sum(sliding_windows(x, (3, 2), 2) * patches)
    rhs = np.sum(x * overlap_add(patches, x.shape[2:], 2))
    assert abs(lhs - rhs) < 1e-10 * abs(lhs)


@pytest.mark.parametrize("impl", ops.CONV_IMPLS)
@pytest.mark.parametrize("stride,pad", [(1, 0), (1, 1), (2, 1), (3, 2)])
def test_conv_impls_agree_and_differentiate_twice(impl, stride, pad):
    x, w, b = rng.randn(2, 3, 7, 6), rng.randn(4, 3, 3, 2), rng.randn(4)
    expected = ops.conv2d(x, w, b, stride, pad, impl="scipy")
    np.testing.assert_allclose(ops.conv2d(x, w, b, stride, pad, impl=impl), expected, rtol=1e-10, atol=1e-12)
    if impl != "autograd-convolve":  # autograd's own primitive; its tests are autograd's
        check_grads(lambda x, w, b: ops.conv2d(x, w, b, stride, pad, impl=impl), modes=["rev"], order=2)(x, w, b)


def test_unknown_impl_is_named():
    with pytest.raises(ValueError, match="conv impl"):
        ops.conv2d(rng.randn(1, 1, 3, 3), rng.randn(1, 1, 2, 2), np.zeros(1), impl="cuda")
    with pytest.raises(ValueError, match="pool impl"):
        ops.max_pool2d(rng.randn(1, 1, 4, 4), 2, 2, 2, impl="cuda")


@pytest.mark.parametrize(
    "width,pool", [(6, (2, 2, 2)), (7, (2, 2, 2)), (7, (3, 3, 2)), (6, (2, 3, 1))],
    ids=["tiles", "does-not-tile", "overlapping", "non-square"],
)
def test_pool_impls_agree(width, pool):
    x = rng.randn(2, 3, 8, width)
    np.testing.assert_array_equal(ops.max_pool2d(x, *pool, impl="fast"), ops.max_pool2d(x, *pool, impl="windows"))
    check_grads(lambda x: ops.max_pool2d(x, *pool, impl="fast"), modes=["rev"], order=1)(x)


@pytest.mark.parametrize("shape", [(5, 3), (4, 3, 2, 5)])
def test_channel_sum_value_and_second_order(shape):
    from autocnn.core.primitives import channel_sum

    x = rng.randn(*shape)
    axes = (0,) + tuple(range(2, x.ndim))
    np.testing.assert_allclose(channel_sum(x), np.sum(x, axis=axes, keepdims=True), rtol=1e-14)
    check_grads(lambda x: channel_sum(x) * np.arange(1.0, shape[1] + 1).reshape((1, -1) + (1,) * (x.ndim - 2)),
                modes=["rev"], order=2)(x)
