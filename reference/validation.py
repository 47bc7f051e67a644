"""The notebook API's input contract: one check per kind of argument, numpy only.

Both sides enforce the same contract with the same messages: the hand-written layers here
and autocnn's derived layers and models (autocnn imports this module; nothing here imports
autocnn, so the oracle stays independent of what it checks). Every check raises
``ValueError`` naming the argument, what was expected and what was given.

Every check is O(1) in the size of the data (shapes, dtypes and dict entries only), except
the label range, which costs one min and one max over the labels.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np

# ---------------------------------------------------------------------------
# Building blocks
# ---------------------------------------------------------------------------


def _shape_error(name: str, expected: str, array: Any) -> ValueError:
    return ValueError(f"{name} must have shape {expected}, got shape {np.shape(array)}")


def _describe(value: Any) -> str:
    """A short description of a value for error messages (never its full contents)."""
    if isinstance(value, np.ndarray):
        return f"an array of shape {value.shape} and dtype {value.dtype}"
    if isinstance(value, (tuple, list)):
        return f"a {type(value).__name__} of length {len(value)}"
    if isinstance(value, dict):
        return f"a dict with keys {sorted(map(str, value))}"
    if value is None or isinstance(value, (numbers.Number, str)):
        return f"{type(value).__name__} {value!r}"
    return type(value).__name__


def check_float_array(name: str, array: Any, ndim: int | None = None, expected: str = "") -> None:
    """array is a non-empty floating-point ndarray (of the given ndim)."""
    if not isinstance(array, np.ndarray):
        raise ValueError(f"{name} must be a numpy array, got {type(array).__name__}")
    if not np.issubdtype(array.dtype, np.floating):
        raise ValueError(f"{name} must be a floating-point array, got dtype {array.dtype}")
    if ndim is not None and array.ndim != ndim:
        raise _shape_error(name, expected or f"with {ndim} axes", array)
    if array.size == 0:
        raise ValueError(f"{name} must not be empty, got shape {array.shape}")


def check_vector(name: str, array: Any, length: int, meaning: str) -> None:
    """array has shape (length,): one entry per `meaning`."""
    check_float_array(name, array)
    if array.shape != (length,):
        raise ValueError(f"{name} must have shape ({length},), one per {meaning}, got shape {array.shape}")


def check_int(name: str, value: Any, minimum: int, maximum: int | None = None) -> None:
    """value is an integer in [minimum, maximum] (bools and floats are refused)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be <= {maximum}, got {value}")


def _is_real(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, numbers.Real)


def check_positive_number(name: str, value: Any) -> None:
    """value is a finite real number > 0."""
    if not (_is_real(value) and 0 < value < math.inf):
        raise ValueError(f"{name} must be a positive number, got {value!r}")


def check_nonnegative_number(name: str, value: Any) -> None:
    """value is a finite real number >= 0 (NaN is refused too)."""
    if not (_is_real(value) and 0 <= value < math.inf):
        raise ValueError(f"{name} must be a number >= 0, got {value!r}")


def check_keep_probability(name: str, value: Any) -> None:
    """value is a probability of keeping a unit: a real number in (0, 1]."""
    if not (_is_real(value) and 0 < value <= 1):
        raise ValueError(f"{name} (probability of keeping a unit) must be in (0, 1], got {value!r}")


def check_param_dict(name: str, param: Any, required: tuple[str, ...]) -> None:
    if not isinstance(param, dict):
        raise ValueError(f"{name} must be a dict, got {type(param).__name__}")
    missing = [key for key in required if key not in param]
    if missing:
        raise ValueError(f"{name} is missing {', '.join(map(repr, missing))}")


def check_mode(name: str, param: dict) -> None:
    if param.get("mode") not in ("train", "test"):
        raise ValueError(f"{name}['mode'] must be 'train' or 'test', got {param.get('mode')!r}")


# ---------------------------------------------------------------------------
# Layers
# ---------------------------------------------------------------------------


def check_affine(x: Any, w: Any, b: Any) -> None:
    """x (N, d_1, ..., d_k), w (D, M) with D = d_1 * ... * d_k, b (M,)."""
    check_float_array("x", x)
    if x.ndim < 2:
        raise _shape_error("x", "(N, d_1, ..., d_k)", x)
    check_float_array("w", w, 2, "(D, M)")
    features = int(np.prod(x.shape[1:]))
    if w.shape[0] != features:
        raise ValueError(f"w must have {features} rows (the size of one example of x {x.shape}), got shape {w.shape}")
    check_vector("b", b, w.shape[1], "output of w")


# (word, letter) of the two spatial axes of (N, C, H, W) arrays.
_SPATIAL_AXES = (("height", "H"), ("width", "W"))


def _conv_output_size(x: np.ndarray, w: np.ndarray, stride: int, pad: int) -> tuple[int, int]:
    """(H', W') = 1 + (H + 2 * pad - HH) / stride, ...; each must be a whole number >= 1."""
    sizes = []
    for axis, (word, letter) in enumerate(_SPATIAL_AXES, start=2):
        size, window = x.shape[axis], w.shape[axis]
        span = size + 2 * pad - window
        if span < 0:
            raise ValueError(
                f"w's filter {word} {letter}{letter} = {window} does not fit x's {word} {letter} = {size} "
                f"with conv_param['pad'] = {pad} (x {x.shape}, w {w.shape})"
            )
        if span % stride:
            raise ValueError(
                f"conv_param['stride'] = {stride} does not divide {letter} + 2 * pad - {letter}{letter} = {span} "
                f"(x {x.shape}, w {w.shape}, pad {pad}): the output {word} would not be an integer"
            )
        sizes.append(1 + span // stride)
    return sizes[0], sizes[1]


def check_conv(x: Any, w: Any, b: Any, conv_param: Any) -> tuple[int, int]:
    """x (N, C, H, W), w (F, C, HH, WW), b (F,), conv_param with stride >= 1 and pad >= 0.

    Returns the output size (H', W').
    """
    check_float_array("x", x, 4, "(N, C, H, W)")
    check_float_array("w", w, 4, "(F, C, HH, WW)")
    if w.shape[1] != x.shape[1]:
        raise ValueError(f"channel mismatch: x has {x.shape[1]} channels but w expects {w.shape[1]} (w {w.shape})")
    check_vector("b", b, w.shape[0], "filter of w")
    check_param_dict("conv_param", conv_param, ("stride", "pad"))
    check_int("conv_param['stride']", conv_param["stride"], 1)
    check_int("conv_param['pad']", conv_param["pad"], 0)
    return _conv_output_size(x, w, int(conv_param["stride"]), int(conv_param["pad"]))


def _pool_output_size(x: np.ndarray, pool_height: int, pool_width: int, stride: int) -> tuple[int, int]:
    """
    (H', W') = 1 + (H - pool_height) / stride, ...; each must be a whole number >= 1.

    The messages say "the pooled input", not x: in a conv - relu - pool sandwich it is
    the conv's output.
    """
    sizes = []
    for axis, ((word, letter), key, window) in enumerate(
        zip(_SPATIAL_AXES, ("pool_height", "pool_width"), (pool_height, pool_width)), start=2
    ):
        size = x.shape[axis]
        span = size - window
        if span < 0:
            raise ValueError(f"pool_param[{key!r}] = {window} does not fit the pooled input's {word} {letter} = {size}")
        if span % stride:
            raise ValueError(
                f"pool_param['stride'] = {stride} does not divide {letter} - {key} = {span} (the pooled "
                f"input's {word} is {size}): the output {word} would not be an integer"
            )
        sizes.append(1 + span // stride)
    return sizes[0], sizes[1]


def check_pool(x: Any, pool_param: Any) -> tuple[int, int]:
    """x (N, C, H, W), pool_param with pool_height, pool_width, stride >= 1.

    Returns the output size (H', W').
    """
    check_float_array("x", x, 4, "(N, C, H, W)")
    check_param_dict("pool_param", pool_param, ("pool_height", "pool_width", "stride"))
    for key in ("pool_height", "pool_width", "stride"):
        check_int(f"pool_param[{key!r}]", pool_param[key], 1)
    return _pool_output_size(
        x, int(pool_param["pool_height"]), int(pool_param["pool_width"]), int(pool_param["stride"])
    )


def check_conv_pool(x: Any, w: Any, b: Any, conv_param: Any, pool_param: Any) -> tuple[int, int]:
    """A conv followed by a max pool: the conv's output must itself be a valid pool input.

    Returns the pooled output size (H'', W'').
    """
    out_h, out_w = check_conv(x, w, b, conv_param)
    # A stand-in of the conv output's spatial size: only its shape is looked at.
    return check_pool(np.empty((1, 1, out_h, out_w), dtype=x.dtype), pool_param)


def check_bn_param(bn_param: Any, features: int, meaning: str = "feature of x") -> None:
    """bn_param: mode 'train' / 'test', eps > 0, momentum in [0, 1], running stats (features,)."""
    check_param_dict("bn_param", bn_param, ("mode",))
    check_mode("bn_param", bn_param)
    eps, momentum = bn_param.get("eps", 1e-5), bn_param.get("momentum", 0.9)
    if not (_is_real(eps) and 0 < eps < math.inf):
        raise ValueError(f"bn_param['eps'] must be a positive number, got {eps!r}")
    if not (_is_real(momentum) and 0 <= momentum <= 1):
        raise ValueError(f"bn_param['momentum'] must be in [0, 1], got {momentum!r}")
    for key in ("running_mean", "running_var"):
        if key in bn_param:
            check_vector(f"bn_param[{key!r}]", bn_param[key], features, meaning)


def check_batchnorm(x: Any, gamma: Any, beta: Any, bn_param: Any, spatial: bool = False) -> None:
    """x (N, D) or, spatial, (N, C, H, W); gamma, beta one per feature / channel."""
    if spatial:
        check_float_array("x", x, 4, "(N, C, H, W)")
    else:
        check_float_array("x", x, 2, "(N, D)")
    features = x.shape[1]
    meaning = "channel of x" if spatial else "feature of x"
    check_vector("gamma", gamma, features, meaning)
    check_vector("beta", beta, features, meaning)
    check_bn_param(bn_param, features, meaning)


def check_norm_param(name: str, param: Any) -> None:
    """ln_param / gn_param: a dict with an optional 'eps' > 0 (other keys, e.g. 'mode', are ignored)."""
    check_param_dict(name, param, ())
    if "eps" in param:
        check_positive_number(f"{name}['eps']", param["eps"])


def check_layernorm(x: Any, gamma: Any, beta: Any, ln_param: Any) -> None:
    """x (N, D); gamma, beta (D,), one per feature; ln_param with optional eps."""
    check_float_array("x", x, 2, "(N, D)")
    check_vector("gamma", gamma, x.shape[1], "feature of x")
    check_vector("beta", beta, x.shape[1], "feature of x")
    check_norm_param("ln_param", ln_param)


def check_channel_param(name: str, array: Any, channels: int) -> None:
    """array holds one entry per channel, shaped (1, C, 1, 1) as the notebook makes it, or (C,)."""
    check_float_array(name, array)
    if array.shape not in ((1, channels, 1, 1), (channels,)):
        raise ValueError(
            f"{name} must have shape (1, {channels}, 1, 1) or ({channels},), one per channel of x, "
            f"got shape {array.shape}"
        )


def check_groupnorm(x: Any, gamma: Any, beta: Any, G: Any, gn_param: Any) -> None:
    """x (N, C, H, W); gamma, beta one per channel; G >= 1 dividing C; gn_param with optional eps."""
    check_float_array("x", x, 4, "(N, C, H, W)")
    channels = x.shape[1]
    check_channel_param("gamma", gamma, channels)
    check_channel_param("beta", beta, channels)
    check_int("G", G, 1)
    if channels % G:
        raise ValueError(f"G = {G} groups must divide the {channels} channels of x (x {x.shape})")
    check_norm_param("gn_param", gn_param)


def check_sandwich_batchnorm(gamma: Any, beta: Any, bn_param: Any, width: int) -> None:
    """The batchnorm of an affine / conv sandwich: one gamma, beta and statistic per output of w."""
    check_vector("gamma", gamma, width, "output of w")
    check_vector("beta", beta, width, "output of w")
    check_bn_param(bn_param, width, "output of w")


def check_dropout(x: Any, dropout_param: Any) -> None:
    """x any non-empty float array; dropout_param with mode, keep probability p in (0, 1], seed."""
    check_float_array("x", x)
    check_param_dict("dropout_param", dropout_param, ("p", "mode"))
    check_mode("dropout_param", dropout_param)
    check_keep_probability("dropout_param['p']", dropout_param["p"])
    seed = dropout_param.get("seed")
    if seed is not None:
        # The range np.random.RandomState accepts.
        check_int("dropout_param['seed']", seed, 0, 2**32 - 1)


def check_labels(y: Any, num_examples: int, num_classes: int | None, name: str = "y") -> None:
    """y (N,) integer labels with 0 <= y[i] < num_classes (only >= 0 when num_classes is None)."""
    y = np.asarray(y)
    if not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"{name} must hold integer class labels, got dtype {y.dtype}")
    if y.shape != (num_examples,):
        raise ValueError(f"{name} must have shape ({num_examples},), one label per example, got shape {y.shape}")
    if y.size == 0:
        return
    low, high = y.min(), y.max()
    if low < 0 or (num_classes is not None and high >= num_classes):
        expected = f"[0, {num_classes})" if num_classes is not None else ">= 0"
        raise ValueError(f"{name}: labels must be in {expected}, got values from {low} to {high}")


def check_scores_and_labels(x: Any, y: Any) -> None:
    """x (N, C) scores, y (N,) integer labels in [0, C)."""
    check_float_array("x", x, 2, "(N, C)")
    check_labels(y, x.shape[0], x.shape[1])


def check_dout(dout: Any, expected_shape: tuple[int, ...]) -> None:
    """dout, the upstream derivative of a backward pass, has the forward output's shape."""
    if not isinstance(dout, np.ndarray):
        raise ValueError(f"dout must be a numpy array, got {type(dout).__name__}")
    if dout.shape != tuple(expected_shape):
        raise ValueError(f"dout must have the forward output's shape {tuple(expected_shape)}, got shape {dout.shape}")


def check_cache(cache: Any, forward: str, length: int | None = None, key: str | None = None) -> None:
    """
    cache is what `forward` returned: a tuple of `length` items, a dict holding `key`, or
    (neither given) an array. Catches caches of another layer or implementation early.
    """
    if length is not None:
        ok, expected = isinstance(cache, tuple) and len(cache) == length, f"a tuple of {length}"
    elif key is not None:
        ok, expected = isinstance(cache, dict) and key in cache, f"a dict with {key!r}"
    else:
        ok, expected = isinstance(cache, np.ndarray), "an array"
    if not ok:
        raise ValueError(f"cache must be the cache returned by {forward} ({expected}), got {_describe(cache)}")


# ---------------------------------------------------------------------------
# Models
# ---------------------------------------------------------------------------


def check_model_input(X: Any, input_shape: tuple[int, ...], y: Any = None, num_classes: int | None = None) -> None:
    """X (N, *input_shape) (flattened size for fully connected inputs); y as check_labels."""
    real = isinstance(X, np.ndarray) and (np.issubdtype(X.dtype, np.integer) or np.issubdtype(X.dtype, np.floating))
    if not real:
        raise ValueError(f"X must be a numpy array of real numbers, got {_describe(X)}")
    if X.ndim < 2 or X.shape[0] == 0:
        raise _shape_error("X", f"(N, {', '.join(map(str, input_shape))}) with N >= 1", X)
    if len(input_shape) == 1:
        matches = int(np.prod(X.shape[1:])) == input_shape[0]
    else:
        matches = tuple(X.shape[1:]) == tuple(input_shape)
    if not matches:
        raise _shape_error("X", f"(N, {', '.join(map(str, input_shape))})", X)
    if y is not None:
        check_labels(y, X.shape[0], num_classes)


def check_float_dtype(name: str, dtype: Any) -> None:
    """dtype names a numpy floating-point type (np.float32, 'float64', ...)."""
    try:
        resolved = np.dtype(dtype)
    except (TypeError, ValueError):
        resolved = None
    if resolved is None or not np.issubdtype(resolved, np.floating):
        raise ValueError(f"{name} must be a numpy floating-point type such as np.float32, got {dtype!r}")


def check_sizes(name: str, sizes: Any) -> None:
    """sizes is a list / tuple / 1-D array of integers >= 1 (it may be empty)."""
    if not (isinstance(sizes, (list, tuple)) or isinstance(sizes, np.ndarray) and sizes.ndim == 1):
        raise ValueError(f"{name} must be a list of positive integers, got {_describe(sizes)}")
    for index, size in enumerate(sizes):
        check_int(f"{name}[{index}]", size, 1)


def check_weight_scale(weight_scale: Any, he_allowed: bool = False) -> None:
    """A positive standard deviation, or 'he' where the model offers He initialisation."""
    if he_allowed and isinstance(weight_scale, str) and weight_scale == "he":
        return
    if not (_is_real(weight_scale) and 0 < weight_scale < math.inf):
        expected = "a positive number or 'he'" if he_allowed else "a positive number"
        raise ValueError(f"weight_scale must be {expected}, got {weight_scale!r}")


def check_image_dim(input_dim: Any, num_pools: int) -> None:
    """input_dim is (C, H, W), positive, with H and W halved exactly by num_pools 2x2 / 2 max pools."""
    if not isinstance(input_dim, (tuple, list)) or len(input_dim) != 3:
        raise ValueError(f"input_dim must be (C, H, W), three positive integers, got {input_dim!r}")
    for letter, size in zip("CHW", input_dim):
        check_int(f"input_dim {letter}", size, 1)
    factor = 2**num_pools
    _, height, width = input_dim
    if height % factor or width % factor:
        pools = "the 2x2 max pool" if num_pools == 1 else f"each of the {num_pools} 2x2 pooling blocks"
        raise ValueError(
            f"input_dim H and W must be divisible by {factor}: {pools} (stride 2) halves them, "
            f"got {tuple(input_dim)}"
        )


def check_three_layer_convnet(
    input_dim: Any,
    num_filters: Any,
    filter_size: Any,
    hidden_dim: Any,
    num_classes: Any,
    weight_scale: Any,
    reg: Any,
    dtype: Any,
    he_allowed: bool = False,
) -> None:
    """The constructor arguments of the notebook's ThreeLayerConvNet."""
    check_image_dim(input_dim, num_pools=1)
    check_int("num_filters", num_filters, 1)
    check_int("filter_size", filter_size, 1)
    if filter_size % 2 == 0:
        # pad = (filter_size - 1) // 2 keeps H and W only for odd filters.
        raise ValueError(f"filter_size must be odd so that padding keeps H and W, got {filter_size}")
    check_int("hidden_dim", hidden_dim, 1)
    check_int("num_classes", num_classes, 1)
    check_weight_scale(weight_scale, he_allowed)
    check_nonnegative_number("reg", reg)
    check_float_dtype("dtype", dtype)


def check_fully_connected_net(
    hidden_dims: Any,
    input_dim: Any,
    num_classes: Any,
    dropout: Any,
    reg: Any,
    weight_scale: Any,
    dtype: Any,
    he_allowed: bool = False,
) -> None:
    """The constructor arguments of the notebook's FullyConnectedNet."""
    check_sizes("hidden_dims", hidden_dims)
    check_int("input_dim", input_dim, 1)
    check_int("num_classes", num_classes, 1)
    check_keep_probability("dropout", dropout)
    check_nonnegative_number("reg", reg)
    check_weight_scale(weight_scale, he_allowed)
    check_float_dtype("dtype", dtype)

