"""Running other people's code: one forked worker per job, limited, quiet and kept apart.

A worker gets a CPU-time limit per call of user code (``RLIMIT_CPU``, set afresh before
each call), a memory cap (``RLIMIT_AS``, on top of what the checker itself already maps),
a scratch working directory, stdin from /dev/null (``input()`` does not wait), its prints
swallowed, ``pdb.set_trace()`` / ``breakpoint()`` turned into no-ops, and no bytecode
written anywhere (``sys.dont_write_bytecode``), so a student's or a read-only folder is
left as it was. The parent kills a worker that stays silent too long, and turns an
exception, ``sys.exit``, a crash or a kill into a failure.
"""

from __future__ import annotations

import multiprocessing
import os
import resource
import signal
import sys
import traceback
import warnings
from dataclasses import dataclass
from typing import Callable

import numpy as np

Send = Callable[[tuple], None]

DEFAULT_TIMEOUT = 10.0
DEFAULT_MEMORY_MB = 2048
BETWEEN_CALLS_TIMEOUT = 120.0  # the checker's own work in a worker, however loaded the machine


@dataclass(frozen=True)
class Limits:
    """
    What one worker may use.

    - timeout: Seconds of wall time (and of CPU time) one call of user code may take
    - memory_mb: Megabytes of address space the worker may map beyond the checker's own
    - scratch: Working directory of the worker ('' = leave the working directory alone)
    """

    timeout: float = DEFAULT_TIMEOUT
    memory_mb: int = DEFAULT_MEMORY_MB
    scratch: str = ""


class CpuTimeExceeded(BaseException):
    """Raised in a worker when a call of user code used up its CPU time."""


def _on_cpu_limit(signum, frame):
    raise CpuTimeExceeded("used more than its CPU-time limit (infinite loop?)")


_CALL_SECONDS = [DEFAULT_TIMEOUT]


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def limit_cpu_of_next_call() -> None:
    """Let the next call of user code use at most the worker's per-call CPU time."""
    soft = int(_cpu_seconds() + _CALL_SECONDS[0]) + 1
    _, hard = resource.getrlimit(resource.RLIMIT_CPU)
    if hard != resource.RLIM_INFINITY:
        soft = min(soft, hard)
    resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))


def lift_cpu_limit() -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_CPU)
    resource.setrlimit(resource.RLIMIT_CPU, (hard, hard))


def _address_space_kb() -> int:
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmSize:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def confine(limits: Limits) -> None:
    """Apply the limits to the current (worker) process."""
    sys.dont_write_bytecode = True
    os.environ["PYTHONDONTWRITEBYTECODE"] = "1"
    os.environ.setdefault("MPLBACKEND", "Agg")
    _CALL_SECONDS[0] = limits.timeout
    signal.signal(signal.SIGXCPU, _on_cpu_limit)
    if limits.memory_mb:
        cap = _address_space_kb() * 1024 + limits.memory_mb * 2**20
        _, hard = resource.getrlimit(resource.RLIMIT_AS)
        if hard == resource.RLIM_INFINITY or hard > cap:
            resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    if limits.scratch:
        os.chdir(limits.scratch)
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):  # output of C code and subprocesses, and any read of stdin
        os.dup2(devnull, fd)
    os.close(devnull)
    sys.stdin = open(os.devnull)
    # A pdb.set_trace() / breakpoint() left in the homework would stop in the debugger: skip it.
    import pdb

    pdb.set_trace = lambda *args, **kwargs: None
    sys.breakpointhook = lambda *args, **kwargs: None
    sys.stdout = sys.stderr = open(os.devnull, "w")  # students' debug prints: not in the table, not in memory
    warnings.simplefilter("ignore")
    np.seterr(all="ignore")


def _worker(job: Callable[[Send], None], connection, limits: Limits) -> None:
    """Body of a forked worker: run the job confined, report everything through the pipe."""
    try:
        confine(limits)
        job(connection.send)
        connection.send(("done",))
    except BaseException as error:  # SystemExit / KeyboardInterrupt / MemoryError from user code included
        try:
            connection.send(("crashed", f"raised {type(error).__name__}: {error}"[:200],
                             traceback.format_exc(limit=3)))
        except Exception:
            pass
    finally:
        connection.close()
        os._exit(0)  # no atexit handlers or buffered output of the parent's copy


def run_isolated(job: Callable[[Send], None], timeout: float, between_calls: float | None = None,
                 limits: Limits | None = None) -> tuple[list[tuple], str]:
    """
    Run job(send) in a forked, confined process and collect what it sends.

    Inputs:
    - job: Function of one argument, send(event_tuple); called in the child
    - timeout: Seconds the child may stay silent; then it is killed with SIGKILL
    - between_calls: If given, `timeout` applies only while user code runs (between a
      ('call', ...) and its ('returned', ...) event) and this longer limit otherwise, so
      that the checker's own work never counts against the user's time
    - limits: CPU, memory and working directory of the child (default: Limits(timeout))

    Returns a tuple of:
    - events: Everything the child sent, in order (without the final 'done')
    - failure: '' when the job finished, else why it did not ('timed out after 2 s',
      'crashed: ...', 'died with exit code ...')
    """
    limits = limits or Limits(timeout=timeout)
    context = multiprocessing.get_context("fork")  # fork: the child inherits autocnn already imported
    receiver, sender = context.Pipe(duplex=False)
    process = context.Process(target=_worker, args=(job, sender, limits), daemon=True)
    process.start()
    sender.close()
    events: list[tuple] = []
    failure = ""
    limit = timeout if between_calls is None else between_calls
    try:
        while True:
            if not receiver.poll(limit):
                failure = f"timed out after {limit:g} s"
                break
            try:
                event = receiver.recv()
            except (EOFError, OSError):
                process.join(1.0)
                code = process.exitcode
                if code == -signal.SIGXCPU or code == -signal.SIGKILL and events and events[-1][0] == "call":
                    failure = f"used more than its CPU-time limit of {timeout:g} s (infinite loop?)"
                elif code == 0:
                    failure = "died (sys.exit or os._exit in user code?)"
                else:
                    failure = f"died with exit code {code}"
                break
            if event[0] == "done":
                break
            if event[0] == "crashed":
                failure = f"crashed: {event[1]}"
                break
            if between_calls is not None and event[0] in ("call", "returned"):
                limit = timeout if event[0] == "call" else between_calls
            events.append(event)
    finally:
        if process.is_alive():
            process.kill()
        process.join()
        receiver.close()
    return events, failure
