"""``autocnn gradcheck``: the notebook's gradient-check cell as a PASS / FAIL table."""

from __future__ import annotations

import argparse
import json


def add_parser(subparsers) -> None:
    """Declare ``autocnn gradcheck``."""
    parser = subparsers.add_parser(
        "gradcheck",
        help="the notebook's gradient-check cell [3]: autocnn vs numerical vs hand-written, PASS/FAIL",
        description="Run the notebook's cell [3] (ThreeLayerConvNet(num_filters=3, filter_size=3, "
                    "input_dim=(3, 16, 16), hidden_dim=7, dtype=float64) on 2 random inputs, h = 1e-6) and print, "
                    "per parameter, the relative error of autocnn's autograd gradient vs the numerical one, of the "
                    "hand-written reference vs the numerical one, and of autocnn vs reference, against the "
                    "notebook's tolerances (W1, W2 <= 1e-2, the rest <= 1e-5; autocnn vs reference <= 1e-7). "
                    "Exit status 0 when every comparison passes or autocnn matches the reference and each "
                    "numerical failure is explained (rounding, or a kink of the loss within +-h); 1 otherwise.")
    parser.add_argument("--weight-scale", type=float, default=1e-3,
                        help="std of the initial weights (default %(default)g, as in the notebook)")
    parser.add_argument("--seed", type=int, default=None,
                        help="seed of the inputs and weights (default: unseeded, as in the notebook)")
    parser.add_argument("--batchnorm", action="store_true", help="check the network with batchnorm")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from autocnn.tools.gradcheck import format_gradcheck, notebook_gradient_check

    if not args.weight_scale > 0:
        raise ValueError(f"--weight-scale must be positive, got {args.weight_scale}")
    if args.seed is not None and args.seed < 0:
        raise ValueError(f"--seed must be >= 0, got {args.seed}")
    result = notebook_gradient_check(weight_scale=args.weight_scale, seed=args.seed,
                                     use_batchnorm=args.batchnorm)
    print(json.dumps(result.to_dict(), indent=1) if args.json else format_gradcheck(result))
    return 0 if result.gradients_agree else 1
