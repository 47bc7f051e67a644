"""A deeper ConvNet with batchnorm, hand-written: forward layers and backward passes by hand.

[[conv - spatial batchnorm - relu] x k - 2x2 max pool] x N - [affine - batchnorm - relu] x M
- affine - softmax, from the reference's own layers; the baseline autocnn's ConvNet is timed
against.
"""

from __future__ import annotations

import numpy as np

from . import fast_layers, layer_utils, layers

__all__ = ["ConvNet"]


class ConvNet:
    """
    The deeper ConvNet of the notebook's "things you should try" (autocnn's
    ``ConvNet`` with batchnorm), assembled from the hand-written layers, so that
    network has a hand-written baseline too:

    [[conv - spatial batchnorm - relu] x k - 2x2 max pool] x N
    - [affine - batchnorm - relu] x M - affine - softmax

    Inputs:
    - template: Any model with the same architecture fields (blocks, hidden_dims,
      filter_size, reg, dtype, use_batchnorm=True, use_dropout=False), params and
      bn_params, e.g. an ``autocnn.core.models.ConvNet``: its parameters, batchnorm
      state and settings are copied, so both sides start from the same weights.
    """

    def __init__(self, template) -> None:
        if not template.use_batchnorm or template.use_dropout:
            raise ValueError("reference.convnet.ConvNet mirrors ConvNet with batchnorm and without dropout only")
        self.blocks = template.blocks
        self.hidden_dims = template.hidden_dims
        self.pad = (template.filter_size - 1) // 2
        self.reg = template.reg
        self.dtype = template.dtype
        self.params = {name: value.copy() for name, value in template.params.items()}
        self.bn_params = [dict(bn_param) for bn_param in template.bn_params]

    def loss(self, X, y):
        """(loss, grads) of a training batch, by the reference's forward and backward layers."""
        p, X = self.params, X.astype(self.dtype)
        for bn_param in self.bn_params:
            bn_param["mode"] = "train"
        conv_param = {"stride": 1, "pad": self.pad}
        pool_param = {"pool_height": 2, "pool_width": 2, "stride": 2}
        caches, h, index = [], X, 1
        for block in self.blocks:
            for _ in block:
                h, cache = layer_utils.conv_batchnorm_relu_forward(
                    h, p[f"W{index}"], p[f"b{index}"], p[f"gamma{index}"], p[f"beta{index}"], conv_param,
                    self.bn_params[index - 1])
                caches.append(("conv", index, cache))
                index += 1
            h, cache = fast_layers.max_pool_forward_fast(h, pool_param)
            caches.append(("pool", None, cache))
        for _ in self.hidden_dims:
            h, cache = layer_utils.affine_batchnorm_relu_forward(
                h, p[f"W{index}"], p[f"b{index}"], p[f"gamma{index}"], p[f"beta{index}"], self.bn_params[index - 1])
            caches.append(("hidden", index, cache))
            index += 1
        scores, cache = layers.affine_forward(h, p[f"W{index}"], p[f"b{index}"])
        data_loss, dh = layers.softmax_loss(scores, y)
        weights = [name for name in p if name.startswith("W")]
        loss = data_loss + 0.5 * self.reg * sum(np.sum(p[name] * p[name]) for name in weights)

        grads = {}
        dh, grads[f"W{index}"], grads[f"b{index}"] = layers.affine_backward(dh, cache)
        for kind, i, cache in reversed(caches):
            if kind == "pool":
                dh = fast_layers.max_pool_backward_fast(dh, cache)
                continue
            backward = layer_utils.conv_batchnorm_relu_backward if kind == "conv" \
                else layer_utils.affine_batchnorm_relu_backward
            dh, grads[f"W{i}"], grads[f"b{i}"], grads[f"gamma{i}"], grads[f"beta{i}"] = backward(dh, cache)
        for name in weights:
            grads[name] += self.reg * p[name]
        return loss, grads
