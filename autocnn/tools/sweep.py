"""``autocnn sweep``: the notebook's coarse-to-fine hyper-parameter search, on Dask.

A sweep runs the trials of a specification (see :mod:`autocnn.tools.sweep_spec`), each one
training run of :func:`autocnn.tools.train.run_training`, on a Dask distributed cluster: a
local one by default (worker processes with one BLAS thread each, so two workers on two
cores do not oversubscribe them), or an existing one given by its scheduler's address.

Library use::

    from autocnn.tools.sweep import run_sweep
    from autocnn.tools.sweep_spec import load_spec
    summary = run_sweep(load_spec("experiments/sweeps/smoke.toml"), "runs/smoke-sweep", workers=2)

The output folder DIR holds:

- ``spec.toml``: the specification the sweep ran (a resumed sweep must match it);
- ``trials.jsonl``: one JSON line per finished trial, appended as the trial ends (the record
  that ``--resume`` reads; a line is written with one ``write`` and flushed to disk, and a
  torn last line, from a kill in the middle of that write, is dropped when read);
- ``trials/<trial>/``: each trial's run folder (config, log, checkpoints, metrics, curves);
- ``table.md``: the trials sorted by best validation accuracy;
- ``val_acc_vs_lr_reg.png``, ``best_curves.png``: the figures;
- ``best_command.txt``: the best trial as an ``autocnn train`` command line;
- ``summary.json``: counts, the best trial, wall time and training throughput.

Trial parameters come from the sweep seed alone (the fine stage's also from the recorded
coarse results), so a resumed sweep runs the same trials and writes the same table.
This module's top-level imports stay light; Dask is imported when a sweep runs.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from autocnn.files import atomic_write_json, atomic_write_text
from autocnn.tools.provenance import git_state, machine_info
from autocnn.tools.sweep_spec import Budget, Dimension, SweepSpec, parse_spec
from autocnn.tools.train import METRICS_FILE, TrainConfig
from reference import validation

RECORDS_FILE = "trials.jsonl"
SPEC_FILE = "spec.toml"
TABLE_FILE = "table.md"
SCATTER_FILE = "val_acc_vs_lr_reg.png"
CURVES_FILE = "best_curves.png"
COMMAND_FILE = "best_command.txt"
SUMMARY_FILE = "summary.json"
TRIALS_DIR = "trials"
WORKER_FILE = "worker.json"

#: Trial outcomes that produced no usable model (they sort last and do not seed the fine stage).
FAILED_STATUSES = ("diverged", "failed", "lost")
#: How many of the best trials the learning-curve figure shows.
CURVES_SHOWN = 5

# One trial at a time per process: run_training seeds the global np.random and redirects
# stdout, so trials sharing a multi-threaded worker must take turns.
_TRIAL_LOCK = threading.Lock()


class SweepError(ValueError):
    """The sweep cannot start (its folder holds another sweep, or nothing to resume)."""


@dataclass(frozen=True)
class Trial:
    """One trial: its id ('coarse-003'), stage, sampled parameters and full training config."""

    id: str
    stage: str
    index: int
    params: dict[str, Any]
    config: TrainConfig


# ---------------------------------------------------------------------- trials from the spec


def sample_trials(spec: SweepSpec, stage: str, count: int, space: Sequence[Dimension], budget: Budget,
                  out: str | os.PathLike, data_dir: str | None = None) -> list[Trial]:
    """
    Draw the trials of one stage, each from its own RandomState seeded by (sweep seed, stage,
    trial index), so trial k's parameters do not depend on how many trials there are.

    Inputs:
    - spec: The sweep specification.
    - stage: 'coarse' or 'fine'.
    - count: Number of trials.
    - space: The dimensions to sample (the spec's, or the fine stage's narrowed ones).
    - budget: The trials' budget.
    - out: The sweep folder (trial k's run goes to out/trials/<stage>-<k>).
    - data_dir: CIFAR-10 folder for every trial (None: the spec's or the default).

    Returns:
    - A list of count Trials.
    """
    import numpy as np

    stage_number = {"coarse": 1, "fine": 2}[stage]
    trials = []
    for index in range(count):
        rng = np.random.RandomState([spec.seed, stage_number, index])
        seed = int(rng.randint(2**31 - 1))
        params = {dim.name: _draw(dim, rng) for dim in space}
        trial_id = f"{stage}-{index:03d}"
        settings = {**spec.fixed, **params, "model": spec.model, "seed": spec.fixed.get("seed", seed),
                    **budget_settings(budget, {**spec.fixed, **params}),
                    "out": os.fspath(Path(out) / TRIALS_DIR / trial_id), "verbose": True}
        if data_dir is not None:
            settings["data_dir"] = os.fspath(data_dir)
        config = TrainConfig.from_dict(settings).resolved()
        trials.append(Trial(id=trial_id, stage=stage, index=index, params=params, config=config))
    return trials


def budget_settings(budget: Budget, settings: dict[str, Any]) -> dict[str, Any]:
    """
    The TrainConfig fields that give a trial its budget.

    An iteration budget sets max_iterations and enough epochs to reach it (the epoch count
    also decides the learning-rate decay, once per epoch, as in any run).

    Inputs:
    - budget: The Budget.
    - settings: The trial's other settings (batch_size, split, num_train decide the epoch length).

    Returns:
    - A dict of num_epochs and, where the budget has them, time_budget, max_iterations, patience.
    """
    defaults = TrainConfig()
    batch_size = settings.get("batch_size", defaults.batch_size)
    train_images = settings.get("num_train") or settings.get("split", defaults.split)[0]
    iterations_per_epoch = max(train_images // batch_size, 1)
    values: dict[str, Any] = {}
    epochs = budget.epochs
    if budget.iterations is not None:
        values["max_iterations"] = budget.iterations
        needed = math.ceil(budget.iterations / iterations_per_epoch)
        epochs = needed if epochs is None else min(epochs, needed)
    if epochs is None:  # a time budget alone: train until it runs out
        epochs = 10_000
    values["num_epochs"] = epochs
    if budget.minutes is not None:
        values["time_budget"] = budget.minutes
    if budget.patience is not None:
        values["patience"] = budget.patience
    return values


def fine_space(spec: SweepSpec, records: Iterable[dict[str, Any]]) -> list[Dimension] | None:
    """
    The fine stage's space: each range narrowed to the span of the best coarse trials plus a
    margin of spec.fine.shrink times the coarse width on each side (on a log scale for
    log-uniform ranges), clipped to the coarse range; choices kept if a best trial took them.

    Inputs:
    - spec: The sweep specification (with a fine stage).
    - records: The trial records (only completed coarse trials count).

    Returns:
    - The narrowed dimensions, or None if no coarse trial produced a usable model.
    """
    best = [record for record in rank(records) if record["stage"] == "coarse"
            and record["status"] not in FAILED_STATUSES][:spec.fine.top]
    if not best:
        return None
    narrowed = []
    for dim in spec.space:
        taken = [record["params"][dim.name] for record in best]
        if dim.kind == "choices":
            kept = tuple(choice for choice in dim.choices if choice in taken)
            narrowed.append(dataclasses.replace(dim, choices=kept))
            continue
        scale = math.log10 if dim.kind == "log_uniform" else float
        unscale = (lambda value: 10.0 ** value) if dim.kind == "log_uniform" else float
        low, high = scale(dim.low), scale(dim.high)
        margin = spec.fine.shrink * (high - low)
        values = [scale(value) for value in taken]
        new_low, new_high = max(low, min(values) - margin), min(high, max(values) + margin)
        narrowed.append(dataclasses.replace(dim, low=_round(unscale(new_low)), high=_round(unscale(new_high))))
    return narrowed


def _draw(dim: Dimension, rng: Any) -> Any:
    if dim.kind == "choices":
        return dim.choices[int(rng.randint(len(dim.choices)))]
    if dim.kind == "log_uniform":
        return _round(10.0 ** rng.uniform(math.log10(dim.low), math.log10(dim.high)))
    return _round(rng.uniform(dim.low, dim.high))


def _round(value: float) -> float:
    """Four significant digits: readable in tables and command lines, exact in JSON."""
    return float(f"{value:.4g}")


# ---------------------------------------------------------------------- one trial (on a worker)


def run_trial(trial_id: str, settings: dict[str, Any]) -> dict[str, Any]:
    """
    Train one trial and return its record; runs on a Dask worker.

    A trial whose folder already holds its config (its worker died, or the sweep was
    killed) continues from its newest checkpoint, which ends where an uninterrupted run ends.

    Inputs:
    - trial_id: The trial's id.
    - settings: The trial's TrainConfig as a dict (out is the trial's folder).

    Returns:
    - The record: status ('completed', 'iteration budget reached', 'time budget reached',
      'stopped early', 'diverged' or 'failed'), best/final accuracies, histories, the
      divergence point, the images trained and the time taken.
    """
    from autocnn.tools.train import CONFIG_FILE, run_training

    with _TRIAL_LOCK:
        config = TrainConfig.from_dict(settings)
        out = Path(config.out)
        attempt = _note_worker(out)
        saved = _read_json(out / CONFIG_FILE)
        resume = saved == config.to_dict()
        record: dict[str, Any] = {"trial": trial_id, "attempt": attempt, "resumed": resume and attempt > 1}
        started = time.perf_counter()
        try:
            # The trial's log goes to its train.log; the worker's terminal stays quiet.
            with open(os.devnull, "w") as quiet, contextlib.redirect_stdout(quiet):
                result = run_training(config, resume=resume, overwrite=not resume)
            metrics = result.metrics
        except FloatingPointError as diverged:  # TrainingDivergedError
            metrics = _read_json(out / METRICS_FILE) or {}
            record["diverged_at"] = {"iteration": getattr(diverged, "iteration", None),
                                     "loss": _json_float(getattr(diverged, "loss", None))}
            record["error"] = str(diverged)
        except Exception as error:  # a bad setting or data: recorded, and the sweep goes on
            metrics = {"status": "failed"}
            record["error"] = f"{type(error).__name__}: {error}"
        record["wall_time_s"] = round(time.perf_counter() - started, 3)
    record["status"] = metrics.get("status", "failed")
    for key in ("best_val_acc", "final_val_acc", "final_train_acc", "test_acc", "iterations_done",
                "epochs_completed", "images_trained", "train_time_s", "images_per_s", "note",
                "loss_history", "train_acc_history", "val_acc_history"):
        record[key] = metrics.get(key)
    return record


def _note_worker(out: Path) -> int:
    """Write out/worker.json (which process runs the trial, its attempt number); returns the attempt."""
    previous = _read_json(out / WORKER_FILE) or {}
    attempt = int(previous.get("attempt", 0)) + 1
    atomic_write_json(out / WORKER_FILE, {"pid": os.getpid(), "host": socket.gethostname(), "attempt": attempt,
                                          "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
    return attempt


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _json_float(value: Any) -> float | str | None:
    """A float for JSON: NaN and infinities as the strings 'nan', 'inf', '-inf'."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else str(value)


# ---------------------------------------------------------------------- the record file


class TrialRecords:
    """
    The finished trials of a sweep, one JSON line each in DIR/trials.jsonl.

    Only the sweep's client process appends; each line is one write of the whole line,
    flushed and fsynced before the next trial is recorded.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.records: dict[str, dict[str, Any]] = {}
        if self.path.exists():
            self._load()

    def _load(self) -> None:
        raw = self.path.read_bytes()
        lines = raw.split(b"\n")
        complete, torn = lines[:-1], lines[-1]
        for number, line in enumerate(complete, start=1):
            try:
                record = json.loads(line)
            except ValueError:
                raise SweepError(f"{self.path} line {number} is not a trial record; the file is damaged") from None
            self.records[record["trial"]] = record
        if torn.strip():
            # A kill in the middle of the last write: drop the partial line (its trial reruns).
            atomic_write_text(self.path, b"\n".join(complete).decode("utf-8") + ("\n" if complete else ""))

    def append(self, record: dict[str, Any]) -> None:
        """Record one finished trial."""
        line = json.dumps(record, sort_keys=True) + "\n"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line.encode("utf-8"))
            os.fsync(fd)
        finally:
            os.close(fd)
        self.records[record["trial"]] = record

    def __contains__(self, trial_id: str) -> bool:
        return trial_id in self.records

    def values(self) -> list[dict[str, Any]]:
        return list(self.records.values())


# ---------------------------------------------------------------------- the sweep


def run_sweep(spec: SweepSpec, out: str | os.PathLike, workers: int | None = None, threads: int = 1,
              scheduler: str | None = None, resume: bool = False, data_dir: str | None = None,
              retries: int = 1, progress: Callable[[str], None] | None = print) -> dict[str, Any]:
    """
    Run (or resume) a sweep and write its table, figures and best command line.

    Inputs:
    - spec: The SweepSpec (see autocnn.tools.sweep_spec.load_spec).
    - out: The sweep folder.
    - workers: Worker processes of the local cluster (default: one per core).
    - threads: BLAS threads of each local worker (OPENBLAS/OMP/MKL_NUM_THREADS).
    - scheduler: Address of an existing Dask scheduler ('tcp://host:8786'); its workers are
      used as they are (start them with --nthreads 1: one trial per process at a time).
    - resume: Continue the sweep in out, skipping its finished trials.
    - data_dir: CIFAR-10 folder for every trial.
    - retries: Local cluster: how often a trial whose worker died is started again before
      it is recorded as lost.
    - progress: Called with each progress line (None: silent).

    Returns:
    - The summary (also written to out/summary.json).

    Raises SweepError if out holds another sweep (or, with resume, none).
    """
    _require_dask()
    if workers is not None:
        validation.check_int("workers", workers, 1)
    validation.check_int("threads", threads, 1)
    validation.check_int("retries", retries, 0)
    out = Path(out)
    say = progress or (lambda line: None)
    _prepare_folder(spec, out, resume)
    records = TrialRecords(out / RECORDS_FILE)
    coarse = sample_trials(spec, "coarse", spec.trials, spec.space, spec.budget, out, data_dir)
    started = time.perf_counter()
    session: list[dict[str, Any]] = []  # trials finished by this call (for the throughput)
    interrupted = False
    try:
        with _client(workers, threads, scheduler, retries) as client:
            say(f"[sweep] {_describe_client(client)}; {len(records.records)} trials already recorded in {out}")
            _run_stage(client, coarse, records, session, say)
            if spec.fine is not None:
                space = fine_space(spec, records.values())
                if space is None:
                    say("[sweep] no coarse trial trained without failing: no fine stage")
                else:
                    say("[sweep] fine stage: " + ", ".join(_describe_dimension(dim) for dim in space))
                    fine = sample_trials(spec, "fine", spec.fine.trials, space, spec.fine.budget, out, data_dir)
                    _run_stage(client, fine, records, session, say)
    except KeyboardInterrupt:
        interrupted = True
        say("[sweep] interrupted: the finished trials are recorded; continue with --resume")
        raise
    finally:
        wall = time.perf_counter() - started
        # From the file: an interrupt may have come between a record's write and its book-keeping.
        summary = write_outputs(spec, out, TrialRecords(out / RECORDS_FILE).values(), session, wall, interrupted)
        say(f"[sweep] wrote {TABLE_FILE}, {SCATTER_FILE}, {CURVES_FILE}, {COMMAND_FILE}, {SUMMARY_FILE} to {out}")
    return summary


def _require_dask() -> None:
    try:
        import distributed  # noqa: F401
    except ImportError:
        raise SweepError("autocnn sweep runs on Dask distributed, which is not installed: "
                         "pip install 'autocnn[sweep]' (or dask[distributed])") from None


def _prepare_folder(spec: SweepSpec, out: Path, resume: bool) -> None:
    spec_path = out / SPEC_FILE
    if resume:
        if not spec_path.exists():
            raise SweepError(f"cannot resume: {out} holds no sweep ({spec_path} does not exist)")
        if parse_spec(spec_path.read_text(encoding="utf-8")).fingerprint != spec.fingerprint:
            raise SweepError(f"cannot resume: {out} holds a sweep of a different spec; "
                             "use a new --out folder for this one")
        return
    if spec_path.exists() or (out / RECORDS_FILE).exists():
        raise SweepError(f"{out} already holds a sweep; continue it with --resume, or choose a new --out folder")
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(spec_path, spec.source)
    atomic_write_json(out / SUMMARY_FILE, {"fingerprint": spec.fingerprint, "state": "started"})


@contextlib.contextmanager
def _client(workers: int | None, threads: int, scheduler: str | None, retries: int) -> Any:
    """A Dask client: of the cluster at scheduler, else of a new local cluster of processes."""
    import dask
    from distributed import Client, LocalCluster

    if scheduler is not None:
        with Client(scheduler) as client:
            yield client
        return
    workers = workers or (os.cpu_count() or 1)
    blas = {name: str(threads) for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    # The scheduler reads this when it starts: a trial whose worker dies more than
    # `retries` times is given up (KilledWorker) rather than retried without end.
    with dask.config.set({"distributed.scheduler.allowed-failures": retries,
                          "distributed.nanny.pre-spawn-environ": blas}):
        with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, env=blas,
                          dashboard_address=None) as cluster, Client(cluster) as client:
            # Ctrl-C reaches the whole process group: the client alone shuts the cluster down.
            client.register_plugin(_ignore_interrupts_plugin())
            yield client


def _ignore_interrupts_plugin() -> Any:
    """A worker plugin with which the local workers ignore SIGINT (the client handles Ctrl-C)."""
    import signal

    from distributed import WorkerPlugin

    class IgnoreInterrupts(WorkerPlugin):
        name = "autocnn-sweep-ignore-sigint"

        def setup(self, worker: Any) -> None:
            if threading.current_thread() is threading.main_thread():
                signal.signal(signal.SIGINT, signal.SIG_IGN)

    return IgnoreInterrupts()


def _describe_client(client: Any) -> str:
    info = client.scheduler_info()
    threads = sorted({worker["nthreads"] for worker in info["workers"].values()})
    return f"Dask scheduler {info.get('address', '?')}: {len(info['workers'])} workers x {threads} threads"


def _run_stage(client: Any, trials: Sequence[Trial], records: TrialRecords, session: list[dict[str, Any]],
               say: Callable[[str], None]) -> None:
    """
    Run the stage's unfinished trials and record each as it ends.

    Only as many trials are submitted as the cluster has worker threads, the next one when
    one ends: a worker that dies then takes only the trial it was running with it (Dask
    counts every task a dead worker held against that task's retries), and a trial not yet
    started cannot be lost.
    """
    from distributed import as_completed
    from distributed.scheduler import KilledWorker

    waiting = [trial for trial in trials if trial.id not in records]
    if len(waiting) < len(trials):
        say(f"[sweep] {trials[0].stage}: {len(trials) - len(waiting)} of {len(trials)} trials already done")
    waiting.reverse()  # pop() from the end: trials start in order
    running: dict[Any, Trial] = {}
    completed = as_completed()

    def fill() -> None:
        slots = max(sum(client.nthreads().values()), 1)
        while waiting and len(running) < slots:
            trial = waiting.pop()
            future = client.submit(run_trial, trial.id, trial.config.to_dict(), pure=False,
                                   key=f"trial-{trial.id}-{os.getpid()}-{time.monotonic_ns()}")
            running[future] = trial
            completed.add(future)

    try:
        fill()
        for future in completed:
            trial = running.pop(future)
            try:
                result = future.result()
            except KilledWorker as lost:
                result = {"trial": trial.id, "status": "lost",
                          "error": f"its worker died while training it, each time it was started ({lost})"}
            except Exception as error:  # the trial function itself failed (not the training)
                result = {"trial": trial.id, "status": "failed", "error": f"{type(error).__name__}: {error}"}
            record = _complete_record(trial, result)
            records.append(record)
            session.append(record)
            fill()
            say(_progress_line(record, records, len(running), len(waiting)))
    finally:
        for future in running:
            future.cancel()


def _complete_record(trial: Trial, result: dict[str, Any]) -> dict[str, Any]:
    record = {"stage": trial.stage, "index": trial.index, "params": trial.params, "config": trial.config.to_dict(),
              "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    record.update(result)
    record["trial"] = trial.id
    return record


def _progress_line(record: dict[str, Any], records: TrialRecords, running: int, waiting: int) -> str:
    values = records.values()
    failed = sum(record["status"] in FAILED_STATUSES for record in values)
    params = ", ".join(f"{name} {_format_value(value)}" for name, value in record["params"].items())
    acc = record.get("best_val_acc")
    outcome = f"best val acc {acc:.4f}" if isinstance(acc, float) else record.get("error", "")
    return (f"[sweep] {record['trial']} {record['status']}: {outcome} ({params}) | "
            f"done {len(values)} ({failed} failed) / running {running} / waiting {waiting}")


# ---------------------------------------------------------------------- outputs


def rank(records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The records best first: by best validation accuracy, failed trials last, then by trial id."""
    def key(record: dict[str, Any]) -> tuple:
        failed = record["status"] in FAILED_STATUSES or not isinstance(record.get("best_val_acc"), float)
        return (failed, -(record.get("best_val_acc") or 0.0) if not failed else 0.0, record["trial"])

    return sorted(records, key=key)


def write_outputs(spec: SweepSpec, out: Path, records: Sequence[dict[str, Any]],
                  session: Sequence[dict[str, Any]], wall_time: float, interrupted: bool) -> dict[str, Any]:
    """
    Write table.md, the figures, best_command.txt and summary.json for the recorded trials.

    Returns:
    - The summary dictionary.
    """
    ranked = rank(records)
    atomic_write_text(out / TABLE_FILE, table_markdown(spec, ranked))
    from autocnn.tools import plots

    plots.plot_sweep_scatter(ranked, out / SCATTER_FILE)
    plots.plot_sweep_curves([record for record in ranked if record["status"] not in FAILED_STATUSES][:CURVES_SHOWN],
                            out / CURVES_FILE)
    best = next((record for record in ranked if record["status"] not in FAILED_STATUSES), None)
    command = train_command(best["config"], out=f"runs/{out.name}-best") if best is not None else None
    atomic_write_text(out / COMMAND_FILE, (command or "# no trial trained without failing") + "\n")
    images = sum(record.get("images_trained") or 0 for record in session)
    counts: dict[str, int] = {}
    for record in records:
        counts[record["status"]] = counts.get(record["status"], 0) + 1
    expected = spec.trials + (spec.fine.trials if spec.fine is not None else 0)
    summary = {
        "fingerprint": spec.fingerprint,
        "state": "interrupted" if interrupted else ("finished" if len(records) >= expected else "incomplete"),
        "trials_expected": expected,
        "trials_recorded": len(records),
        "statuses": counts,
        "best_trial": best["trial"] if best is not None else None,
        "best_val_acc": best["best_val_acc"] if best is not None else None,
        "best_command": command,
        "this_run": {"trials_finished": len(session), "wall_time_s": round(wall_time, 3),
                     "images_trained": images,
                     "images_per_s": round(images / wall_time, 2) if wall_time > 0 else None,
                     "images_per_s_note": "minibatch images trained by the trials that finished in this run, "
                                          "per second of the sweep's wall time (start-up included)"},
        "machine": machine_info(),
        **git_state(),
    }
    atomic_write_json(out / SUMMARY_FILE, summary)
    return summary


def table_markdown(spec: SweepSpec, ranked: Sequence[dict[str, Any]]) -> str:
    """The trials, best first, as a markdown table (deterministic: no timings)."""
    names = [dim.name for dim in spec.space]
    header = ["rank", "trial", "status", "best val acc", "train acc (last epoch)", *names, "iterations"]
    lines = [f"# Sweep: {spec.description or spec.model}", "",
             f"{len(ranked)} trials recorded; model {spec.model}; sweep seed {spec.seed}.", "",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for position, record in enumerate(ranked, start=1):
        status = record["status"]
        if status == "diverged" and record.get("diverged_at"):
            where = record["diverged_at"]
            status = f"diverged (loss {where['loss']} at iteration {where['iteration']})"
        # Training accuracy is checked at epoch ends: a trial stopped within its first epoch has none.
        train_acc = record.get("final_train_acc") if (record.get("epochs_completed") or 0) >= 1 else None
        cells = [str(position), record["trial"], status, _format_acc(record.get("best_val_acc")),
                 _format_acc(train_acc),
                 *(_format_value(record["params"].get(name)) for name in names),
                 str(record.get("iterations_done") if record.get("iterations_done") is not None else "")]
        lines.append("| " + " | ".join(cell.replace("|", "/") for cell in cells) + " |")
    return "\n".join(lines) + "\n"


def train_command(config: dict[str, Any], out: str) -> str:
    """
    The ``autocnn train`` command line that reruns a trial's configuration.

    Inputs:
    - config: The trial's TrainConfig as a dict.
    - out: The --out folder of the command.

    Returns:
    - The command line (settings equal to TrainConfig's defaults are left out).
    """
    import shlex

    defaults = TrainConfig().to_dict()
    flags = {"num_epochs": "--epochs", "data_dir": "--data", "use_batchnorm": "--batchnorm"}
    words = ["autocnn", "train"]
    for name in defaults:  # in TrainConfig's order (model first), whatever the dict's order
        value = config.get(name)
        if name in ("out", "verbose", "keep_checkpoints") or value is None or value == defaults[name]:
            continue
        flag = flags.get(name, "--" + name.replace("_", "-"))
        if isinstance(value, bool):
            if value:
                words.append(flag)
            continue
        if name == "blocks":
            text = "-".join(",".join(str(size) for size in block) for block in value)
        elif isinstance(value, list):
            text = ",".join(str(item) for item in value)
        else:
            text = repr(value) if isinstance(value, float) else str(value)
        words += [flag, text]
    words += ["--out", out]
    return " ".join(shlex.quote(word) for word in words)


def _format_acc(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) else "—"


def _format_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list):
        return json.dumps(value).replace(" ", "")
    return str(value)


def _describe_dimension(dim: Dimension) -> str:
    if dim.kind == "choices":
        return f"{dim.name} in {list(dim.choices)}"
    return f"{dim.name} {dim.kind} [{dim.low:.4g}, {dim.high:.4g}]"
