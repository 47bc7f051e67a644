"""The budgets a sweep gives its trials, as settings of any training run: an iteration budget
(--max-iterations) and early stopping when the loss stops improving (--patience)."""

import json

import pytest

from autocnn import cli
from autocnn.tools.sweep import run_trial
from autocnn.tools.train import TrainConfig, no_improvement, resume_config, run_training
from tiny_cifar import TINY_SPLIT, write_tiny_cifar


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    return write_tiny_cifar(tmp_path_factory.mktemp("tiny_cifar")).parent


def tiny_config(data_dir, out, **extra):
    settings = dict(model="fc", hidden_dims=[16], data_dir=str(data_dir), split=[400, 100, 100], num_train=100,
                    batch_size=20, num_epochs=4, num_train_samples=100, print_every=1, seed=3, out=str(out),
                    verbose=False)
    return TrainConfig(**{**settings, **extra})


def test_no_improvement_waits_patience_iterations_after_the_best_moving_average():
    falling = [10.0 - 0.1 * index for index in range(40)]
    assert no_improvement(falling, patience=5) is None
    flat = falling[:20] + [falling[19] + 1.0] * 8
    assert no_improvement(flat, patience=10) is None  # 8 iterations since the best window: too soon
    reason = no_improvement(flat + [falling[19] + 1.0] * 4, patience=10)
    assert reason is not None and "within 10 iterations" in reason and "at iteration 20" in reason
    assert no_improvement([1.0, 2.0], patience=1) is not None
    assert no_improvement([1.0], patience=1) is None


def test_an_iteration_budget_stops_the_run_there(tiny_data, tmp_path):
    result = run_training(tiny_config(tiny_data, tmp_path / "run", max_iterations=7))
    metrics = result.metrics
    assert metrics["status"] == "iteration budget reached" and metrics["iterations_done"] == 7
    assert len(metrics["loss_history"]) == 7 and "iteration budget of 7 reached after iteration 7" in metrics["note"]
    assert metrics["best_val_acc"] >= max(metrics["val_acc_history"])
    # A budget past the run's end changes nothing.
    longer = run_training(tiny_config(tiny_data, tmp_path / "long", max_iterations=1000)).metrics
    assert longer["status"] == "completed" and longer["iterations_done"] == 20


def test_patience_stops_a_run_that_does_not_improve(tiny_data, tmp_path):
    metrics = run_training(tiny_config(tiny_data, tmp_path / "run", learning_rate=1e-9, update_rule="sgd",
                                       num_epochs=40, patience=3)).metrics
    assert metrics["status"] == "stopped early" and metrics["iterations_done"] < 200
    assert metrics["note"].startswith("stopped early: no new low of the training loss")


def test_the_budget_flags_reach_the_config_and_survive_resume(tiny_data, tmp_path):
    out = tmp_path / "run"
    argv = ["train", "--data", str(tiny_data), "--split", TINY_SPLIT, "--num-train", "100", "--model", "fc",
            "--hidden-dims", "16", "--batch-size", "20", "--epochs", "3", "--seed", "1", "--max-iterations", "12",
            "--patience", "50", "--out", str(out)]
    assert cli.main(argv) == 0
    config = resume_config(out)
    assert (config.max_iterations, config.patience) == (12, 50)
    assert json.loads((out / "metrics.json").read_text())["iterations_done"] == 12
    with pytest.raises(ValueError, match="--patience must be >= 1"):
        TrainConfig(patience=0).resolved()
    with pytest.raises(ValueError, match="--max-iterations must be an integer"):
        TrainConfig(max_iterations=2.5).resolved()


def test_a_trial_that_stops_early_is_recorded_as_such(tiny_data, tmp_path):
    config = tiny_config(tiny_data, tmp_path / "trial", learning_rate=1e-9, update_rule="sgd", num_epochs=40,
                         patience=3).resolved()
    record = run_trial("coarse-000", config.to_dict())
    assert record["status"] == "stopped early" and record["attempt"] == 1 and not record["resumed"]
    assert record["note"].startswith("stopped early") and record["iterations_done"] < 200
