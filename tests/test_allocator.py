"""autocnn.training.allocator: the malloc setting training and the benchmark run with."""

import platform
import subprocess
import sys

from autocnn.training.allocator import keep_freed_memory


def test_keep_freed_memory_takes_effect_exactly_on_glibc():
    # In a fresh process, so the test run's own allocator is left as it was.
    code = "from autocnn.training.allocator import keep_freed_memory as k; print(k(), k())"
    printed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    on_glibc = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"
    assert printed == [str(on_glibc)] * 2


def test_big_arrays_work_after_the_setting():
    code = ("import numpy as np; from autocnn.training.allocator import keep_freed_memory; keep_freed_memory()\n"
            "for _ in range(3):\n"
            "    a = np.ones(40 * 2**20 // 8); assert a.sum() == a.size; del a\n"
            "print('ok')")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "ok\n"
    assert callable(keep_freed_memory)
