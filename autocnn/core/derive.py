"""Derive backward passes from forward ones: the only place autocnn asks autograd for one.

* ``forward`` / ``backward`` give any forward op the notebook's layer contract
  ``(out, cache) = *_forward(...)`` and ``grads = *_backward(dout, cache)``; the cache is
  autograd's vector-Jacobian product, recorded while the forward ran.
* ``value_and_grad_with_aux`` is ``autograd.value_and_grad`` for objectives that also
  return values to keep but not differentiate (batchnorm's running statistics).

Forward ops may return ``(out, *aux)``: ``out`` is differentiated, ``aux`` is handed back
as plain arrays (stripped of autograd's boxes).

Tracing gives every input its own root node (``_trace``), which takes autograd's tracer
and backward-pass building blocks (through ``autocnn.core.autograd_internals``) rather
than ``make_vjp``.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
from autograd.extend import SparseObject

from autocnn.core.autograd_internals import backpropagate, trace, value_of
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
    return value_of(value)


def _trace(fun: Callable[[list], Any], leaves: Sequence):
    """
    Trace fun(boxed_leaves) once, with one autograd root node per leaf array.

    ``autograd.make_vjp`` takes a single input; handing it a tuple or dict of arrays
    makes every ``inputs[i]`` a container index whose VJP starts from zeros for the
    *whole* container and adds into them (a full extra pass over every input, e.g. the
    hidden-layer weights, per access). Separate roots let the backward pass hand
    each input its accumulated gradient directly.

    Returns (vjp, out): vjp(g) -> list of gradients, one per leaf, each a new array
    shaped like the leaf and in its dtype.
    """
    end_value, end_node, roots = trace(fun, leaves)

    def vjp(g) -> list:
        parts = backpropagate(g, end_node, roots)
        return [_sum_of_parts(parts[root], leaf) for leaf, root in zip(leaves, roots)]

    return vjp, end_value


def _sole_reference_count() -> int:
    """What sys.getrefcount reports, in _sum_of_parts' own pattern, for an array held by nobody else."""
    probe = [np.empty(1)]
    total = probe.pop()
    return sys.getrefcount(total)


_SOLE_REFERENCE = _sole_reference_count()


def _sum_of_parts(parts: list, leaf):
    """
    A root's gradient: the sum of its contributions, as a new array in the leaf's dtype.

    Autograd adds contributions into a new array, because one may be shared (an add's VJP
    hands the same g to both operands; an identity hands back the caller's dout). A part
    that owns its memory and is referenced from nowhere else (the test numpy's temporary
    elision uses) cannot be seen by anyone, so the others are added into it in place:
    for a weight used by its layer and by the weight decay this saves a full-size pass
    and allocation per step.
    """
    dtype = np.asarray(leaf).dtype
    dense = [index for index, part in enumerate(parts) if type(part) is not SparseObject]
    if not dense:  # nothing to add into yet (or no part at all: the output ignores this input)
        total = np.zeros(np.shape(leaf), dtype)
    else:
        total = parts.pop(dense[-1])
        if not (type(total) is np.ndarray and sys.getrefcount(total) <= _SOLE_REFERENCE and total.dtype == dtype
                and total.flags.owndata and total.flags.writeable):
            # Also keeps a float64 dout from upcasting float32 gradients.
            total = np.array(total, dtype=dtype, copy=True)
    for part in parts:
        if type(part) is SparseObject:  # indexing's, weight decay's: it adds itself in
            total = part.mut_add(total)
        else:
            total += part
    return total


def _run_traced(op: Callable, inputs: tuple, settings: dict, with_aux: bool):
    """Trace op(*inputs, **settings) once; return (vjp, out, aux)."""
    aux: list = []

    def primary(boxed_inputs):
        result = op(*boxed_inputs, **settings)
        if not with_aux:
            return result
        out, *extra = result
        aux.extend(_plain(value) for value in extra)
        return out

    vjp, out = _trace(primary, inputs)
    return (lambda g: tuple(vjp(g))), out, tuple(aux)


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
    return out, DerivedCache(vjp, len(inputs), np.shape(out))


def forward_with_aux(op: Callable, *inputs, **settings) -> tuple[Any, tuple, DerivedCache]:
    """
    As `forward`, for an op returning ``(out, *aux)``; only ``out`` is differentiated.

    Returns a tuple of:
    - out: The op's first output
    - aux: Its other outputs, as plain arrays
    - cache: For `backward`
    """
    vjp, out, aux = _run_traced(op, inputs, settings, with_aux=True)
    return out, aux, DerivedCache(vjp, len(inputs), np.shape(out))


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
        # ValueError, as the reference's check_cache raises for a foreign cache: a notebook
        # catching bad input behaves the same with either side's layers.
        raise ValueError(
            f"cache must come from an autocnn *_forward function, got {type(cache).__name__}; "
            "caches of other implementations cannot be mixed with autocnn backward passes"
        )
    check_dout(dout, cache.out_shape)
    grads = cache.vjp(dout)
    return grads[0] if cache.num_inputs == 1 else grads


def value_and_grad_with_aux(objective: Callable[[dict], tuple], params: dict):
    """
    Value, gradient and side outputs of a scalar objective in one forward pass.

    Inputs:
    - objective: params -> (scalar value, aux); aux is returned, not differentiated
    - params: Dict name -> array, the objective's differentiable inputs

    Returns a tuple of:
    - value: The objective's value
    - grads: Dict with the keys of params, each gradient shaped like its parameter
    - aux: The objective's side outputs, as plain arrays
    """
    names = list(params)
    aux: list = []

    def primary(boxed_values):
        value, extra = objective(dict(zip(names, boxed_values)))
        aux.append(_plain(extra))
        return value

    vjp, value = _trace(primary, [params[name] for name in names])
    grads = vjp(np.ones_like(value))
    return value, dict(zip(names, grads)), aux[0]
