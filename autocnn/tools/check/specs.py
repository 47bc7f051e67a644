"""What is checked: the notebook's functions and model classes, and the cases of each.

A ``LayerSpec`` names a forward, the backward(s) checked against it, what each backward
returns, the forward's parameters (canonical names) and where autocnn's derived version
lives. A ``ModelSpec`` names a model class and its cases; a case may exercise an optional
part of the model (``part``: 'batchnorm', 'dropout'), whose rows are kept apart so that a
missing or broken option never marks the plain model's rows. Adding a layer is one entry
in ``LAYER_SPECS``; ``aliases`` are the other names course years give the same function.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from autocnn.tools.check import cases as C


@dataclass(frozen=True)
class LayerSpec:
    """
    A forward function, the backward(s) checked against it, and how to draw its inputs.

    - forward: Name of the forward function (for losses: the function returning (loss, dx))
    - backwards: Names of backward functions taking (dout, cache)
    - grads: Names of what each backward returns, in order
    - arg_names: Canonical names of the forward's inputs, in autocnn's order
    - source: 'layers' or 'layer_utils': where autocnn's derived versions live
    - make_cases: rng -> list of Case
    - state_keys: Entries of param dicts the forward is meant to update
    - kind: 'layer', 'loss' (returns (loss, dx)) or 'dropout' (judged on its behaviour)
    - aliases: (forward, backwards) pairs other course years use for the same function
    - by_name: Call with the student's own parameter names, in the student's order
      (sandwich helpers, whose parameter order differs between submissions)
    - scratch_params: Param dicts the forward may write into without it being a bug
      (a layer norm reusing batchnorm code leaves running statistics in ln_param)
    - suspects: (diagnosis, function of the forward's inputs) for known wrong forwards:
      a wrong output equal to one is given that diagnosis
    """

    forward: str
    backwards: tuple[str, ...]
    grads: tuple[str, ...]
    arg_names: tuple[str, ...]
    source: str
    make_cases: Callable[[np.random.RandomState], list]
    state_keys: tuple[str, ...] = ()
    kind: str = "layer"
    aliases: tuple[tuple[str, tuple[str, ...]], ...] = ()
    by_name: bool = False
    scratch_params: tuple[str, ...] = ()
    suspects: tuple[tuple[str, Callable], ...] = ()

    @property
    def name(self) -> str:
        return self.forward

    @property
    def is_loss(self) -> bool:
        return self.kind == "loss"

    def names(self) -> tuple[tuple[str, tuple[str, ...]], ...]:
        """(forward, backwards) under every name this function goes by."""
        return ((self.forward, self.backwards), *self.aliases)

    def functions(self) -> tuple[str, ...]:
        return tuple(name for forward, backwards in self.names() for name in (forward, *backwards))


BN_STATE = ("running_mean", "running_var")
_CONV = ("x", "w", "b", "conv_param")
_BN = ("x", "gamma", "beta", "bn_param")

#: Parameter names students use for each canonical input of a sandwich.
ARG_SYNONYMS: dict[str, tuple[str, ...]] = {
    "x": ("x", "X", "input", "inputs", "a"),
    "w": ("w", "W", "weight", "weights", "w1", "W1"),
    "b": ("b", "bias", "biases", "b1"),
    "gamma": ("gamma", "g", "scale"),
    "beta": ("beta", "shift"),
    "conv_param": ("conv_param", "conv_params", "convparam"),
    "pool_param": ("pool_param", "pool_params", "poolparam"),
    "bn_param": ("bn_param", "bn_params", "bnparam", "batchnorm_param", "bn_param_dict", "spatial_bn_param"),
}


def _layer(forward: str, grads: tuple[str, ...], arg_names: tuple[str, ...], make_cases, source: str = "layers",
           backwards: tuple[str, ...] | None = None, state_keys: tuple[str, ...] = (), aliases: tuple[str, ...] = (),
           kind: str = "layer", scratch_params: tuple[str, ...] = (),
           suspects: tuple[tuple[str, Callable], ...] = ()) -> LayerSpec:
    backwards = backwards if backwards is not None else (forward.replace("forward", "backward"),)
    pairs = tuple((alias, (alias.replace("forward", "backward"),)) for alias in aliases)
    return LayerSpec(forward, backwards, grads, arg_names, source, make_cases, state_keys, kind, pairs,
                     by_name=source == "layer_utils", scratch_params=scratch_params, suspects=suspects)


def _pool_with_bn(rng):
    return C.conv_batchnorm_relu_cases(rng, with_pool=True)


_SANDWICH_BN = ("dx", "dw", "db", "dgamma", "dbeta")

LAYER_SPECS: tuple[LayerSpec, ...] = (
    _layer("affine_forward", ("dx", "dw", "db"), ("x", "w", "b"), C.affine_cases),
    _layer("relu_forward", ("dx",), ("x",), C.relu_cases),
    _layer("batchnorm_forward", ("dx", "dgamma", "dbeta"), _BN, C.batchnorm_cases,
           backwards=("batchnorm_backward", "batchnorm_backward_alt"), state_keys=BN_STATE),
    _layer("layernorm_forward", ("dx", "dgamma", "dbeta"), ("x", "gamma", "beta", "ln_param"), C.layernorm_cases,
           scratch_params=("ln_param",), suspects=(
               ("normalizes each feature over the batch (axis 0), as batchnorm does: layer norm normalizes each "
                "row over its features (axis 1)", C.layernorm_over_batch),)),
    _layer("dropout_forward", ("dx",), ("x", "dropout_param"), C.dropout_cases, kind="dropout"),
    LayerSpec("softmax_loss", (), ("dx",), ("x", "y"), "layers", C.loss_cases, kind="loss"),
    LayerSpec("svm_loss", (), ("dx",), ("x", "y"), "layers", C.loss_cases, kind="loss"),
    _layer("conv_forward_naive", ("dx", "dw", "db"), _CONV, C.conv_cases),
    _layer("conv_forward_fast", ("dx", "dw", "db"), _CONV, C.conv_cases),
    _layer("max_pool_forward_naive", ("dx",), ("x", "pool_param"), C.max_pool_cases),
    _layer("max_pool_forward_fast", ("dx",), ("x", "pool_param"), C.max_pool_cases),
    _layer("spatial_batchnorm_forward", ("dx", "dgamma", "dbeta"), _BN, C.spatial_batchnorm_cases,
           state_keys=BN_STATE),
    _layer("spatial_groupnorm_forward", ("dx", "dgamma", "dbeta"), ("x", "gamma", "beta", "G", "gn_param"),
           C.spatial_groupnorm_cases, scratch_params=("gn_param",)),
    _layer("affine_relu_forward", ("dx", "dw", "db"), ("x", "w", "b"), C.affine_relu_cases, "layer_utils"),
    _layer("affine_batchnorm_relu_forward", _SANDWICH_BN, ("x", "w", "b", "gamma", "beta", "bn_param"),
           C.affine_batchnorm_relu_cases, "layer_utils", state_keys=BN_STATE, aliases=("affine_bn_relu_forward",)),
    _layer("conv_relu_forward", ("dx", "dw", "db"), _CONV, C.conv_relu_cases, "layer_utils"),
    _layer("conv_relu_pool_forward", ("dx", "dw", "db"), _CONV + ("pool_param",), C.conv_relu_pool_cases,
           "layer_utils"),
    _layer("conv_batchnorm_relu_forward", _SANDWICH_BN, ("x", "w", "b", "gamma", "beta", "conv_param", "bn_param"),
           C.conv_batchnorm_relu_cases, "layer_utils", state_keys=BN_STATE, aliases=("conv_bn_relu_forward",)),
    _layer("conv_batchnorm_relu_pool_forward", _SANDWICH_BN,
           ("x", "w", "b", "gamma", "beta", "conv_param", "bn_param", "pool_param"), _pool_with_bn,
           "layer_utils", state_keys=BN_STATE, aliases=("conv_bn_relu_pool_forward",)),
)


@dataclass(frozen=True)
class ModelCase:
    """
    One model check.

    - label: Human description of the case
    - kwargs: Architecture arguments every constructor of the notebook takes
    - input_shape, num_examples: The batch
    - tags: Properties a failure may hinge on
    - part: '' for the plain model, or the optional part this case exercises
      ('batchnorm', 'dropout'); its rows are kept apart
    - keep: Keep probability of dropout (part 'dropout')
    """

    label: str
    kwargs: dict
    input_shape: tuple[int, ...]
    num_examples: int
    tags: tuple[str, ...] = ()
    part: str = ""
    keep: float | None = None


@dataclass(frozen=True)
class ModelSpec:
    """A model class of the notebook (by name) and the cases it is checked on."""

    name: str
    cases: tuple[ModelCase, ...]

    def parts(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(case.part for case in self.cases))


_CONVNET = dict(input_dim=(3, 8, 8), num_filters=3, filter_size=3, hidden_dim=7, num_classes=5)

MODEL_SPECS: tuple[ModelSpec, ...] = (
    ModelSpec("ThreeLayerConvNet", (
        ModelCase("input (3, 8, 8), 3 filters 3x3, hidden 7, reg 0", dict(_CONVNET, reg=0.0), (3, 8, 8), 3,
                  ("reg = 0",)),
        ModelCase("input (3, 8, 8), 3 filters 3x3, hidden 7, reg 0.7", dict(_CONVNET, reg=0.7), (3, 8, 8), 2,
                  ("reg > 0",)),
        ModelCase("input (2, 6, 6), 2 filters 5x5, hidden 4, reg 0.1, N=1",
                  dict(input_dim=(2, 6, 6), num_filters=2, filter_size=5, hidden_dim=4, num_classes=3, reg=0.1),
                  (2, 6, 6), 1, ("reg > 0", "N = 1")),
        ModelCase("input (3, 6, 6), batchnorm, reg 0.3",
                  dict(input_dim=(3, 6, 6), num_filters=4, filter_size=3, hidden_dim=5, num_classes=4, reg=0.3),
                  (3, 6, 6), 4, ("reg > 0",), part="batchnorm"),
    )),
    ModelSpec("FullyConnectedNet", (
        ModelCase("hidden [6, 5], input 12, reg 0",
                  dict(hidden_dims=[6, 5], input_dim=12, num_classes=4, reg=0.0), (12,), 3, ("reg = 0",)),
        ModelCase("hidden [7], input (3, 2, 2), reg 0.5",
                  dict(hidden_dims=[7], input_dim=12, num_classes=3, reg=0.5), (3, 2, 2), 2, ("reg > 0",)),
        ModelCase("hidden [6, 5], batchnorm, reg 0.2",
                  dict(hidden_dims=[6, 5], input_dim=10, num_classes=4, reg=0.2), (10,), 5, ("reg > 0",),
                  part="batchnorm"),
        ModelCase("hidden [6, 5], dropout keep 0.7 seed 5, reg 0",
                  dict(hidden_dims=[6, 5], input_dim=8, num_classes=3, reg=0.0, seed=5), (8,), 4, ("reg = 0",),
                  part="dropout", keep=0.7),
    )),
)

KNOWN_FUNCTIONS: tuple[str, ...] = tuple(dict.fromkeys(name for spec in LAYER_SPECS for name in spec.functions()))
KNOWN_CLASSES: tuple[str, ...] = tuple(spec.name for spec in MODEL_SPECS)
