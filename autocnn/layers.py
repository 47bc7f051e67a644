"""``autocnn.layers``, the notebook's import path: the module :mod:`autocnn.core.layers` itself."""

import sys

from autocnn.core import layers as _module

sys.modules[__name__] = _module
