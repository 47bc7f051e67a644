"""``autocnn.gradcheck``, the notebook's import path: the module :mod:`autocnn.tools.gradcheck` itself."""

import sys

from autocnn.tools import gradcheck as _module

sys.modules[__name__] = _module
