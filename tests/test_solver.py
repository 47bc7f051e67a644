"""The Solver on a tiny synthetic problem with a numpy softmax-regression model."""

import json
import os
import re

import numpy as np
import pytest

from autocnn.training.solver import (CheckpointError, Solver, TrainingDivergedError, TrainingStopped, latest_checkpoint,
                            load_checkpoint)

ITERATION_LINE = re.compile(r"^\(Iteration (\d+) / (\d+)\) loss: (\d+\.\d{6})$")
EPOCH_LINE = re.compile(r"^\(Epoch (\d+) / (\d+)\) train acc: (\d\.\d{6}); val_acc: (\d\.\d{6})$")


class SoftmaxRegression:
    """scores = X W + b with a softmax loss; gradients written out by hand."""

    def __init__(self, input_dim=5, num_classes=3, seed=0, dtype=np.float64):
        rng = np.random.RandomState(seed)
        self.params = {
            "W": (0.01 * rng.randn(input_dim, num_classes)).astype(dtype),
            "b": np.zeros(num_classes, dtype=dtype),
        }

    def _scores(self, X):
        return X.astype(self.params["W"].dtype) @ self.params["W"] + self.params["b"]

    def loss(self, X, y=None):
        scores = self._scores(X)
        if y is None:
            return scores
        shifted = scores - scores.max(axis=1, keepdims=True)
        log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        num_samples = X.shape[0]
        loss = -log_probs[np.arange(num_samples), y].mean()
        dscores = np.exp(log_probs)
        dscores[np.arange(num_samples), y] -= 1
        dscores /= num_samples
        grads = {"W": X.astype(dscores.dtype).T @ dscores, "b": dscores.sum(axis=0)}
        return loss, grads


class NoisySoftmaxRegression(SoftmaxRegression):
    """Also keeps batchnorm-style running statistics and draws a dropout-style
    mask from the global np.random, so resuming must restore both."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.bn_params = [{"mode": "train"}]

    def loss(self, X, y=None):
        if y is None:
            return super().loss(X)
        bn_param = self.bn_params[0]
        batch_mean = X.mean(axis=0)
        bn_param["running_mean"] = 0.9 * bn_param.get("running_mean", np.zeros_like(batch_mean)) + 0.1 * batch_mean
        bn_param["running_var"] = 0.9 * bn_param.get("running_var", np.ones_like(batch_mean)) + 0.1 * X.var(axis=0)
        mask = (np.random.rand(*X.shape) < 0.8) / 0.8
        return super().loss(X * mask, y)


def make_data(num_train=300, num_val=60, input_dim=5, num_classes=3, seed=0):
    """Gaussian blobs, one per class, that a linear model separates well."""
    rng = np.random.RandomState(seed)
    centres = 3.0 * rng.randn(num_classes, input_dim)

    def sample(count):
        labels = rng.randint(num_classes, size=count)
        return centres[labels] + rng.randn(count, input_dim), labels

    X_train, y_train = sample(num_train)
    X_val, y_val = sample(num_val)
    return {"X_train": X_train, "y_train": y_train, "X_val": X_val, "y_val": y_val}


def test_training_decreases_loss_and_raises_accuracy():
    solver = Solver(SoftmaxRegression(), make_data(), update_rule="sgd",
                    optim_config={"learning_rate": 0.1}, num_epochs=5, batch_size=30,
                    verbose=False, seed=0)
    solver.train()
    assert np.mean(solver.loss_history[-5:]) < 0.5 * np.mean(solver.loss_history[:5])
    assert solver.val_acc_history[-1] > solver.val_acc_history[0]
    assert solver.best_val_acc >= 0.9
    assert len(solver.loss_history) == 5 * (300 // 30)
    # Checked at the first iteration and at the end of every epoch.
    assert len(solver.train_acc_history) == len(solver.val_acc_history) == 6


def test_training_keeps_freed_memory_from_its_start(monkeypatch):
    # A notebook's Solver trains as fast as autocnn train: it makes the allocator setting
    # itself, when training starts (not when autocnn is imported or the Solver is built).
    import autocnn.training.solver as solver_module

    calls = []
    monkeypatch.setattr(solver_module, "keep_freed_memory", lambda: calls.append("kept") or True)
    solver = Solver(SoftmaxRegression(), make_data(), num_epochs=1, batch_size=100, verbose=False, seed=0)
    assert calls == []
    solver.train()
    assert calls == ["kept"]


def test_stop_when_stops_before_an_update_and_training_can_go_on():
    def solver_with(stop_when=None):
        solver = Solver(SoftmaxRegression(), make_data(), update_rule="adam", num_epochs=2, batch_size=30,
                        verbose=False, seed=0)
        solver.stop_when = stop_when
        return solver

    calls = []
    stopped = solver_with(lambda: calls.append(None) or len(calls) > 7)
    with pytest.raises(TrainingStopped, match="before iteration 8 / 20"):
        stopped.train()
    assert stopped.iteration == 7 and len(stopped.loss_history) == 7
    # The params are those after iteration 7 of the uninterrupted run, not of a half step.
    reference = solver_with()
    for _ in range(7):  # the same minibatches: the accuracy checks draw nothing from 300 samples
        reference._step()
    for name, value in reference.model.params.items():
        np.testing.assert_array_equal(stopped.model.params[name], value)
    stopped.stop_when = None  # and it trains on to the end from there
    stopped.train()
    assert stopped.iteration == 20


def test_log_lines_match_the_notebook_format(capsys):
    data = make_data(num_train=100)
    solver = Solver(SoftmaxRegression(), data, update_rule="adam", optim_config={"learning_rate": 1e-2},
                    num_epochs=3, batch_size=50, print_every=1, seed=1)
    solver.train()
    lines = capsys.readouterr().out.splitlines()
    kinds = ["I" if ITERATION_LINE.match(line) else "E" if EPOCH_LINE.match(line) else "?" for line in lines]
    # Two iterations per epoch; epoch 0 is reported right after the first iteration.
    assert "".join(kinds) == "IEIEIIEIIE"
    iteration_lines = [line for line in lines if line.startswith("(Iteration")]
    assert iteration_lines == ["(Iteration %d / %d) loss: %f" % (t + 1, 6, loss)
                               for t, loss in enumerate(solver.loss_history)]
    epoch_lines = [line for line in lines if line.startswith("(Epoch")]
    assert epoch_lines == ["(Epoch %d / %d) train acc: %f; val_acc: %f" % (epoch, 3, train, val)
                           for epoch, (train, val) in enumerate(zip(solver.train_acc_history,
                                                                    solver.val_acc_history))]


def test_print_every_and_verbose(capsys):
    Solver(SoftmaxRegression(), make_data(), num_epochs=1, batch_size=10, print_every=10, seed=0).train()
    iteration_numbers = [int(ITERATION_LINE.match(line).group(1))
                         for line in capsys.readouterr().out.splitlines() if line.startswith("(Iteration")]
    assert iteration_numbers == [1, 11, 21]
    Solver(SoftmaxRegression(), make_data(), num_epochs=1, verbose=False, seed=0).train()
    assert capsys.readouterr().out == ""


def test_learning_rate_decays_once_per_epoch_and_configs_are_per_parameter():
    seen_rates = []

    def recording_sgd(w, dw, config):
        seen_rates.append(config["learning_rate"])
        return w - config["learning_rate"] * dw, config

    optim_config = {"learning_rate": 0.1}
    solver = Solver(SoftmaxRegression(), make_data(num_train=100), update_rule=recording_sgd,
                    optim_config=optim_config, lr_decay=0.5, num_epochs=3, batch_size=50,
                    verbose=False, seed=0)
    solver.train()
    # 2 parameters x 2 iterations per epoch, 3 epochs.
    assert seen_rates == [0.1] * 4 + [0.05] * 4 + [0.025] * 4
    assert solver.optim_configs["W"]["learning_rate"] == pytest.approx(0.0125)
    assert solver.optim_configs["W"] is not solver.optim_configs["b"]
    assert optim_config == {"learning_rate": 0.1}


def test_adam_state_is_kept_per_parameter():
    solver = Solver(SoftmaxRegression(), make_data(num_train=100), update_rule="adam",
                    num_epochs=2, batch_size=50, verbose=False, seed=0)
    solver.train()
    assert solver.optim_configs["W"]["m"].shape == (5, 3)
    assert solver.optim_configs["b"]["m"].shape == (3,)
    assert solver.optim_configs["W"]["t"] == solver.optim_configs["b"]["t"] == 4


def test_best_params_are_swapped_in_at_the_end():
    calls = {"count": 0}

    def sgd_then_sabotage(w, dw, config):
        # Learn during the first two epochs, then wreck the weights.
        calls["count"] += 1
        if calls["count"] > 2 * 10 * 2:
            return -5 * np.abs(w) - 1, config
        return w - 0.1 * dw, config

    model = SoftmaxRegression()
    data = make_data()
    solver = Solver(model, data, update_rule=sgd_then_sabotage, num_epochs=4, batch_size=30,
                    verbose=False, seed=0)
    solver.train()
    assert solver.best_val_acc == max(solver.val_acc_history) >= 0.9
    assert solver.val_acc_history[-1] < solver.best_val_acc
    for name in model.params:
        np.testing.assert_array_equal(model.params[name], solver.best_params[name])
        assert model.params[name] is not solver.best_params[name]
    assert solver.check_accuracy(data["X_val"], data["y_val"]) == solver.best_val_acc


def test_check_accuracy_subsamples_and_batches():
    data = make_data()
    solver = Solver(SoftmaxRegression(), data, verbose=False, seed=0)
    full = solver.check_accuracy(data["X_train"], data["y_train"], batch_size=7)
    assert full == solver.check_accuracy(data["X_train"], data["y_train"])
    sub = solver.check_accuracy(data["X_train"], data["y_train"], num_samples=50)
    assert sub * 50 == pytest.approx(round(sub * 50))


def test_same_seed_same_run_and_global_seed_fixes_seed_none():
    def run(seed):
        solver = Solver(SoftmaxRegression(), make_data(), update_rule="sgd_momentum",
                        num_epochs=2, batch_size=20, verbose=False, seed=seed)
        solver.train()
        return solver.loss_history

    assert run(7) == run(7)
    assert run(7) != run(8)
    np.random.seed(0)
    first = run(None)
    np.random.seed(0)
    assert run(None) == first


def test_bad_arguments_are_named():
    model, data = SoftmaxRegression(), make_data()
    with pytest.raises(ValueError, match="Unrecognized update_rule 'nesterov'"):
        Solver(model, data, update_rule="nesterov")
    with pytest.raises(ValueError, match="learning_rat, momentum_typo"):
        Solver(model, data, learning_rat=1.0, momentum_typo=2)
    with pytest.raises(ValueError, match="y_val"):
        Solver(model, {key: value for key, value in data.items() if key != "y_val"})
    with pytest.raises(ValueError, match="batch_size"):
        Solver(model, data, batch_size=0)
    with pytest.raises(CheckpointError, match="optim_config 'schedule'"):
        Solver(model, data, optim_config={"schedule": np.ones(3)}, checkpoint_name="unused")


# ---------------------------------------------------------------- checkpoints


class Interrupted(Exception):
    pass


def checkpointed_run(tmp_path, folder, model, interrupt_at=None, **overrides):
    """A 4-epoch float32 Adam run with checkpoints; optionally stop at an iteration."""
    settings = dict(update_rule="adam", optim_config={"learning_rate": 5e-2}, lr_decay=0.9,
                    num_epochs=4, batch_size=40, num_train_samples=50, num_val_samples=30,
                    verbose=False, seed=3, checkpoint_name=str(tmp_path / folder / "run"))
    settings.update(overrides)
    if interrupt_at is not None:
        original_loss, calls = model.loss, {"count": 0}

        def loss(X, y=None):
            if y is not None:
                calls["count"] += 1
                if calls["count"] == interrupt_at:
                    raise Interrupted
            return original_loss(X, y)

        model.loss = loss
    np.random.seed(11)  # The model's dropout-style mask draws from the global state.
    solver = Solver(model, make_data(), **settings)
    if interrupt_at is None:
        solver.train()
    else:
        with pytest.raises(Interrupted):
            solver.train()
        del model.loss
    return solver


def test_checkpoint_then_resume_equals_uninterrupted_run_bitwise(tmp_path):
    model_a = NoisySoftmaxRegression(dtype=np.float32)
    uninterrupted = checkpointed_run(tmp_path, "a", model_a)
    global_state_after_a = np.random.get_state()[1].copy()

    # 7 iterations per epoch: stop in the middle of epoch 3.
    checkpointed_run(tmp_path, "b", NoisySoftmaxRegression(dtype=np.float32), interrupt_at=18)
    newest = latest_checkpoint(tmp_path / "b" / "run")
    assert newest == tmp_path / "b" / "run_epoch_2.json"

    np.random.seed(12345)  # a new process would have some other global state
    model_b = NoisySoftmaxRegression(dtype=np.float32, seed=99)  # fresh, different init
    resumed = Solver.resume(tmp_path / "b" / "run", model_b, make_data())
    assert (resumed.epoch, resumed.iteration) == (2, 14)
    resumed.train()

    for name in model_a.params:
        assert model_b.params[name].dtype == np.float32
        np.testing.assert_array_equal(model_b.params[name], model_a.params[name])
        np.testing.assert_array_equal(resumed.best_params[name], uninterrupted.best_params[name])
    for key in ("running_mean", "running_var"):
        np.testing.assert_array_equal(model_b.bn_params[0][key], model_a.bn_params[0][key])
    assert resumed.loss_history == uninterrupted.loss_history
    assert resumed.train_acc_history == uninterrupted.train_acc_history
    assert resumed.val_acc_history == uninterrupted.val_acc_history
    assert resumed.best_val_acc == uninterrupted.best_val_acc
    for name in model_a.params:
        for key in ("m", "v"):
            np.testing.assert_array_equal(resumed.optim_configs[name][key], uninterrupted.optim_configs[name][key])
        assert resumed.optim_configs[name]["t"] == uninterrupted.optim_configs[name]["t"] == 28
        assert resumed.optim_configs[name]["learning_rate"] == uninterrupted.optim_configs[name]["learning_rate"]
    np.testing.assert_array_equal(np.random.get_state()[1], global_state_after_a)


def test_checkpoint_files_load_without_pickle_and_are_pruned(tmp_path):
    checkpointed_run(tmp_path, "c", NoisySoftmaxRegression(), keep_checkpoints=2)
    names = sorted(os.listdir(tmp_path / "c"))
    # Only the two newest pairs remain and no temporary file is left behind.
    assert names == ["run_epoch_3.json", "run_epoch_3.npz", "run_epoch_4.json", "run_epoch_4.npz"]
    record = json.loads((tmp_path / "c" / "run_epoch_4.json").read_text())
    assert record["epoch"] == 4 and record["iteration"] == 28
    assert record["settings"]["update_rule"] == "adam" and record["settings"]["seed"] == 3
    assert record["optim_scalars"]["W"]["t"] == 28
    with np.load(tmp_path / "c" / "run_epoch_4.npz", allow_pickle=False) as arrays:
        assert {"params/W", "params/b", "best_params/W", "optim/W/m", "optim/W/v",
                "bn/0/running_mean", "bn/0/running_var", "rng/keys"} <= set(arrays.files)
    record, arrays = load_checkpoint(tmp_path / "c" / "run_epoch_3.npz")
    assert record["epoch"] == 3


def test_resume_into_a_model_that_does_not_fit_is_refused(tmp_path):
    checkpointed_run(tmp_path, "d", SoftmaxRegression(), num_epochs=1)
    with pytest.raises(CheckpointError, match="parameter 'W'"):
        Solver.resume(tmp_path / "d" / "run", SoftmaxRegression(input_dim=5, num_classes=4), make_data())
    with pytest.raises(ValueError, match="batch_size"):
        Solver.resume(tmp_path / "d" / "run", SoftmaxRegression(), make_data(), batch_size=10)
    with pytest.raises(CheckpointError, match="no checkpoint found"):
        Solver.resume(tmp_path / "nothing" / "run", SoftmaxRegression(), make_data())


def test_truncated_checkpoint_is_reported(tmp_path):
    checkpointed_run(tmp_path, "e", SoftmaxRegression(), num_epochs=1)
    npz_path = tmp_path / "e" / "run_epoch_1.npz"
    npz_path.write_bytes(npz_path.read_bytes()[:200])
    with pytest.raises(CheckpointError, match="run_epoch_1.npz"):
        load_checkpoint(tmp_path / "e" / "run_epoch_1.json")


def test_nan_loss_stops_training_and_keeps_the_last_checkpoint(tmp_path):
    model = SoftmaxRegression()
    original_loss, calls = model.loss, {"count": 0}

    def loss(X, y=None):
        result = original_loss(X, y)
        if y is not None:
            calls["count"] += 1
            if calls["count"] == 17:
                return float("nan"), result[1]
        return result

    model.loss = loss
    solver = Solver(model, make_data(), update_rule="sgd", optim_config={"learning_rate": 0.1},
                    num_epochs=4, batch_size=40, verbose=False, seed=0,
                    checkpoint_name=str(tmp_path / "f" / "run"))
    with pytest.raises(TrainingDivergedError) as caught:
        solver.train()
    error = caught.value
    assert isinstance(error, FloatingPointError)
    message = str(error)
    assert "iteration 17 / 28" in message and "learning rate may be too high" in message
    assert "run_epoch_2.json" in message
    assert error.iteration == 17 and error.checkpoint == tmp_path / "f" / "run_epoch_2.json"
    assert len(solver.loss_history) == 16  # the NaN step was neither recorded nor applied
    assert sorted(os.listdir(tmp_path / "f")) == ["run_epoch_1.json", "run_epoch_1.npz",
                                                   "run_epoch_2.json", "run_epoch_2.npz"]
    resumed = Solver.resume(error.checkpoint, SoftmaxRegression(), make_data())
    assert resumed.iteration == 14
    resumed.train()
    assert resumed.best_val_acc >= 0.9
