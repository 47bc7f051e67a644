"""Figures of a training run: the notebook's learning curves and first-layer filters.

matplotlib runs on the non-interactive Agg backend, so plotting works on a
machine without a display and never opens a window; every function writes a PNG
and returns its path.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")  # Files only: no display is needed (or wanted) on a training machine.

import matplotlib.pyplot as plt  # noqa: E402  (must follow the backend choice)
import numpy as np  # noqa: E402

CIFAR10_SHAPE = (3, 32, 32)


def plot_training_curves(loss_history: Sequence[float], train_acc_history: Sequence[float],
                         val_acc_history: Sequence[float], path: str | os.PathLike,
                         title: str = "Training curves") -> Path:
    """
    Draw the notebook's cell [5]: loss per iteration above, train and val
    accuracy per epoch below.

    Inputs:
    - loss_history: Training loss of every iteration.
    - train_acc_history: Training accuracy at each check (one per epoch, the
      first one before any epoch has finished).
    - val_acc_history: Validation accuracy at the same checks.
    - path: Where to write the PNG.
    - title: Title of the figure.

    Returns:
    - The path of the written PNG.
    """
    figure, (loss_axes, acc_axes) = plt.subplots(2, 1, figsize=(10, 8))
    iterations = np.arange(1, len(loss_history) + 1)
    loss_axes.plot(iterations, loss_history, "o", markersize=3)
    loss_axes.set_xlabel("iteration")
    loss_axes.set_ylabel("loss")
    loss_axes.set_title("Training loss")
    loss_axes.grid(alpha=0.3)
    loss_axes.xaxis.get_major_locator().set_params(integer=True)

    # As in the notebook, check k is drawn at x = k, which is the epoch count.
    acc_axes.plot(np.arange(len(train_acc_history)), train_acc_history, "-o", label="train")
    acc_axes.plot(np.arange(len(val_acc_history)), val_acc_history, "-o", label="val")
    acc_axes.legend(loc="upper left")
    acc_axes.set_xlabel("epoch")
    acc_axes.set_ylabel("accuracy")
    acc_axes.set_ylim(0, 1)
    acc_axes.set_title("Classification accuracy")
    acc_axes.grid(alpha=0.3)
    if len(train_acc_history) > 1:
        acc_axes.xaxis.get_major_locator().set_params(integer=True)

    figure.suptitle(title)
    figure.tight_layout()
    return _save(figure, path)


def filters_as_images(W1: np.ndarray, image_shape: tuple[int, int, int] = CIFAR10_SHAPE) -> np.ndarray:
    """
    Turn first-layer weights into an array of RGB (or grey) images.

    Inputs:
    - W1: Conv filters of shape (F, C, HH, WW), or the weights of a first affine
      layer of shape (C * H * W, M), whose columns are image-sized templates.
    - image_shape: (C, H, W) of the input images, used for affine weights.

    Returns:
    - images: Array of shape (F, HH, WW, C), each image scaled to [0, 1] on its
      own (a constant filter becomes 0.5 grey).
    """
    W1 = np.asarray(W1, dtype=np.float64)
    if W1.ndim == 2 and W1.shape[0] == int(np.prod(image_shape)):
        W1 = W1.T.reshape((-1,) + tuple(image_shape))
    if W1.ndim != 4:
        raise ValueError(f"W1 must be conv filters (F, C, HH, WW) or affine weights "
                         f"({int(np.prod(image_shape))}, M), got shape {W1.shape}")
    images = W1.transpose(0, 2, 3, 1)
    low = images.min(axis=(1, 2, 3), keepdims=True)
    span = images.max(axis=(1, 2, 3), keepdims=True) - low
    # Per-filter scaling: filters differ in norm, and each should show its own pattern.
    scaled = np.where(span > 0, (images - low) / np.where(span > 0, span, 1.0), 0.5)
    return scaled


def filter_grid(images: np.ndarray, padding: int = 1, max_images: int = 64) -> np.ndarray:
    """
    Tile images of shape (F, H, W, C) into one (rows * (H + padding), ...) image
    on a white background, at most max_images of them, as square as possible.
    """
    images = images[:max_images]
    count, height, width, channels = images.shape
    columns = int(np.ceil(np.sqrt(count)))
    rows = int(np.ceil(count / columns))
    grid = np.ones((rows * (height + padding) + padding, columns * (width + padding) + padding, channels))
    for index in range(count):
        row, column = divmod(index, columns)
        top = padding + row * (height + padding)
        left = padding + column * (width + padding)
        grid[top:top + height, left:left + width] = images[index]
    return grid


def plot_first_layer_filters(W1: np.ndarray, path: str | os.PathLike, title: str = "First-layer filters",
                             max_filters: int = 64) -> Path:
    """
    Draw the first-layer filters (or affine templates) as a grid of small images.

    Inputs:
    - W1: First-layer weights, see filters_as_images.
    - path: Where to write the PNG.
    - title: Title of the figure.
    - max_filters: Draw at most this many filters.

    Returns:
    - The path of the written PNG.
    """
    images = filters_as_images(W1)
    grid = filter_grid(images, max_images=max_filters)
    figure, axes = plt.subplots(figsize=(6, 6.4))
    if grid.shape[2] == 3:
        axes.imshow(grid, interpolation="nearest")
    else:
        axes.imshow(grid[:, :, 0], cmap="gray", interpolation="nearest", vmin=0, vmax=1)
    axes.axis("off")
    shown = min(len(images), max_filters)
    axes.set_title(f"{title}\n{shown} of {len(images)} filters, "
                   f"{images.shape[1]}x{images.shape[2]}, each scaled to [0, 1]", fontsize=10)
    figure.tight_layout()
    return _save(figure, path)


def _save(figure: "plt.Figure", path: str | os.PathLike) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        figure.savefig(path, dpi=100)
    finally:
        plt.close(figure)  # Figures left open accumulate memory across runs.
    return path


def plot_gradcheck(runs: Sequence[tuple[str, Sequence[str], Sequence[float]]], tolerances: Sequence[float],
                   path: str | os.PathLike, exact: tuple[str, Sequence[float], float] | None = None,
                   title: str = "Gradient check") -> Path:
    """
    Bars of relative errors per parameter on a log scale, with each parameter's tolerance.

    Inputs:
    - runs: (label, parameter names, relative errors) for each run, drawn side by side.
    - tolerances: Tolerance of each parameter (same order as the names), drawn as a
      short black line over its group.
    - path: Where to write the PNG.
    - exact: Optional (label, relative errors, tolerance) of an exact comparison,
      drawn as one more bar per parameter with its tolerance as a dashed line.
    - title: Title of the figure.

    Returns:
    - The path of the written PNG.
    """
    names = list(runs[0][1])
    series = [(label, list(errors)) for label, _, errors in runs]
    if exact is not None:
        series.append((exact[0], list(exact[1])))
    figure, axes = plt.subplots(figsize=(10, 5.5))
    positions = np.arange(len(names))
    width = 0.8 / len(series)
    for offset, (label, errors) in enumerate(series):
        # A bar needs a positive height on a log axis; exact zeros are drawn at 1e-17.
        heights = np.maximum(np.asarray(errors, dtype=np.float64), 1e-17)
        axes.bar(positions - 0.4 + (offset + 0.5) * width, heights, width, label=label)
    for position, tolerance in zip(positions, tolerances):
        axes.hlines(tolerance, position - 0.45, position + 0.45, colors="black", linewidth=2)
    axes.plot([], [], color="black", linewidth=2, label="notebook tolerance (numerical)")
    if exact is not None:
        axes.axhline(exact[2], color="gray", linestyle="--", linewidth=1, label=f"tolerance of '{exact[0]}'")
    axes.set_yscale("log")
    axes.set_xticks(positions)
    axes.set_xticklabels(names)
    axes.set_xlabel("parameter")
    axes.set_ylabel("max relative error")
    axes.set_title(title)
    axes.legend(loc="upper right", fontsize=8)
    axes.grid(axis="y", alpha=0.3)
    figure.tight_layout()
    return _save(figure, path)
