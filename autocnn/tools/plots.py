"""Figures of a training run: the notebook's learning curves and first-layer filters.

Figures are built as ``matplotlib.figure.Figure`` objects, without pyplot, so importing or
calling this module never changes the matplotlib backend or opens a window: in Jupyter a
returned figure shows inline, and the command line writes the same figure to a PNG. Every
``plot_*`` function takes an optional ``path``: given one it writes the PNG and returns its
path, without one it returns the Figure.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from matplotlib.ticker import NullFormatter

CIFAR10_SHAPE = (3, 32, 32)


def plot_training_curves(loss_history: Sequence[float], train_acc_history: Sequence[float],
                         val_acc_history: Sequence[float], path: str | os.PathLike,
                         title: str = "Training curves") -> Path | Figure:
    """
    Draw the notebook's cell [5]: loss per iteration above, train and val
    accuracy per epoch below.

    Inputs:
    - loss_history: Training loss of every iteration.
    - train_acc_history: Training accuracy at each check (one per epoch, the
      first one before any epoch has finished).
    - val_acc_history: Validation accuracy at the same checks.
    - path: Where to write the PNG; None returns the Figure instead.
    - title: Title of the figure.

    Returns:
    - The path of the written PNG, or the Figure when path is None.
    """
    figure = Figure(figsize=(10, 8))
    (loss_axes, acc_axes) = figure.subplots(2, 1)
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


def plot_first_layer_filters(W1: np.ndarray, path: str | os.PathLike | None = None, title: str = "First-layer filters",
                             max_filters: int = 64) -> Path | Figure:
    """
    Draw the first-layer filters (or affine templates) as a grid of small images.

    Inputs:
    - W1: First-layer weights, see filters_as_images.
    - path: Where to write the PNG; None returns the Figure instead.
    - title: Title of the figure.
    - max_filters: Draw at most this many filters.

    Returns:
    - The path of the written PNG, or the Figure when path is None.
    """
    images = filters_as_images(W1)
    grid = filter_grid(images, max_images=max_filters)
    figure = Figure(figsize=(6, 6.4))
    axes = figure.subplots()
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


def _save(figure: Figure, path: str | os.PathLike | None, dpi: int = 100) -> Path | Figure:
    if path is None:
        return figure
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=dpi)  # no pyplot: nothing keeps the figure alive after this
    return path


def plot_gradcheck(runs: Sequence[tuple[str, Sequence[str], Sequence[float]]], tolerances: Sequence[float],
                   path: str | os.PathLike | None = None, exact: tuple[str, Sequence[float], float] | None = None,
                   title: str = "Gradient check") -> Path | Figure:
    """
    Bars of relative errors per parameter on a log scale, with each parameter's tolerance.

    Inputs:
    - runs: (label, parameter names, relative errors) for each run, drawn side by side.
    - tolerances: Tolerance of each parameter (same order as the names), drawn as a
      short black line over its group.
    - path: Where to write the PNG; None returns the Figure instead.
    - exact: Optional (label, relative errors, tolerance) of an exact comparison,
      drawn as one more bar per parameter with its tolerance as a dashed line.
    - title: Title of the figure.

    Returns:
    - The path of the written PNG, or the Figure when path is None.
    """
    names = list(runs[0][1])
    series = [(label, list(errors)) for label, _, errors in runs]
    if exact is not None:
        series.append((exact[0], list(exact[1])))
    figure = Figure(figsize=(10, 5.5))
    axes = figure.subplots()
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


def plot_step_sizes(study: dict, path: str | os.PathLike | None = None) -> Path | Figure:
    """The report's step-size study: max relative error of centred differences against h, log-log."""

    h = np.array(study["h"])
    fig = Figure(figsize=(11, 5.5))
    ax = fig.subplots()
    markers = iter("osd^v<>")
    for label, errors in study["curves"].items():
        ax.loglog(h, np.maximum(errors, 1e-16), marker=next(markers), label=label)
    eps = np.finfo(np.float64).eps
    ax.loglog(h, 1e-2 * (h / h[0]) ** 2, ":", color="gray", label="truncation error ~ h² (slope 2)")
    ax.loglog(h, eps / h, "--", color="gray", label="rounding error ~ ε / h (slope -1)")
    for tol, text in [(1e-2, "notebook tolerance for W1, W2 (1e-2)"), (1e-5, "notebook tolerance otherwise (1e-5)")]:
        ax.axhline(tol, color="tab:red", linewidth=0.8, alpha=0.6)
        ax.text(h[0], tol * 1.4, "  " + text, color="tab:red", fontsize=8, ha="left")
    ax.set_xlabel("finite-difference step h  (smaller to the right)")
    ax.set_ylabel("max relative error vs autograd's exact gradient")
    ax.set_title("Numerical gradient error vs step size: centred differences against the exact gradient (float64)")
    ax.set_ylim(1e-13, 3.0)
    ax.invert_xaxis()
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    return _save(fig, path, dpi=110)


def plot_lines_of_code(loc: dict, path: str | os.PathLike | None = None) -> Path | Figure:
    """The report's lines of code per layer: forward + hand-written backward against forward only."""

    rows = [(r["layer"], r["autocnn"], r["reference"]) for r in loc["layers"]]
    rows.append(("layer_utils sandwiches", loc["sandwiches"]["autocnn"], loc["sandwiches"]["reference"]))
    rows += [(r["model"] + " loss (model)¹", r["autocnn"], r["reference"]) for r in loc["models"]]
    labels = [r[0] for r in rows]
    position = np.arange(len(rows))
    fig = Figure(figsize=(8, 6))
    ax = fig.subplots()
    ax.barh(position - 0.2, [r[2] for r in rows], height=0.4, label="reference: forward + hand-written backward")
    ax.barh(position + 0.2, [r[1] for r in rows], height=0.4, label="autocnn: forward only (autograd derives the rest)")
    ax.set_yticks(position, labels)
    ax.invert_yaxis()
    ax.set_xlabel("lines of code (no blank lines, comments or docstrings)\n"
                  "¹ autocnn: ConvNet.forward + loss, one code path shared by all its models")
    ax.set_title("Code to write per layer: hand-written backprop vs forward only")
    ax.legend(fontsize=8, loc="upper right")
    ax.grid(True, axis="x", alpha=0.3)
    fig.tight_layout()
    return _save(fig, path, dpi=110)


def plot_speed(rows: list[dict], quick: bool = False, path: str | os.PathLike | None = None) -> Path | Figure:
    """The report's speed bars: time ratio autocnn / reference per case (rows of name and ratio), log scale."""

    colours = {"train step": "tab:red", "forward+backward": "tab:blue", "forward": "tab:gray"}

    def phase(name: str) -> str:
        return next(key for key in colours if key in name) if any(key in name for key in colours) else "forward"

    fig = Figure(figsize=(10, 0.32 * len(rows) + 1.8))
    ax = fig.subplots()
    position = np.arange(len(rows))
    ratios = np.array([r["ratio"] for r in rows])
    # Bars grow from 1 (equal speed): to the right where the hand-written code is faster.
    ax.barh(position, ratios - 1.0, left=1.0, color=[colours[phase(r["name"])] for r in rows])
    ax.axvline(1.0, color="black", linewidth=0.9)
    ax.set_xscale("log")
    for y, ratio in zip(position, ratios):
        ax.text(ratio * (1.04 if ratio >= 1 else 0.96), y, f"{ratio:.2f}×", va="center",
                ha="left" if ratio >= 1 else "right", fontsize=7)
    ax.set_xlim(min(0.5, ratios.min() / 1.6), max(2.0, ratios.max() * 1.6))
    ax.set_yticks(position, [r["name"] for r in rows], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("time ratio autocnn / reference (log scale; < 1: autocnn faster, > 1: hand-written faster)")
    quick = " (quick run: tiny sizes)" if quick else ""
    ax.set_title("Speed: autograd-derived backward vs hand-written backprop" + quick)
    handles = [Rectangle((0, 0), 1, 1, color=colour) for colour in colours.values()]
    ax.legend(handles, list(colours), fontsize=8, ncol=3, loc="upper center", bbox_to_anchor=(0.5, -0.045))
    ticks = [t for t in (0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100) if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
    ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.grid(True, axis="x", which="both", alpha=0.3)
    fig.tight_layout()
    return _save(fig, path, dpi=110)


def _cpu_count() -> int:
    import os

    return os.cpu_count() or 1


def plot_sweep_scatter(records: Sequence[dict], path: str | os.PathLike | None = None,
                       names: Sequence[str] = ("learning_rate", "reg")) -> Path | Figure:
    """
    A sweep's best validation accuracy against its learning rate and reg, on log axes
    (the notebook's coarse-to-fine plot); failed trials drawn as red crosses at 0.

    Inputs:
    - records: Trial records with 'params' or 'config' (holding the named settings),
      'status' and 'best_val_acc'.
    - path: Where to write the PNG; None returns the Figure instead.
    - names: The settings on the x axes, one panel each.

    Returns:
    - The path of the written PNG, or the Figure when path is None.
    """
    figure = Figure(figsize=(5 * len(names), 4.2))
    axes_row = np.atleast_1d(figure.subplots(1, len(names)))
    for axes, name in zip(axes_row, names):
        good, bad = [], []
        for record in records:
            value = record.get("params", {}).get(name, record.get("config", {}).get(name))
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0:
                continue
            acc = record.get("best_val_acc")
            if record.get("status") in ("diverged", "failed", "lost") or not isinstance(acc, float):
                bad.append(value)
            else:
                good.append((value, acc, record.get("stage") == "fine"))
        for fine, marker, label in ((False, "o", "coarse"), (True, "s", "fine")):
            points = [(value, acc) for value, acc, is_fine in good if is_fine == fine]
            if points:
                axes.scatter(*zip(*points), marker=marker, label=label, alpha=0.8)
        if bad:
            axes.scatter(bad, np.zeros(len(bad)), marker="x", color="tab:red", label="diverged / failed")
        axes.set_xscale("log")
        axes.xaxis.set_minor_formatter(NullFormatter())  # minor labels of a narrow range overlap
        axes.set_xlabel(name)
        axes.set_ylabel("best validation accuracy")
        axes.set_ylim(bottom=-0.02)
        axes.grid(alpha=0.3, which="both")
        if good or bad:
            axes.legend(fontsize=8)
    figure.suptitle(f"Sweep: {len(records)} trials")
    figure.tight_layout()
    return _save(figure, path)


def plot_sweep_curves(records: Sequence[dict], path: str | os.PathLike | None = None) -> Path | Figure:
    """
    Learning curves of a sweep's best trials: training loss per iteration (and its moving
    average) above, validation accuracy at each check below.

    Inputs:
    - records: Trial records with 'trial', 'loss_history', 'val_acc_history', best first.
    - path: Where to write the PNG; None returns the Figure instead.

    Returns:
    - The path of the written PNG, or the Figure when path is None.
    """
    figure = Figure(figsize=(10, 8))
    loss_axes, acc_axes = figure.subplots(2, 1)
    for record in records:
        losses = np.asarray(record.get("loss_history") or [], dtype=np.float64)
        label = f"{record['trial']} ({record.get('best_val_acc', 0):.3f})"
        if len(losses):
            window = max(1, min(25, len(losses) // 10))
            smooth = np.convolve(losses, np.ones(window) / window, mode="valid")
            line, = loss_axes.plot(np.arange(window, len(losses) + 1), smooth, label=label)
            loss_axes.plot(np.arange(1, len(losses) + 1), losses, ".", markersize=1, alpha=0.3,
                           color=line.get_color())
        val = record.get("val_acc_history") or []
        acc_axes.plot(np.arange(len(val)), val, "-o", markersize=3, label=label)
    loss_axes.set_xlabel("iteration")
    loss_axes.set_ylabel("training loss")
    loss_axes.set_title("Training loss (moving average; dots: each minibatch)")
    acc_axes.set_xlabel("accuracy check (epoch; the last one at the trial's stop)")
    acc_axes.set_ylabel("validation accuracy")
    for axes in (loss_axes, acc_axes):
        axes.grid(alpha=0.3)
        if records:
            axes.legend(fontsize=8)
    figure.suptitle(f"Learning curves of the {len(records)} best trials")
    figure.tight_layout()
    return _save(figure, path)
