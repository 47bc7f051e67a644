"""``autocnn report``: the teaching report (lines of code, gradient agreement, speed, step sizes)."""

from __future__ import annotations

import argparse
from pathlib import Path

from autocnn.tools.report import DEFAULT_OUT


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "report",
        help="write a Markdown + PNG report comparing autocnn and the hand-written reference",
        description="Lines of code, gradient agreement (autograd vs hand-written vs numerical), speed, and the "
                    "error of numerical gradients vs step size, for every notebook layer and both models.",
    )
    parser.add_argument("--out", default=str(DEFAULT_OUT), help="output folder (default %(default)s)")
    parser.add_argument("--quick", action="store_true", help="fewer step sizes and the quick benchmark (smoke test)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random inputs (default %(default)s)")
    parser.add_argument("--no-speed", action="store_true", help="skip the benchmark section")
    parser.add_argument("--bench-json", metavar="PATH",
                        help="take the speed section from an earlier `autocnn bench --json PATH` run")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from autocnn.tools.report import generate

    bench_json = Path(args.bench_json) if args.bench_json else None
    if bench_json is not None and not bench_json.is_file():
        raise ValueError(f"no benchmark results at {bench_json}")
    path = generate(Path(args.out), quick=args.quick, seed=args.seed, with_speed=not args.no_speed,
                    bench_json=bench_json)
    print(f"report written to {path}")
    return 0
