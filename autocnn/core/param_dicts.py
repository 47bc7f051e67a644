"""Reading the notebook's parameter dicts (bn_param, dropout_param), shared by layers and models."""

from __future__ import annotations

import numpy as np

from autocnn.core import ops


def is_train(param: dict, name: str) -> bool:
    """True for mode 'train', False for 'test'; anything else is an error naming the dict."""
    mode = param.get("mode")
    if mode not in ("train", "test"):
        raise ValueError(f"{name}['mode'] must be 'train' or 'test', got {mode!r}")
    return mode == "train"


def batchnorm_settings(bn_param: dict, size: int, dtype) -> dict:
    """
    The keyword arguments of ``ops.batchnorm`` / ``ops.spatial_batchnorm`` for a bn_param.

    Inputs:
    - bn_param: Dict with 'mode', optional 'eps', 'momentum', 'running_mean', 'running_var'
    - size: Number of features (D, or channels C) the statistics have
    - dtype: dtype of the zero statistics created on first use

    Returns:
    - Dict with running_mean, running_var, train, momentum and eps
    """
    return {
        "running_mean": bn_param.get("running_mean", np.zeros(size, dtype=dtype)),
        "running_var": bn_param.get("running_var", np.zeros(size, dtype=dtype)),
        "train": is_train(bn_param, "bn_param"),
        "momentum": bn_param.get("momentum", 0.9),
        "eps": bn_param.get("eps", 1e-5),
    }


def dropout_keep(dropout_param: dict, shape: tuple[int, ...]) -> tuple[float, np.ndarray | bool]:
    """
    The keep probability and mask a dropout_param asks for at this call.

    In test mode nothing is dropped: (1.0, True). In training the mask is drawn from
    ``np.random.RandomState(seed)`` when dropout_param has a 'seed' (the same mask at
    every call, as in the notebook), else from the global ``np.random``.
    """
    if not is_train(dropout_param, "dropout_param"):
        return 1.0, True
    keep_prob = dropout_param["p"]
    seed = dropout_param.get("seed")
    rng = np.random.RandomState(seed) if seed is not None else None
    return keep_prob, ops.dropout_mask(shape, keep_prob, rng)
