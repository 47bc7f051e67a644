"""Every experiment script in its smoke mode (so none can rot), and the gradient-check
table behind ``autocnn gradcheck`` / ``experiments.gradcheck``."""

import functools
import importlib
import json
import subprocess
import sys

import numpy as np
import pytest

from autocnn import cli
from autocnn.tools import gradcheck
from autocnn.tools.gradcheck import KINK, ROUNDING, UNEXPLAINED, _failure_causes, format_gradcheck, notebook_gradient_check
from tiny_cifar import write_tiny_cifar

TRAINING_EXPERIMENTS = ["overfit_small", "train_one_epoch", "cifar10_65", "beyond_65"]


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    return write_tiny_cifar(tmp_path_factory.mktemp("tiny_cifar")).parent


@pytest.mark.parametrize("name", TRAINING_EXPERIMENTS)
def test_training_experiment_smoke_run(name, tiny_data, tmp_path, capsys):
    experiment = importlib.import_module(f"experiments.{name}")
    assert experiment.main(["--smoke", "--data", str(tiny_data), "--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert "(Iteration 1 / " in printed and "(Epoch 1 / 1) train acc: " in printed
    assert "-> not applicable (smoke run)" in printed
    for file_name in ("metrics.json", "train.log", "curves.png", "filters.png", "config.json"):
        assert (tmp_path / file_name).is_file(), file_name
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["status"] == "completed" and metrics["expectations"]
    assert all(expectation["met"] is None for expectation in metrics["expectations"])


def test_experiment_configs_are_the_notebook_cells():
    from experiments import beyond_65, cifar10_65, overfit_small, train_one_epoch

    cell4 = overfit_small.notebook_config().resolved()
    assert (cell4.num_train, cell4.num_epochs, cell4.batch_size, cell4.weight_scale, cell4.print_every) == \
        (100, 10, 50, 1e-2, 1)
    assert (cell4.hidden_dims, cell4.reg, cell4.lr_decay, cell4.learning_rate) == ([100], 0.0, 1.0, 1e-3)
    cell6 = train_one_epoch.notebook_config().resolved()
    assert (cell6.hidden_dims, cell6.reg, cell6.weight_scale, cell6.batch_size, cell6.num_epochs,
            cell6.print_every, cell6.num_train) == ([500], 1e-3, 1e-3, 50, 1, 20, None)
    cell8 = cifar10_65.notebook_config().resolved()
    assert (cell8.hidden_dims, cell8.batch_size, cell8.num_epochs, cell8.lr_decay, cell8.dtype) == \
        ([1000], 1000, 10, 0.99, "float32")
    deeper = beyond_65.config_for(60).resolved()
    assert deeper.model == "convnet" and deeper.use_batchnorm and deeper.time_budget == 60
    assert deeper.blocks == [[16, 16], [32, 32], [64, 64]]


def test_experiment_runs_as_a_module(tiny_data, tmp_path):
    done = subprocess.run([sys.executable, "-m", "experiments.beyond_65", "--smoke", "--minutes", "5",
                           "--data", str(tiny_data), "--out", str(tmp_path)], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads((tmp_path / "metrics.json").read_text())["config"]["time_budget"] == 5


def test_gradcheck_experiment_smoke_run(tmp_path, capsys):
    from experiments import gradcheck as experiment

    assert experiment.main(["--smoke", "--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert "W1 max relative error: " in printed and "autocnn vs reference" in printed
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert [run["settings"]["weight_scale"] for run in metrics["runs"]] == [1e-3, 1e-2, 1e-2]
    assert all(run["gradients_agree"] for run in metrics["runs"])
    assert (tmp_path / "gradcheck.png").is_file() and (tmp_path / "gradcheck.log").is_file()


def test_gradcheck_table_passes_at_weight_scale_1e_2_and_explains_1e_3():
    scaled = notebook_gradient_check(weight_scale=1e-2, seed=12, input_dim=(3, 6, 6), hidden_dim=4)
    assert scaled.passed, format_gradcheck(scaled)
    verbatim = notebook_gradient_check(weight_scale=1e-3, seed=12, input_dim=(3, 6, 6), hidden_dim=4)
    text = format_gradcheck(verbatim)
    assert verbatim.gradients_agree and all(row.exact_passes for row in verbatim.rows), text
    if not verbatim.passed:  # the numerical columns sit at the rounding floor
        assert "GRADIENTS AGREE" in text and "rounding" in text


def test_failure_causes_tell_rounding_kinks_and_wrong_gradients_apart():
    x = np.array([0.3, -0.2, 1e-7])
    smooth = lambda v: float(np.sum(v ** 2))  # noqa: E731
    right = 2 * x
    numerical = right.copy()
    numerical[0] += 1e-12  # a rounding-sized gap
    assert _failure_causes(smooth, x, numerical, right, 1e-15, noise=1e-11, h=1e-6) == [ROUNDING]
    wrong = right * 1.1
    assert _failure_causes(smooth, x, right, wrong, 1e-5, noise=1e-11, h=1e-6) == [UNEXPLAINED]
    kinked = lambda v: float(np.sum(np.abs(v)))  # noqa: E731 (a kink at 0, within h of x[2])
    numerical = np.array([1.0, -1.0, 0.55])
    assert _failure_causes(kinked, x, numerical, np.sign(x), 1e-5, noise=1e-11, h=1e-6) == [KINK]
    assert np.array_equal(x, [0.3, -0.2, 1e-7])  # restored


def test_gradcheck_command_exit_status_and_bad_flags(capsys, monkeypatch):
    # The command's code path on a smaller network (the full cell takes ~10 s).
    small = functools.partial(gradcheck.notebook_gradient_check, input_dim=(3, 4, 4), num_filters=1, hidden_dim=2)
    monkeypatch.setattr(gradcheck, "notebook_gradient_check", small)
    assert cli.main(["gradcheck", "--seed", "12", "--weight-scale", "1e-2"]) == 0
    assert "PASS: every gradient is within the notebook's tolerances." in capsys.readouterr().out
    assert cli.main(["gradcheck", "--weight-scale", "0"]) == 1
    assert "--weight-scale must be positive" in capsys.readouterr().err


def test_smoke_runs_never_default_to_the_recorded_results():
    from experiments.common import RESULTS_DIR, parse_args

    assert parse_args("overfit_small", "", []).out == RESULTS_DIR / "overfit_small"
    smoke_out = parse_args("overfit_small", "", ["--smoke"]).out
    assert RESULTS_DIR not in smoke_out.parents and smoke_out.name == "overfit_small"
