"""Data augmentation: random crops of zero-padded images and horizontal flips, vectorized and
drawn from a RandomState."""

import json

import numpy as np
import pytest

from autocnn.training.augment import random_crops_and_flips


def candidates(image, pad):
    """Every crop of the zero-padded image, unflipped and flipped, by brute force."""
    channels, height, width = image.shape
    padded = np.zeros((channels, height + 2 * pad, width + 2 * pad), dtype=image.dtype)
    padded[:, pad:pad + height, pad:pad + width] = image
    found = {}
    for top in range(2 * pad + 1):
        for left in range(2 * pad + 1):
            crop = padded[:, top:top + height, left:left + width]
            found[(top, left, False)] = crop
            found[(top, left, True)] = crop[:, :, ::-1]
    return found


def which_crop(augmented, image, pad):
    matches = [key for key, crop in candidates(image, pad).items() if np.array_equal(crop, augmented)]
    assert len(matches) == 1, f"{len(matches)} crops match"
    return matches[0]


def test_shapes_dtype_and_the_input_is_left_alone():
    X = np.random.RandomState(0).randn(7, 3, 32, 32).astype(np.float32)
    before = X.copy()
    out = random_crops_and_flips(X, np.random.RandomState(1))
    assert out.shape == X.shape and out.dtype == np.float32
    assert np.array_equal(X, before)
    narrow = random_crops_and_flips(X[:, :1, :10, :6], np.random.RandomState(1), pad=2)
    assert narrow.shape == (7, 1, 10, 6)


def test_each_output_is_a_crop_or_flip_of_its_own_image():
    """Labels follow their images: output i is one of the crops of input i, not of another."""
    X = np.random.RandomState(2).randn(12, 3, 8, 8)
    out = random_crops_and_flips(X, np.random.RandomState(3), pad=2)
    for index in range(len(X)):
        which_crop(out[index], X[index], pad=2)
        for other in range(len(X)):
            if other != index:
                assert not any(np.array_equal(crop, out[index]) for crop in candidates(X[other], 2).values())


def test_offsets_and_flips_cover_every_choice():
    X = np.random.RandomState(4).randn(600, 1, 6, 6)
    out = random_crops_and_flips(X, np.random.RandomState(5), pad=1)
    chosen = [which_crop(out[index], X[index], pad=1) for index in range(len(X))]
    assert {(top, left) for top, left, _ in chosen} == {(top, left) for top in range(3) for left in range(3)}
    flips = sum(flipped for _, _, flipped in chosen)
    assert 240 < flips < 360  # Binomial(600, 1/2): 5 standard deviations either side


def test_the_same_seed_gives_the_same_batch():
    X = np.random.RandomState(6).randn(20, 3, 32, 32)
    first = random_crops_and_flips(X, np.random.RandomState(7))
    assert np.array_equal(first, random_crops_and_flips(X, np.random.RandomState(7)))
    assert not np.array_equal(first, random_crops_and_flips(X, np.random.RandomState(8)))
    rng = np.random.RandomState(7)
    random_crops_and_flips(X, rng)
    assert not np.array_equal(first, random_crops_and_flips(X, rng))  # the state moves on


def test_no_padding_and_no_flip_is_the_identity():
    X = np.random.RandomState(9).randn(5, 3, 4, 4)
    assert np.array_equal(random_crops_and_flips(X, np.random.RandomState(0), pad=0, flip=False), X)
    flipped = random_crops_and_flips(X, np.random.RandomState(0), pad=0)
    for index in range(len(X)):
        assert np.array_equal(flipped[index], X[index]) or np.array_equal(flipped[index], X[index, :, :, ::-1])


def test_bad_input_is_named():
    with pytest.raises(ValueError, match=r"images of shape \(N, C, H, W\), got an array of shape \(5, 3072\)"):
        random_crops_and_flips(np.zeros((5, 3072)), np.random.RandomState(0))
    with pytest.raises(ValueError, match="pad must be >= 0"):
        random_crops_and_flips(np.zeros((1, 3, 4, 4)), np.random.RandomState(0), pad=-1)


# ---------------------------------------------------------------------- the Solver's augment option


def tiny_problem(seed=0):
    """A small ConvNet with batchnorm and dropout on random images (2 epochs of 4 iterations)."""
    from autocnn.core.models import ConvNet

    rng = np.random.RandomState(seed)
    data = {"X_train": rng.randn(40, 3, 8, 8), "y_train": rng.randint(10, size=40),
            "X_val": rng.randn(20, 3, 8, 8), "y_val": rng.randint(10, size=20)}
    np.random.seed(seed)
    model = ConvNet(input_dim=(3, 8, 8), blocks=[(4,)], hidden_dims=(8,), use_batchnorm=True, dropout=0.8,
                    dtype=np.float64)
    return model, data


def solver_settings(**extra):
    return dict(update_rule="adam", optim_config={"learning_rate": 1e-2}, batch_size=10, num_epochs=3,
                num_train_samples=20, verbose=False, seed=4, **extra)


def test_augment_is_off_by_default_and_changes_training_when_on():
    from autocnn.training.solver import Solver

    plain_model, data = tiny_problem()
    plain = Solver(plain_model, data, **solver_settings())
    assert plain.augment is False
    plain.train()
    augmented_model, data = tiny_problem()
    augmented = Solver(augmented_model, data, **solver_settings(augment=True))
    augmented.train()
    assert not np.array_equal(plain.final_params["W1"], augmented.final_params["W1"])
    assert plain.loss_history[0] != augmented.loss_history[0]


def test_a_resumed_augmented_run_reproduces_the_uninterrupted_one(tmp_path):
    from autocnn.training.solver import Solver, checkpoint_paths

    model, data = tiny_problem()
    whole = Solver(model, data, **solver_settings(augment=True, checkpoint_name=tmp_path / "run"))
    whole.train()
    checkpoint, _ = checkpoint_paths(tmp_path / "run", 1)
    assert json.loads(checkpoint.read_text())["settings"]["augment"] is True
    fresh_model, data = tiny_problem()
    resumed = Solver.resume(checkpoint, fresh_model, data)
    assert resumed.augment is True and resumed.iteration == 4
    resumed.train()
    assert resumed.loss_history == whole.loss_history
    assert resumed.val_acc_history == whole.val_acc_history
    for name in whole.final_params:
        assert np.array_equal(resumed.final_params[name], whole.final_params[name]), name


def test_augment_needs_images_and_a_bool():
    from autocnn.training.solver import Solver

    model, data = tiny_problem()
    with pytest.raises(ValueError, match="augment must be True or False"):
        Solver(model, data, augment="yes")
    flat = dict(data, X_train=data["X_train"].reshape(40, -1))
    with pytest.raises(ValueError, match=r"X_train must have shape \(N, C, H, W\), got shape \(40, 192\)"):
        Solver(model, flat, augment=True)


def test_autocnn_train_augment(tmp_path):
    from autocnn import cli
    from tiny_cifar import TINY_SPLIT, write_tiny_cifar

    data_dir = write_tiny_cifar(tmp_path / "tiny").parent
    argv = ["train", "--data", str(data_dir), "--split", TINY_SPLIT, "--num-train", "100", "--epochs", "1",
            "--batch-size", "20", "--model", "convnet", "--blocks", "4", "--hidden-dims", "8", "--seed", "2",
            "--print-every", "1"]
    assert cli.main(argv + ["--out", str(tmp_path / "augmented"), "--augment"]) == 0
    assert cli.main(argv + ["--out", str(tmp_path / "plain")]) == 0
    augmented, plain = (json.loads((tmp_path / name / "metrics.json").read_text()) for name in ("augmented", "plain"))
    assert augmented["config"]["augment"] is True and plain["config"]["augment"] is False
    assert augmented["loss_history"] != plain["loss_history"]
