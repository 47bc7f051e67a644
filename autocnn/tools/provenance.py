"""Where and from what a result came: the machine, its load, the library versions, the commit.

Every result file (training metrics, benchmark JSON, experiment metrics) records
``machine_info()`` and ``git_state()``, so a number can be traced to the machine, the
load it ran under and the code that produced it.
"""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path
from typing import Any


def machine_info() -> dict[str, Any]:
    """
    What a result was measured on.

    Returns:
    - Dict with platform, machine, cpu (model name), cores, cpus_usable, python, numpy,
      scipy, autograd, blas (library and version), blas_env (the OPENBLAS_* / OMP_* /
      MKL_* variables set) and load_average_start (1, 5 and 15 minutes; the machine may
      be shared, and the load says how much of it a run had).
    """
    import numpy as np
    import scipy

    info: dict[str, Any] = {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "autograd": _package_version("autograd"),
        "blas": _blas_library(),
        "blas_env": {name: os.environ[name] for name in sorted(os.environ)
                     if name.startswith(("OPENBLAS", "OMP_", "MKL_"))},
        "load_average_start": load_average(),
    }
    return info


def load_average() -> list[float] | None:
    """The 1, 5 and 15 minute load averages, rounded, or None where the OS has none."""
    return [round(value, 2) for value in os.getloadavg()] if hasattr(os, "getloadavg") else None


def git_state() -> dict[str, Any]:
    """The commit that ran and the code files that differed from it (results of a
    dirty checkout are not the commit's results)."""
    commit = _git("rev-parse", "HEAD")
    status = _git("status", "--porcelain", "--", "autocnn", "reference") or ""
    return {"git_commit": commit.strip() if commit else None,
            "git_uncommitted": sorted(line[3:] for line in status.splitlines() if line.endswith(".py"))}


def _package_version(name: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "unknown"


def _blas_library() -> str:
    import numpy as np

    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        return f"{blas.get('name')} {blas.get('version')}".strip()
    except Exception:  # numpy's config layout is not a stable API
        return "unknown"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def _git(*args: str) -> str | None:
    """Output of a git command in the autocnn checkout, or None if that is not a git checkout."""
    try:
        done = subprocess.run(["git", *args], cwd=Path(__file__).resolve().parents[2],
                              capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None
