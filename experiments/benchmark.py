"""The benchmark: autograd-derived training against hand-written backprop and PyTorch.

A thin wrapper over ``autocnn bench`` (``autocnn.tools.bench`` does the timing) that writes the
full run's table and results where the README cites them::

    python -m experiments.benchmark            # -> experiments/results/benchmark/{table.md,results.json}
    python -m experiments.benchmark --smoke    # the quick benchmark -> runs/smoke/benchmark/

The committed results come from two runs: one with the environment's BLAS settings (the
tests' and CI's, e.g. OPENBLAS_CORETYPE=Haswell) and one with OpenBLAS's own kernel choice::

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python -m experiments.benchmark \
        --out experiments/results/benchmark/openblas-default --only "net,ConvNet,memory"

The full run takes several minutes; on a machine shared with other jobs its times are
noisy, which is why every side is interleaved and the table gives min-max beside the
median, and the load average at start and end.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

from autocnn.cli import bench
from experiments.common import RESULTS_DIR, SMOKE_DIR

NAME = "benchmark"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=f"python -m experiments.{NAME}", description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="the quick benchmark (autocnn bench --quick), < 1 minute")
    parser.add_argument("--out", metavar="DIR", default=None,
                        help=f"where to write table.md and results.json (default experiments/results/{NAME}, "
                             f"with --smoke runs/smoke/{NAME})")
    parser.add_argument("--repeats", type=int, default=None, help="timed repetitions per side (default 5 to 25, until the fastest side has run 1 s; 2 with --smoke)")
    parser.add_argument("--only", metavar="TEXT",
                        help="run only the cases whose name contains TEXT (or one of several, comma-separated; "
                             "'memory' keeps the peak-memory runs)")
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory subprocesses")
    args = parser.parse_args(argv)
    out = Path(args.out) if args.out else (SMOKE_DIR if args.smoke else RESULTS_DIR) / NAME
    bench_args = argparse.Namespace(quick=args.smoke, repeats=args.repeats, only=args.only, no_memory=args.no_memory,
                                    json=str(out / "results.json"), table=str(out / "table.md"))
    return bench.run(bench_args)


if __name__ == "__main__":
    sys.exit(main())
