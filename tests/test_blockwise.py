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
