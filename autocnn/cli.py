"""The ``autocnn`` command line: one subcommand per job.

Each subcommand lives in the module that does the job and offers two functions:
``add_parser(subparsers)`` (declares its flags; keep that module's top-level imports light
so ``--help`` stays fast) and the handler it sets as ``func``, which returns an exit code.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# Modules that contribute a subcommand, in the order `autocnn --help` lists them.
COMMAND_MODULES: list[str] = ["autocnn.check", "autocnn.report", "autocnn.train", "autocnn.gradcheck", "autocnn.data", "autocnn.bench"]


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


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        return args.func(args)
    except (ValueError, OSError) as error:
        # Bad input the user can fix: say what is wrong in one line, no traceback.
        print(f"autocnn {args.command}: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"autocnn {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
