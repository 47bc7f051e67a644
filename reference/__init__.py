"""Hand-written forward and backward passes (numpy only): the oracle autocnn is tested against.

Mirrors the notebook's ``nndl/`` and ``utils/`` file names so a student finds their way.
This package imports nothing from ``autocnn``.
"""
