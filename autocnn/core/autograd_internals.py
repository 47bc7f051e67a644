"""The few parts of autograd's internals autocnn uses, in one place.

autograd's public surface (``autograd.extend`` with its primitives, VJP registration,
``vspace`` and ``SparseObject``; ``make_vjp``, ``grad``) is not quite enough: ``autocnn.core.derive``
traces a function with one root node per input (``make_vjp`` takes a single input), and
the forward ops need to read the value inside a box. Those pieces come from
``autograd.tracer``, ``autograd.core`` and ``autograd.util``, which autograd does not
promise to keep; pyproject pins autograd below 2, and ``tests/test_autograd_internals.py``
compares what this module computes with ``make_vjp`` / ``grad``, so a release that
changes them breaks this file and that test, nothing else.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

from autograd.core import VJPNode, add_outgrads
from autograd.tracer import getval, isbox, new_box, trace_stack
from autograd.util import toposort

__all__ = ["backpropagate", "is_traced", "stop_gradient", "trace", "value_of"]


def value_of(x: Any) -> Any:
    """The array inside an autograd box (x itself when it is not traced)."""
    return getval(x)


def stop_gradient(x: Any) -> Any:
    """
    x's value, cut off from the trace: no gradient flows back through what is computed from it.

    Used where a forward op computes something whose derivative is zero or is supplied by
    a primitive of its own (which window holds a maximum, the patch matrix a GEMM
    primitive differentiates itself).
    """
    return getval(x)


def is_traced(x: Any) -> bool:
    """Whether x is an autograd box (being traced for a derivative)."""
    return isbox(x)


def trace(fun: Callable[[list], Any], leaves: Sequence) -> tuple[Any, Any, list]:
    """
    Run fun(boxed_leaves) once with one new autograd root node per leaf.

    Returns:
    - (end_value, end_node, roots): fun's output without its box, the node to start the
      backward pass from (None when the output depends on no leaf) and the leaves' roots.
    """
    with trace_stack.new_trace() as trace_id:
        roots = [VJPNode.new_root() for _ in leaves]
        out_box = fun([new_box(leaf, trace_id, root) for leaf, root in zip(leaves, roots)])
        traced = isbox(out_box) and out_box._trace == trace_id
        end_value, end_node = (out_box._value, out_box._node) if traced else (out_box, None)
    return end_value, end_node, roots


def backpropagate(g: Any, end_node: Any, roots: list) -> dict:
    """
    Run the backward pass of g from end_node, as autograd's own ``backward_pass`` does,
    but stop at the roots and keep each root's contributions apart.

    Returns:
    - Dict root -> list of the gradient contributions it received (unsummed).
    """
    parts: dict = {root: [] for root in roots}
    if end_node is None:  # the output depends on no input
        return parts
    if end_node in parts:  # the op returned an input unchanged
        parts[end_node].append(g)
        return parts
    pending = {end_node: (g, False)}
    for node in toposort(end_node):
        if node in parts:
            continue
        grad, _ = pending.pop(node)
        for parent, parent_grad in zip(node.parents, node.vjp(grad)):
            if parent in parts:
                parts[parent].append(parent_grad)
            else:
                pending[parent] = add_outgrads(pending.get(parent), parent_grad)
    return parts
