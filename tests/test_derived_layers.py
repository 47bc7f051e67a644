"""autocnn's derived layers against the hand-written reference, layer by layer.

Every autocnn backward is autograd's VJP of a forward op; every reference backward is
written by hand. They must agree to rounding: 1e-8 relative error in float64 (measured
errors are ~1e-13), and the notebook's 1e-5 in float32.
"""

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from autograd.test_util import check_grads

import reference.conv_layers as ref_conv
import reference.fast_layers as ref_fast
import reference.layer_utils as ref_utils
import reference.layers as ref
from autocnn.core import derive, layer_utils, layers, ops
from autocnn.tools.gradcheck import rel_error

TOL = {np.float64: 1e-8, np.float32: 1e-5}
DTYPES = [np.float64, np.float32]
FAST = settings(max_examples=40, deadline=None)


def scale_error(x, y):
    """max |x - y| relative to max(1, max |y|): the float32 yardstick.

    The notebook's elementwise rel_error divides by |x| + |y|; a float32 sum of unit-size
    terms that cancels to ~1e-2 carries ~1e-7 absolute rounding, which that ratio would
    report as 1e-5: noise, not a wrong gradient. Inputs here are of unit size, so the
    error is measured against that scale (or the output's, when larger).
    """
    return np.max(np.abs(x - y), initial=0.0) / max(np.max(np.abs(y), initial=0.0), 1.0)


def float64_error(x, y):
    """The notebook's rel_error over the entries that are not zero up to rounding.

    A gradient that is exactly zero in exact arithmetic (e.g. of a bias feeding a
    batchnorm) comes out as ~1e-16 on both sides, which rel_error would call 100% wrong.
    """
    scale = max(np.max(np.abs(y), initial=0.0), 1.0)
    nonzero = np.abs(x) + np.abs(y) > 1e-12 * scale
    assert np.max(np.abs(x - y)[~nonzero], initial=0.0) <= 1e-12 * scale
    return rel_error(x[nonzero], y[nonzero]) if nonzero.any() else 0.0


def assert_close(ours, theirs, dtype, what=""):
    ours, theirs = np.asarray(ours), np.asarray(theirs)
    assert ours.shape == theirs.shape, f"{what}: shape {ours.shape} != {theirs.shape}"
    error = float64_error(ours, theirs) if dtype == np.float64 else scale_error(ours, theirs)
    assert error <= TOL[dtype], f"{what}: error {error:.3e} > {TOL[dtype]:.0e}"


def pure_conv_forward(x, w, b, conv_param):
    """The conv of slices and sums (ops.conv2d impl='pure'), no derivative rule: autograd's alone."""
    return derive.forward(ops.conv2d, x, w, b, stride=conv_param["stride"], pad=conv_param["pad"], impl="pure")


def pure_pool_forward(x, pool_param):
    return derive.forward(ops.max_pool2d, x, pool_height=pool_param["pool_height"],
                          pool_width=pool_param["pool_width"], stride=pool_param["stride"], impl="pure")


def compare(ours_forward, ours_backward, ref_forward, ref_backward, inputs, extra, dtype, seed=0, close=assert_close):
    """Run both sides on the same inputs and upstream gradient; compare out and every grad with close."""
    rng = np.random.RandomState(seed)
    inputs = [np.asarray(a, dtype=dtype) for a in inputs]
    out_ref, cache_ref = ref_forward(*[a.copy() for a in inputs], *extra())
    out, cache = ours_forward(*[a.copy() for a in inputs], *extra())
    assert out.dtype == dtype, f"forward upcast {dtype} to {out.dtype}"
    close(out, out_ref, dtype, "out")
    dout = rng.randn(*out_ref.shape).astype(dtype)
    grads_ref = ref_backward(dout, cache_ref)
    grads = ours_backward(dout, cache)
    if not isinstance(grads_ref, tuple):
        grads_ref, grads = (grads_ref,), (grads,)
    assert len(grads) == len(grads_ref)
    for index, (g, g_ref) in enumerate(zip(grads, grads_ref)):
        assert np.asarray(g).dtype == dtype, f"grad {index} upcast to {np.asarray(g).dtype}"
        close(g, g_ref, dtype, f"grad {index}")


@st.composite
def conv_cases(draw):
    """Valid conv configurations: the windows cover the padded input exactly."""
    n, c, f = draw(st.integers(1, 3)), draw(st.integers(1, 3)), draw(st.integers(1, 4))
    pad, stride = draw(st.integers(0, 2)), draw(st.integers(1, 3))
    hh, ww = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    out_h, out_w = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    h, w = (out_h - 1) * stride + hh - 2 * pad, (out_w - 1) * stride + ww - 2 * pad
    assume(h >= 1 and w >= 1)
    return (n, c, h, w), (f, c, hh, ww), {"stride": stride, "pad": pad}


@st.composite
def pool_cases(draw):
    """Valid pools, overlapping (stride < window) or not."""
    ph, pw, stride = draw(st.integers(1, 3)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
    out_h, out_w = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    shape = (draw(st.integers(1, 3)), draw(st.integers(1, 3)), (out_h - 1) * stride + ph, (out_w - 1) * stride + pw)
    return shape, {"pool_height": ph, "pool_width": pw, "stride": stride}


@pytest.mark.parametrize("dtype", DTYPES)
@FAST
@given(n=st.integers(1, 4), dims=st.lists(st.integers(1, 5), min_size=1, max_size=3), m=st.integers(1, 6))
def test_affine(dtype, n, dims, m):
    rng = np.random.RandomState(n)
    x, w, b = rng.randn(n, *dims), rng.randn(int(np.prod(dims)), m), rng.randn(m)
    compare(layers.affine_forward, layers.affine_backward, ref.affine_forward, ref.affine_backward, [x, w, b], tuple, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1, 1), (4, 7), (2, 3, 5, 5)])
def test_relu(dtype, shape):
    x = np.random.RandomState(1).randn(*shape)
    compare(layers.relu_forward, layers.relu_backward, ref.relu_forward, ref.relu_backward, [x], tuple, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    "ours", [(layers.conv_forward_naive, layers.conv_backward_naive), (layers.conv_forward_fast, layers.conv_backward_fast),
             (pure_conv_forward, derive.backward)],
    ids=["scipy-correlate", "fast", "pure"],
)
@FAST
@given(case=conv_cases())
def test_conv(dtype, ours, case):
    x_shape, w_shape, conv_param = case
    rng = np.random.RandomState(sum(x_shape))
    inputs = [rng.randn(*x_shape), rng.randn(*w_shape), rng.randn(w_shape[0])]
    compare(*ours, ref_conv.conv_forward_naive, ref_conv.conv_backward_naive, inputs, lambda: (dict(conv_param),), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    "ours", [(layers.max_pool_forward_naive, layers.max_pool_backward_naive), (layers.max_pool_forward_fast, layers.max_pool_backward_fast),
             (pure_pool_forward, derive.backward)],
    ids=["windows", "fast", "pure"],
)
@FAST
@given(case=pool_cases())
def test_max_pool(dtype, ours, case):
    shape, pool_param = case
    x = np.random.RandomState(sum(shape)).randn(*shape)  # distinct values: no ties
    compare(*ours, ref_conv.max_pool_forward_naive, ref_conv.max_pool_backward_naive, [x], lambda: (dict(pool_param),), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_fast_names_match_reference_fast_layers(dtype):
    rng = np.random.RandomState(3)
    x, w, b = rng.randn(4, 3, 11, 9), rng.randn(5, 3, 3, 3), rng.randn(5)
    conv_param, pool_param = {"stride": 2, "pad": 1}, {"pool_height": 2, "pool_width": 2, "stride": 2}
    compare(layers.conv_forward_fast, layers.conv_backward_fast, ref_fast.conv_forward_fast, ref_fast.conv_backward_fast,
            [x, w, b], lambda: (conv_param,), dtype)
    compare(layers.max_pool_forward_fast, layers.max_pool_backward_fast, ref_fast.max_pool_forward_fast,
            ref_fast.max_pool_backward_fast, [rng.randn(3, 2, 8, 6)], lambda: (pool_param,), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("spatial", [False, True])
@pytest.mark.parametrize("backward_name", ["batchnorm_backward", "batchnorm_backward_alt"])
def test_batchnorm_train_then_test(dtype, spatial, backward_name):
    rng = np.random.RandomState(4)
    shape = (5, 3, 4, 3) if spatial else (6, 4)
    size = shape[1]
    if spatial:
        names = ("spatial_batchnorm_forward", "spatial_batchnorm_backward", ref_conv, ref_conv)
    else:
        names = ("batchnorm_forward", backward_name, ref, ref)
    ours_fwd, ours_bwd = getattr(layers, names[0]), getattr(layers, names[1])
    ref_fwd, ref_bwd = getattr(names[2], names[0]), getattr(names[3], names[1])
    ours_param = {"mode": "train", "momentum": 0.8, "eps": 1e-4}
    ref_param = dict(ours_param)
    for step in range(3):  # running statistics accumulate identically on both sides
        x = 2.0 + 3.0 * rng.randn(*shape)
        gamma, beta = rng.randn(size), rng.randn(size)
        params = iter([ours_param, ref_param])
        compare(ours_fwd, ours_bwd, ref_fwd, ref_bwd, [x, gamma, beta],
                lambda: (next(params),), dtype, seed=step)
    for key in ("running_mean", "running_var"):
        assert ours_param[key].shape == (size,)
        assert ours_param[key].dtype == dtype
        assert_close(ours_param[key], ref_param[key], dtype, key)
    ours_param["mode"] = ref_param["mode"] = "test"
    params = iter([ours_param, ref_param])
    compare(ours_fwd, ours_bwd, ref_fwd, ref_bwd, [rng.randn(*shape), rng.randn(size), rng.randn(size)],
            lambda: (next(params),), dtype)


# The normalisations' dx entries cancel to near zero (each row or group of dx sums to
# zero), where float64 rounding gives them elementwise relative errors up to ~1e-8 that
# say nothing about the gradient. Measured against each output's own scale instead, the
# two sides agree to ~2e-13 (float64) over hypothesis-drawn shapes, held to 1e-12.
NORM_TOL = {np.float64: 1e-12, np.float32: 1e-5}


def well_spread(rng, shape):
    """
    Rows (along the last axis) of distinct values about 1 apart, in random order.

    In float32 a row whose values lie close together relative to their size loses digits
    in x - mean, and inv_std magnifies the loss: with two entries 0.05 apart near 1, the
    hand-written float32 dx is 2.5e-5 of its scale off the float64 one (the derived one
    3e-7). That measures the input's conditioning, not either side, so float32 is compared
    on rows like these; float64 gets the close rows too.
    """
    return np.argsort(rng.rand(*shape), axis=-1) + 0.1 * rng.randn(*shape)


def assert_close_to_scale(ours, theirs, dtype, what=""):
    ours, theirs = np.asarray(ours), np.asarray(theirs)
    assert ours.shape == theirs.shape, f"{what}: shape {ours.shape} != {theirs.shape}"
    error = scale_error(ours, theirs)
    assert error <= NORM_TOL[dtype], f"{what}: error {error:.3e} of its scale > {NORM_TOL[dtype]:.0e}"


@pytest.mark.parametrize("dtype", DTYPES)
@FAST
@given(n=st.integers(1, 4), d=st.integers(1, 7), eps=st.sampled_from([1e-5, 1e-2]),
       spread=st.sampled_from([1e-2, 1.0, 4.0]), seed=st.integers(0, 2**16))
def test_layernorm(dtype, n, d, eps, spread, seed):
    rng = np.random.RandomState(seed)
    x = spread * rng.randn(n, d) + rng.randn(n, 1) if dtype == np.float64 else well_spread(rng, (n, d))
    compare(layers.layernorm_forward, layers.layernorm_backward, ref.layernorm_forward, ref.layernorm_backward,
            [x, rng.randn(d), rng.randn(d)], lambda: ({"eps": eps},), dtype, seed, close=assert_close_to_scale)


@pytest.mark.parametrize("dtype", DTYPES)
@FAST
@given(n=st.integers(1, 3), groups=st.integers(1, 3), per_group=st.integers(1, 3), h=st.integers(1, 4),
       w=st.integers(1, 3), flat_params=st.booleans(), eps=st.sampled_from([1e-5, 1e-2]), seed=st.integers(0, 2**16))
def test_spatial_groupnorm(dtype, n, groups, per_group, h, w, flat_params, eps, seed):
    rng = np.random.RandomState(seed)
    c = groups * per_group
    param_shape = (c,) if flat_params else (1, c, 1, 1)
    if dtype == np.float64:
        x = 2 * rng.randn(n, c, h, w) + rng.randn(1, c, 1, 1)
    else:
        x = well_spread(rng, (n, groups, per_group * h * w)).reshape(n, c, h, w)
    compare(layers.spatial_groupnorm_forward, layers.spatial_groupnorm_backward, ref_conv.spatial_groupnorm_forward,
            ref_conv.spatial_groupnorm_backward, [x, rng.randn(*param_shape), rng.randn(*param_shape)],
            lambda: (groups, {"eps": eps}), dtype, seed, close=assert_close_to_scale)


def test_normalisation_ops_differentiate_twice():
    rng = np.random.RandomState(8)
    check_grads(lambda x, g, b: ops.layernorm(x, g, b, 1e-2), modes=["rev"], order=2)(
        rng.randn(3, 5), rng.randn(5), rng.randn(5))
    check_grads(lambda x, g, b: ops.spatial_groupnorm(x, g, b, 2, 1e-2), modes=["rev"], order=2)(
        rng.randn(2, 4, 3, 2), rng.randn(1, 4, 1, 1), rng.randn(4))


def test_batchnorm_rejects_unknown_mode():
    with pytest.raises(ValueError, match="mode"):
        layers.batchnorm_forward(np.ones((2, 3)), np.ones(3), np.zeros(3), {"mode": "eval"})


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("mode", ["train", "test"])
def test_dropout_same_seed_same_mask(dtype, mode):
    x = np.random.RandomState(5).randn(10, 20) + 3.0  # away from 0, so zeros mean dropped
    param = {"mode": mode, "p": 0.7, "seed": 123}
    compare(layers.dropout_forward, layers.dropout_backward, ref.dropout_forward, ref.dropout_backward,
            [x], lambda: (dict(param),), dtype)
    out, _ = layers.dropout_forward(x.astype(dtype), dict(param))
    if mode == "train":
        kept = np.mean(out != 0)
        assert 0.55 < kept < 0.85
        np.testing.assert_allclose(out[out != 0], (x.astype(dtype) / 0.7)[out != 0], rtol=1e-6)
    else:
        np.testing.assert_array_equal(out, x.astype(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ["softmax_loss", "svm_loss"])
@pytest.mark.parametrize("scale", [1.0, 1e5])
def test_losses(dtype, name, scale):
    rng = np.random.RandomState(6)
    x, y = (scale * rng.randn(7, 5)).astype(dtype), rng.randint(5, size=7)
    with np.errstate(over="raise", invalid="raise", divide="raise"):  # underflow to 0 is fine
        loss, dx = getattr(layers, name)(x, y)
    ref_loss, ref_dx = getattr(ref, name)(x, y)
    assert np.isfinite(loss) and np.all(np.isfinite(dx))
    assert abs(loss - ref_loss) <= TOL[dtype] * max(1.0, abs(ref_loss))
    assert_close(dx, ref_dx, dtype, "dx")


SANDWICHES = {
    "affine_relu": lambda r: ([r.randn(4, 3, 2), r.randn(6, 5), r.randn(5)], lambda: ()),
    "affine_batchnorm_relu": lambda r: ([r.randn(4, 6), r.randn(6, 5), r.randn(5), r.randn(5), r.randn(5)],
                                        lambda: ({"mode": "train"},)),
    "conv_relu": lambda r: ([r.randn(2, 3, 7, 6), r.randn(4, 3, 3, 3), r.randn(4)], lambda: ({"stride": 1, "pad": 1},)),
    "conv_relu_pool": lambda r: ([r.randn(2, 3, 8, 6), r.randn(4, 3, 3, 3), r.randn(4)],
                                 lambda: ({"stride": 1, "pad": 1}, {"pool_height": 2, "pool_width": 2, "stride": 2})),
    "conv_batchnorm_relu": lambda r: ([r.randn(2, 3, 7, 9), r.randn(4, 3, 3, 3), r.randn(4), r.randn(4), r.randn(4)],
                                      lambda: ({"stride": 2, "pad": 1}, {"mode": "train"})),
    "conv_batchnorm_relu_pool": lambda r: (
        [r.randn(2, 3, 9, 7), r.randn(4, 3, 3, 3), r.randn(4), r.randn(4), r.randn(4)],
        lambda: ({"stride": 1, "pad": 1}, {"mode": "train"}, {"pool_height": 3, "pool_width": 3, "stride": 2}),
    ),
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", sorted(SANDWICHES))
def test_layer_utils_sandwiches(dtype, name):
    inputs, extra = SANDWICHES[name](np.random.RandomState(7))
    compare(getattr(layer_utils, f"{name}_forward"), getattr(layer_utils, f"{name}_backward"),
            getattr(ref_utils, f"{name}_forward"), getattr(ref_utils, f"{name}_backward"), inputs, extra, dtype)


def test_every_reference_layer_has_a_derived_twin():
    """A notebook can import autocnn.core.layers instead of its own layers: same names."""
    import inspect

    for module, twin in [(ref, layers), (ref_conv, layers), (ref_fast, layers), (ref_utils, layer_utils)]:
        for name, function in inspect.getmembers(module, inspect.isfunction):
            if name.startswith("_") or function.__module__ != module.__name__:
                continue
            assert hasattr(twin, name), f"{twin.__name__} lacks {name} of {module.__name__}"


def test_backward_refuses_a_foreign_cache():
    x = np.random.randn(3, 4)
    _, ref_cache = ref.relu_forward(x)
    with pytest.raises(ValueError, match="autocnn"):
        layers.relu_backward(np.ones_like(x), ref_cache)
    _, our_cache = layers.relu_forward(x)
    with pytest.raises(ValueError, match="relu_forward"):  # and the other way round, the same error type
        ref.relu_backward(np.ones_like(x), our_cache)
