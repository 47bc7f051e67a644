"""A tiny CIFAR-10 folder in the official python layout, for fast tests of training code.

The images are learnable on purpose: each class has its own mean colour, plus noise, so a
few iterations already move the accuracy away from chance.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

IMAGES_PER_BATCH = 100
#: get_CIFAR10_data sizes that fit the tiny folder (5 x 100 training images, 100 test images).
TINY_SPLIT = "400,100,100"


def _batch(rng: np.random.RandomState, count: int, label: str) -> dict:
    labels = rng.randint(10, size=count)
    colours = np.linspace(20, 235, 10)[:, None] * np.array([1.0, 0.5, 0.25])[None, :]
    colours = np.stack([colours[:, 0], colours[::-1, 1], colours[(np.arange(10) * 3) % 10, 2]], axis=1)
    images = colours[labels][:, :, None, None] + 25 * rng.randn(count, 3, 32, 32)
    data = np.clip(images, 0, 255).astype(np.uint8).reshape(count, 3072)
    return {"data": data, "labels": labels.tolist(), "batch_label": label,
            "filenames": [f"img_{index}.png" for index in range(count)]}


def write_tiny_cifar(root: str | Path, seed: int = 0) -> Path:
    """
    Write root/cifar-10-batches-py with data_batch_1..5 and test_batch of
    IMAGES_PER_BATCH images each (pickle protocol 2, as the official files) and
    batches.meta.

    Returns:
    - The path of the cifar-10-batches-py folder.
    """
    rng = np.random.RandomState(seed)
    folder = Path(root) / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    names = [f"data_batch_{index}" for index in range(1, 6)] + ["test_batch"]
    for name in names:
        with open(folder / name, "wb") as handle:
            pickle.dump(_batch(rng, IMAGES_PER_BATCH, name), handle, protocol=2)
    meta = {"label_names": ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                            "ship", "truck"], "num_cases_per_batch": IMAGES_PER_BATCH, "num_vis": 3072}
    with open(folder / "batches.meta", "wb") as handle:
        pickle.dump(meta, handle, protocol=2)
    return folder
