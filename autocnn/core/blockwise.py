"""Work over large arrays a cache-sized block at a time, split between threads.

Over whole arrays every numpy line is a pass through main memory: the >65% net's hidden
layer alone is 8.2M weights, 33 MB in float32, and its conv's patch matrix 600 MB at batch
1000. Run block by block, a few numpy lines work on slices that stay in the CPU cache; and
because numpy and BLAS release the GIL, threads over disjoint ranges overlap. Three helpers:

* ``for_each_block`` splits 1-D arrays for elementwise work, so the result is bitwise the
  same however it is split: the update rules (``autocnn.training.optim``) and the weight
  decay's gradient (``autocnn.core.primitives``).
* ``split_batch`` runs a task on disjoint ranges of a batch's images, one range per BLAS
  thread, with BLAS single-threaded in each (through threadpoolctl, for the call only): each
  thread then forms and multiplies its own cache-sized blocks, with no BLAS threads to
  wait for at every block. The conv's GEMMs, max pooling and the affine layers' GEMMs
  (``autocnn.core.primitives``).
* ``threads_of_our_own`` keeps BLAS single-threaded for a whole model's loss and gradients,
  every split_batch inside sharing the work between as many threads as BLAS had. OpenBLAS's
  workers spin for a while after each multi-threaded call (about 0.1 s by default) and take
  a core from whatever runs next; never woken, they never spin.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor, wait
from contextlib import contextmanager, nullcontext
from typing import Callable, Iterator, TypeVar

import numpy as np

#: Elements per block: a rule's few block-sized arrays stay in cache (L2, or the shared L3)
#: while its numpy calls, each with a fixed cost, are few per element.
BLOCK_SIZE = 1 << 17
#: Arrays of at least this many elements per thread are split between threads.
THREADED_MIN_SIZE = 1 << 20
_THREADS = max(1, min(2, os.cpu_count() or 1))
_POOL: ThreadPoolExecutor | None = None
_POOL_SIZE = max(1, os.cpu_count() or 1)
_POOL_PREFIX = "autocnn-blocks"
_FORK_HOOK_REGISTERED = False
T = TypeVar("T")


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
    _run_ranges(run, bounds)


def split_batch(task: Callable[[int, int], T], n: int, calls_blas: bool = True) -> list[T]:
    """
    task(first, last) on disjoint, consecutive ranges of n images, one range per BLAS
    thread: the first in the calling thread, the others in threads of the pool; BLAS is
    single-threaded meanwhile if calls_blas.

    One range in the calling thread, BLAS untouched, where that is all there is to do:
    BLAS runs one thread (a Dask worker's setting, say), its thread count cannot be read
    or set (threadpoolctl finds no BLAS), or this call comes from inside another split.

    Inputs:
    - task: Works on images first:last; writes only what belongs to them, or returns it
    - n: Images in the batch
    - calls_blas: Whether task calls BLAS (a matmul)

    Returns:
    - results: task's return values, in the order of the ranges
    """
    parts = min(n, _REGION_THREADS or blas_threads())
    if parts < 2 or getattr(_SPLITTING, "inside", False) or threading.current_thread().name.startswith(_POOL_PREFIX):
        return [task(0, n)]
    bounds = [n * part // parts for part in range(parts + 1)]
    with _single_threaded_blas() if calls_blas and not _REGION_THREADS else nullcontext():
        return _run_ranges(task, bounds)


def _run_ranges(task: Callable[[int, int], T], bounds: list[int]) -> list[T]:
    """task on bounds[i]:bounds[i + 1] for each i: the first range in the calling thread (one
    hand-off fewer, on a core that is awake), the others in the pool; results in range order."""
    others = [_pool().submit(task, first, last) for first, last in zip(bounds[1:-1], bounds[2:])]
    _SPLITTING.inside = True
    try:
        first = task(bounds[0], bounds[1])
    finally:
        _SPLITTING.inside = False
        wait(others)  # the other ranges end before the caller goes on, whatever happened here
    return [first] + [future.result() for future in others]


# Marks the calling thread while it runs its own range of a split (a nested split runs inline).
_SPLITTING = threading.local()


# Threads split_batch uses inside threads_of_our_own (BLAS then reads 1); None outside.
_REGION_THREADS: int | None = None


@contextmanager
def threads_of_our_own() -> Iterator[None]:
    """
    Within: BLAS single-threaded, and every split_batch shares its work between as many
    threads of autocnn's own as BLAS had on entry. Nested uses keep the outer one's count.

    A model's loss and gradients run inside it: no BLAS worker thread is woken, so none is
    left spinning between the GEMMs while autocnn's threads split a batch.
    """
    global _REGION_THREADS
    previous = _REGION_THREADS
    threads = previous or blas_threads()
    with _single_threaded_blas():
        _REGION_THREADS = threads
        try:
            yield
        finally:
            _REGION_THREADS = previous


# threadpoolctl's view of the loaded BLAS, found on first use (it scans the loaded libraries).
_CONTROLLER = None
_LIMIT_LOCK = threading.Lock()
_LIMIT_USERS = 0
_LIMIT = None


def _blas_controller():
    global _CONTROLLER
    if _CONTROLLER is None:
        from threadpoolctl import ThreadpoolController  # numpy, imported above, has loaded its BLAS

        _CONTROLLER = ThreadpoolController().select(user_api="blas")
    return _CONTROLLER


def blas_threads() -> int:
    """Threads numpy's BLAS runs with (threadpoolctl's reading); 1 where it finds no BLAS."""
    pools = _blas_controller().info()
    return max(1, min(pool["num_threads"] for pool in pools)) if pools else 1


@contextmanager
def _single_threaded_blas() -> Iterator[None]:
    # Counted, so that overlapping callers (threads of the user's own) restore the
    # thread count only when the last of them leaves.
    global _LIMIT_USERS, _LIMIT
    with _LIMIT_LOCK:
        if _LIMIT_USERS == 0:
            _LIMIT = _blas_controller().limit(limits=1)
        _LIMIT_USERS += 1
    try:
        yield
    finally:
        with _LIMIT_LOCK:
            _LIMIT_USERS -= 1
            if _LIMIT_USERS == 0:
                _LIMIT.restore_original_limits()
                _LIMIT = None


def _pool() -> ThreadPoolExecutor:
    global _POOL, _FORK_HOOK_REGISTERED
    if _POOL is None:
        if not _FORK_HOOK_REGISTERED and hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=_forget_pool)  # registered on first use, not at import
            _FORK_HOOK_REGISTERED = True
        _POOL = ThreadPoolExecutor(max_workers=_POOL_SIZE, thread_name_prefix=_POOL_PREFIX)
    return _POOL


def _forget_pool() -> None:
    # A forked child inherits the pool object but not its threads: work sent to it would
    # wait forever. The child makes its own pool when it needs one. A BLAS limit taken by
    # a parent's thread was never the child's to restore: the child starts with none, and
    # outside any threads_of_our_own.
    global _POOL, _LIMIT_USERS, _LIMIT, _LIMIT_LOCK, _REGION_THREADS, _SPLITTING
    _POOL = None
    _LIMIT_USERS, _LIMIT, _LIMIT_LOCK, _REGION_THREADS = 0, None, threading.Lock(), None
    _SPLITTING = threading.local()

