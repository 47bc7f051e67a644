"""The thesis: forward passes only, and autograd derives every gradient.

``ops`` (the forward ops, written as the math), ``primitives`` (the few linear operators
whose VJP is stated, each its adjoint), ``derive`` (the one "backward from a forward"
helper), ``layers`` / ``layer_utils`` (the notebook's layer API, every ``*_backward``
derived), ``models`` (the notebook's networks), and their helpers (``param_dicts``,
``blockwise``, ``autograd_internals``).

Rule: imports numpy, scipy, autograd, threadpoolctl (to read and limit BLAS's threads),
itself and ``reference.validation`` (the shared input contract) only; nothing from
training, data, tools or the CLI.
"""
