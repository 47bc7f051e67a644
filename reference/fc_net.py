"""Hand-written fully connected network of arbitrary depth (the notebook's FullyConnectedNet)."""

from __future__ import annotations

import numpy as np

from .layer_utils import (
    affine_batchnorm_relu_backward,
    affine_batchnorm_relu_forward,
    affine_relu_backward,
    affine_relu_forward,
)
from .layers import (
    affine_backward,
    affine_forward,
    dropout_backward,
    dropout_forward,
    softmax_loss,
)
from .validation import check_fully_connected_net, check_model_input


__all__ = ["FullyConnectedNet"]


class FullyConnectedNet:
    """
    A fully-connected neural network with an arbitrary number of hidden layers,
    ReLU nonlinearities, and a softmax loss function. For a network with L layers,
    the architecture is

    {affine - [batchnorm] - relu - [dropout]} x (L - 1) - affine - softmax

    where batchnorm and dropout are optional. Learnable parameters are stored in
    self.params: W1..WL, b1..bL and, with batchnorm, gamma1..gamma{L-1} and
    beta1..beta{L-1}.
    """

    def __init__(
        self,
        hidden_dims: list[int],
        input_dim: int = 3 * 32 * 32,
        num_classes: int = 10,
        dropout: float = 1,
        use_batchnorm: bool = False,
        reg: float = 0.0,
        weight_scale: float = 1e-2,
        dtype: type = np.float32,
        seed: int | None = None,
    ) -> None:
        """
        Initialize a new FullyConnectedNet.

        Inputs:
        - hidden_dims: A list of integers giving the size of each hidden layer.
        - input_dim: An integer giving the size of the input.
        - num_classes: An integer giving the number of classes to classify.
        - dropout: Scalar between 0 and 1 giving the probability of KEEPING a unit.
          If dropout=1 then the network does not use dropout at all.
        - use_batchnorm: Whether or not the network should use batch normalization.
        - reg: Scalar giving L2 regularization strength.
        - weight_scale: Scalar giving the standard deviation for random
          initialization of the weights.
        - dtype: A numpy datatype object; all computations use this datatype.
        - seed: If not None, pass this random seed to the dropout layers, making
          the dropout masks deterministic (for gradient checking).

        Raises ValueError naming any argument out of range: sizes < 1, dropout
        outside (0, 1], weight_scale <= 0, reg < 0, or a dtype that is not a
        floating-point type.
        """
        check_fully_connected_net(hidden_dims, input_dim, num_classes, dropout, reg, weight_scale, dtype)
        self.use_batchnorm = use_batchnorm
        self.use_dropout = dropout < 1
        self.reg = reg
        self.num_layers = 1 + len(hidden_dims)
        self.dtype = dtype
        # What loss checks X and y against.
        self.input_shape = (input_dim,)
        self.num_classes = num_classes

        layer_dims = [input_dim, *hidden_dims, num_classes]
        self.params: dict[str, np.ndarray] = {}
        for layer, (fan_in, fan_out) in enumerate(zip(layer_dims[:-1], layer_dims[1:]), start=1):
            self.params[f"W{layer}"] = weight_scale * np.random.randn(fan_in, fan_out)
            self.params[f"b{layer}"] = np.zeros(fan_out)
            if use_batchnorm and layer < self.num_layers:
                self.params[f"gamma{layer}"] = np.ones(fan_out)
                self.params[f"beta{layer}"] = np.zeros(fan_out)

        self.dropout_param: dict = {}
        if self.use_dropout:
            self.dropout_param = {"mode": "train", "p": dropout}
            if seed is not None:
                self.dropout_param["seed"] = seed

        self.bn_params: list[dict] = []
        if use_batchnorm:
            self.bn_params = [{"mode": "train"} for _ in range(self.num_layers - 1)]

        for name, value in self.params.items():
            self.params[name] = value.astype(dtype)

    def loss(self, X: np.ndarray, y: np.ndarray | None = None):
        """
        Compute loss and gradient for the fully-connected net.

        Inputs:
        - X: Array of input data of shape (N, d_1, ..., d_k)
        - y: Array of labels, of shape (N,). y[i] gives the label for X[i].

        Returns:
        If y is None, run a test-time forward pass and return:
        - scores: Array of shape (N, C) giving classification scores.

        If y is not None, run a training-time forward and backward pass and return
        a tuple of:
        - loss: Scalar value giving the loss (data loss + L2 regularization)
        - grads: Dictionary with the same keys as self.params, mapping parameter
          names to gradients of the loss with respect to those parameters.
        """
        check_model_input(X, self.input_shape, y, self.num_classes)
        X = X.astype(self.dtype)
        mode = "test" if y is None else "train"
        if self.use_dropout:
            self.dropout_param["mode"] = mode
        for bn_param in self.bn_params:
            bn_param["mode"] = mode

        p = self.params
        hidden = X
        hidden_caches, dropout_caches = [], []
        for layer in range(1, self.num_layers):
            w, b = p[f"W{layer}"], p[f"b{layer}"]
            if self.use_batchnorm:
                gamma, beta = p[f"gamma{layer}"], p[f"beta{layer}"]
                bn_param = self.bn_params[layer - 1]
                hidden, cache = affine_batchnorm_relu_forward(hidden, w, b, gamma, beta, bn_param)
            else:
                hidden, cache = affine_relu_forward(hidden, w, b)
            hidden_caches.append(cache)
            if self.use_dropout:
                hidden, cache = dropout_forward(hidden, self.dropout_param)
                dropout_caches.append(cache)

        last = self.num_layers
        scores, scores_cache = affine_forward(hidden, p[f"W{last}"], p[f"b{last}"])

        if y is None:
            return scores

        data_loss, dscores = softmax_loss(scores, y)
        weight_names = [f"W{layer}" for layer in range(1, last + 1)]
        loss = data_loss + 0.5 * self.reg * sum(np.vdot(p[name], p[name]) for name in weight_names)  # vdot: no W*W temporary

        grads = {}
        dhidden, grads[f"W{last}"], grads[f"b{last}"] = affine_backward(dscores, scores_cache)
        for layer in reversed(range(1, last)):
            if self.use_dropout:
                dhidden = dropout_backward(dhidden, dropout_caches[layer - 1])
            if self.use_batchnorm:
                dhidden, dw, db, dgamma, dbeta = affine_batchnorm_relu_backward(
                    dhidden, hidden_caches[layer - 1]
                )
                grads[f"gamma{layer}"], grads[f"beta{layer}"] = dgamma, dbeta
            else:
                dhidden, dw, db = affine_relu_backward(dhidden, hidden_caches[layer - 1])
            grads[f"W{layer}"], grads[f"b{layer}"] = dw, db

        # d/dW of 0.5 * reg * sum(W ** 2) is reg * W.
        for name in weight_names:
            grads[name] += self.reg * p[name]

        return loss, grads
