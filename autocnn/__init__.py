"""autocnn: the CNN homework stack with forward passes only; HIPS autograd derives every gradient.

``from autocnn import check`` gives the notebook's checker (``autocnn.tools.check_report.check``);
it is imported on first use, so ``import autocnn`` itself stays light.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

_LAZY = {"check": "autocnn.tools.check_report", "check_all": "autocnn.tools.check_report"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'autocnn' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + list(_LAZY))
