"""Tests for reference/conv_layers.py, reference/fast_layers.py and the conv sandwiches.

- Naive conv / pool forward passes are checked against the definition written as
  explicit per-element loops here, and their backward passes against centred
  differences in float64 (threshold 1e-7 elementwise relative, well below the
  notebook's 1e-5; inputs come from fixed seeds so no max-pool window holds two
  values within h of each other and no ReLU input sits within h of 0).
- Fast layers must equal the naive ones to 1e-10 relative in float64, on fixed
  cases and on hypothesis-drawn shapes, and must keep float32 in float32.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numerical import close_to_numerical, numerical_gradient_array, rel_error

from reference.conv_layers import (
    conv_backward_naive,
    conv_forward_naive,
    max_pool_backward_naive,
    max_pool_forward_naive,
    spatial_batchnorm_backward,
    spatial_batchnorm_forward,
    spatial_groupnorm_backward,
    spatial_groupnorm_forward,
)
import reference.fast_layers
from reference.fast_layers import (
    conv_backward_fast,
    conv_forward_fast,
    max_pool_backward_fast,
    max_pool_forward_fast,
)
from reference.layer_utils import (
    conv_batchnorm_relu_backward,
    conv_batchnorm_relu_forward,
    conv_batchnorm_relu_pool_backward,
    conv_batchnorm_relu_pool_forward,
    conv_relu_backward,
    conv_relu_forward,
    conv_relu_pool_backward,
    conv_relu_pool_forward,
)
from reference.layers import batchnorm_forward, layernorm_forward

GRAD_TOL = 1e-7
FAST_TOL = 1e-10

# (N, C, H, W, F, HH, WW, stride, pad): stride 1, 2 and 3, pad 0/1/2, N = 1,
# non-square inputs and filters, odd sizes, a stride wider than the filter (pixels
# between windows unused). Every geometry gives a whole output size, as the layers require.
CONV_CASES = [
    (2, 3, 5, 5, 2, 3, 3, 1, 1),
    (1, 2, 7, 5, 3, 3, 3, 2, 1),
    (2, 1, 7, 6, 2, 3, 2, 2, 0),
    (1, 3, 4, 6, 2, 1, 3, 1, 2),
    (3, 2, 6, 9, 2, 4, 4, 3, 2),
    (2, 2, 7, 8, 3, 1, 2, 3, 0),
]

# (N, C, H, W, pool_height, pool_width, stride): tiling 2x2/2, overlapping 3x3/2,
# non-square windows, windows spaced wider than they are (pixels between them unused), N = 1.
POOL_CASES = [
    (2, 3, 4, 4, 2, 2, 2),
    (1, 2, 7, 7, 3, 3, 2),
    (2, 2, 5, 6, 2, 3, 1),
    (3, 1, 8, 5, 2, 2, 3),
    (1, 3, 6, 9, 3, 3, 3),
]


def rng_for(*key: int) -> np.random.Generator:
    return np.random.default_rng(list(key))


def _conv_inputs(case, seed=0, dtype=np.float64):
    N, C, H, W, F, HH, WW, stride, pad = case
    rng = rng_for(seed, *case)
    x = rng.standard_normal((N, C, H, W)).astype(dtype)
    w = rng.standard_normal((F, C, HH, WW)).astype(dtype)
    b = rng.standard_normal(F).astype(dtype)
    return x, w, b, {"stride": stride, "pad": pad}


def _pool_inputs(case, seed=0, dtype=np.float64):
    N, C, H, W, pool_h, pool_w, stride = case
    x = rng_for(seed, *case).standard_normal((N, C, H, W)).astype(dtype)
    return x, {"pool_height": pool_h, "pool_width": pool_w, "stride": stride}


def conv_by_definition(x, w, b, stride, pad):
    """out[n, f, i, j] = b[f] + sum_{c, p, q} x_pad[n, c, i*stride + p, j*stride + q] * w[f, c, p, q]."""
    N, C, H, W = x.shape
    F, _, HH, WW = w.shape
    x_pad = np.zeros((N, C, H + 2 * pad, W + 2 * pad))
    x_pad[:, :, pad : pad + H, pad : pad + W] = x
    out_h, out_w = 1 + (H + 2 * pad - HH) // stride, 1 + (W + 2 * pad - WW) // stride
    out = np.zeros((N, F, out_h, out_w))
    for n in range(N):
        for f in range(F):
            for i in range(out_h):
                for j in range(out_w):
                    total = b[f]
                    for c in range(C):
                        for p in range(HH):
                            for q in range(WW):
                                total += x_pad[n, c, i * stride + p, j * stride + q] * w[f, c, p, q]
                    out[n, f, i, j] = total
    return out


# ---------------------------------------------------------------------------
# Naive convolution
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("case", CONV_CASES)
def test_conv_forward_naive_matches_the_definition(case):
    x, w, b, conv_param = _conv_inputs(case)
    out, cache = conv_forward_naive(x, w, b, conv_param)
    expected = conv_by_definition(x, w, b, conv_param["stride"], conv_param["pad"])
    assert out.shape == expected.shape
    np.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-12)
    assert cache[0] is x and cache[1] is w and cache[2] is b and cache[3] is conv_param


def test_conv_forward_naive_with_a_centre_tap_filter_copies_the_input():
    x = rng_for(1).standard_normal((2, 2, 5, 4))
    w = np.zeros((2, 2, 3, 3))
    w[0, 0, 1, 1] = 1.0  # filter 0 copies channel 0
    w[1, 1, 1, 1] = -2.0  # filter 1 is -2 * channel 1
    out, _ = conv_forward_naive(x, w, np.array([0.0, 3.0]), {"stride": 1, "pad": 1})
    np.testing.assert_allclose(out[:, 0], x[:, 0], rtol=1e-15)
    np.testing.assert_allclose(out[:, 1], 3.0 - 2.0 * x[:, 1], rtol=1e-15)


@pytest.mark.parametrize("case", CONV_CASES)
def test_conv_backward_naive_matches_numerical(case):
    x, w, b, conv_param = _conv_inputs(case)
    out, cache = conv_forward_naive(x, w, b, conv_param)
    dout = rng_for(2, *case).standard_normal(out.shape)

    dx, dw, db = conv_backward_naive(dout, cache)

    def forward(x_, w_, b_):
        return conv_forward_naive(x_, w_, b_, conv_param)[0]

    assert dx.shape == x.shape and dw.shape == w.shape and db.shape == b.shape
    assert rel_error(dx, numerical_gradient_array(lambda v: forward(v, w, b), x, dout)) < GRAD_TOL
    assert rel_error(dw, numerical_gradient_array(lambda v: forward(x, v, b), w, dout)) < GRAD_TOL
    assert rel_error(db, numerical_gradient_array(lambda v: forward(x, w, v), b, dout)) < GRAD_TOL


# ---------------------------------------------------------------------------
# Naive max pooling
# ---------------------------------------------------------------------------


def test_max_pool_forward_naive_on_a_hand_worked_example():
    x = np.array([[[[1.0, 5.0, 2.0, 0.0, 9.0],
                    [3.0, 4.0, 8.0, 1.0, 0.0],
                    [7.0, 0.0, 6.0, 2.0, 3.0]]]])  # fmt: skip
    out, _ = max_pool_forward_naive(x, {"pool_height": 2, "pool_width": 3, "stride": 1})
    np.testing.assert_array_equal(out, [[[[8.0, 8.0, 9.0], [8.0, 8.0, 8.0]]]])


@pytest.mark.parametrize("case", POOL_CASES)
def test_max_pool_backward_naive_matches_numerical(case):
    x, pool_param = _pool_inputs(case)
    out, cache = max_pool_forward_naive(x, pool_param)
    dout = rng_for(3, *case).standard_normal(out.shape)
    dx = max_pool_backward_naive(dout, cache)
    dx_num = numerical_gradient_array(lambda v: max_pool_forward_naive(v, pool_param)[0], x, dout)
    assert rel_error(dx, dx_num) < GRAD_TOL


@pytest.mark.parametrize("backward_pair", ["naive", "fast"])
def test_max_pool_ties_send_the_gradient_to_the_first_maximum_in_row_major_order(backward_pair):
    forward, backward = {
        "naive": (max_pool_forward_naive, max_pool_backward_naive),
        "fast": (max_pool_forward_fast, max_pool_backward_fast),
    }[backward_pair]
    x = np.array([[[[0.0, 2.0, 1.0, 1.0],
                    [2.0, 2.0, 1.0, 1.0],
                    [3.0, 0.0, 0.0, 0.0],
                    [0.0, 3.0, 0.0, 0.0]]]])  # fmt: skip
    _, cache = forward(x, {"pool_height": 2, "pool_width": 2, "stride": 2})
    dx = backward(np.array([[[[10.0, 20.0], [30.0, 40.0]]]]), cache)
    expected = np.array([[[[0.0, 10.0, 20.0, 0.0],
                           [0.0, 0.0, 0.0, 0.0],
                           [30.0, 0.0, 40.0, 0.0],
                           [0.0, 0.0, 0.0, 0.0]]]])  # fmt: skip
    np.testing.assert_array_equal(dx, expected)


@pytest.mark.parametrize("backward_pair", ["naive", "fast"])
def test_overlapping_pool_windows_accumulate_gradient_on_a_shared_maximum(backward_pair):
    forward, backward = {
        "naive": (max_pool_forward_naive, max_pool_backward_naive),
        "fast": (max_pool_forward_fast, max_pool_backward_fast),
    }[backward_pair]
    x = np.zeros((1, 1, 3, 5))
    x[0, 0, 1, 2] = 1.0  # inside both 3x3 windows (stride 2)
    out, cache = forward(x, {"pool_height": 3, "pool_width": 3, "stride": 2})
    np.testing.assert_array_equal(out, [[[[1.0, 1.0]]]])
    dx = backward(np.array([[[[2.0, 5.0]]]]), cache)
    expected = np.zeros_like(x)
    expected[0, 0, 1, 2] = 7.0
    np.testing.assert_array_equal(dx, expected)


# ---------------------------------------------------------------------------
# Fast layers equal the naive ones
# ---------------------------------------------------------------------------


def _assert_fast_conv_equals_naive(x, w, b, conv_param, tol=FAST_TOL):
    out_naive, cache_naive = conv_forward_naive(x, w, b, conv_param)
    out_fast, cache_fast = conv_forward_fast(x, w, b, conv_param)
    assert out_fast.shape == out_naive.shape
    assert rel_error(out_fast, out_naive) < tol
    dout = rng_for(4, *x.shape).standard_normal(out_naive.shape).astype(x.dtype)
    for fast, naive in zip(conv_backward_fast(dout, cache_fast), conv_backward_naive(dout, cache_naive)):
        assert fast.shape == naive.shape
        assert rel_error(fast, naive) < tol


def _assert_fast_pool_equals_naive(x, pool_param, tol=FAST_TOL):
    out_naive, cache_naive = max_pool_forward_naive(x, pool_param)
    out_fast, cache_fast = max_pool_forward_fast(x, pool_param)
    np.testing.assert_array_equal(out_fast, out_naive)
    dout = rng_for(5, *x.shape).standard_normal(out_naive.shape).astype(x.dtype)
    dx_fast = max_pool_backward_fast(dout, cache_fast)
    dx_naive = max_pool_backward_naive(dout, cache_naive)
    assert dx_fast.shape == x.shape
    assert rel_error(dx_fast, dx_naive) < tol


@pytest.mark.parametrize("case", CONV_CASES)
def test_fast_conv_equals_naive(case):
    _assert_fast_conv_equals_naive(*_conv_inputs(case))


@pytest.mark.parametrize("case", POOL_CASES)
def test_fast_pool_equals_naive(case):
    _assert_fast_pool_equals_naive(*_pool_inputs(case))


@pytest.mark.parametrize("case", POOL_CASES)
def test_fast_pool_equals_naive_with_many_ties(case):
    x, pool_param = _pool_inputs(case)
    _assert_fast_pool_equals_naive(np.round(x), pool_param)  # few distinct values: ties everywhere


@pytest.mark.parametrize("images_per_block", [1, 2, 4])
def test_fast_conv_backward_is_unchanged_by_blocking_over_images(monkeypatch, images_per_block):
    # conv_backward_fast forms the column gradients a few images at a time; force
    # several blocks, including a ragged last one (5 images in blocks of 2 or 4).
    case = (5, 2, 7, 5, 3, 3, 3, 2, 1)
    N, C, H, W, F, HH, WW, stride, pad = case
    out_pixels = (1 + (H + 2 * pad - HH) // stride) * (1 + (W + 2 * pad - WW) // stride)
    bytes_per_image = C * HH * WW * out_pixels * 8
    monkeypatch.setattr(reference.fast_layers, "_DCOLS_BLOCK_BYTES", images_per_block * bytes_per_image)
    _assert_fast_conv_equals_naive(*_conv_inputs(case))


@pytest.mark.parametrize("images_per_block", [1, 2, 4])
@pytest.mark.parametrize("case", POOL_CASES)
def test_fast_pool_backward_is_unchanged_by_blocking_over_images(monkeypatch, case, images_per_block):
    # max_pool_backward_fast works through a few images at a time; force several blocks,
    # with ties everywhere (rounded inputs) and overlapping windows among the cases.
    x, pool_param = _pool_inputs(case)
    x = np.round(np.concatenate([x] * 5))  # 5 times the batch: ragged last blocks too
    monkeypatch.setattr(reference.fast_layers, "_POOL_BLOCK_BYTES", images_per_block * x[0].nbytes)
    _assert_fast_pool_equals_naive(x, pool_param)


@settings(max_examples=40, deadline=None)
@given(
    N=st.integers(1, 3),
    C=st.integers(1, 3),
    F=st.integers(1, 3),
    out_h=st.integers(1, 3),
    out_w=st.integers(1, 3),
    HH=st.integers(1, 4),
    WW=st.integers(1, 4),
    stride=st.integers(1, 3),
    pad=st.integers(0, 2),
    seed=st.integers(0, 2**16),
)
def test_fast_conv_equals_naive_on_random_shapes(N, C, F, out_h, out_w, HH, WW, stride, pad, seed):
    # Drawn through the output size, so every geometry is one the layers accept.
    H, W = (out_h - 1) * stride + HH - 2 * pad, (out_w - 1) * stride + WW - 2 * pad
    if H < 1 or W < 1:
        return  # the padding alone would hold the filter
    rng = rng_for(seed)
    x = rng.standard_normal((N, C, H, W))
    w = rng.standard_normal((F, C, HH, WW))
    b = rng.standard_normal(F)
    _assert_fast_conv_equals_naive(x, w, b, {"stride": stride, "pad": pad})


@settings(max_examples=40, deadline=None)
@given(
    N=st.integers(1, 3),
    C=st.integers(1, 3),
    out_h=st.integers(1, 3),
    out_w=st.integers(1, 3),
    pool_h=st.integers(1, 4),
    pool_w=st.integers(1, 4),
    stride=st.integers(1, 4),
    integer_valued=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_fast_pool_equals_naive_on_random_shapes(N, C, out_h, out_w, pool_h, pool_w, stride, integer_valued, seed):
    # Drawn through the output size, so every geometry is one the layers accept.
    H, W = (out_h - 1) * stride + pool_h, (out_w - 1) * stride + pool_w
    x = rng_for(seed).standard_normal((N, C, H, W))
    if integer_valued:
        x = np.round(x)  # many ties, exercising the first-maximum rule
    _assert_fast_pool_equals_naive(x, {"pool_height": pool_h, "pool_width": pool_w, "stride": stride})


def test_fast_pool_tiling_path_covers_the_notebook_geometry():
    x, _ = _pool_inputs((2, 3, 8, 8, 2, 2, 2))
    _assert_fast_pool_equals_naive(np.maximum(np.round(x), 0), {"pool_height": 2, "pool_width": 2, "stride": 2})


def test_fast_layers_keep_float32():
    x, w, b, conv_param = _conv_inputs(CONV_CASES[1], dtype=np.float32)
    out, cache = conv_forward_fast(x, w, b, conv_param)
    assert out.dtype == np.float32
    grads = conv_backward_fast(np.ones_like(out), cache)
    assert [g.dtype for g in grads] == [np.float32] * 3

    for case in POOL_CASES[:3]:
        x, pool_param = _pool_inputs(case, dtype=np.float32)
        out, cache = max_pool_forward_fast(x, pool_param)
        assert out.dtype == np.float32
        assert max_pool_backward_fast(np.ones_like(out), cache).dtype == np.float32


def test_fast_conv_in_float32_agrees_with_float64():
    x64, w64, b64, conv_param = _conv_inputs(CONV_CASES[0])
    out32, cache32 = conv_forward_fast(x64.astype(np.float32), w64.astype(np.float32), b64.astype(np.float32), conv_param)
    out64, cache64 = conv_forward_fast(x64, w64, b64, conv_param)
    np.testing.assert_allclose(out32, out64, rtol=1e-5, atol=1e-5)
    dout = rng_for(6).standard_normal(out64.shape)
    for g32, g64 in zip(conv_backward_fast(dout.astype(np.float32), cache32), conv_backward_fast(dout, cache64)):
        np.testing.assert_allclose(g32, g64, rtol=1e-4, atol=1e-4)


# ---------------------------------------------------------------------------
# Spatial batch normalisation
# ---------------------------------------------------------------------------


def test_spatial_batchnorm_normalises_each_channel_over_n_h_w():
    rng = rng_for(7)
    x = 3 * rng.standard_normal((4, 3, 5, 6)) + np.array([1.0, -4.0, 10.0])[None, :, None, None]
    gamma, beta = np.array([1.0, 2.0, 0.5]), np.array([0.0, 1.0, -3.0])
    bn_param = {"mode": "train"}
    out, _ = spatial_batchnorm_forward(x, gamma, beta, bn_param)
    assert out.shape == x.shape
    np.testing.assert_allclose(out.mean(axis=(0, 2, 3)), beta, atol=1e-12)
    channel_var = x.var(axis=(0, 2, 3))
    np.testing.assert_allclose(out.std(axis=(0, 2, 3)), gamma * np.sqrt(channel_var / (channel_var + 1e-5)), rtol=1e-10)
    assert bn_param["running_mean"].shape == (3,)
    np.testing.assert_allclose(bn_param["running_mean"], 0.1 * x.mean(axis=(0, 2, 3)), rtol=1e-12)
    np.testing.assert_allclose(bn_param["running_var"], 0.1 * channel_var, rtol=1e-12)


def test_spatial_batchnorm_test_mode_uses_per_channel_running_statistics():
    rng = rng_for(8)
    x = rng.standard_normal((2, 3, 4, 5))
    gamma, beta = rng.standard_normal(3), rng.standard_normal(3)
    mean, var = rng.standard_normal(3), rng.random(3) + 0.5
    bn_param = {"mode": "test", "running_mean": mean, "running_var": var}
    out, _ = spatial_batchnorm_forward(x, gamma, beta, bn_param)
    per_channel = (slice(None), None, None)
    expected = gamma[per_channel] * (x - mean[per_channel]) / np.sqrt(var[per_channel] + 1e-5) + beta[per_channel]
    np.testing.assert_allclose(out, expected, rtol=1e-12)


def test_spatial_batchnorm_equals_vanilla_batchnorm_on_pixels():
    x = rng_for(9).standard_normal((3, 2, 4, 5))
    gamma, beta = np.array([0.5, 2.0]), np.array([1.0, -1.0])
    spatial, _ = spatial_batchnorm_forward(x, gamma, beta, {"mode": "train"})
    pixels = np.stack([x[:, c].ravel() for c in range(2)], axis=1)  # (N*H*W, C)
    vanilla, _ = batchnorm_forward(pixels, gamma, beta, {"mode": "train"})
    for c in range(2):
        np.testing.assert_allclose(spatial[:, c].ravel(), vanilla[:, c], rtol=1e-12)


@pytest.mark.parametrize("mode,shape", [("train", (2, 3, 4, 5)), ("train", (1, 2, 3, 3)), ("test", (2, 3, 2, 4))])
def test_spatial_batchnorm_backward_matches_numerical(mode, shape):
    rng = rng_for(10, *shape)
    x = 2 * rng.standard_normal(shape) + 1
    gamma, beta = rng.standard_normal(shape[1]), rng.standard_normal(shape[1])
    bn_param = {"mode": mode}
    if mode == "test":
        bn_param.update(running_mean=rng.standard_normal(shape[1]), running_var=rng.random(shape[1]) + 0.5)
    out, cache = spatial_batchnorm_forward(x, gamma, beta, bn_param)
    dout = rng.standard_normal(shape)

    def forward(x_, gamma_, beta_):
        return spatial_batchnorm_forward(x_, gamma_, beta_, bn_param)[0]

    dx, dgamma, dbeta = spatial_batchnorm_backward(dout, cache)
    # Near-zero entries as in vanilla batchnorm; extended precision makes 1e-7 hold (see tests/numerical.py).
    assert rel_error(dx, numerical_gradient_array(lambda v: forward(v, gamma, beta), x, dout)) < GRAD_TOL
    assert rel_error(dgamma, numerical_gradient_array(lambda v: forward(x, v, beta), gamma, dout)) < GRAD_TOL
    assert rel_error(dbeta, numerical_gradient_array(lambda v: forward(x, gamma, v), beta, dout)) < GRAD_TOL


# ---------------------------------------------------------------------------
# Spatial group normalisation
# ---------------------------------------------------------------------------


def test_spatial_groupnorm_normalises_each_group_of_each_image():
    rng = rng_for(30)
    N, C, H, W, G = 3, 6, 4, 5, 2
    x = 4 * rng.standard_normal((N, C, H, W)) + 10 * rng.standard_normal((1, C, 1, 1))
    gamma, beta = rng.standard_normal((1, C, 1, 1)), rng.standard_normal((1, C, 1, 1))
    out, _ = spatial_groupnorm_forward(x, gamma, beta, G, {"eps": 1e-3})
    x_hat = ((out - beta) / gamma).reshape(N, G, C // G, H, W)
    group_var = x.reshape(N, G, -1).var(axis=2)
    np.testing.assert_allclose(x_hat.mean(axis=(2, 3, 4)), 0, atol=1e-12)
    np.testing.assert_allclose(x_hat.std(axis=(2, 3, 4)), np.sqrt(group_var / (group_var + 1e-3)), rtol=1e-12)


@pytest.mark.parametrize("G", [1, 2, 4])
def test_spatial_groupnorm_is_layernorm_of_each_group(G):
    """Group g of image n is rows (consecutive channels, all pixels) of a layer-normalised matrix."""
    x = rng_for(31, G).standard_normal((2, 4, 3, 3))
    out, _ = spatial_groupnorm_forward(x, np.ones((1, 4, 1, 1)), np.zeros((1, 4, 1, 1)), G, {})
    rows = x.reshape(2 * G, -1)
    expected, _ = layernorm_forward(rows, np.ones(rows.shape[1]), np.zeros(rows.shape[1]), {})
    np.testing.assert_allclose(out, expected.reshape(x.shape), rtol=1e-12, atol=1e-14)


def test_spatial_groupnorm_takes_gamma_and_beta_of_shape_c_too():
    rng = rng_for(32)
    x, gamma, beta = rng.standard_normal((2, 6, 3, 2)), rng.standard_normal(6), rng.standard_normal(6)
    flat_out, flat_cache = spatial_groupnorm_forward(x, gamma, beta, 3, {})
    out, cache = spatial_groupnorm_forward(x, gamma.reshape(1, 6, 1, 1), beta.reshape(1, 6, 1, 1), 3, {})
    np.testing.assert_array_equal(flat_out, out)
    dout = rng.standard_normal(x.shape)
    flat_grads, grads = spatial_groupnorm_backward(dout, flat_cache), spatial_groupnorm_backward(dout, cache)
    assert [g.shape for g in flat_grads] == [x.shape, (6,), (6,)]
    assert [g.shape for g in grads] == [x.shape, (1, 6, 1, 1), (1, 6, 1, 1)]
    for flat, shaped in zip(flat_grads, grads):
        np.testing.assert_array_equal(flat.ravel(), shaped.ravel())


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 3), groups=st.integers(1, 3), per_group=st.integers(1, 3), h=st.integers(1, 3),
       w=st.integers(1, 4), flat_params=st.booleans(), eps=st.sampled_from([1e-5, 1e-2]),
       seed=st.integers(0, 2**16))
def test_spatial_groupnorm_backward_matches_numerical(n, groups, per_group, h, w, flat_params, eps, seed):
    """N = 1, one channel per group, single pixels, odd sizes, G = 1 and G = C all drawn."""
    rng = rng_for(33, seed)
    c = groups * per_group
    param_shape = (c,) if flat_params else (1, c, 1, 1)
    x = 2 * rng.standard_normal((n, c, h, w)) + rng.standard_normal((1, c, 1, 1))
    gamma, beta = rng.standard_normal(param_shape), rng.standard_normal(param_shape)
    dout = rng.standard_normal(x.shape)
    gn_param = {"eps": eps}

    def forward(x_, gamma_, beta_):
        return spatial_groupnorm_forward(x_, gamma_, beta_, groups, gn_param)[0]

    _, cache = spatial_groupnorm_forward(x, gamma, beta, groups, gn_param)
    dx, dgamma, dbeta = spatial_groupnorm_backward(dout, cache)
    assert dx.shape == x.shape and dgamma.shape == param_shape and dbeta.shape == param_shape
    assert close_to_numerical(dx, numerical_gradient_array(lambda v: forward(v, gamma, beta), x, dout))
    assert close_to_numerical(dgamma, numerical_gradient_array(lambda v: forward(x, v, beta), gamma, dout))
    assert close_to_numerical(dbeta, numerical_gradient_array(lambda v: forward(x, gamma, v), beta, dout))


def test_spatial_groupnorm_keeps_float32():
    x = rng_for(34).standard_normal((2, 4, 3, 3)).astype(np.float32)
    gamma, beta = np.ones((1, 4, 1, 1), np.float32), np.zeros((1, 4, 1, 1), np.float32)
    out, cache = spatial_groupnorm_forward(x, gamma, beta, 2, {})
    assert out.dtype == np.float32
    assert all(g.dtype == np.float32 for g in spatial_groupnorm_backward(np.ones_like(out), cache))


# ---------------------------------------------------------------------------
# Conv sandwiches
# ---------------------------------------------------------------------------

POOL_2X2 = {"pool_height": 2, "pool_width": 2, "stride": 2}


def _sandwich_args(with_batchnorm: bool):
    x, w, b, conv_param = _conv_inputs((2, 2, 6, 6, 3, 3, 3, 1, 1), seed=11)
    args = [x, w, b]
    if with_batchnorm:
        rng = rng_for(12)
        args += [rng.standard_normal(3), rng.standard_normal(3)]
    return args, conv_param


SANDWICHES = {
    "conv_relu": (conv_relu_forward, conv_relu_backward, False, ()),
    "conv_relu_pool": (conv_relu_pool_forward, conv_relu_pool_backward, False, (POOL_2X2,)),
    "conv_bn_relu": (conv_batchnorm_relu_forward, conv_batchnorm_relu_backward, True, ()),
    "conv_bn_relu_pool": (conv_batchnorm_relu_pool_forward, conv_batchnorm_relu_pool_backward, True, (POOL_2X2,)),
}


@pytest.mark.parametrize("name", sorted(SANDWICHES))
def test_conv_sandwich_backward_matches_numerical(name):
    forward, backward, with_batchnorm, pool_args = SANDWICHES[name]
    args, conv_param = _sandwich_args(with_batchnorm)
    extra = [conv_param, {"mode": "train"}] if with_batchnorm else [conv_param]
    extra += list(pool_args)

    out, cache = forward(*args, *extra)
    dout = rng_for(13).standard_normal(out.shape)
    grads = backward(dout, cache)
    assert len(grads) == len(args)
    for position, (arg, grad) in enumerate(zip(args, grads)):

        def forward_one(v, position=position):
            return forward(*args[:position], v, *args[position + 1 :], *extra)[0]

        grad_num = numerical_gradient_array(forward_one, arg, dout)
        if with_batchnorm and position == 2:
            # The conv bias is removed again by the per-channel batch mean.
            assert np.max(np.abs(grad)) < 1e-12 and np.max(np.abs(grad_num)) < 1e-9
        else:
            assert rel_error(grad, grad_num) < GRAD_TOL, position


def test_conv_relu_pool_forward_is_the_composition_of_the_naive_layers():
    args, conv_param = _sandwich_args(False)
    out, _ = conv_relu_pool_forward(*args, conv_param, POOL_2X2)
    conv_out, _ = conv_forward_naive(*args, conv_param)
    expected, _ = max_pool_forward_naive(np.maximum(conv_out, 0), POOL_2X2)
    np.testing.assert_allclose(out, expected, rtol=1e-12)
