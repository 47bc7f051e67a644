"""``autocnn check``: cross-check anyone's hand-written notebook layers against autograd.

A student's ``nndl/layers.py``, ``conv_layers.py``, ``layer_utils.py`` or ``cnn.py`` (the
notebook API) is loaded, every known function and model class found in it is run on
random float64 inputs over several shapes, and each forward output and each gradient is
compared with autocnn's forward and autograd's *exact* derivative of it (from
``autocnn.core.layers`` / ``autocnn.core.layer_utils`` / ``autocnn.core.models``). No finite
differences are involved, so a tolerance of 1e-6 is meaningful: two correct float64
implementations agree to about 1e-10, while the smallest real bugs (eps outside the
square root, an unbiased variance) are already off by more than 1e-5.

User code runs in a forked worker process per function group, so an exception, an
infinite loop (the worker is killed after a per-call timeout), ``sys.exit``, a wrong
return type or an in-place change of an input ends up on its row of the table and never
stops the checker.

Library API: ``check_target(target) -> list[Row]``; the CLI handler prints a table
(or ``--json``) and exits 1 when any row fails.
"""

from __future__ import annotations

import contextlib
import copy
import importlib
import importlib.util
import inspect
import io
import itertools
import json
import math
import multiprocessing
import os
import pkgutil
import sys
import traceback
import types
import warnings
import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

from autocnn.tools.gradcheck import rel_error

DEFAULT_TARGET = "reference"
# Inputs are float64. Measured on the reference, correct implementations agree to
# <= 3e-12, and to <= 4e-8 only on gradients that are exactly zero in theory (a bias
# before batchnorm), where rel_error compares rounding noise with its 1e-8 floor.
# 1e-6 keeps a wide margin over that, yet catches bugs as small as eps added outside
# the square root in batchnorm (~1e-5), which the notebook's 1e-5 would let through.
LAYER_TOLERANCE = 1e-6
MODEL_TOLERANCE = 1e-6
DEFAULT_TIMEOUT = 10.0
BETWEEN_CALLS_TIMEOUT = 120.0  # autocnn's side of a group, however loaded the machine

PASS, FAIL, SKIP = "PASS", "FAIL", "SKIP"


# ----------------------------------------------------------------------------- results

@dataclass
class Row:
    """One line of the table: one output of one function, over all its cases."""

    function: str
    output: str
    error: float | None
    tolerance: float
    status: str
    diagnosis: str = ""
    worst_case: str = ""
    module: str = ""

    @property
    def failed(self) -> bool:
        return self.status == FAIL


@dataclass
class Outcome:
    """What one case said about one output of one function (sent from the worker)."""

    function: str
    output: str
    case: str
    tags: tuple[str, ...] = ()
    error: float | None = None
    problem: str = ""  # a hard failure: exception, type, shape, mutation, timeout
    hints: tuple[str, ...] = ()  # diagnoses that fit this case's numbers
    skipped: str = ""


@dataclass
class Case:
    """
    One draw of inputs for a function group.

    - label: Human description ("N=2 C=3 7x7, F=4 3x3, stride 1, pad 1")
    - args: Positional arguments of the forward (arrays and param dicts)
    - tags: Properties a failure may hinge on ("pad > 0", "overlapping windows", ...)
    - context: Numbers that name constant factors ({'N': 2, 'p': 0.7})
    - regions: output name -> {description: boolean mask of that output's shape}; a
      failure confined to a mask is reported as "wrong only <description>"
    - offsets: output name -> [(array, description_by_k)]: user - expected == k * array
      is reported with description_by_k(k) (e.g. the L2 term of a model gradient)
    """

    label: str
    args: tuple
    tags: tuple[str, ...] = ()
    context: dict = field(default_factory=dict)
    regions: dict = field(default_factory=dict)
    offsets: dict = field(default_factory=dict)


# ------------------------------------------------------------------ comparing numbers

def _mismatch_mask(user: np.ndarray, expected: np.ndarray, tol: float) -> np.ndarray:
    """Elementwise form of the rel_error criterion: where the two arrays disagree."""
    scale = np.maximum(1e-8, np.abs(user) + np.abs(expected))
    return ~(np.abs(user - expected) / scale <= tol)


def _named_factors(context: dict) -> list[tuple[float, str]]:
    """Constant factors a student plausibly gets wrong, with what each one suggests."""
    named = [(-1.0, "sign flipped")]
    n = context.get("N")
    if n and n > 1:
        named += [(float(n), "off by a constant factor: user = N x expected (a missing 1/N?)"),
                  (1.0 / n, "off by a constant factor: user = expected / N (1/N applied twice?)")]
    p = context.get("p")
    if p and p != 1:
        named += [(p * p, "off by a constant factor: user = p^2 x expected (multiplied by p, not divided?)"),
                  (1.0 / p, "off by a constant factor: user = expected / p (divided by p twice?)"),
                  (p, "off by a constant factor: user = p x expected (missing the 1/p?)")]
    named += [(2.0, "off by a constant factor: user = 2 x expected"),
              (0.5, "off by a constant factor: user = expected / 2 (a missing factor 2?)")]
    return named


def _factor_hints(user: np.ndarray, expected: np.ndarray, tol: float, context: dict) -> list[str]:
    """Hints when user == r * expected for one constant r (fitted by least squares)."""
    energy = float(np.vdot(expected, expected))
    if energy == 0.0:
        return []
    ratio = float(np.vdot(user, expected)) / energy
    if rel_error(user, ratio * expected) > tol:
        return []
    if abs(ratio) < 1e-12:
        return ["all zeros"]
    hints = [text for value, text in _named_factors(context) if abs(ratio - value) <= 1e-6 * abs(value)]
    if not hints and user.size > 1:  # any two scalars are a "factor" apart: say nothing
        hints.append(f"off by a constant factor: user = {ratio:.4g} x expected")
    return hints


def _permutation_hint(user: np.ndarray, expected: np.ndarray, tol: float) -> str:
    """'transposed' / 'axes permuted' when reordering user's axes gives expected, else ''."""
    if user.ndim != expected.ndim or user.ndim < 2 or user.ndim > 5:
        return ""
    for perm in itertools.permutations(range(user.ndim)):
        if perm == tuple(range(user.ndim)):
            continue
        moved = np.transpose(user, perm)
        if moved.shape == expected.shape and rel_error(moved, expected) <= tol:
            return "transposed" if user.ndim == 2 else f"axes permuted (np.transpose(user, {perm}) matches)"
    return ""


def _offset_hints(user, expected, offsets: list, tol: float) -> list[str]:
    """Hints when user - expected == k * array for one of the case's known offsets."""
    hints = []
    difference = np.asarray(user, dtype=np.float64) - expected
    for array, describe in offsets:
        array = np.asarray(array, dtype=np.float64)
        energy = float(np.vdot(array, array))
        if energy == 0.0:
            continue
        k = float(np.vdot(difference, array)) / energy
        if abs(k) > 1e-9 and rel_error(user, expected + k * array) <= tol:
            hints.append(describe(k))
    return hints


def compare(user: Any, expected: Any, tol: float, case: Case, output: str) -> tuple[float | None, str, tuple[str, ...]]:
    """
    Compare one user output with autocnn's.

    Inputs:
    - user: What the user's code returned for this output
    - expected: autocnn's value (array or scalar)
    - tol: Largest acceptable rel_error
    - case: The case (for factor names, regions and offsets)
    - output: Name of the output ('dx', 'loss', 'grad W1', ...)

    Returns a tuple of:
    - error: Worst relative error, or None when the two cannot be compared
    - problem: Text of a hard failure (type, shape, NaN), '' otherwise
    - hints: Diagnoses that fit the numbers when error > tol
    """
    if user is None:
        return None, "returned None", ()
    if not isinstance(user, (np.ndarray, np.generic, float, int)) or isinstance(user, bool):
        return None, f"wrong type: returned {type(user).__name__}, expected a numpy array", ()
    u = np.asarray(user)
    if not np.issubdtype(u.dtype, np.number):
        return None, f"wrong type: returned an array of dtype {u.dtype}", ()
    a = np.asarray(expected, dtype=np.float64)
    if u.shape != a.shape:
        if u.ndim == 0 or a.ndim == 0:
            if u.size == a.size == 1:  # a (1,)-shaped loss is still the loss
                u, a = u.reshape(()), a.reshape(())
            else:
                return None, f"wrong shape {u.shape}, expected {a.shape}", ()
        else:
            moved = _permutation_hint(u.astype(np.float64), a, tol)
            if moved:
                return None, f"{moved}: shape {u.shape}, expected {a.shape}", ()
            if u.size == a.size and rel_error(u.reshape(a.shape), a) <= tol:
                return None, f"wrong shape {u.shape}, expected {a.shape} (values right after a reshape)", ()
            return None, f"wrong shape {u.shape}, expected {a.shape}", ()
    u = u.astype(np.float64)
    if not np.all(np.isfinite(u)):
        return math.inf, "contains NaN or inf (overflow? a missing max shift?)", ()
    error = rel_error(u, a)
    if error <= tol:
        return error, "", ()
    hints: list[str] = []
    hints += _offset_hints(u, a, case.offsets.get(output, []), tol)
    hints += _factor_hints(u, a, tol, case.context)
    if u.ndim == 2 and u.shape[0] == u.shape[1] and rel_error(u.T, a) <= tol:
        hints.append("transposed")
    if u.ndim > 0:
        mismatch = _mismatch_mask(u, a, tol)
        for description, mask in case.regions.get(output, {}).items():
            if mismatch.any() and not (mismatch & ~mask).any():
                hints.append(f"wrong only {description}")
    if np.asarray(user).dtype != np.float64:
        hints.append(f"returned {np.asarray(user).dtype} for float64 inputs")
    return error, "", tuple(hints)


def _changed(before: Any, after: Any) -> bool:
    """True when a deep copy taken before a call no longer equals the object after it."""
    if isinstance(before, np.ndarray):
        return not (isinstance(after, np.ndarray) and before.shape == after.shape
                    and np.array_equal(before, after, equal_nan=True))
    if isinstance(before, dict):
        return not isinstance(after, dict) or before.keys() - after.keys() != set() or any(
            _changed(value, after[key]) for key, value in before.items())
    if isinstance(before, (list, tuple)):
        return len(before) != len(after) or any(_changed(b, a) for b, a in zip(before, after))
    try:
        return bool(before != after)
    except Exception:
        return False


def _mutated_inputs(names: Iterable[str], snapshot: tuple, current: tuple, state_keys: tuple[str, ...]) -> list[str]:
    """Names of the inputs a call changed; entries in state_keys of dicts may change."""
    changed = []
    for name, before, after in zip(names, snapshot, current):
        if isinstance(before, dict) and state_keys:
            before = {k: v for k, v in before.items() if k not in state_keys}
            after = {k: v for k, v in after.items() if k not in state_keys} if isinstance(after, dict) else after
        if _changed(before, after):
            changed.append(name)
    return changed


def _describe_exception(error: BaseException) -> str:
    message = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return f"raised {type(error).__name__}" + (f": {message[:160]}" if message else "")


# ------------------------------------------------------------------ the cases drawn

def _rand(rng: np.random.RandomState, *shape: int) -> np.ndarray:
    return rng.randn(*shape).astype(np.float64)


def _conv_label(x: np.ndarray, w: np.ndarray, stride: int, pad: int) -> str:
    n, c, h, wd = x.shape
    return f"N={n} C={c} {h}x{wd}, F={w.shape[0]} {w.shape[2]}x{w.shape[3]}, stride {stride}, pad {pad}"


def _conv_tags(n: int, stride: int, pad: int) -> tuple[str, ...]:
    tags = ["pad > 0" if pad else "pad = 0", f"stride {stride}"]
    if n == 1:
        tags.append("N = 1")
    return tuple(tags)


def _border_mask(shape: tuple[int, ...], kh: int, kw: int) -> np.ndarray:
    """Pixels within a filter's reach of the edge: the ones windows over padding touch."""
    mask = np.zeros(shape, dtype=bool)
    band_h, band_w = max(kh - 1, 1), max(kw - 1, 1)
    mask[..., :band_h, :] = mask[..., -band_h:, :] = True
    mask[..., :, :band_w] = mask[..., :, -band_w:] = True
    return mask


def _coverage(shape: tuple[int, ...], ph: int, pw: int, stride: int) -> np.ndarray:
    """How many pool windows contain each input pixel."""
    count = np.zeros(shape[-2:], dtype=int)
    for top in range(0, shape[-2] - ph + 1, stride):
        for left in range(0, shape[-1] - pw + 1, stride):
            count[top:top + ph, left:left + pw] += 1
    return np.broadcast_to(count, shape)


def _relu_regions(x: np.ndarray, output: str = "dx") -> dict:
    return {output: {"where x < 0": x < 0, "where x > 0": x > 0}}


def affine_cases(rng: np.random.RandomState) -> list[Case]:
    cases = []
    for x_shape, m in [((2, 4, 5), 6), ((1, 7), 3), ((3, 2, 3, 2), 5)]:
        x = _rand(rng, *x_shape)
        w, b = _rand(rng, int(np.prod(x_shape[1:])), m), _rand(rng, m)
        tags = ("N = 1",) if x_shape[0] == 1 else ()
        cases.append(Case(f"x {x_shape}, w {w.shape}", (x, w, b), tags, {"N": x_shape[0]}))
    return cases


def relu_cases(rng: np.random.RandomState) -> list[Case]:
    cases = []
    for shape in [(3, 5), (2, 3, 4, 4), (1, 7)]:
        x = _rand(rng, *shape)
        cases.append(Case(f"x {shape}", (x,), ("N = 1",) if shape[0] == 1 else (), {"N": shape[0]},
                          _relu_regions(x)))
    return cases


def _bn_inputs(rng, n: int, d: int, spatial: tuple[int, ...] = ()):
    # Shifted, scaled features so that normalising actually changes them.
    x = 3.0 * _rand(rng, n, d, *spatial) + 2.0 * _rand(rng, 1, d, *([1] * len(spatial)))
    return x, 1.0 + 0.2 * _rand(rng, d), 0.3 * _rand(rng, d)


def _bn_param(rng, mode: str, d: int, with_stats: bool, momentum: float | None = None, eps: float | None = None) -> dict:
    param: dict[str, Any] = {"mode": mode}
    if with_stats:
        param["running_mean"] = _rand(rng, d)
        param["running_var"] = 0.5 + rng.rand(d)
    if momentum is not None:
        param["momentum"] = momentum
    if eps is not None:
        param["eps"] = eps
    return param


def batchnorm_cases(rng: np.random.RandomState) -> list[Case]:
    cases = []
    for n, d, mode, stats, momentum, eps in [(4, 5, "train", False, None, None), (7, 3, "train", True, 0.8, 1e-3),
                                             (5, 4, "test", True, None, None)]:
        x, gamma, beta = _bn_inputs(rng, n, d)
        param = _bn_param(rng, mode, d, stats, momentum, eps)
        extra = "".join(f", {k} {param[k]}" for k in ("momentum", "eps") if k in param)
        label = f"x ({n}, {d}), {mode} mode" + (", running stats given" if stats else "") + extra
        cases.append(Case(label, (x, gamma, beta, param), (f"{mode} mode",), {"N": n}))
    return cases


def spatial_batchnorm_cases(rng: np.random.RandomState) -> list[Case]:
    cases = []
    for shape, mode, stats in [((2, 3, 4, 5), "train", False), ((1, 2, 3, 3), "train", True),
                               ((3, 4, 2, 2), "test", True)]:
        n, c = shape[:2]
        x, gamma, beta = _bn_inputs(rng, n, c, shape[2:])
        tags = (f"{mode} mode",) + (("N = 1",) if n == 1 else ())
        label = f"x {shape}, {mode} mode" + (", running stats given" if stats else "")
        cases.append(Case(label, (x, gamma, beta, _bn_param(rng, mode, c, stats)), tags,
                          {"N": n * shape[2] * shape[3]}))
    return cases


def dropout_cases(rng: np.random.RandomState) -> list[Case]:
    cases = []
    for shape, p, mode, seed in [((4, 6), 0.7, "train", 3), ((2, 3, 4, 4), 0.4, "train", 11), ((3, 5), 0.5, "test", 7)]:
        param = {"p": p, "mode": mode, "seed": seed}
        cases.append(Case(f"x {shape}, p {p} (keep), {mode} mode, seed {seed}", (_rand(rng, *shape), param),
                          (f"{mode} mode",), {"N": shape[0], "p": p if mode == "train" else 1}))
    return cases


def conv_cases(rng: np.random.RandomState) -> list[Case]:
    cases = []
    for x_shape, w_shape, stride, pad in [((2, 3, 7, 7), (4, 3, 3, 3), 1, 1), ((1, 2, 9, 7), (3, 2, 3, 3), 2, 0),
                                          ((2, 2, 7, 5), (2, 2, 3, 3), 2, 2), ((3, 2, 6, 5), (3, 2, 3, 2), 1, 0)]:
        x, w, b = _rand(rng, *x_shape), _rand(rng, *w_shape), _rand(rng, w_shape[0])
        regions = {"dx": {"in the border next to the zero padding": _border_mask(x_shape, *w_shape[2:])}} if pad else {}
        cases.append(Case(_conv_label(x, w, stride, pad), (x, w, b, {"stride": stride, "pad": pad}),
                          _conv_tags(x_shape[0], stride, pad), {"N": x_shape[0]}, regions))
    return cases


def max_pool_cases(rng: np.random.RandomState) -> list[Case]:
    cases = []
    for shape, ph, pw, stride in [((2, 3, 8, 8), 2, 2, 2), ((1, 2, 7, 9), 3, 3, 2),
                                  ((2, 2, 6, 6), 3, 3, 3), ((3, 2, 5, 5), 2, 2, 1)]:
        x = _rand(rng, *shape)
        overlapping = stride < max(ph, pw)
        tags = ("overlapping windows" if overlapping else "non-overlapping windows",) + (("N = 1",) if shape[0] == 1 else ())
        regions = {"dx": {"where pool windows overlap": _coverage(shape, ph, pw, stride) >= 2}} if overlapping else {}
        param = {"pool_height": ph, "pool_width": pw, "stride": stride}
        cases.append(Case(f"x {shape}, pool {ph}x{pw}, stride {stride}", (x, param), tags, {"N": shape[0]}, regions))
    return cases


def loss_cases(rng: np.random.RandomState) -> list[Case]:
    cases = []
    for n, c, scale, shift in [(3, 5, 2.0, 0.0), (1, 4, 2.0, 0.0), (4, 10, 3.0, 0.0), (3, 6, 2.0, 1e5)]:
        x = scale * _rand(rng, n, c) + shift
        y = rng.randint(c, size=n)
        tags = (("N = 1",) if n == 1 else ()) + (("scores near 1e5",) if shift else ())
        label = f"x ({n}, {c})" + (", scores near 1e5" if shift else "")
        cases.append(Case(label, (x, y), tags, {"N": n}))
    return cases


def affine_relu_cases(rng: np.random.RandomState) -> list[Case]:
    cases = []
    for x_shape, m in [((3, 2, 3, 2), 5), ((1, 6), 4)]:
        x = _rand(rng, *x_shape)
        w, b = _rand(rng, int(np.prod(x_shape[1:])), m), _rand(rng, m)
        cases.append(Case(f"x {x_shape}, w {w.shape}", (x, w, b), ("N = 1",) if x_shape[0] == 1 else (),
                          {"N": x_shape[0]}))
    return cases


def affine_batchnorm_relu_cases(rng: np.random.RandomState) -> list[Case]:
    cases = []
    for n, d, m, mode in [(4, 6, 5, "train"), (3, 4, 3, "test")]:
        x, w, b = _rand(rng, n, d), _rand(rng, d, m), _rand(rng, m)
        _, gamma, beta = _bn_inputs(rng, n, m)
        param = _bn_param(rng, mode, m, with_stats=mode == "test")
        cases.append(Case(f"x ({n}, {d}), w ({d}, {m}), {mode} mode", (x, w, b, gamma, beta, param),
                          (f"{mode} mode",), {"N": n}))
    return cases


def conv_relu_cases(rng: np.random.RandomState) -> list[Case]:
    cases = []
    for x_shape, w_shape, stride, pad in [((2, 3, 6, 6), (4, 3, 3, 3), 1, 1), ((1, 2, 7, 7), (3, 2, 3, 3), 2, 0)]:
        x, w, b = _rand(rng, *x_shape), _rand(rng, *w_shape), _rand(rng, w_shape[0])
        cases.append(Case(_conv_label(x, w, stride, pad), (x, w, b, {"stride": stride, "pad": pad}),
                          _conv_tags(x_shape[0], stride, pad), {"N": x_shape[0]}))
    return cases


def conv_relu_pool_cases(rng: np.random.RandomState) -> list[Case]:
    cases = []
    for x_shape, w_shape in [((2, 3, 8, 8), (3, 3, 3, 3)), ((1, 2, 6, 6), (2, 2, 5, 5))]:
        x, w, b = _rand(rng, *x_shape), _rand(rng, *w_shape), _rand(rng, w_shape[0])
        pad = (w_shape[2] - 1) // 2
        pool = {"pool_height": 2, "pool_width": 2, "stride": 2}
        cases.append(Case(_conv_label(x, w, 1, pad) + ", pool 2x2", (x, w, b, {"stride": 1, "pad": pad}, pool),
                          _conv_tags(x_shape[0], 1, pad), {"N": x_shape[0]}))
    return cases


def conv_batchnorm_relu_cases(rng: np.random.RandomState, with_pool: bool = False) -> list[Case]:
    cases = []
    for x_shape, f, mode in [((2, 3, 6, 6), 3, "train"), ((3, 2, 4, 4), 2, "test")]:
        x, w, b = _rand(rng, *x_shape), _rand(rng, f, x_shape[1], 3, 3), _rand(rng, f)
        _, gamma, beta = _bn_inputs(rng, 1, f)
        conv_param, bn_param = {"stride": 1, "pad": 1}, _bn_param(rng, mode, f, with_stats=mode == "test")
        args = (x, w, b, gamma, beta, conv_param, bn_param)
        if with_pool:
            args += ({"pool_height": 2, "pool_width": 2, "stride": 2},)
        label = _conv_label(x, w, 1, 1) + f", {mode} mode" + (", pool 2x2" if with_pool else "")
        cases.append(Case(label, args, (f"{mode} mode",), {"N": x_shape[0]}))
    return cases


# ----------------------------------------------------------------- function groups

@dataclass(frozen=True)
class LayerSpec:
    """
    A forward function, the backward(s) checked against it, and how to draw its inputs.

    - forward: Name of the forward function ('' for losses, which return (loss, dx))
    - backwards: Names of backward functions taking (dout, cache)
    - grads: Names of what each backward returns, in order
    - arg_names: Names of the forward's positional inputs (for mutation reports)
    - source: 'layers' or 'layer_utils': where autocnn's derived versions live
    - make_cases: rng -> list of Case
    - state_keys: Entries of param dicts the forward is meant to update
    """

    forward: str
    backwards: tuple[str, ...]
    grads: tuple[str, ...]
    arg_names: tuple[str, ...]
    source: str
    make_cases: Callable[[np.random.RandomState], list[Case]]
    state_keys: tuple[str, ...] = ()
    is_loss: bool = False

    @property
    def name(self) -> str:
        return self.forward

    def functions(self) -> tuple[str, ...]:
        return (self.forward, *self.backwards)


BN_STATE = ("running_mean", "running_var")
_CONV = ("x", "w", "b", "conv_param")
_BN = ("x", "gamma", "beta", "bn_param")


def _layer(forward: str, grads: tuple[str, ...], arg_names: tuple[str, ...], make_cases, source: str = "layers",
           backwards: tuple[str, ...] | None = None, state_keys: tuple[str, ...] = ()) -> LayerSpec:
    backwards = backwards if backwards is not None else (forward.replace("forward", "backward"),)
    return LayerSpec(forward, backwards, grads, arg_names, source, make_cases, state_keys)


def _pool_with_bn(rng):
    return conv_batchnorm_relu_cases(rng, with_pool=True)


LAYER_SPECS: tuple[LayerSpec, ...] = (
    _layer("affine_forward", ("dx", "dw", "db"), ("x", "w", "b"), affine_cases),
    _layer("relu_forward", ("dx",), ("x",), relu_cases),
    _layer("batchnorm_forward", ("dx", "dgamma", "dbeta"), _BN, batchnorm_cases,
           backwards=("batchnorm_backward", "batchnorm_backward_alt"), state_keys=BN_STATE),
    _layer("dropout_forward", ("dx",), ("x", "dropout_param"), dropout_cases),
    LayerSpec("softmax_loss", (), ("dx",), ("x", "y"), "layers", loss_cases, is_loss=True),
    LayerSpec("svm_loss", (), ("dx",), ("x", "y"), "layers", loss_cases, is_loss=True),
    _layer("conv_forward_naive", ("dx", "dw", "db"), _CONV, conv_cases),
    _layer("conv_forward_fast", ("dx", "dw", "db"), _CONV, conv_cases),
    _layer("max_pool_forward_naive", ("dx",), ("x", "pool_param"), max_pool_cases),
    _layer("max_pool_forward_fast", ("dx",), ("x", "pool_param"), max_pool_cases),
    _layer("spatial_batchnorm_forward", ("dx", "dgamma", "dbeta"), _BN, spatial_batchnorm_cases,
           state_keys=BN_STATE),
    _layer("affine_relu_forward", ("dx", "dw", "db"), ("x", "w", "b"), affine_relu_cases, "layer_utils"),
    _layer("affine_batchnorm_relu_forward", ("dx", "dw", "db", "dgamma", "dbeta"),
           ("x", "w", "b", "gamma", "beta", "bn_param"), affine_batchnorm_relu_cases, "layer_utils",
           state_keys=BN_STATE),
    _layer("conv_relu_forward", ("dx", "dw", "db"), _CONV, conv_relu_cases, "layer_utils"),
    _layer("conv_relu_pool_forward", ("dx", "dw", "db"), _CONV + ("pool_param",), conv_relu_pool_cases,
           "layer_utils"),
    _layer("conv_batchnorm_relu_forward", ("dx", "dw", "db", "dgamma", "dbeta"),
           ("x", "w", "b", "gamma", "beta", "conv_param", "bn_param"), conv_batchnorm_relu_cases, "layer_utils",
           state_keys=BN_STATE),
    _layer("conv_batchnorm_relu_pool_forward", ("dx", "dw", "db", "dgamma", "dbeta"),
           ("x", "w", "b", "gamma", "beta", "conv_param", "bn_param", "pool_param"), _pool_with_bn,
           "layer_utils", state_keys=BN_STATE),
)


@dataclass(frozen=True)
class ModelCase:
    """Constructor arguments (besides dtype) and a batch for one model check."""

    label: str
    kwargs: dict
    input_shape: tuple[int, ...]
    num_examples: int
    tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class ModelSpec:
    """A model class of the notebook (by name) and the cases it is checked on."""

    name: str
    cases: tuple[ModelCase, ...]


MODEL_SPECS: tuple[ModelSpec, ...] = (
    ModelSpec("ThreeLayerConvNet", (
        ModelCase("input (3, 8, 8), 3 filters 3x3, hidden 7, reg 0",
                  dict(input_dim=(3, 8, 8), num_filters=3, filter_size=3, hidden_dim=7, num_classes=5, reg=0.0),
                  (3, 8, 8), 3, ("reg = 0",)),
        ModelCase("input (3, 8, 8), 3 filters 3x3, hidden 7, reg 0.7",
                  dict(input_dim=(3, 8, 8), num_filters=3, filter_size=3, hidden_dim=7, num_classes=5, reg=0.7),
                  (3, 8, 8), 2, ("reg > 0",)),
        ModelCase("input (2, 6, 6), 2 filters 5x5, hidden 4, reg 0.1, N=1",
                  dict(input_dim=(2, 6, 6), num_filters=2, filter_size=5, hidden_dim=4, num_classes=3, reg=0.1),
                  (2, 6, 6), 1, ("reg > 0", "N = 1")),
        ModelCase("input (3, 6, 6), batchnorm, reg 0.3",
                  dict(input_dim=(3, 6, 6), num_filters=4, filter_size=3, hidden_dim=5, num_classes=4, reg=0.3,
                       use_batchnorm=True),
                  (3, 6, 6), 4, ("reg > 0", "batchnorm")),
    )),
    ModelSpec("FullyConnectedNet", (
        ModelCase("hidden [6, 5], input 12, reg 0",
                  dict(hidden_dims=[6, 5], input_dim=12, num_classes=4, reg=0.0), (12,), 3, ("reg = 0",)),
        ModelCase("hidden [7], input (3, 2, 2), reg 0.5",
                  dict(hidden_dims=[7], input_dim=12, num_classes=3, reg=0.5), (3, 2, 2), 2, ("reg > 0",)),
        ModelCase("hidden [6, 5], batchnorm, reg 0.2",
                  dict(hidden_dims=[6, 5], input_dim=10, num_classes=4, reg=0.2, use_batchnorm=True),
                  (10,), 5, ("reg > 0", "batchnorm")),
        ModelCase("hidden [6, 5], dropout keep 0.7 seed 5, reg 0",
                  dict(hidden_dims=[6, 5], input_dim=8, num_classes=3, reg=0.0, dropout=0.7, seed=5),
                  (8,), 4, ("reg = 0", "dropout")),
    )),
)


# --------------------------------------------------------------- worker: run a group

Send = Callable[[tuple], None]


def _call(send: Send, function: str, case: Case, outputs: list[str], fn: Callable, *args, **kwargs):
    """Call user code after telling the parent what is running (so a hang is named)."""
    send(("call", function, case.label, tuple(outputs)))
    result = fn(*args, **kwargs)
    send(("returned", function))
    return result


def as_gradient_tuple(value: Any, count: int) -> tuple | str:
    """A backward's return value as a tuple of count gradients, or the reason it is not."""
    if count == 1:
        return (value,)
    if not isinstance(value, (tuple, list)):
        return f"wrong type: returned {type(value).__name__}, expected a tuple of {count} gradients"
    if len(value) != count:
        return f"returned {len(value)} values, expected {count}"
    return tuple(value)


def _autocnn_module(source: str):
    import autocnn.core.layer_utils
    import autocnn.core.layers

    return autocnn.core.layers if source == "layers" else autocnn.core.layer_utils


def _run_layer_spec(spec: LayerSpec, user: dict[str, Callable], rng: np.random.RandomState, send: Send,
                    tol: float) -> None:
    """Check one forward (or loss) and its backwards on every case, sending Outcomes."""
    mine = _autocnn_module(spec.source)
    expected_forward = getattr(mine, spec.forward)
    backwards = [name for name in spec.backwards if name in user]

    def emit(function, output, case, error=None, problem="", hints=(), skipped=""):
        send(("outcome", Outcome(function, output, case.label, case.tags, error, problem, tuple(hints), skipped)))

    for case in spec.make_cases(rng):
        mine_args = copy.deepcopy(case.args)
        if spec.is_loss:
            expected = expected_forward(*mine_args)
            outputs = ["loss", "dx"]
        else:
            expected_out, expected_cache = expected_forward(*mine_args)
            outputs = ["out", *spec.state_keys]
        user_args = copy.deepcopy(case.args)
        snapshot = copy.deepcopy(user_args)
        try:
            result = _call(send, spec.forward, case, outputs, user[spec.forward], *user_args)
        except Exception as error:
            for output in outputs:
                emit(spec.forward, output, case, problem=_describe_exception(error))
            for name in backwards:
                for grad in spec.grads:
                    emit(name, grad, case, skipped=f"not checked: {spec.forward} failed")
            continue
        mutated = _mutated_inputs(spec.arg_names, snapshot, user_args, spec.state_keys)
        mutation = f"modifies its input {', '.join(mutated)} in place" if mutated else ""
        if not isinstance(result, (tuple, list)) or len(result) != 2:
            kind = f"{len(result)}-tuple" if isinstance(result, (tuple, list)) else type(result).__name__
            what = "(loss, dx)" if spec.is_loss else "(out, cache)"
            for output in outputs:
                emit(spec.forward, output, case, problem=f"wrong type: returned {kind}, expected {what}")
            for name in backwards:
                for grad in spec.grads:
                    emit(name, grad, case, skipped=f"not checked: {spec.forward} failed")
            continue
        if spec.is_loss:
            for output, got, want in zip(outputs, result, expected):
                error, problem, hints = compare(got, want, tol, case, output)
                emit(spec.forward, output, case, error, problem or mutation, hints)
            continue
        user_out, user_cache = result
        error, problem, hints = compare(user_out, expected_out, tol, case, "out")
        emit(spec.forward, "out", case, error, problem or mutation, hints)
        for key in spec.state_keys:
            bn_index = spec.arg_names.index("bn_param")
            got, want = user_args[bn_index].get(key), mine_args[bn_index][key]
            error, problem, hints = compare(got, want, tol, case, key)
            if got is None:
                problem = f"bn_param['{key}'] not set"
            emit(spec.forward, key, case, error, problem, hints)

        dout = rng.randn(*np.shape(expected_out))
        expected_grads = as_gradient_tuple(getattr(mine, spec.backwards[0])(dout.copy(), expected_cache), len(spec.grads))
        for name in backwards:
            user_dout = dout.copy()
            try:
                cache = copy.deepcopy(user_cache)
            except Exception:  # an exotic cache: hand over the object itself
                cache = user_cache
            try:
                grads = _call(send, name, case, list(spec.grads), user[name], user_dout, cache)
            except Exception as error:
                for grad in spec.grads:
                    emit(name, grad, case, problem=_describe_exception(error))
                continue
            grads = as_gradient_tuple(grads, len(spec.grads))
            if isinstance(grads, str):
                for grad in spec.grads:
                    emit(name, grad, case, problem=grads)
                continue
            mutation = "modifies its input dout in place" if _changed(dout, user_dout) else ""
            for grad, got, want in zip(spec.grads, grads, expected_grads):
                error, problem, hints = compare(got, want, tol, case, grad)
                emit(name, grad, case, error, problem or mutation, hints)


def draw_model_params(rng: np.random.RandomState, shapes: dict[str, tuple[int, ...]]) -> dict[str, np.ndarray]:
    """
    Random float64 values for a model's params: He-scaled weights, gamma near 1.

    Inputs:
    - rng: Source of the values
    - shapes: Param name -> shape (e.g. from an autocnn model's params)

    Returns:
    - params: Param name -> float64 array
    """
    params = {}
    for name, shape in shapes.items():
        if name.startswith("W"):
            fan_in = int(np.prod(shape[1:])) if len(shape) == 4 else shape[0]
            params[name] = np.sqrt(2.0 / fan_in) * rng.randn(*shape)
        elif name.startswith("gamma"):
            params[name] = 1.0 + 0.2 * rng.randn(*shape)
        else:
            params[name] = 0.2 * rng.randn(*shape)
    return params


def _model_outputs(spec: ModelSpec) -> list[str]:
    """Rows of a model: loss, one gradient per param (autocnn's names), test-time scores."""
    names: list[str] = []
    for case in spec.cases:
        for name in _autocnn_model(spec, case).params:
            if name not in names:
                names.append(name)
    return ["loss", *[f"grad {name}" for name in names], "scores"]


def _autocnn_model(spec: ModelSpec, case: ModelCase):
    import autocnn.core.models

    return getattr(autocnn.core.models, spec.name)(**case.kwargs, dtype=np.float64)


def _reg_offsets(reg: float, params: dict[str, np.ndarray]) -> dict:
    """The L2 term's contributions: a wrong one shows up as user - expected = k * these."""

    def describe_grad(k: float) -> str:
        if abs(k + 1) < 1e-6:
            return "missing the regularization term (grad short by reg * W)"
        if abs(k - 1) < 1e-6:
            return "regularization term added twice (grad has an extra reg * W)"
        return f"regularization gradient wrong: off by {k:+.3g} x reg * W"

    def describe_loss(k: float) -> str:
        if abs(k + 1) < 1e-6:
            return "loss missing the regularization term 0.5 * reg * sum(W**2)"
        if abs(k - 1) < 1e-6:
            return "loss has reg * sum(W**2): the 0.5 is missing (or the term is added twice)"
        return f"loss regularization term wrong: off by {k:+.3g} x 0.5 * reg * sum(W**2)"

    weights = [name for name in params if name.startswith("W")]
    offsets = {f"grad {name}": [(reg * params[name], describe_grad)] for name in weights}
    offsets["loss"] = [(0.5 * reg * sum(np.sum(params[name] ** 2) for name in weights), describe_loss)]
    return offsets


def _run_model_spec(spec: ModelSpec, user_class: type, rng: np.random.RandomState, send: Send, tol: float) -> None:
    """Check a model class: same constructor, same params -> same loss, grads and scores."""
    function = f"{spec.name}.loss"
    outputs = _model_outputs(spec)
    try:
        accepted = set(inspect.signature(user_class).parameters)
        takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in inspect.signature(user_class).parameters.values())
    except (TypeError, ValueError):
        accepted, takes_any = set(), True

    for model_case in spec.cases:
        case = Case(model_case.label, (), model_case.tags, {"N": model_case.num_examples})

        def emit(output, error=None, problem="", hints=(), skipped=""):
            send(("outcome", Outcome(function, output, case.label, case.tags, error, problem, tuple(hints), skipped)))

        missing = [k for k in model_case.kwargs if k not in accepted and not takes_any]
        if missing:
            for output in outputs:
                emit(output, skipped=f"the constructor takes no {', '.join(missing)}")
            continue
        mine = _autocnn_model(spec, model_case)
        names = [f"grad {name}" for name in mine.params]
        params = draw_model_params(rng, {name: value.shape for name, value in mine.params.items()})
        X = rng.randn(model_case.num_examples, *model_case.input_shape)
        y = rng.randint(model_case.kwargs["num_classes"], size=model_case.num_examples)
        case = Case(model_case.label, (), model_case.tags, {"N": model_case.num_examples},
                    offsets=_reg_offsets(model_case.kwargs["reg"], params))
        try:
            model = _call(send, function, case, outputs, user_class, **model_case.kwargs, dtype=np.float64)
            got_params = model.params
            problem = ""
            if not isinstance(got_params, dict):
                problem = f"model.params is a {type(got_params).__name__}, expected a dict"
            else:
                missing_names = [n for n in mine.params if n not in got_params]
                extra = [n for n in got_params if n not in mine.params]
                wrong = [f"{n} {np.shape(got_params[n])} (expected {mine.params[n].shape})" for n in mine.params
                         if n in got_params and np.shape(got_params[n]) != mine.params[n].shape]
                if missing_names or extra or wrong:
                    parts = ([f"missing {', '.join(missing_names)}"] if missing_names else []) + \
                            ([f"unexpected {', '.join(extra)}"] if extra else []) + \
                            ([f"wrong shape {', '.join(wrong)}"] if wrong else [])
                    problem = "params differ from the notebook's: " + "; ".join(parts)
            if problem:
                for output in outputs:
                    emit(output, problem=problem)
                continue
            for name, value in params.items():
                model.params[name] = value.copy()
                mine.params[name] = value.copy()
            snapshot = (X.copy(), y.copy(), copy.deepcopy(params))
            user_X, user_y = X.copy(), y.copy()
            result = _call(send, function, case, outputs, model.loss, user_X, user_y)
        except Exception as error:
            for output in outputs:
                emit(output, problem=_describe_exception(error))
            continue
        expected_loss, expected_grads = mine.loss(X.copy(), y.copy())
        changed = _mutated_inputs(("X", "y", "params"), snapshot, (user_X, user_y, dict(model.params)), ())
        mutation = f"loss() modifies {', '.join(changed)} in place" if changed else ""
        if not isinstance(result, (tuple, list)) or len(result) != 2 or not isinstance(result[1], dict):
            for output in outputs:
                emit(output, problem=f"wrong type: loss(X, y) returned {type(result).__name__}, expected (loss, grads dict)")
            continue
        user_loss, user_grads = result
        error, problem, hints = compare(user_loss, expected_loss, tol, case, "loss")
        emit("loss", error, problem or mutation, hints)
        for output in names:
            param = output[len("grad "):]
            if param not in user_grads:
                emit(output, problem=f"grads has no '{param}'")
                continue
            error, problem, hints = compare(user_grads[param], expected_grads[param], tol, case, output)
            emit(output, error, problem or mutation, hints)
        try:
            scores = _call(send, function, case, ["scores"], model.loss, X.copy())
        except Exception as error:
            emit("scores", problem="test-time loss(X) " + _describe_exception(error))
            continue
        error, problem, hints = compare(scores, mine.loss(X.copy()), tol, case, "scores")
        emit("scores", error, problem, hints)


def _worker(job: Callable[[Send], None], connection) -> None:
    """Body of a forked worker: run the job quietly, report everything through the pipe."""
    sys.stdout = sys.stderr = io.StringIO()  # students' debug prints must not garble the table
    warnings.simplefilter("ignore")
    np.seterr(all="ignore")
    try:
        job(connection.send)
        connection.send(("done",))
    except BaseException as error:  # SystemExit / KeyboardInterrupt from user code included
        connection.send(("crashed", _describe_exception(error), traceback.format_exc(limit=3)))
    finally:
        connection.close()


def run_isolated(job: Callable[[Send], None], timeout: float,
                 between_calls: float | None = None) -> tuple[list[tuple], str]:
    """
    Run job(send) in a forked process and collect what it sends.

    Inputs:
    - job: Function of one argument, send(event_tuple); called in the child
    - timeout: Seconds the child may stay silent; then it is killed with SIGKILL
    - between_calls: If given, `timeout` applies only while user code runs (between a
      ('call', ...) and its ('returned', ...) event) and this longer limit otherwise, so
      that the checker's own work never counts against the user's time (matters on a
      loaded machine)

    Returns a tuple of:
    - events: Everything the child sent, in order (without the final 'done')
    - failure: '' when the job finished, else why it did not ('timed out after 2 s',
      'crashed: ...', 'died with exit code ...')
    """
    context = multiprocessing.get_context("fork")  # fork: the child inherits the loaded user code
    receiver, sender = context.Pipe(duplex=False)
    process = context.Process(target=_worker, args=(job, sender), daemon=True)
    process.start()
    sender.close()
    events: list[tuple] = []
    failure = ""
    limit = timeout if between_calls is None else between_calls
    try:
        while True:
            if not receiver.poll(limit):
                failure = f"timed out after {limit:g} s"
                break
            try:
                event = receiver.recv()
            except (EOFError, OSError):
                process.join(1.0)
                failure = f"died with exit code {process.exitcode}"
                break
            if event[0] == "done":
                break
            if event[0] == "crashed":
                failure = f"crashed: {event[1]}"
                break
            if between_calls is not None and event[0] in ("call", "returned"):
                limit = timeout if event[0] == "call" else between_calls
            events.append(event)
    finally:
        if process.is_alive():
            process.kill()
        process.join()
        receiver.close()
    return events, failure


# ----------------------------------------------------------------- loading targets

_LOADED_PACKAGES = itertools.count()


@dataclass
class LoadedTarget:
    """User code found in a target: name -> object, plus where each came from."""

    label: str
    namespace: dict[str, Any]
    origins: dict[str, str]
    problems: list[tuple[str, str]]  # (module, message) for files that failed to import


KNOWN_FUNCTIONS = tuple(dict.fromkeys(name for spec in LAYER_SPECS for name in spec.functions()))
KNOWN_CLASSES = tuple(spec.name for spec in MODEL_SPECS)


def _resolve(target: str) -> tuple[str, Path | None]:
    """('file' | 'folder' | 'module', path) for a command-line target."""
    path = Path(target)
    if path.suffix == ".py" or os.sep in target or path.exists():
        if path.is_file():
            return "file", path.resolve()
        if path.is_dir():
            return "folder", path.resolve()
        raise ValueError(f"no such file or folder: {target}")
    return "module", None


def _import_modules(target: str) -> tuple[list[types.ModuleType], list[tuple[str, str]]]:
    """Import the user's modules for a target; failures are returned, not raised."""
    kind, path = _resolve(target)
    modules, problems = [], []
    if kind == "module":
        try:
            root = importlib.import_module(target)
        except BaseException as error:
            return [], [(target, _describe_exception(error))]
        modules.append(root)
        for info in pkgutil.iter_modules(getattr(root, "__path__", [])):
            try:
                modules.append(importlib.import_module(f"{target}.{info.name}"))
            except BaseException as error:
                problems.append((f"{target}.{info.name}", _describe_exception(error)))
        return modules, problems

    folder = path if kind == "folder" else path.parent
    files = sorted(folder.glob("*.py")) if kind == "folder" else [path]
    # The folder becomes a package under a private name, so `from .layers import *`
    # works; its parent and itself go on sys.path for `from nndl.layers import *` and
    # `from layers import *`, only while importing.
    package = f"_autocnn_check_{next(_LOADED_PACKAGES)}"
    init = folder / "__init__.py"
    if init.exists():
        spec = importlib.util.spec_from_file_location(package, init, submodule_search_locations=[str(folder)])
        root = importlib.util.module_from_spec(spec)
    else:
        root = types.ModuleType(package)
        root.__path__ = [str(folder)]
    root.__package__ = package
    sys.modules[package] = root
    before = set(sys.modules)
    saved_path = list(sys.path)
    sys.path[:0] = [str(folder.parent), str(folder)]
    try:
        if init.exists():
            try:
                spec.loader.exec_module(root)
            except BaseException as error:
                problems.append(("__init__.py", _describe_exception(error)))
        for file in files:
            if file.name == "__init__.py":
                continue
            try:
                modules.append(importlib.import_module(f"{package}.{file.stem}"))
            except BaseException as error:
                problems.append((file.name, _describe_exception(error)))
    finally:
        sys.path[:] = saved_path
        # Forget public names bound to this folder (e.g. 'nndl.layers'), so another
        # target with the same folder name is imported afresh.
        for name in set(sys.modules) - before:
            module_file = getattr(sys.modules[name], "__file__", None) or ""
            if not name.startswith(package) and module_file.startswith(str(folder)):
                del sys.modules[name]
    return modules, problems


def _collect(modules: list[types.ModuleType]) -> tuple[dict[str, Any], dict[str, str]]:
    """Known names in the modules; a definition in its own module beats an import of it."""
    namespace: dict[str, Any] = {}
    origins: dict[str, str] = {}
    for module in modules:
        short = module.__name__.rsplit(".", 1)[-1]
        for name in KNOWN_FUNCTIONS + KNOWN_CLASSES:
            value = getattr(module, name, None)
            if value is None or not callable(value):
                continue
            defined_here = getattr(value, "__module__", None) == module.__name__
            if name not in namespace or defined_here:
                namespace[name] = value
                origins[name] = short
    return namespace, origins


def load_target(target: str, timeout: float = DEFAULT_TIMEOUT) -> LoadedTarget:
    """
    Import a target (file, folder or module name) and find the notebook API in it.

    The import is first tried in a throwaway worker, so a module that hangs or exits at
    import time is reported instead of stopping the checker; then it is imported here
    so the per-function workers inherit it.

    Inputs:
    - target: 'nndl/layers.py', 'nndl/' or an importable module name such as 'reference'
    - timeout: Seconds allowed for the trial import

    Returns:
    - LoadedTarget; its problems list the files that failed to import
    """
    _resolve(target)  # a missing path is the caller's mistake: raise ValueError now

    def trial(send: Send) -> None:
        modules, problems = _import_modules(target)
        send(("found", sorted(_collect(modules)[0]), problems))

    events, failure = run_isolated(trial, timeout)
    if failure:
        return LoadedTarget(target, {}, {}, [(target, f"import {failure}")])
    with contextlib.redirect_stdout(io.StringIO()):  # prints at import must not garble the table
        modules, problems = _import_modules(target)
    namespace, origins = _collect(modules)
    return LoadedTarget(target, namespace, origins, problems)


# ------------------------------------------------------------------- aggregation

def _tag_hint(failing: list[Outcome], passing: list[Outcome]) -> str:
    """'fails only for cases with <tag>' when one tag separates failing from passing cases."""
    if not passing:
        return ""
    common = set(failing[0].tags).intersection(*(o.tags for o in failing))
    seen_passing = set().union(*(o.tags for o in passing))
    for tag in failing[0].tags:
        if tag in common and tag not in seen_passing:
            return f"fails only for cases with {tag}"
    return ""


def summarize(function: str, output: str, outcomes: list[Outcome], tolerance: float, module: str = "") -> Row:
    """
    Fold the per-case outcomes of one (function, output) into a table row.

    A hard problem (exception, timeout, type, shape, mutation) decides the row; otherwise
    the worst relative error does, and a failure is explained by the hints every failing
    case agrees on, plus the case tag (pad > 0, overlapping windows ...) that separates
    the failing cases from the passing ones.
    """
    measured = [o for o in outcomes if not o.skipped]
    if not measured:
        reason = outcomes[0].skipped if outcomes else "not checked"
        return Row(function, output, None, tolerance, SKIP, reason, module=module)
    errors = [o.error for o in measured if o.error is not None]
    worst_error = max(errors) if errors else None
    worst = max((o for o in measured if o.error is not None), key=lambda o: o.error, default=measured[0])
    problems = [o for o in measured if o.problem]
    if problems:
        first = problems[0]
        more = len({o.case for o in problems}) - 1
        text = f"{first.problem} [case: {first.case}" + (f"; +{more} more" if more else "") + "]"
        return Row(function, output, worst_error, tolerance, FAIL, text, first.case, module)
    failing = [o for o in measured if o.error is not None and not o.error <= tolerance]
    if not failing:
        skipped = [o for o in outcomes if o.skipped]
        note = f"{len(skipped)} case(s) skipped: {skipped[0].skipped}" if skipped else ""
        return Row(function, output, worst_error, tolerance, PASS, note, worst.case, module)
    passing = [o for o in measured if o not in failing]
    agreed = [h for h in failing[0].hints if all(h in o.hints for o in failing[1:])]
    parts = agreed[:2]
    tag = _tag_hint(failing, passing)
    if tag:
        parts.append(tag)
    if not parts:
        parts.append(f"no simple pattern; worst case: {worst.case}")
    return Row(function, output, worst_error, tolerance, FAIL, "; ".join(parts), worst.case, module)


def _rows_from_events(function_outputs: list[tuple[str, str]], events: list[tuple], failure: str,
                      tolerance: float, origins: dict[str, str]) -> list[Row]:
    """Rows of one group, turning a timeout or a dead worker into problems on the right rows."""
    outcomes: dict[tuple[str, str], list[Outcome]] = {key: [] for key in function_outputs}
    running = None
    for event in events:
        if event[0] == "outcome":
            outcome = event[1]
            outcomes.setdefault((outcome.function, outcome.output), []).append(outcome)
        elif event[0] == "call":
            running = event[1:]
        elif event[0] == "returned":
            running = None
    if failure:
        text = f"{failure} (infinite loop?)" if failure.startswith("timed out") else f"the worker {failure}"
        if running is not None:
            function, case, outputs = running
            for output in outputs:
                outcomes.setdefault((function, output), []).append(Outcome(function, output, case, problem=text))
        for key, found in outcomes.items():
            if not found:
                found.append(Outcome(*key, case="", skipped=f"not checked: stopped early ({text})"))
    rows = []
    for (function, output), found in outcomes.items():
        module = origins.get(function.split(".")[0], "")
        rows.append(summarize(function, output, found, tolerance, module))
    return rows


def _spec_seed(seed: int, name: str) -> int:
    return (seed * 1_000_003 + zlib.crc32(name.encode())) % (2**32)


def check_loaded(loaded: LoadedTarget, timeout: float = DEFAULT_TIMEOUT, seed: int = 0,
                 layer_tolerance: float = LAYER_TOLERANCE, model_tolerance: float = MODEL_TOLERANCE) -> list[Row]:
    """As check_target, for an already loaded target."""
    # Import autocnn's side once here, so that every forked worker inherits it.
    for name in ("autocnn.core.layers", "autocnn.core.layer_utils", "autocnn.core.models"):
        importlib.import_module(name)

    rows = [Row(f"import {module}", "-", None, 0.0, FAIL, message, module=module)
            for module, message in loaded.problems]
    user = loaded.namespace
    idle = max(BETWEEN_CALLS_TIMEOUT, timeout)  # the checker's own work between user calls
    for spec in LAYER_SPECS:
        if spec.forward not in user:
            rows += [Row(name, "-", None, layer_tolerance, SKIP, f"no {spec.forward} to make its cache",
                         module=loaded.origins.get(name, "")) for name in spec.backwards if name in user]
            continue
        backwards = [name for name in spec.backwards if name in user]
        if spec.is_loss:
            keys = [(spec.forward, "loss"), (spec.forward, "dx")]
        else:
            keys = [(spec.forward, "out")] + [(spec.forward, key) for key in spec.state_keys]
            keys += [(name, grad) for name in backwards for grad in spec.grads]
        rng = np.random.RandomState(_spec_seed(seed, spec.name))
        events, failure = run_isolated(
            lambda send, spec=spec, rng=rng: _run_layer_spec(spec, user, rng, send, layer_tolerance), timeout, idle)
        rows += _rows_from_events(keys, events, failure, layer_tolerance, loaded.origins)
    for spec in MODEL_SPECS:
        if spec.name not in user or not isinstance(user[spec.name], type):
            continue
        function = f"{spec.name}.loss"
        keys = [(function, output) for output in _model_outputs(spec)]
        rng = np.random.RandomState(_spec_seed(seed, spec.name))
        events, failure = run_isolated(
            lambda send, spec=spec, rng=rng: _run_model_spec(spec, user[spec.name], rng, send, model_tolerance),
            timeout, idle)
        rows += _rows_from_events(keys, events, failure, model_tolerance, loaded.origins)
    return rows


def check_target(target: str = DEFAULT_TARGET, timeout: float = DEFAULT_TIMEOUT, seed: int = 0,
                 layer_tolerance: float = LAYER_TOLERANCE, model_tolerance: float = MODEL_TOLERANCE) -> list[Row]:
    """
    Check every notebook-API function and model class found in a target.

    Inputs:
    - target: A .py file, a folder of them, or an importable module / package name
    - timeout: Seconds any single call of user code may take before it is killed
    - seed: Seed of the random inputs (the same seed gives the same cases)
    - layer_tolerance, model_tolerance: Largest acceptable relative error (rel_error)

    Returns:
    - rows: One Row per (function, output); status PASS, FAIL or SKIP
    """
    loaded = load_target(target, timeout)
    rows = check_loaded(loaded, timeout, seed, layer_tolerance, model_tolerance)
    if not rows:
        rows.append(Row("(nothing found)", "-", None, 0.0, FAIL,
                        "no function or class of the notebook API in this target"))
    return rows


# ------------------------------------------------------------------------ output

def format_table(rows: list[Row]) -> str:
    """The rows as an aligned text table."""
    header = ("function", "output", "worst rel. error", "tolerance", "status", "diagnosis")
    lines = [(r.function, r.output, "-" if r.error is None else f"{r.error:.2e}", f"{r.tolerance:.0e}" if r.tolerance
              else "-", r.status, r.diagnosis) for r in rows]
    widths = [max(len(str(line[i])) for line in [header, *lines]) for i in range(5)]
    out = []
    for line in [header, *lines]:
        cells = [str(cell).ljust(width) for cell, width in zip(line[:5], widths)]
        out.append("  ".join(cells + [line[5]]).rstrip())
    out.insert(1, "  ".join("-" * w for w in widths) + "  " + "-" * 9)
    return "\n".join(out)


def _summary(target: str, rows: list[Row]) -> str:
    counts = {status: sum(r.status == status for r in rows) for status in (PASS, FAIL, SKIP)}
    return (f"{target}: {len(rows)} checks, {counts[PASS]} passed, {counts[FAIL]} failed"
            + (f", {counts[SKIP]} skipped" if counts[SKIP] else ""))


def _json_row(row: Row) -> dict:
    """A row as plain JSON (an infinite error becomes the string 'inf')."""
    data = asdict(row)
    if row.error is not None and not math.isfinite(row.error):
        data["error"] = str(row.error)
    data["passed"] = not row.failed
    return data


def results_as_json(results: list[tuple[str, list[Row]]]) -> dict:
    """The JSON document of ``autocnn check --json``: one entry per target with its rows."""
    failed = any(row.failed for _, rows in results for row in rows)
    return {"passed": not failed,
            "targets": [{"target": target, "passed": not any(r.failed for r in rows),
                         "rows": [_json_row(r) for r in rows]}
                        for target, rows in results]}


def format_results(results: list[tuple[str, list[Row]]]) -> str:
    """The tables ``autocnn check`` prints: per target a header, the table and a summary line."""
    blocks = []
    for target, rows in results:
        blocks.append(f"== autocnn check {target}  (tolerance: rel. error vs autograd, float64)\n"
                      f"{format_table(rows)}\n{_summary(target, rows)}\n")
    return "\n".join(blocks)
