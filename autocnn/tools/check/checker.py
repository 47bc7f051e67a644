"""One target, or a whole class of them: plan, import in a worker, one worker per group, rows."""

from __future__ import annotations

import concurrent.futures
import dataclasses
import importlib
import importlib.util
import multiprocessing
import os
import shutil
import tempfile
from dataclasses import dataclass

import numpy as np

from autocnn.tools.check.isolation import BETWEEN_CALLS_TIMEOUT, DEFAULT_MEMORY_MB, DEFAULT_TIMEOUT, Limits, \
    lift_cpu_limit, limit_cpu_of_next_call, run_isolated
from autocnn.tools.check.loading import Plan, defined_names, import_plan, plan_target, student_objects
from autocnn.tools.check.report import FAIL, NOT_CHECKED, Outcome, Row, TargetResult, summarize
from autocnn.tools.check.runner import LAYER_TOLERANCE, MODEL_TOLERANCE, Context, autocnn_stand_in, model_function, \
    model_outputs, replace_in_modules, run_dropout_spec, run_layer_spec, run_model_spec, spec_seed
from autocnn.tools.check.specs import KNOWN_CLASSES, LAYER_SPECS, MODEL_SPECS

DEFAULT_TARGET = "reference"


@dataclass(frozen=True)
class Options:
    """How to check: limits of user code, the seed of the inputs, tolerances, files judged on purpose."""

    timeout: float = DEFAULT_TIMEOUT
    seed: int = 0
    layer_tolerance: float = LAYER_TOLERANCE
    model_tolerance: float = MODEL_TOLERANCE
    memory_mb: int = DEFAULT_MEMORY_MB
    include: tuple[str, ...] = ()


def _rows_from_events(keys: list[tuple[str, str]], events: list[tuple], failure: str, tolerance: float,
                      origins: dict[str, str]) -> list[Row]:
    """Rows of one group, turning a timeout or a dead worker into problems on the right rows."""
    outcomes: dict[tuple[str, str], list[Outcome]] = {key: [] for key in keys}
    running = None
    for event in events:
        if event[0] == "outcome":
            outcome = event[1]
            outcomes.setdefault((outcome.function, outcome.output), []).append(outcome)
        elif event[0] == "call":
            running = event[1:]
        elif event[0] == "returned":
            running = None
    if failure:
        text = failure if "limit" in failure else f"{failure} (infinite loop?)" if failure.startswith("timed out") \
            else f"the worker {failure}"
        if running is not None:
            function, case, outputs = running
            for output in outputs:
                outcomes.setdefault((function, output), []).append(Outcome(function, output, case, problem=text))
        for key, found in outcomes.items():
            if not found:
                found.append(Outcome(*key, case="", skipped=f"not checked: stopped early ({text})",
                                     kind="not checked"))
    rows = []
    for (function, output), found in outcomes.items():
        module = origins.get(function.split(".")[0].split(" ")[0], "")
        rows.append(summarize(function, output, found, tolerance, module))
    return rows


def _load_in_worker(plan: Plan, limits: Limits) -> tuple[dict[str, tuple[str, str]], list[str], dict[str, str], str]:
    """Import the plan in a throwaway worker: (problems per file, notes, name -> file label of what loaded, failure)."""

    def trial(send):
        imported = import_plan(plan, send)
        namespace, origins = student_objects(plan, imported)
        send(("loaded", imported.problems, imported.notes, origins))

    events, failure = run_isolated(trial, limits.timeout, BETWEEN_CALLS_TIMEOUT, limits)
    for event in events:
        if event[0] == "loaded":
            return event[1], event[2], event[3], failure
    running = [event[1] for event in events if event[0] == "call"]
    where = f" ({running[-1]})" if running else ""
    return {}, [], {}, (failure or "the import stopped early") + where


def _context(plan: Plan, send, tol: float) -> Context:
    chosen = defined_names(plan)
    blank = {name: file.blank[name] for name, file in chosen.items() if name in file.blank}
    docs = {name: file.docs.get(name, "") for name, file in chosen.items()}
    return Context(send, tol, plan.labels(), blank, docs)


def _group_job(plan: Plan, tol: float, body):
    """A worker job: import the submission, then run body(namespace, modules, ctx)."""

    def job(send):
        imported = import_plan(plan)
        namespace, _ = student_objects(plan, imported)
        body(namespace, list(imported.modules.values()), _context(plan, send, tol))

    return job


def _stand_ins(replace: list[tuple[int, str, tuple[str, ...]]], namespace: dict, conventions: dict) -> dict:
    """The student's wrong or missing functions -> autocnn's versions, pair by pair."""
    replacements = {}
    for index, forward, backwards in replace:
        spec = LAYER_SPECS[index]
        pair = {name: autocnn_stand_in(spec, name, namespace.get(name), conventions.get("dropout", ""))
                for name in (forward, *backwards) if name in namespace}
        if all(pair.values()):
            replacements.update(pair)
    return replacements


def _wrong_functions(rows: list[Row], names: tuple[str, ...]) -> bool:
    return any(r.function in names and (r.failed or r.status == NOT_CHECKED) for r in rows)


def _layer_rows(plan: Plan, loaded: dict[str, str], options: Options, limits: Limits,
                conventions: dict[str, str], replace: list) -> list[Row]:
    """Rows of every layer group; groups found wrong are added to `replace` for the callers checked later."""
    rows: list[Row] = []
    for index, spec in enumerate(LAYER_SPECS):
        for forward, all_backwards in spec.names():
            backwards = [name for name in all_backwards if name in loaded]
            if forward not in loaded:
                for name in backwards:
                    rows.append(Row(name, "-", None, options.layer_tolerance, NOT_CHECKED,
                                    f"not checked: no {forward} of the student's to make its cache",
                                    module=loaded[name]))
                continue
            keys = [(forward, output) for output in (["loss", "dx"] if spec.is_loss else ["out", *spec.state_keys])]
            keys += [(name, grad) for name in backwards for grad in spec.grads]
            runner = run_dropout_spec if spec.kind == "dropout" else run_layer_spec
            rng = np.random.RandomState(spec_seed(options.seed, spec.name))
            callers_of_others = list(replace) if spec.by_name else []

            def body(namespace, modules, ctx, spec=spec, forward=forward, backwards=backwards, rng=rng,
                     runner=runner, stand_ins=callers_of_others):
                replace_in_modules(modules, _stand_ins(stand_ins, namespace, conventions))
                runner(spec, forward, backwards, namespace, rng, ctx)

            events, failure = run_isolated(_group_job(plan, options.layer_tolerance, body), options.timeout,
                                           max(BETWEEN_CALLS_TIMEOUT, options.timeout), limits)
            for event in events:
                if event[0] == "convention":
                    conventions[event[1]] = event[2]
            group = _rows_from_events(keys, events, failure, options.layer_tolerance, loaded)
            rows += group
            if _wrong_functions(group, (forward, *backwards)):
                replace.append((index, forward, tuple(backwards)))
    return rows


def _model_rows(plan: Plan, loaded: dict[str, str], options: Options, limits: Limits,
                conventions: dict[str, str], replace: list) -> list[Row]:
    rows: list[Row] = []
    for spec in MODEL_SPECS:
        if spec.name not in loaded:
            continue
        keys = [(model_function(spec, part), output) for part in spec.parts() for output in model_outputs(spec, part)]
        rng = np.random.RandomState(spec_seed(options.seed, spec.name))

        def body(namespace, modules, ctx, spec=spec, rng=rng):
            model_class = namespace[spec.name]
            if not isinstance(model_class, type):
                return
            replace_in_modules(modules, _stand_ins(replace, namespace, conventions))
            run_model_spec(spec, model_class, rng, ctx, conventions.get("dropout", ""), modules)

        events, failure = run_isolated(_group_job(plan, options.model_tolerance, body), options.timeout,
                                       max(BETWEEN_CALLS_TIMEOUT, options.timeout), limits)
        origins = {model_function(spec, part): loaded[spec.name] for part in spec.parts()}
        rows += _rows_from_events(keys, events, failure, options.model_tolerance, {**loaded, **origins})
    return rows


OPTIM_CHECKER = "autocnn.tools.check_optim"  # check_optim(module) -> rows for sgd, sgd_momentum, rmsprop, adam


def _as_row(row) -> Row:
    """A row from the update-rule checker as this module's Row."""
    names = ("function", "output", "error", "tolerance", "status", "diagnosis", "worst_case", "module")
    defaults = {"error": None, "tolerance": 0.0, "diagnosis": "", "worst_case": "", "module": ""}
    values = row if isinstance(row, dict) else {name: getattr(row, name) for name in names if hasattr(row, name)}
    values = dict(values)
    if values.get("status") == "ERROR":  # the update-rule checker's word for a rule that raised
        values["status"] = FAIL
    return Row(**{name: values.get(name, defaults.get(name, "-")) for name in names})


def _optim_rows(plan: Plan, limits: Limits) -> list[Row]:
    """The student's optim.py against autocnn's update rules, when that checker is installed."""
    if not plan.optim or importlib.util.find_spec(OPTIM_CHECKER) is None:
        return []
    checker = importlib.import_module(OPTIM_CHECKER)
    rows = []
    for file in plan.optim:
        def job(send, file=file):
            imported = import_plan(dataclasses.replace(plan, files=[file], standin_modules=[]), send)
            module = imported.modules.get(file.label)
            if module is None:
                send(("problem", imported.problems.get(file.label, ("fail", "did not import"))))
                return
            send(("call", f"{file.label}", "", ("-",)))
            limit_cpu_of_next_call()
            found = checker.check_optim(module)
            lift_cpu_limit()
            send(("returned", file.label))
            send(("rows", [_as_row(row) for row in found]))

        events, failure = run_isolated(job, limits.timeout, BETWEEN_CALLS_TIMEOUT, limits)
        found = [row for event in events if event[0] == "rows" for row in event[1]]
        for event in events:
            if event[0] == "problem":
                kind, text = event[1]
                rows.append(Row(f"import {file.label}", "-", None, 0.0, FAIL if kind == "fail" else NOT_CHECKED,
                                text if kind == "fail" else f"not checked: {text}", module=file.label))
        if failure and not found:
            rows.append(Row(f"{file.label} update rules", "-", None, 0.0, FAIL, f"checking {failure}",
                            module=file.label))
        for row in found:
            row.module = row.module or file.label
        rows += found
    return rows


def collapse_repeated(rows: list[Row]) -> list[Row]:
    """
    One row for a function (or model part) whose every row says the same thing without a number.

    A forward that raises, a blank backward or a skipped option fails or skips every output
    alike; one row ("-") says it once, and counts once.
    """
    by_function: dict[str, list[Row]] = {}
    for row in rows:
        by_function.setdefault(row.function, []).append(row)
    out = []
    for function, group in by_function.items():
        first = group[0]
        if len(group) > 1 and all(r.error is None and r.status == first.status and r.diagnosis == first.diagnosis
                                  for r in group):
            out.append(Row(function, "-", None, first.tolerance, first.status, first.diagnosis, first.worst_case,
                           first.module))
        else:
            out += group
    return out


def _import_rows(plan: Plan, problems: dict[str, tuple[str, str]]) -> list[Row]:
    """A row per file that did not import, and a 'not checked' row per notebook function in it."""
    rows = []
    failed_first = sorted(plan.files, key=lambda f: problems.get(f.label, ("",))[0] != "fail")
    for file in failed_first:
        if file.label not in problems:
            continue
        kind, text = problems[file.label]
        status = FAIL if kind == "fail" else NOT_CHECKED
        rows.append(Row(f"import {file.label}", "-", None, 0.0, status,
                        text if kind == "fail" else f"not checked: {text}", module=file.label))
        for name in file.defined:
            function = f"{name}.loss" if name in KNOWN_CLASSES else name
            rows.append(Row(function, "-", None, 0.0, NOT_CHECKED, f"not checked: {file.label} did not import",
                            module=file.label))
    return rows


def check_plan(plan: Plan, options: Options = Options()) -> TargetResult:
    """Check a planned target; user code runs only in confined workers with a scratch working directory."""
    for name in ("autocnn.core.layers", "autocnn.core.layer_utils", "autocnn.core.models", "reference.fast_layers"):
        importlib.import_module(name)  # once here, so that every forked worker inherits it
    scratch = tempfile.mkdtemp(prefix="autocnn-check-")
    try:
        limits = Limits(options.timeout, options.memory_mb, scratch)
        problems, notes, loaded, failure = _load_in_worker(plan, limits)
        rows = []
        if failure:  # an import that hangs or kills its process: nothing else can be checked
            rows.append(Row(f"import {plan.target}", "-", None, 0.0, FAIL, f"importing {failure}"))
            return TargetResult(plan.target, rows, list(plan.notes))
        rows += _import_rows(plan, problems)
        conventions: dict[str, str] = {}
        replace: list[tuple[int, str, tuple[str, ...]]] = []
        rows += _layer_rows(plan, loaded, options, limits, conventions, replace)
        rows += _model_rows(plan, loaded, options, limits, conventions, replace)
        rows += _optim_rows(plan, limits)
        composites = {name for spec in LAYER_SPECS if spec.by_name for name in spec.functions()}
        callers = [r for r in rows if r.function in composites or r.function.split(".")[0] in loaded
                   and "." in r.function]
        if replace and callers:
            names = ", ".join(name for _, forward, backwards in replace for name in (forward, *backwards))
            notes.append(f"sandwiches and models were checked with autocnn's versions of {names} (not right or "
                         "not checked here), so that each is judged on its own code")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    if not rows:
        rows.append(Row("(nothing found)", "-", None, 0.0, NOT_CHECKED,
                        "no function or class of the notebook API defined in this target"
                        + (f" (support files not judged: {', '.join(plan.support)})" if plan.support else "")))
    return TargetResult(plan.target, collapse_repeated(rows), [*plan.notes, *notes])


def check_one(target: str, options: Options = Options()) -> TargetResult:
    """Plan and check one target; a target that cannot even be read is one FAIL row, never an exception."""
    try:
        plan = plan_target(target, options.include)
    except ValueError:  # no such file, folder or module: the caller's mistake
        raise
    except Exception as error:  # an unreadable folder, a permission problem: this target only
        return TargetResult(target, [Row(f"read {target}", "-", None, 0.0, NOT_CHECKED,
                                         f"not checked: {type(error).__name__}: {error}")])
    return check_plan(plan, options)


def check_target(target: str = DEFAULT_TARGET, timeout: float = DEFAULT_TIMEOUT, seed: int = 0,
                 layer_tolerance: float = LAYER_TOLERANCE, model_tolerance: float = MODEL_TOLERANCE,
                 include: tuple[str, ...] = (), memory_mb: int = DEFAULT_MEMORY_MB) -> list[Row]:
    """
    Check every notebook-API function and model class a target defines.

    Inputs:
    - target: A .py file, a folder (a submission, nndl/, cs231n/) or a module / package name
    - timeout: Seconds (wall and CPU) any single call of user code may take
    - seed: Seed of the random inputs (the same seed gives the same cases)
    - layer_tolerance, model_tolerance: Largest acceptable relative error (rel_error)
    - include: Support files (fast_layers.py, ...) to judge anyway
    - memory_mb: Memory each worker may use beyond the checker's own

    Returns:
    - rows: One Row per (function, output): PASS, FAIL, NOT IMPLEMENTED, NOT CHECKED or SKIP
    """
    options = Options(timeout, seed, layer_tolerance, model_tolerance, memory_mb, tuple(include))
    return check_one(target, options).rows


def _check_safely(target: str, options: Options) -> TargetResult:
    try:
        return check_one(target, options)
    except Exception as error:  # one broken submission never stops the class
        return TargetResult(target, [Row(f"check {target}", "-", None, 0.0, NOT_CHECKED,
                                         f"not checked: {type(error).__name__}: {error}")])


def check_targets(targets: list[str], options: Options = Options(), jobs: int | None = None) -> list[TargetResult]:
    """
    Check many targets (a class), `jobs` at a time; results in the order of `targets`.

    Inputs:
    - targets: Submissions (folders, files or module names)
    - options: As for one target
    - jobs: Submissions checked at once (default: the number of cores)

    Returns:
    - results: One TargetResult per target; a target that cannot be read is a NOT CHECKED row
    """
    for target in targets:  # a typo in a path is the caller's mistake: say so before anything runs
        if not os.path.exists(target):
            plan_target(target, options.include)
    jobs = max(1, jobs or os.cpu_count() or 1)
    if jobs == 1 or len(targets) == 1:
        return [_check_safely(target, options) for target in targets]
    context = multiprocessing.get_context("fork")
    with concurrent.futures.ProcessPoolExecutor(max_workers=jobs, mp_context=context) as pool:
        futures = [pool.submit(_check_safely, target, options) for target in targets]
        results = []
        for target, future in zip(targets, futures):
            try:
                results.append(future.result())
            except Exception as error:  # the pool process itself died
                results.append(TargetResult(target, [Row(f"check {target}", "-", None, 0.0, NOT_CHECKED,
                                                         f"not checked: {type(error).__name__}: {error}")]))
        return results


