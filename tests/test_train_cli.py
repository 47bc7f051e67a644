"""``autocnn train`` (and ``autocnn data``): flags, one-line errors, the files a run writes,
the hand-written model under the same Solver, and a diverging run."""

import json
import re
import subprocess
import sys

import numpy as np
import pytest

from autocnn import cli
from autocnn.tools.train import TrainConfig, build_model
from tiny_cifar import TINY_SPLIT, write_tiny_cifar

ITERATION_LINE = re.compile(r"^\(Iteration \d+ / \d+\) loss: \d+\.\d{6}$")
EPOCH_LINE = re.compile(r"^\(Epoch \d+ / \d+\) train acc: \d\.\d{6}; val_acc: \d\.\d{6}$")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    return write_tiny_cifar(tmp_path_factory.mktemp("tiny_cifar")).parent


def tiny_args(data_dir, out, *extra):
    """A run of a few iterations of a small three-layer net on the tiny folder."""
    return ["train", "--data", str(data_dir), "--split", TINY_SPLIT, "--num-train", "200", "--epochs", "1",
            "--batch-size", "50", "--num-filters", "4", "--filter-size", "3", "--hidden-dim", "16",
            "--print-every", "1", "--seed", "5", "--out", str(out), *extra]


def run_cli(*args, timeout=120):
    return subprocess.run([sys.executable, "-m", "autocnn.cli", *args], capture_output=True, text=True,
                          timeout=timeout)


def given_flags(argv):
    """The config fields a command line sets (what autocnn.tools.train.main receives)."""
    args = cli.build_parser().parse_args(argv)
    return {name: value for name, value in vars(args).items() if name not in ("command", "func")}


def test_defaults_are_the_notebook_65_percent_configuration():
    config = TrainConfig.from_dict(given_flags(["train"])).resolved()
    assert (config.model, config.impl, config.num_filters, config.filter_size, config.hidden_dims) == \
        ("three-layer", "autocnn", 32, 7, [1000])
    assert (config.dtype, config.reg, config.weight_scale, config.update_rule, config.learning_rate) == \
        ("float32", 1e-3, 1e-3, "adam", 1e-3)
    assert (config.batch_size, config.num_epochs, config.lr_decay, config.print_every) == (1000, 10, 0.99, 10)
    assert config.split == [49000, 1000, 1000] and config.num_train is None


def test_convnet_flags_parse_into_the_architecture():
    given = given_flags(["train", "--model", "convnet", "--blocks", "32,32-64,64-128,128", "--hidden-dims", "256",
                         "--filter-size", "3", "--batchnorm", "--dropout", "--loss", "svm", "--weight-scale", "he",
                         "--lr", "5e-4", "--update-rule", "rmsprop", "--seed", "3", "--num-train", "100"])
    config = TrainConfig.from_dict(given).resolved()
    assert config.blocks == [[32, 32], [64, 64], [128, 128]] and config.hidden_dims == [256]
    assert (config.filter_size, config.use_batchnorm, config.dropout, config.loss) == (3, True, 0.5, "svm")
    assert (config.weight_scale, config.learning_rate, config.update_rule, config.seed) == ("he", 5e-4, "rmsprop", 3)
    model = build_model(dict_config(config, blocks=[[2], [3]], hidden_dims=[4]))
    assert model.params["W1"].shape == (2, 3, 3, 3) and model.params["W2"].shape == (3, 2, 3, 3)
    assert model.params["W3"].shape == (3 * 8 * 8, 4) and "gamma3" in model.params


def dict_config(config, **changes):
    return TrainConfig.from_dict({**config.to_dict(), **changes})


@pytest.mark.parametrize("argv, exit_code, fragment", [
    (["train", "--epochs", "x"], 2, "--epochs: invalid int value"),
    (["train", "--model", "resnet"], 2, "invalid choice: 'resnet'"),
    (["train", "--no-such-flag"], 2, "unrecognized arguments: --no-such-flag"),
    (["train", "--blocks", "8,8", "--data", "/nonexistent"], 1, "--blocks applies only to --model convnet"),
    (["train", "--model", "convnet", "--impl", "reference", "--data", "/nonexistent"], 1, "has no convnet"),
    (["train", "--data", "/nonexistent/cifar", "--out", "/nonexistent/out"], 1, "No CIFAR-10 found"),
    (["train", "--resume", "/nonexistent/run"], 1, "cannot resume"),
])
def test_bad_input_is_one_line_and_a_nonzero_exit(argv, exit_code, fragment):
    done = run_cli(*argv)
    assert done.returncode == exit_code, done.stderr
    assert "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert fragment in done.stderr and done.stderr.startswith("autocnn")


def test_a_short_run_writes_every_promised_file_and_key(tiny_data, tmp_path, capsys):
    out = tmp_path / "run"
    assert cli.main(tiny_args(tiny_data, out)) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[:6] == ["X_train: (200, 3, 32, 32)", "y_train: (200,)", "X_val: (100, 3, 32, 32)",
                           "y_val: (100,)", "X_test: (100, 3, 32, 32)", "y_test: (100,)"]
    log_lines = [line for line in printed if line.startswith("(")]
    assert len([line for line in log_lines if ITERATION_LINE.match(line)]) == 4
    assert len([line for line in log_lines if EPOCH_LINE.match(line)]) == 2

    for name in ("config.json", "train.log", "metrics.json", "params_final.npz", "params_best.npz",
                 "curves.png", "filters.png"):
        assert (out / name).is_file(), name
    assert (out / "checkpoints" / "run_epoch_1.json").is_file()
    assert (out / "train.log").read_text().splitlines() == printed
    for name in ("curves.png", "filters.png"):
        assert (out / name).read_bytes()[:8] == PNG_SIGNATURE

    metrics = json.loads((out / "metrics.json").read_text())
    for key in ("config", "loss_history", "train_acc_history", "val_acc_history", "best_val_acc", "test_acc",
                "wall_time_s", "train_time_s", "images_per_s", "machine", "status", "epochs_completed"):
        assert key in metrics, key
    assert metrics["status"] == "completed" and metrics["epochs_completed"] == 1
    assert len(metrics["loss_history"]) == 4 and len(metrics["val_acc_history"]) == 2
    assert metrics["best_val_acc"] == max(metrics["val_acc_history"])
    assert 0 <= metrics["test_acc"] <= 1 and metrics["images_per_s"] > 0
    assert {"platform", "cpu", "cores", "numpy", "load_average_start"} <= set(metrics["machine"])
    assert metrics["config"]["num_train"] == 200 and metrics["config"]["seed"] == 5

    with np.load(out / "params_best.npz") as best, np.load(out / "params_final.npz") as final:
        assert sorted(best.files) == sorted(final.files) == ["W1", "W2", "W3", "b1", "b2", "b3"]
        assert best["W1"].shape == (4, 3, 3, 3) and best["W1"].dtype == np.float32


def test_an_existing_run_is_not_overwritten_by_accident(tiny_data, tmp_path, capsys):
    out = tmp_path / "run"
    assert cli.main(tiny_args(tiny_data, out)) == 0
    assert cli.main(tiny_args(tiny_data, out)) == 1
    assert "already holds a run" in capsys.readouterr().err
    assert cli.main(tiny_args(tiny_data, out, "--overwrite")) == 0


def test_reference_impl_trains_with_the_same_solver_from_the_same_start(tiny_data, tmp_path):
    for impl in ("autocnn", "reference"):
        assert cli.main(tiny_args(tiny_data, tmp_path / impl, "--impl", impl)) == 0
    ours, theirs = (json.loads((tmp_path / impl / "metrics.json").read_text()) for impl in ("autocnn", "reference"))
    assert theirs["config"]["impl"] == "reference" and theirs["status"] == "completed"
    # Same seed, same initial weights, same first minibatch: the same first loss (float32).
    assert theirs["loss_history"][0] == pytest.approx(ours["loss_history"][0], rel=1e-5)
    assert len(theirs["loss_history"]) == len(ours["loss_history"])


def test_fc_model_runs_and_draws_its_first_layer_as_image_templates(tiny_data, tmp_path):
    out = tmp_path / "fc"
    argv = [arg for arg in tiny_args(tiny_data, out) if arg not in ("--num-filters", "4", "--filter-size", "3")]
    assert cli.main(argv + ["--model", "fc", "--hidden-dims", "16,12", "--batchnorm", "--dropout", "0.8"]) == 0
    with np.load(out / "params_final.npz") as params:
        assert params["W1"].shape == (3072, 16) and "gamma2" in params.files
    assert (out / "filters.png").is_file()


def test_divergence_is_one_line_and_keeps_the_last_good_checkpoint(tiny_data, tmp_path):
    out = tmp_path / "diverged"
    # Epoch 1 at learning rate 1 survives; the decay then makes it 1e20 and the loss NaN.
    argv = tiny_args(tiny_data, out)
    argv[argv.index("--epochs") + 1] = "3"
    done = run_cli(*argv, "--learning-rate", "1", "--lr-decay", "1e20")
    assert done.returncode == 1
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert re.search(r"Training diverged: loss is (nan|inf) at iteration \d+ / 12", done.stderr)
    assert "learning rate may be too high" in done.stderr
    assert "run_epoch_1.json" in done.stderr and (out / "checkpoints" / "run_epoch_1.json").is_file()
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["status"] == "diverged" and "iteration" in metrics["note"]


def test_time_budget_stops_training_and_says_where(tiny_data, tmp_path, capsys):
    out = tmp_path / "budget"
    argv = tiny_args(tiny_data, out)
    argv[argv.index("--epochs") + 1] = "50"
    assert cli.main(argv + ["--time-budget", "0.0001"]) == 0  # 6 ms: stops within the first epoch or two
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["status"] == "time budget reached"
    assert metrics["iterations_done"] < metrics["num_iterations"] == 200
    assert "time budget of 0.0001 min reached after iteration" in capsys.readouterr().out
    assert metrics["best_val_acc"] >= max(metrics["val_acc_history"])


def test_data_command_reports_sources_and_fails_when_nothing_is_there(tiny_data, tmp_path):
    found = run_cli("data", "--data", str(tiny_data))
    assert found.returncode == 0, found.stderr
    assert "* data_dir argument: " + str(tiny_data) in found.stdout and "batches folder" in found.stdout
    missing = run_cli("data", "--data", str(tmp_path / "none"))
    assert missing.returncode == 1 and "No CIFAR-10 at" in missing.stdout
