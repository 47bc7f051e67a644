"""What went wrong, in words a student can act on.

Two halves: comparing a user output with autocnn's (``compare``: the error, a hard
problem such as a wrong shape, and hints that fit the numbers: a constant factor, a
transpose, a region of the array), and describing an exception raised by user code
(``describe_exception``: the student's file and line, and what Python 3 / NumPy 2 changed
when that is the cause).
"""

from __future__ import annotations

import ast
import itertools
import math
import re
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

import numpy as np

from autocnn.tools.gradcheck import rel_error

if TYPE_CHECKING:
    from autocnn.tools.check.cases import Case


def _mismatch_mask(user: np.ndarray, expected: np.ndarray, tol: float) -> np.ndarray:
    """Elementwise form of the rel_error criterion: where the two arrays disagree."""
    scale = np.maximum(1e-8, np.abs(user) + np.abs(expected))
    return ~(np.abs(user - expected) / scale <= tol)


def _named_factors(context: dict) -> list[tuple[float, str]]:
    """Constant factors a student plausibly gets wrong, with what each one suggests."""
    named = [(-1.0, "sign flipped")]
    n = context.get("N")
    if n and n > 1:
        named += [(float(n), "off by a constant factor: user = N x expected (a missing 1/N?)"),
                  (1.0 / n, "off by a constant factor: user = expected / N (1/N applied twice?)")]
    p = context.get("p")
    if p and p != 1:
        named += [(p * p, "off by a constant factor: user = p^2 x expected (multiplied by p, not divided?)"),
                  (1.0 / p, "off by a constant factor: user = expected / p (divided by p twice?)"),
                  (p, "off by a constant factor: user = p x expected (missing the 1/p?)")]
    named += [(2.0, "off by a constant factor: user = 2 x expected"),
              (0.5, "off by a constant factor: user = expected / 2 (a missing factor 2?)")]
    return named


def _factor_hints(user: np.ndarray, expected: np.ndarray, tol: float, context: dict) -> list[str]:
    """Hints when user == r * expected for one constant r (fitted by least squares)."""
    energy = float(np.vdot(expected, expected))
    if energy == 0.0:
        return []
    ratio = float(np.vdot(user, expected)) / energy
    if rel_error(user, ratio * expected) > tol:
        return []
    if abs(ratio) < 1e-12:
        return ["all zeros"]
    hints = [text for value, text in _named_factors(context) if abs(ratio - value) <= 1e-6 * abs(value)]
    if not hints and user.size > 1:  # any two scalars are a "factor" apart: say nothing
        hints.append(f"off by a constant factor: user = {ratio:.4g} x expected")
    return hints


def _permutation_hint(user: np.ndarray, expected: np.ndarray, tol: float) -> str:
    """'transposed' / 'axes permuted' when reordering user's axes gives expected, else ''."""
    if user.ndim != expected.ndim or user.ndim < 2 or user.ndim > 5:
        return ""
    for perm in itertools.permutations(range(user.ndim)):
        if perm == tuple(range(user.ndim)):
            continue
        moved = np.transpose(user, perm)
        if moved.shape == expected.shape and rel_error(moved, expected) <= tol:
            return "transposed" if user.ndim == 2 else f"axes permuted (np.transpose(user, {perm}) matches)"
    return ""


def _offset_hints(user, expected, offsets: list, tol: float) -> list[str]:
    """Hints when user - expected == k * array for one of the case's known offsets."""
    hints = []
    difference = np.asarray(user, dtype=np.float64) - expected
    for array, describe in offsets:
        array = np.asarray(array, dtype=np.float64)
        energy = float(np.vdot(array, array))
        if energy == 0.0:
            continue
        k = float(np.vdot(difference, array)) / energy
        if abs(k) > 1e-9 and rel_error(user, expected + k * array) <= tol:
            hints.append(describe(k))
    return hints


def compare(user: Any, expected: Any, tol: float, case: "Case", output: str) -> tuple[float | None, str, tuple[str, ...]]:
    """
    Compare one user output with autocnn's.

    Inputs:
    - user: What the user's code returned for this output
    - expected: autocnn's value (array or scalar)
    - tol: Largest acceptable rel_error
    - case: The case (for factor names, regions and offsets)
    - output: Name of the output ('dx', 'loss', 'grad W1', ...)

    Returns a tuple of:
    - error: Worst relative error, or None when the two cannot be compared
    - problem: Text of a hard failure (type, shape, NaN), '' otherwise
    - hints: Diagnoses that fit the numbers when error > tol
    """
    if user is None:
        return None, "returned None", ()
    if not isinstance(user, (np.ndarray, np.generic, float, int)) or isinstance(user, bool):
        return None, f"wrong type: returned {type(user).__name__}, expected a numpy array", ()
    u = np.asarray(user)
    if not np.issubdtype(u.dtype, np.number):
        return None, f"wrong type: returned an array of dtype {u.dtype}", ()
    a = np.asarray(expected, dtype=np.float64)
    if u.shape != a.shape:
        if u.ndim == 0 or a.ndim == 0:
            if u.size == a.size == 1:  # a (1,)-shaped loss is still the loss
                u, a = u.reshape(()), a.reshape(())
            else:
                return None, f"wrong shape {u.shape}, expected {a.shape}", ()
        else:
            moved = _permutation_hint(u.astype(np.float64), a, tol)
            if moved:
                return None, f"{moved}: shape {u.shape}, expected {a.shape}", ()
            if u.size == a.size and rel_error(u.reshape(a.shape), a) <= tol:
                return None, f"wrong shape {u.shape}, expected {a.shape} (values right after a reshape)", ()
            return None, f"wrong shape {u.shape}, expected {a.shape}", ()
    u = u.astype(np.float64)
    if not np.all(np.isfinite(u)):
        return math.inf, "contains NaN or inf (overflow? a missing max shift?)", ()
    error = rel_error(u, a)
    if error <= tol:
        return error, "", ()
    hints: list[str] = []
    hints += _offset_hints(u, a, case.offsets.get(output, []), tol)
    hints += _factor_hints(u, a, tol, case.context)
    if u.ndim == 2 and u.shape[0] == u.shape[1] and rel_error(u.T, a) <= tol:
        hints.append("transposed")
    if u.ndim > 0:
        mismatch = _mismatch_mask(u, a, tol)
        for description, mask in case.regions.get(output, {}).items():
            if mismatch.any() and not (mismatch & ~mask).any():
                hints.append(f"wrong only {description}")
    if np.asarray(user).dtype != np.float64:
        hints.append(f"returned {np.asarray(user).dtype} for float64 inputs")
    return error, "", tuple(hints)


# ------------------------------------------------------------------ exceptions

#: Names NumPy removed, with what to write instead.
NUMPY_REMOVED = {
    "product": ("NumPy 2", "np.prod"), "cumproduct": ("NumPy 2", "np.cumprod"), "alltrue": ("NumPy 2", "np.all"),
    "sometrue": ("NumPy 2", "np.any"), "asscalar": ("NumPy 2", "a.item()"), "NaN": ("NumPy 2", "np.nan"),
    "NAN": ("NumPy 2", "np.nan"), "Inf": ("NumPy 2", "np.inf"), "Infinity": ("NumPy 2", "np.inf"),
    "infty": ("NumPy 2", "np.inf"), "PINF": ("NumPy 2", "np.inf"), "NINF": ("NumPy 2", "-np.inf"),
    "float_": ("NumPy 2", "np.float64"), "complex_": ("NumPy 2", "np.complex128"), "round_": ("NumPy 2", "np.round"),
    "rank": ("NumPy 2", "np.ndim"), "msort": ("NumPy 2", "np.sort(a, axis=0)"), "string_": ("NumPy 2", "np.bytes_"),
    "unicode_": ("NumPy 2", "np.str_"),
    "float": ("NumPy 1.24", "float"), "int": ("NumPy 1.24", "int"), "bool": ("NumPy 1.24", "bool"),
    "object": ("NumPy 1.24", "object"), "complex": ("NumPy 1.24", "complex"), "str": ("NumPy 1.24", "str"),
    "long": ("NumPy 1.24", "int"), "unicode": ("NumPy 1.24", "str"),
}
PYTHON2_NAMES = {"xrange": "range", "raw_input": "input", "unicode": "str", "long": "int", "basestring": "str",
                 "reduce": "functools.reduce", "cPickle": "pickle", "iteritems": "items", "itervalues": "values",
                 "iterkeys": "keys", "has_key": "the in operator"}
_INTEGER_MESSAGES = ("cannot be interpreted as an integer", "integral type", "slice indices must be integers",
                     "only integers, slices", "must be int", "integer argument expected", "got float",
                     "object is not iterable", "must be an integer", "'float' object cannot be interpreted")


def student_frame(tb: traceback.StackSummary, files: dict[str, str]) -> traceback.FrameSummary | None:
    """The innermost frame of the traceback that runs in one of the student's files."""
    for frame in reversed(tb):
        if frame.filename in files:
            return frame
    return None


def _where(frame: traceback.FrameSummary | None, files: dict[str, str]) -> str:
    return f"{files[frame.filename]}:{frame.lineno}" if frame is not None else ""


def _true_division_line(frames: Iterable[traceback.FrameSummary], files: dict[str, str]) -> str:
    """'layers.py:41: H_out = 1 + (H - HH) / stride' for the first `/` in the failing student function."""
    for frame in frames:
        try:
            tree = ast.parse(Path(frame.filename).read_text(errors="replace"))
        except (OSError, SyntaxError, ValueError):
            continue
        enclosing = [node for node in ast.walk(tree) if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
                     and node.lineno <= frame.lineno <= (node.end_lineno or node.lineno)]
        scope = min(enclosing, key=lambda node: (node.end_lineno or 0) - node.lineno) if enclosing else tree
        divisions = sorted({node.lineno for node in ast.walk(scope)
                            if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div)
                            or isinstance(node, ast.AugAssign) and isinstance(node.op, ast.Div)})
        if divisions:
            lines = Path(frame.filename).read_text(errors="replace").splitlines()
            line = divisions[0]
            return f"{files[frame.filename]}:{line}: {lines[line - 1].strip()[:80]}"
    return ""


def describe_exception(error: BaseException, files: dict[str, str] | None = None) -> str:
    """
    One line for an exception raised by user code.

    Inputs:
    - error: The exception (with its __traceback__)
    - files: Absolute path -> label ('nndl/layers.py') of the student's files; the
      innermost frame in one of them is named as 'at layers.py:33'

    Returns:
    - text: 'raised IndexError: ... (at nndl/layers.py:33)', or a Python 2 / NumPy 2
      explanation when that is the cause
    """
    files = files or {}
    tb = traceback.extract_tb(error.__traceback__) if error.__traceback__ else traceback.StackSummary()
    frame = student_frame(tb, files)
    where = _where(frame, files)
    at = f" (at {where})" if where else ""
    message = str(error).strip().splitlines()[0] if str(error).strip() else ""
    if isinstance(error, AttributeError):
        match = re.search(r"module 'numpy' has no attribute '(\w+)'|`np\.(\w+)` was removed", str(error))
        name = match and (match.group(1) or match.group(2))
        if name in NUMPY_REMOVED:
            release, instead = NUMPY_REMOVED[name]
            return f"np.{name}: removed in {release}, use {instead}" + at
        match = re.search(r"has no attribute '(\w+)'", str(error))
        if match and match.group(1) in PYTHON2_NAMES:
            return f".{match.group(1)}() is Python 2: use .{PYTHON2_NAMES[match.group(1)]}(){at}"
    if isinstance(error, EOFError) and "reading a line" in message:
        return f"waits for keyboard input (input(){' at ' + where if where else ''}): the checker types nothing"
    if isinstance(error, NameError):
        match = re.search(r"name '(\w+)' is not defined", str(error))
        if match and match.group(1) in PYTHON2_NAMES:
            return f"{match.group(1)} is Python 2: use {PYTHON2_NAMES[match.group(1)]}{at}"
    if isinstance(error, (TypeError, IndexError, ValueError)) and any(text in str(error) for text in _INTEGER_MESSAGES):
        student_frames = [f for f in reversed(tb) if f.filename in files]
        division = _true_division_line(student_frames, files)
        if division:
            return f"raised {type(error).__name__}: {message[:80]}: a size computed with / is a float in " \
                   f"Python 3: use // ({division})"
    return f"raised {type(error).__name__}" + (f": {message[:160]}" if message else "") + at


def describe_syntax_error(error: SyntaxError, label: str) -> str:
    """'Python 2 syntax (print statement) at layers.py:33: the checker runs Python 3', or the plain error."""
    where = f"{label}:{error.lineno}"
    text = (error.msg or "").lower()
    line = (error.text or "").strip()
    if "missing parentheses in call to 'print'" in text or re.match(r"print\s+[^(=\s]", line):
        return f"Python 2 syntax (print statement) at {where}: the checker runs Python 3"
    if "missing parentheses in call to 'exec'" in text:
        return f"Python 2 syntax (exec statement) at {where}: the checker runs Python 3"
    if isinstance(error, TabError) or "inconsistent use of tabs" in text:
        return f"tabs and spaces mixed at {where} (Python 2 allowed it): the checker runs Python 3"
    if re.search(r"except\s+\w+(\.\w+)*\s*,\s*\w+\s*:", line):
        return f"Python 2 syntax (except X, e) at {where}: the checker runs Python 3"
    if re.search(r"\braise\s+\w+\s*,", line):
        return f"Python 2 syntax (raise X, message) at {where}: the checker runs Python 3"
    if re.search(r"\b0\d+\b", line) and "leading zeros" in text:
        return f"Python 2 syntax (octal literal) at {where}: the checker runs Python 3"
    return f"syntax error at {where}: {error.msg}"
