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
    # The first range runs in the calling thread, the other in the pool.
    assert [inner[0][0] for inner in results] == [threading.current_thread().name, results[1][0][0]]
    assert results[1][0][0].startswith("autocnn-blocks")


def test_a_failing_range_waits_for_the_others_and_raises(monkeypatch):
    import threading
    import time

    monkeypatch.setattr(blockwise, "blas_threads", lambda: 2)
    finished = []

    def task(first, last):
        if first == 0:
            raise ValueError("range 0 failed")
        time.sleep(0.05)
        finished.append(threading.current_thread().name)

    with pytest.raises(ValueError, match="range 0 failed"):
        blockwise.split_batch(task, 4)
    assert len(finished) == 1  # the pool's range had ended when the error reached the caller
    assert blockwise.split_batch(lambda first, last: (first, last), 4) == [(0, 2), (2, 4)]  # splits again


def blas_thread_counts() -> list[int]:
    """Threads of the BLAS libraries numpy had loaded when autocnn first looked (not torch's, say)."""
    return [pool["num_threads"] for pool in blockwise._blas_controller().info()]


def test_threads_of_our_own_keep_blas_single_threaded_and_split_between_the_threads_it_had(monkeypatch):
    before = blas_thread_counts()
    if not before:
        pytest.fail("threadpoolctl finds no BLAS under numpy: nothing to limit")
    monkeypatch.setattr(blockwise, "blas_threads", lambda: 3)  # BLAS's count on entry
    with blockwise.threads_of_our_own():
        assert blas_thread_counts() == [1] * len(before)
        monkeypatch.setattr(blockwise, "blas_threads", lambda: 1)  # what BLAS reads inside
        ranges = blockwise.split_batch(lambda first, last: (first, last, blas_thread_counts()), 6)
        with blockwise.threads_of_our_own():  # nested: the outer count stands
            nested = blockwise.split_batch(lambda first, last: (first, last), 6)
        assert blas_thread_counts() == [1] * len(before)
    assert [(first, last) for first, last, _ in ranges] == [(0, 2), (2, 4), (4, 6)]
    assert all(counts == [1] * len(before) for _, _, counts in ranges)
    assert nested == [(0, 2), (2, 4), (4, 6)]
    assert blas_thread_counts() == before
    assert blockwise.split_batch(lambda first, last: (first, last), 6) == [(0, 6)]  # outside again: BLAS's 1


def test_a_model_loss_runs_with_blas_single_threaded(monkeypatch):
    from autocnn.core import ops
    from autocnn.core.models import ThreeLayerConvNet

    before = blas_thread_counts()
    seen = []
    loss = ops.softmax_loss
    monkeypatch.setattr(ops, "softmax_loss", lambda scores, y: seen.append(blas_thread_counts()) or loss(scores, y))
    model = ThreeLayerConvNet(input_dim=(3, 8, 8), num_filters=2, filter_size=3, hidden_dim=4, dtype=np.float64)
    model.data_loss = ops.softmax_loss
    model.loss(np.random.randn(2, 3, 8, 8), np.array([0, 1]))
    assert seen == [[1] * len(before)]
    assert blas_thread_counts() == before
