"""``autocnn bench``: how fast autograd-derived training is next to hand-written backprop.

One run times, interleaved so that machine noise hits every side alike, with several
repetitions each:

* layers, forward and forward + backward: conv (3->32 7x7 pad 3 on 32x32 at a small and
  a large batch, 32->64 3x3 pad 1 on 16x16), 2x2 max pool, batchnorm, spatial batchnorm,
  affine and softmax;
* whole training steps (loss, gradients and an Adam update of every parameter): the
  notebook's >65% ThreeLayerConvNet at batch 1000 (float32) and batch 50 (float32 and
  float64), and a deeper ``ConvNet`` (3x3 convs, 32-128 channels, spatial batchnorm);
* the peak memory (max RSS) of a process running batch-1000 steps of the >65% net.

Sides (a side is left out where it does not apply or would take minutes):

==================  ==============================================================
ref-naive           ``reference.conv_layers`` loop layers (small sizes only)
ref-fast            ``reference.fast_layers`` / ``reference.layers``, hand-written
autocnn             autocnn's default formulation, gradients by autograd
autocnn-scipy       autocnn with conv by the ``scipy.signal.correlate`` primitive
autograd-convolve   autocnn with conv by ``autograd.scipy.signal.convolve``
pytorch             the same network in PyTorch on the CPU (training steps only; when
                    torch is installed, see ``autocnn.tools.bench_torch``)
==================  ==============================================================

Each training step is also held against the GEMM limit: the step's own matrix products
(forward, dW and dx of every conv and affine, at the step's shapes and dtype) run alone
on contiguous operands, timed interleaved with the sides so that it shares their load.
Its time is the least a step whose work is those GEMMs could take on this machine; each
side's fraction of the limit is that time over its median.

Library use (``autocnn report`` draws its speed chart from this)::

    from autocnn.tools.bench import run_benchmark, format_table
    results = run_benchmark(quick=True)
    print(format_table(results))

This module's top-level imports stay light (standard library only) so that
``autocnn --help`` is fast; the work imports numpy, autograd and the models inside
functions.
"""

from __future__ import annotations

import gc
import json
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from autocnn.tools.bench_torch import NOT_INSTALLED
from autocnn.tools.provenance import load_average, machine_info

SIDES: tuple[str, ...] = ("ref-naive", "ref-fast", "autocnn", "autocnn-scipy", "autograd-convolve", "autocnn-pure",
                         "pytorch")
BASELINE = "ref-fast"
#: The side the speed-ups ("x PyTorch": its median / a side's) are taken against.
COMPARED = "pytorch"

#: The issue's measurements on this machine class, used by the target checks.
PROTOTYPE_STEP_MS = {1000: 1224.0, 50: 72.0}  # hand-written numpy prototype, float32
F32_PEAK_GFLOPS = 209.0  # float32 matmul peak on 2 cores

NET_65_NAME = "3-layer net (>65% config)"
DEEP_NAME = "ConvNet [32,32]-[64,64]-[128,128] bn"
NET_65 = {"num_filters": 32, "filter_size": 7, "hidden_dim": 1000, "weight_scale": 1e-3, "reg": 1e-3}
DEEP_NET = {"blocks": ((32, 32), (64, 64), (128, 128)), "filter_size": 3, "hidden_dims": (256,),
            "use_batchnorm": True, "weight_scale": "he", "reg": 1e-3}

# The targets against PyTorch and the GEMM limit: (case name, batch, dtype) -> least speed-up.
SPEEDUP_OVER_PYTORCH_TARGETS = {(NET_65_NAME, 1000, "float32"): 1.25, (NET_65_NAME, 50, "float32"): 1.5,
                                (DEEP_NAME, 100, "float32"): 1.0}
GEMM_LIMIT_FRACTION_TARGET = 0.8  # the 3-layer net at batch 1000
STEP_MEMORY_VS_PYTORCH_TARGET = 1.0  # a batch-1000 step's peak growth, autocnn / PyTorch

# The earlier targets, against hand-written backprop.
STEP_RATIO_TARGET = 1.2
STEP_RATIO_STRETCH = 1.0
IMAGES_PER_S_TARGET = {1000: 800.0, 50: 600.0}
PEAK_MEMORY_TARGET_MB = 3 * 1024.0
CONVOLVE_SPEEDUP_TARGET = 10.0
REFERENCE_VS_PROTOTYPE_TARGET = 1.5


@dataclass
class Case:
    """
    One thing to time on several sides.

    - name: What is timed, e.g. 'conv 3->32 7x7 pad 3, 32x32'
    - kind: 'layer' or 'step'
    - phase: 'forward', 'forward+backward' or 'train step'
    - batch: Images per call (for images/s)
    - dtype: 'float32' or 'float64'
    - flops: Useful floating-point operations per call (None where GFLOP/s means nothing)
    - setup: side -> zero-argument factory; calling it prepares the side and returns
      (run, value): run() does one timed repetition, value is what the first call gave
      (a step's loss, so sides can be checked to agree)
    - limit: Optional factory like setup's of the GEMM-limit run (steps only)
    """

    name: str
    kind: str
    phase: str
    batch: int
    dtype: str
    flops: float | None
    setup: dict[str, Callable[[], tuple[Callable[[], Any], float | None]]] = field(default_factory=dict)
    limit: Callable[[], tuple[Callable[[], Any], float | None]] | None = None


# --------------------------------------------------------------------- layer sides

def _conv_sides(with_naive: bool, with_slow: bool) -> dict[str, tuple[Callable, Callable]]:
    """side -> (conv_forward(x, w, b, conv_param), conv_backward(dout, cache)) in the notebook API."""
    from autocnn.core import derive, layers, ops
    from reference import conv_layers, fast_layers

    def formulation(impl):
        def conv_forward(x, w, b, conv_param):
            return derive.forward(ops.conv2d, x, w, b, stride=conv_param["stride"], pad=conv_param["pad"], impl=impl)

        return conv_forward

    sides = {"ref-fast": (fast_layers.conv_forward_fast, fast_layers.conv_backward_fast),
             "autocnn": (layers.conv_forward_fast, layers.conv_backward_fast)}
    if with_naive:
        sides["ref-naive"] = (conv_layers.conv_forward_naive, conv_layers.conv_backward_naive)
    if with_slow:
        sides["autocnn-scipy"] = (layers.conv_forward_naive, layers.conv_backward_naive)  # the scipy formulation
        sides["autograd-convolve"] = (formulation("autograd-convolve"), derive.backward)
        sides["autocnn-pure"] = (formulation("pure"), derive.backward)  # slices and sums, no derivative rule
    return sides


def _pure_pool_forward(x, pool_param):
    """max_pool_forward in the notebook API by ops.max_pool2d impl='pure' (no derivative rule)."""
    from autocnn.core import derive, ops

    return derive.forward(ops.max_pool2d, x, pool_height=pool_param["pool_height"],
                          pool_width=pool_param["pool_width"], stride=pool_param["stride"], impl="pure")


def _layer_case(name: str, phase: str, batch: int, dtype: str, flops: float | None,
                sides: dict[str, tuple[Callable, Callable]], make_inputs: Callable[[], tuple],
                out_grad: Callable[[Any], Any]) -> Case:
    """
    A layer timed through its notebook API: forward(*inputs) -> (out, cache), then, for
    'forward+backward', backward(dout, cache). make_inputs() gives fresh inputs per side
    (the same numbers for every side); out_grad(out) gives the upstream derivative.
    """

    def factory(forward: Callable, backward: Callable):
        def prepare():
            inputs = make_inputs()
            out, _ = forward(*inputs)
            dout = out_grad(out)

            def run_forward():
                return forward(*inputs)

            def run_both():
                _, cache = forward(*inputs)
                return backward(dout, cache)

            return (run_forward if phase == "forward" else run_both), None

        return prepare

    return Case(name, "layer", phase, batch, dtype, flops,
                {side: factory(fwd, bwd) for side, (fwd, bwd) in sides.items()})


def _layer_cases(quick: bool) -> list[Case]:
    """The per-layer cases, in table order."""
    import numpy as np

    from autocnn.core import derive, layers
    from reference import conv_layers, fast_layers
    from reference import layers as ref_layers

    # The quick run times one tiny batch (a smoke test); a full run a small and a large one.
    small, large = (4, 4) if quick else (50, 1000)
    batches = (small,) if quick else (small, large)
    cases: list[Case] = []

    def randn(*shape, dtype="float32", seed=0):
        return np.random.RandomState(seed).randn(*shape).astype(dtype)

    def same_shape(out):
        return randn(*np.shape(out), seed=1)

    conv_configs = [  # (name, C, H, F, K, pad); stride 1
        ("conv 3->32 7x7 pad 3, 32x32", 3, 32, 32, 7, 3),
        ("conv 32->64 3x3 pad 1, 16x16", 32, 16, 64, 3, 1),
    ]
    for (name, c, h, f, k, pad), n in ((config, n) for config in conv_configs for n in batches):
        small_size = n == small  # the naive and slow formulations only at the small batch
        flops = 2.0 * n * f * c * k * k * h * h  # stride 1, 'same' padding: H' = H
        sides = _conv_sides(with_naive=small_size, with_slow=small_size)
        conv_param = {"stride": 1, "pad": pad}

        def conv_inputs(n=n, c=c, h=h, f=f, k=k, conv_param=conv_param):
            return (randn(n, c, h, h), randn(f, c, k, k, seed=2) * 0.1, randn(f, seed=3), dict(conv_param))

        cases.append(_layer_case(name, "forward", n, "float32", flops, sides, conv_inputs, same_shape))
        cases.append(_layer_case(name, "forward+backward", n, "float32", 3 * flops, sides, conv_inputs, same_shape))

    pool_param = {"pool_height": 2, "pool_width": 2, "stride": 2}
    for n in batches:
        sides = {"ref-fast": (fast_layers.max_pool_forward_fast, fast_layers.max_pool_backward_fast),
                 "autocnn": (layers.max_pool_forward_fast, layers.max_pool_backward_fast)}
        if n == small:
            sides["ref-naive"] = (conv_layers.max_pool_forward_naive, conv_layers.max_pool_backward_naive)
            sides["autocnn-pure"] = (_pure_pool_forward, derive.backward)

        def pool_inputs(n=n):
            return (np.maximum(randn(n, 32, 32, 32), 0), dict(pool_param))  # after a relu: many ties at 0

        for phase in ("forward", "forward+backward"):
            cases.append(_layer_case("max pool 2x2 stride 2, 32x32x32", phase, n, "float32", None, sides,
                                     pool_inputs, same_shape))

    def bn_inputs(shape):
        channels = shape[1]
        return lambda: (randn(*shape), np.ones(channels, "float32"), np.zeros(channels, "float32"), {"mode": "train"})

    norm_cases = [
        ("batchnorm (N, 1000)", (large, 1000), ref_layers.batchnorm_forward, ref_layers.batchnorm_backward,
         layers.batchnorm_forward, layers.batchnorm_backward),
        ("spatial batchnorm (N, 32, 32, 32)", (large, 32, 32, 32), conv_layers.spatial_batchnorm_forward,
         conv_layers.spatial_batchnorm_backward, layers.spatial_batchnorm_forward, layers.spatial_batchnorm_backward),
    ]
    for name, shape, ref_fwd, ref_bwd, auto_fwd, auto_bwd in norm_cases:
        sides = {"ref-fast": (ref_fwd, ref_bwd), "autocnn": (auto_fwd, auto_bwd)}
        for phase in ("forward", "forward+backward"):
            cases.append(_layer_case(name, phase, large, "float32", None, sides, bn_inputs(shape), same_shape))

    affine_sides = {"ref-fast": (ref_layers.affine_forward, ref_layers.affine_backward),
                    "autocnn": (layers.affine_forward, layers.affine_backward)}
    for n in batches:
        def affine_inputs(n=n):
            return randn(n, 32, 16, 16), randn(8192, 1000, seed=2) * 0.01, randn(1000, seed=3)

        flops = 2.0 * n * 8192 * 1000
        cases.append(_layer_case("affine 8192->1000", "forward", n, "float32", flops, affine_sides,
                                 affine_inputs, same_shape))
        cases.append(_layer_case("affine 8192->1000", "forward+backward", n, "float32", 3 * flops, affine_sides,
                                 affine_inputs, same_shape))

    # softmax_loss returns (loss, dx): its one call is the forward and the backward.
    softmax_sides = {side: (loss_fn, None) for side, loss_fn in
                     (("ref-fast", ref_layers.softmax_loss), ("autocnn", layers.softmax_loss))}
    labels = np.random.RandomState(4).randint(10, size=large)
    cases.append(_layer_case("softmax loss (N, 10)", "forward", large, "float32", None, softmax_sides,
                             lambda: (randn(large, 10), labels), lambda out: None))
    return cases


# ---------------------------------------------------------------------- step sides

def _train_step(model, X, y, configs: dict) -> float:
    """One Solver-style step: loss and gradients, then Adam on every parameter. Returns the loss."""
    from autocnn.training.optim import adam  # imported here: the optimizers may be edited while benchmarks run

    loss, grads = model.loss(X, y)
    for name, value in model.params.items():
        model.params[name], configs[name] = adam(value, grads[name], configs.get(name))
    return float(loss)


def _net_65_models(dtype: str, hidden_dim: int = NET_65["hidden_dim"]) -> dict[str, Callable[[], Any]]:
    """side -> factory of the notebook's >65% ThreeLayerConvNet, all with the same params."""
    import numpy as np

    from autocnn.core.models import ThreeLayerConvNet
    from reference.cnn import ThreeLayerConvNet as ReferenceThreeLayerConvNet

    config = dict(NET_65, hidden_dim=hidden_dim)
    np.random.seed(0)
    template = ThreeLayerConvNet(dtype=np.dtype(dtype).type, **config)

    def autocnn_side(conv_impl: str):
        def make():
            model = ThreeLayerConvNet(dtype=np.dtype(dtype).type, conv_impl=conv_impl, **config)
            model.params = {name: value.copy() for name, value in template.params.items()}
            return model
        return make

    def reference_side():
        model = ReferenceThreeLayerConvNet(dtype=np.dtype(dtype).type, **config)
        model.params = {name: value.copy() for name, value in template.params.items()}
        return model

    return {"ref-fast": reference_side, "autocnn": autocnn_side("fast"),
            "autocnn-scipy": autocnn_side("scipy"), "autograd-convolve": autocnn_side("autograd-convolve")}


def _deep_net_models(dtype: str) -> dict[str, Callable[[], Any]]:
    """side -> factory of the deeper ConvNet and its hand-written twin, with the same params."""
    import numpy as np

    from autocnn.core.models import ConvNet
    from reference.convnet import ConvNet as HandWrittenConvNet

    np.random.seed(0)
    template = ConvNet(dtype=np.dtype(dtype).type, **DEEP_NET)

    def autocnn_side():
        model = ConvNet(dtype=np.dtype(dtype).type, **DEEP_NET)
        model.params = {name: value.copy() for name, value in template.params.items()}
        return model

    return {"ref-fast": lambda: HandWrittenConvNet(template), "autocnn": autocnn_side}


def step_gemms(model, batch: int, input_hw: tuple[int, int] = (32, 32)) -> list[tuple[str, int, int, int]]:
    """
    The matrix products of one training step, from the layer shapes: each conv is one
    GEMM forward (filters as a (F, C*k*k) matrix times the (C*k*k, N*H*W) patch matrix),
    one for dW and one for dx, and so is each affine; the first layer has no dx (no
    gradient needs it). Stride 1 and 'same' padding, as in every ConvNet.

    Inputs:
    - model: An autocnn ConvNet (or subclass); its blocks and params give the layer sizes
    - batch: Images per step
    - input_hw: (H, W) of the input images

    Returns:
    - gemms: List of (what, m, k, n): an (m, k) @ (k, n) product, 2 * m * k * n FLOPs
    """
    gemms: list[tuple[str, int, int, int]] = []
    index = 1
    height, width = input_hw
    for block in model.blocks:
        for _ in block:
            filters, patch = model.params[f"W{index}"].shape[0], model.params[f"W{index}"][0].size
            pixels = batch * height * width
            gemms += [(f"conv{index} forward", filters, patch, pixels), (f"conv{index} dW", patch, pixels, filters)]
            if index > 1:
                gemms.append((f"conv{index} dx", patch, filters, pixels))
            index += 1
        height, width = height // 2, width // 2
    while f"W{index}" in model.params:
        fan_in, fan_out = model.params[f"W{index}"].shape
        gemms += [(f"affine{index} forward", batch, fan_in, fan_out), (f"affine{index} dW", fan_in, batch, fan_out)]
        if index > 1:
            gemms.append((f"affine{index} dx", batch, fan_out, fan_in))
        index += 1
    return gemms


def model_flops(model, input_hw: tuple[int, int] = (32, 32)) -> float:
    """
    Useful FLOPs of one training step per image: those of its GEMMs (`step_gemms`: every
    conv and affine forward, 2 per multiply-add, and twice that again backward, except the
    first layer's dx). Elementwise work is not counted.

    Inputs:
    - model: An autocnn ConvNet (or subclass)
    - input_hw: (H, W) of the input images

    Returns:
    - flops: Per image
    """
    return sum(2.0 * m * k * n for _, m, k, n in step_gemms(model, 1, input_hw))


def _gemm_limit_runner(gemms: list[tuple[str, int, int, int]], dtype: str) -> Callable[[], tuple[Callable[[], None], None]]:
    """
    A factory like a side's: the step's GEMMs alone, on C-contiguous random operands of
    the step's dtype (one array per shape, outputs preallocated), so a run times only BLAS.
    """
    import numpy as np

    def prepare():
        rng = np.random.default_rng(0)
        arrays: dict[tuple[int, int], np.ndarray] = {}

        def operand(shape):
            if shape not in arrays:
                arrays[shape] = rng.standard_normal(shape, dtype=np.float32).astype(dtype, copy=False)
            return arrays[shape]

        products = [(operand((m, k)), operand((k, n)), np.empty((m, n), dtype)) for _, m, k, n in gemms]

        def run():
            for a, b, out in products:
                np.matmul(a, b, out=out)

        run()
        return run, None

    return prepare


def _step_case(name: str, batch: int, dtype: str, models: dict[str, Callable[[], Any]],
               sides: Sequence[str], input_hw: tuple[int, int] = (32, 32)) -> Case:
    """A training-step case; every side's model starts from the same params and data."""
    import numpy as np

    from autocnn.tools import bench_torch

    rng = np.random.RandomState(7)
    X = rng.randn(batch, 3, *input_hw).astype(dtype)
    y = rng.randint(10, size=batch)
    gemms = step_gemms(models["autocnn"](), batch, input_hw)
    flops = sum(2.0 * m * k * n for _, m, k, n in gemms)

    def factory(make_model):
        def prepare():
            model, configs = make_model(), {}
            first_loss = _train_step(model, X, y, configs)  # warm-up; the loss of the shared params
            return (lambda: _train_step(model, X, y, configs)), first_loss
        return prepare

    setup = {side: factory(models[side]) for side in sides if side in models}
    if COMPARED in sides and bench_torch.torch_version() is not None:
        setup[COMPARED] = bench_torch.torch_step_side(models["autocnn"], X, y)
    return Case(name, "step", "train step", batch, dtype, flops, setup, limit=_gemm_limit_runner(gemms, dtype))


QUICK_HIDDEN_DIM = 100  # the quick run's 3-layer net: same architecture, a smaller hidden layer


def _step_cases(quick: bool) -> list[Case]:
    """The training-step cases, in table order."""
    all_sides = ("ref-fast", "autocnn", "autocnn-scipy", "autograd-convolve", COMPARED)
    seed_name, deep_name = NET_65_NAME, DEEP_NAME
    if quick:
        seed_name = f"3-layer net (>65% config, hidden {QUICK_HIDDEN_DIM})"
        return [
            _step_case(seed_name, 8, "float32", _net_65_models("float32", QUICK_HIDDEN_DIM), all_sides),
            _step_case(seed_name, 4, "float64", _net_65_models("float64", QUICK_HIDDEN_DIM), all_sides),
            _step_case(deep_name, 4, "float32", _deep_net_models("float32"), ("ref-fast", "autocnn", COMPARED)),
        ]
    return [
        # The >65% run itself; autograd-convolve here too, for the network-level speed-up.
        _step_case(seed_name, 1000, "float32", _net_65_models("float32"),
                   ("ref-fast", "autocnn", "autograd-convolve", COMPARED)),
        _step_case(seed_name, 50, "float32", _net_65_models("float32"), all_sides),
        _step_case(seed_name, 50, "float64", _net_65_models("float64"), all_sides),
        _step_case(deep_name, 100, "float32", _deep_net_models("float32"), ("ref-fast", "autocnn", COMPARED)),
    ]


# ------------------------------------------------------------------------- timing

def _summary(times: list[float]) -> dict[str, float]:
    ordered = sorted(times)
    middle = len(ordered) // 2
    median = ordered[middle] if len(ordered) % 2 else 0.5 * (ordered[middle - 1] + ordered[middle])
    return {"median_s": median, "min_s": ordered[0], "max_s": ordered[-1]}


def time_case(case: Case, repeats: int, min_seconds: float = 0.0, max_repeats: int | None = None) -> dict[str, Any]:
    """
    Time every side of a case, interleaved: repetition r runs each side once, in an order
    rotated by r, so slow and fast moments of a busy machine fall on all sides alike.

    Inputs:
    - case: What to time
    - repeats: Repetitions at least
    - min_seconds, max_repeats: Then go on (up to max_repeats) until the fastest side has
      run min_seconds in all: a median of 5 runs of an 80 ms step moves with every hiccup
      of a shared machine, one of 13 much less. Extra repetitions stop once the case as a
      whole has taken CASE_SECONDS_FOR_EXTRA_REPEATS (slow sides take seconds a run)

    Returns a dict with the case's description; per side its times (seconds), median, min,
    max, ratio of its median to the reference fast side, speed-up over PyTorch (where it
    ran), images/s, GFLOP/s and fraction of the GEMM limit (steps); and 'gemm_limit': the
    GEMM-only run's median, min, max, images/s and GFLOP/s (None for layers).
    """
    runners, values = {}, {}
    for side in SIDES:  # prepare (and warm up) in a fixed order
        if side in case.setup:
            runners[side], values[side] = case.setup[side]()
    if case.limit is not None:  # timed in the same rotation, reported apart from the sides
        runners[_LIMIT], _ = case.limit()
    order = list(runners)
    times: dict[str, list[float]] = {side: [] for side in order}
    max_repeats = max(repeats, max_repeats or repeats)
    rep = 0

    def wants_more() -> bool:
        fastest = min(sum(times[side]) for side in order)
        return (rep < max_repeats and fastest < min_seconds
                and sum(sum(times[side]) for side in order) < CASE_SECONDS_FOR_EXTRA_REPEATS)

    while rep < repeats or wants_more():
        shift = rep % len(order)
        rep += 1
        for side in order[shift:] + order[:shift]:
            gc.collect()
            if case.kind == "step":
                # A multi-threaded BLAS or OpenMP call leaves its worker threads spinning for a
                # while (OpenBLAS: ~0.1 s), taking a core from whichever side runs next: let
                # them go idle. Then one untimed step, so the timed one runs as a training
                # loop's steps do, right after another (a step started on idle cores and
                # caches another side filled measured up to 1.2x slower).
                time.sleep(STEP_SETTLE_SECONDS)
                runners[side]()
            start = time.perf_counter()
            runners[side]()
            times[side].append(time.perf_counter() - start)
    runners.clear()
    gc.collect()

    limit = None
    if _LIMIT in times:
        limit = _summary(times.pop(_LIMIT))
        limit["images_per_s"] = case.batch / limit["median_s"]
        limit["gflops"] = case.flops / limit["median_s"] / 1e9
    sides: dict[str, dict[str, Any]] = {}
    for side in times:
        stats = _summary(times[side])
        stats["times_s"] = times[side]
        stats["images_per_s"] = case.batch / stats["median_s"]
        stats["gflops"] = None if case.flops is None else case.flops / stats["median_s"] / 1e9
        if limit is not None:
            stats["limit_fraction"] = limit["median_s"] / stats["median_s"]
        if values[side] is not None:
            stats["loss"] = values[side]
        sides[side] = stats
    for key, against in (("ratio", BASELINE), ("vs_pytorch", COMPARED)):
        if against in sides:
            for stats in sides.values():
                # ratio: median / ref-fast's (lower is faster); vs_pytorch: PyTorch's median /
                # this one (the speed-up over PyTorch, higher is faster).
                stats[key] = (stats["median_s"] / sides[against]["median_s"] if key == "ratio"
                              else sides[against]["median_s"] / stats["median_s"])
    return {"name": case.name, "kind": case.kind, "phase": case.phase, "batch": case.batch, "dtype": case.dtype,
            "flops": case.flops, "sides": sides, "gemm_limit": limit}


_LIMIT = "gemm limit"


# -------------------------------------------------------------------- peak memory

def _memory_kib(field_name: str) -> float | None:
    """A memory figure of this process from /proc/self/status (Linux), in KiB, or None."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field_name + ":"):
                    return float(line.split()[1])
    except OSError:
        pass
    return None


def _peak_rss_child(side: str, batch: int, steps: int, hidden_dim: int) -> None:
    """Run in a fresh process: build the net, run a few steps, print memory figures as JSON."""
    import numpy as np

    from autocnn.training.allocator import keep_freed_memory

    keep_freed_memory()  # the memory a training run holds with the setting autocnn train uses
    rng = np.random.RandomState(7)
    X, y = rng.randn(batch, 3, 32, 32).astype("float32"), rng.randint(10, size=batch)
    models = _net_65_models("float32", hidden_dim)
    if side == COMPARED:
        from autocnn.tools.bench_torch import torch_trainer

        step = torch_trainer(models["autocnn"](), X, y)
    else:
        model, configs = models[side](), {}

        def step():
            _train_step(model, X, y, configs)
    before = _memory_kib("VmRSS")
    try:  # restart the high-water mark so it covers the steps (Linux >= 4.0)
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
    except OSError:
        pass
    for _ in range(steps):
        step()
    peak = _memory_kib("VmHWM")
    if peak is None or before is None:  # not Linux: the whole-process peak, setup included
        import resource

        peak = before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (1024.0 if sys.platform == "darwin" else 1.0)
    print(json.dumps({"peak_rss_mb": peak / 1024.0, "before_steps_mb": before / 1024.0}))


def measure_peak_memory(side: str, batch: int, steps: int = 2, hidden_dim: int = NET_65["hidden_dim"],
                        timeout: float = 600.0) -> dict[str, float]:
    """
    Peak resident memory of a fresh Python process that builds the >65% net (side
    'ref-fast', 'autocnn' or 'pytorch') and runs `steps` training steps at `batch` images
    (float32). A fresh process, because the
    peak of one that has already run other benchmarks says nothing about a step.

    Returns:
    - {'peak_rss_mb': the process's peak resident memory during the steps (interpreter,
      libraries, data and params included), 'before_steps_mb': resident memory just before
      the first step, 'steps_mb': the difference, what the steps add at their peak}
    """
    code = f"import autocnn.tools.bench as b; b._peak_rss_child({side!r}, {int(batch)}, {int(steps)}, {int(hidden_dim)})"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"peak-memory child for {side} failed: {done.stderr.strip().splitlines()[-1:]}")
    measured = json.loads(done.stdout.strip().splitlines()[-1])
    measured["steps_mb"] = measured["peak_rss_mb"] - measured["before_steps_mb"]
    return measured


# ----------------------------------------------------------------------- targets

def _find(results: dict, name: str, phase: str, batch: int, dtype: str) -> dict | None:
    for case in results["cases"]:
        if case["name"] == name and case["phase"] == phase and case["batch"] == batch and case["dtype"] == dtype:
            return case
    return None


def evaluate_targets(results: dict) -> list[dict[str, Any]]:
    """
    The issue's targets, checked against a full run (a quick run's sizes differ, so most
    targets are then reported as not measured).

    Returns a list of {'target', 'goal', 'value', 'met'} (met is None when not measured).
    """
    checks: list[dict[str, Any]] = []

    def check(target: str, goal: str, value: float | None, met: bool | None, unit: str = "") -> None:
        shown = None if value is None else f"{value:.2f}{unit}"
        checks.append({"target": target, "goal": goal, "value": value, "shown": shown, "met": met})

    step_cases = [(NET_65_NAME, "3-layer net", 1000, "float32"), (NET_65_NAME, "3-layer net", 50, "float32"),
                  (NET_65_NAME, "3-layer net", 50, "float64"), (DEEP_NAME, "ConvNet", 100, "float32")]
    for name, short, batch, dtype in step_cases:
        case = _find(results, name, "train step", batch, dtype)
        ratio = None if case is None else case["sides"].get("autocnn", {}).get("ratio")
        check(f"step {short} batch {batch} {dtype}: autocnn / ref-fast", f"<= {STEP_RATIO_TARGET}",
              ratio, None if ratio is None else ratio <= STEP_RATIO_TARGET, "x")
    for batch, goal in IMAGES_PER_S_TARGET.items():
        case = _find(results, NET_65_NAME, "train step", batch, "float32")
        rate = None if case is None else case["sides"]["autocnn"]["images_per_s"]
        check(f"autocnn images/s, 3-layer net batch {batch} float32", f">= {goal:.0f}", rate,
              None if rate is None else rate >= goal)
    installed = results.get("machine", {}).get("torch") is not None
    for (name, batch, dtype), goal in SPEEDUP_OVER_PYTORCH_TARGETS.items():
        case = _find(results, name, "train step", batch, dtype)
        speedup = None if case is None else case["sides"].get("autocnn", {}).get("vs_pytorch")
        short = "3-layer net" if name == NET_65_NAME else "ConvNet"
        check(f"step {short} batch {batch} {dtype}: speed-up over PyTorch", f">= {goal}", speedup,
              None if speedup is None else speedup >= goal, "x")
    case = _find(results, NET_65_NAME, "train step", 1000, "float32")
    fraction = None if case is None else case["sides"]["autocnn"].get("limit_fraction")
    check("step 3-layer net batch 1000 float32: fraction of the GEMM limit", f">= {GEMM_LIMIT_FRACTION_TARGET}",
          fraction, None if fraction is None else fraction >= GEMM_LIMIT_FRACTION_TARGET)
    memory = results.get("peak_memory") or {}
    full_size = memory.get("batch") == 1000 and memory.get("hidden_dim") == NET_65["hidden_dim"]
    growth = None
    if full_size and "autocnn" in memory and COMPARED in memory:
        growth = memory["autocnn"]["steps_mb"] / memory[COMPARED]["steps_mb"]
    check("peak growth of a batch-1000 step: autocnn / PyTorch", f"<= {STEP_MEMORY_VS_PYTORCH_TARGET}", growth,
          None if growth is None else growth <= STEP_MEMORY_VS_PYTORCH_TARGET, "x")
    if not installed:  # say why these are not measured
        for target in checks:
            if "PyTorch" in target["target"]:
                target["shown"] = "torch not installed"
    if memory.get("batch") == 1000 and memory.get("hidden_dim") == NET_65["hidden_dim"] and "autocnn" in memory:
        peak = memory["autocnn"]["peak_rss_mb"]
        check("autocnn peak RSS, batch-1000 step", f"<= {PEAK_MEMORY_TARGET_MB:.0f} MB", peak,
              peak <= PEAK_MEMORY_TARGET_MB, " MB")
    else:
        check("autocnn peak RSS, batch-1000 step", f"<= {PEAK_MEMORY_TARGET_MB:.0f} MB", None, None)
    for batch in (1000, 50):
        case = _find(results, NET_65_NAME, "train step", batch, "float32")
        speedup = None
        if case is not None and "autograd-convolve" in case["sides"]:
            speedup = case["sides"]["autograd-convolve"]["median_s"] / case["sides"]["autocnn"]["median_s"]
        check(f"autocnn speed-up over the autograd-convolve net (batch {batch} f32 step)",
              f">= {CONVOLVE_SPEEDUP_TARGET:.0f}x", speedup,
              None if speedup is None else speedup >= CONVOLVE_SPEEDUP_TARGET, "x")
    for batch, prototype_ms in PROTOTYPE_STEP_MS.items():
        case = _find(results, NET_65_NAME, "train step", batch, "float32")
        ratio = None if case is None else 1e3 * case["sides"]["ref-fast"]["median_s"] / prototype_ms
        check(f"ref-fast step batch {batch} / numpy prototype ({prototype_ms:.0f} ms)",
              f"<= {REFERENCE_VS_PROTOTYPE_TARGET}", ratio,
              None if ratio is None else ratio <= REFERENCE_VS_PROTOTYPE_TARGET, "x")
    return checks


def speedup_floors(results: dict) -> list[dict[str, Any]]:
    """
    What each speed-up-over-PyTorch target asks of this machine: the step time it allows
    (PyTorch's median / the goal) against the same step's GEMMs alone with numpy's BLAS
    (the GEMM limit, timed in the same rotation). Where the allowed time is below the GEMMs
    alone, no change outside the BLAS can meet the target here.

    Returns a list, one per target whose case ran with PyTorch and a GEMM limit, of
    {'target', 'goal', 'pytorch_ms', 'allowed_ms', 'gemms_ms', 'left_ms' (allowed minus
    GEMMs: what everything else may take), 'autocnn_beyond_gemms_ms' (autocnn's median
    minus the GEMMs: what everything else takes now, None without autocnn), 'reachable'
    (allowed > GEMMs)}.
    """
    floors = []
    for (name, batch, dtype), goal in SPEEDUP_OVER_PYTORCH_TARGETS.items():
        case = _find(results, name, "train step", batch, dtype)
        if case is None or COMPARED not in case["sides"] or not case.get("gemm_limit"):
            continue
        pytorch_ms = 1e3 * case["sides"][COMPARED]["median_s"]
        gemms_ms = 1e3 * case["gemm_limit"]["median_s"]
        allowed_ms = pytorch_ms / goal
        autocnn = case["sides"].get("autocnn")
        short = "3-layer net" if name == NET_65_NAME else "ConvNet"
        floors.append({"target": f"step {short} batch {batch} {dtype}: speed-up over PyTorch", "goal": goal,
                       "pytorch_ms": pytorch_ms, "allowed_ms": allowed_ms, "gemms_ms": gemms_ms,
                       "left_ms": allowed_ms - gemms_ms,
                       "autocnn_beyond_gemms_ms": None if autocnn is None else 1e3 * autocnn["median_s"] - gemms_ms,
                       "reachable": allowed_ms > gemms_ms})
    return floors


# ------------------------------------------------------------------------ running

#: A full run repeats a case until its fastest side has run this long (5 to MAX_REPEATS times).
MIN_SECONDS_FASTEST_SIDE = 1.0
#: Pause before each side's pair of training steps (one untimed, one timed), so no other
#: side's idle threads are still spinning on the cores.
STEP_SETTLE_SECONDS = 0.15
MAX_REPEATS = 25
CASE_SECONDS_FOR_EXTRA_REPEATS = 30.0


def _repetitions(settings: dict[str, Any]) -> str:
    """How many repetitions the table says were made, from the run's settings."""
    least, most = settings["repeats"], settings.get("max_repeats", settings["repeats"])
    if most <= least:
        return str(least)
    return f"{least}–{most} (until the fastest side has run {settings['min_seconds_fastest_side']:g} s)"


def run_benchmark(quick: bool = False, repeats: int | None = None, memory: bool = True,
                  only: str | None = None, progress: Callable[[str], None] | None = None,
                  bar: bool = False) -> dict[str, Any]:
    """
    Run the benchmark and return its results.

    Inputs:
    - quick: Tiny sizes and few repetitions (a smoke test, well under a minute); the
      numbers then say nothing about speed
    - repeats: Timed repetitions per side, after one warm-up (default: 2 quick; full: 5 to
      MAX_REPEATS, until the fastest side has run MIN_SECONDS_FASTEST_SIDE)
    - memory: Also measure the peak RSS of batch-1000 steps (batch 50 when quick)
    - only: Run only the cases whose name contains this text, or one of several texts
      separated by commas ('memory' keeps the peak-memory runs)
    - progress: Called with a line of text as each case finishes (e.g. print)
    - bar: Show a progress bar over the cases (tqdm: on stderr in a terminal, a widget
      in Jupyter); progress lines are then printed above it

    Returns a JSON-friendly dict:
    - machine: see `machine_info`, plus blas_kernel (OpenBLAS's CPU kernel, where known),
      blas_threads and torch (its version, None when not installed); settings: quick, repeats
    - cases: one dict per case (see `time_case`)
    - rows: per case with both sides, {name, reference_ms, autocnn_ms, ratio}
    - peak_memory: {'batch', 'hidden_dim', side: {'peak_rss_mb', 'before_steps_mb', 'steps_mb'}}
      for ref-fast, autocnn and (when installed) pytorch, or None
    - targets: see `evaluate_targets`
    - speedup_floors: see `speedup_floors`
    """
    from autocnn.training.allocator import keep_freed_memory

    # A full run without --repeats: at least 5 repetitions, more for fast cases (time_case).
    adaptive = repeats is None and not quick
    repeats = repeats or (2 if quick else 5)
    min_seconds, max_repeats = (MIN_SECONDS_FASTEST_SIDE, MAX_REPEATS) if adaptive else (0.0, repeats)
    started = time.perf_counter()
    # As autocnn train runs (see autocnn.training.allocator); every side of every case shares it.
    keeps_freed_memory = keep_freed_memory()
    from autocnn.core.blockwise import blas_threads
    from autocnn.tools import bench_torch

    torch_version = bench_torch.torch_version()
    machine = dict(machine_info(), blas_kernel=bench_torch.blas_kernel(), blas_threads=blas_threads(),
                   torch=torch_version)
    results: dict[str, Any] = {"machine": machine,
                               "settings": {"quick": quick, "repeats": repeats, "max_repeats": max_repeats,
                                            "min_seconds_fastest_side": min_seconds,
                                            "keeps_freed_memory": keeps_freed_memory},
                               "cases": []}
    from tqdm.auto import tqdm

    cases = [case for build in (_layer_cases, _step_cases) for case in build(quick)
             if not only or any(part in case.name for part in only.split(","))]
    with tqdm(total=len(cases), desc="benchmark", unit="case", disable=not bar, file=sys.stderr) as shown:
        for case in cases:
            shown.set_postfix_str(f"{case.name} {case.phase} N={case.batch}")
            timed = time_case(case, repeats, min_seconds, max_repeats)
            results["cases"].append(timed)
            if progress:
                with tqdm.external_write_mode(file=sys.stderr):  # the line goes above the bar
                    progress(_progress_line(timed))
            shown.update()
    results["peak_memory"] = None
    if memory and (not only or "memory" in only.split(",")):
        batch, hidden_dim = (50, QUICK_HIDDEN_DIM) if quick else (1000, NET_65["hidden_dim"])
        results["peak_memory"] = {"batch": batch, "hidden_dim": hidden_dim}
        for side in ("ref-fast", "autocnn") + ((COMPARED,) if torch_version else ()):
            results["peak_memory"][side] = measure_peak_memory(side, batch, hidden_dim=hidden_dim)
            if progress:
                progress(f"peak RSS, batch {batch} steps, {side}: {results['peak_memory'][side]['peak_rss_mb']:.0f} MB")
    results["rows"] = [
        {"name": f"{case['name']} {case['phase']} N={case['batch']} {case['dtype']}",
         "reference_ms": 1e3 * case["sides"][BASELINE]["median_s"],
         "autocnn_ms": 1e3 * case["sides"]["autocnn"]["median_s"],
         "ratio": case["sides"]["autocnn"]["ratio"]}
        for case in results["cases"] if BASELINE in case["sides"] and "autocnn" in case["sides"]
    ]
    results["targets"] = evaluate_targets(results)
    results["speedup_floors"] = speedup_floors(results)
    results["machine"]["load_average_end"] = load_average()
    results["wall_time_s"] = time.perf_counter() - started
    return results


def _progress_line(case: dict) -> str:
    parts = [f"{side} {1e3 * stats['median_s']:.1f} ms" for side, stats in case["sides"].items()]
    return f"{case['name']} | {case['phase']} | N={case['batch']} {case['dtype']}: " + ", ".join(parts)


def _ms(seconds: float) -> str:
    ms = 1e3 * seconds
    return f"{ms:.0f}" if ms >= 100 else f"{ms:.1f}" if ms >= 1 else f"{ms:.2f}"


def format_table(results: dict) -> str:
    """
    The results as Markdown: one row per case and side (median, min-max, ratio to
    ref-fast, speed-up over PyTorch, images/s, GFLOP/s, fraction of the GEMM limit), then
    each step's GEMM limit, peak memory, the targets, and what each speed-up target
    allows against the GEMMs alone (`speedup_floors`).
    """
    machine = results["machine"]
    torch_version = machine.get("torch")
    kernel = machine.get("blas_kernel")
    lines = [
        f"Machine: {machine['cpu']}, {machine['cores']} cores; Python {machine['python']}, numpy "
        f"{machine['numpy']} ({machine['blas']}{f', {kernel} kernel' if kernel else ''}, "
        f"{machine.get('blas_threads', '?')} threads), scipy {machine['scipy']}, autograd {machine['autograd']}; "
        f"PyTorch {torch_version or 'not installed'}; "
        f"BLAS env: {machine['blas_env'] or 'none set'}; load average at start "
        f"{_load(machine.get('load_average_start'))}, at end {_load(machine.get('load_average_end'))}.",
        f"{_repetitions(results['settings'])} interleaved repetitions per side after a warm-up (a training "
        f"step: a {STEP_SETTLE_SECONDS:g} s pause, one untimed step, then the timed one)"
        f"{' (quick run: tiny sizes, the times mean nothing)' if results['settings']['quick'] else ''}; "
        "ratio = median / ref-fast median (lower is faster); x PyTorch = PyTorch's median / the side's (higher is "
        "faster; training steps only); % limit = the step's GEMMs alone / the side's median; malloc "
        f"{'keeps freed memory (autocnn.training.allocator, as in autocnn train)' if results['settings'].get('keeps_freed_memory') else 'as the C library defaults'}.",
        "",
        "| case | pass | N | dtype | side | median ms | min–max ms | ratio | x PyTorch | img/s | GFLOP/s | % limit |",
        "|---|---|---:|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for case in results["cases"]:
        for side, stats in case["sides"].items():
            ratio, gflops, vs, fraction = (stats.get(key) for key in ("ratio", "gflops", "vs_pytorch", "limit_fraction"))
            if vs is not None:
                shown_vs = f"{vs:.2f}"
            else:
                shown_vs = NOT_INSTALLED if case["kind"] == "step" and not torch_version else "–"
            lines.append(
                f"| {case['name']} | {case['phase']} | {case['batch']} | {case['dtype']} | {side} | "
                f"{_ms(stats['median_s'])} | {_ms(stats['min_s'])}–{_ms(stats['max_s'])} | "
                f"{'–' if ratio is None else f'{ratio:.2f}'} | {shown_vs} | {stats['images_per_s']:.0f} | "
                f"{'–' if gflops is None else f'{gflops:.1f}'} | "
                f"{'–' if fraction is None else f'{100 * fraction:.0f}%'} |"
            )
    limits = [case for case in results["cases"] if case.get("gemm_limit")]
    if limits:
        lines += ["", "GEMM limit of each training step: its matrix products alone (autocnn.tools.bench.step_gemms), "
                      "on contiguous operands, timed in the same rotation as the sides:", "",
                  "| case | N | dtype | MFLOP / image | GEMMs median ms | GFLOP/s | limit img/s |",
                  "|---|---:|---|---:|---:|---:|---:|"]
        for case in limits:
            limit = case["gemm_limit"]
            lines.append(f"| {case['name']} | {case['batch']} | {case['dtype']} | {case['flops'] / case['batch'] / 1e6:.1f} "
                         f"| {_ms(limit['median_s'])} | {limit['gflops']:.1f} | {limit['images_per_s']:.0f} |")
    memory = results.get("peak_memory")
    if memory:
        lines += ["", f"Peak memory of a fresh process running batch-{memory['batch']} float32 steps of the 3-layer net "
                      f"(hidden {memory['hidden_dim']}):", "",
                  "| side | peak RSS MB | before the steps MB | added by the steps MB |", "|---|---:|---:|---:|"]
        for side in ("ref-fast", "autocnn", COMPARED):
            if side in memory:
                m = memory[side]
                lines.append(f"| {side} | {m['peak_rss_mb']:.0f} | {m['before_steps_mb']:.0f} | {m['steps_mb']:.0f} |")
            elif side == COMPARED:
                lines.append(f"| {side} | {NOT_INSTALLED} | | |")
    lines += ["", "| target | goal | measured | met |", "|---|---|---:|---|"]
    for target in results.get("targets", []):
        met = {True: "yes", False: "**no**", None: "not measured"}[target["met"]]
        lines.append(f"| {target['target']} | {target['goal']} | {target['shown'] or '–'} | {met} |")
    floors = results.get("speedup_floors")
    if floors:
        lines += ["", "What each speed-up target over PyTorch allows here: PyTorch's median / the goal, against the "
                      "step's GEMMs alone with numpy's BLAS (above). Below that floor no change outside the BLAS "
                      "meets the target.", "",
                  "| target | PyTorch ms | allowed ms | GEMMs alone ms | left for the rest ms | autocnn's rest now ms "
                  "| reachable with this BLAS |", "|---|---:|---:|---:|---:|---:|---|"]
        for floor in floors:
            rest = floor["autocnn_beyond_gemms_ms"]
            lines.append(f"| {floor['target']} (>= {floor['goal']}x) | {floor['pytorch_ms']:.0f} | "
                         f"{floor['allowed_ms']:.0f} | {floor['gemms_ms']:.0f} | {floor['left_ms']:.0f} | "
                         f"{'–' if rest is None else f'{rest:.0f}'} | {_reachability(floor)} |")
    return "\n".join(lines) + "\n"


def _reachability(floor: dict[str, Any]) -> str:
    """The last column of the floors table: whether, and at what cost, the GEMMs leave room for the target."""
    rest, left = floor["autocnn_beyond_gemms_ms"], floor["left_ms"]
    if not floor["reachable"]:
        return "**no**: below the GEMM floor"
    if rest is None or rest <= left:
        return "yes"
    # A bare "yes" read as a promise when 1 ms was left for 120 ms of everything else.
    return f"only with everything but the GEMMs {rest / left:.0f}x faster"


def _load(values) -> str:
    return "n/a" if not values else "/".join(f"{v:.1f}" for v in values)
