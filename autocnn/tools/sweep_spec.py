"""The sweep specification: a small TOML file naming the model, the fixed settings, the search
space, the budget of each trial and an optional fine stage.

Example (``experiments/sweeps/smoke.toml`` is a complete one)::

    description = "coarse-to-fine search for the three-layer net"
    model = "three-layer"          # any of autocnn.tools.train.MODELS
    trials = 8                     # coarse trials
    seed = 0                       # the sweep seed: fixes every trial's parameters

    [fixed]                        # any TrainConfig field, the same for every trial
    batch_size = 100

    [budget]                       # per trial; any of iterations / epochs / minutes (first reached stops)
    iterations = 300
    patience = 100                 # stop a trial whose loss has not improved within 100 iterations

    [space]                        # what the trials vary
    learning_rate = { log_uniform = [1e-4, 1e-2] }
    reg = { log_uniform = [1e-5, 1e-1] }
    use_batchnorm = { choices = [true, false] }

    [fine]                         # optional: narrow the ranges around the best coarse trials
    trials = 4
    top = 3                        # around the best 3 coarse trials
    shrink = 0.25                  # margin on each side, as a fraction of the coarse range's width
    budget = { iterations = 1000 } # optional: the fine trials' own budget

Parsing checks everything (unknown keys, empty ranges, negative budgets, settings the model
does not have) and raises SpecError naming the key, before any trial runs.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autocnn.tools.train import TrainConfig

TOP_LEVEL_KEYS = ("description", "model", "trials", "seed", "fixed", "space", "budget", "fine")
BUDGET_KEYS = ("iterations", "epochs", "minutes", "patience")
FINE_KEYS = ("trials", "top", "shrink", "budget")
DISTRIBUTIONS = ("log_uniform", "uniform", "choices")
#: TrainConfig fields the sweep sets itself (the budget, the trial's folder, silence).
SWEEP_OWNED = ("model", "out", "verbose", "num_epochs", "time_budget", "max_iterations", "patience")
#: The largest trial count a spec may ask for; beyond it a typo is likelier than a plan.
MAX_TRIALS = 10_000


class SpecError(ValueError):
    """A sweep specification is malformed; the message names the key."""


@dataclass(frozen=True)
class Dimension:
    """
    One searched setting.

    - name: The TrainConfig field.
    - kind: 'log_uniform', 'uniform' or 'choices'.
    - low, high: The range (log_uniform, uniform).
    - choices: The values to pick from (choices), as a tuple.
    """

    name: str
    kind: str
    low: float | None = None
    high: float | None = None
    choices: tuple[Any, ...] = ()


@dataclass(frozen=True)
class Budget:
    """What one trial may spend: at most iterations / epochs / minutes (the first reached
    stops it), and patience: stop when the training loss has not improved for that many
    iterations (None = never)."""

    iterations: int | None = None
    epochs: int | None = None
    minutes: float | None = None
    patience: int | None = None


@dataclass(frozen=True)
class FineStage:
    """The fine stage: `trials` trials in ranges narrowed around the `top` best coarse trials,
    with a margin of `shrink` times the coarse range's width on each side; its own budget."""

    trials: int
    top: int
    shrink: float
    budget: Budget


@dataclass(frozen=True)
class SweepSpec:
    """A parsed, checked sweep specification (see the module docstring)."""

    model: str
    trials: int
    seed: int
    fixed: dict[str, Any]
    space: tuple[Dimension, ...]
    budget: Budget
    fine: FineStage | None
    description: str = ""
    source: str = ""  # the TOML text, kept so a resumed sweep can check it is the same sweep

    @property
    def fingerprint(self) -> str:
        """A hash of what decides the trials (the parsed spec, not its comments)."""
        data = {"model": self.model, "trials": self.trials, "seed": self.seed, "fixed": self.fixed,
                "space": [dataclasses.asdict(dim) for dim in self.space],
                "budget": dataclasses.asdict(self.budget),
                "fine": dataclasses.asdict(self.fine) if self.fine is not None else None}
        return hashlib.sha256(json.dumps(data, sort_keys=True, default=list).encode()).hexdigest()[:16]


def load_spec(path: str | os.PathLike) -> SweepSpec:
    """
    Read and check a sweep specification file.

    Inputs:
    - path: A TOML file.

    Returns:
    - The SweepSpec.

    Raises SpecError naming the file and the key that is wrong.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise SpecError(f"cannot read the sweep spec {path}: {error.strerror or error}") from None
    try:
        return parse_spec(text)
    except SpecError as error:
        raise SpecError(f"{path}: {error}") from None


def parse_spec(text: str) -> SweepSpec:
    """
    Parse and check the TOML text of a sweep specification.

    Inputs:
    - text: The TOML text.

    Returns:
    - The SweepSpec.

    Raises SpecError naming the key that is wrong.
    """
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise SpecError(f"not valid TOML: {error}") from None
    _check_keys("", raw, TOP_LEVEL_KEYS)
    if "model" not in raw:
        raise SpecError("'model' is missing (one of three-layer, fc, convnet)")
    model = raw["model"]
    trials = _int(raw, "trials", "trials", minimum=1, required=True)
    seed = _int(raw, "seed", "seed", minimum=0, default=0)
    description = raw.get("description", "")
    if not isinstance(description, str):
        raise SpecError("'description' must be a string")

    fixed = _table(raw, "fixed")
    space_table = _table(raw, "space")
    fields = {field.name for field in dataclasses.fields(TrainConfig)}
    for section, table in (("fixed", fixed), ("space", space_table)):
        for key in table:
            if key not in fields:
                raise SpecError(f"'{section}.{key}' is not a training setting (TrainConfig field)")
            if key in SWEEP_OWNED:
                raise SpecError(f"'{section}.{key}' is set by the sweep itself "
                                f"({_owner(key)}); remove it")
    both = sorted(set(fixed) & set(space_table))
    if both:
        raise SpecError(f"'{both[0]}' is both in [fixed] and in [space]; keep one")
    space = tuple(_dimension(name, value) for name, value in sorted(space_table.items()))
    if not space:
        raise SpecError("'space' is empty: name at least one setting to search")

    budget = _budget(_table(raw, "budget"), "budget", required=True)
    fine = None
    if "fine" in raw:
        fine_table = _table(raw, "fine")
        _check_keys("fine.", fine_table, FINE_KEYS)
        fine_trials = _int(fine_table, "trials", "fine.trials", minimum=1, required=True)
        top = _int(fine_table, "top", "fine.top", minimum=1, default=min(3, trials))
        if top > trials:
            raise SpecError(f"'fine.top' is {top} but there are only {trials} coarse trials")
        shrink = fine_table.get("shrink", 0.25)
        if isinstance(shrink, bool) or not isinstance(shrink, (int, float)) or not 0 < shrink <= 1:
            raise SpecError(f"'fine.shrink' must be a number in (0, 1], got {shrink!r}")
        fine_budget = budget
        if "budget" in fine_table:
            fine_budget = _budget(_table(fine_table, "budget", "fine.budget"), "fine.budget", required=True)
        fine = FineStage(trials=fine_trials, top=top, shrink=float(shrink), budget=fine_budget)

    spec = SweepSpec(model=model, trials=trials, seed=seed, fixed=fixed, space=space, budget=budget,
                     fine=fine, description=description, source=text)
    _check_configs(spec)
    return spec


# ---------------------------------------------------------------------- pieces


def _owner(key: str) -> str:
    if key == "model":
        return "the top-level 'model'"
    if key in ("num_epochs", "time_budget", "max_iterations", "patience"):
        return "use [budget]"
    return "each trial gets its own folder and log"


def _check_keys(prefix: str, table: dict[str, Any], allowed: tuple[str, ...]) -> None:
    for key in table:
        if key not in allowed:
            raise SpecError(f"unknown key '{prefix}{key}' (allowed: {', '.join(allowed)})")


def _table(raw: dict[str, Any], key: str, name: str | None = None) -> dict[str, Any]:
    value = raw.get(key, {})
    if not isinstance(value, dict):
        raise SpecError(f"'{name or key}' must be a table ([{name or key}] or {{...}}), got {value!r}")
    return dict(value)


def _int(table: dict[str, Any], key: str, name: str, minimum: int, required: bool = False,
         default: int | None = None) -> int:
    if key not in table:
        if required:
            raise SpecError(f"'{name}' is missing")
        return default  # type: ignore[return-value]
    value = table[key]
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise SpecError(f"'{name}' must be an integer >= {minimum}, got {value!r}")
    if key == "trials" and value > MAX_TRIALS:
        raise SpecError(f"'{name}' is {value}; at most {MAX_TRIALS} trials")
    return value


def _budget(table: dict[str, Any], name: str, required: bool) -> Budget:
    _check_keys(f"{name}.", table, BUDGET_KEYS)
    values: dict[str, Any] = {}
    for key in ("iterations", "epochs", "patience"):
        if key in table:
            values[key] = _int(table, key, f"{name}.{key}", minimum=1)
    if "minutes" in table:
        minutes = table["minutes"]
        if isinstance(minutes, bool) or not isinstance(minutes, (int, float)) or not minutes > 0:
            raise SpecError(f"'{name}.minutes' must be a positive number, got {minutes!r}")
        values["minutes"] = float(minutes)
    if required and not any(key in values for key in ("iterations", "epochs", "minutes")):
        raise SpecError(f"'{name}' needs at least one of iterations, epochs, minutes")
    return Budget(**values)


def _dimension(name: str, value: Any) -> Dimension:
    key = f"space.{name}"
    if not isinstance(value, dict) or len(value) != 1 or next(iter(value)) not in DISTRIBUTIONS:
        raise SpecError(f"'{key}' must be one of {{log_uniform = [low, high]}}, {{uniform = [low, high]}}, "
                        f"{{choices = [...]}}, got {value!r}")
    kind, argument = next(iter(value.items()))
    if kind == "choices":
        if not isinstance(argument, list) or not argument:
            raise SpecError(f"'{key}.choices' must be a non-empty list, got {argument!r}")
        return Dimension(name=name, kind=kind, choices=tuple(argument))
    if (not isinstance(argument, list) or len(argument) != 2
            or any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in argument)):
        raise SpecError(f"'{key}.{kind}' must be [low, high] (two numbers), got {argument!r}")
    low, high = (float(v) for v in argument)
    if not (math.isfinite(low) and math.isfinite(high)) or not low < high:
        raise SpecError(f"'{key}.{kind}' is an empty range: [{low:g}, {high:g}] (low must be < high)")
    if kind == "log_uniform" and low <= 0:
        raise SpecError(f"'{key}.log_uniform' needs a positive low end, got {low:g}")
    return Dimension(name=name, kind=kind, low=low, high=high)


def _check_configs(spec: SweepSpec) -> None:
    """Every corner of the space must give a valid TrainConfig: try the low and high ends of
    every range with each choice, one dimension at a time (TrainConfig.resolved names the flag)."""
    base = {dim.name: (dim.low if dim.kind != "choices" else dim.choices[0]) for dim in spec.space}
    probes = [base]
    for dim in spec.space:
        values = dim.choices if dim.kind == "choices" else (dim.low, dim.high)
        probes += [dict(base, **{dim.name: value}) for value in values]
    for probe in probes:
        try:
            TrainConfig.from_dict({**spec.fixed, **probe, "model": spec.model, "seed": 0}).resolved()
        except (TypeError, ValueError) as error:
            where = ", ".join(f"{name}={value!r}" for name, value in probe.items())
            raise SpecError(f"the settings do not make a valid training run ({where}): {error}") from None
