"""Hand-written three-layer convolutional network (the notebook's ThreeLayerConvNet)."""

from __future__ import annotations

import numpy as np

from .layer_utils import (
    affine_batchnorm_relu_backward,
    affine_batchnorm_relu_forward,
    affine_relu_backward,
    affine_relu_forward,
    conv_batchnorm_relu_pool_backward,
    conv_batchnorm_relu_pool_forward,
    conv_relu_pool_backward,
    conv_relu_pool_forward,
)
from .layers import affine_backward, affine_forward, softmax_loss
from .validation import check_model_input, check_three_layer_convnet


__all__ = ["ThreeLayerConvNet"]


class ThreeLayerConvNet:
    """
    A three-layer convolutional network with the following architecture:

    conv - [spatial batchnorm] - relu - 2x2 max pool - affine - [batchnorm] - relu
         - affine - softmax

    The network operates on minibatches of data that have shape (N, C, H, W)
    consisting of N images, each with height H and width W and with C input
    channels. The convolution has stride 1 and pads (filter_size - 1) // 2.
    """

    def __init__(
        self,
        input_dim: tuple[int, int, int] = (3, 32, 32),
        num_filters: int = 32,
        filter_size: int = 7,
        hidden_dim: int = 100,
        num_classes: int = 10,
        weight_scale: float = 1e-3,
        reg: float = 0.0,
        dtype: type = np.float32,
        use_batchnorm: bool = False,
    ) -> None:
        """
        Initialize a new network.

        Inputs:
        - input_dim: Tuple (C, H, W) giving size of input data
        - num_filters: Number of filters to use in the convolutional layer
        - filter_size: Size of filters to use in the convolutional layer
        - hidden_dim: Number of units to use in the fully-connected hidden layer
        - num_classes: Number of scores to produce from the final affine layer.
        - weight_scale: Scalar giving standard deviation for random initialization
          of weights.
        - reg: Scalar giving L2 regularization strength
        - dtype: numpy datatype to use for computation.
        - use_batchnorm: Whether to add spatial batchnorm after the convolution and
          batchnorm after the hidden affine layer (both before their ReLU).

        Raises ValueError naming any argument out of range: sizes < 1, an even
        filter_size, H or W not even (the 2x2 pool halves them), weight_scale <= 0,
        reg < 0, or a dtype that is not a floating-point type.
        """
        check_three_layer_convnet(
            input_dim, num_filters, filter_size, hidden_dim, num_classes, weight_scale, reg, dtype
        )
        self.use_batchnorm = use_batchnorm
        self.reg = reg
        self.dtype = dtype
        self.filter_size = filter_size
        # What loss checks X and y against.
        self.input_shape = tuple(input_dim)
        self.num_classes = num_classes

        C, H, W = input_dim
        pooled_dim = num_filters * (H // 2) * (W // 2)
        self.params = {
            "W1": weight_scale * np.random.randn(num_filters, C, filter_size, filter_size),
            "b1": np.zeros(num_filters),
            "W2": weight_scale * np.random.randn(pooled_dim, hidden_dim),
            "b2": np.zeros(hidden_dim),
            "W3": weight_scale * np.random.randn(hidden_dim, num_classes),
            "b3": np.zeros(num_classes),
        }
        self.bn_params: list[dict] = []
        if use_batchnorm:
            self.params.update(
                gamma1=np.ones(num_filters),
                beta1=np.zeros(num_filters),
                gamma2=np.ones(hidden_dim),
                beta2=np.zeros(hidden_dim),
            )
            self.bn_params = [{"mode": "train"}, {"mode": "train"}]

        for name, value in self.params.items():
            self.params[name] = value.astype(dtype)

    def loss(self, X: np.ndarray, y: np.ndarray | None = None):
        """
        Evaluate loss and gradient for the three-layer convolutional network.

        Inputs:
        - X: Array of input data of shape (N, C, H, W)
        - y: Array of labels, of shape (N,). y[i] gives the label for X[i].

        Returns:
        If y is None, run a test-time forward pass and return:
        - scores: Array of shape (N, num_classes) giving classification scores.

        If y is not None, run a training-time forward and backward pass and return
        a tuple of:
        - loss: Scalar value giving the loss (data loss + L2 regularization)
        - grads: Dictionary with the same keys as self.params, mapping parameter
          names to gradients of the loss with respect to those parameters.
        """
        check_model_input(X, self.input_shape, y, self.num_classes)
        X = X.astype(self.dtype)
        mode = "test" if y is None else "train"
        for bn_param in self.bn_params:
            bn_param["mode"] = mode

        p = self.params
        conv_param = {"stride": 1, "pad": (self.filter_size - 1) // 2}
        pool_param = {"pool_height": 2, "pool_width": 2, "stride": 2}

        # Forward: conv block, hidden affine block, output affine.
        if self.use_batchnorm:
            pooled, conv_cache = conv_batchnorm_relu_pool_forward(
                X, p["W1"], p["b1"], p["gamma1"], p["beta1"], conv_param, self.bn_params[0], pool_param
            )
            hidden, hidden_cache = affine_batchnorm_relu_forward(
                pooled, p["W2"], p["b2"], p["gamma2"], p["beta2"], self.bn_params[1]
            )
        else:
            pooled, conv_cache = conv_relu_pool_forward(X, p["W1"], p["b1"], conv_param, pool_param)
            hidden, hidden_cache = affine_relu_forward(pooled, p["W2"], p["b2"])
        scores, scores_cache = affine_forward(hidden, p["W3"], p["b3"])

        if y is None:
            return scores

        data_loss, dscores = softmax_loss(scores, y)
        weights = ("W1", "W2", "W3")
        loss = data_loss + 0.5 * self.reg * sum(np.vdot(p[name], p[name]) for name in weights)  # vdot: no W*W temporary

        # Backward: the same blocks in reverse order.
        grads = {}
        dhidden, grads["W3"], grads["b3"] = affine_backward(dscores, scores_cache)
        if self.use_batchnorm:
            dpooled, grads["W2"], grads["b2"], grads["gamma2"], grads["beta2"] = (
                affine_batchnorm_relu_backward(dhidden, hidden_cache)
            )
            _, grads["W1"], grads["b1"], grads["gamma1"], grads["beta1"] = (
                conv_batchnorm_relu_pool_backward(dpooled, conv_cache)
            )
        else:
            dpooled, grads["W2"], grads["b2"] = affine_relu_backward(dhidden, hidden_cache)
            _, grads["W1"], grads["b1"] = conv_relu_pool_backward(dpooled, conv_cache)

        # d/dW of 0.5 * reg * sum(W ** 2) is reg * W.
        for name in weights:
            grads[name] += self.reg * p[name]

        return loss, grads
