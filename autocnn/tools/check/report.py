"""Rows, and how they are folded, printed, and exported (table, JSON, CSV, class matrix)."""

from __future__ import annotations

import csv
import io
import math
from dataclasses import asdict, dataclass, field

PASS, FAIL, SKIP = "PASS", "FAIL", "SKIP"
NOT_IMPLEMENTED, NOT_CHECKED = "NOT IMPLEMENTED", "NOT CHECKED"
#: Statuses that count against the student.
WRONG = (FAIL, NOT_IMPLEMENTED)
_SHORT = {PASS: "pass", FAIL: "FAIL", SKIP: "skip", NOT_IMPLEMENTED: "todo", NOT_CHECKED: "n/c"}


@dataclass
class Row:
    """One line of the table: one output of one function, over all its cases."""

    function: str
    output: str
    error: float | None
    tolerance: float
    status: str
    diagnosis: str = ""
    worst_case: str = ""
    module: str = ""

    @property
    def failed(self) -> bool:
        """True when this row counts against the student (wrong or not implemented)."""
        return self.status in WRONG


@dataclass
class Outcome:
    """What one case said about one output of one function (sent from the worker)."""

    function: str
    output: str
    case: str
    tags: tuple[str, ...] = ()
    error: float | None = None
    problem: str = ""  # a hard failure: exception, type, shape, mutation, timeout
    hints: tuple[str, ...] = ()  # diagnoses that fit this case's numbers
    skipped: str = ""  # why the case was not run
    kind: str = ""  # '' | 'todo' (not implemented) | 'not checked' (could not be reached) | 'skip'


@dataclass
class TargetResult:
    """The rows of one target, and the notes printed under its table."""

    target: str
    rows: list[Row]
    notes: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return {status: sum(r.status == status for r in self.rows)
                for status in (PASS, FAIL, NOT_IMPLEMENTED, NOT_CHECKED, SKIP)}

    def exit_status(self) -> int:
        """0: everything the student wrote is right; 1: something is wrong or missing; 2: nothing checked."""
        counts = self.counts()
        if counts[FAIL] or counts[NOT_IMPLEMENTED]:
            return 1
        return 0 if counts[PASS] else 2


# ------------------------------------------------------------------ folding cases into a row

def _implicated_tags(failing: list[Outcome], measured: list[Outcome]) -> list[str]:
    """
    Tags every case having them fails with: each is one independent failure pattern.

    A tag whose failing cases are a strict subset of another implicated tag's is dropped
    (it adds nothing), as is any tag when no case passes (nothing to contrast with).
    """
    failing_cases = {o.case for o in failing}
    passing_cases = {o.case for o in measured} - failing_cases
    if not passing_cases:
        return []
    tags = list(dict.fromkeys(tag for o in failing for tag in o.tags))
    by_tag = {tag: {o.case for o in measured if tag in o.tags} for tag in tags}
    implicated = [tag for tag in tags if by_tag[tag] and by_tag[tag] <= failing_cases]
    return [tag for tag in implicated if not any(by_tag[tag] < by_tag[other] for other in implicated)]


def _problem_text(problems: list[Outcome]) -> str:
    groups: dict[str, list[str]] = {}
    for o in problems:
        groups.setdefault(o.problem, [])
        if o.case and o.case not in groups[o.problem]:
            groups[o.problem].append(o.case)
    parts = []
    for problem, cases in list(groups.items())[:3]:
        where = f" [case: {cases[0]}" + (f"; +{len(cases) - 1} more" if len(cases) > 1 else "") + "]" if cases else ""
        parts.append(problem + where)
    if len(groups) > 3:
        parts.append(f"+{len(groups) - 3} other problems")
    return "; ".join(parts)


def summarize(function: str, output: str, outcomes: list[Outcome], tolerance: float, module: str = "") -> Row:
    """
    Fold the per-case outcomes of one (function, output) into a table row.

    Not implemented decides first; then a hard problem (exception, timeout, type, shape,
    mutation; several distinct ones are all named); otherwise the worst relative error
    does, and a failure is explained by the hints the failing cases agree on and by every
    case tag whose cases all fail (pad > 0, stride 2, ...): each one an independent
    pattern. Rows decided by a problem carry no error number.
    """
    todo = [o for o in outcomes if o.kind == "todo"]
    if todo:
        return Row(function, output, None, tolerance, NOT_IMPLEMENTED, todo[0].problem or "not implemented",
                   module=module)
    measured = [o for o in outcomes if not o.skipped]
    if not measured:
        first = outcomes[0] if outcomes else Outcome(function, output, "", skipped="not checked", kind="not checked")
        status = NOT_CHECKED if first.kind == "not checked" else SKIP
        return Row(function, output, None, tolerance, status, first.skipped, module=module)
    problems = [o for o in measured if o.problem]
    failing = [o for o in measured if o.problem or o.error is not None and not o.error <= tolerance]
    if problems:
        text = "; ".join([_problem_text(problems)] + [f"fails for cases with {tag}"
                                                      for tag in _implicated_tags(failing, measured)])
        return Row(function, output, None, tolerance, FAIL, text, problems[0].case, module)
    errors = [o.error for o in measured if o.error is not None]
    worst_error = max(errors) if errors else None
    worst = max((o for o in measured if o.error is not None), key=lambda o: o.error, default=measured[0])
    skipped = [o for o in outcomes if o.skipped]
    if not failing:
        note = "; ".join(dict.fromkeys(h[len("note: "):] for o in measured for h in o.hints if h.startswith("note:")))
        if skipped:
            reason = f"{len({o.case for o in skipped})} case(s) skipped: {skipped[0].skipped}"
            note = f"{note}; {reason}" if note else reason
        return Row(function, output, worst_error, tolerance, PASS, note, worst.case, module)
    agreed = [h for h in failing[0].hints if all(h in o.hints for o in failing[1:]) and not h.startswith("note:")]
    parts = agreed[:2]
    if not agreed:  # different failing cases, different hints: name each group's
        groups = list(dict.fromkeys(o.hints[0] for o in failing if o.hints and not o.hints[0].startswith("note:")))
        parts += groups[:2]
    parts += [f"fails for cases with {tag}" for tag in _implicated_tags(failing, measured)]
    if not parts:
        parts.append(f"no simple pattern; worst case: {worst.case}")
    return Row(function, output, worst_error, tolerance, FAIL, "; ".join(parts), worst.case, module)


# ------------------------------------------------------------------ printing

def format_table(rows: list[Row]) -> str:
    """The rows as an aligned text table."""
    header = ("function", "output", "worst rel. error", "tolerance", "status", "diagnosis")
    lines = [(r.function, r.output, "-" if r.error is None else f"{r.error:.2e}",
              f"{r.tolerance:.0e}" if r.tolerance else "-", r.status, r.diagnosis) for r in rows]
    widths = [max(len(str(line[i])) for line in [header, *lines]) for i in range(5)]
    out = []
    for line in [header, *lines]:
        cells = [str(cell).ljust(width) for cell, width in zip(line[:5], widths)]
        out.append("  ".join(cells + [line[5]]).rstrip())
    out.insert(1, "  ".join("-" * w for w in widths) + "  " + "-" * 9)
    return "\n".join(out)


def summary_line(result: TargetResult) -> str:
    """'alice/: 40 checks: 36 passed, 2 failed, 1 not implemented, 1 not checked' (+ skipped)."""
    c = result.counts()
    text = (f"{result.target}: {len(result.rows)} checks: {c[PASS]} passed, {c[FAIL]} failed, "
            f"{c[NOT_IMPLEMENTED]} not implemented, {c[NOT_CHECKED]} not checked")
    return text + (f", {c[SKIP]} skipped" if c[SKIP] else "")


def as_result(item) -> TargetResult:
    """A TargetResult from a TargetResult or a (target, rows) pair."""
    if isinstance(item, TargetResult):
        return item
    target, rows, *notes = item
    return TargetResult(target, list(rows), list(notes[0]) if notes else [])


def format_results(results: list) -> str:
    """The tables ``autocnn check`` prints: per target a header, the table, its notes and a summary line."""
    blocks = []
    for result in map(as_result, results):
        notes = "".join(f"note: {note}\n" for note in result.notes)
        blocks.append(f"== autocnn check {result.target}  (tolerance: rel. error vs autograd, float64)\n"
                      f"{format_table(result.rows)}\n{notes}{summary_line(result)}\n")
    return "\n".join(blocks)


def _json_row(row: Row) -> dict:
    """A row as plain JSON (an infinite error becomes the string 'inf')."""
    data = asdict(row)
    if row.error is not None and not math.isfinite(row.error):
        data["error"] = str(row.error)
    data["passed"] = not row.failed
    return data


def results_as_json(results: list) -> dict:
    """The JSON document of ``autocnn check --json``: one entry per target with its rows, counts and notes."""
    results = [as_result(item) for item in results]
    return {"passed": not any(r.failed for result in results for r in result.rows),
            "exit_status": overall_exit_status(results),
            "targets": [{"target": result.target, "passed": not any(r.failed for r in result.rows),
                         "counts": result.counts(), "notes": result.notes,
                         "rows": [_json_row(r) for r in result.rows]}
                        for result in results]}


def overall_exit_status(results: list) -> int:
    """1 if any target has a wrong or missing function, else 0 if anything was checked, else 2."""
    statuses = [as_result(item).exit_status() for item in results]
    if 1 in statuses:
        return 1
    return 0 if 0 in statuses else 2


def _cell(rows: list[Row]) -> str:
    """One matrix cell: the worst status among a function's rows."""
    statuses = {r.status for r in rows}
    for status in (FAIL, NOT_IMPLEMENTED, NOT_CHECKED, PASS, SKIP):
        if status in statuses:
            return _SHORT[status]
    return ""


IMPORTS = "(files imported)"


def _matrix_name(row: Row) -> str:
    """A matrix line per function; the rows of files that did not import share one line."""
    return IMPORTS if row.function.startswith("import ") else row.function


def class_matrix(results: list) -> tuple[list[str], list[str], dict[tuple[str, str], str]]:
    """(functions, targets, cells): the worst status of each function in each submission ('' = absent)."""
    results = [as_result(item) for item in results]
    functions = list(dict.fromkeys(_matrix_name(r) for result in results for r in result.rows))
    functions.sort(key=lambda name: name != IMPORTS)
    cells = {}
    for result in results:
        by_function: dict[str, list[Row]] = {}
        for row in result.rows:
            by_function.setdefault(_matrix_name(row), []).append(row)
        for function, rows in by_function.items():
            cells[(function, result.target)] = _cell(rows)
    return functions, [result.target for result in results], cells


MATRIX_COLUMNS = 12  # more submissions than this: per-function counts instead (the CSV has the matrix)


def format_class(results: list) -> str:
    """
    One summary line per submission, then the function-by-submission matrix.

    A matrix wider than MATRIX_COLUMNS submissions would not fit a terminal: then each
    function gets the count of submissions per status instead (``--csv`` writes the matrix).
    """
    results = [as_result(item) for item in results]
    lines = [summary_line(result) for result in results]
    functions, targets, cells = class_matrix(results)
    width = max([len("function")] + [len(f) for f in functions])
    if len(targets) > MATRIX_COLUMNS:
        kinds = ["pass", "FAIL", "todo", "n/c", "skip", ""]
        header = "function".ljust(width) + "  " + " ".join((k or "absent").rjust(6) for k in kinds)
        table = [header, "-" * len(header)]
        for function in functions:
            column = [cells.get((function, t), "") for t in targets]
            table.append(function.ljust(width) + "  " + " ".join(str(column.count(k)).rjust(6) for k in kinds))
        key = "submissions per status: pass = all rows pass, FAIL = wrong, todo = not implemented, n/c = not checked"
        return "\n".join(lines + ["", *table, "", key]) + "\n"
    names = [f"[{i + 1}]" for i in range(len(targets))]
    header = "function".ljust(width) + "  " + " ".join(n.rjust(5) for n in names)
    matrix = [header, "-" * len(header)]
    for function in functions:
        matrix.append(function.ljust(width) + "  " + " ".join(cells.get((function, t), "").rjust(5) for t in targets))
    legend = "  ".join(f"{n} {t}" for n, t in zip(names, targets))
    key = "pass = all rows pass, FAIL = wrong, todo = not implemented, n/c = not checked, skip = not asked"
    return "\n".join(lines + ["", *matrix, "", legend, key]) + "\n"


def results_as_csv(results: list) -> str:
    """The matrix as CSV: one line per submission, one column per function, plus the counts."""
    results = [as_result(item) for item in results]
    functions, targets, cells = class_matrix(results)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    counts = ["passed", "failed", "not implemented", "not checked"]
    writer.writerow(["submission", *counts, *functions])
    for result in results:
        c = result.counts()
        writer.writerow([result.target, c[PASS], c[FAIL], c[NOT_IMPLEMENTED], c[NOT_CHECKED],
                         *[cells.get((f, result.target), "") for f in functions]])
    return buffer.getvalue()
