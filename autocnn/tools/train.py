"""``autocnn train``: train a network on CIFAR-10 with the Solver, as the notebook does.

The defaults are the notebook's cell [8], the ">65% validation accuracy"
configuration: a ThreeLayerConvNet with 32 filters of 7x7 and a hidden layer of
1000, float32, reg 1e-3, weight scale 1e-3, Adam with learning rate 1e-3, batch
1000, 10 epochs, learning-rate decay 0.99, a loss line every 10 iterations.

Library use::

    from autocnn.tools.train import TrainConfig, run_training
    result = run_training(TrainConfig(num_epochs=1, out="runs/quick"))
    result.metrics["best_val_acc"]

A run with an output folder writes there:

- ``config.json``: the resolved configuration (what ``--resume`` rebuilds from);
- ``train.log``: everything the run printed (the notebook's log lines);
- ``checkpoints/``: the Solver's per-epoch checkpoint pair (``.npz`` + ``.json``);
- ``params_final.npz`` and ``params_best.npz``: the last and the best parameters;
- ``metrics.json``: config, histories, best validation accuracy, test accuracy of
  the best parameters, wall time, images/s and the machine;
- ``curves.png`` (loss and accuracies, the notebook's cell [5]) and
  ``filters.png`` (the first-layer filters).

``run_training(config, resume=True)`` (``autocnn train --resume DIR``) reads the
newest checkpoint in DIR and finishes the run with bitwise the same parameters
and histories as an uninterrupted run of the same seed.

Models, the Solver, the data loader and matplotlib are imported inside the functions
that use them, so ``autocnn --help`` stays fast.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence, TextIO

from autocnn.files import atomic_save_npz, atomic_write_json
from autocnn.tools.provenance import git_state, machine_info
from autocnn.training import optim
from reference import validation

MODELS = ("three-layer", "fc", "convnet")
IMPLS = ("autocnn", "reference")
UPDATE_RULES = tuple(optim.UPDATE_RULES)  # the Solver's own list
DTYPES = ("float32", "float64")
LOSSES = ("softmax", "svm")

#: Architecture defaults per model, used where the config leaves a field None.
MODEL_DEFAULTS: dict[str, dict[str, Any]] = {
    "three-layer": {"num_filters": 32, "filter_size": 7, "hidden_dims": [1000], "weight_scale": 1e-3},
    "fc": {"hidden_dims": [100, 100], "weight_scale": 1e-2},
    "convnet": {"blocks": [[32, 32], [64, 64], [128, 128]], "filter_size": 3, "hidden_dims": [256],
                "weight_scale": "he"},
}
#: Settings that may change when a run is resumed; everything else comes from its config.json.
RESUME_OVERRIDABLE = ("num_epochs", "print_every", "data_dir", "time_budget", "verbose")

CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.json"
LOG_FILE = "train.log"
CURVES_FILE = "curves.png"
FILTERS_FILE = "filters.png"
FINAL_PARAMS_FILE = "params_final.npz"
BEST_PARAMS_FILE = "params_best.npz"
CHECKPOINT_DIR = "checkpoints"
CHECKPOINT_PREFIX = "run"


@dataclass
class TrainConfig:
    """
    Everything that defines a training run (JSON-friendly, saved as config.json).

    Model:
    - model: 'three-layer' (the notebook's ThreeLayerConvNet), 'fc'
      (FullyConnectedNet) or 'convnet' (ConvNet, [conv-relu]xk-pool blocks).
    - impl: 'autocnn' (gradients by autograd) or 'reference' (hand-written
      backward; three-layer and fc only).
    - num_filters: Filters of the three-layer net's conv (default 32).
    - filter_size: Side of the conv filters (three-layer 7, convnet 3).
    - blocks: convnet only; filter counts per conv layer, one list per pooling
      block (default [[32, 32], [64, 64], [128, 128]]).
    - hidden_dims: Widths of the hidden affine layers (three-layer: exactly one,
      default [1000]; fc [100, 100]; convnet [256]).
    - use_batchnorm: Spatial batchnorm after convs, batchnorm after hidden affines.
    - dropout: Keep probability of hidden units (fc, convnet); 1 = no dropout.
    - loss: 'softmax' or 'svm' (convnet only).
    - weight_scale: Std of the initial weights, or 'he' (autocnn models only);
      default three-layer 1e-3, fc 1e-2, convnet 'he'.
    - reg: L2 regularization strength.
    - dtype: 'float32' or 'float64'.

    Optimization (the Solver's arguments):
    - update_rule, learning_rate, lr_decay, batch_size, num_epochs, print_every,
      num_train_samples (images used for each training-accuracy check).
    - seed: Seeds the weight initialization (global np.random) and the Solver's
      minibatches; None draws one, which is recorded.
    - time_budget: Minutes of training after which the run stops (at the next
      iteration) and reports what it reached; None = no limit.

    Data:
    - data_dir: Where CIFAR-10 is (see autocnn.data.cifar10); None = $AUTOCNN_DATA or cache.
    - split: (training, validation, test) sizes given to get_CIFAR10_data; the
      validation images follow the training images (default 49000, 1000, 1000).
    - num_train: Train on only the first num_train training images (the
      notebook's cell [4] slicing; the mean image is still the whole split's).

    Output:
    - out: Output folder (None writes nothing and keeps no checkpoints).
    - keep_checkpoints: How many per-epoch checkpoints to keep in out.
    - verbose: Print the notebook's log lines.
    """

    model: str = "three-layer"
    impl: str = "autocnn"
    num_filters: int | None = None
    filter_size: int | None = None
    blocks: list[list[int]] | None = None
    hidden_dims: list[int] | None = None
    use_batchnorm: bool = False
    dropout: float = 1.0
    loss: str = "softmax"
    weight_scale: float | str | None = None
    reg: float = 1e-3
    dtype: str = "float32"
    update_rule: str = "adam"
    learning_rate: float = 1e-3
    lr_decay: float = 0.99
    batch_size: int = 1000
    num_epochs: int = 10
    print_every: int = 10
    num_train_samples: int = 1000
    seed: int | None = None
    time_budget: float | None = None
    data_dir: str | None = None
    split: list[int] = dataclasses.field(default_factory=lambda: [49000, 1000, 1000])
    num_train: int | None = None
    out: str | None = None
    keep_checkpoints: int = 1
    verbose: bool = True

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "TrainConfig":
        """Build a config from a dictionary, naming any key that is not a field."""
        names = {item.name for item in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ValueError(f"unknown training settings: {', '.join(unknown)}")
        return cls(**values)

    def resolved(self) -> "TrainConfig":
        """
        Check every setting and fill in the model's defaults and a seed.

        Returns:
        - A new TrainConfig with no None left in the fields the model uses.

        Raises ValueError naming the setting (as its command-line flag) that is wrong.
        """
        config = dataclasses.replace(self)
        _check_choice("--model", config.model, MODELS)
        _check_choice("--impl", config.impl, IMPLS)
        _check_choice("--update-rule", config.update_rule, UPDATE_RULES)
        _check_choice("--dtype", config.dtype, DTYPES)
        _check_choice("--loss", config.loss, LOSSES)

        # Settings that only some models have: refuse them elsewhere rather than ignore them.
        only_for = {"num_filters": ("--num-filters", ("three-layer",)),
                    "filter_size": ("--filter-size", ("three-layer", "convnet")),
                    "blocks": ("--blocks", ("convnet",))}
        for name, (flag, models) in only_for.items():
            if getattr(config, name) is not None and config.model not in models:
                raise ValueError(f"{flag} applies only to --model {' or '.join(models)}, not {config.model}")
        if config.loss != "softmax" and config.model != "convnet":
            raise ValueError(f"--loss {config.loss} applies only to --model convnet")
        if config.dropout != 1.0 and config.model == "three-layer":
            raise ValueError("--dropout applies only to --model fc or convnet")
        if config.impl == "reference" and config.model == "convnet":
            raise ValueError("--impl reference has no convnet (the hand-written side has three-layer and fc)")

        for name, value in MODEL_DEFAULTS[config.model].items():
            if getattr(config, name) is None:
                setattr(config, name, json.loads(json.dumps(value)))  # a fresh copy of the lists

        if config.model == "three-layer" and len(config.hidden_dims) != 1:
            raise ValueError(f"--model three-layer has exactly one hidden layer, got --hidden-dims "
                             f"{_int_list_text(config.hidden_dims)}")
        if config.model == "fc" and not config.hidden_dims:
            raise ValueError("--model fc needs at least one hidden layer (--hidden-dims)")
        if config.weight_scale == "he" and config.impl == "reference":
            raise ValueError("--weight-scale he is an autocnn option; give --impl reference a number")
        if config.weight_scale != "he":
            validation.check_positive_number("--weight-scale", config.weight_scale)
        for flag, value in (("--learning-rate", config.learning_rate), ("--lr-decay", config.lr_decay)):
            validation.check_positive_number(flag, value)
        if not isinstance(config.reg, (int, float)) or isinstance(config.reg, bool) or config.reg < 0:
            raise ValueError(f"--reg must be a number >= 0, got {config.reg!r}")
        if not 0 < config.dropout <= 1:
            raise ValueError(f"--dropout is a keep probability in (0, 1], got {config.dropout!r}")
        if config.time_budget is not None:
            validation.check_positive_number("--time-budget", config.time_budget)
        for flag, value, minimum in (("--batch-size", config.batch_size, 1), ("--epochs", config.num_epochs, 0),
                                     ("--print-every", config.print_every, 1),
                                     ("--num-train-samples", config.num_train_samples, 1),
                                     ("keep_checkpoints", config.keep_checkpoints, 1)):
            validation.check_int(flag, value, minimum)
        for flag, value in (("--num-filters", config.num_filters), ("--filter-size", config.filter_size)):
            if value is not None:
                validation.check_int(flag, value, 1)
        for size in config.hidden_dims:
            validation.check_int("--hidden-dims", size, 1)
        for size in (size for block in config.blocks or [] for size in block):
            validation.check_int("--blocks", size, 1)
        if len(config.split) != 3:
            raise ValueError(f"--split needs three sizes TRAIN,VAL,TEST, got {config.split!r}")
        for flag, value in zip(("--split TRAIN", "--split VAL", "--split TEST"), config.split):
            validation.check_int(flag, value, 0)
        config.split = [int(value) for value in config.split]
        if config.split[0] < 1 or config.split[1] < 1:
            raise ValueError(f"--split needs at least one training and one validation image, got {config.split}")
        if config.num_train is not None:
            validation.check_int("--num-train", config.num_train, 1)
            if config.num_train > config.split[0]:
                raise ValueError(f"--num-train {config.num_train} exceeds the {config.split[0]} images "
                                 "of the training split (--split)")
        if config.seed is None:
            config.seed = int.from_bytes(os.urandom(4), "little") % (2**31 - 1)
        validation.check_int("--seed", config.seed, 0)
        return config


@dataclass
class TrainResult:
    """What run_training returns: the metrics (as in metrics.json), the trained
    model (holding its best parameters), its Solver, and the output folder."""

    metrics: dict[str, Any]
    model: Any
    solver: Any
    out: Path | None


# ---------------------------------------------------------------------- building blocks


def build_model(config: TrainConfig) -> Any:
    """
    Build the configured model with freshly initialized weights.

    The weights are drawn from the global np.random, as in the notebook, after
    seeding it with config.seed, so the same seed gives the same network (and
    the autocnn and reference sides of a model get the same initial weights).

    Inputs:
    - config: A TrainConfig (it is resolved first).

    Returns:
    - A model with params and loss(X, y=None).
    """
    import numpy as np

    config = config.resolved()
    np.random.seed(config.seed)
    dtype = np.dtype(config.dtype).type
    common = dict(reg=config.reg, dtype=dtype, use_batchnorm=config.use_batchnorm,
                  weight_scale=config.weight_scale)
    if config.model == "three-layer":
        kwargs = dict(common, num_filters=config.num_filters, filter_size=config.filter_size,
                      hidden_dim=config.hidden_dims[0])
        if config.impl == "reference":
            from reference.cnn import ThreeLayerConvNet
        else:
            from autocnn.core.models import ThreeLayerConvNet
        return ThreeLayerConvNet(**kwargs)
    if config.model == "fc":
        kwargs = dict(common, hidden_dims=list(config.hidden_dims), dropout=config.dropout)
        if config.impl == "reference":
            from reference.fc_net import FullyConnectedNet
        else:
            from autocnn.core.models import FullyConnectedNet
        return FullyConnectedNet(**kwargs)
    from autocnn.core.models import ConvNet

    return ConvNet(blocks=[tuple(block) for block in config.blocks], filter_size=config.filter_size,
                   hidden_dims=tuple(config.hidden_dims), dropout=config.dropout, loss=config.loss, **common)


def load_data(config: TrainConfig) -> dict[str, Any]:
    """
    Load CIFAR-10 as the config asks: get_CIFAR10_data with config.split, then
    the first config.num_train training images (as the notebook's cell [4] does).

    Returns:
    - The data dictionary (X_train, y_train, X_val, y_val, X_test, y_test).
    """
    import numpy as np

    from autocnn.data.cifar10 import get_CIFAR10_data

    num_training, num_validation, num_test = config.split
    data = get_CIFAR10_data(num_training=num_training, num_validation=num_validation, num_test=num_test,
                            data_dir=config.data_dir, dtype=np.dtype(config.dtype))
    if config.num_train is not None:
        data["X_train"] = data["X_train"][:config.num_train]
        data["y_train"] = data["y_train"][:config.num_train]
    return data


# ---------------------------------------------------------------------- running


def run_training(config: TrainConfig, resume: bool = False, overwrite: bool = False) -> TrainResult:
    """
    Train as configured, print the notebook's log lines, and write the results.

    Inputs:
    - config: The TrainConfig of the run. With resume, the config saved in
      config.out takes its place (see resume_config).
    - resume: Continue the run in config.out from its newest checkpoint (or
      start it from the beginning if it stopped before its first checkpoint).
    - overwrite: Allow writing into an output folder that already holds a run
      (its old checkpoints are deleted first). Without it such a folder is refused.

    Returns:
    - A TrainResult.

    Raises:
    - ValueError for a bad setting or missing/corrupt data or checkpoint.
    - autocnn.training.solver.TrainingDivergedError if the loss became NaN or infinite
      (metrics.json then records status 'diverged'; the last good checkpoint stays).
    """
    from autocnn.training.solver import latest_checkpoint

    started = time.perf_counter()
    machine = machine_info()  # at the start: the load a run had, not the load it left
    config = config.resolved()
    out = Path(config.out) if config.out is not None else None
    if out is not None and not resume and (out / CONFIG_FILE).exists() and not overwrite:
        raise ValueError(f"{out} already holds a run; continue it with --resume {out}, "
                         "or pass --overwrite to start over there")
    data = load_data(config)  # Before anything is written: a data error leaves no half-made run behind.
    checkpoint_name = _prepare_output(out, config, resume)

    with _tee_stdout(out / LOG_FILE if out is not None else None, append=resume):
        if config.verbose:
            for key, value in data.items():  # The notebook's cell [2].
                print("{}: {}".format(key, value.shape))
        model = build_model(config)
        checkpoint = latest_checkpoint(checkpoint_name) if resume and checkpoint_name is not None else None
        solver = _make_solver(config, model, data, checkpoint_name, checkpoint)
        resumed_from = _report_resume(solver, checkpoint, config, out) if resume else None
        first_iteration = solver.iteration
        status, note, error, train_seconds = _train(solver, data, config)
        metrics = _metrics(config, data, model, solver, status, note, error, train_seconds,
                           solver.iteration - first_iteration, resumed_from, machine)
        if out is not None:
            final_params = solver.final_params or _copied(model.params)
            metrics["files"] = _write_outputs(out, config, model, solver, final_params, status)
        metrics["wall_time_s"] = round(time.perf_counter() - started, 3)
        if out is not None:
            atomic_write_json(out / METRICS_FILE, metrics)
        if config.verbose and error is None:
            print(_summary(metrics, out))
    if error is not None:
        raise error
    return TrainResult(metrics=metrics, model=model, solver=solver, out=out)


def _prepare_output(out: Path | None, config: TrainConfig, resume: bool) -> Path | None:
    """Create the output folder (clearing a fresh run's stale checkpoints), save the config;
    return the checkpoint prefix, or None when the run writes nothing."""
    if out is None:
        return None
    if not resume:
        _clear_output(out)
    # On resume too: a longer --epochs must survive a second interruption.
    atomic_write_json(out / CONFIG_FILE, config.to_dict())
    return out / CHECKPOINT_DIR / CHECKPOINT_PREFIX


def _report_resume(solver: Any, checkpoint: Path | None, config: TrainConfig, out: Path | None) -> dict | None:
    """Say where a resumed run continues from; return that as the metrics' resumed_from."""
    if checkpoint is None:
        if config.verbose:
            print(f"(No checkpoint in {out} yet: starting the run from the beginning)")
        return None
    if config.verbose:
        print(f"(Resuming from {checkpoint}: epoch {solver.epoch}, iteration "
              f"{solver.iteration} / {solver.num_iterations})")
    return {"checkpoint": str(checkpoint), "epoch": solver.epoch, "iteration": solver.iteration}


def _train(solver: Any, data: dict, config: TrainConfig) -> tuple[str, str | None, BaseException | None, float]:
    """
    Run solver.train() under the config's time budget.

    Returns:
    - (status, note, error, seconds): status 'completed', 'time budget reached' or
      'diverged'; the note says where a budget stopped it; error is the divergence.
    """
    import numpy as np

    from autocnn.training.solver import TrainingStopped

    if config.time_budget is not None:
        deadline = time.monotonic() + 60.0 * config.time_budget
        solver.stop_when = lambda: time.monotonic() >= deadline
    status, note, error = "completed", None, None
    train_started = time.perf_counter()
    try:
        # NaN / Inf are caught by the Solver with a clear message; numpy's own
        # overflow warnings would only bury it.
        with np.errstate(over="ignore", invalid="ignore"):
            solver.train()
    except TrainingStopped:  # only the time budget sets stop_when
        status = "time budget reached"
        note = _finish_after_budget(solver, data, config)
    except FloatingPointError as diverged:
        status, note, error = "diverged", str(diverged), diverged
    return status, note, error, time.perf_counter() - train_started


def _metrics(config: TrainConfig, data: dict, model: Any, solver: Any, status: str, note: str | None,
             error: BaseException | None, train_seconds: float, iterations_done: int,
             resumed_from: dict | None, machine: dict) -> dict[str, Any]:
    """The content of metrics.json (files and wall_time_s are filled in once the outputs are written)."""
    import numpy as np

    test_acc = None
    if error is None and len(data.get("X_test", ())) > 0:
        test_acc = solver.check_accuracy(data["X_test"], data["y_test"])
    images = iterations_done * config.batch_size
    return {
        "status": status,
        "note": note,
        "config": config.to_dict(),
        "data": {key: list(value.shape) for key, value in data.items()},
        "data_source": _data_source(config.data_dir),
        "num_parameters": int(sum(np.size(value) for value in model.params.values())),
        "iterations_per_epoch": solver.iterations_per_epoch,
        "num_iterations": solver.num_iterations,
        "iterations_done": solver.iteration,
        "epochs_completed": solver.epoch,
        "loss_history": [float(value) for value in solver.loss_history],
        "train_acc_history": [float(value) for value in solver.train_acc_history],
        "val_acc_history": [float(value) for value in solver.val_acc_history],
        "best_val_acc": float(solver.best_val_acc),
        "final_train_acc": _last(solver.train_acc_history),
        "final_val_acc": _last(solver.val_acc_history),
        "test_acc": test_acc,
        "test_acc_of": "best params" if test_acc is not None else None,
        "wall_time_s": None,
        "train_time_s": round(train_seconds, 3),
        "images_trained": images,
        "images_per_s": round(images / train_seconds, 2) if train_seconds > 0 else None,
        "images_per_s_note": "minibatch images per second of training, including the per-epoch accuracy checks",
        "resumed_from": resumed_from,
        "machine": machine,
        **git_state(),
        "files": {},
    }


def _copied(arrays: dict[str, Any]) -> dict[str, Any]:
    import numpy as np

    return {name: np.array(value, copy=True) for name, value in arrays.items()}


def resume_config(out: str | os.PathLike, **overrides: Any) -> TrainConfig:
    """
    Read the config of the run in folder out, for run_training(..., resume=True).

    Inputs:
    - out: The run's output folder (it holds config.json).
    - overrides: New values for any of RESUME_OVERRIDABLE (e.g. num_epochs to
      train longer); other settings cannot change, or the run would not continue.

    Returns:
    - The TrainConfig with out set to this folder.
    """
    not_allowed = sorted(set(overrides) - set(RESUME_OVERRIDABLE))
    if not_allowed:
        flags = ", ".join(_flag(name) for name in not_allowed)
        allowed = ", ".join(_flag(name) for name in RESUME_OVERRIDABLE if name != "verbose")
        raise ValueError(f"{flags} cannot change when resuming (the run continues with its saved "
                         f"config.json); allowed: {allowed}")
    path = Path(out) / CONFIG_FILE
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(f"cannot resume: {path} does not exist (is {out} the --out folder of a run?)") from None
    except ValueError as bad:
        raise ValueError(f"cannot resume: {path} is not valid JSON ({bad})") from None
    if not isinstance(saved, dict):
        raise ValueError(f"cannot resume: {path} does not hold a training config")
    saved.update(overrides)
    saved["out"] = os.fspath(out)
    return TrainConfig.from_dict(saved)


def _make_solver(config: TrainConfig, model: Any, data: dict, checkpoint_name: Path | None,
                 checkpoint: Path | None) -> Any:
    """A Solver for the run, rebuilt from the checkpoint when one is given."""
    from autocnn.training.solver import Solver

    if checkpoint is not None:
        return Solver.resume(checkpoint, model, data, num_epochs=config.num_epochs,
                                print_every=config.print_every, verbose=config.verbose,
                                checkpoint_name=os.fspath(checkpoint_name),
                                keep_checkpoints=config.keep_checkpoints)
    return Solver(model, data, update_rule=config.update_rule,
                     optim_config={"learning_rate": config.learning_rate}, lr_decay=config.lr_decay,
                     batch_size=config.batch_size, num_epochs=config.num_epochs,
                     num_train_samples=config.num_train_samples, print_every=config.print_every,
                     verbose=config.verbose, seed=config.seed,
                     checkpoint_name=os.fspath(checkpoint_name) if checkpoint_name is not None else None,
                     keep_checkpoints=config.keep_checkpoints if checkpoint_name is not None else None)


def _finish_after_budget(solver: Any, data: dict, config: TrainConfig) -> str:
    """After a time-budget stop: check the current params on the validation set,
    keep them as best if they beat the last epoch's best, and swap the best in."""
    import numpy as np

    current = {name: np.array(value, copy=True) for name, value in solver.model.params.items()}
    solver.final_params = current
    val_acc = solver.check_accuracy(data["X_val"], data["y_val"])
    epochs = solver.iteration / solver.iterations_per_epoch
    note = (f"time budget of {config.time_budget:g} min reached after iteration {solver.iteration} / "
            f"{solver.num_iterations} ({epochs:.2f} epochs); val acc of the params at the stop: {val_acc:.6f}")
    if config.verbose:
        print(f"({note})")
    if val_acc > solver.best_val_acc:
        solver.best_val_acc = val_acc
        solver.best_params = current
    for name, value in solver.best_params.items():
        solver.model.params[name] = np.array(value, copy=True)
    return note


def _write_outputs(out: Path, config: TrainConfig, model: Any, solver: Any, final_params: dict,
                   status: str) -> dict[str, str]:
    """Parameters and figures of a finished (or stopped) run; returns {role: file name}."""
    import numpy as np

    from autocnn.tools import plots

    files = {"config": CONFIG_FILE, "log": LOG_FILE, "metrics": METRICS_FILE}
    atomic_save_npz(out / FINAL_PARAMS_FILE, final_params)
    files["final_params"] = FINAL_PARAMS_FILE
    if solver.best_params:
        atomic_save_npz(out / BEST_PARAMS_FILE, solver.best_params)
        files["best_params"] = BEST_PARAMS_FILE
    title = f"{_describe_model(config)}: {status}"
    plots.plot_training_curves(solver.loss_history, solver.train_acc_history, solver.val_acc_history,
                               out / CURVES_FILE, title=title)
    files["curves"] = CURVES_FILE
    first_weights = (solver.best_params or model.params).get("W1")
    if first_weights is not None:
        plots.plot_first_layer_filters(np.asarray(first_weights), out / FILTERS_FILE,
                                       title=f"First-layer weights of {_describe_model(config)}")
        files["filters"] = FILTERS_FILE
    return files


def _describe_model(config: TrainConfig) -> str:
    if config.model == "three-layer":
        text = (f"ThreeLayerConvNet ({config.num_filters} filters {config.filter_size}x{config.filter_size}, "
                f"hidden {config.hidden_dims[0]})")
    elif config.model == "fc":
        text = f"FullyConnectedNet (hidden {_int_list_text(config.hidden_dims)})"
    else:
        blocks = "-".join(_int_list_text(block) for block in config.blocks)
        text = f"ConvNet (blocks {blocks}, {config.filter_size}x{config.filter_size}, hidden {_int_list_text(config.hidden_dims)})"
    extras = [name for flag, name in ((config.use_batchnorm, "batchnorm"), (config.dropout < 1, "dropout")) if flag]
    return f"{config.impl} {text}" + (f" + {', '.join(extras)}" if extras else "")


def _summary(metrics: dict[str, Any], out: Path | None) -> str:
    test = f"{metrics['test_acc']:.6f}" if metrics["test_acc"] is not None else "n/a"
    lines = [f"best val acc: {metrics['best_val_acc']:.6f}; test acc (best params): {test}; "
             f"training {metrics['train_time_s']:.1f} s, {metrics['images_per_s']} images/s; "
             f"status: {metrics['status']}"]
    if out is not None:
        lines.append(f"wrote {', '.join(sorted(metrics['files'].values()))} to {out}")
    return "\n".join(lines)


def _data_source(data_dir: str | None) -> dict[str, Any] | None:
    from autocnn.data.cifar10 import describe_data_sources

    for report in describe_data_sources(data_dir):
        if report["selected"]:
            return {"origin": report["origin"], "location": report["location"]}
    return None


def _clear_output(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    # Old checkpoints would otherwise be mistaken for this run's by a later --resume.
    for stale in (out / CHECKPOINT_DIR).glob(f"{CHECKPOINT_PREFIX}_epoch_*"):
        stale.unlink()


def _last(values: Sequence[float]) -> float | None:
    return float(values[-1]) if len(values) else None


class _Tee:
    """A text stream that writes to several streams (the terminal and the log file)."""

    def __init__(self, *streams: TextIO) -> None:
        self.streams = streams

    def write(self, text: str) -> int:
        for stream in self.streams:
            stream.write(text)
        return len(text)

    def flush(self) -> None:
        for stream in self.streams:
            stream.flush()


@contextlib.contextmanager
def _tee_stdout(path: Path | None, append: bool) -> Iterator[None]:
    if path is None:
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a" if append else "w", encoding="utf-8", buffering=1) as log:
        with contextlib.redirect_stdout(_Tee(sys.stdout, log)):
            yield


# ---------------------------------------------------------------------- checks and parsing


def _check_choice(flag: str, value: Any, choices: Sequence[str]) -> None:
    if value not in choices:
        raise ValueError(f"{flag} must be one of {', '.join(choices)}, got {value!r}")


def _flag(name: str) -> str:
    """The command-line flag of a TrainConfig field."""
    irregular = {"num_epochs": "--epochs", "data_dir": "--data", "use_batchnorm": "--batchnorm"}
    return irregular.get(name, "--" + name.replace("_", "-"))


def _int_list_text(values: Sequence[int]) -> str:
    return ",".join(str(value) for value in values)
