"""The notebook API's input contract: one check per kind of argument, numpy only.

Both sides enforce the same contract with the same messages: the hand-written layers here
and autocnn's derived layers and models (autocnn imports this module; nothing here imports
autocnn, so the oracle stays independent of what it checks). Every check raises
``ValueError`` naming the argument, what was expected and what was given.
"""

from __future__ import annotations

import numbers

import numpy as np


def _shape_error(name: str, expected: str, array) -> ValueError:
    return ValueError(f"{name} must have shape {expected}, got shape {np.shape(array)}")


def check_float_array(name: str, array, ndim: int | None = None, expected: str = "") -> None:
    """array is a non-empty floating-point ndarray (of the given ndim)."""
    if not isinstance(array, np.ndarray):
        raise ValueError(f"{name} must be a numpy array, got {type(array).__name__}")
    if not np.issubdtype(array.dtype, np.floating):
        raise ValueError(f"{name} must be a floating-point array, got dtype {array.dtype}")
    if ndim is not None and array.ndim != ndim:
        raise _shape_error(name, expected or f"with {ndim} axes", array)
    if array.size == 0:
        raise ValueError(f"{name} must not be empty, got shape {array.shape}")


def check_vector(name: str, array, length: int, meaning: str) -> None:
    """array has shape (length,): one entry per `meaning`."""
    check_float_array(name, array)
    if array.shape != (length,):
        raise ValueError(f"{name} must have shape ({length},), one per {meaning}, got shape {array.shape}")


def check_int(name: str, value, minimum: int) -> None:
    """value is an integer >= minimum (bools and floats are refused)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")


def check_param_dict(name: str, param, required: tuple[str, ...]) -> None:
    if not isinstance(param, dict):
        raise ValueError(f"{name} must be a dict, got {type(param).__name__}")
    missing = [key for key in required if key not in param]
    if missing:
        raise ValueError(f"{name} is missing {', '.join(map(repr, missing))}")


def check_mode(name: str, param: dict) -> None:
    if param.get("mode") not in ("train", "test"):
        raise ValueError(f"{name}['mode'] must be 'train' or 'test', got {param.get('mode')!r}")


def window_output_size(axis: str, size: int, window: int, stride: int, pad: int, what: str) -> int:
    """
    The number of window positions along one axis, which must be a whole number.

    Returns 1 + (size + 2 * pad - window) // stride after checking the window fits and
    the windows cover the (padded) input exactly.
    """
    span = size + 2 * pad - window
    if span < 0:
        raise ValueError(f"{what}: window of {window} does not fit {axis} = {size} with pad {pad}")
    if span % stride:
        raise ValueError(
            f"{what}: ({axis} + 2 * pad - window) = {span} is not divisible by stride {stride}; "
            f"the output size would not be an integer"
        )
    return 1 + span // stride


def check_affine(x, w, b) -> None:
    """x (N, d_1, ..., d_k), w (D, M) with D = d_1 * ... * d_k, b (M,)."""
    check_float_array("x", x)
    if x.ndim < 2:
        raise _shape_error("x", "(N, d_1, ..., d_k)", x)
    check_float_array("w", w, 2, "(D, M)")
    features = int(np.prod(x.shape[1:]))
    if w.shape[0] != features:
        raise ValueError(f"w must have {features} rows (the size of one example of x {x.shape}), got shape {w.shape}")
    check_vector("b", b, w.shape[1], "output of w")


def check_conv(x, w, b, conv_param) -> tuple[int, int]:
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
    stride, pad = conv_param["stride"], conv_param["pad"]
    return (
        window_output_size("H", x.shape[2], w.shape[2], stride, pad, "conv"),
        window_output_size("W", x.shape[3], w.shape[3], stride, pad, "conv"),
    )


def check_pool(x, pool_param) -> tuple[int, int]:
    """x (N, C, H, W), pool_param with pool_height, pool_width, stride >= 1.

    Returns the output size (H', W').
    """
    check_float_array("x", x, 4, "(N, C, H, W)")
    check_param_dict("pool_param", pool_param, ("pool_height", "pool_width", "stride"))
    for key in ("pool_height", "pool_width", "stride"):
        check_int(f"pool_param[{key!r}]", pool_param[key], 1)
    stride = pool_param["stride"]
    return (
        window_output_size("H", x.shape[2], pool_param["pool_height"], stride, 0, "max pool"),
        window_output_size("W", x.shape[3], pool_param["pool_width"], stride, 0, "max pool"),
    )


def check_batchnorm(x, gamma, beta, bn_param, spatial: bool = False) -> None:
    """x (N, D) or, spatial, (N, C, H, W); gamma, beta one per feature / channel."""
    if spatial:
        check_float_array("x", x, 4, "(N, C, H, W)")
    else:
        check_float_array("x", x, 2, "(N, D)")
    features = x.shape[1]
    meaning = "channel of x" if spatial else "feature of x"
    check_vector("gamma", gamma, features, meaning)
    check_vector("beta", beta, features, meaning)
    check_param_dict("bn_param", bn_param, ("mode",))
    check_mode("bn_param", bn_param)
    eps, momentum = bn_param.get("eps", 1e-5), bn_param.get("momentum", 0.9)
    if not (isinstance(eps, numbers.Real) and eps > 0):
        raise ValueError(f"bn_param['eps'] must be a positive number, got {eps!r}")
    if not (isinstance(momentum, numbers.Real) and 0 <= momentum <= 1):
        raise ValueError(f"bn_param['momentum'] must be in [0, 1], got {momentum!r}")
    for key in ("running_mean", "running_var"):
        if key in bn_param and np.shape(bn_param[key]) != (features,):
            raise ValueError(f"bn_param[{key!r}] must have shape ({features},), got {np.shape(bn_param[key])}")


def check_dropout(x, dropout_param) -> None:
    """x any non-empty float array; dropout_param with mode and keep probability p in (0, 1]."""
    check_float_array("x", x)
    check_param_dict("dropout_param", dropout_param, ("p", "mode"))
    check_mode("dropout_param", dropout_param)
    p = dropout_param["p"]
    if isinstance(p, bool) or not isinstance(p, numbers.Real) or not 0 < p <= 1:
        raise ValueError(f"dropout_param['p'] (probability of keeping a unit) must be in (0, 1], got {p!r}")


def check_labels(y, num_examples: int, num_classes: int) -> None:
    """y (N,) integer labels with 0 <= y[i] < num_classes (an array or a list)."""
    y = np.asarray(y)
    if not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"y must hold integer class labels, got dtype {y.dtype}")
    if y.shape != (num_examples,):
        raise ValueError(f"y must have shape ({num_examples},), one label per example, got shape {y.shape}")
    if y.size and (y.min() < 0 or y.max() >= num_classes):
        raise ValueError(f"labels must be in [0, {num_classes}), got values from {y.min()} to {y.max()}")


def check_scores_and_labels(x, y) -> None:
    """x (N, C) scores, y (N,) integer labels in [0, C)."""
    check_float_array("x", x, 2, "(N, C)")
    check_labels(y, x.shape[0], x.shape[1])


def check_model_input(X, input_shape: tuple[int, ...], y=None, num_classes: int | None = None) -> None:
    """X (N, *input_shape) (flattened size for fully connected inputs); y as check_labels."""
    if not isinstance(X, np.ndarray) or not np.issubdtype(X.dtype, np.number):
        raise ValueError(f"X must be a numeric numpy array, got {type(X).__name__}")
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
