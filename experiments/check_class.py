"""`autocnn check` on a whole class: wall time for N generated submissions, `--jobs` at a time.

The submissions are copies of the tests' correct UCLA fixture (tests/fixtures/submissions/ucla),
every fourth one left correct and the others given one typical problem each: a blank
affine_forward, a ThreeLayerConvNet without its L2 gradient, or a Python 2 print in
layers.py. Writes timing.json and the class summary (summary.txt, grades.csv) to the
results folder.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Sequence

from autocnn.files import atomic_write_json, atomic_write_text
from autocnn.tools.check import Options, check_targets, format_class, results_as_csv
from experiments.common import parse_args

NAME = "check_class"
FIXTURE = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "submissions" / "ucla"

_VARIANTS = {
    1: ("nndl/layers.py", "    flat = x.reshape(x.shape[0], -1)\n    return flat @ w + b, (x, w, b)",
        "    out = None\n    pass\n    return out, (x, w, b)"),
    2: ("nndl/cnn.py", "grads[name] += self.reg * self.params[name]", "pass  # the L2 term forgotten"),
    3: ("nndl/layers.py", "def relu_forward(x):\n", "def relu_forward(x):\n    print 'relu', x.shape\n"),
}


def make_class(folder: Path, count: int) -> list[str]:
    """Write `count` submissions into folder; return their paths."""
    targets = []
    for index in range(count):
        target = folder / f"student{index:03d}"
        shutil.copytree(FIXTURE, target, ignore=shutil.ignore_patterns("__pycache__", "SETUP_WAS_RUN"))
        if index % 4:
            path, old, new = _VARIANTS[index % 4]
            text = (target / path).read_text()
            assert old in text, (path, old)
            (target / path).write_text(text.replace(old, new, 1))
        targets.append(str(target))
    return targets


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(NAME, __doc__.splitlines()[0], argv, extra=[
        (["--count"], {"type": int, "default": 100, "help": "submissions (default %(default)s)"}),
        (["--jobs"], {"type": int, "default": os.cpu_count(), "help": "submissions at once (default: cores)"}),
    ])
    count = 4 if args.smoke else args.count
    with tempfile.TemporaryDirectory(prefix="autocnn-class-") as folder:
        targets = make_class(Path(folder), count)
        start = time.perf_counter()
        results = check_targets(targets, Options(), jobs=args.jobs)
        seconds = time.perf_counter() - start
        summary = format_class(results).replace(folder + os.sep, "")
        grades = results_as_csv(results).replace(folder + os.sep, "")
    args.out.mkdir(parents=True, exist_ok=True)
    timing = {"submissions": count, "jobs": args.jobs, "cores": os.cpu_count(), "wall_seconds": round(seconds, 2),
              "seconds_per_submission": round(seconds / count, 3), "python": platform.python_version(),
              "exit_statuses": sorted({r.exit_status() for r in results}),
              "load_average_at_end": list(os.getloadavg())}
    atomic_write_json(args.out / "timing.json", timing)
    atomic_write_text(args.out / "summary.txt", summary)
    atomic_write_text(args.out / "grades.csv", grades)
    print(json.dumps(timing, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
