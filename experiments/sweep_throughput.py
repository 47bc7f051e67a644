"""Sweep throughput: training images per second over all trials, 2 workers x 1 BLAS thread
against 1 worker x 2 BLAS threads, on the same sweep (experiments/sweeps/throughput.toml).

The two layouts alternate (ABAB...) in one run and the result is the median of the per-pair
ratios, so a change in the machine's load hits both sides::

    python -m experiments.sweep_throughput            # -> experiments/results/sweep_throughput/
    python -m experiments.sweep_throughput --smoke    # the smoke sweep on a small slice, one pair

Throughput counts the minibatch images of the trials that finished, per second of the
sweep's wall time, cluster start-up and data loading included (what a user waits for).
"""

from __future__ import annotations

import shutil
import statistics
import sys
from pathlib import Path
from typing import Sequence

from autocnn.files import atomic_write_json, atomic_write_text
from autocnn.tools.provenance import git_state, load_average, machine_info
from autocnn.tools.sweep import run_sweep
from autocnn.tools.sweep_spec import load_spec
from experiments.common import parse_args

NAME = "sweep_throughput"
SWEEPS = Path(__file__).resolve().parent / "sweeps"
#: (label, workers, BLAS threads per worker)
LAYOUTS = (("2 workers x 1 thread", 2, 1), ("1 worker x 2 threads", 1, 2))


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(NAME, __doc__.splitlines()[0], argv,
                      extra=[(["--pairs"], dict(type=int, default=3, help="ABAB pairs (default %(default)d)"))])
    if args.pairs < 1:
        print(f"python -m experiments.{NAME}: error: --pairs must be >= 1, got {args.pairs}", file=sys.stderr)
        return 2
    spec = load_spec(SWEEPS / ("smoke.toml" if args.smoke else "throughput.toml"))
    pairs = 1 if args.smoke else args.pairs
    runs = []
    machine = machine_info()
    for pair in range(pairs):
        for label, workers, threads in LAYOUTS:
            out = args.out / "sweeps" / f"{pair}-{workers}x{threads}"
            shutil.rmtree(out, ignore_errors=True)
            summary = run_sweep(spec, out, workers=workers, threads=threads, data_dir=args.data, progress=None)
            this_run = summary["this_run"]
            runs.append({"pair": pair, "layout": label, "workers": workers, "threads": threads,
                         "images_per_s": this_run["images_per_s"], "wall_time_s": this_run["wall_time_s"],
                         "images_trained": this_run["images_trained"], "statuses": summary["statuses"],
                         "load_average_end": load_average()})
            print(f"pair {pair}: {label}: {this_run['images_per_s']} images/s "
                  f"({this_run['images_trained']} images in {this_run['wall_time_s']} s)")
    ratios = []
    for pair in range(pairs):
        two_by_one, one_by_two = (next(run for run in runs if run["pair"] == pair and run["workers"] == workers)
                                  for workers in (2, 1))
        ratios.append(two_by_one["images_per_s"] / one_by_two["images_per_s"])
    median = statistics.median(ratios)
    results = {"spec": spec.source, "runs": runs, "ratios_2x1_over_1x2": ratios, "median_ratio": median,
               "smoke": args.smoke, "machine": machine, "load_average_end": load_average(), **git_state()}
    atomic_write_json(args.out / "results.json", results)
    lines = ["# Sweep throughput: 2 workers x 1 BLAS thread vs 1 worker x 2 threads", "",
             f"Sweep: {spec.description}; {pairs} alternating pairs; load average at start "
             f"{machine['load_average_start']}, at end {results['load_average_end']}.", "",
             "| pair | layout | images/s | images | wall time (s) |", "|---|---|---|---|---|"]
    lines += [f"| {run['pair']} | {run['layout']} | {run['images_per_s']} | {run['images_trained']} | "
              f"{run['wall_time_s']} |" for run in runs]
    lines += ["", f"Ratio 2x1 / 1x2 per pair: {', '.join(f'{ratio:.3f}' for ratio in ratios)}; "
                  f"median {median:.3f}."]
    atomic_write_text(args.out / "table.md", "\n".join(lines) + "\n")
    print(f"median throughput ratio 2 workers x 1 thread / 1 worker x 2 threads: {median:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
