"""``autocnn.optim``, the notebook's import path: the module :mod:`autocnn.training.optim` itself."""

import sys

from autocnn.training import optim as _module

sys.modules[__name__] = _module
