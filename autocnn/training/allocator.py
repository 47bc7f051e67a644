"""Keep freed memory in the process: what makes numpy's big temporaries cheap to re-create.

A training step allocates and frees the same large arrays every time (the >65% net's hidden
layer: its 33 MB weights, gradient, Adam's new weights, and the gradient of its 1000 x 8192
input). glibc's malloc serves every block above 32 MB with a fresh ``mmap`` and returns it
with ``munmap`` when freed, so each step page-faults all of that memory in again,
zero-filled by the kernel. Served from the heap and kept there instead, the memory is
reused. Since the convs and pooling work a cache-sized block of images at a time, few
arrays that large are left and the difference has become small (see
``experiments/results/benchmark`` for the steps' times under this setting).

``Solver.train`` calls ``keep_freed_memory()`` when training starts, so ``autocnn train``,
the experiment scripts and a notebook's own Solver all train with it; ``autocnn bench``
calls it for its process. Importing autocnn changes nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import platform

# mallopt parameters (glibc's malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_KEEP_UP_TO_BYTES = 2**31 - 1  # mallopt takes an int: trim the heap only above 2 GB free


def keep_freed_memory() -> bool:
    """
    Have glibc's malloc serve large blocks from the heap (no per-block mmap) and keep up
    to 2 GB of freed memory for reuse instead of returning it to the OS.

    Returns:
    - True if the setting took effect; False where the C library is not glibc (macOS,
      musl), where this is a no-op.
    """
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    # mallopt returns 1 on success.
    return mallopt(_M_MMAP_MAX, 0) == 1 and mallopt(_M_TRIM_THRESHOLD, _KEEP_UP_TO_BYTES) == 1
