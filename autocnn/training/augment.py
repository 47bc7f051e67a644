"""Data augmentation of image minibatches: random crops of zero-padded images and horizontal flips.

The standard CIFAR-10 augmentation: pad each image with ``pad`` zeros on every side (zero is
the mean pixel, since the data is mean-subtracted), crop a window of the original size at a
random offset, and mirror it left-right with probability 1/2. Every random number comes
from the RandomState passed in, in a fixed order (row offsets, column offsets, flips), so a
Solver that draws from its own checkpointed RandomState reproduces its minibatches exactly.
"""

from __future__ import annotations

import numpy as np

from reference import validation


def random_crops_and_flips(X: np.ndarray, rng: np.random.RandomState, pad: int = 4,
                           flip: bool = True) -> np.ndarray:
    """
    Randomly crop and flip a minibatch of images, each independently.

    Inputs:
    - X: Images of shape (N, C, H, W).
    - rng: The np.random.RandomState to draw from (3 draws of N numbers each).
    - pad: Zeros added on each side before cropping; offsets are uniform in [0, 2 * pad].
    - flip: Mirror each image left-right with probability 1/2.

    Returns:
    - A new array of shape (N, C, H, W) and X's dtype; image i comes from X[i], so labels
      keep their order.
    """
    if not isinstance(X, np.ndarray) or X.ndim != 4:
        raise ValueError(f"augmentation needs images of shape (N, C, H, W), got "
                         f"{'an array of shape ' + str(X.shape) if isinstance(X, np.ndarray) else type(X).__name__}")
    validation.check_int("pad", pad, 0)
    count, channels, height, width = X.shape
    rows_offset = rng.randint(0, 2 * pad + 1, size=count)
    columns_offset = rng.randint(0, 2 * pad + 1, size=count)
    mirrored = rng.randint(0, 2, size=count).astype(bool) if flip else np.zeros(count, dtype=bool)

    padded = np.zeros((count, channels, height + 2 * pad, width + 2 * pad), dtype=X.dtype)
    padded[:, :, pad:pad + height, pad:pad + width] = X
    rows = rows_offset[:, None] + np.arange(height)  # (N, H): the window's rows in the padded image
    columns = columns_offset[:, None] + np.arange(width)  # (N, W)
    columns = np.where(mirrored[:, None], columns[:, ::-1], columns)  # a flip reads the columns backwards
    # One gather for the whole batch: out[n, c, i, j] = padded[n, c, rows[n, i], columns[n, j]].
    return padded[np.arange(count)[:, None, None, None], np.arange(channels)[None, :, None, None],
                  rows[:, None, :, None], columns[:, None, None, :]]
