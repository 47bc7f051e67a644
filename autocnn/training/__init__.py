"""Training: the Solver (checkpoints, resume), the update rules, and the allocator setting.

Rule: imports numpy, ``autocnn.core``, ``autocnn.files`` and ``reference.validation``;
nothing from data, tools or the CLI. The Solver trains any model with ``params`` and
``loss``, autocnn's or the hand-written one.
"""
