"""``autocnn.check`` in a notebook: the checker's rows as an object Jupyter can display.

``check(target)`` runs ``autocnn.tools.check.check_target`` and wraps its rows in a
``CheckReport``: in Jupyter an HTML table (PASS / FAIL / SKIP coloured, the diagnoses,
the convention notes), in a terminal the CLI's text table, and as data ``.rows``,
``.passed`` and ``to_dict()`` (plain JSON types, no pandas).

For a failing gradient of a layer with spatial axes (conv, max pool, spatial batchnorm)
the report also shows *where* it is wrong: the worst case is run once more, the user's
gradient and autocnn's exact one are compared, and |yours - exact| is drawn over the
spatial axes (maximum over examples and channels). A padding bug shows up as a bright
border, a pool whose overlapping windows overwrite each other as a grid. When a row
carries the arrays itself (a ``difference`` attribute), they are used instead.

``check_all(targets)`` checks a whole class, one target after another, with a progress
bar (tqdm; a text bar in a terminal, a widget in Jupyter).
"""

from __future__ import annotations

import base64
import copy
import html
import io
import math
from typing import Any, Iterable, Sequence

import numpy as np

from autocnn.tools import check as checker

STATUS_COLOURS = {"PASS": "#1a7f37", "FAIL": "#cf222e", "SKIP": "#6e7781"}
OTHER_STATUS_COLOUR = "#9a6700"  # any status the checker adds later (e.g. 'not checked')
# Row attributes that hold a convention the checker judged the code by ("p = drop probability").
NOTE_FIELDS = ("convention", "conventions", "note", "notes")
MAX_PICTURES = 6  # failing gradients drawn per report; the rest are in the table only


# ---------------------------------------------------------------- where it is wrong

def _spec_for(function: str):
    """The checker's LayerSpec whose backward (or forward) is `function`, or None."""
    for spec in getattr(checker, "LAYER_SPECS", ()):
        if function in getattr(spec, "backwards", ()) and not getattr(spec, "is_loss", False):
            return spec
    return None


def _case_seed(seed: int, spec) -> int:
    """The seed the checker draws this spec's cases with."""
    from autocnn.tools.check.runner import spec_seed

    return spec_seed(seed, spec.name)


def _student_functions(target: str) -> dict:
    """The functions the student's files define, imported as the checker imports them (call in a worker)."""
    from autocnn.tools.check.loading import import_plan, plan_target, student_objects

    plan = plan_target(target)
    return student_objects(plan, import_plan(plan))[0]


def _difference_job(spec, target: str, function: str, output: str, case_label: str, seed: int):
    """A job for run_isolated: send |user - exact| of one gradient on the named case."""
    import autocnn.core.layer_utils
    import autocnn.core.layers

    mine = autocnn.core.layers if spec.source == "layers" else autocnn.core.layer_utils

    def job(send) -> None:
        user = _student_functions(target)
        if spec.forward not in user or function not in user:
            return
        cases = spec.make_cases(np.random.RandomState(_case_seed(seed, spec)))
        case = next((c for c in cases if c.label == case_label), cases[0] if cases else None)
        if case is None:
            return
        out, expected_cache = getattr(mine, spec.forward)(*copy.deepcopy(case.args))
        # Any upstream derivative shows the same places as the checker's own draw.
        dout = np.random.RandomState(seed).randn(*np.shape(out))
        expected = checker.as_gradient_tuple(getattr(mine, spec.backwards[0])(dout.copy(), expected_cache),
                                             len(spec.grads))
        send(("call", spec.forward, case.label, (output,)))
        _, cache = user[spec.forward](*copy.deepcopy(case.args))
        got = checker.as_gradient_tuple(user[function](dout.copy(), cache), len(spec.grads))
        send(("returned", spec.forward))
        if isinstance(got, str):
            return
        index = list(spec.grads).index(output)
        yours = np.asarray(got[index], dtype=np.float64)
        exact = np.asarray(expected[index], dtype=np.float64)
        if yours.shape == exact.shape:
            send(("difference", case.label, np.abs(yours - exact)))

    return job


def worst_case_difference(target: str, row: Any, seed: int = 0,
                          timeout: float = checker.DEFAULT_TIMEOUT) -> tuple[str, np.ndarray] | None:
    """
    |yours - exact| of a failing gradient on its worst case, over the spatial axes.

    The case is drawn again from the checker's seed and the user's forward and backward
    run in a forked worker (as the checker runs them), so a hang or a crash here only
    means no picture.

    Inputs:
    - target: What was checked (file, folder or module name)
    - row: A row of check_target(target) with a gradient output ('dx', 'dw', ...)
    - seed: The seed the rows were made with
    - timeout: Seconds the user's code may take

    Returns:
    - (case label, image of shape (H, W)): the maximum of |yours - exact| over the
      leading (example, channel) axes; None when the gradient is not 4-d or the
      re-run gave nothing
    """
    difference = getattr(row, "difference", None)
    if difference is not None:  # the checker kept the arrays itself
        array = np.abs(np.asarray(difference, dtype=np.float64))
        return (getattr(row, "worst_case", ""), _spatial(array)) if array.ndim == 4 else None
    spec = _spec_for(row.function)
    if spec is None or row.output not in getattr(spec, "grads", ()):
        return None
    events, _ = checker.run_isolated(
        _difference_job(spec, target, row.function, row.output, getattr(row, "worst_case", ""), seed), timeout,
        max(timeout, getattr(checker, "BETWEEN_CALLS_TIMEOUT", timeout)))
    for event in events:
        if event[0] == "difference" and np.ndim(event[2]) == 4:  # (N, C, H, W): images or filters
            return event[1], _spatial(event[2])
    return None


def _spatial(array: np.ndarray) -> np.ndarray:
    """Maximum over every axis but the last two."""
    return array.reshape(-1, *array.shape[-2:]).max(axis=0)


def difference_png(image: np.ndarray, title: str = "") -> bytes:
    """
    A small PNG of an (H, W) image of absolute differences, darker = more wrong.

    Inputs:
    - image: Array of shape (H, W)
    - title: Text above the image

    Returns:
    - The PNG file's bytes
    """
    from matplotlib.figure import Figure

    figure = Figure(figsize=(2.4, 2.4))
    axes = figure.subplots()
    shown = axes.imshow(image, cmap="magma_r", interpolation="nearest", vmin=0.0)
    axes.set_xticks(range(image.shape[1]))
    axes.set_yticks(range(image.shape[0]))
    axes.tick_params(labelsize=5, length=0)
    axes.set_title(title, fontsize=7)
    figure.colorbar(shown, ax=axes, fraction=0.046, pad=0.04).ax.tick_params(labelsize=5)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110)
    return buffer.getvalue()


# ----------------------------------------------------------------------- reports

def _row_notes(row: Any) -> list[str]:
    notes = []
    for name in NOTE_FIELDS:
        value = getattr(row, name, None)
        if isinstance(value, str) and value:
            notes.append(value)
        elif isinstance(value, (list, tuple)):
            notes += [str(item) for item in value if item]
    return notes


class CheckReport:
    """
    What ``autocnn check`` found in one target.

    - target: What was checked
    - rows: The checker's rows (function, output, error, tolerance, status, diagnosis, ...)
    - notes: Convention notes (the conventions the code was judged by), in order, once each
    - pictures: (function, output, case label, (H, W) image of |yours - exact|) per
      failing spatial gradient
    """

    def __init__(self, target: str, rows: Sequence[Any], notes: Iterable[str] = (),
                 pictures: Sequence[tuple[str, str, str, np.ndarray]] = ()) -> None:
        self.target = target
        self.rows = list(rows)
        found = list(notes) + [note for row in self.rows for note in _row_notes(row)]
        self.notes = list(dict.fromkeys(found))
        self.pictures = list(pictures)

    @property
    def passed(self) -> bool:
        """True when no row failed (SKIP does not count against the target)."""
        return not any(row.failed for row in self.rows)

    @property
    def failures(self) -> list[Any]:
        return [row for row in self.rows if row.failed]

    def counts(self) -> dict[str, int]:
        """Number of rows per status."""
        counts: dict[str, int] = {}
        for row in self.rows:
            counts[row.status] = counts.get(row.status, 0) + 1
        return counts

    def to_dict(self) -> dict[str, Any]:
        """
        The report as plain JSON types: the entry ``autocnn check --json`` prints for this
        target (target, passed, rows), plus notes and, per picture, its location of the
        largest difference.
        """
        entry = checker.results_as_json([(self.target, self.rows)])["targets"][0]
        entry["notes"] = list(self.notes)
        entry["pictures"] = [{"function": function, "output": output, "case": case,
                              "max_abs_difference": float(np.max(image)),
                              "argmax": [int(i) for i in np.unravel_index(np.argmax(image), image.shape)]}
                             for function, output, case, image in self.pictures]
        return entry

    def __str__(self) -> str:
        text = checker.format_results([(self.target, self.rows)])
        if self.notes:
            text += "\n" + "\n".join(f"note: {note}" for note in self.notes) + "\n"
        return text

    def __repr__(self) -> str:
        return str(self)

    def _repr_html_(self) -> str:
        counts = self.counts()
        summary = ", ".join(f"{count} {status}" for status, count in counts.items())
        verdict = ("<b style='color:{0}'>passed</b>".format(STATUS_COLOURS["PASS"]) if self.passed
                   else "<b style='color:{0}'>failed</b>".format(STATUS_COLOURS["FAIL"]))
        parts = [f"<div><p><code>autocnn check {html.escape(self.target)}</code>: {verdict} "
                 f"({len(self.rows)} checks: {html.escape(summary)}; tolerance: rel. error against autograd, "
                 f"float64)</p>",
                 "<table><thead><tr>" + "".join(f"<th style='text-align:left'>{h}</th>" for h in
                                                ("function", "output", "worst rel. error", "tolerance", "status",
                                                 "diagnosis")) + "</tr></thead><tbody>"]
        for row in self.rows:
            colour = STATUS_COLOURS.get(row.status, OTHER_STATUS_COLOUR)
            error = "-" if row.error is None else ("inf" if not math.isfinite(row.error) else f"{row.error:.2e}")
            tolerance = f"{row.tolerance:.0e}" if row.tolerance else "-"
            diagnosis = html.escape(row.diagnosis or "")
            case = getattr(row, "worst_case", "")
            if row.failed and case and case not in (row.diagnosis or ""):
                diagnosis += f"<br><small>worst case: {html.escape(case)}</small>"
            parts.append(f"<tr><td><code>{html.escape(row.function)}</code></td><td>{html.escape(row.output)}</td>"
                         f"<td>{error}</td><td>{tolerance}</td>"
                         f"<td style='background:{colour};color:white;font-weight:bold;text-align:center'>"
                         f"{html.escape(row.status)}</td><td style='text-align:left'>{diagnosis}</td></tr>")
        parts.append("</tbody></table>")
        if self.notes:
            parts.append("<p><b>Conventions</b></p><ul>" +
                         "".join(f"<li>{html.escape(note)}</li>" for note in self.notes) + "</ul>")
        if self.pictures:
            parts.append("<p><b>Where the failing gradients are wrong</b>: |yours &minus; exact| on the worst case, "
                         "largest over examples and channels (rows = height, columns = width)</p><div>")
            for function, output, case, image in self.pictures:
                png = base64.b64encode(difference_png(image, f"{function} {output}")).decode("ascii")
                parts.append(f"<figure style='display:inline-block;margin:4px'><img src='data:image/png;base64,"
                             f"{png}'/><figcaption style='font-size:small;max-width:260px'>{html.escape(case)}"
                             f"</figcaption></figure>")
            parts.append("</div>")
        parts.append("</div>")
        return "\n".join(parts)


def check(target: str = checker.DEFAULT_TARGET, timeout: float = checker.DEFAULT_TIMEOUT, seed: int = 0,
          pictures: bool = True) -> CheckReport:
    """
    Check a student's notebook code against autograd and return a displayable report.

    Inputs:
    - target: A .py file, a folder of them (e.g. '../nndl') or an importable module name
    - timeout: Seconds any single call of the user's code may take
    - seed: Seed of the random inputs
    - pictures: Draw |yours - exact| for failing spatial gradients (re-runs their worst case)

    Returns:
    - CheckReport: displays as an HTML table in Jupyter and as the CLI's table in a terminal
    """
    if not isinstance(target, str):
        raise TypeError(f"target must be a path or module name (str), got {type(target).__name__}; "
                        f"for several targets use check_all")
    rows = checker.check_target(target, timeout, seed)
    drawn = []
    if pictures:
        for row in rows:
            if len(drawn) >= MAX_PICTURES:
                break
            if not row.failed or (_spec_for(row.function) is None and getattr(row, "difference", None) is None):
                continue
            found = worst_case_difference(target, row, seed, timeout)
            if found is not None:
                drawn.append((row.function, row.output, found[0], found[1]))
    return CheckReport(target, rows, pictures=drawn)


class ClassReport:
    """Reports of several targets (a whole class); ``.reports`` holds one CheckReport each."""

    def __init__(self, reports: Sequence[CheckReport]) -> None:
        self.reports = list(reports)

    @property
    def passed(self) -> bool:
        return all(report.passed for report in self.reports)

    def to_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, "targets": [report.to_dict() for report in self.reports]}

    def __str__(self) -> str:
        return "\n".join(str(report) for report in self.reports)

    def __repr__(self) -> str:
        return str(self)

    def _repr_html_(self) -> str:
        lines = ["<table><thead><tr><th style='text-align:left'>target</th><th>checks</th><th>failed</th>"
                 "<th>status</th></tr></thead><tbody>"]
        for report in self.reports:
            status = "PASS" if report.passed else "FAIL"
            lines.append(f"<tr><td style='text-align:left'><code>{html.escape(report.target)}</code></td>"
                         f"<td>{len(report.rows)}</td><td>{len(report.failures)}</td>"
                         f"<td style='background:{STATUS_COLOURS[status]};color:white;font-weight:bold'>{status}"
                         f"</td></tr>")
        lines.append("</tbody></table>")
        return "\n".join(lines) + "\n" + "\n".join(
            f"<details><summary>{html.escape(r.target)}</summary>{r._repr_html_()}</details>" for r in self.reports)


def check_all(targets: Sequence[str], timeout: float = checker.DEFAULT_TIMEOUT, seed: int = 0,
              pictures: bool = False, progress: bool = True) -> ClassReport:
    """
    Check several targets (e.g. every student's folder), with a progress bar.

    Inputs:
    - targets: Paths or module names, as for check
    - timeout, seed, pictures: As for check
    - progress: Show a tqdm bar (terminal or Jupyter)

    Returns:
    - ClassReport with one CheckReport per target, in order
    """
    from tqdm.auto import tqdm

    targets = list(targets)
    reports = []
    with tqdm(targets, desc="autocnn check", unit="target", disable=not progress) as bar:
        for target in bar:
            bar.set_postfix_str(str(target)[-40:])
            reports.append(check(target, timeout, seed, pictures))
    return ClassReport(reports)

