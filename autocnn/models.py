"""``autocnn.models``, the notebook's import path: the module :mod:`autocnn.core.models` itself."""

import sys

from autocnn.core import models as _module

sys.modules[__name__] = _module
