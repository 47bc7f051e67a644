"""What the experiment scripts share: their flags, result folders, smoke settings and
the recording of each experiment's expected outcome.

Every script is ``python -m experiments.<name> [--smoke] [--data DIR] [--out DIR]``:
by default it runs the notebook's configuration and writes to
``experiments/results/<name>/``; ``--smoke`` runs a few iterations on a small
slice (seconds) so that tests can run every script.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path
from typing import Any, Sequence

RESULTS_DIR = Path(__file__).resolve().parent / "results"
#: Smoke runs write here by default, so they never replace the recorded results (/runs/ is git-ignored).
SMOKE_DIR = Path(__file__).resolve().parent.parent / "runs" / "smoke"

#: Smoke runs: splits that fit both real CIFAR-10 and the tests' tiny CIFAR-format folder
#: (5 x 100 training images, 100 test images), few iterations, one epoch.
SMOKE_SETTINGS: dict[str, Any] = {"split": [400, 100, 100], "num_epochs": 1, "num_train_samples": 100}


def parse_args(name: str, description: str, argv: Sequence[str] | None,
               extra: Sequence[tuple[Sequence[str], dict[str, Any]]] = ()) -> argparse.Namespace:
    """
    The flags of an experiment script.

    Inputs:
    - name: The experiment's name (its results folder).
    - description: What the script reproduces, for --help.
    - argv: Arguments (None = sys.argv[1:]).
    - extra: (flags, add_argument keywords) for script-specific flags.

    Returns:
    - The parsed arguments, with out resolved to a Path (smoke runs default to
      runs/smoke/<name>, so they never overwrite the recorded results).
    """
    parser = argparse.ArgumentParser(prog=f"python -m experiments.{name}", description=description)
    parser.add_argument("--smoke", action="store_true",
                        help="a few iterations on a small slice (seconds), to check the script runs")
    parser.add_argument("--data", metavar="DIR", default=None,
                        help="CIFAR-10 folder or tarball (default $AUTOCNN_DATA, else the cache)")
    parser.add_argument("--out", metavar="DIR", default=None,
                        help=f"where to write the results (default experiments/results/{name}, "
                             f"with --smoke runs/smoke/{name})")
    parser.add_argument("--seed", type=int, default=None,
                        help="seed of weights and minibatches (default: the script's fixed seed, 0)")
    for flags, options in extra:
        parser.add_argument(*flags, **options)
    args = parser.parse_args(argv)
    use_script_settings()
    if args.out is None:
        args.out = (SMOKE_DIR if args.smoke else RESULTS_DIR) / name
    args.out = Path(args.out)
    return args


def use_script_settings() -> None:
    """What ``autocnn train`` sets for its process: figures to files (the Solver keeps freed memory itself)."""
    from autocnn.cli import use_file_backend

    use_file_backend()


def smoke(config: Any, **overrides: Any) -> Any:
    """The config shrunk to a smoke run: SMOKE_SETTINGS, then the script's own overrides."""
    return dataclasses.replace(config, **{**SMOKE_SETTINGS, **overrides})


def for_run(config: Any, args: argparse.Namespace) -> Any:
    """The config with the script's flags applied: --data, --out and --seed."""
    changes = {"data_dir": args.data, "out": str(args.out)}
    if args.seed is not None:
        changes["seed"] = args.seed
    return dataclasses.replace(config, **changes)


def record_expectation(out: Path, criterion: str, value: float | None, threshold: float,
                       at_least: bool = True, smoke_run: bool = False) -> bool:
    """
    Print and store in out/metrics.json whether the run met the notebook's expectation.

    Inputs:
    - out: The results folder (holding metrics.json).
    - criterion: What is measured, e.g. 'final train accuracy'.
    - value: The measured value.
    - threshold: The notebook's target.
    - at_least: True if value must be >= threshold, False if <=.
    - smoke_run: A smoke run is too short to meet anything; recorded as not applicable.

    Returns:
    - True if the expectation was met (False for smoke runs).
    """
    met = (value is not None and (value >= threshold if at_least else value <= threshold)) and not smoke_run
    relation = ">=" if at_least else "<="
    shown = "n/a" if value is None else f"{value:.4f}"
    if smoke_run:
        verdict = "not applicable (smoke run)"
    else:
        verdict = "met" if met else "NOT met"
    print(f"Expectation: {criterion} {relation} {threshold:g}: {shown} -> {verdict}")
    path = out / "metrics.json"
    metrics = json.loads(path.read_text(encoding="utf-8"))
    metrics.setdefault("expectations", []).append(
        {"criterion": criterion, "relation": relation, "threshold": threshold, "value": value,
         "met": met if not smoke_run else None})
    path.write_text(json.dumps(metrics, indent=1) + "\n", encoding="utf-8")
    return met
