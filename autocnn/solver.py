"""``autocnn.solver``, the notebook's import path: the module :mod:`autocnn.training.solver` itself."""

import sys

from autocnn.training import solver as _module

sys.modules[__name__] = _module
