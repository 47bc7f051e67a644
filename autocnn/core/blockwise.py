"""Elementwise work over large arrays, a cache-sized block at a time, on two threads.

Over whole arrays every numpy line is a pass through main memory: the >65% net's hidden
layer alone is 8.2M weights, 33 MB in float32. Run block by block, a few lines of
elementwise numpy work on slices that stay in the CPU cache; and because numpy releases
the GIL inside its loops, two threads over disjoint ranges of blocks overlap. The work is
elementwise, so the result is bitwise the same however it is split. The update rules
(``autocnn.training.optim``) and the weight decay's gradient (``autocnn.core.primitives``) use this.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

import numpy as np

#: Elements per block: a handful of float32 or float64 block-sized arrays fit in L2.
BLOCK_SIZE = 1 << 16
#: Arrays of at least this many elements per thread are split between threads.
THREADED_MIN_SIZE = 1 << 20
_THREADS = max(1, min(2, os.cpu_count() or 1))
_POOL: ThreadPoolExecutor | None = None
_FORK_HOOK_REGISTERED = False


def for_each_block(work: Callable[..., None], *arrays: np.ndarray) -> None:
    """
    Call work(*blocks) on matching slices of 1-D arrays of one size, BLOCK_SIZE elements
    at a time (the last block shorter), the ranges split between threads for large arrays.

    Inputs:
    - work: Reads its blocks and writes results into (views of) the writable ones
    - arrays: 1-D arrays of the same size; the writable ones must be views of the memory
      to update (e.g. ``a.reshape(-1)`` of a C-contiguous array), not copies
    """
    size = arrays[0].size

    def run(first: int, last: int) -> None:
        for start in range(first, last, BLOCK_SIZE):
            stop = min(start + BLOCK_SIZE, last)
            work(*(a[start:stop] for a in arrays))

    threads = min(_THREADS, size // THREADED_MIN_SIZE)
    if threads < 2:
        run(0, size)
        return
    bounds = [size * part // threads for part in range(threads + 1)]
    list(_pool().map(run, bounds[:-1], bounds[1:]))


def _pool() -> ThreadPoolExecutor:
    global _POOL, _FORK_HOOK_REGISTERED
    if _POOL is None:
        if not _FORK_HOOK_REGISTERED and hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=_forget_pool)  # registered on first use, not at import
            _FORK_HOOK_REGISTERED = True
        _POOL = ThreadPoolExecutor(max_workers=_THREADS, thread_name_prefix="autocnn-blocks")
    return _POOL


def _forget_pool() -> None:
    # A forked child inherits the pool object but not its threads: work sent to it would
    # wait forever. The child makes its own pool when it needs one.
    global _POOL
    _POOL = None

