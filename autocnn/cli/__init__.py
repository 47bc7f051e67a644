"""The ``autocnn`` command line: flags in, one call of a tool out.

Each subcommand is a module of this package offering ``add_parser(subparsers)``, which
declares its flags and sets as ``func`` a handler that turns them into one call of
``autocnn.tools`` (or ``autocnn.data``) and returns an exit code. Only this package
imports argparse, and only here is the matplotlib backend picked (the Solver keeps
malloc's freed memory itself when training starts).
"""

from __future__ import annotations

import argparse
import importlib
import sys

#: Modules that contribute a subcommand, in the order `autocnn --help` lists them.
COMMAND_MODULES: list[str] = ["autocnn.cli.check", "autocnn.cli.report", "autocnn.cli.train",
                              "autocnn.cli.gradcheck", "autocnn.cli.data", "autocnn.cli.bench",
                              "autocnn.cli.sweep"]


class OneLineErrorParser(argparse.ArgumentParser):
    """argparse, but a bad flag is one line naming the problem, not usage plus traceback."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineErrorParser(
        prog="autocnn",
        description="Train and check convolutional networks whose gradients HIPS autograd derives.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=OneLineErrorParser)
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).add_parser(subparsers)
    return parser


def use_file_backend() -> None:
    """Draw figures to files: a command line has no display (a notebook keeps its own backend)."""
    import matplotlib

    matplotlib.use("Agg")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    use_file_backend()
    try:
        return args.func(args)
    except (ValueError, OSError) as error:
        # Bad input the user can fix: say what is wrong in one line, no traceback.
        print(f"autocnn {args.command}: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"autocnn {args.command}: interrupted", file=sys.stderr)
        return 130
