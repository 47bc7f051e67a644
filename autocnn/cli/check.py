"""``autocnn check``: a student's hand-written layers and models against autograd's gradients."""

from __future__ import annotations

import argparse
import json
import os
import sys

from autocnn.tools.check import DEFAULT_MEMORY_MB, DEFAULT_TARGET, DEFAULT_TIMEOUT


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "check",
        help="check hand-written notebook layers and models against autograd's exact gradients",
        description="Run every notebook-API function (affine_*, relu_*, batchnorm_*, dropout_*, conv_*, max_pool_*, "
                    "spatial_batchnorm_*, softmax_loss, svm_loss, layer_utils sandwiches) and the ThreeLayerConvNet / "
                    "FullyConnectedNet classes a submission defines on random float64 inputs, and compare forward "
                    "outputs and gradients with autocnn's forward and autograd's derivative of it. Course support "
                    "files (fast_layers.py, setup.py, ...) are not judged. Several targets (a class: "
                    "submissions/*/) give one summary line each and a function-by-submission matrix. Exit status: "
                    "0 all the student's code is right, 1 something is wrong or not implemented, 2 nothing could "
                    "be checked.",
    )
    parser.add_argument("targets", nargs="*", metavar="PATH_OR_MODULE",
                        help=f"a .py file, a folder (nndl/, cs231n/, a submission) or a module name; "
                             f"default: {DEFAULT_TARGET}")
    parser.add_argument("--json", action="store_true", help="print one JSON document with every row")
    parser.add_argument("--csv", metavar="FILE", help="also write the function-by-submission matrix as CSV")
    parser.add_argument("--include", metavar="FILE", action="append", default=[],
                        help="judge this support file too (e.g. fast_layers.py); repeatable; setup.py never runs")
    parser.add_argument("--jobs", type=int, default=None,
                        help="submissions checked at once (default: the number of cores)")
    parser.add_argument("--tables", action="store_true",
                        help="with several targets, print every submission's full table too")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT,
                        help="seconds (wall and CPU) one call of user code may take (default %(default)s)")
    parser.add_argument("--memory", type=int, default=DEFAULT_MEMORY_MB, metavar="MB",
                        help="memory a worker may use beyond the checker's own (default %(default)s MB)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random inputs (default %(default)s)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Print the table(s), or JSON; exit 0 (all right), 1 (something wrong or missing) or 2 (nothing checked)."""
    from autocnn.files import atomic_write_text
    from autocnn.tools.check import (Options, check_targets, format_class, format_results, overall_exit_status,
                                     results_as_csv, results_as_json)

    if args.jobs is not None and args.jobs < 1:
        raise ValueError(f"--jobs must be at least 1, got {args.jobs}")
    targets = args.targets or [DEFAULT_TARGET]
    options = Options(timeout=args.timeout, seed=args.seed, memory_mb=args.memory, include=tuple(args.include))
    results = check_targets(targets, options, jobs=args.jobs or os.cpu_count())
    if args.csv:
        atomic_write_text(args.csv, results_as_csv(results))
    if args.json:
        print(json.dumps(results_as_json(results), indent=2))
    elif len(results) == 1 or args.tables:
        print(format_results(results))
        if len(results) > 1:
            print(format_class(results))
    else:
        print(format_class(results))
    sys.stdout.flush()
    return overall_exit_status(results)
