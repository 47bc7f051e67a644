"""autocnn.core.blockwise: elementwise work in cache-sized blocks, split between threads."""

import multiprocessing

import numpy as np
import pytest

from autocnn.core import blockwise
from autocnn.training.optim import adam


@pytest.mark.parametrize("threaded_min_size", [1, 10**9])
def test_every_element_is_worked_on_exactly_once(monkeypatch, threaded_min_size):
    monkeypatch.setattr(blockwise, "THREADED_MIN_SIZE", threaded_min_size)
    monkeypatch.setattr(blockwise, "_THREADS", 2)
    size = 3 * blockwise.BLOCK_SIZE + 5  # ragged: the threads' ranges end mid-block
    source, seen = np.arange(size, dtype=np.float64), np.zeros(size)

    def work(source_block, seen_block):
        seen_block += source_block + 1.0

    blockwise.for_each_block(work, source, seen)
    np.testing.assert_array_equal(seen, source + 1.0)


def test_work_after_fork_does_not_hang():
    if "fork" not in multiprocessing.get_all_start_methods():
        pytest.fail("this test needs the fork start method (Linux)")
    w = np.ones(3 * blockwise.THREADED_MIN_SIZE, np.float32)
    adam(w, w, {})  # the parent's thread pool exists now
    child = multiprocessing.get_context("fork").Process(target=adam, args=(w, w, {}))
    child.start()
    child.join(timeout=60)
    exited = child.exitcode
    if child.is_alive():
        child.kill()
    assert exited == 0


@pytest.mark.parametrize("threads,n", [(1, 5), (2, 5), (3, 7), (4, 2)])
def test_split_batch_covers_every_image_once_in_order(monkeypatch, threads, n):
    monkeypatch.setattr(blockwise, "blas_threads", lambda: threads)
    ranges = blockwise.split_batch(lambda first, last: (first, last), n)
    assert len(ranges) == min(threads, n)
    assert ranges[0][0] == 0 and ranges[-1][1] == n
    assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:]))  # consecutive, no overlap


def test_split_batch_runs_blas_single_threaded_and_restores_it(monkeypatch):
    from threadpoolctl import threadpool_info

    def blas_counts():
        return [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"]

    before = blas_counts()
    if not before:
        pytest.fail("threadpoolctl finds no BLAS under numpy: nothing to limit")
    monkeypatch.setattr(blockwise, "blas_threads", lambda: 2)
    inside = blockwise.split_batch(lambda first, last: blas_counts(), 4)
    assert inside == [[1] * len(before)] * 2
    assert blas_counts() == before
    untouched = blockwise.split_batch(lambda first, last: blas_counts(), 4, calls_blas=False)
    assert untouched == [before] * 2


def test_split_batch_inside_its_own_threads_runs_inline(monkeypatch):
    # A task that splits again (a conv inside elementwise work, say) must not wait for the
    # pool it is running in.
    import threading

    monkeypatch.setattr(blockwise, "blas_threads", lambda: 2)

    def outer(first, last):
        return blockwise.split_batch(lambda a, b: (threading.current_thread().name, a, b), last - first)

    results = blockwise.split_batch(outer, 4)
    assert [len(inner) for inner in results] == [1, 1]
    assert all(name.startswith("autocnn-blocks") for inner in results for name, _, _ in inner)
