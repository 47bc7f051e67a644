"""``autocnn check``: a student's hand-written layers and models against autograd's gradients."""

from __future__ import annotations

import argparse
import json

from autocnn.tools.check import DEFAULT_TARGET, DEFAULT_TIMEOUT


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "check",
        help="check hand-written notebook layers and models against autograd's exact gradients",
        description="Run every notebook-API function (affine_*, relu_*, batchnorm_*, dropout_*, conv_*, max_pool_*, "
                    "spatial_batchnorm_*, softmax_loss, svm_loss, layer_utils sandwiches) and the ThreeLayerConvNet / "
                    "FullyConnectedNet classes found in each target on random float64 inputs, and compare forward "
                    "outputs and gradients with autocnn's forward and autograd's derivative of it.",
    )
    parser.add_argument("targets", nargs="*", metavar="PATH_OR_MODULE",
                        help=f"a .py file, a folder (e.g. nndl/) or a module name; default: {DEFAULT_TARGET}")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT,
                        help="seconds one call of user code may take before it is stopped (default %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random inputs (default %(default)s)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Print the table (or JSON); 1 when anything fails."""
    from autocnn.tools.check import check_target, format_results, results_as_json

    targets = args.targets or [DEFAULT_TARGET]
    results = [(target, check_target(target, args.timeout, args.seed)) for target in targets]
    if args.json:
        payload = results_as_json(results)
        print(json.dumps(payload, indent=2))
        return 0 if payload["passed"] else 1
    print(format_results(results))
    return 1 if any(row.failed for _, rows in results for row in rows) else 0
