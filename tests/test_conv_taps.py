"""Stride-1 convs on pixel rows: one GEMM per filter tap (autocnn.core.primitives.conv_taps).

`to_pixel_rows` / `from_pixel_rows` and the three tap primitives (the conv, its transpose
and its filter gradient) are linear in each argument. Each must be the adjoint of its
partner, differentiate to second order with autograd's own checker, split between threads
and rows without changing a number, and give the reference's layer and gradients in float64.
"""

import numpy as np
import pytest
from autograd import make_vjp
from autograd.test_util import check_grads

import autocnn.core.blockwise
import autocnn.core.primitives as primitives
from autocnn.core import ops
from autocnn.core.primitives import (conv_taps, conv_taps_pay_off, conv_taps_transpose, conv_taps_weight_gradient,
                                     from_pixel_rows, pixel_grid, to_pixel_rows)
from reference.conv_layers import conv_backward_naive, conv_forward_naive

rng = np.random.RandomState(11)

# (x shape, (F, kh, kw), pad): the ConvNet's 3x3 pad 1, no pad, a wide pad, non-square
# kernels and images, 1x1, one image, a kernel as large as the padded image.
TAP_CASES = [
    ((2, 16, 7, 6), (5, 3, 3), 1),
    ((3, 16, 8, 8), (4, 3, 2), 0),
    ((2, 17, 6, 9), (3, 5, 5), 2),
    ((2, 16, 5, 5), (3, 1, 1), 0),
    ((1, 18, 4, 7), (6, 2, 3), 1),
    ((2, 16, 3, 3), (2, 5, 5), 1),
    ((2, 16, 4, 5), (3, 1, 1), 2),  # pad > k - 1: outputs outgrow H + pad, the grid follows them
    ((2, 16, 5, 4), (3, 2, 3), 2),
]


@pytest.fixture
def always_taps(monkeypatch):
    """Every stride-1 conv through conv_taps, whatever its channels and grid margin."""
    monkeypatch.setattr(primitives, "_TAPS_MIN_CHANNELS", 1)
    monkeypatch.setattr(primitives, "_TAPS_MAX_GRID_WASTE", float("inf"))


def assert_matches_reference(x, w, b, pad, tol=1e-11):
    out, cache = conv_forward_naive(x, w, b, {"stride": 1, "pad": pad})
    vjp, ours = make_vjp(lambda args: ops.conv2d(*args, 1, pad, impl="fast"))((x, w, b))
    np.testing.assert_allclose(ours, out, rtol=0, atol=tol)
    g = rng.randn(*out.shape)
    for derived, written in zip(vjp(g), conv_backward_naive(g, cache)):
        np.testing.assert_allclose(derived, written, rtol=0, atol=tol)


@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("shape,filters,pad", TAP_CASES)
def test_taps_conv_matches_reference_in_float64(always_taps, monkeypatch, shape, filters, pad, threads):
    monkeypatch.setattr(autocnn.core.blockwise, "blas_threads", lambda: threads)
    f, kh, kw = filters
    assert_matches_reference(rng.randn(*shape), rng.randn(f, shape[1], kh, kw), rng.randn(f), pad)


@pytest.mark.parametrize("block_bytes", [1, 64 * 16 * 8 + 8, 2**30])
def test_taps_conv_whatever_the_row_blocks(always_taps, monkeypatch, block_bytes):
    # Blocks of the fewest rows (64), a ragged size, and one block for all.
    monkeypatch.setattr(primitives, "_ROW_BLOCK_BYTES", block_bytes)
    monkeypatch.setattr(autocnn.core.blockwise, "blas_threads", lambda: 2)
    x, w, b = rng.randn(3, 16, 9, 8), rng.randn(4, 16, 3, 3), rng.randn(4)
    assert_matches_reference(x, w, b, 1)


def test_the_three_tap_primitives_are_adjoint():
    """<A(x, w), g> = <x, B(g, w)> = <w, C(x, g)> for any x, w, g."""
    grid = (6, 7)
    x, w, g = rng.randn(2 * 6 * 7, 5), rng.randn(4, 5, 3, 2), rng.randn(2 * 6 * 7, 4)
    forward = np.sum(conv_taps(x, w, grid) * g)
    assert np.sum(x * conv_taps_transpose(g, w, grid)) == pytest.approx(forward, rel=1e-12)
    assert np.sum(w * conv_taps_weight_gradient(x, g, w.shape[2:], grid)) == pytest.approx(forward, rel=1e-12)


def test_rows_past_the_last_valid_one_are_zero_and_never_read():
    grid, window = (5, 6), (3, 3)
    x, w = rng.randn(2 * 5 * 6, 3), rng.randn(2, 3, *window)
    valid = x.shape[0] - (2 * 6 + 2)
    np.testing.assert_array_equal(conv_taps(x, w, grid)[valid:], 0)
    g = rng.randn(x.shape[0], 2)
    changed = g.copy()
    changed[valid:] = 1e6
    np.testing.assert_array_equal(conv_taps_transpose(g, w, grid), conv_taps_transpose(changed, w, grid))
    np.testing.assert_array_equal(conv_taps_weight_gradient(x, g, window, grid),
                                  conv_taps_weight_gradient(x, changed, window, grid))


@pytest.mark.parametrize("tail", [0, 5])
def test_pixel_rows_place_and_crop_the_images_and_are_adjoint(tail):
    x = rng.randn(2, 3, 4, 5)
    rows = to_pixel_rows(x, (7, 8), (1, 2), tail)
    assert rows.shape == (2 * 7 * 8 + tail, 3)
    grids = rows[: 2 * 7 * 8].reshape(2, 7, 8, 3)
    np.testing.assert_array_equal(grids[:, 1:5, 2:7].transpose(0, 3, 1, 2), x)
    assert np.count_nonzero(rows) == np.count_nonzero(x)  # zero outside the images, the tail too
    np.testing.assert_array_equal(from_pixel_rows(rows, 2, (7, 8), (1, 2), (4, 5)), x)
    other = rng.randn(*rows.shape)
    assert np.sum(rows * other) == pytest.approx(np.sum(x * from_pixel_rows(other, 2, (7, 8), (1, 2), (4, 5))))
    vjp, _ = make_vjp(lambda rows: from_pixel_rows(rows, 2, (7, 8), (1, 2), (4, 5)))(other)
    assert vjp(x).shape == rows.shape  # the adjoint gives the tail back (zero)


@pytest.mark.parametrize("image_size,window,pad,grid,tail", [
    ((32, 32), (3, 3), 1, (33, 33), 34),  # the ConvNet: one shared row and column of zeros
    ((8, 8), (3, 3), 1, (9, 9), 10),
    ((6, 9), (5, 5), 2, (8, 11), 24),
    ((6, 6), (3, 3), 0, (6, 6), 0),  # no padding: the images themselves, no tail
    ((4, 5), (1, 1), 2, (8, 9), 0),  # pad > k - 1: the grid holds the larger output
])
def test_neighbouring_images_share_their_padding(image_size, window, pad, grid, tail):
    assert pixel_grid(image_size, window, pad) == (grid, tail)
    # The last image's last output pixel reads exactly the tail's last row.
    n, (grid_h, grid_w) = 3, grid
    out_h, out_w = (side + 2 * pad - k + 1 for side, k in zip(image_size, window))
    last_read = ((n - 1) * grid_h + out_h - 1 + window[0] - 1) * grid_w + out_w - 1 + window[1] - 1
    assert max(last_read + 1, n * grid_h * grid_w) == n * grid_h * grid_w + tail


@pytest.mark.parametrize("shape,filters,pad", TAP_CASES[:3])
def test_taps_conv_second_order(always_taps, shape, filters, pad):
    f, kh, kw = filters
    shape = (shape[0], 2) + shape[2:]  # few channels: check_grads tries every input direction
    x, w, b = rng.randn(*shape), rng.randn(f, 2, kh, kw), rng.randn(f)
    check_grads(lambda x, w, b: ops.conv2d(x, w, b, 1, pad, impl="fast"), modes=["rev"], order=2)(x, w, b)


def test_each_tap_primitive_second_order():
    grid, window = (5, 4), (2, 3)
    x, w, g = rng.randn(2 * 5 * 4, 2), rng.randn(3, 2, *window), rng.randn(2 * 5 * 4, 3)
    check_grads(lambda x, w: conv_taps(x, w, grid), modes=["rev"], order=2)(x, w)
    check_grads(lambda g, w: conv_taps_transpose(g, w, grid), modes=["rev"], order=2)(g, w)
    check_grads(lambda x, g: conv_taps_weight_gradient(x, g, window, grid), modes=["rev"], order=2)(x, g)
    check_grads(lambda x: to_pixel_rows(x, (4, 5), (1, 1)), modes=["rev"], order=2)(rng.randn(2, 2, 2, 3))


def test_output_is_channel_major_and_float32_stays_float32(always_taps):
    # Channel-major (C, N, H, W) memory like the patch-matrix conv's: the per-channel ufuncs
    # after a conv (batchnorm) then run along image rows.
    x, w, b = (rng.randn(*shape).astype(np.float32) for shape in ((2, 16, 6, 6), (8, 16, 3, 3), (8,)))
    out = ops.conv2d(x, w, b, 1, 1, impl="fast")
    assert out.dtype == np.float32
    assert out.transpose(1, 0, 2, 3).flags.c_contiguous
    vjp, _ = make_vjp(lambda args: ops.conv2d(*args, 1, 1, impl="fast"))((x, w, b))
    assert all(grad.dtype == np.float32 for grad in vjp(np.ones_like(out)))


def test_which_convs_go_through_taps():
    assert conv_taps_pay_off((100, 32, 32, 32), (3, 3), 1, 1)  # the ConvNet's inner layers
    assert conv_taps_pay_off((100, 128, 8, 8), (3, 3), 1, 1)  # ... down to 8x8 (grid 9x9)
    assert not conv_taps_pay_off((1000, 3, 32, 32), (7, 7), 1, 3)  # the >65% net: 3 channels
    assert not conv_taps_pay_off((100, 32, 32, 32), (3, 3), 2, 1)  # stride 2
    assert conv_taps_pay_off((100, 32, 2, 2), (3, 3), 1, 1)  # grid 3x3 around 2x2 outputs
    assert not conv_taps_pay_off((100, 32, 1, 1), (3, 3), 1, 1)  # grid 2x2 around one output
