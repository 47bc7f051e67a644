"""``autocnn.layer_utils``, the notebook's import path: the module :mod:`autocnn.core.layer_utils` itself."""

import sys

from autocnn.core import layer_utils as _module

sys.modules[__name__] = _module
