"""The bench's PyTorch side: the same networks, written the way a PyTorch user would.

``autocnn bench`` times every training step against PyTorch on the CPU when torch is
installed (``pip install autocnn[compare]``). The PyTorch network here is built from an
autocnn ``ConvNet`` and copies its parameters, so both sides start from the same numbers:

* conv (same padding, stride 1) [- batchnorm2d] - relu, the block ending in a 2x2 max pool;
  affine [- batchnorm1d] - relu per hidden layer; the last affine; cross-entropy;
* the L2 term as autocnn writes it, 0.5 * reg * sum of every W squared, added to the loss;
* ``torch.optim.Adam`` with autocnn's Adam defaults (lr 1e-3, betas 0.9 / 0.999, eps 1e-8);
* as many intra-op threads as numpy's BLAS uses.

Affine weights are held as ``torch.nn.Linear`` holds them, (out, in): the layout PyTorch
users train with. Nothing in this module imports torch at import time.
"""

from __future__ import annotations

import importlib.util
from typing import Any, Callable

#: The speed-up over PyTorch (its median / a side's) cannot be computed: torch is missing.
NOT_INSTALLED = "not installed"


def torch_version() -> str | None:
    """torch's version if it can be imported, else None (the bench then has no PyTorch side)."""
    if importlib.util.find_spec("torch") is None:
        return None
    import torch

    return str(torch.__version__)


def blas_kernel() -> str | None:
    """The CPU kernel OpenBLAS chose (e.g. 'Haswell', 'SkylakeX'), where threadpoolctl can tell."""
    import numpy  # noqa: F401  (loads the BLAS threadpoolctl inspects)
    from threadpoolctl import threadpool_info

    for pool in threadpool_info():
        if pool.get("internal_api") == "openblas":
            return pool.get("architecture")
    return None


class TorchConvNet:
    """
    An autocnn ``ConvNet``'s twin in PyTorch, with a copy of its parameters.

    Inputs:
    - model: An autocnn ConvNet (or ThreeLayerConvNet); its blocks, filter size, hidden
      dims, batchnorm flag, reg, dtype and params define the network. Dropout and the SVM
      loss are not supported (no benchmarked network uses them).

    Attributes:
    - params: name -> torch tensor (requires_grad), named like the autocnn params; affine
      weights W{i} are stored transposed, (out, in), as torch.nn.Linear stores them
    """

    def __init__(self, model) -> None:
        import numpy as np
        import torch

        if model.use_dropout:
            raise ValueError("TorchConvNet does not support dropout")
        if model.data_loss.__name__ != "softmax_loss":
            raise ValueError("TorchConvNet supports the softmax loss only")
        self.blocks = [tuple(block) for block in model.blocks]
        self.hidden_dims = list(model.hidden_dims)
        self.use_batchnorm = model.use_batchnorm
        self.pad = (model.filter_size - 1) // 2
        self.reg = float(model.reg)
        self.dtype = {np.dtype(np.float32): torch.float32, np.dtype(np.float64): torch.float64}[np.dtype(model.dtype)]
        num_convs = sum(len(block) for block in self.blocks)
        self.affine_weights = {f"W{index}" for index in range(num_convs + 1, num_convs + len(self.hidden_dims) + 2)}
        self.params: dict[str, Any] = {}
        for name, value in model.params.items():
            value = value.T if name in self.affine_weights else value
            self.params[name] = torch.tensor(np.ascontiguousarray(value), dtype=self.dtype, requires_grad=True)
        self.running: dict[str, tuple[Any, Any]] = {}
        for name, value in model.params.items():
            if name.startswith("gamma"):
                width = value.shape[0]
                self.running[name[5:]] = (torch.zeros(width, dtype=self.dtype), torch.ones(width, dtype=self.dtype))

    def loss(self, X, y):
        """
        The training loss of a batch, as a 0-d torch tensor (backward() gives the grads).

        Inputs:
        - X: Torch tensor of shape (N, C, H, W)
        - y: Torch int64 tensor of shape (N,)
        """
        import torch.nn.functional as F

        p = self.params

        def normalise(h, index):
            mean, var = self.running[str(index)]
            # momentum 0.1 in torch's convention is autocnn's 0.9 for the old statistics.
            return F.batch_norm(h, mean, var, p[f"gamma{index}"], p[f"beta{index}"], training=True,
                                momentum=0.1, eps=1e-5)

        h, index = X, 1
        for block in self.blocks:
            for _ in block:
                h = F.conv2d(h, p[f"W{index}"], p[f"b{index}"], padding=self.pad)
                if self.use_batchnorm:
                    h = normalise(h, index)
                h = F.relu(h)
                index += 1
            h = F.max_pool2d(h, 2, 2)
        h = h.flatten(1)
        for _ in self.hidden_dims:
            h = F.linear(h, p[f"W{index}"], p[f"b{index}"])
            if self.use_batchnorm:
                h = normalise(h, index)
            h = F.relu(h)
            index += 1
        scores = F.linear(h, p[f"W{index}"], p[f"b{index}"])
        penalty = sum((value * value).sum() for name, value in p.items() if name.startswith("W"))
        return F.cross_entropy(scores, y) + 0.5 * self.reg * penalty

    def loss_and_grads(self, X, y) -> tuple[float, dict[str, Any]]:
        """
        Loss and gradients of a batch, in autocnn's layouts (to compare with model.loss).

        Inputs:
        - X: numpy array of shape (N, C, H, W); y: integer labels of shape (N,)

        Returns a tuple of:
        - loss: float
        - grads: name -> numpy array of the autocnn param's shape
        """
        import torch

        for value in self.params.values():
            value.grad = None
        loss = self.loss(torch.from_numpy(X).to(self.dtype), torch.from_numpy(y).long())
        loss.backward()
        grads = {}
        for name, value in self.params.items():
            grad = value.grad.numpy()
            grads[name] = grad.T if name in self.affine_weights else grad
        return float(loss.detach()), grads


def torch_trainer(model, X, y) -> Callable[[], float]:
    """
    The PyTorch twin of model's network, ready to train on (X, y) by Adam with as many
    threads as numpy's BLAS (torch's thread count is set for this process).

    Inputs:
    - model: An autocnn ConvNet whose params the twin copies
    - X: numpy array of shape (N, C, H, W); y: integer labels of shape (N,)

    Returns:
    - step: () -> loss; one training step (zero the grads, loss, backward, Adam); its
      attribute net is the TorchConvNet it trains
    """
    import torch

    from autocnn.core.blockwise import blas_threads

    torch.set_num_threads(blas_threads())  # as many threads as numpy's BLAS
    net = TorchConvNet(model)
    optimizer = torch.optim.Adam(list(net.params.values()), lr=1e-3, betas=(0.9, 0.999), eps=1e-8)
    images, labels = torch.from_numpy(X).to(net.dtype), torch.from_numpy(y).long()

    def step() -> float:
        optimizer.zero_grad(set_to_none=True)
        loss = net.loss(images, labels)
        loss.backward()
        optimizer.step()
        return float(loss.detach())

    step.net = net
    return step


def torch_step_side(make_model: Callable[[], Any], X, y) -> Callable[[], tuple[Callable[[], float], float]]:
    """
    A bench side (see ``autocnn.tools.bench.Case``) training make_model()'s twin.

    Returns:
    - prepare: () -> (run, first_loss); run() is one training step and first_loss the
      warm-up step's loss, on the shared params
    """

    def prepare():
        step = torch_trainer(make_model(), X, y)
        return step, step()

    return prepare
