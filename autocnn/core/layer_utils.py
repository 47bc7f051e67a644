"""The notebook's "sandwich" layers (``nndl/layer_utils.py``), derived.

Each sandwich composes forward ops into one forward; its backward is autograd's
vector-Jacobian product of that composition (``autocnn.core.derive.backward``), so no
sandwich needs the backward of its parts. The conv sandwiches use the fast formulations.
"""

from __future__ import annotations

import numpy as np

from autocnn.core import ops
from autocnn.core.derive import DerivedCache, backward, forward, forward_with_aux
from autocnn.core.param_dicts import batchnorm_settings
from reference import validation


__all__ = ["affine_relu_forward", "affine_batchnorm_relu_forward", "conv_relu_forward",
           "conv_relu_pool_forward", "conv_batchnorm_relu_forward", "conv_batchnorm_relu_pool_forward",
           "affine_relu_backward", "affine_batchnorm_relu_backward", "conv_relu_backward",
           "conv_relu_pool_backward", "conv_batchnorm_relu_backward", "conv_batchnorm_relu_pool_backward"]


def _conv(x, w, b, conv_param: dict):
    return ops.conv2d(x, w, b, conv_param["stride"], conv_param["pad"], impl="fast")


def _pool(x, pool_param: dict):
    return ops.max_pool2d(x, pool_param["pool_height"], pool_param["pool_width"], pool_param["stride"], impl="fast")


def _affine_relu(x, w, b):
    return ops.relu(ops.affine(x, w, b))


def _affine_batchnorm_relu(x, w, b, gamma, beta, **bn):
    out, mean, var = ops.batchnorm(ops.affine(x, w, b), gamma, beta, **bn)
    return ops.relu(out), mean, var


def _conv_relu(x, w, b, conv_param):
    return ops.relu(_conv(x, w, b, conv_param))


def _conv_relu_pool(x, w, b, conv_param, pool_param):
    return _pool(_conv_relu(x, w, b, conv_param), pool_param)


def _conv_batchnorm_relu(x, w, b, gamma, beta, conv_param, **bn):
    out, mean, var = ops.spatial_batchnorm(_conv(x, w, b, conv_param), gamma, beta, **bn)
    return ops.relu(out), mean, var


def _conv_batchnorm_relu_pool(x, w, b, gamma, beta, conv_param, pool_param, **bn):
    out, mean, var = _conv_batchnorm_relu(x, w, b, gamma, beta, conv_param, **bn)
    return _pool(out, pool_param), mean, var


def _with_batchnorm(op, x, w, b, gamma, beta, bn_param: dict, **settings) -> tuple[np.ndarray, DerivedCache]:
    """Run a sandwich containing batchnorm and store its running statistics in bn_param."""
    # b holds one entry per output unit / channel, as gamma, beta and the statistics must.
    validation.check_sandwich_batchnorm(gamma, beta, bn_param, b.shape[0])
    bn = batchnorm_settings(bn_param, gamma.shape[0], x.dtype)
    out, (bn_param["running_mean"], bn_param["running_var"]), cache = forward_with_aux(
        op, x, w, b, gamma, beta, **settings, **bn
    )
    return out, cache


def affine_relu_forward(x, w, b) -> tuple[np.ndarray, DerivedCache]:
    """affine - relu. Returns (out, cache); affine_relu_backward returns (dx, dw, db)."""
    validation.check_affine(x, w, b)
    return forward(_affine_relu, x, w, b)


def affine_batchnorm_relu_forward(x, w, b, gamma, beta, bn_param: dict) -> tuple[np.ndarray, DerivedCache]:
    """affine - batchnorm - relu. The backward returns (dx, dw, db, dgamma, dbeta)."""
    validation.check_affine(x, w, b)
    return _with_batchnorm(_affine_batchnorm_relu, x, w, b, gamma, beta, bn_param)


def conv_relu_forward(x, w, b, conv_param: dict) -> tuple[np.ndarray, DerivedCache]:
    """conv - relu. The backward returns (dx, dw, db)."""
    validation.check_conv(x, w, b, conv_param)
    return forward(_conv_relu, x, w, b, conv_param=conv_param)


def conv_relu_pool_forward(x, w, b, conv_param: dict, pool_param: dict) -> tuple[np.ndarray, DerivedCache]:
    """conv - relu - max pool. The backward returns (dx, dw, db)."""
    validation.check_conv_pool(x, w, b, conv_param, pool_param)
    return forward(_conv_relu_pool, x, w, b, conv_param=conv_param, pool_param=pool_param)


def conv_batchnorm_relu_forward(x, w, b, gamma, beta, conv_param: dict, bn_param: dict) -> tuple[np.ndarray, DerivedCache]:
    """conv - spatial batchnorm - relu. The backward returns (dx, dw, db, dgamma, dbeta)."""
    validation.check_conv(x, w, b, conv_param)
    return _with_batchnorm(_conv_batchnorm_relu, x, w, b, gamma, beta, bn_param, conv_param=conv_param)


def conv_batchnorm_relu_pool_forward(
    x, w, b, gamma, beta, conv_param: dict, bn_param: dict, pool_param: dict
) -> tuple[np.ndarray, DerivedCache]:
    """conv - spatial batchnorm - relu - max pool. The backward returns (dx, dw, db, dgamma, dbeta)."""
    validation.check_conv_pool(x, w, b, conv_param, pool_param)
    return _with_batchnorm(
        _conv_batchnorm_relu_pool, x, w, b, gamma, beta, bn_param, conv_param=conv_param, pool_param=pool_param
    )


affine_relu_backward = backward
affine_batchnorm_relu_backward = backward
conv_relu_backward = backward
conv_relu_pool_backward = backward
conv_batchnorm_relu_backward = backward
conv_batchnorm_relu_pool_backward = backward
