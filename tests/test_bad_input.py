"""Bad input gives a ValueError that names the argument, on both sides, never anything else.

Hypothesis draws a valid call of a public function (layers, sandwiches, models, Solver) and
usually breaks one thing about it: wrong ndim, mismatched shapes or channels, conv / pool
geometry without a whole output size, zero or negative sizes and strides, empty batches,
float or out-of-range labels, unknown modes, non-dict params, a wrong dout shape. The
test knows whether what it drew is valid, and requires

- for malformed input: a ValueError whose message names one of the offending arguments
  (as a whole word: 'x', "conv_param['stride']", 'y_train', ...);
- for valid input: a result of the right shape with finite values;
- never a hang (each call has a time limit), nor any other exception type, which would
  propagate and fail the test.

Both sides (autocnn's derived layers and reference's hand-written ones) get each input and
must give the same outcome, with the same message, since they share reference.validation.
"""

from __future__ import annotations

import contextlib
import copy
import re
import signal
from typing import Any, Callable

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import autocnn.core.layer_utils
import autocnn.core.layers
import autocnn.core.models
import reference.cnn
import reference.conv_layers
import reference.fast_layers
import reference.fc_net
import reference.layer_utils
import reference.layers
from autocnn.training.solver import Solver

FEW = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SOME = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])

FLOATS = st.sampled_from([np.float32, np.float64])

SIDE_MODULES = {
    "autocnn": (autocnn.core.layers, autocnn.core.layer_utils),
    "reference": (reference.layers, reference.conv_layers, reference.fast_layers, reference.layer_utils),
}
MODELS = {
    "autocnn": (autocnn.core.models.ThreeLayerConvNet, autocnn.core.models.FullyConnectedNet),
    "reference": (reference.cnn.ThreeLayerConvNet, reference.fc_net.FullyConnectedNet),
}


def layer(side: str, name: str) -> Callable:
    for module in SIDE_MODULES[side]:
        if hasattr(module, name):
            return getattr(module, name)
    raise LookupError(f"{side} has no {name}")


# ---------------------------------------------------------------------------
# Running a call and judging its outcome
# ---------------------------------------------------------------------------


@contextlib.contextmanager
def time_limit(seconds: float = 20.0):
    """Turn a hang into a failure (every call here takes milliseconds)."""

    def on_alarm(signum, frame):
        raise TimeoutError(f"no answer within {seconds} s")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def attempt(function: Callable, *args: Any, **kwargs: Any) -> tuple[str, Any]:
    """('ok', result) or ('error', message). Any exception but ValueError propagates."""
    with time_limit():
        try:
            return "ok", function(*copy.deepcopy(args), **copy.deepcopy(kwargs))
        except ValueError as error:
            return "error", str(error)


def names_any(message: str, names: tuple[str, ...]) -> bool:
    """Does the message mention one of the names as a whole word ('x' is not in 'expects')?"""
    return any(re.search(rf"(?<![A-Za-z0-9_]){re.escape(name)}(?![A-Za-z0-9_])", message) for name in names)


def first(result: Any) -> Any:
    return result[0] if isinstance(result, tuple) else result


def judge(where: str, outcome: tuple[str, Any], bad: tuple[str, ...], expected_shape: tuple | None) -> None:
    """bad: the names one of which a refusal must mention; () means the input is valid."""
    status, value = outcome
    if bad:
        assert status == "error", (
            f"{where} accepted malformed input (should name one of {bad}); "
            f"returned shape {np.shape(first(value))}"
        )
        assert names_any(value, bad), f"{where}: {value!r} names none of {bad}"
        return
    assert status == "ok", f"{where} refused valid input: {value}"
    out = first(value)
    if expected_shape is not None:
        assert np.shape(out) == expected_shape, f"{where}: shape {np.shape(out)}, expected {expected_shape}"
    assert np.all(np.isfinite(out)), f"{where}: non-finite output"


def both_sides(name: str, args: tuple, bad: tuple[str, ...], expected_shape: tuple | None) -> dict[str, tuple]:
    """Call `name` on both sides, judge each, and require the same outcome and message."""
    outcomes = {side: attempt(layer(side, name), *args) for side in SIDE_MODULES}
    for side, outcome in outcomes.items():
        judge(f"{side}.{name}", outcome, bad, expected_shape)
    (auto_status, auto_value), (ref_status, ref_value) = outcomes["autocnn"], outcomes["reference"]
    if auto_status == ref_status == "error":
        assert auto_value == ref_value, f"{name}: the sides word it differently:\n{auto_value}\n{ref_value}"
    return outcomes


def wrong_shape(draw: Callable, shape: tuple[int, ...]) -> tuple[int, ...]:
    """A shape near `shape` but different from it: one axis changed, dropped, or added."""
    how = draw(st.sampled_from(["grow", "drop", "add"] if len(shape) > 1 else ["grow", "add"]))
    axis = draw(st.integers(0, len(shape) - 1))
    if how == "grow":
        return shape[:axis] + (shape[axis] + draw(st.integers(1, 2)),) + shape[axis + 1 :]
    if how == "drop":
        return shape[:axis] + shape[axis + 1 :]
    return shape + (1,)


def check_backward(draw: Callable, rng: np.random.RandomState, forward: str, backward: str, args: tuple,
                   grad_shapes: tuple[tuple[int, ...], ...]) -> None:
    """After a valid forward: a dout of the output's shape gives finite grads shaped like the
    inputs; a dout of another shape is refused, naming dout, with the same message on both sides."""
    messages, bad_dout = {}, None
    for side in SIDE_MODULES:
        out, cache = layer(side, forward)(*copy.deepcopy(args))
        grads = layer(side, backward)(rng.randn(*np.shape(out)), cache)
        grads = grads if isinstance(grads, tuple) else (grads,)
        assert tuple(np.shape(g) for g in grads) == grad_shapes, f"{side}.{backward}"
        assert all(np.all(np.isfinite(g)) for g in grads), f"{side}.{backward}: non-finite gradient"
        if bad_dout is None:  # the same wrong dout for both sides
            bad_dout = rng.randn(*wrong_shape(draw, np.shape(out)))
        status, messages[side] = attempt(layer(side, backward), bad_dout, cache)
        judge(f"{side}.{backward}", (status, messages[side]), ("dout",), None)
    assert messages["autocnn"] == messages["reference"]


def randn(rng: np.random.RandomState, *shape: int, dtype=np.float64) -> np.ndarray:
    return rng.randn(*shape).astype(dtype)


def rng_of(draw: Callable) -> np.random.RandomState:
    return np.random.RandomState(draw(st.integers(0, 2**16)))


# ---------------------------------------------------------------------------
# Geometry: whole (valid) or possibly broken
# ---------------------------------------------------------------------------


def valid_conv_geometry(draw: Callable) -> tuple[int, int, int, int, int, int]:
    """(H, W, HH, WW, stride, pad) with whole output sizes, drawn through the output size."""
    stride, pad = draw(st.integers(1, 3)), draw(st.integers(0, 2))
    hh, ww = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    out_h, out_w = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    h, w = (out_h - 1) * stride + hh - 2 * pad, (out_w - 1) * stride + ww - 2 * pad
    if h < 1 or w < 1:
        pad = 0
        h, w = (out_h - 1) * stride + hh, (out_w - 1) * stride + ww
    return h, w, hh, ww, stride, pad


def any_conv_geometry(draw: Callable) -> tuple[tuple[int, ...], tuple[str, ...], tuple[int, int] | None]:
    """Any (H, W, HH, WW, stride, pad), the names a refusal may give, and the output size if valid."""
    h, w, hh, ww = (draw(st.integers(1, 7)) for _ in range(4))
    stride, pad = draw(st.integers(-1, 3)), draw(st.integers(-1, 2))
    bad: list[str] = []
    if stride < 1:
        bad.append("conv_param['stride']")
    if pad < 0:
        bad.append("conv_param['pad']")
    sizes = []
    if not bad:
        for size, window in ((h, hh), (w, ww)):
            span = size + 2 * pad - window
            if span < 0:
                bad += ["w", "x"]  # the filter does not fit
            elif span % stride:
                bad.append("conv_param['stride']")
            else:
                sizes.append(1 + span // stride)
    return (h, w, hh, ww, stride, pad), tuple(bad), (tuple(sizes) if not bad else None)


def any_pool_geometry(draw: Callable, h: int, w: int) -> tuple[dict, tuple[str, ...], tuple[int, int] | None]:
    """A pool_param for an H x W input, the names a refusal may give, and the output size if valid."""
    param = {"pool_height": draw(st.integers(-1, 4)), "pool_width": draw(st.integers(-1, 4)),
             "stride": draw(st.integers(-1, 3))}
    bad = [f"pool_param[{key!r}]" for key, value in param.items() if value < 1]
    sizes = []
    if not bad:
        for size, key in ((h, "pool_height"), (w, "pool_width")):
            span = size - param[key]
            if span < 0:
                bad += [f"pool_param[{key!r}]", "x"]
            elif span % param["stride"]:
                bad.append("pool_param['stride']")
            else:
                sizes.append(1 + span // param["stride"])
    return param, tuple(bad), (tuple(sizes) if not bad else None)


# ---------------------------------------------------------------------------
# Layers
# ---------------------------------------------------------------------------


@SOME
@given(st.data())
def test_affine(data):
    draw = data.draw
    rng = rng_of(draw)
    n, m = draw(st.integers(1, 3)), draw(st.integers(1, 4))
    dims = tuple(draw(st.lists(st.integers(1, 3), min_size=1, max_size=3)))
    d = int(np.prod(dims))
    x, w, b = randn(rng, n, *dims, dtype=draw(FLOATS)), randn(rng, d, m), randn(rng, m)
    mutation = draw(st.sampled_from([None, "x 1-D", "x empty", "x int", "x list", "w 1-D", "w rows",
                                     "w int", "b length", "b 2-D"]))
    event(f"mutation: {mutation}")
    bad: tuple[str, ...] = ()
    if mutation == "x 1-D":
        x, bad = randn(rng, d), ("x",)
    elif mutation == "x empty":
        x, bad = randn(rng, 0, *dims), ("x",)
    elif mutation == "x int":
        x, bad = x.astype(np.int64), ("x",)
    elif mutation == "x list":
        x, bad = x.tolist(), ("x",)
    elif mutation == "w 1-D":
        w, bad = w.ravel(), ("w",)
    elif mutation == "w rows":
        w, bad = randn(rng, d + draw(st.integers(1, 2)), m), ("w",)
    elif mutation == "w int":
        w, bad = np.ones((d, m), dtype=np.int32), ("w",)
    elif mutation == "b length":
        b, bad = randn(rng, m + 1), ("b",)
    elif mutation == "b 2-D":
        b, bad = b[None, :], ("b",)
    for name in ("affine_forward", "affine_relu_forward"):
        both_sides(name, (x, w, b), bad, (n, m))
    if not bad:
        check_backward(draw, rng, "affine_forward", "affine_backward", (x, w, b), (x.shape, w.shape, b.shape))
        check_backward(draw, rng, "affine_relu_forward", "affine_relu_backward", (x, w, b),
                       (x.shape, w.shape, b.shape))


@SOME
@given(st.data())
def test_relu(data):
    draw = data.draw
    rng = rng_of(draw)
    x = randn(rng, *draw(st.lists(st.integers(1, 4), min_size=1, max_size=4)))
    mutation = draw(st.sampled_from([None, "empty", "int", "list", "bool"]))
    event(f"mutation: {mutation}")
    bad: tuple[str, ...] = ("x",) if mutation else ()
    if mutation == "empty":
        x = x[:0]
    elif mutation == "int":
        x = np.arange(x.size).reshape(x.shape)
    elif mutation == "list":
        x = x.tolist()
    elif mutation == "bool":
        x = x > 0
    both_sides("relu_forward", (x,), bad, np.shape(x))
    if not bad:
        check_backward(draw, rng, "relu_forward", "relu_backward", (x,), (x.shape,))


def _bn_param_mutation(draw: Callable, rng: np.random.RandomState, features: int, mode: str):
    """A bn_param, possibly broken, and the names a refusal may give."""
    bn_param: Any = {"mode": mode}
    if draw(st.booleans()):
        bn_param.update(running_mean=randn(rng, features), running_var=rng.rand(features) + 0.5)
    mutation = draw(st.sampled_from([None, None, "not a dict", "mode", "no mode", "eps", "momentum",
                                     "running_mean", "running_var"]))
    if mutation == "not a dict":
        return draw(st.sampled_from([None, "train", [("mode", "train")]])), ("bn_param",)
    if mutation == "mode":
        bn_param["mode"] = draw(st.sampled_from(["eval", "TRAIN", None, 1]))
        return bn_param, ("bn_param['mode']",)
    if mutation == "no mode":
        del bn_param["mode"]
        return bn_param, ("bn_param", "mode")
    if mutation == "eps":
        bn_param["eps"] = draw(st.sampled_from([0.0, -1e-5, float("nan"), "1e-5"]))
        return bn_param, ("bn_param['eps']",)
    if mutation == "momentum":
        bn_param["momentum"] = draw(st.sampled_from([-0.1, 1.5, float("nan"), None]))
        return bn_param, ("bn_param['momentum']",)
    if mutation in ("running_mean", "running_var"):
        bn_param[mutation] = draw(st.sampled_from([randn(rng, features + 1), randn(rng, features, 1),
                                                   [0.0] * features]))
        return bn_param, (f"bn_param[{mutation!r}]",)
    return bn_param, ()


@SOME
@given(st.data(), st.booleans())
def test_batchnorm(data, spatial):
    draw = data.draw
    rng = rng_of(draw)
    shape = (draw(st.integers(1, 4)), draw(st.integers(1, 3))) + ((draw(st.integers(1, 3)),) * 2 if spatial else ())
    features = shape[1]
    x, gamma, beta = randn(rng, *shape), randn(rng, features), randn(rng, features)
    mode = draw(st.sampled_from(["train", "test"]))
    mutation = draw(st.sampled_from([None, "bn_param", "x ndim", "x empty", "gamma", "beta"]))
    event(f"mutation: {mutation}")
    bn_param, bad = {"mode": mode}, ()
    if mutation == "bn_param":
        bn_param, bad = _bn_param_mutation(draw, rng, features, mode)
    elif mutation == "x ndim":
        x, bad = x[..., None], ("x",)
    elif mutation == "x empty":
        x, bad = x[:0], ("x",)
    elif mutation == "gamma":
        gamma, bad = randn(rng, features + 1), ("gamma",)
    elif mutation == "beta":
        beta, bad = randn(rng, features, 1), ("beta",)
    name = "spatial_batchnorm_forward" if spatial else "batchnorm_forward"
    both_sides(name, (x, gamma, beta, bn_param), bad, x.shape)
    if not bad:
        check_backward(draw, rng, name, name.replace("forward", "backward"), (x, gamma, beta, bn_param),
                       (x.shape, gamma.shape, beta.shape))


@SOME
@given(st.data(), st.booleans())
def test_layernorm_and_groupnorm(data, grouped):
    draw = data.draw
    rng = rng_of(draw)
    n = draw(st.integers(1, 3))
    if grouped:
        groups = draw(st.integers(1, 3))
        channels = groups * draw(st.integers(1, 3))
        x = randn(rng, n, channels, draw(st.integers(1, 3)), draw(st.integers(1, 3)))
        param_shape = draw(st.sampled_from([(channels,), (1, channels, 1, 1)]))
    else:
        x = randn(rng, n, draw(st.integers(1, 5)))
        param_shape = (x.shape[1],)
    gamma, beta = randn(rng, *param_shape), randn(rng, *param_shape)
    param_name = "gn_param" if grouped else "ln_param"
    param: Any = {"eps": draw(st.sampled_from([1e-5, 1e-2]))} if draw(st.booleans()) else {}
    mutations = [None, "param", "eps", "x ndim", "x empty", "gamma", "beta"] + (["G"] if grouped else [])
    mutation = draw(st.sampled_from(mutations))
    event(f"mutation: {mutation}")
    bad: tuple[str, ...] = ()
    if mutation == "param":
        param, bad = draw(st.sampled_from([None, 1e-5, [("eps", 1e-5)]])), (param_name,)
    elif mutation == "eps":
        param, bad = {"eps": draw(st.sampled_from([0.0, -1e-5, float("nan"), "1e-5", None]))}, (f"{param_name}['eps']",)
    elif mutation == "x ndim":
        x, bad = x[..., None], ("x",)
    elif mutation == "x empty":
        x, bad = x[:0], ("x",)
    elif mutation == "gamma":
        gamma, bad = randn(rng, *param_shape[:-1], param_shape[-1] + 1), ("gamma",)
    elif mutation == "beta":
        beta, bad = randn(rng, *param_shape, 1), ("beta",)
    if grouped:
        G: Any = groups
        if mutation == "G":
            G = draw(st.sampled_from([0, -1, 2.0, None, channels + 1]))
            bad = ("G",)
        args: tuple = (x, gamma, beta, G, param)
        name = "spatial_groupnorm_forward"
    else:
        args, name = (x, gamma, beta, param), "layernorm_forward"
    both_sides(name, args, bad, x.shape)
    if not bad:
        check_backward(draw, rng, name, name.replace("forward", "backward"), args, (x.shape, gamma.shape, beta.shape))


@SOME
@given(st.data())
def test_dropout(data):
    draw = data.draw
    rng = rng_of(draw)
    x = randn(rng, *draw(st.lists(st.integers(1, 4), min_size=1, max_size=3)))
    param: Any = {"mode": draw(st.sampled_from(["train", "test"])), "p": draw(st.sampled_from([0.3, 0.5, 1.0]))}
    if draw(st.booleans()):
        param["seed"] = draw(st.integers(0, 2**32 - 1))
    mutation = draw(st.sampled_from([None, "p", "no p", "mode", "not a dict", "seed", "x empty", "x int"]))
    event(f"mutation: {mutation}")
    bad: tuple[str, ...] = ()
    if mutation == "p":
        param["p"], bad = draw(st.sampled_from([0, 0.0, -0.5, 1.5, "0.5", True, float("nan")])), ("dropout_param['p']",)
    elif mutation == "no p":
        del param["p"]
        bad = ("dropout_param",)
    elif mutation == "mode":
        param["mode"], bad = draw(st.sampled_from(["eval", None, "Train"])), ("dropout_param['mode']",)
    elif mutation == "not a dict":
        param, bad = draw(st.sampled_from([0.5, None, ["p", "mode"]])), ("dropout_param",)
    elif mutation == "seed":
        param["seed"], bad = draw(st.sampled_from([-1, 2**32, 1.5, "0"])), ("dropout_param['seed']",)
    elif mutation == "x empty":
        x, bad = x[:0], ("x",)
    elif mutation == "x int":
        x, bad = np.zeros(x.shape, dtype=np.int64), ("x",)
    both_sides("dropout_forward", (x, param), bad, np.shape(x))
    if not bad:
        check_backward(draw, rng, "dropout_forward", "dropout_backward", (x, param), (x.shape,))


@SOME
@given(st.data(), st.sampled_from(["softmax_loss", "svm_loss"]))
def test_losses(data, name):
    draw = data.draw
    rng = rng_of(draw)
    n, c = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    x, y = randn(rng, n, c), rng.randint(c, size=n)
    mutation = draw(st.sampled_from([None, "y float", "y bool", "y too big", "y negative", "y length",
                                     "y 2-D", "y None", "x 1-D", "x 3-D", "empty"]))
    event(f"mutation: {mutation}")
    bad: tuple[str, ...] = ()
    if mutation == "y float":
        y, bad = y.astype(np.float64), ("y",)
    elif mutation == "y bool":
        y, bad = y > 0, ("y",)
    elif mutation == "y too big":
        y = y.copy()
        y[draw(st.integers(0, n - 1))] = c + draw(st.integers(0, 3))
        bad = ("labels", "y")
    elif mutation == "y negative":
        y = y.copy()
        y[draw(st.integers(0, n - 1))] = -draw(st.integers(1, 3))
        bad = ("labels", "y")
    elif mutation == "y length":
        y, bad = rng.randint(c, size=n + draw(st.sampled_from([-1, 1]))), ("y",)
    elif mutation == "y 2-D":
        y, bad = y[:, None], ("y",)
    elif mutation == "y None":
        y, bad = None, ("y",)
    elif mutation == "x 1-D":
        x, bad = x.ravel(), ("x",)
    elif mutation == "x 3-D":
        x, bad = x[:, :, None], ("x",)
    elif mutation == "empty":
        x, y, bad = x[:0], y[:0], ("x",)
    outcomes = both_sides(name, (x, y), bad, ())
    if not bad:
        for _, (loss, dx) in outcomes.values():
            assert np.shape(dx) == (n, c) and np.all(np.isfinite(dx))


# ---------------------------------------------------------------------------
# Convolution and pooling
# ---------------------------------------------------------------------------


def _conv_case(draw: Callable, rng: np.random.RandomState):
    """x, w, b, conv_param (possibly broken), the names a refusal may give, and the output shape."""
    n, c, f = draw(st.integers(1, 2)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
    mutation = draw(st.sampled_from([None, "geometry", "geometry", "channels", "b length", "x 3-D", "w 3-D",
                                     "not a dict", "no pad", "float stride", "empty batch"]))
    event(f"mutation: {mutation}")
    if mutation == "geometry":
        (h, w_, hh, ww, stride, pad), bad, out = any_conv_geometry(draw)
    else:
        h, w_, hh, ww, stride, pad = valid_conv_geometry(draw)
        bad, out = (), (1 + (h + 2 * pad - hh) // stride, 1 + (w_ + 2 * pad - ww) // stride)
    x, w, b = randn(rng, n, c, h, w_, dtype=draw(FLOATS)), randn(rng, f, c, hh, ww), randn(rng, f)
    conv_param: Any = {"stride": stride, "pad": pad}
    if mutation == "channels":
        w, bad = randn(rng, f, c + 1, hh, ww), ("x", "w")
    elif mutation == "b length":
        b, bad = randn(rng, f + 1), ("b",)
    elif mutation == "x 3-D":
        x, bad = x[0], ("x",)
    elif mutation == "w 3-D":
        w, bad = w[0], ("w",)
    elif mutation == "not a dict":
        conv_param, bad = draw(st.sampled_from([(stride, pad), None, stride])), ("conv_param",)
    elif mutation == "no pad":
        conv_param, bad = {"stride": stride}, ("conv_param",)
    elif mutation == "float stride":
        conv_param["stride"], bad = float(stride), ("conv_param['stride']",)
    elif mutation == "empty batch":
        x, bad = x[:0], ("x",)
    shape = (n, f) + tuple(out) if not bad else None
    return (x, w, b, conv_param), bad, shape


@SOME
@given(st.data(), st.sampled_from(["conv_forward_naive", "conv_forward_fast", "conv_relu_forward"]))
def test_conv(data, name):
    draw = data.draw
    rng = rng_of(draw)
    args, bad, shape = _conv_case(draw, rng)
    both_sides(name, args, bad, shape)
    if not bad:
        x, w, b, _ = args
        check_backward(draw, rng, name, name.replace("forward", "backward"), args, (x.shape, w.shape, b.shape))


@SOME
@given(st.data(), st.sampled_from(["max_pool_forward_naive", "max_pool_forward_fast"]))
def test_pool(data, name):
    draw = data.draw
    rng = rng_of(draw)
    n, c, h, w = draw(st.integers(1, 2)), draw(st.integers(1, 3)), draw(st.integers(1, 7)), draw(st.integers(1, 7))
    x = randn(rng, n, c, h, w, dtype=draw(FLOATS))
    mutation = draw(st.sampled_from([None, "geometry", "geometry", "x 3-D", "x empty", "not a dict",
                                     "no stride", "float size"]))
    event(f"mutation: {mutation}")
    pool_param: Any = {"pool_height": 1, "pool_width": 1, "stride": 1}
    bad: tuple[str, ...] = ()
    out: tuple | None = (h, w)
    if mutation in ("geometry", None):
        pool_param, bad, out = any_pool_geometry(draw, h, w)
    elif mutation == "x 3-D":
        x, bad = x[0], ("x",)
    elif mutation == "x empty":
        x, bad = x[:0], ("x",)
    elif mutation == "not a dict":
        pool_param, bad = draw(st.sampled_from([None, 2, (2, 2, 2)])), ("pool_param",)
    elif mutation == "no stride":
        del pool_param["stride"]
        bad = ("pool_param",)
    elif mutation == "float size":
        pool_param["pool_width"], bad = 1.0, ("pool_param['pool_width']",)
    shape = (n, c) + tuple(out) if not bad else None
    both_sides(name, (x, pool_param), bad, shape)
    if not bad:
        check_backward(draw, rng, name, name.replace("forward", "backward"), (x, pool_param), (x.shape,))


@FEW
@given(st.data(), st.sampled_from(["conv_relu_pool_forward", "conv_batchnorm_relu_forward",
                                   "conv_batchnorm_relu_pool_forward", "affine_batchnorm_relu_forward"]))
def test_sandwiches(data, name):
    draw = data.draw
    rng = rng_of(draw)
    affine, with_bn, with_pool = name.startswith("affine"), "batchnorm" in name, "pool" in name
    if affine:
        n, d, m = draw(st.integers(1, 3)), draw(st.integers(1, 4)), draw(st.integers(1, 4))
        x, w, b = randn(rng, n, d), randn(rng, d, m), randn(rng, m)
        bad: tuple[str, ...] = ()
        shape: tuple | None = (n, m)
        if draw(st.booleans()):
            w, bad, shape = randn(rng, d + 1, m), ("w",), None
    else:
        (x, w, b, conv_param), bad, shape = _conv_case(draw, rng)
    # One thing broken at a time: the conv / affine part, else batchnorm, else the pool.
    call: list[Any] = [x, w, b]
    if with_bn:
        width = np.shape(w)[1] if affine else np.shape(w)[0]
        mode = draw(st.sampled_from(["train", "test"]))
        gamma, beta, bn_param = randn(rng, width), randn(rng, width), {"mode": mode}
        what = draw(st.sampled_from([None, "gamma", "beta", "bn_param"])) if not bad else None
        if what == "gamma":
            gamma, bad = randn(rng, width + 1), ("gamma",)
        elif what == "beta":
            beta, bad = randn(rng, width, 1), ("beta",)
        elif what == "bn_param":
            bn_param, bad = _bn_param_mutation(draw, rng, width, mode)
        call += [gamma, beta]
    if not affine:
        call.append(conv_param)
    if with_bn:
        call.append(bn_param)
    if with_pool:
        pool_param: Any = {"pool_height": 1, "pool_width": 1, "stride": 1}
        if not bad:
            pool_param, bad, out = any_pool_geometry(draw, shape[2], shape[3])
            shape = shape[:2] + tuple(out) if not bad else None
        call.append(pool_param)
    both_sides(name, tuple(call), bad, None if bad else shape)
    if not bad:
        grad_shapes = (x.shape, w.shape, b.shape) + ((gamma.shape, beta.shape) if with_bn else ())
        check_backward(draw, rng, name, name.replace("forward", "backward"), tuple(call), grad_shapes)


# ---------------------------------------------------------------------------
# Models
# ---------------------------------------------------------------------------


def _model_pair(draw: Callable, kind: str):
    """The same small model built on both sides (same params), and its input shape and classes."""
    num_classes = draw(st.integers(1, 4))
    if kind == "three-layer":
        input_dim = (draw(st.integers(1, 2)), 2 * draw(st.integers(1, 2)), 2 * draw(st.integers(1, 2)))
        kwargs = dict(input_dim=input_dim, num_filters=draw(st.integers(1, 2)), filter_size=draw(st.sampled_from([1, 3])),
                      hidden_dim=draw(st.integers(1, 3)), num_classes=num_classes, weight_scale=0.5,
                      use_batchnorm=draw(st.booleans()), dtype=np.float64)
    else:
        input_dim = draw(st.integers(1, 5))
        kwargs = dict(hidden_dims=draw(st.lists(st.integers(1, 3), max_size=2)), input_dim=input_dim,
                      num_classes=num_classes, dropout=draw(st.sampled_from([1, 0.5])), seed=0,
                      use_batchnorm=draw(st.booleans()), weight_scale=0.5, dtype=np.float64)
        input_dim = (input_dim,)
    models = {side: MODELS[side][0 if kind == "three-layer" else 1](**kwargs) for side in MODELS}
    models["reference"].params = {name: value.copy() for name, value in models["autocnn"].params.items()}
    return models, tuple(input_dim), num_classes


@FEW
@given(st.data(), st.sampled_from(["three-layer", "fc"]))
def test_model_loss(data, kind):
    draw = data.draw
    rng = rng_of(draw)
    models, input_shape, num_classes = _model_pair(draw, kind)
    n = draw(st.integers(1, 3))
    X, y = randn(rng, n, *input_shape), rng.randint(num_classes, size=n)
    mutation = draw(st.sampled_from([None, "X shape", "X ndim", "X empty", "X list", "X complex", "y float",
                                     "y range", "y length", "y 2-D", "y list of floats"]))
    event(f"mutation: {mutation}")
    bad: tuple[str, ...] = ()
    if mutation == "X shape":
        axis = draw(st.integers(1, len(input_shape)))
        shape = list(X.shape)
        shape[axis] += 1
        X, bad = randn(rng, *shape), ("X",)
    elif mutation == "X ndim":
        X, bad = X.ravel(), ("X",)
    elif mutation == "X empty":
        X, y, bad = X[:0], y[:0], ("X",)
    elif mutation == "X list":
        X, bad = X.tolist(), ("X",)
    elif mutation == "X complex":
        X, bad = X.astype(np.complex128), ("X",)
    elif mutation == "y float":
        y, bad = y.astype(np.float32), ("y",)
    elif mutation == "y range":
        y = y.copy()
        y[0] = draw(st.sampled_from([-1, num_classes, num_classes + 5]))
        bad = ("labels", "y")
    elif mutation == "y length":
        y, bad = rng.randint(num_classes, size=n + 1), ("y",)
    elif mutation == "y 2-D":
        y, bad = y[:, None], ("y",)
    elif mutation == "y list of floats":
        y, bad = [float(label) for label in y], ("y",)
    train = draw(st.booleans()) or mutation is not None and mutation.startswith("y")
    outcomes = {}
    for side, model in models.items():
        outcomes[side] = attempt(model.loss, X, y) if train else attempt(model.loss, X)
        if train and outcomes[side][0] == "ok":
            assert not bad, f"{side} loss accepted malformed input (should name one of {bad})"
            loss, grads = outcomes[side][1]
            assert np.isfinite(loss) and set(grads) == set(model.params)
            assert all(grads[k].shape == model.params[k].shape and np.all(np.isfinite(grads[k])) for k in grads)
            judge(f"{side} loss", ("ok", np.asarray(loss)), (), ())
        else:
            judge(f"{side} loss", outcomes[side], bad, (n, num_classes))
    if outcomes["autocnn"][0] == outcomes["reference"][0] == "error":
        assert outcomes["autocnn"][1] == outcomes["reference"][1]


THREE_LAYER_BAD = {
    "input_dim": [(3, 32), (3, 32, 32, 1), (0, 8, 8), (3, 7, 8), (3, 8, 5), (3, 8.0, 8), "3x8x8", 32],
    "num_filters": [0, -1, 2.5, True, None],
    "filter_size": [0, -3, 4, 3.0],
    "hidden_dim": [0, -10, "100"],
    "num_classes": [0, -1, 1.5],
    "weight_scale": [0, -1e-3, float("nan"), float("inf"), "big", None],
    "reg": [-0.1, float("nan"), "0", None],
    "dtype": ["float33", np.int32, int, object, "nonsense"],
}
FC_BAD = {
    "hidden_dims": [[0], [3, -1], "12", 5, [2.5], None],
    "input_dim": [0, -4, (3, 4), 4.0],
    "num_classes": [0, -1, None],
    "dropout": [0, -0.5, 1.5, "0.5", float("nan"), True],
    "weight_scale": [0, -1.0, "x"],
    "reg": [-1, float("inf")],
    "dtype": ["float33", np.int64, bool],
}


@SOME
@given(st.data(), st.sampled_from(["three-layer", "fc"]))
def test_model_constructors_name_the_bad_argument(data, kind):
    draw = data.draw
    table = THREE_LAYER_BAD if kind == "three-layer" else FC_BAD
    argument = draw(st.sampled_from(sorted(table)))
    value = draw(st.sampled_from(table[argument]))
    base = (dict(input_dim=(3, 8, 8), num_filters=2, filter_size=3, hidden_dim=4, num_classes=3)
            if kind == "three-layer" else dict(hidden_dims=[4], input_dim=6, num_classes=3))
    kwargs = dict(base, **{argument: value})
    messages = {}
    for side, classes in MODELS.items():
        model_class = classes[0 if kind == "three-layer" else 1]
        status, messages[side] = attempt(model_class, **kwargs)
        judge(f"{side} {model_class.__name__}({argument}={value!r})", (status, messages[side]),
              (argument,), None)
    if argument != "weight_scale":  # autocnn also offers 'he', and says so
        assert messages["autocnn"] == messages["reference"]


def test_autocnn_models_offer_he_init_and_the_reference_says_it_does_not():
    autocnn.core.models.ThreeLayerConvNet(input_dim=(3, 8, 8), num_filters=2, hidden_dim=4, weight_scale="he")
    autocnn.core.models.FullyConnectedNet([4], input_dim=6, weight_scale="he")
    with pytest.raises(ValueError, match="weight_scale must be a positive number, got 'he'"):
        reference.cnn.ThreeLayerConvNet(input_dim=(3, 8, 8), num_filters=2, hidden_dim=4, weight_scale="he")


def test_convnet_constructor_names_bad_blocks_and_sizes():
    with pytest.raises(ValueError, match=r"blocks\[1\]\[0\] must be >= 1"):
        autocnn.core.models.ConvNet(input_dim=(3, 8, 8), blocks=((2,), (0,)))
    with pytest.raises(ValueError, match="divisible by 4"):
        autocnn.core.models.ConvNet(input_dim=(3, 6, 6), blocks=((2,), (2,)))
    with pytest.raises(ValueError, match=r"hidden_dims\[0\]"):
        autocnn.core.models.ConvNet(input_dim=(3, 8, 8), blocks=((2,),), hidden_dims=(-1,))
    with pytest.raises(ValueError, match="input_dim must be >= 1"):
        autocnn.core.models.ConvNet(input_dim=0, blocks=())


# ---------------------------------------------------------------------------
# Solver
# ---------------------------------------------------------------------------


def _solver_parts(seed: int = 0, model_side: str = "reference"):
    rng = np.random.RandomState(seed)
    model = MODELS[model_side][1]([3], input_dim=4, num_classes=3, dtype=np.float64)
    data = {"X_train": rng.randn(12, 4), "y_train": rng.randint(3, size=12),
            "X_val": rng.randn(5, 4), "y_val": rng.randint(3, size=5)}
    return model, data


SOLVER_BAD_SETTINGS = {
    "batch_size": [0, -5, 2.5, "10", True, None],
    "num_epochs": [0, -1, 1.5, "3"],
    "print_every": [0, -1, 0.5],
    "num_train_samples": [0, -100, 10.0],
    "num_val_samples": [0, "all"],
    "lr_decay": [0, -0.5, float("nan"), float("inf"), "0.9", None],
    "update_rule": ["nesterov", "", 3, None],
    "optim_config": [[("learning_rate", 1e-3)], 1e-3, "adam"],
    "seed": [-1, 2**32, 1.5, "0"],
}


@SOME
@given(st.data(), st.sampled_from(["reference", "autocnn"]))
def test_solver_construction(data, model_side):
    draw = data.draw
    model, good_data = _solver_parts(draw(st.integers(0, 100)), model_side)
    solver_data: Any = dict(good_data)
    kwargs: dict[str, Any] = {"verbose": False}
    where = draw(st.sampled_from([None, "setting", "data"]))
    bad: tuple[str, ...] = ()
    if where == "setting":
        argument = draw(st.sampled_from(sorted(SOLVER_BAD_SETTINGS)))
        kwargs[argument], bad = draw(st.sampled_from(SOLVER_BAD_SETTINGS[argument])), (argument,)
    elif where == "data":
        split = draw(st.sampled_from(["train", "val"]))
        X_key, y_key = f"X_{split}", f"y_{split}"
        mutation = draw(st.sampled_from(["missing X", "missing y", "not a dict", "lengths", "empty", "float labels",
                                         "labels too big", "negative labels", "y list", "X list", "y 2-D"]))
        if mutation == "missing X":
            del solver_data[X_key]
            bad = (X_key,)
        elif mutation == "missing y":
            del solver_data[y_key]
            bad = (y_key,)
        elif mutation == "not a dict":
            solver_data, bad = list(good_data.values()), ("data",)
        elif mutation == "lengths":
            solver_data[y_key], bad = solver_data[y_key][:-1], (X_key, y_key)
        elif mutation == "empty":
            solver_data[X_key], solver_data[y_key], bad = solver_data[X_key][:0], solver_data[y_key][:0], (X_key,)
        elif mutation == "float labels":
            solver_data[y_key], bad = solver_data[y_key].astype(np.float64), (y_key,)
        elif mutation == "labels too big":
            solver_data[y_key] = solver_data[y_key] + 3
            bad = (y_key,)
        elif mutation == "negative labels":
            solver_data[y_key] = solver_data[y_key] - 5
            bad = (y_key,)
        elif mutation == "y list":
            solver_data[y_key], bad = solver_data[y_key].tolist(), (y_key,)
        elif mutation == "X list":
            solver_data[X_key], bad = solver_data[X_key].tolist(), (X_key,)
        elif mutation == "y 2-D":
            solver_data[y_key], bad = solver_data[y_key][:, None], (y_key,)
    status, value = attempt(Solver, model, solver_data, **kwargs)
    if bad:
        judge("Solver", (status, value), bad, None)
    else:
        assert status == "ok" and isinstance(value, Solver), value


@FEW
@given(st.data())
def test_solver_check_accuracy_arguments(data):
    draw = data.draw
    model, solver_data = _solver_parts(draw(st.integers(0, 100)))
    solver = Solver(model, solver_data, verbose=False, seed=0)
    X, y = solver_data["X_val"], solver_data["y_val"]
    kwargs: dict[str, Any] = {}
    mutation = draw(st.sampled_from([None, "X list", "X empty", "y float", "y length", "y list",
                                     "num_samples", "batch_size"]))
    event(f"mutation: {mutation}")
    bad: tuple[str, ...] = ()
    if mutation == "X list":
        X, bad = X.tolist(), ("X",)
    elif mutation == "X empty":
        X, y, bad = X[:0], y[:0], ("X",)
    elif mutation == "y float":
        y, bad = y.astype(np.float64), ("y",)
    elif mutation == "y length":
        y, bad = y[:-1], ("y",)
    elif mutation == "y list":
        y, bad = y.tolist(), ("y",)
    elif mutation == "num_samples":
        kwargs["num_samples"], bad = draw(st.sampled_from([0, -3, 2.5, "10"])), ("num_samples",)
    elif mutation == "batch_size":
        kwargs["batch_size"], bad = draw(st.sampled_from([0, -1, 1.5, None])), ("batch_size",)
    status, value = attempt(solver.check_accuracy, X, y, **kwargs)
    if bad:
        judge("check_accuracy", (status, value), bad, None)
    else:
        assert status == "ok" and 0.0 <= value <= 1.0


# ---------------------------------------------------------------------------
# The same bad input, the same words, on both sides
# ---------------------------------------------------------------------------


def _r(*shape):
    return np.random.RandomState(0).randn(*shape)


SAME_MESSAGE_CASES = [
    ("conv_forward_fast", lambda: (_r(2, 3, 6, 6), _r(4, 3, 3, 3), _r(4), {"stride": 2, "pad": 1}),
     "conv_param['stride'] = 2 does not divide H + 2 * pad - HH = 5"),
    ("conv_forward_naive", lambda: (_r(2, 3, 6, 6), _r(4, 2, 3, 3), _r(4), {"stride": 1, "pad": 1}),
     "channel mismatch: x has 3 channels but w expects 2"),
    ("conv_forward_fast", lambda: (_r(2, 3, 2, 2), _r(4, 3, 5, 5), _r(4), {"stride": 1, "pad": 0}),
     "w's filter height HH = 5 does not fit x's height H = 2"),
    ("conv_forward_fast", lambda: (_r(2, 3, 6, 6), _r(4, 3, 3, 3), _r(4), {"stride": 0, "pad": 1}),
     "conv_param['stride'] must be >= 1, got 0"),
    ("max_pool_forward_fast", lambda: (_r(2, 3, 5, 5), {"pool_height": 2, "pool_width": 2, "stride": 2}),
     "pool_param['stride'] = 2 does not divide H - pool_height = 3"),
    ("max_pool_forward_naive", lambda: (_r(2, 3, 5, 5), {"pool_height": 2, "pool_width": 6, "stride": 1}),
     "pool_param['pool_width'] = 6 does not fit the pooled input's width W = 5"),
    ("affine_forward", lambda: (_r(2, 3, 4), _r(11, 5), _r(5)), "w must have 12 rows"),
    ("batchnorm_forward", lambda: (_r(4, 3), _r(3), _r(3), {"mode": "eval"}),
     "bn_param['mode'] must be 'train' or 'test', got 'eval'"),
    ("spatial_batchnorm_forward", lambda: (_r(2, 3, 4, 4), _r(4), _r(3), {"mode": "train"}),
     "gamma must have shape (3,), one per channel of x, got shape (4,)"),
    ("layernorm_forward", lambda: (_r(4, 3), _r(4), _r(3), {}),
     "gamma must have shape (3,), one per feature of x, got shape (4,)"),
    ("layernorm_forward", lambda: (_r(4, 3, 2), _r(3), _r(3), {}), "x must have shape (N, D), got shape (4, 3, 2)"),
    ("layernorm_forward", lambda: (_r(4, 3), _r(3), _r(3), {"eps": 0}), "ln_param['eps'] must be a positive number, got 0"),
    ("layernorm_forward", lambda: (_r(4, 3), _r(3), _r(3), None), "ln_param must be a dict, got NoneType"),
    ("spatial_groupnorm_forward", lambda: (_r(2, 6, 3, 3), _r(1, 6, 1, 1), _r(1, 6, 1, 1), 4, {}),
     "G = 4 groups must divide the 6 channels of x"),
    ("spatial_groupnorm_forward", lambda: (_r(2, 6, 3, 3), _r(1, 6, 1, 1), _r(1, 6, 1, 1), 0, {}), "G must be >= 1, got 0"),
    ("spatial_groupnorm_forward", lambda: (_r(2, 6, 3, 3), _r(1, 6, 1, 1), _r(1, 6, 1, 1), 2.0, {}),
     "G must be an integer, got 2.0"),
    ("spatial_groupnorm_forward", lambda: (_r(2, 6, 3, 3), _r(1, 6, 1, 1), _r(6, 1), 3, {}),
     "beta must have shape (1, 6, 1, 1) or (6,), one per channel of x, got shape (6, 1)"),
    ("spatial_groupnorm_forward", lambda: (_r(2, 6, 3), _r(1, 6, 1, 1), _r(1, 6, 1, 1), 3, {}),
     "x must have shape (N, C, H, W), got shape (2, 6, 3)"),
    ("spatial_groupnorm_forward", lambda: (_r(2, 6, 3, 3), _r(1, 6, 1, 1), _r(1, 6, 1, 1), 3, {"eps": -1.0}),
     "gn_param['eps'] must be a positive number, got -1.0"),
    ("dropout_forward", lambda: (_r(3, 4), {"mode": "train", "p": 0}),
     "dropout_param['p'] (probability of keeping a unit) must be in (0, 1], got 0"),
    ("softmax_loss", lambda: (_r(3, 4), np.array([0, 4, 1])), "y: labels must be in [0, 4), got values from 0 to 4"),
    ("svm_loss", lambda: (_r(3, 4), np.array([0.0, 1.0, 2.0])), "y must hold integer class labels, got dtype float64"),
    ("conv_relu_pool_forward",
     lambda: (_r(1, 2, 5, 5), _r(3, 2, 3, 3), _r(3), {"stride": 1, "pad": 1},
              {"pool_height": 2, "pool_width": 2, "stride": 2}),
     "pool_param['stride'] = 2 does not divide H - pool_height = 3"),
    ("conv_batchnorm_relu_forward",
     lambda: (_r(1, 2, 4, 4), _r(3, 2, 3, 3), _r(3), _r(2), _r(3), {"stride": 1, "pad": 1}, {"mode": "train"}),
     "gamma must have shape (3,), one per output of w, got shape (2,)"),
    ("affine_batchnorm_relu_forward", lambda: (_r(2, 4), _r(4, 3), _r(3), _r(3), _r(3), "train"),
     "bn_param must be a dict, got str"),
]


@pytest.mark.parametrize("name,make_args,expected", SAME_MESSAGE_CASES,
                         ids=[f"{case[0]}-{index}" for index, case in enumerate(SAME_MESSAGE_CASES)])
def test_both_sides_say_the_same_thing(name, make_args, expected):
    messages = {}
    for side in SIDE_MODULES:
        with pytest.raises(ValueError) as error:
            layer(side, name)(*make_args())
        messages[side] = str(error.value)
    assert messages["autocnn"] == messages["reference"]
    assert expected in messages["reference"], messages["reference"]


@pytest.mark.parametrize("forward,backward", [("conv_forward_fast", "conv_backward_fast"),
                                              ("max_pool_forward_fast", "max_pool_backward_fast"),
                                              ("dropout_forward", "dropout_backward"),
                                              ("layernorm_forward", "layernorm_backward"),
                                              ("spatial_groupnorm_forward", "spatial_groupnorm_backward")])
def test_backward_refuses_a_wrong_dout_in_the_same_words(forward, backward):
    args = {"conv_forward_fast": (_r(2, 3, 6, 6), _r(4, 3, 3, 3), _r(4), {"stride": 1, "pad": 1}),
            "max_pool_forward_fast": (_r(2, 3, 6, 6), {"pool_height": 2, "pool_width": 2, "stride": 2}),
            "dropout_forward": (_r(2, 3), {"mode": "test", "p": 0.5}),
            "layernorm_forward": (_r(2, 3), _r(3), _r(3), {}),
            "spatial_groupnorm_forward": (_r(2, 4, 3, 3), _r(1, 4, 1, 1), _r(1, 4, 1, 1), 2, {})}[forward]
    messages = {}
    for side in SIDE_MODULES:
        out, cache = layer(side, forward)(*copy.deepcopy(args))
        with pytest.raises(ValueError) as error:
            layer(side, backward)(np.ones(out.shape[:-1] + (out.shape[-1] + 1,)), cache)
        messages[side] = str(error.value)
    assert messages["autocnn"] == messages["reference"]
    assert messages["reference"].startswith("dout must have the forward output's shape")


@pytest.mark.parametrize("kind", ["three-layer", "fc"])
def test_models_say_the_same_thing(kind):
    if kind == "three-layer":
        kwargs, X = dict(input_dim=(3, 8, 8), num_filters=2, hidden_dim=4, num_classes=3), _r(2, 3, 8, 6)
        expected = "X must have shape (N, 3, 8, 8), got shape (2, 3, 8, 6)"
    else:
        kwargs, X = dict(hidden_dims=[4], input_dim=6, num_classes=3), _r(2, 5)
        expected = "X must have shape (N, 6), got shape (2, 5)"
    index = 0 if kind == "three-layer" else 1
    messages = {}
    for side, classes in MODELS.items():
        with pytest.raises(ValueError) as error:
            classes[index](**kwargs).loss(X, np.array([0, 1]))
        messages[side] = str(error.value)
    assert messages["autocnn"] == messages["reference"] == expected


def test_reference_backward_refuses_a_cache_from_another_layer():
    x, w, b, conv_param = _r(2, 3, 6, 6), _r(4, 3, 3, 3), _r(4), {"stride": 1, "pad": 1}
    out, naive_cache = reference.conv_layers.conv_forward_naive(x, w, b, conv_param)
    with pytest.raises(ValueError, match=r"cache must be the cache returned by conv_forward_fast \(a tuple of 5\)"):
        reference.fast_layers.conv_backward_fast(np.ones_like(out), naive_cache)
    _, derived_cache = autocnn.core.layers.affine_forward(_r(2, 3), _r(3, 4), _r(4))
    with pytest.raises(ValueError, match="cache must be the cache returned by affine_forward"):
        reference.layers.affine_backward(np.ones((2, 4)), derived_cache)
