"""The random inputs each function is checked on: float64, several shapes per function.

Each Case carries tags (properties a failure may hinge on: "pad > 0", "stride 2") so that
the failing cases can be told apart from the passing ones, and masks of regions where a
typical bug shows up ("in the border next to the zero padding").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


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
    - train: Whether backward passes are checked on this case
    - offsets: output name -> [(array, description_by_k)]: user - expected == k * array
      is reported with description_by_k(k) (e.g. the L2 term of a model gradient)
    """

    label: str
    args: tuple
    tags: tuple[str, ...] = ()
    context: dict = field(default_factory=dict)
    regions: dict = field(default_factory=dict)
    offsets: dict = field(default_factory=dict)
    # False for test-mode cases: the homework never backpropagates through a test-mode
    # forward (the starter code's cache is then None), so only the forward is judged.
    train: bool = True



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
        cases.append(Case(label, (x, gamma, beta, param), (f"{mode} mode",), {"N": n}, train=mode == "train"))
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
                          {"N": n * shape[2] * shape[3]}, train=mode == "train"))
    return cases


def layernorm_cases(rng: np.random.RandomState) -> list[Case]:
    """Rows normalized over their features; ln_param with and without eps (and a model's 'mode')."""
    cases = []
    for n, d, param in [(4, 5, {}), (1, 7, {"eps": 1e-3}), (3, 6, {"mode": "train"})]:
        x = 3.0 * _rand(rng, n, d) + 2.0 * _rand(rng, n, 1)  # shifted, scaled rows
        gamma, beta = 1.0 + 0.2 * _rand(rng, d), 0.3 * _rand(rng, d)
        extra = "".join(f", {k} {v}" for k, v in param.items())
        cases.append(Case(f"x ({n}, {d}){extra}", (x, gamma, beta, param), ("N = 1",) if n == 1 else (), {"N": d}))
    return cases


def layernorm_over_batch(x, gamma, beta, ln_param):
    """What a layer norm that normalizes over the batch axis returns (a batchnorm): a suspect."""
    eps = ln_param.get("eps", 1e-5)
    return gamma * (x - x.mean(axis=0)) / np.sqrt(x.var(axis=0) + eps) + beta


def spatial_groupnorm_cases(rng: np.random.RandomState) -> list[Case]:
    """Groups of consecutive channels; gamma and beta shaped (1, C, 1, 1) as the notebook makes them."""
    cases = []
    for shape, groups, param in [((2, 6, 4, 4), 2, {}), ((1, 4, 3, 3), 4, {"eps": 1e-3}), ((3, 6, 2, 3), 3, {})]:
        n, c, h, w = shape
        x = 3.0 * _rand(rng, *shape) + 2.0 * _rand(rng, n, c, 1, 1)
        gamma, beta = 1.0 + 0.2 * _rand(rng, 1, c, 1, 1), 0.3 * _rand(rng, 1, c, 1, 1)
        tags = (f"G = {groups}",) + (("N = 1",) if n == 1 else ())
        label = f"x {shape}, G {groups}" + "".join(f", {k} {v}" for k, v in param.items())
        cases.append(Case(label, (x, gamma, beta, groups, param), tags, {"N": c // groups * h * w}))
    return cases


def dropout_cases(rng: np.random.RandomState) -> list[Case]:
    """Arrays large enough (>= 3000 units) that the fraction kept tells p's meaning apart."""
    cases = []
    for shape, p, mode, seed in [((50, 80), 0.3, "train", 3), ((20, 10, 4, 4), 0.8, "train", 11),
                                 ((30, 40), 0.6, "test", 7)]:
        param = {"p": p, "mode": mode, "seed": seed}
        cases.append(Case(f"x {shape}, p {p}, {mode} mode, seed {seed}", (_rand(rng, *shape), param),
                          (f"{mode} mode",), {"N": shape[0], "p": p}, train=mode == "train"))
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
                          (f"{mode} mode",), {"N": n}, train=mode == "train"))
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
        cases.append(Case(label, args, (f"{mode} mode",), {"N": x_shape[0]}, train=mode == "train"))
    return cases


