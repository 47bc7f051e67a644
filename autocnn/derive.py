"""Derive backward passes from forward ones: the only place autocnn asks autograd for one.

* ``forward`` / ``backward`` give any forward op the notebook's layer contract
  ``(out, cache) = *_forward(...)`` and ``grads = *_backward(dout, cache)``; the cache is
  autograd's vector-Jacobian product, recorded while the forward ran.
* ``value_and_grad_with_aux`` is ``autograd.value_and_grad`` for objectives that also
  return values to keep but not differentiate (batchnorm's running statistics).

Forward ops may return ``(out, *aux)``: ``out`` is differentiated, ``aux`` is handed back
as plain arrays (stripped of autograd's boxes).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as onp
from autograd import make_vjp
from autograd.tracer import getval

from reference.validation import check_dout


@dataclass(frozen=True)
class DerivedCache:
    """What a derived forward leaves for its backward: autograd's VJP of the op."""

    vjp: Callable[[Any], tuple]
    num_inputs: int
    out_shape: tuple[int, ...]


def _plain(value):
    """Strip autograd's boxes from a value or a nested list / tuple / dict of values."""
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(v) for v in value)
    if isinstance(value, dict):
        return {key: _plain(v) for key, v in value.items()}
    return getval(value)


def _run_traced(op: Callable, inputs: tuple, settings: dict, with_aux: bool):
    """Trace op(*inputs, **settings) once; return (vjp, out, aux)."""
    aux: list = []

    def primary(differentiable_inputs):
        result = op(*differentiable_inputs, **settings)
        if not with_aux:
            return result
        out, *extra = result
        aux.extend(_plain(value) for value in extra)
        return out

    vjp, out = make_vjp(primary)(tuple(inputs))
    return vjp, out, tuple(aux)


def forward(op: Callable, *inputs, **settings) -> tuple[Any, DerivedCache]:
    """
    Run a forward op and keep what its backward needs.

    Inputs:
    - op: Forward function; differentiated with respect to every positional input
    - inputs: The arrays to differentiate with respect to (x, w, b, ...)
    - settings: Keyword arguments passed through but not differentiated (stride, labels...)

    Returns a tuple of:
    - out: op(*inputs, **settings)
    - cache: For `backward`
    """
    vjp, out, _ = _run_traced(op, inputs, settings, with_aux=False)
    return out, DerivedCache(vjp, len(inputs), onp.shape(out))


def forward_with_aux(op: Callable, *inputs, **settings) -> tuple[Any, tuple, DerivedCache]:
    """
    As `forward`, for an op returning ``(out, *aux)``; only ``out`` is differentiated.

    Returns a tuple of:
    - out: The op's first output
    - aux: Its other outputs, as plain arrays
    - cache: For `backward`
    """
    vjp, out, aux = _run_traced(op, inputs, settings, with_aux=True)
    return out, aux, DerivedCache(vjp, len(inputs), onp.shape(out))


def backward(dout, cache: DerivedCache):
    """
    The backward pass of any derived forward: autograd's vector-Jacobian product.

    Inputs:
    - dout: Upstream derivative, of the forward output's shape
    - cache: From `forward` / `forward_with_aux`

    Returns:
    - The gradient with respect to the forward's single input, or a tuple of gradients
      (dx, dw, db, ...) in the order of its inputs
    """
    if not isinstance(cache, DerivedCache):
        raise TypeError(
            f"cache must come from an autocnn *_forward function, got {type(cache).__name__}; "
            "caches of other implementations cannot be mixed with autocnn backward passes"
        )
    check_dout(dout, cache.out_shape)
    grads = cache.vjp(dout)
    return grads[0] if cache.num_inputs == 1 else grads


def value_and_grad_with_aux(objective: Callable[[Any], tuple], params):
    """
    Value, gradient and side outputs of a scalar objective in one forward pass.

    Inputs:
    - objective: params -> (scalar value, aux); aux is returned, not differentiated
    - params: Any autograd container of arrays (e.g. a dict name -> array)

    Returns a tuple of:
    - value: The objective's value
    - grads: Gradient with the structure of params
    - aux: The objective's side outputs, as plain arrays
    """
    vjp, value, (aux,) = _run_traced(objective, (params,), {}, with_aux=True)
    (grads,) = vjp(onp.ones_like(value))
    return value, grads, aux
