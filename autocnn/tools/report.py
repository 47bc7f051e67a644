"""``autocnn report``: a teaching report, autocnn (forward only) beside reference (hand-written).

For every layer of the notebook and for the two models it writes, into one folder, a
Markdown report with PNG figures:

* lines of code: autocnn's forward-only op against reference's forward + backward;
* gradient agreement: autograd's gradient, the hand-written one and the notebook's
  numerical one (centred differences, ``autocnn.tools.gradcheck``), pairwise;
* speed: the benchmark of ``autocnn.tools.bench`` (not re-implemented here), as a table and a
  bar chart of the time ratios autocnn / reference;
* why numerical gradients need loose tolerances: the error of centred differences
  against autograd's exact gradient as the step h goes from 1e-1 to 1e-10, for a smooth
  function and for functions with ReLU / max kinks.

The inputs are the cases of ``autocnn.tools.check`` (the first case of each layer), so the
report and the checker exercise the same shapes.
"""

from __future__ import annotations

import ast
import copy
import importlib
import inspect
import os
import platform
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from autocnn.tools import plots

DEFAULT_OUT = Path("experiments/results/report")
BENCH_FILE = "bench.json"  # the benchmark's raw results, written beside the report
NUMERICAL_H = 1e-5  # the notebook's step for layer gradient checks
MODEL_H = 1e-6  # and the one its model gradient-check cell uses


# ------------------------------------------------------------------ lines of code

def _resolve(dotted: str) -> Any:
    """Import 'package.module.attr[.attr]' and return the object, or None if absent."""
    parts = dotted.split(".")
    for split in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:split]))
        except ImportError:
            continue
        try:
            for attr in parts[split:]:
                obj = getattr(obj, attr)
        except AttributeError:
            return None
        return obj
    return None


def count_code_lines(source: str) -> int:
    """
    Lines of code in Python source: no blank lines, comment lines or docstrings.

    For a single function or method only its body counts (not the signature, whose
    line count depends on formatting), so that both sides are counted alike.

    Inputs:
    - source: Source text (a module, or a function / class from inspect.getsource)

    Returns:
    - count: Number of lines that hold code
    """
    source = textwrap.dedent(source)
    tree = ast.parse(source)
    skipped: set[int] = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and body:
            first = body[0]
            if isinstance(first, ast.Expr) and isinstance(getattr(first, "value", None), ast.Constant) \
                    and isinstance(first.value.value, str):
                skipped.update(range(first.lineno, first.end_lineno + 1))
    start = 1
    if len(tree.body) == 1 and isinstance(tree.body[0], (ast.FunctionDef, ast.AsyncFunctionDef)):
        function = tree.body[0]
        start = function.body[0].lineno  # the signature is not code to maintain
    count = 0
    for number, line in enumerate(source.splitlines(), start=1):
        text = line.strip()
        if number >= start and text and not text.startswith("#") and number not in skipped:
            count += 1
    return count


def code_lines(dotted_names: tuple[str, ...]) -> tuple[int, list[str]]:
    """Total code lines of the named functions / modules, and the names not found."""
    total, missing = 0, []
    for name in dotted_names:
        obj = _resolve(name)
        if obj is None:
            missing.append(name)
            continue
        total += count_code_lines(inspect.getsource(obj))
    return total, missing


@dataclass(frozen=True)
class LayerPair:
    """
    One layer as written on each side.

    - label: Row name in the report
    - forward: Name of the notebook forward (the autocnn.tools.check spec whose cases are used)
    - autocnn: Dotted names of autocnn's forward-only code for it
    - reference: Dotted names of reference's forward + backward (+ private helpers)
    """

    label: str
    forward: str
    autocnn: tuple[str, ...]
    reference: tuple[str, ...]


_REF_L, _REF_C, _REF_F = "reference.layers.", "reference.conv_layers.", "reference.fast_layers."
LAYER_PAIRS: tuple[LayerPair, ...] = (
    LayerPair("affine", "affine_forward", ("autocnn.core.ops.affine",),
              (_REF_L + "affine_forward", _REF_L + "affine_backward")),
    LayerPair("relu", "relu_forward", ("autocnn.core.ops.relu",), (_REF_L + "relu_forward", _REF_L + "relu_backward")),
    LayerPair("batchnorm", "batchnorm_forward", ("autocnn.core.ops.batchnorm",),
              (_REF_L + "batchnorm_forward", _REF_L + "batchnorm_backward", _REF_L + "_batchnorm_param_grads")),
    LayerPair("dropout", "dropout_forward", ("autocnn.core.ops.dropout", "autocnn.core.ops.dropout_mask"),
              (_REF_L + "dropout_forward", _REF_L + "dropout_backward")),
    LayerPair("softmax loss", "softmax_loss", ("autocnn.core.ops.softmax_loss",), (_REF_L + "softmax_loss",)),
    LayerPair("svm loss", "svm_loss", ("autocnn.core.ops.svm_loss", "autocnn.core.ops.relu"), (_REF_L + "svm_loss",)),
    LayerPair("conv (naive)", "conv_forward_naive", ("autocnn.core.ops.conv2d",),
              (_REF_C + "conv_forward_naive", _REF_C + "conv_backward_naive", _REF_C + "_output_size")),
    LayerPair("conv (fast)", "conv_forward_fast", ("autocnn.core.ops.conv2d",),
              (_REF_F + "conv_forward_fast", _REF_F + "conv_backward_fast", _REF_F + "_pad_spatial",
               _REF_F + "_sliding_windows", _REF_F + "_offset_slice")),
    LayerPair("max pool (naive)", "max_pool_forward_naive", ("autocnn.core.ops.max_pool2d",),
              (_REF_C + "max_pool_forward_naive", _REF_C + "max_pool_backward_naive")),
    LayerPair("max pool (fast)", "max_pool_forward_fast", ("autocnn.core.ops.max_pool2d",),
              (_REF_F + "max_pool_forward_fast", _REF_F + "max_pool_backward_fast", _REF_F + "_pool_geometry")),
    LayerPair("spatial batchnorm", "spatial_batchnorm_forward", ("autocnn.core.ops.spatial_batchnorm",),
              (_REF_C + "spatial_batchnorm_forward", _REF_C + "spatial_batchnorm_backward")),
)
# autocnn's models share one forward (ConvNet.forward) and one loss; reference writes
# each model's forward and backward out.
_AUTOCNN_MODEL = ("autocnn.core.models.ConvNet.forward", "autocnn.core.models.ConvNet.loss")
MODEL_PAIRS: tuple[tuple[str, tuple[str, ...], tuple[str, ...]], ...] = (
    ("ThreeLayerConvNet", _AUTOCNN_MODEL, ("reference.cnn.ThreeLayerConvNet.loss",)),
    ("FullyConnectedNet", _AUTOCNN_MODEL, ("reference.fc_net.FullyConnectedNet.loss",)),
)
SHARED_AUTOCNN = ("autocnn.core.derive", "autocnn.core.primitives")


def lines_of_code() -> dict:
    """Code lines per layer and model on both sides, plus autocnn's shared machinery."""
    layers = []
    for pair in LAYER_PAIRS:
        mine, mine_missing = code_lines(pair.autocnn)
        theirs, their_missing = code_lines(pair.reference)
        layers.append({"layer": pair.label, "autocnn": mine, "reference": theirs,
                       "autocnn_functions": [n for n in pair.autocnn if n not in mine_missing],
                       "reference_functions": [n for n in pair.reference if n not in their_missing]})
    models = []
    for label, mine_names, their_names in MODEL_PAIRS:
        models.append({"model": label, "autocnn": code_lines(mine_names)[0], "reference": code_lines(their_names)[0]})
    sandwiches = {"autocnn": code_lines(("autocnn.core.layer_utils",))[0],
                  "reference": code_lines(("reference.layer_utils",))[0]}
    shared = {name: code_lines((name,))[0] for name in SHARED_AUTOCNN}
    return {"layers": layers, "sandwiches": sandwiches, "models": models, "shared": shared}


# ------------------------------------------------------------ gradient agreement

def _reference_namespace() -> dict[str, Callable]:
    names: dict[str, Callable] = {}
    for module in ("reference.layers", "reference.conv_layers", "reference.fast_layers", "reference.layer_utils"):
        for name, value in vars(importlib.import_module(module)).items():
            if callable(value) and not name.startswith("_"):
                names.setdefault(name, value)
    return names


def _differentiable(spec) -> list[int]:
    """Positions of the array inputs a layer is differentiated with respect to."""
    return [i for i, name in enumerate(spec.arg_names) if not name.endswith("_param") and name != "y"]


def layer_agreement(seed: int = 0) -> list[dict]:
    """
    Per layer and gradient: rel. errors autograd vs hand-written vs numerical.

    The inputs are the first case of the layer in ``autocnn.tools.check``; the numerical
    gradient is ``eval_numerical_gradient_array`` (or ``eval_numerical_gradient`` for a
    loss) of the reference forward with the notebook's h = 1e-5.

    Returns:
    - rows: dicts with layer, grad, case, autograd_vs_reference, autograd_vs_numerical,
      reference_vs_numerical
    """
    import autocnn.core.layers
    from autocnn.tools import check
    from autocnn.tools.gradcheck import eval_numerical_gradient, eval_numerical_gradient_array, rel_error

    reference = _reference_namespace()
    specs = {spec.forward: spec for spec in check.LAYER_SPECS}
    rows = []
    for pair in LAYER_PAIRS:
        spec = specs[pair.forward]
        rng = np.random.RandomState(seed)
        case = spec.make_cases(rng)[0]
        args = lambda: copy.deepcopy(case.args)  # noqa: E731 - every call gets fresh inputs
        if spec.is_loss:
            x, y = args()
            autograd_grads = [getattr(autocnn.core.layers, spec.forward)(x, y)[1]]
            hand_grads = [reference[spec.forward](x, y)[1]]
            numerical = [eval_numerical_gradient(lambda v: reference[spec.forward](v, y)[0], x.copy(),
                                                 verbose=False, h=NUMERICAL_H)]
        else:
            out, cache = getattr(autocnn.core.layers, spec.forward)(*args())
            dout = rng.randn(*np.shape(out))
            autograd_grads = list(check.as_gradient_tuple(getattr(autocnn.core.layers, spec.backwards[0])(dout, cache),
                                                  len(spec.grads)))
            _, their_cache = reference[spec.forward](*args())
            hand_grads = list(check.as_gradient_tuple(reference[spec.backwards[0]](dout, their_cache), len(spec.grads)))
            numerical = []
            for index in _differentiable(spec):
                base = args()

                def forward_at(value, index=index, base=base):
                    inputs = list(copy.deepcopy(base))
                    inputs[index] = value
                    return reference[spec.forward](*inputs)[0]

                numerical.append(eval_numerical_gradient_array(forward_at, base[index].copy(), dout, h=NUMERICAL_H))
        for grad, mine, theirs, approx in zip(spec.grads, autograd_grads, hand_grads, numerical):
            rows.append({"layer": pair.label, "grad": grad, "case": case.label,
                         "autograd_vs_reference": rel_error(mine, theirs),
                         "autograd_vs_numerical": rel_error(mine, approx),
                         "reference_vs_numerical": rel_error(theirs, approx)})
    return rows


def model_agreement(seed: int = 0) -> list[dict]:
    """
    The notebook's gradient-check cell for both models, three ways.

    Each model (the second case of ``autocnn.tools.check``, with reg > 0) gets the same random
    float64 params on both sides; the numerical gradient is ``eval_numerical_gradient``
    of the reference loss with the notebook's h = 1e-6.

    Returns:
    - rows: dicts with model, param, autograd_vs_reference, autograd_vs_numerical,
      reference_vs_numerical, plus a 'loss' row comparing the two losses
    """
    import autocnn.core.models
    import reference.cnn
    import reference.fc_net
    from autocnn.tools import check
    from autocnn.tools.gradcheck import eval_numerical_gradient, rel_error

    theirs_by_name = {"ThreeLayerConvNet": reference.cnn.ThreeLayerConvNet,
                      "FullyConnectedNet": reference.fc_net.FullyConnectedNet}
    rows = []
    for spec in check.MODEL_SPECS:
        case = spec.cases[1]
        rng = np.random.RandomState(seed)
        mine = getattr(autocnn.core.models, spec.name)(**case.kwargs, dtype=np.float64)
        theirs = theirs_by_name[spec.name](**case.kwargs, dtype=np.float64)
        params = check.draw_model_params(rng, {name: value.shape for name, value in mine.params.items()})
        for name, value in params.items():
            mine.params[name], theirs.params[name] = value.copy(), value.copy()
        X = rng.randn(case.num_examples, *case.input_shape)
        y = rng.randint(case.kwargs["num_classes"], size=case.num_examples)
        my_loss, my_grads = mine.loss(X, y)
        their_loss, their_grads = theirs.loss(X, y)
        rows.append({"model": spec.name, "param": "loss", "autograd_vs_reference": rel_error(my_loss, their_loss),
                     "autograd_vs_numerical": None, "reference_vs_numerical": None})
        for name in mine.params:
            numerical = eval_numerical_gradient(lambda _: theirs.loss(X, y)[0], theirs.params[name],
                                                verbose=False, h=MODEL_H)
            rows.append({"model": spec.name, "param": name, "case": case.label,
                         "autograd_vs_reference": rel_error(my_grads[name], their_grads[name]),
                         "autograd_vs_numerical": rel_error(my_grads[name], numerical),
                         "reference_vs_numerical": rel_error(their_grads[name], numerical)})
    return rows


# --------------------------------------------------------------- step size study

def step_size_study(quick: bool = False, seed: int = 0) -> dict:
    """
    Max relative error of centred differences against autograd's exact gradient, per h.

    Curves:
    - smooth: softmax loss of random scores (analytic everywhere)
    - ReLU kink: a ReLU layer with one input 2e-6 away from the kink at 0
    - max kink: a 2x2 max pool whose window holds two values 2e-4 apart
    - the notebook's gradient-check cell (ThreeLayerConvNet, 3 filters 3x3 on 3x16x16,
      hidden 7, weight scale 1e-3, N=2): W1 and W2 (W1 only when quick), where it
      reports ~1e-2

    Returns:
    - dict with 'h' (list of steps) and 'curves' (label -> list of errors)
    """
    import autograd
    import autograd.numpy as anp
    import reference.cnn

    import autocnn.core.models
    from autocnn.core import ops
    from autocnn.tools.gradcheck import eval_numerical_gradient, rel_error

    steps = np.logspace(-1, -10, 4 if quick else 19)
    rng = np.random.RandomState(seed)

    scores, labels = rng.randn(4, 6), rng.randint(6, size=4)
    relu_x, relu_dout = rng.randn(3, 5), rng.randn(3, 5)
    relu_x[1, 2] = 2e-6
    pool_x = rng.randn(1, 1, 2, 2)
    pool_x[0, 0, 1, 1] = pool_x.max() + 1.0
    pool_x[0, 0, 0, 1] = pool_x[0, 0, 1, 1] - 2e-4

    curves: dict[str, list[float]] = {}
    for label, f, point in [
        ("smooth: softmax loss", lambda x: ops.softmax_loss(x, labels), scores),
        ("ReLU with one input 2e-6 from its kink", lambda x: anp.sum(relu_dout * ops.relu(x)), relu_x),
        ("max pool with two values 2e-4 apart", lambda x: anp.sum(ops.max_pool2d(x, 2, 2, 2)), pool_x),
    ]:
        exact = autograd.grad(f)(point)
        curves[label] = [rel_error(eval_numerical_gradient(f, point.copy(), verbose=False, h=h), exact)
                         for h in steps]

    # The notebook's cell: weight scale 1e-3 keeps every activation tiny, so ReLU inputs
    # sit within reach of h and the loss (~2.3) dwarfs the change h * grad it must resolve.
    # Exact gradient: autocnn's; the function differenced: the same loss by reference's
    # numpy forward (the cheaper of the two; ~3000 evaluations per step).
    cell = dict(input_dim=(3, 16, 16), num_filters=3, filter_size=3, hidden_dim=7, dtype=np.float64)
    mine, theirs = autocnn.core.models.ThreeLayerConvNet(**cell), reference.cnn.ThreeLayerConvNet(**cell)
    for name, value in mine.params.items():
        drawn = 1e-3 * rng.randn(*value.shape) if name.startswith("W") else np.zeros(value.shape)
        mine.params[name], theirs.params[name] = drawn, drawn.copy()
    X, y = rng.randn(2, 3, 16, 16), rng.randint(10, size=2)
    exact_grads = mine.loss(X, y)[1]
    for name in ("W1",) if quick else ("W1", "W2"):  # W2 has 1344 entries: the slow one
        curves[f"notebook's ThreeLayerConvNet cell, {name}"] = [
            rel_error(eval_numerical_gradient(lambda _: theirs.loss(X, y)[0], theirs.params[name], verbose=False, h=h),
                      exact_grads[name]) for h in steps]
    return {"h": [float(h) for h in steps], "curves": curves}


# --------------------------------------------------------------------- speed

def _run_benchmark(quick: bool) -> dict | None:
    """autocnn.tools.bench's benchmark (its own timing code), or None when that module is absent."""
    run_benchmark = _resolve("autocnn.tools.bench.run_benchmark")
    # Peak memory is the benchmark's own business; the report only needs the timings.
    return None if run_benchmark is None else run_benchmark(quick=quick, memory=False)


# -------------------------------------------------------------------- figures

# ------------------------------------------------------------------- markdown

def _fmt(value: float | None) -> str:
    return "–" if value is None else f"{value:.1e}"


def _markdown(results: dict, figures: dict[str, str]) -> str:
    """The report: a header, then one section per study."""
    lines = _header_markdown(results)
    lines += _code_markdown(results["loc"], figures["loc"])
    lines += _gradients_markdown(results["layers"], results["models"])
    lines += ["## 3. Speed", ""]
    lines += _speed_markdown(results["speed"], figures.get("speed"), results["speed_asked"])
    lines += _step_size_markdown(results["step_size"], figures["step"])
    return "\n".join(lines)


def _header_markdown(results: dict) -> list[str]:
    return ["# autocnn vs reference: a teaching report", "",
            "autocnn writes every layer **forward only** (`autocnn/core/ops.py`, in `autograd.numpy`) and lets "
            "HIPS autograd derive the backward pass; `reference/` writes forward **and** backward by hand, "
            "like the notebook asks students to. This report puts the two side by side.", "",
            f"Generated by `autocnn report{' --quick' if results['quick'] else ''}` on {results['machine']} "
            f"(Python {platform.python_version()}, numpy {np.__version__}); seed {results['seed']}"
            + ("; section 3 redrawn from an earlier benchmark run (`--bench-json`)" if results["bench_reused"]
               else "") + ". Regenerate with `autocnn report` (add `--bench-json "
            f"{DEFAULT_OUT / BENCH_FILE}` to keep these timings instead of running the benchmark again).", ""]


def _code_markdown(loc: dict, figure: str) -> list[str]:
    """Section 1: lines of code per layer, forward only against forward + backward."""
    lines = ["## 1. Code to write", "",
              "Lines of code of each function body (blank lines, comments and docstrings not counted, "
              "signatures not counted), via `inspect.getsource`.", "",
              "| layer | autocnn forward op | reference forward + backward | ratio |", "|---|---:|---:|---:|"]
    for row in loc["layers"]:
        ratio = row["reference"] / row["autocnn"] if row["autocnn"] else float("nan")
        lines.append(f"| {row['layer']} | {row['autocnn']} | {row['reference']} | {ratio:.1f}× |")
    sandwich = loc["sandwiches"]
    lines.append(f"| layer_utils sandwiches (whole module, 6 pairs) | {sandwich['autocnn']} | "
                 f"{sandwich['reference']} | {sandwich['reference'] / sandwich['autocnn']:.1f}× |")
    for row in loc["models"]:
        lines.append(f"| **{row['model']}** (model `loss`) | {row['autocnn']}¹ | {row['reference']} | "
                     f"{row['reference'] / row['autocnn']:.1f}× |")
    total_mine = sum(r["autocnn"] for r in loc["layers"] if "(fast)" not in r["layer"])
    total_theirs = sum(r["reference"] for r in loc["layers"])
    lines += ["", f"Summed over the layers: {total_mine} lines of forward ops (conv and max pool counted once: "
              f"one op serves the naive and the fast names) against {total_theirs} hand-written lines.", "",
              "¹ autocnn's `ConvNet.forward` + `ConvNet.loss` are one code path for ThreeLayerConvNet, "
              "FullyConnectedNet and the deeper ConvNet (any depth, batchnorm, dropout, softmax or SVM), so it is "
              "longer than one hand-written model's `loss`; but each reference model also leans on the "
              "hand-written sandwich backwards above, and every new architecture needs a new hand-written backward "
              "pass. `ops.conv2d` likewise holds three formulations (fast windows, scipy correlate, autograd's "
              "convolve).", "",
              "What autocnn writes once for all layers instead: the generic VJP helper `autocnn/core/derive.py` "
              f"({loc['shared']['autocnn.core.derive']} lines) and `autocnn/core/primitives.py` "
              f"({loc['shared']['autocnn.core.primitives']} lines): the operators autograd cannot trace (window views, "
              "the patch matrix and its GEMM, scipy's correlation) or would make slow (the max-pool gather, "
              "batchnorm's per-channel sum, the weight decay's squared norm), almost all linear, with VJPs "
              "written with the same operators. Hand-written adjoints of linear maps are far easier to get right "
              "than backward passes of nonlinear layers, and `autograd.test_util.check_grads` tests them.", "",
              f"![lines of code]({figure})", ""]
    return lines


def _gradients_markdown(layers: list[dict], models: list[dict]) -> list[str]:
    """Section 2: gradient agreement three ways, per layer and per model parameter."""
    lines = ["## 2. Gradient agreement", "",
              "Relative error (the notebook's `rel_error`, max over elements) between autograd's gradient of "
              "the autocnn forward, reference's hand-written backward, and the numerical gradient "
              f"(`autocnn.tools.gradcheck`, centred differences, h = {NUMERICAL_H:g}) of the reference forward. "
              "Inputs: the first float64 case `autocnn check` draws for that layer.", "",
              "| layer | grad | autograd vs hand-written | autograd vs numerical | hand-written vs numerical |",
              "|---|---|---:|---:|---:|"]
    for row in layers:
        lines.append(f"| {row['layer']} | {row['grad']} | {_fmt(row['autograd_vs_reference'])} | "
                     f"{_fmt(row['autograd_vs_numerical'])} | {_fmt(row['reference_vs_numerical'])} |")
    worst_exact = max(r["autograd_vs_reference"] for r in layers)
    worst_numerical = max(r["autograd_vs_numerical"] for r in layers)
    lines += ["", f"autograd and the hand-written backward agree to {worst_exact:.1e} at worst: two exact "
              f"derivations, differing only in rounding. Both sit {worst_numerical:.0e} or closer to the numerical "
              "gradient, whose own truncation and rounding error dominate that column (section 4).", "",
              "### Models: the notebook's gradient-check cell, three ways", "",
              f"Same random float64 params on both sides, reg > 0; numerical gradient with h = {MODEL_H:g} as in "
              "the notebook's cell.", "",
              "| model | param | autograd vs hand-written | autograd vs numerical | hand-written vs numerical |",
              "|---|---|---:|---:|---:|"]
    for row in models:
        lines.append(f"| {row['model']} | {row['param']} | {_fmt(row['autograd_vs_reference'])} | "
                     f"{_fmt(row['autograd_vs_numerical'])} | {_fmt(row['reference_vs_numerical'])} |")
    lines.append("")
    return lines


def _step_size_markdown(study: dict, figure: str) -> list[str]:
    h = np.array(study["h"])
    curves = study["curves"]

    def at(label: str, step: float) -> float:
        return curves[label][int(np.argmin(np.abs(np.log10(h) - np.log10(step))))]

    lines = ["## 4. Why numerical gradients need loose tolerances", "",
             "Max relative error of centred differences `(f(x+h) - f(x-h)) / 2h` (`autocnn.tools.gradcheck`) against "
             "the exact gradient that autograd computes, for h from 1e-1 down to 1e-10 (float64).", "",
             f"![numerical gradient error vs step size]({figure})", "",
             "| function | best error (at h) | h = 1e-5 | h = 1e-6 | h = 1e-1 |", "|---|---:|---:|---:|---:|"]
    for label, errors in curves.items():
        best = int(np.argmin(errors))
        lines.append(f"| {label} | {errors[best]:.1e} ({h[best]:.0e}) | {at(label, 1e-5):.1e} | "
                     f"{at(label, 1e-6):.1e} | {errors[0]:.1e} |")
    smooth = next(label for label in curves if label.startswith("smooth"))
    cell = [label for label in curves if label.startswith("notebook")]
    cell_best = {label.rsplit(" ", 1)[-1]: min(curves[label]) for label in cell}
    cell_at = {label.rsplit(" ", 1)[-1]: at(label, 1e-6) for label in cell}
    lines += ["",
              f"- **Smooth**: the textbook V. Truncation error falls like h² until rounding error, about ε/h, takes "
              f"over; the best step is near 1e-5 ({min(curves[smooth]):.0e}).",
              "- **Kinks**: the difference quotient straddles the corner as soon as h exceeds the distance to it "
              "(2e-6 for the ReLU input; for the max pair, their gap of 2e-4), and the error jumps to order one "
              "whatever the step otherwise is. Below that distance the function is linear and the error is "
              "rounding only.",
              "- **The notebook's cell** has both problems at once. With weight scale 1e-3 the activations are "
              "tiny, so ReLU inputs sit within reach of h, and the W1 / W2 gradients are tiny next to the loss "
              "(about 2.3), so rounding, about ε·|L| / h, swamps them as h shrinks. No step does well: the best "
              + ", ".join(f"{name} error is {value:.0e}" for name, value in cell_best.items())
              + "; at the cell's h = 1e-6 they are "
              + " and ".join(f"{value:.0e} ({name})" for name, value in cell_at.items())
              + ". That is why the notebook accepts about 1e-2 for W1 and W2 (and 1e-5 elsewhere).",
              "",
              "autograd's gradient has neither problem: it is exact up to floating-point rounding of the same "
              "operations, which is why `autocnn check` can hold hand-written backward passes to 1e-6 in float64.",
              ""]
    return lines


def _speed_markdown(result: dict | None, figure: str | None, asked: bool = True) -> list[str]:
    if result is None:
        reason = "`autocnn.tools.bench` (the benchmark) is not available in this checkout" if asked else "--no-speed"
        return [f"Not measured ({reason}).", ""]
    machine = result.get("machine", {})
    load = machine.get("load_average_start")
    quick = result.get("settings", {}).get("quick")
    lines = [f"Times from `autocnn.tools.bench` (`run_benchmark`: interleaved repetitions, medians), reference's "
             f"hand-written fast layers against autocnn's default formulation with autograd's backward; "
             f"{machine.get('cpu', '?')}, {machine.get('cores', '?')} cores"
             + (f", load average {load[0]:.1f} at the start" if load else "")
             + (f" and {machine['load_average_end'][0]:.1f} at the end" if machine.get("load_average_end") else "")
             + (" (other jobs shared the cores: ratios come from interleaved runs, absolute times are inflated)"
                if load and load[0] > machine.get("cores", 1) else "") + "."
             + (" **Quick run: tiny sizes, the times say nothing about speed.**" if quick else "")
             + f" Raw results: [{BENCH_FILE}]({BENCH_FILE}).", ""]
    rows = _speed_rows(result)
    if rows:
        lines += ["| benchmark | reference (ms) | autocnn (ms) | autocnn / reference |", "|---|---:|---:|---:|"]
        for row in rows:
            lines.append(f"| {row['name']} | {row['reference_ms']:.2f} | {row['autocnn_ms']:.2f} | "
                         f"{row['ratio']:.2f}× |")
        steps = [row for row in rows if "train step" in row["name"]]
        if steps:
            lines += ["", "Whole training steps (loss, gradients, Adam): autocnn takes "
                      + ", ".join(f"{row['ratio']:.2f}× ({row['name']})" for row in steps)
                      + " the hand-written time."]
        lines.append("")
    if figure:
        lines += [f"![speed ratios]({figure})", ""]
    return lines


def _speed_rows(result: dict) -> list[dict]:
    """Benchmark entries with both a reference and an autocnn time (``run_benchmark``'s 'rows')."""
    return [row for row in result.get("rows", []) if row.get("ratio") is not None]


def _load_benchmark(path: Path) -> dict:
    """Results that `autocnn bench --json PATH` wrote earlier (to reuse a run, not time again)."""
    import json

    return json.loads(Path(path).read_text())


# ---------------------------------------------------------------------- main

def generate(out: Path = DEFAULT_OUT, quick: bool = False, seed: int = 0, with_speed: bool = True,
             bench_json: Path | None = None) -> Path:
    """
    Write report.md and its PNGs into out.

    Inputs:
    - out: Output folder (created if needed)
    - quick: Fewer step sizes and the quick benchmark, for a smoke test
    - seed: Seed of every random input
    - with_speed: Run the benchmark (autocnn.tools.bench) for section 3
    - bench_json: Use the results of an earlier `autocnn bench --json` run instead

    Returns:
    - path: The report.md written
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.time()
    results: dict[str, Any] = {"quick": quick, "seed": seed,
                               "machine": f"{platform.machine()} / {os.cpu_count() or 1} cores"}
    results["loc"] = lines_of_code()
    results["layers"] = layer_agreement(seed)
    results["models"] = model_agreement(seed)
    results["step_size"] = step_size_study(quick, seed)
    results["bench_reused"] = bench_json is not None
    if bench_json is not None:
        results["speed"] = _load_benchmark(bench_json)
    else:
        results["speed"] = _run_benchmark(quick) if with_speed else None
    results["speed_asked"] = with_speed
    figures = {"loc": "lines_of_code.png", "step": "step_size.png"}
    plots.plot_lines_of_code(results["loc"], out / figures["loc"])
    plots.plot_step_sizes(results["step_size"], out / figures["step"])
    if results["speed"] is not None:
        # Keep the raw benchmark beside the report, so `--bench-json` can redraw it.
        import json

        (out / BENCH_FILE).write_text(json.dumps(results["speed"], indent=1) + "\n")
        if _speed_rows(results["speed"]):
            figures["speed"] = "speed_ratios.png"
            plots.plot_speed(_speed_rows(results["speed"]), results["speed"].get("settings", {}).get("quick", False),
                             out / figures["speed"])
    path = out / "report.md"
    text = _markdown(results, figures)
    path.write_text(text + f"\n_Report generated in {time.time() - started:.0f} s._\n")
    return path
