"""``autocnn sweep``: a spec file in, a sweep of training runs on Dask out."""

from __future__ import annotations

import argparse
from typing import Any

from autocnn.cli import types


def add_parser(subparsers: Any) -> None:
    """Declare ``autocnn sweep`` and its flags."""
    parser = subparsers.add_parser(
        "sweep",
        help="search hyper-parameters coarse to fine: many training runs on a Dask cluster",
        description="Run the trials of a sweep spec (TOML: model, fixed settings, search space, budget per "
                    "trial, optional fine stage; see experiments/sweeps/) on a local Dask cluster of worker "
                    "processes, or on an existing one (--scheduler). Each finished trial is recorded in "
                    "DIR/trials.jsonl as it ends; DIR also gets table.md (trials by best validation accuracy), "
                    "val_acc_vs_lr_reg.png, best_curves.png, best_command.txt and summary.json.",
    )
    parser.add_argument("spec", metavar="SPEC", help="the sweep specification (a .toml file)")
    parser.add_argument("--out", required=True, metavar="DIR", help="the sweep's folder")
    parser.add_argument("--workers", type=types.positive_int, metavar="N",
                        help="worker processes of the local cluster (default: one per core)")
    parser.add_argument("--threads", type=types.positive_int, default=1, metavar="N",
                        help="BLAS threads per local worker (default 1)")
    parser.add_argument("--scheduler", metavar="ADDRESS",
                        help="use the existing Dask cluster of this scheduler (tcp://host:8786) as it is; "
                             "start its workers with --nthreads 1")
    parser.add_argument("--resume", action="store_true",
                        help="continue the sweep in DIR: finished trials are skipped, interrupted ones resumed")
    parser.add_argument("--retries", type=int, default=1, metavar="N",
                        help="local cluster: restarts of a trial whose worker died before it counts as lost "
                             "(default 1)")
    parser.add_argument("--data", dest="data_dir", metavar="DIR",
                        help="CIFAR-10 folder or tarball for every trial (default $AUTOCNN_DATA, else the cache)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Check the spec, then run the sweep; returns the exit code."""
    from autocnn.tools.sweep import run_sweep
    from autocnn.tools.sweep_spec import load_spec

    if args.scheduler is not None and (args.workers is not None or args.threads != 1):
        raise ValueError("--workers and --threads set up a local cluster; with --scheduler the existing "
                         "cluster's workers are used as they are")
    if args.retries < 0:
        raise ValueError(f"--retries must be >= 0, got {args.retries}")
    spec = load_spec(args.spec)  # a bad spec stops here, before any cluster starts
    run_sweep(spec, args.out, workers=args.workers, threads=args.threads, scheduler=args.scheduler,
              resume=args.resume, data_dir=args.data_dir, retries=args.retries)
    return 0
