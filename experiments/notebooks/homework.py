"""What the notebooks share: the implementation switch and the quick mode.

``load_implementation(choice)`` gives the notebook API (layer functions, ``ThreeLayerConvNet``,
a deeper ConvNet with batchnorm) of one of three implementations, so that every cell after
the switch runs unchanged on any of them:

- ``"autocnn"``: forward passes only; autograd derives every gradient
- ``"reference"``: the hand-written backward passes (the oracle)
- a folder path such as ``"../nndl"``: a student's own homework folder, imported the way
  the homework does (``from nndl.layers import *``, its parent folder on ``sys.path``)

``QUICK`` is True when ``AUTOCNN_NOTEBOOK_QUICK=1``: a few hundred images, a few iterations
and small layers, so that the notebooks run headless in seconds (the tests do this).
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

QUICK = os.environ.get("AUTOCNN_NOTEBOOK_QUICK", "").strip() not in ("", "0")
STUDENT_MODULES = ("layers", "conv_layers", "fast_layers", "layer_utils", "cnn")


class Implementation:
    """
    The notebook API of one implementation.

    - name: 'autocnn', 'reference' or the student's folder as given
    - description: One line saying what it is
    - functions: Notebook name -> function ('conv_forward_naive', ...), only those it has
    - ThreeLayerConvNet: Its model class
    - check_targets: What ``autocnn.check`` is given to check this implementation
    - origin: Notebook name -> module it came from

    Functions are also attributes: ``impl.conv_forward_naive``.
    """

    def __init__(self, name: str, description: str, functions: dict[str, Callable], three_layer: type,
                 deeper: Callable[..., Any], check_targets: list[str], origin: dict[str, str]) -> None:
        self.name, self.description = name, description
        self.functions, self.ThreeLayerConvNet = functions, three_layer
        self._deeper, self.check_targets, self.origin = deeper, check_targets, origin

    def __getattr__(self, name: str) -> Callable:
        functions = self.__dict__.get("functions", {})
        if name in functions:
            return functions[name]
        raise AttributeError(f"the {self.__dict__.get('name')!r} implementation has no {name}")

    def has(self, name: str) -> bool:
        return name in self.functions

    def deeper_convnet(self, blocks: Sequence[Sequence[int]] = ((32, 32), (64, 64), (128, 128)),
                       hidden_dims: Sequence[int] = (256,), reg: float = 0.0, dtype: Any = np.float32,
                       input_dim: Sequence[int] = (3, 32, 32), num_classes: int = 10, seed: int = 0) -> Any:
        """
        [[conv3x3 - spatial batchnorm - relu] x k - 2x2 max pool] x len(blocks)
        - [affine - batchnorm - relu] x len(hidden_dims) - affine - softmax, He initialised.

        Inputs:
        - blocks: Filter counts of each block's convs
        - hidden_dims: Widths of the hidden affine layers
        - reg: L2 strength
        - dtype: Parameter dtype
        - input_dim: (C, H, W) of the images
        - num_classes: Number of scores
        - seed: Seed of the initial weights (the same on every implementation)

        Returns:
        - model: Has params and loss(X, y=None), as the Solver needs
        """
        return self._deeper(blocks=[tuple(b) for b in blocks], hidden_dims=list(hidden_dims), reg=reg,
                            dtype=dtype, input_dim=tuple(input_dim), num_classes=num_classes, seed=seed)

    def __repr__(self) -> str:
        return f"<implementation {self.name!r}: {self.description}; {len(self.functions)} layer functions>"


def _public_functions(module) -> dict[str, Callable]:
    names = getattr(module, "__all__", None) or [n for n in vars(module) if not n.startswith("_")]
    return {name: getattr(module, name) for name in names
            if callable(getattr(module, name, None)) and not isinstance(getattr(module, name), type)}


def _autocnn_convnet(**kwargs) -> Any:
    import autocnn.models

    np.random.seed(kwargs.pop("seed"))
    return autocnn.models.ConvNet(filter_size=3, use_batchnorm=True, weight_scale="he", **kwargs)


def _from_modules(name: str, description: str, modules: Sequence[str], model_module: str,
                  deeper: Callable[..., Any], check_targets: list[str]) -> Implementation:
    functions, origin = {}, {}
    for module_name in modules:
        module = importlib.import_module(module_name)
        for key, value in _public_functions(module).items():
            functions.setdefault(key, value)
            origin.setdefault(key, module_name)
    model = importlib.import_module(model_module).ThreeLayerConvNet
    return Implementation(name, description, functions, model, deeper, check_targets, origin)


def _student(folder: str) -> Implementation:
    path = Path(folder).expanduser().resolve()
    if not path.is_dir():
        raise ValueError(f"IMPLEMENTATION must be 'autocnn', 'reference' or a folder path; {folder!r} is neither "
                         f"(looked for the folder {path})")
    present = [m for m in STUDENT_MODULES if (path / f"{m}.py").is_file()]
    if "cnn" not in present:
        raise ValueError(f"{path} has no cnn.py with a ThreeLayerConvNet: is it the homework's nndl/ folder?")
    if str(path.parent) not in sys.path:
        sys.path.insert(0, str(path.parent))  # `import nndl.layers`, as the homework's notebook does
    package = path.name
    for loaded in [m for m in sys.modules if m == package or m.startswith(package + ".")]:
        del sys.modules[loaded]  # another folder of the same name may have been loaded before
    implementation = _from_modules(folder, f"the homework folder {path}", [f"{package}.{m}" for m in present],
                                   f"{package}.cnn", lambda **kwargs: None, [str(path)])
    return implementation


def load_implementation(choice: str) -> Implementation:
    """
    The notebook API of 'autocnn', 'reference' or a student's folder.

    Inputs:
    - choice: 'autocnn', 'reference', or a path to a folder with the homework's files
      (layers.py, conv_layers.py, layer_utils.py, cnn.py; fast_layers.py if present)

    Returns:
    - Implementation
    """
    if not isinstance(choice, str) or not choice:
        raise ValueError(f"IMPLEMENTATION must be 'autocnn', 'reference' or a folder path, got {choice!r}")
    if choice == "autocnn":
        return _from_modules("autocnn", "forward passes only; every gradient derived by autograd",
                             ["autocnn.layers", "autocnn.layer_utils"], "autocnn.models", _autocnn_convnet,
                             ["autocnn.layers", "autocnn.layer_utils", "autocnn.models"])
    if choice == "reference":
        implementation = _from_modules("reference", "hand-written forward and backward passes (numpy)",
                                       ["reference.layers", "reference.conv_layers", "reference.fast_layers",
                                        "reference.layer_utils"], "reference.cnn", lambda **kwargs: None,
                                       ["reference"])
    else:
        implementation = _student(choice)
    # Neither side has a deeper ConvNet with a test mode: chain its own layers.
    implementation._deeper = lambda **kwargs: LayerwiseConvNet(implementation, **kwargs)
    return implementation


class LayerwiseConvNet:
    """
    The deeper ConvNet chained from an implementation's own layer functions (neither a
    student's homework nor the reference has one with a test mode): forward layer by layer,
    backward in reverse order.
    """

    def __init__(self, impl: Implementation, blocks, hidden_dims, reg, dtype, input_dim, num_classes, seed):
        rng = np.random.RandomState(seed)
        self.impl, self.blocks, self.reg, self.dtype = impl, blocks, reg, dtype
        self.conv_forward = impl.functions.get("conv_forward_fast", impl.functions.get("conv_forward_naive"))
        self.conv_backward = impl.functions.get("conv_backward_fast", impl.functions.get("conv_backward_naive"))
        self.pool_forward = impl.functions.get("max_pool_forward_fast", impl.functions.get("max_pool_forward_naive"))
        self.pool_backward = impl.functions.get("max_pool_backward_fast",
                                                impl.functions.get("max_pool_backward_naive"))
        self.params: dict[str, np.ndarray] = {}
        self.bn_params: list[dict] = []
        channels, height, width = input_dim
        layer = 0
        for block in blocks:
            for filters in block:
                layer += 1
                self._add(layer, rng.randn(filters, channels, 3, 3) * np.sqrt(2.0 / (channels * 9)), filters)
                channels = filters
            height, width = height // 2, width // 2
        size = channels * height * width
        for hidden in hidden_dims:
            layer += 1
            self._add(layer, rng.randn(size, hidden) * np.sqrt(2.0 / size), hidden)
            size = hidden
        self.params[f"W{layer + 1}"] = (rng.randn(size, num_classes) * np.sqrt(2.0 / size)).astype(dtype)
        self.params[f"b{layer + 1}"] = np.zeros(num_classes, dtype=dtype)
        self.num_layers = layer + 1

    def _add(self, layer: int, weights: np.ndarray, width: int) -> None:
        self.params[f"W{layer}"] = weights.astype(self.dtype)
        self.params[f"b{layer}"] = np.zeros(width, dtype=self.dtype)
        self.params[f"gamma{layer}"] = np.ones(width, dtype=self.dtype)
        self.params[f"beta{layer}"] = np.zeros(width, dtype=self.dtype)
        self.bn_params.append({"mode": "train"})

    def loss(self, X, y=None):
        f, p = self.impl.functions, self.params
        mode = "test" if y is None else "train"
        for bn_param in self.bn_params:
            bn_param["mode"] = mode
        out, tape, layer = X.astype(self.dtype), [], 0
        for block in self.blocks:
            for _ in block:
                layer += 1
                out, conv = self.conv_forward(out, p[f"W{layer}"], p[f"b{layer}"], {"stride": 1, "pad": 1})
                out, norm = f["spatial_batchnorm_forward"](out, p[f"gamma{layer}"], p[f"beta{layer}"],
                                                          self.bn_params[layer - 1])
                out, relu = f["relu_forward"](out)
                tape.append(("conv", layer, (conv, norm, relu)))
            out, pool = self.pool_forward(out, {"pool_height": 2, "pool_width": 2, "stride": 2})
            tape.append(("pool", 0, pool))
        while layer < self.num_layers - 1:
            layer += 1
            out, affine = f["affine_forward"](out, p[f"W{layer}"], p[f"b{layer}"])
            out, norm = f["batchnorm_forward"](out, p[f"gamma{layer}"], p[f"beta{layer}"], self.bn_params[layer - 1])
            out, relu = f["relu_forward"](out)
            tape.append(("affine", layer, (affine, norm, relu)))
        last = self.num_layers
        scores, top = f["affine_forward"](out, p[f"W{last}"], p[f"b{last}"])
        if y is None:
            return scores
        loss, dout = f["softmax_loss"](scores, y)
        weights = [name for name in p if name.startswith("W")]
        loss += 0.5 * self.reg * sum(float(np.sum(p[name] ** 2)) for name in weights)
        grads = {}
        dout, grads[f"W{last}"], grads[f"b{last}"] = f["affine_backward"](dout, top)
        for kind, layer, cache in reversed(tape):
            if kind == "pool":
                dout = self.pool_backward(dout, cache)
                continue
            first, norm, relu = cache
            dout = f["relu_backward"](dout, relu)
            backward = f["spatial_batchnorm_backward"] if kind == "conv" else f["batchnorm_backward"]
            dout, grads[f"gamma{layer}"], grads[f"beta{layer}"] = backward(dout, norm)
            backward = self.conv_backward if kind == "conv" else f["affine_backward"]
            dout, grads[f"W{layer}"], grads[f"b{layer}"] = backward(dout, first)
        for name in weights:
            grads[name] = grads[name] + self.reg * p[name]
        return loss, grads


# ------------------------------------------------------------ formulations, for the teaching notebook

_OPS, _PRIM = "autocnn.core.ops.", "autocnn.core.primitives."

# One layer, several formulations: (label, benchmark side, forward code, derivative code, primitives whose
# defvjp statements count as derivative code). Derivative code is every line that exists only so that a
# gradient can be computed: stated VJPs, and the adjoint operators they call.
FORMULATIONS: dict[str, list[tuple[str, str, tuple[str, ...], tuple[str, ...], tuple[str, ...]]]] = {
    "conv": [
        ("pure autograd.numpy (slices and sums)", "autocnn-pure",
         (_OPS + "_conv2d_from_slices", _OPS + "_tap"), (), ()),
        ("scipy.signal.correlate + the correlation's rule", "autocnn-scipy",
         (_PRIM + "correlate_valid",), (_PRIM + "_correlate_valid_vjp_x", _PRIM + "_correlate_valid_vjp_w"),
         ("correlate_valid",)),
        ("fast default: im2col + one GEMM, or one GEMM per filter tap, their primitives", "autocnn",
         (_PRIM + "_im2col", _PRIM + "_conv_gemm", _PRIM + "_gemm_tt", _PRIM + "_to_pixel_rows",
          _PRIM + "_from_pixel_rows", _PRIM + "_conv_taps", _PRIM + "_taps", _PRIM + "_tap_shifts",
          _PRIM + "_rows_per_block", _PRIM + "conv_taps_pay_off", _PRIM + "pixel_grid"),
         (_PRIM + "_col2im", _PRIM + "_col2im_add", _PRIM + "_col2im_gemm", _PRIM + "_conv_gemm_vjp_w",
          _PRIM + "_c_ordered", _PRIM + "_conv_taps_transpose", _PRIM + "_conv_taps_weight_gradient"),
         ("im2col", "col2im", "gemm_tt", "conv_gemm", "col2im_gemm", "to_pixel_rows", "from_pixel_rows",
          "conv_taps", "conv_taps_transpose", "conv_taps_weight_gradient")),
        ("reference: hand-written fast layers", "ref-fast",
         ("reference.fast_layers.conv_forward_fast", "reference.fast_layers._pad_spatial",
          "reference.fast_layers._sliding_windows"),
         ("reference.fast_layers.conv_backward_fast", "reference.fast_layers._offset_slice"), ()),
        ("reference: hand-written naive layers", "ref-naive",
         ("reference.conv_layers.conv_forward_naive", "reference.conv_layers._output_size"),
         ("reference.conv_layers.conv_backward_naive",), ()),
    ],
    "max pool": [
        ("pure autograd.numpy (maximum of slices)", "autocnn-pure", (_OPS + "_max_pool_from_slices", _OPS + "_tap"),
         (), ()),
        ("fast default: first maximum per window, its primitives", "autocnn",
         (_PRIM + "window_maxima", _PRIM + "_choose_first_maxima", _PRIM + "_winner", _PRIM + "_window_take"),
         (_PRIM + "_window_put", _PRIM + "_windows_tile", _PRIM + "_put_chosen"),
         ("window_take", "window_put")),
        ("reference: hand-written fast layers", "ref-fast",
         ("reference.fast_layers.max_pool_forward_fast", "reference.fast_layers._pool_geometry"),
         ("reference.fast_layers.max_pool_backward_fast",), ()),
        ("reference: hand-written naive layers", "ref-naive", ("reference.conv_layers.max_pool_forward_naive",),
         ("reference.conv_layers.max_pool_backward_naive",), ()),
    ],
}


def defvjp_lines(primitives: Sequence[str]) -> int:
    """Code lines of the ``defvjp(...)`` statements of the named primitives in autocnn.core.primitives."""
    import ast
    import inspect

    import autocnn.core.primitives
    from autocnn.tools.report import count_code_lines

    source = inspect.getsource(autocnn.core.primitives)
    total = 0
    for node in ast.parse(source).body:
        call = node.value if isinstance(node, ast.Expr) else None
        if isinstance(call, ast.Call) and getattr(call.func, "id", "") == "defvjp" and call.args \
                and getattr(call.args[0], "id", "") in primitives:
            total += count_code_lines(ast.get_source_segment(source, node))
    return total


def _code_lines(names: Sequence[str]) -> int:
    """report.code_lines, looking through autograd's primitive wrapper to the function written here."""
    import inspect

    from autocnn.tools.report import _resolve, count_code_lines

    total = 0
    for name in names:
        obj = _resolve(name)
        if obj is None:
            raise LookupError(f"{name} not found: the formulation table names a function that moved")
        obj = getattr(obj, "fun", obj) if getattr(obj, "_is_autograd_primitive", False) else obj
        total += count_code_lines(inspect.getsource(obj))
    return total


def formulation_rows(layer: str, bench_results: dict | None = None, case_name: str | None = None) -> list[dict]:
    """
    Code each formulation of a layer needed, beside its time in a benchmark run.

    Inputs:
    - layer: 'conv' or 'max pool' (a key of FORMULATIONS)
    - bench_results: What autocnn.tools.bench.run_benchmark returned, or None for no times
    - case_name: The benchmark case to read the times from (forward+backward, smallest batch)

    Returns:
    - rows: dicts with formulation, forward_lines, derivative_lines, counted (function names),
      side, median_ms and ratio (to the reference's fast layers) when timed
    """
    timed = {}
    if bench_results is not None:
        cases = [c for c in bench_results["cases"] if c["phase"] == "forward+backward"
                 and (case_name is None or c["name"] == case_name) and c["name"].startswith(layer)]
        if cases:
            smallest = min(cases, key=lambda c: c["batch"])
            timed = {side: stats for side, stats in smallest["sides"].items()}
    rows = []
    for label, side, forward, derivative, rules in FORMULATIONS[layer]:
        stats = timed.get(side)
        rows.append({"formulation": label, "side": side, "forward_lines": _code_lines(forward),
                     "derivative_lines": _code_lines(derivative) + defvjp_lines(rules),
                     "counted": [name.rsplit(".", 1)[-1] for name in forward + derivative]
                     + [f"defvjp({name})" for name in rules],
                     "median_ms": None if stats is None else 1e3 * stats["median_s"],
                     "ratio": None if stats is None else stats.get("ratio")})
    return rows
