"""The Solver: trains any model that has ``.params`` and ``.loss(X, y=None)``.

A Solver runs minibatch gradient descent with one of the update rules of
:mod:`autocnn.training.optim` (or any callable with the same contract), logs the loss and
the train / validation accuracies exactly as the notebook does, decays the
learning rate once per epoch, and at the end swaps the parameters that reached
the best validation accuracy into the model.

The model contract:

- model.params: A dictionary mapping parameter names to numpy arrays.
- model.loss(X, y=None): With y None, returns class scores of shape (N, C).
  With y given, returns a tuple (loss, grads) where loss is a scalar and grads
  is a dictionary with the same keys as model.params holding the gradients.
- model.bn_params (optional): A list of dictionaries whose 'running_mean' and
  'running_var' entries are saved in checkpoints.

Example usage::

    data = {'X_train': ..., 'y_train': ..., 'X_val': ..., 'y_val': ...}
    model = MyAwesomeModel(hidden_size=100, reg=10)
    solver = Solver(model, data, update_rule='sgd',
                    optim_config={'learning_rate': 1e-3},
                    lr_decay=0.95, num_epochs=10, batch_size=100,
                    print_every=100, checkpoint_name='runs/awesome', seed=0)
    solver.train()

Checkpoints
-----------
With ``checkpoint_name='runs/awesome'`` the Solver writes, at the end of every
epoch E, the pair ``runs/awesome_epoch_E.npz`` (every array) and
``runs/awesome_epoch_E.json`` (every scalar, the histories and the Solver's own
settings). Neither file needs pickle to load. Each file is written to a temporary
file in the same folder and moved into place with ``os.replace``, the ``.npz``
first, so a ``.json`` that exists always describes a complete ``.npz``; a crash
leaves the previous epoch's pair untouched. ``keep_checkpoints=k`` deletes all
but the newest k pairs once a new pair is in place.

``Solver.resume(path, model, data)`` rebuilds a Solver from such a pair (path
may be the ``.json``, the ``.npz`` or the prefix, which picks the newest epoch),
loads the parameters and batchnorm running statistics into the freshly built
``model``, and restores optimizer state, histories and random states, so that
``train()`` then finishes with bitwise the same parameters and histories as an
uninterrupted run.

Randomness
----------
Minibatches and accuracy subsamples come from the Solver's own
``np.random.RandomState``, seeded with ``seed``; when seed is None the seed is
drawn from the global ``np.random``, so ``np.random.seed(0)`` before building
the Solver still makes a run reproducible. With ``augment=True`` the crops and
flips of each minibatch are drawn from that same state, right after the
minibatch itself. Checkpoints also save the global
``np.random`` state (models may use it, e.g. for dropout masks) and
``Solver.resume`` restores it unless ``restore_global_rng=False``.

Divergence
----------
A NaN or infinite loss stops training before the bad step is applied, with a
:class:`TrainingDivergedError` (a ``FloatingPointError``) naming the iteration
and the learning rates, and pointing at the last good checkpoint, which is left
in place.
"""

from __future__ import annotations

import copy
import glob
import json
import os
import re
import uuid
from pathlib import Path
from typing import Any, Callable, Mapping, Protocol

import numpy as np

from autocnn.files import atomic_write
from autocnn.training import optim
from autocnn.training.allocator import keep_freed_memory
from autocnn.training.augment import random_crops_and_flips
from reference import validation

CHECKPOINT_FORMAT = "autocnn.training.solver.checkpoint"
CHECKPOINT_VERSION = 1

#: Settings that may differ between the run that wrote a checkpoint and its resumption.
RESUME_OVERRIDABLE = ("update_rule", "num_epochs", "print_every", "verbose",
                      "checkpoint_name", "keep_checkpoints")

_REQUIRED_DATA_KEYS = ("X_train", "y_train", "X_val", "y_val")
_BN_STAT_KEYS = ("running_mean", "running_var")


class TrainingStopped(Exception):
    """Solver.train stopped early because its stop_when() said so; raised before an update,
    so parameters, optimizer state and histories are those of the last completed iteration."""


class TrainingDivergedError(FloatingPointError):
    """The training loss became NaN or infinite; the bad step was not applied.

    Attributes:
    - iteration: 1-based iteration whose loss was not finite (as in the log).
    - num_iterations: Total number of iterations of the run.
    - epoch: Number of epochs completed before that iteration.
    - loss: The offending loss value.
    - checkpoint: Path of the last good checkpoint's .json, or None.
    """

    def __init__(self, iteration: int, num_iterations: int, epoch: int, loss: float,
                 learning_rates: list[float], checkpoint: Path | None) -> None:
        self.iteration = iteration
        self.num_iterations = num_iterations
        self.epoch = epoch
        self.loss = loss
        self.checkpoint = checkpoint
        rates = sorted(set(learning_rates))
        rate_text = ", ".join(f"{rate:g}" for rate in rates) if rates else "unknown"
        where = (f"the last good checkpoint is {checkpoint}" if checkpoint is not None
                 else "no checkpoint exists yet (one is written at the end of every epoch when "
                      "checkpoint_name is set)")
        super().__init__(
            f"Training diverged: loss is {loss} at iteration {iteration} / {num_iterations} "
            f"(after {epoch} completed epochs); the learning rate may be too high "
            f"(learning_rate {rate_text}), try a smaller one. This step was not applied; {where}.")


class CheckpointError(ValueError):
    """A checkpoint is missing, malformed, or does not fit the model or data given."""


class TrainableModel(Protocol):
    params: dict[str, np.ndarray]

    def loss(self, X: np.ndarray, y: np.ndarray | None = None) -> Any: ...


def _check_arguments(model: Any, data: dict, unexpected: dict, *, update_rule: Any, optim_config: Any,
                     lr_decay: Any, batch_size: Any, num_epochs: Any, num_train_samples: Any,
                     num_val_samples: Any, print_every: Any, checkpoint_name: Any, keep_checkpoints: Any,
                     seed: Any, augment: Any) -> None:
    """The Solver's arguments, checked before anything is set: ValueError naming the first bad one."""
    if unexpected:
        raise ValueError(f"Unrecognized Solver arguments: {', '.join(sorted(unexpected))}")
    if not isinstance(getattr(model, "params", None), dict) or not callable(getattr(model, "loss", None)):
        raise ValueError("model must have a dict attribute 'params' and a method 'loss(X, y=None)'")
    _check_data(data, getattr(model, "num_classes", None))
    validation.check_int("batch_size", batch_size, 1)
    validation.check_int("num_epochs", num_epochs, 1)
    validation.check_int("print_every", print_every, 1)
    for name, value in (("num_train_samples", num_train_samples),
                        ("num_val_samples", num_val_samples),
                        ("keep_checkpoints", keep_checkpoints)):
        if value is not None:
            validation.check_int(name, value, 1)
    validation.check_positive_number("lr_decay", lr_decay)
    if optim_config is not None and not isinstance(optim_config, Mapping):
        raise ValueError(f"optim_config must be a dict of hyperparameters, got {type(optim_config).__name__}")
    if checkpoint_name is not None and not isinstance(checkpoint_name, (str, os.PathLike)):
        raise ValueError(f"checkpoint_name must be a path prefix, got {checkpoint_name!r}")
    if seed is not None:
        validation.check_int("seed", seed, 0, 2**32 - 1)  # np.random.RandomState's range
    if not isinstance(augment, bool):
        raise ValueError(f"augment must be True or False, got {augment!r}")
    if augment and np.ndim(data["X_train"]) != 4:
        raise ValueError(f"augment crops and flips images: X_train must have shape (N, C, H, W), "
                         f"got shape {np.shape(data['X_train'])}")


class Solver:
    """
    Trains a classification model with minibatch gradient descent.

    After train() returns, model.params holds the parameters that did best on
    the validation set, and the histories loss_history, train_acc_history and
    val_acc_history can be plotted. best_val_acc and best_params hold the best
    validation accuracy and a copy of the parameters that reached it.
    """

    def __init__(self, model: TrainableModel, data: dict[str, np.ndarray], *,
                 update_rule: str | optim.UpdateRule = "sgd",
                 optim_config: dict[str, Any] | None = None,
                 lr_decay: float = 1.0,
                 batch_size: int = 100,
                 num_epochs: int = 10,
                 num_train_samples: int | None = 1000,
                 num_val_samples: int | None = None,
                 print_every: int = 10,
                 verbose: bool = True,
                 checkpoint_name: str | os.PathLike | None = None,
                 keep_checkpoints: int | None = None,
                 seed: int | None = None,
                 augment: bool = False,
                 **unexpected: Any) -> None:
        """
        Construct a new Solver instance.

        Inputs:
        - model: An object with params and loss as described in the module docstring.
        - data: A dictionary with 'X_train' of shape (N_train, ...), 'y_train' of
          shape (N_train,) integer labels, 'X_val' and 'y_val' likewise.

        Optional keyword arguments:
        - update_rule: The name of an update rule in autocnn.training.optim ('sgd',
          'sgd_momentum', 'rmsprop', 'adam') or a callable with the same contract.
        - optim_config: Hyperparameters passed to the update rule; every
          parameter gets its own copy. Default {}, i.e. the rule's defaults.
        - lr_decay: Every parameter's learning_rate is multiplied by this at the
          end of each epoch.
        - batch_size: Size of the minibatches used to compute loss and gradient.
        - num_epochs: The number of epochs to run for.
        - num_train_samples: Number of training samples used to check training
          accuracy; None uses the whole training set.
        - num_val_samples: Number of validation samples used to check validation
          accuracy; None (default) uses the whole validation set.
        - print_every: The training loss is printed every print_every iterations.
        - verbose: If False, nothing is printed during training.
        - checkpoint_name: If not None, a path prefix; a checkpoint pair
          <prefix>_epoch_<E>.npz / .json is written after every epoch (the
          folder is created if needed).
        - keep_checkpoints: If not None, only the newest keep_checkpoints pairs
          are kept on disk.
        - seed: Seed of the Solver's random state; None draws one from np.random.
        - augment: Randomly crop (after zero-padding by 4) and flip every training
          minibatch (autocnn.training.augment), drawing from the Solver's random
          state; needs images of shape (N, C, H, W). Off by default.

        Raises ValueError naming any unknown keyword argument, unknown update
        rule, missing or malformed data entry, or out-of-range setting.
        """
        _check_arguments(model, data, unexpected, update_rule=update_rule, optim_config=optim_config,
                         lr_decay=lr_decay, batch_size=batch_size, num_epochs=num_epochs,
                         num_train_samples=num_train_samples, num_val_samples=num_val_samples,
                         print_every=print_every, checkpoint_name=checkpoint_name,
                         keep_checkpoints=keep_checkpoints, seed=seed, augment=augment)
        self.model = model
        self.X_train = data["X_train"]
        self.y_train = data["y_train"]
        self.X_val = data["X_val"]
        self.y_val = data["y_val"]

        self.update_rule_name, self.update_rule = _resolve_update_rule(update_rule)
        self.optim_config = dict(optim_config) if optim_config is not None else {}
        self.lr_decay = float(lr_decay)
        self.batch_size = int(batch_size)
        self.num_epochs = int(num_epochs)
        self.num_train_samples = num_train_samples
        self.num_val_samples = num_val_samples
        self.print_every = int(print_every)
        self.verbose = bool(verbose)
        self.checkpoint_name = os.fspath(checkpoint_name) if checkpoint_name is not None else None
        self.keep_checkpoints = keep_checkpoints
        self.augment = augment
        if seed is None:
            # Drawn from the global state so that np.random.seed() upstream still fixes the run.
            seed = int(np.random.randint(0, 2**31 - 1))
        self.seed = int(seed)
        self.rng = np.random.RandomState(self.seed)
        # Called before every iteration; True makes train() raise TrainingStopped there (a
        # time budget, a stop button). Not a setting: checkpoints do not record it.
        self.stop_when: Callable[[], bool] | None = None
        if self.checkpoint_name is not None:
            self._settings()  # Fail now, not after an epoch, if a setting cannot be saved.

        self._reset()

    def _reset(self) -> None:
        """Set up the book-keeping variables for a fresh run."""
        self.epoch = 0
        self.iteration = 0  # Number of completed iterations (== index of the next one).
        self.best_val_acc = 0.0
        self.best_params: dict[str, np.ndarray] = {}
        # The params as training left them, before train() swaps the best ones in.
        self.final_params: dict[str, np.ndarray] = {}
        self.loss_history: list[float] = []
        self.train_acc_history: list[float] = []
        self.val_acc_history: list[float] = []
        self.last_checkpoint: Path | None = None
        # Each parameter keeps its own optimizer state (velocity, moments, ...).
        self.optim_configs = {name: copy.deepcopy(self.optim_config) for name in self.model.params}

    @property
    def iterations_per_epoch(self) -> int:
        return max(len(self.X_train) // self.batch_size, 1)

    @property
    def num_iterations(self) -> int:
        return self.num_epochs * self.iterations_per_epoch

    def _step(self) -> None:
        """Make a single gradient update on a random minibatch (drawn with replacement)."""
        batch_mask = self.rng.choice(len(self.X_train), self.batch_size)
        X_batch = self.X_train[batch_mask]
        if self.augment:
            X_batch = random_crops_and_flips(X_batch, self.rng)
        loss, grads = self.model.loss(X_batch, self.y_train[batch_mask])
        loss = float(loss)
        if not np.isfinite(loss):
            raise TrainingDivergedError(
                iteration=self.iteration + 1, num_iterations=self.num_iterations, epoch=self.epoch,
                loss=loss, learning_rates=[float(config["learning_rate"])
                                           for config in self.optim_configs.values()
                                           if "learning_rate" in config],
                checkpoint=self.last_checkpoint)
        self.loss_history.append(loss)

        for name, weights in self.model.params.items():
            if name not in grads:
                raise ValueError(f"model.loss returned no gradient for parameter '{name}'")
            next_weights, next_config = self.update_rule(weights, grads[name], self.optim_configs[name])
            self.model.params[name] = next_weights
            self.optim_configs[name] = next_config

    def check_accuracy(self, X: np.ndarray, y: np.ndarray, num_samples: int | None = None,
                       batch_size: int = 100) -> float:
        """
        Check accuracy of the model on the provided data.

        Inputs:
        - X: Array of data, of shape (N, d_1, ..., d_k)
        - y: Array of labels, of shape (N,)
        - num_samples: If not None and N > num_samples, subsample the data (with
          replacement, from the Solver's random state) and only test the model on
          num_samples datapoints.
        - batch_size: Split X and y into batches of this size to avoid using too
          much memory.

        Returns:
        - acc: Scalar giving the fraction of instances that were correctly
          classified by the model.

        Raises ValueError naming X, y, num_samples or batch_size when one is malformed.
        """
        # Shapes and dtypes only: this runs on the whole training set every epoch.
        if not isinstance(X, np.ndarray) or X.ndim < 1:
            raise ValueError(f"X must be a numpy array of examples, got {_describe_array(X)}")
        num_total = len(X)
        if num_total == 0:
            raise ValueError("check_accuracy got no samples (X is empty)")
        if not isinstance(y, np.ndarray) or not np.issubdtype(y.dtype, np.integer) or y.shape != (num_total,):
            raise ValueError(f"y must be an integer label array of shape ({num_total},), one per example of X, "
                             f"got {_describe_array(y)}")
        if num_samples is not None:
            validation.check_int("num_samples", num_samples, 1)
        validation.check_int("batch_size", batch_size, 1)
        if num_samples is not None and num_total > num_samples:
            mask = self.rng.choice(num_total, num_samples)
            X, y = X[mask], y[mask]
            num_total = num_samples

        predictions = []
        for start in range(0, num_total, batch_size):
            scores = self.model.loss(X[start:start + batch_size])
            predictions.append(np.argmax(scores, axis=1))
        return float(np.mean(np.concatenate(predictions) == y))

    def train(self) -> None:
        """
        Run optimization to train the model, then swap the best parameters in.

        A Solver made by Solver.resume continues where its checkpoint stopped; a
        Solver whose run is already complete only swaps the best parameters in.

        Raises TrainingStopped (before an update, the params left as they are) when
        stop_when is set and returns True; TrainingDivergedError on a NaN / Inf loss.

        Training has glibc's malloc keep freed memory for this process from here on
        (autocnn.training.allocator): every step re-creates the same big arrays, and
        reusing their memory instead of page-faulting it in again makes a batch-1000 step
        about a fifth faster. Importing autocnn changes nothing.
        """
        keep_freed_memory()
        num_iterations = self.num_iterations
        iterations_per_epoch = self.iterations_per_epoch

        while self.iteration < num_iterations:
            if self.stop_when is not None and self.stop_when():
                raise TrainingStopped(f"stopped before iteration {self.iteration + 1} / {num_iterations}")
            t = self.iteration
            self._step()
            self.iteration = t + 1

            if self.verbose and t % self.print_every == 0:
                print("(Iteration %d / %d) loss: %f" % (t + 1, num_iterations, self.loss_history[-1]))

            epoch_end = (t + 1) % iterations_per_epoch == 0
            if epoch_end:
                self.epoch += 1
                for config in self.optim_configs.values():
                    if "learning_rate" in config:
                        config["learning_rate"] = float(config["learning_rate"]) * self.lr_decay

            first_it = t == 0
            last_it = t == num_iterations - 1
            if first_it or last_it or epoch_end:
                self._record_accuracies()

            if epoch_end and self.checkpoint_name is not None:
                self.save_checkpoint()

        self.final_params = {name: np.array(value, copy=True) for name, value in self.model.params.items()}
        self._swap_in_best_params()

    def _record_accuracies(self) -> None:
        train_acc = self.check_accuracy(self.X_train, self.y_train, num_samples=self.num_train_samples)
        val_acc = self.check_accuracy(self.X_val, self.y_val, num_samples=self.num_val_samples)
        self.train_acc_history.append(train_acc)
        self.val_acc_history.append(val_acc)
        if self.verbose:
            print("(Epoch %d / %d) train acc: %f; val_acc: %f" % (
                self.epoch, self.num_epochs, train_acc, val_acc))
        if val_acc > self.best_val_acc:
            self.best_val_acc = val_acc
            self.best_params = {name: np.array(value, copy=True) for name, value in self.model.params.items()}

    def _swap_in_best_params(self) -> None:
        # Copies, so that training on afterwards cannot alter best_params.
        for name, value in self.best_params.items():
            self.model.params[name] = np.array(value, copy=True)

    # ------------------------------------------------------------------ checkpoints

    def _settings(self) -> dict[str, Any]:
        """The constructor arguments that rebuild this Solver (JSON-friendly)."""
        return {
            "update_rule": self.update_rule_name,
            "optim_config": _json_scalars(self.optim_config, "optim_config"),
            "lr_decay": self.lr_decay,
            "batch_size": self.batch_size,
            "num_epochs": self.num_epochs,
            "num_train_samples": self.num_train_samples,
            "num_val_samples": self.num_val_samples,
            "print_every": self.print_every,
            "verbose": self.verbose,
            "checkpoint_name": self.checkpoint_name,
            "keep_checkpoints": self.keep_checkpoints,
            "seed": self.seed,
            "augment": self.augment,
        }

    def save_checkpoint(self) -> Path:
        """
        Write the current state as <checkpoint_name>_epoch_<epoch>.npz / .json.

        Returns:
        - The path of the .json file (the one to give to Solver.resume).
        """
        if self.checkpoint_name is None:
            raise ValueError("save_checkpoint needs checkpoint_name to be set")
        json_path, npz_path = checkpoint_paths(self.checkpoint_name, self.epoch)
        json_path.parent.mkdir(parents=True, exist_ok=True)
        checkpoint_id = uuid.uuid4().hex

        arrays: dict[str, np.ndarray] = {"meta/checkpoint_id": np.array(checkpoint_id)}
        arrays.update(_prefixed("params", self.model.params))
        arrays.update(_prefixed("best_params", self.best_params))
        optim_scalars, optim_array_keys = _split_optim_state(self.optim_configs, arrays)
        bn_stat_keys = _add_bn_statistics(getattr(self.model, "bn_params", None) or [], arrays)
        rng_scalars = _add_rng_states({"rng": self.rng.get_state(), "global_rng": np.random.get_state()}, arrays)

        record = {
            "format": CHECKPOINT_FORMAT,
            "version": CHECKPOINT_VERSION,
            "checkpoint_id": checkpoint_id,
            "arrays_file": npz_path.name,
            "epoch": self.epoch,
            "iteration": self.iteration,
            "num_iterations": self.num_iterations,
            "settings": self._settings(),
            "data_shapes": {key: list(np.shape(getattr(self, key))) for key in _REQUIRED_DATA_KEYS},
            "param_names": list(self.model.params),
            "best_param_names": list(self.best_params),
            "optim_scalars": optim_scalars,
            "optim_array_keys": optim_array_keys,
            "bn_stat_keys": bn_stat_keys,
            "rng": rng_scalars["rng"],
            "global_rng": rng_scalars["global_rng"],
            "best_val_acc": float(self.best_val_acc),
            "loss_history": [float(value) for value in self.loss_history],
            "train_acc_history": [float(value) for value in self.train_acc_history],
            "val_acc_history": [float(value) for value in self.val_acc_history],
        }
        record_text = json.dumps(record, indent=1)

        # The .npz goes first: a .json on disk always describes a complete .npz.
        atomic_write(npz_path, lambda handle: np.savez(handle, **arrays))
        atomic_write(json_path, lambda handle: handle.write(record_text.encode("utf-8")))
        self.last_checkpoint = json_path
        if self.keep_checkpoints is not None:
            _prune_checkpoints(self.checkpoint_name, keep=self.keep_checkpoints)
        return json_path

    @classmethod
    def resume(cls, checkpoint: str | os.PathLike, model: TrainableModel, data: dict[str, np.ndarray],
               restore_global_rng: bool = True, **overrides: Any) -> "Solver":
        """
        Rebuild a Solver from a checkpoint so that train() continues the run.

        Inputs:
        - checkpoint: The checkpoint's .json or .npz path, or the checkpoint_name
          prefix (the newest epoch found is used).
        - model: A model built like the one trained (same parameter names, shapes
          and dtypes); its params and bn_params running statistics are
          overwritten with the checkpoint's.
        - data: The same data dictionary as the original run.
        - restore_global_rng: Also restore the global np.random state saved in the
          checkpoint (needed for bitwise equality when the model draws from it).
        - overrides: New values for any of RESUME_OVERRIDABLE, e.g. num_epochs to
          train longer, or update_rule when the run used a custom callable.

        Returns:
        - A Solver whose train() finishes the run.

        Raises CheckpointError if the checkpoint is unreadable or does not fit
        model and data, and ValueError for an override that is not allowed.
        """
        not_allowed = sorted(set(overrides) - set(RESUME_OVERRIDABLE))
        if not_allowed:
            raise ValueError(f"These settings cannot change when resuming: {', '.join(not_allowed)} "
                             f"(allowed: {', '.join(RESUME_OVERRIDABLE)})")
        record, arrays = load_checkpoint(checkpoint)
        source = record["_path"]
        settings = dict(record["settings"])
        settings.update(overrides)
        if "update_rule" not in overrides and settings["update_rule"] not in optim.UPDATE_RULES:
            raise CheckpointError(f"{source} was trained with the custom update rule "
                                  f"'{settings['update_rule']}'; pass update_rule=<that callable> to resume")

        solver = cls(model, data, **settings)
        shapes = {key: list(np.shape(data[key])) for key in _REQUIRED_DATA_KEYS}
        if shapes != record["data_shapes"]:
            raise CheckpointError(f"{source}: data shapes {shapes} differ from the run's {record['data_shapes']}")
        solver._restore(record, arrays, restore_global_rng)
        return solver

    def _restore(self, record: dict[str, Any], arrays: dict[str, np.ndarray], restore_global_rng: bool) -> None:
        try:
            self._restore_unchecked(record, arrays, restore_global_rng)
        except KeyError as missing:
            raise CheckpointError(f"{record['_path']} lacks the entry {missing}; it is incomplete") from None

    def _restore_unchecked(self, record: dict[str, Any], arrays: dict[str, np.ndarray],
                           restore_global_rng: bool) -> None:
        source = record["_path"]
        params = self.model.params
        if list(record["param_names"]) != list(params):
            raise CheckpointError(f"{source}: checkpoint parameters {record['param_names']} "
                                  f"differ from the model's {list(params)}")
        for name in params:
            saved = arrays[f"params/{name}"]
            current = np.asarray(params[name])
            if saved.shape != current.shape or saved.dtype != current.dtype:
                raise CheckpointError(f"{source}: parameter '{name}' is {saved.dtype}{list(saved.shape)} "
                                      f"in the checkpoint but {current.dtype}{list(current.shape)} in the model")
        bn_params = getattr(self.model, "bn_params", None) or []
        if len(bn_params) != len(record["bn_stat_keys"]):
            raise CheckpointError(f"{source}: checkpoint has {len(record['bn_stat_keys'])} batchnorm "
                                  f"layers but the model has {len(bn_params)}")

        for name in params:
            params[name] = arrays[f"params/{name}"]
        for index, keys in enumerate(record["bn_stat_keys"]):
            for key in keys:
                bn_params[index][key] = arrays[f"bn/{index}/{key}"]
        self.best_params = {name: arrays[f"best_params/{name}"] for name in record["best_param_names"]}
        self.optim_configs = {}
        for name in params:
            config = dict(record["optim_scalars"][name])
            for key in record["optim_array_keys"][name]:
                config[key] = arrays[f"optim/{name}/{key}"]
            self.optim_configs[name] = config

        self.epoch = int(record["epoch"])
        self.iteration = int(record["iteration"])
        self.best_val_acc = float(record["best_val_acc"])
        self.loss_history = list(record["loss_history"])
        self.train_acc_history = list(record["train_acc_history"])
        self.val_acc_history = list(record["val_acc_history"])
        self.rng.set_state(_rng_state(record["rng"], arrays["rng/keys"]))
        if restore_global_rng:
            np.random.set_state(_rng_state(record["global_rng"], arrays["global_rng/keys"]))
        self.last_checkpoint = Path(source)


# ---------------------------------------------------------------------- helpers


def _describe_array(value: Any) -> str:
    """Shape and dtype of an array, else the type's name (never the contents)."""
    if isinstance(value, np.ndarray):
        return f"an array of shape {value.shape} and dtype {value.dtype}"
    return type(value).__name__


def _check_data(data: Any, num_classes: int | None) -> None:
    """
    The data dict: X_train, y_train, X_val, y_val as numpy arrays, one integer label
    in [0, num_classes) per example (only >= 0 when the model does not say num_classes),
    at least one example per split.
    """
    if not isinstance(data, Mapping):
        raise ValueError(f"data must be a dict with the keys {', '.join(_REQUIRED_DATA_KEYS)}, "
                         f"got {type(data).__name__}")
    missing = [key for key in _REQUIRED_DATA_KEYS if key not in data]
    if missing:
        raise ValueError(f"data is missing the keys: {', '.join(missing)}")
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)):
        num_classes = None
    for split in ("train", "val"):
        X, y = data[f"X_{split}"], data[f"y_{split}"]
        if not isinstance(X, np.ndarray) or X.ndim < 1:
            raise ValueError(f"X_{split} must be a numpy array of examples, got {_describe_array(X)}")
        if len(X) == 0:
            raise ValueError(f"X_{split} is empty")
        if not isinstance(y, np.ndarray):
            raise ValueError(f"y_{split} must be a numpy array of integer labels, got {type(y).__name__}")
        if y.ndim == 1 and len(y) != len(X):
            raise ValueError(f"X_{split} has {len(X)} samples but y_{split} has {len(y)}")
        validation.check_labels(y, len(X), num_classes, name=f"y_{split}")


def _resolve_update_rule(update_rule: str | optim.UpdateRule) -> tuple[str, optim.UpdateRule]:
    """Return (name to record, callable) for a rule name or a callable."""
    if isinstance(update_rule, str):
        if update_rule not in optim.UPDATE_RULES:
            raise ValueError(f"Unrecognized update_rule '{update_rule}': use one of "
                             f"{', '.join(sorted(optim.UPDATE_RULES))} or pass a callable")
        return update_rule, optim.UPDATE_RULES[update_rule]
    if not callable(update_rule):
        raise ValueError(f"update_rule must be a name or a callable, got {update_rule!r}")
    for name, rule in optim.UPDATE_RULES.items():
        if rule is update_rule:
            return name, rule
    qualified = f"{getattr(update_rule, '__module__', '?')}.{getattr(update_rule, '__qualname__', repr(update_rule))}"
    return qualified, update_rule


def _json_scalar(value: Any, what: str) -> Any:
    """Return value as a JSON-serializable scalar (numpy scalars become Python ones)."""
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise CheckpointError(f"cannot save {what} = {value!r} in a checkpoint: only numbers, strings, "
                          "None and numpy arrays are supported")


def _json_scalars(config: dict[str, Any], what: str) -> dict[str, Any]:
    return {key: _json_scalar(value, f"{what} '{key}'") for key, value in config.items()}


def _prefixed(prefix: str, arrays: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """{prefix/name: array}: a group of arrays as keys of the checkpoint's .npz."""
    return {f"{prefix}/{name}": np.asarray(value) for name, value in arrays.items()}


def _split_optim_state(optim_configs: dict[str, dict], arrays: dict[str, np.ndarray]) -> tuple[dict, dict]:
    """Put each update rule state's arrays into arrays; return its scalars and the array keys per parameter."""
    optim_scalars: dict[str, dict[str, Any]] = {}
    optim_array_keys: dict[str, list[str]] = {}
    for name, config in optim_configs.items():
        optim_scalars[name] = {}
        optim_array_keys[name] = []
        for key, value in config.items():
            if isinstance(value, np.ndarray):
                arrays[f"optim/{name}/{key}"] = value
                optim_array_keys[name].append(key)
            else:
                optim_scalars[name][key] = _json_scalar(value, f"optim config '{key}' of '{name}'")
    return optim_scalars, optim_array_keys


def _add_bn_statistics(bn_params: list[dict], arrays: dict[str, np.ndarray]) -> list[list[str]]:
    """Put the batchnorm running statistics into arrays; return which keys each bn_param had."""
    bn_stat_keys: list[list[str]] = []
    for index, bn_param in enumerate(bn_params):
        present = [key for key in _BN_STAT_KEYS if key in bn_param]
        for key in present:
            arrays[f"bn/{index}/{key}"] = np.asarray(bn_param[key])
        bn_stat_keys.append(present)
    return bn_stat_keys


def _add_rng_states(states: dict[str, tuple], arrays: dict[str, np.ndarray]) -> dict[str, dict[str, Any]]:
    """Put each RandomState's key array into arrays; return the rest of each state as JSON scalars."""
    rng_scalars = {}
    for label, (algorithm, keys, pos, has_gauss, cached_gaussian) in states.items():
        arrays[f"{label}/keys"] = keys
        rng_scalars[label] = {"algorithm": algorithm, "pos": int(pos), "has_gauss": int(has_gauss),
                              "cached_gaussian": float(cached_gaussian)}
    return rng_scalars


def _rng_state(scalars: dict[str, Any], keys: np.ndarray) -> tuple:
    return (scalars["algorithm"], np.asarray(keys, dtype=np.uint32), int(scalars["pos"]),
            int(scalars["has_gauss"]), float(scalars["cached_gaussian"]))


def checkpoint_paths(checkpoint_name: str | os.PathLike, epoch: int) -> tuple[Path, Path]:
    """Return the (.json, .npz) paths of the checkpoint written at the end of epoch."""
    stem = f"{os.fspath(checkpoint_name)}_epoch_{epoch}"
    return Path(stem + ".json"), Path(stem + ".npz")


def _list_checkpoints(checkpoint_name: str | os.PathLike) -> list[tuple[int, Path]]:
    """All (epoch, .json path) pairs on disk for a prefix, oldest first."""
    prefix = os.fspath(checkpoint_name)
    pattern = re.compile(re.escape(os.path.basename(prefix)) + r"_epoch_(\d+)\.json")
    found = []
    for candidate in glob.glob(glob.escape(prefix) + "_epoch_*.json"):
        match = pattern.fullmatch(os.path.basename(candidate))
        if match:
            found.append((int(match.group(1)), Path(candidate)))
    return sorted(found)


def latest_checkpoint(checkpoint_name: str | os.PathLike) -> Path | None:
    """Return the .json path of the newest checkpoint for a prefix, or None."""
    found = _list_checkpoints(checkpoint_name)
    return found[-1][1] if found else None


def _prune_checkpoints(checkpoint_name: str, keep: int) -> None:
    for _, json_path in _list_checkpoints(checkpoint_name)[:-keep]:
        # The .json goes first so a half-pruned pair is never mistaken for a checkpoint.
        json_path.unlink(missing_ok=True)
        json_path.with_suffix(".npz").unlink(missing_ok=True)


def load_checkpoint(checkpoint: str | os.PathLike) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """
    Read a checkpoint pair without pickle.

    Inputs:
    - checkpoint: The .json or .npz path, or a checkpoint_name prefix (newest epoch).

    Returns a tuple of:
    - record: The JSON record (settings, epoch, iteration, histories, ...), with
      the resolved .json path added under '_path'.
    - arrays: Dictionary of every array in the .npz ('params/<name>',
      'best_params/<name>', 'optim/<name>/<key>', 'bn/<i>/<key>', 'rng/keys', ...).

    Raises CheckpointError naming the file when something is missing or malformed.
    """
    path = Path(checkpoint)
    if path.suffix == ".npz":
        path = path.with_suffix(".json")
    elif path.suffix != ".json":
        newest = latest_checkpoint(path)
        if newest is None:
            raise CheckpointError(f"no checkpoint found: neither {path} nor {path}_epoch_<E>.json exists")
        path = newest
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint {path} does not exist") from None
    except (OSError, ValueError) as error:
        raise CheckpointError(f"checkpoint {path} is not readable JSON: {error}") from error
    if not isinstance(record, dict) or record.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path} is not an autocnn Solver checkpoint")
    if record.get("version") != CHECKPOINT_VERSION:
        raise CheckpointError(f"{path} has checkpoint version {record.get('version')}; "
                              f"this autocnn reads version {CHECKPOINT_VERSION}")

    npz_path = path.parent / record["arrays_file"]
    try:
        with np.load(npz_path, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except FileNotFoundError:
        raise CheckpointError(f"{path} needs {npz_path}, which does not exist") from None
    except Exception as error:  # zipfile / numpy report truncation in many ways
        raise CheckpointError(f"{npz_path} is unreadable or corrupt: {error}") from error
    saved_id = arrays.get("meta/checkpoint_id")
    if saved_id is None or str(saved_id) != record.get("checkpoint_id"):
        raise CheckpointError(f"{npz_path} does not belong to {path} (checkpoint ids differ)")
    record["_path"] = str(path)
    return record, arrays
