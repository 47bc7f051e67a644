"""Networks whose loss is written forward only and whose gradients autograd derives.

One forward serves every architecture: ``ConvNet`` is

    [[conv - (spatial batchnorm) - relu] x k - 2x2 max pool] x N
    - [affine - (batchnorm) - relu - (dropout)] x M - affine - softmax or SVM

and the notebook's ``ThreeLayerConvNet`` (one block of one conv, one hidden layer) and
``FullyConnectedNet`` (no conv blocks) are that network with the notebook's constructors.
Each model has the notebook's contract: ``params`` (dict name -> array) and
``loss(X, y=None)`` returning scores, or ``(loss, grads)`` with grads from
``autograd`` over the params dict. Layer i's parameters are ``W{i}``, ``b{i}`` and, with
batchnorm, ``gamma{i}`` / ``beta{i}``, as in ``reference``.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from autocnn.core import ops
from autocnn.core.blockwise import threads_of_our_own
from autocnn.core.derive import value_and_grad_with_aux
from autocnn.core.param_dicts import batchnorm_settings, dropout_keep
from reference import validation

__all__ = ["ConvNet", "ThreeLayerConvNet", "FullyConnectedNet"]


DATA_LOSSES = {"softmax": ops.softmax_loss, "svm": ops.svm_loss}
NORMALIZATIONS: tuple[str | None, ...] = (None, "batchnorm", "layernorm")


class ConvNet:
    """
    A configurable convolutional network (the notebook's "deeper architectures").

    Inputs:
    - input_dim: (C, H, W) of the images, or an int D for flat inputs without conv blocks
    - blocks: One tuple of filter counts per block; each block is that many
      conv(filter_size, stride 1, same padding) [- spatial batchnorm] - relu layers
      followed by a 2x2 max pool of stride 2. () gives a fully connected network.
    - filter_size: Odd side of every conv filter
    - hidden_dims: Widths of the hidden affine layers
    - num_classes: Number of scores
    - use_batchnorm: Spatial batchnorm after each conv, vanilla after each hidden affine
    - dropout: Probability of keeping a hidden affine unit; 1 means no dropout
    - loss: 'softmax' or 'svm'
    - weight_scale: Std of the Gaussian initial weights, or 'he' for sqrt(2 / fan_in)
    - reg: L2 strength; the loss adds 0.5 * reg * sum(W ** 2) over every W
    - dtype: dtype of params and computation (np.float32 to train, np.float64 to check)
    - seed: Dropout seed (the same mask at every call, as in the notebook); None = random
    - conv_impl, pool_impl: Formulation of conv and pooling (see ``autocnn.core.ops``)
    """

    def __init__(
        self,
        input_dim: int | Sequence[int] = (3, 32, 32),
        blocks: Sequence[Sequence[int]] = ((32, 32), (64, 64), (128, 128)),
        filter_size: int = 3,
        hidden_dims: Sequence[int] = (256,),
        num_classes: int = 10,
        use_batchnorm: bool = True,
        dropout: float = 1.0,
        loss: str = "softmax",
        weight_scale: float | str = "he",
        reg: float = 0.0,
        dtype=np.float32,
        seed: int | None = None,
        conv_impl: ops.ConvImpl = "fast",
        pool_impl: ops.PoolImpl = "fast",
    ) -> None:
        if loss not in DATA_LOSSES:
            raise ValueError(f"loss must be one of {sorted(DATA_LOSSES)}, got {loss!r}")
        if conv_impl not in ops.CONV_IMPLS:
            raise ValueError(f"conv_impl must be one of {ops.CONV_IMPLS}, got {conv_impl!r}")
        if pool_impl not in ops.POOL_IMPLS:
            raise ValueError(f"pool_impl must be one of {ops.POOL_IMPLS}, got {pool_impl!r}")
        validation.check_keep_probability("dropout", dropout)
        if not isinstance(blocks, (list, tuple)):
            raise ValueError(f"blocks must be a list of tuples of filter counts, got {blocks!r}")
        for index, block in enumerate(blocks):
            validation.check_sizes(f"blocks[{index}]", block)
        if isinstance(input_dim, (int, np.integer)) and not blocks:
            validation.check_int("input_dim", input_dim, 1)
        else:
            # Each block's 2x2 max pool of stride 2 must halve H and W exactly.
            validation.check_image_dim(input_dim, num_pools=len(blocks))
        validation.check_int("filter_size", filter_size, 1)
        if blocks and filter_size % 2 == 0:
            raise ValueError(f"filter_size must be odd so 'same' padding exists, got {filter_size}")
        validation.check_sizes("hidden_dims", hidden_dims)
        validation.check_int("num_classes", num_classes, 1)
        validation.check_weight_scale(weight_scale, he_allowed=True)
        validation.check_nonnegative_number("reg", reg)
        validation.check_float_dtype("dtype", dtype)
        self.input_shape = (int(input_dim),) if isinstance(input_dim, (int, np.integer)) else tuple(input_dim)
        self.num_classes = num_classes
        self.blocks = [tuple(block) for block in blocks]
        self.filter_size = filter_size
        self.hidden_dims = list(hidden_dims)
        self.use_batchnorm = use_batchnorm
        # How the hidden affine layers are normalised; FullyConnectedNet may choose 'layernorm'.
        self.normalization: str | None = "batchnorm" if use_batchnorm else None
        self.use_dropout = dropout < 1
        self.data_loss = DATA_LOSSES[loss]
        self.reg = reg
        self.dtype = dtype
        self.conv_impl = conv_impl
        self.pool_impl = pool_impl
        self.params: dict[str, np.ndarray] = {}
        self._init_params(input_dim, num_classes, weight_scale)
        num_normalised = sum(len(block) for block in self.blocks) + len(self.hidden_dims)
        self.bn_params: list[dict] = [{"mode": "train"} for _ in range(num_normalised if use_batchnorm else 0)]
        self.dropout_param: dict = {}
        if self.use_dropout:
            self.dropout_param = {"mode": "train", "p": dropout}
            if seed is not None:
                self.dropout_param["seed"] = seed

    # ------------------------------------------------------------------ parameters

    def _init_params(self, input_dim, num_classes: int, weight_scale: float | str) -> None:
        """W{i}, b{i} (and gamma{i}, beta{i}) layer by layer, drawn in layer order."""

        def gaussian(shape, fan_in):
            scale = np.sqrt(2.0 / fan_in) if weight_scale == "he" else weight_scale
            return (scale * np.random.randn(*shape)).astype(self.dtype)

        def add_layer(index, w_shape, fan_in, width, normalised):
            self.params[f"W{index}"] = gaussian(w_shape, fan_in)
            self.params[f"b{index}"] = np.zeros(width, dtype=self.dtype)
            if normalised:
                self.params[f"gamma{index}"] = np.ones(width, dtype=self.dtype)
                self.params[f"beta{index}"] = np.zeros(width, dtype=self.dtype)

        if isinstance(input_dim, (int, np.integer)):
            if self.blocks:
                raise ValueError(f"conv blocks need input_dim (C, H, W), got {input_dim!r}")
            channels, height, width = int(input_dim), 1, 1
        else:
            channels, height, width = input_dim
        index = 1
        for block in self.blocks:
            for filters in block:
                shape = (filters, channels, self.filter_size, self.filter_size)
                add_layer(index, shape, channels * self.filter_size**2, filters, self.use_batchnorm)
                channels, index = filters, index + 1
            if height < 2 or width < 2:
                raise ValueError(f"too many pooling blocks for input_dim {input_dim!r}")
            height, width = height // 2, width // 2
        fan_in = channels * height * width
        for hidden in self.hidden_dims:
            add_layer(index, (fan_in, hidden), fan_in, hidden, self.use_batchnorm)
            fan_in, index = hidden, index + 1
        add_layer(index, (fan_in, num_classes), fan_in, num_classes, normalised=False)

    @property
    def weight_names(self) -> list[str]:
        """The params the L2 penalty applies to."""
        return [name for name in self.params if name.startswith("W")]

    # --------------------------------------------------------------------- forward

    def forward(self, params: dict, X, train: bool) -> tuple:
        """
        Scores of a batch, written forward only.

        Inputs:
        - params: Dict like self.params (autograd may pass boxed arrays)
        - X: Input of shape (N, C, H, W), or (N, D) for a network without conv blocks
        - train: Batch statistics and dropout (True) or running statistics (False)

        Returns a tuple of:
        - scores: Array of shape (N, num_classes)
        - running_stats: Updated (mean, var) for each entry of self.bn_params
        """
        running_stats = []
        modes = iter(self.bn_params)

        def normalise(op, index, h):
            bn_param = dict(next(modes), mode="train" if train else "test")
            settings = batchnorm_settings(bn_param, h.shape[1], self.dtype)
            h, mean, var = op(h, params[f"gamma{index}"], params[f"beta{index}"], **settings)
            running_stats.append((mean, var))
            return h

        h, index = X, 1
        pad = (self.filter_size - 1) // 2
        # A block's last conv and its pool are one op where nothing comes between them.
        fuse_pool = not self.use_batchnorm and self.conv_impl == "fast" and self.pool_impl == "fast"
        for block in self.blocks:
            for position in range(len(block)):
                last = position == len(block) - 1
                if last and fuse_pool:
                    h = ops.conv2d_max_pool(h, params[f"W{index}"], params[f"b{index}"], pad, 2)
                else:
                    h = ops.conv2d(h, params[f"W{index}"], params[f"b{index}"], 1, pad, self.conv_impl)
                if self.use_batchnorm:
                    h = normalise(ops.spatial_batchnorm, index, h)
                if not last:
                    h = ops.relu(h)
                index += 1
            # The block's last relu, then the pool: computed as relu(max_pool(h)), the same
            # function (relu is monotone) with the same gradient (relu's slope at 0 is 0, so
            # ties at 0 carry none either way), its relu and VJP on a quarter of the values.
            if not fuse_pool:
                h = ops.max_pool2d(h, 2, 2, 2, self.pool_impl)
            h = ops.relu(h)
        for _ in self.hidden_dims:
            h = ops.affine(h, params[f"W{index}"], params[f"b{index}"])
            if self.normalization == "layernorm":
                # No running statistics: the same function in both modes; eps from the layer's
                # entry of bn_params (the notebook's ln_param), as the reference layer reads it.
                eps = self.bn_params[index - 1].get("eps", 1e-5)
                h = ops.layernorm(h, params[f"gamma{index}"], params[f"beta{index}"], eps)
            elif self.use_batchnorm:
                h = normalise(ops.batchnorm, index, h)
            h = ops.relu(h)
            if self.use_dropout:
                keep_prob, keep = dropout_keep(dict(self.dropout_param, mode="train" if train else "test"), h.shape)
                h = ops.dropout(h, keep_prob, keep)
            index += 1
        scores = ops.affine(h, params[f"W{index}"], params[f"b{index}"])
        return scores, running_stats

    def loss(self, X, y=None):
        """
        Evaluate the loss and its gradient for a minibatch.

        Inputs:
        - X: Array of input data of shape (N, d_1, ..., d_k)
        - y: Array of labels, of shape (N,). y[i] gives the label for X[i].

        Returns:
        If y is None, run a test-time forward pass and return:
        - scores: Array of shape (N, C) giving classification scores

        If y is not None, run a training-time forward and backward pass (gradients by
        autograd) and return a tuple of:
        - loss: Scalar value of the loss
        - grads: Dictionary with the same keys as self.params, mapping parameter names
          to gradients of the loss with respect to those parameters.
        """
        validation.check_model_input(X, self.input_shape, y, self.num_classes)
        X = X.astype(self.dtype, copy=False)
        train = y is not None
        for bn_param in self.bn_params:
            bn_param["mode"] = "train" if train else "test"
        if self.use_dropout:
            self.dropout_param["mode"] = "train" if train else "test"
        if not train:
            with threads_of_our_own():
                return self.forward(self.params, X, train=False)[0]

        def objective(params):
            scores, running_stats = self.forward(params, X, train=True)
            weights = [params[name] for name in self.weight_names]
            return self.data_loss(scores, y) + ops.l2_penalty(weights, self.reg), running_stats

        with threads_of_our_own():  # BLAS single-threaded, the layers split between autocnn's threads
            loss, grads, running_stats = value_and_grad_with_aux(objective, self.params)
        for bn_param, (mean, var) in zip(self.bn_params, running_stats):
            bn_param["running_mean"], bn_param["running_var"] = mean, var
        return loss, grads


class ThreeLayerConvNet(ConvNet):
    """
    The notebook's three-layer convolutional network:

    conv - relu - 2x2 max pool - affine - relu - affine - softmax

    with spatial batchnorm after the conv and vanilla batchnorm after the hidden affine
    when use_batchnorm. Same constructor and params as ``reference.cnn.ThreeLayerConvNet``;
    conv_impl / pool_impl choose the formulation of conv and pooling.
    """

    def __init__(
        self,
        input_dim: Sequence[int] = (3, 32, 32),
        num_filters: int = 32,
        filter_size: int = 7,
        hidden_dim: int = 100,
        num_classes: int = 10,
        weight_scale: float = 1e-3,
        reg: float = 0.0,
        dtype=np.float32,
        use_batchnorm: bool = False,
        conv_impl: ops.ConvImpl = "fast",
        pool_impl: ops.PoolImpl = "fast",
    ) -> None:
        # The notebook's argument names in the messages (ConvNet would say blocks[0][0]).
        validation.check_three_layer_convnet(input_dim, num_filters, filter_size, hidden_dim, num_classes,
                                        weight_scale, reg, dtype, he_allowed=True)
        super().__init__(
            input_dim=input_dim,
            blocks=((num_filters,),),
            filter_size=filter_size,
            hidden_dims=(hidden_dim,),
            num_classes=num_classes,
            use_batchnorm=use_batchnorm,
            weight_scale=weight_scale,
            reg=reg,
            dtype=dtype,
            conv_impl=conv_impl,
            pool_impl=pool_impl,
        )


class FullyConnectedNet(ConvNet):
    """
    The notebook's fully connected network:

    {affine - [batchnorm / layernorm] - relu - [dropout]} x (L - 1) - affine - softmax

    Same constructor and params as ``reference.fc_net.FullyConnectedNet``; dropout is the
    keep probability (1 = none) and seed makes its mask reproducible. normalization
    (CS231n 2018+) is 'batchnorm' (the same as use_batchnorm=True), 'layernorm' or None;
    either normalisation has params gamma{i} / beta{i} of shape (width,), and bn_params
    holds one dict per hidden layer (for layernorm only its 'eps' is read).
    """

    def __init__(
        self,
        hidden_dims: Sequence[int],
        input_dim: int = 3 * 32 * 32,
        num_classes: int = 10,
        dropout: float = 1,
        use_batchnorm: bool = False,
        reg: float = 0.0,
        weight_scale: float = 1e-2,
        dtype=np.float32,
        seed: int | None = None,
        normalization: str | None = None,
    ) -> None:
        validation.check_fully_connected_net(hidden_dims, input_dim, num_classes, dropout, reg, weight_scale, dtype,
                                        he_allowed=True)
        if normalization not in NORMALIZATIONS:
            raise ValueError(f"normalization must be one of {NORMALIZATIONS}, got {normalization!r}")
        if use_batchnorm and normalization not in (None, "batchnorm"):
            raise ValueError(f"use_batchnorm=True contradicts normalization={normalization!r}: give one of them")
        normalization = "batchnorm" if use_batchnorm else normalization
        super().__init__(
            input_dim=input_dim,
            blocks=(),
            hidden_dims=hidden_dims,
            num_classes=num_classes,
            # Either normalisation gets gamma / beta params and one bn_params dict per layer.
            use_batchnorm=normalization is not None,
            dropout=dropout,
            weight_scale=weight_scale,
            reg=reg,
            dtype=dtype,
            seed=seed,
        )
        self.normalization = normalization
        self.use_batchnorm = normalization == "batchnorm"
