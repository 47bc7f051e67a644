"""``autocnn bench``: interleaved timings of derived against hand-written backprop."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from autocnn.cli.types import positive_int


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "bench",
        help="time autograd-derived layers and training steps against hand-written backprop",
        description="Interleaved timings of layers (forward, forward+backward) and whole training steps for "
                    "reference naive/fast, autocnn, autocnn with scipy correlate, and autograd's convolve; "
                    "prints a Markdown table of medians, min-max, ratios to the hand-written fast step, "
                    "images/s and GFLOP/s, plus peak memory and the benchmark's targets.",
    )
    add_arguments(parser)
    parser.set_defaults(func=run)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The bench flags (shared with ``python -m experiments.benchmark``)."""
    parser.add_argument("--quick", action="store_true", help="tiny sizes, 2 repetitions: a smoke test (< 1 minute)")
    parser.add_argument("--repeats", type=positive_int, default=None,
                        help="timed repetitions per side (default 2 quick; full: 5 to 25, until the fastest side has run 1 s)")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    parser.add_argument("--table", metavar="PATH", help="also write the Markdown table to this file")
    parser.add_argument("--only", metavar="TEXT", help="run only the cases whose name contains TEXT (or one of several, comma-separated; "
                             "'memory' keeps the peak-memory runs)")
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory subprocesses")


def run(args: argparse.Namespace) -> int:
    from autocnn.files import atomic_write_text
    from autocnn.tools.bench import format_table, run_benchmark

    results = run_benchmark(quick=args.quick, repeats=args.repeats, memory=not args.no_memory, only=args.only,
                            progress=lambda line: print(line, file=sys.stderr, flush=True),
                            bar=sys.stderr.isatty())  # a bar in a terminal; log files get the lines only
    table = format_table(results)
    print(table, end="")
    for path, text in ((args.json, json.dumps(results, indent=1) + "\n"), (args.table, table)):
        if path:
            atomic_write_text(Path(path), text)
    return 0
