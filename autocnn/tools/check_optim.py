"""Check a student's ``optim.py`` (the notebook's update rules) against ``autocnn.training.optim``.

Each of ``sgd``, ``sgd_momentum``, ``rmsprop`` and ``adam`` that the student's module defines
is run for several steps on random float64 weights and gradients, with hyperparameters set
away from the defaults (so a rule that ignores its config shows) and the config it returns fed
back in, as the Solver does. Its ``next_w`` and its state in config (``velocity``, ``cache``,
``m``, ``v``, ``t``; the nndl convention's ``a`` too) are compared step by step with autocnn's
rule on the same inputs, and one more call with ``config=None`` checks the student's defaults.

A wrong output is diagnosed by testing hypotheses: the usual mistakes (no bias correction, t
incremented after use, epsilon inside the square root, momentum's sign or order, RMSProp's
decay on the wrong term, state not stored back in config, ...) are simulated here, alone and
in pairs, and the ones that reproduce the student's numbers are named. A few forms that differ
from autocnn's but are correct (Adam with the paper's "efficient" epsilon) are accepted and
named.

The student's code runs in this process, on copies of the inputs: the caller isolates it (a
worker process with a time limit) when the code is untrusted.

Library API: ``check_optim(target) -> list[OptimRow]`` and ``format_rows(rows) -> str``.
"""

from __future__ import annotations

import contextlib
import copy
import io
import itertools
import os
import traceback
import types
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from autocnn.training import optim

PASS, FAIL, NOT_IMPLEMENTED, ERROR = "PASS", "FAIL", "NOT IMPLEMENTED", "ERROR"
#: A file that needs a module which is not installed (not the student's bug): nothing was judged.
NOT_CHECKED = "NOT CHECKED"
RULES: tuple[str, ...] = ("sgd", "sgd_momentum", "rmsprop", "adam")
#: Largest error (of each output relative to its own scale) still counted as agreement. Two
#: correct float64 implementations agree to ~1e-15; each mistake named here is off by more than
#: 1e-2 (smallest over 20 draws of the inputs: 2.1e-2, Adam ignoring config['epsilon']).
TOLERANCE = 1e-8
STEPS = 6
SHAPE = (4, 6)
#: The hyperparameters of the checked steps: none equal to a default, so ignoring one shows.
#: epsilon is near sqrt(v) for the smallest gradients drawn, so where it goes matters.
HYPERPARAMETERS: dict[str, dict[str, float]] = {
    "sgd": {"learning_rate": 0.037},
    "sgd_momentum": {"learning_rate": 0.037, "momentum": 0.73},
    "rmsprop": {"learning_rate": 0.021, "decay_rate": 0.93, "epsilon": 1e-7},
    "adam": {"learning_rate": 0.013, "beta1": 0.83, "beta2": 0.97, "epsilon": 1e-7},
}
#: The state each rule keeps in config, by autocnn's (CS231n's) names.
STATE_KEYS: dict[str, tuple[str, ...]] = {
    "sgd": (), "sgd_momentum": ("velocity",), "rmsprop": ("cache",), "adam": ("m", "v", "t"),
}
#: Other courses' names for the same state (nndl, UCLA C147/C247: RMSProp's cache is 'a',
#: Adam's first moment 'v' and second 'a'), tried when the student's config lacks autocnn's.
OTHER_CONVENTIONS: dict[str, list[tuple[str, dict[str, str]]]] = {
    "rmsprop": [("nndl convention: config['a'] is the cache", {"cache": "a"})],
    "adam": [("nndl convention: config['v'] is the first moment, config['a'] the second",
              {"m": "v", "v": "a", "t": "t"})],
}
#: Other names students give the hyperparameters in config; a rule reading one of these
#: instead of autocnn's name ignores the value the Solver passes under autocnn's.
ALIASES: dict[str, tuple[str, ...]] = {"epsilon": ("eps",), "learning_rate": ("lr",), "momentum": ("mu",),
                                       "decay_rate": ("decay", "rho")}
# Names numpy 2 removed, which older submissions use: a hint for the AttributeError.
_NUMPY2_REMOVED = {"float": "float", "int": "int", "bool": "bool", "object": "object", "complex": "complex",
                   "str": "str", "product": "np.prod", "cumproduct": "np.cumprod", "alltrue": "np.all",
                   "sometrue": "np.any", "asscalar": "a.item()", "NaN": "np.nan", "Inf": "np.inf"}


@dataclass
class OptimRow:
    """One line of the table: one output of one update rule, over all its steps."""

    function: str
    output: str
    status: str
    diagnosis: str = ""
    error: float | None = None


# ------------------------------------------------------------------ loading the student's module

def find_optim(path: str | os.PathLike) -> Path:
    """The optim.py a target names: the file itself, or the shallowest optim.py under a folder."""
    path = Path(path)
    if path.is_dir():
        found = sorted((p for p in path.rglob("optim.py") if "__pycache__" not in p.parts),
                       key=lambda p: (len(p.parts), str(p)))
        if not found:
            raise ValueError(f"no optim.py under {path}")
        path = found[0]
    if not path.is_file():
        raise ValueError(f"optim.py target {path} is not a file")
    return path


def load_optim(path: str | os.PathLike) -> types.ModuleType:
    """
    Load a student's optim.py without importing it as a package module or writing bytecode.

    Inputs:
    - path: The file, or a folder holding an optim.py (see find_optim)

    Returns:
    - module: A fresh module object (not in sys.modules); its functions' __module__ is its name
    """
    path = find_optim(path)
    module = types.ModuleType(f"student_optim_{abs(hash(str(path.resolve())))}")
    module.__file__ = str(path)
    code = compile(path.read_text(encoding="utf-8", errors="replace"), str(path), "exec")
    with _quiet():
        exec(code, module.__dict__)  # noqa: S102 - running the student's file is the point
    return module


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Swallow what the student's code prints, so that the checker's own output stays readable."""
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        yield


def _where(error: BaseException, filename: str | None) -> str:
    """'optim.py:42 in adam': the student's innermost frame of an exception (else the innermost)."""
    frames = traceback.extract_tb(error.__traceback__)
    mine = [f for f in frames if filename and os.path.abspath(f.filename) == os.path.abspath(filename)]
    frame = (mine or frames or [None])[-1]
    if frame is None:
        return ""
    return f" at {os.path.basename(frame.filename)}:{frame.lineno} in {frame.name}"


def _describe_exception(error: BaseException, filename: str | None) -> str:
    message = (str(error).splitlines() or [""])[0].rstrip(".")  # numpy's removal messages run on for lines
    text = f"raises {type(error).__name__}: {message}{_where(error, filename)}"
    if isinstance(error, AttributeError) and "module 'numpy' has no attribute" in message:
        name = message.rsplit("'", 2)[-2]
        if name in _NUMPY2_REMOVED:
            text += f" (np.{name} was removed in NumPy 2, use {_NUMPY2_REMOVED[name]})"
    return text


def _load_failure(error: BaseException, path: str) -> str:
    if isinstance(error, SyntaxError):
        where = f"{os.path.basename(error.filename or path)}:{error.lineno}"
        if "print" in str(error.msg) and "parentheses" in str(error.msg):
            return f"Python 2 syntax (print statement) at {where}: the checker runs Python 3"
        return f"SyntaxError at {where}: {error.msg}"
    return f"cannot be imported: {_describe_exception(error, path)}"


# ------------------------------------------------------------------ comparing numbers

def _error(user: Any, expected: Any) -> float:
    """max |user - expected| over the finite entries, relative to max |expected|; inf if the
    shapes differ or the entries that are not finite are not the same ones."""
    try:
        user = np.asarray(user, dtype=np.float64)
    except (TypeError, ValueError):  # a student's state that is not numbers at all
        return float("inf")
    expected = np.asarray(expected, dtype=np.float64)
    if user.shape != expected.shape:
        return float("inf")
    finite = np.isfinite(expected)
    if not np.array_equal(np.isfinite(user), finite):
        return float("inf")
    if not finite.any():
        return 0.0
    difference = float(np.max(np.abs(user[finite] - expected[finite])))
    scale = float(np.max(np.abs(expected[finite])))
    if scale == 0.0:
        return 0.0 if difference == 0.0 else float("inf")
    with np.errstate(over="ignore"):
        return float(np.float64(difference) / scale)


@dataclass
class Trajectory:
    """What a rule did over the steps: each step's move next_w - w and state, by autocnn's names.

    A state absent from the student's config is recorded as its initial value (zeros, t = 0)
    and its name kept in `missing`.
    """

    moves: list[np.ndarray]
    states: list[dict[str, Any]]
    missing: set[str]


def _errors(user: Trajectory, expected: Trajectory, keys: tuple[str, ...]) -> dict[str, tuple[float, int]]:
    """output -> (largest error over the steps, first step (1-based) above TOLERANCE or 0)."""
    result = {}
    outputs = [("next_w", [m for m in user.moves], [m for m in expected.moves])]
    outputs += [(key, [s[key] for s in user.states], [s[key] for s in expected.states]) for key in keys]
    for name, ours, theirs in outputs:
        errors = [_error(a, b) for a, b in zip(ours, theirs)]
        first = next((index + 1 for index, e in enumerate(errors) if not e <= TOLERANCE), 0)
        worst = max(errors) if errors else 0.0
        result[name] = (worst if np.isfinite(worst) else float("inf"), first)
    return result


# ------------------------------------------------------------------ the usual mistakes, simulated

@dataclass(frozen=True)
class Option:
    """One way of doing one part of a rule; the first option of each part is autocnn's."""

    name: str
    text: str = ""
    accepted: bool = False  # correct, though it differs from autocnn's numbers


def _parts(rule: str) -> list[tuple[str, list[Option]]]:
    """The parts of each rule a student can get wrong, each with its correct option first."""
    learning_rate = ("learning_rate", [Option("config"), Option("default", "{ignored_learning_rate}")])
    if rule == "sgd":
        return [("form", [Option("descend"), Option("ascend", "the gradient is added (w + learning_rate * dw): "
                                                              "the step goes uphill")]), learning_rate]
    if rule == "sgd_momentum":
        return [
            ("form", [
                Option("standard"),
                Option("negated", "velocity stored with the opposite sign (v = momentum * v + learning_rate * dw, "
                                  "w -= v): next_w is right, but {velocity} holds -v"),
                Option("unscaled", "velocity kept without the learning rate (v = momentum * v - dw, "
                                   "w += learning_rate * v): next_w is right, but {velocity} holds "
                                   "v / learning_rate"),
                Option("ascend", "the gradient is added (v = momentum * v + learning_rate * dw, w += v): "
                                 "the steps go uphill"),
                Option("nesterov", "Nesterov momentum (w += -momentum * v_old + (1 + momentum) * v) "
                                   "instead of plain momentum"),
            ]),
            ("order", [Option("fresh"), Option("stale", "w is moved by the old velocity (w += v before v is "
                                                        "updated with this step's gradient)")]),
            ("storage", [Option("stored"), Option("lost", "{velocity} is not updated: every step starts from "
                                                          "zero velocity (plain SGD)")]),
            ("momentum", [Option("config"), Option("default", "{ignored_momentum}")]),
            learning_rate,
        ]
    if rule == "rmsprop":
        return [
            ("decay", [Option("standard"), Option("swapped", "decay_rate weights the wrong term: cache = "
                                                             "(1 - decay_rate) * cache + decay_rate * dw**2")]),
            ("epsilon", [
                Option("outside"),
                Option("inside", "epsilon inside the square root: sqrt(cache + epsilon) instead of "
                                 "sqrt(cache) + epsilon"),
                Option("default", "{ignored_epsilon}"),
                Option("none", "no epsilon in the denominator"),
            ]),
            ("root", [Option("sqrt"), Option("none", "no square root: divides by the cache itself")]),
            ("order", [Option("fresh"), Option("stale", "divides by the cache before adding this step's "
                                                        "squared gradient")]),
            ("storage", [Option("stored"), Option("lost", "{cache} is not updated: every step starts from an "
                                                          "empty cache")]),
            ("decay_rate", [Option("config"), Option("default", "{ignored_decay_rate}")]),
            learning_rate,
        ]
    if rule == "adam":
        return [
            ("correction", [
                Option("bias"),
                Option("none", "no bias correction: m and v are used without dividing by 1 - beta1**t and "
                               "1 - beta2**t"),
                Option("stored", "the bias-corrected m_hat and v_hat are stored in {m} and {v} instead of m and v"),
            ]),
            ("t", [
                Option("before"),
                Option("after", "t is incremented after it is used (off by one): the first step divides by "
                                "1 - beta**0 = 0"),
                Option("frozen", "{t} is not advanced: every step is bias-corrected as the first"),
                Option("twice", "t is incremented twice per step"),
            ]),
            ("epsilon", [
                Option("outside"),
                Option("inside", "epsilon inside the square root: sqrt(v_hat + epsilon) instead of "
                                 "sqrt(v_hat) + epsilon"),
                Option("default", "{ignored_epsilon}"),
                Option("efficient", "Kingma & Ba's efficient form (epsilon added to sqrt(v) before the bias "
                                    "correction); it differs from autocnn's only where sqrt(v) is near epsilon",
                       accepted=True),
            ]),
            ("decay", [Option("standard"), Option("swapped", "beta1 / beta2 weight the wrong term "
                                                             "(m = (1 - beta1) * m + beta1 * dw, and so for v)")]),
            ("betas", [Option("standard"), Option("swapped", "beta1 and beta2 are swapped")]),
            ("root", [Option("sqrt"), Option("none", "no square root of v_hat")]),
            ("storage", [Option("stored"), Option("lost", "{m} and {v} are not updated: every step starts from "
                                                          "zero moments")]),
            learning_rate,
        ]
    raise ValueError(f"unknown update rule {rule!r}; known: {RULES}")


def _variants(rule: str, max_mistakes: int = 2) -> Iterator[dict[str, Option]]:
    """Every choice of options with at most max_mistakes parts not autocnn's, fewest first."""
    parts = _parts(rule)
    correct = {part: options[0] for part, options in parts}
    for count in range(max_mistakes + 1):
        for chosen in itertools.combinations(range(len(parts)), count):
            alternatives = [parts[index][1][1:] for index in chosen]
            for options in itertools.product(*alternatives):
                choice = dict(correct)
                choice.update({parts[index][0]: option for index, option in zip(chosen, options)})
                yield choice


def _initial_state(rule: str, shape: tuple[int, ...]) -> dict[str, Any]:
    return {key: (0 if key == "t" else np.zeros(shape)) for key in STATE_KEYS[rule]}


def _simulate_step(rule: str, choice: dict[str, Option], w: np.ndarray, dw: np.ndarray, state: dict,
                   hp: dict, defaults: dict) -> tuple[np.ndarray, dict] | None:
    """One step of a rule done the way `choice` says; None for a combination that means nothing."""

    def value(key: str) -> float:
        return float(defaults[key] if key in choice and choice[key].name == "default" else hp[key])

    lr = float(defaults["learning_rate"] if choice["learning_rate"].name == "default" else hp["learning_rate"])
    picked = {part: option.name for part, option in choice.items()}
    if rule == "sgd":
        return (w + lr * dw if picked["form"] == "ascend" else w - lr * dw), {}
    if rule == "sgd_momentum":
        mu, old = value("momentum"), state["velocity"]
        form = picked["form"]
        if picked["order"] == "stale" and form != "standard":
            return None
        if form == "negated":
            stored = mu * old + lr * dw
            next_w = w - stored
        elif form == "unscaled":
            stored = mu * old - dw
            next_w = w + lr * stored
        elif form == "ascend":
            stored = mu * old + lr * dw
            next_w = w + stored
        else:
            stored = mu * old - lr * dw
            next_w = w - mu * old + (1 + mu) * stored if form == "nesterov" else w + stored
        if picked["order"] == "stale":
            next_w = w + old
        return next_w, {"velocity": stored if picked["storage"] == "stored" else np.zeros_like(w)}
    if rule == "rmsprop":
        decay, old = value("decay_rate"), state["cache"]
        eps = float(defaults["epsilon"]) if picked["epsilon"] == "default" else float(hp["epsilon"])
        if picked["decay"] == "swapped":
            cache = (1 - decay) * old + decay * dw * dw
        else:
            cache = decay * old + (1 - decay) * dw * dw
        used = old if picked["order"] == "stale" else cache
        if picked["epsilon"] == "inside":
            if picked["root"] == "none":
                return None
            denominator = np.sqrt(used + eps)
        else:
            root = np.sqrt(used) if picked["root"] == "sqrt" else used
            denominator = root if picked["epsilon"] == "none" else root + eps
        next_w = w - lr * dw / denominator
        return next_w, {"cache": cache if picked["storage"] == "stored" else np.zeros_like(w)}
    if rule == "adam":
        beta1, beta2 = float(hp["beta1"]), float(hp["beta2"])
        if picked["betas"] == "swapped":
            beta1, beta2 = beta2, beta1
        eps = float(defaults["epsilon"]) if picked["epsilon"] == "default" else float(hp["epsilon"])
        m, v, t = state["m"], state["v"], int(state["t"])
        if picked["decay"] == "swapped":
            m, v = (1 - beta1) * m + beta1 * dw, (1 - beta2) * v + beta2 * dw * dw
        else:
            m, v = beta1 * m + (1 - beta1) * dw, beta2 * v + (1 - beta2) * dw * dw
        used, stored_t = {"before": (t + 1, t + 1), "after": (t, t + 1), "frozen": (t + 1, t),
                          "twice": (t + 1, t + 2)}[picked["t"]]
        if picked["correction"] == "none":
            if picked["epsilon"] == "efficient":
                return None
            m_hat, v_hat = m, v
        else:
            m_hat, v_hat = m / (1 - beta1**used), v / (1 - beta2**used)
        root = np.sqrt(v_hat) if picked["root"] == "sqrt" else v_hat
        if picked["epsilon"] == "inside":
            if picked["root"] == "none":
                return None
            next_w = w - lr * m_hat / np.sqrt(v_hat + eps)
        elif picked["epsilon"] == "efficient":
            if picked["root"] == "none":
                return None
            step_size = lr * np.sqrt(1 - beta2**used) / (1 - beta1**used)
            next_w = w - step_size * m / (np.sqrt(v) + eps)
        else:
            next_w = w - lr * m_hat / (root + eps)
        if picked["storage"] == "lost":
            m, v = np.zeros_like(w), np.zeros_like(w)
        elif picked["correction"] == "stored":
            m, v = m_hat, v_hat
        return next_w, {"m": m, "v": v, "t": stored_t}
    raise ValueError(f"unknown update rule {rule!r}")


def _simulate(rule: str, choice: dict[str, Option], inputs: list, hp: dict, defaults: dict) -> Trajectory | None:
    state = _initial_state(rule, inputs[0][0].shape)
    moves, states = [], []
    with np.errstate(all="ignore"):
        for w, dw in inputs:
            result = _simulate_step(rule, choice, w, dw, state, hp, defaults)
            if result is None:
                return None
            next_w, state = result
            moves.append(next_w - w)
            states.append(dict(state))
    return Trajectory(moves, states, set())


# ------------------------------------------------------------------ running both sides

def _rule_defaults(rule: str) -> dict[str, Any]:
    """autocnn's default hyperparameters of a rule (what it fills into config=None)."""
    _, config = getattr(optim, rule)(np.zeros(1), np.zeros(1))
    return {key: value for key, value in config.items() if key not in STATE_KEYS[rule]}


def _run_autocnn(rule: str, inputs: list, hp: dict) -> Trajectory:
    config: dict[str, Any] = dict(hp)
    moves, states = [], []
    for w, dw in inputs:
        next_w, config = getattr(optim, rule)(w.copy(), dw.copy(), config)
        moves.append(next_w - w)
        states.append({key: copy.deepcopy(config[key]) for key in STATE_KEYS[rule]})
    return Trajectory(moves, states, set())


class _Unfinished(Exception):
    """The student's rule could not be run to the end: its row says why."""

    def __init__(self, status: str, diagnosis: str) -> None:
        super().__init__(diagnosis)
        self.status, self.diagnosis = status, diagnosis


def _call(function: Callable, args: tuple, filename: str | None, step: str) -> tuple[np.ndarray, dict]:
    """Call a student's rule; return (next_w, config) or raise _Unfinished saying what went wrong."""
    try:
        # Quiet: the student's prints and numpy's warnings (a NaN step is judged, not shouted).
        with np.errstate(all="ignore"), warnings.catch_warnings(), _quiet():
            warnings.simplefilter("ignore")
            result = function(*args)
    except NotImplementedError as error:
        raise _Unfinished(NOT_IMPLEMENTED, f"raises NotImplementedError{_where(error, filename)}") from None
    except AssertionError as error:
        if not str(error):  # assert False: the placeholder some starter code has
            raise _Unfinished(NOT_IMPLEMENTED, f"assert False{_where(error, filename)}") from None
        raise _Unfinished(ERROR, f"{_describe_exception(error, filename)} ({step})") from None
    except Exception as error:  # noqa: BLE001 - any exception of the student's is a result
        raise _Unfinished(ERROR, f"{_describe_exception(error, filename)} ({step})") from None
    except SystemExit as error:
        raise _Unfinished(ERROR, f"calls sys.exit({error.code!r}){_where(error, filename)} ({step})") from None
    if result is None:
        raise _Unfinished(NOT_IMPLEMENTED, "returns None")
    if not (isinstance(result, tuple) and len(result) == 2):
        raise _Unfinished(ERROR, f"returns {type(result).__name__}, expected the tuple (next_w, config) ({step})")
    next_w, config = result
    if next_w is None:
        raise _Unfinished(NOT_IMPLEMENTED, "returns next_w = None")
    if not isinstance(config, dict):
        raise _Unfinished(ERROR, f"returns a config of type {type(config).__name__}, expected a dict ({step})")
    try:
        return np.asarray(next_w, dtype=np.float64), config
    except (TypeError, ValueError):
        raise _Unfinished(ERROR, f"returns next_w of type {type(next_w).__name__}, not an array of numbers "
                                 f"({step})") from None


def _state_names(rule: str, config: dict) -> tuple[dict[str, str], str]:
    """autocnn's state name -> the student's key, and a note naming a non-autocnn convention."""
    own = {key: key for key in STATE_KEYS[rule]}
    conventions = [("", own)] + OTHER_CONVENTIONS.get(rule, [])
    arrays = [key for key in STATE_KEYS[rule] if key != "t"]

    def present(names: dict[str, str]) -> int:
        return sum(names[key] in config for key in arrays)

    note, names = max(conventions, key=lambda c: present(c[1]))  # max keeps the first of equals
    return names, note


def _snapshot(config: dict) -> dict:
    """A copy of the student's config as it is now (the next step may change its arrays in place)."""
    try:
        return copy.deepcopy(config)
    except Exception:  # noqa: BLE001 - something in it cannot be deep-copied: copy what can be
        return {key: np.copy(value) if isinstance(value, np.ndarray) else value for key, value in config.items()}


def _run_student(rule: str, function: Callable, inputs: list, hp: dict, filename: str | None):
    """Run the student's rule over the steps, feeding its config back. Returns
    (trajectory, state names, convention note, dw changed in place, the config after step 1)."""
    config: dict[str, Any] = dict(hp)
    moves, configs, changed_dw = [], [], False
    for step, (w, dw) in enumerate(inputs, start=1):
        dw_in = dw.copy()
        next_w, config = _call(function, (w.copy(), dw_in, config), filename, f"step {step}")
        changed_dw = changed_dw or not np.array_equal(dw_in, dw)
        if next_w.shape != w.shape:
            raise _Unfinished(FAIL, f"next_w has shape {next_w.shape}, the weights {w.shape} (step {step})")
        moves.append(next_w - w)
        configs.append(_snapshot(config))
    names, note = _state_names(rule, configs[0])
    initial = _initial_state(rule, inputs[0][0].shape)
    missing = {key for key in STATE_KEYS[rule] if any(names[key] not in c for c in configs)}
    states = [{key: c.get(names[key], initial[key]) for key in STATE_KEYS[rule]} for c in configs]
    for state in states:
        for key, value in state.items():
            if value is None:
                state[key] = initial[key]
    return Trajectory(moves, states, missing), names, note, changed_dw, configs[0]


def _ratio_hint(user: Trajectory, expected: Trajectory, name: str, label: str, step: int) -> list[str]:
    """["... is 0.037 times autocnn's"] when the first wrong value is autocnn's times a constant."""
    pick = (lambda t: t.moves[step - 1]) if name == "next_w" else (lambda t: t.states[step - 1][name])
    try:
        ours, theirs = (np.asarray(pick(t), dtype=np.float64).ravel() for t in (user, expected))
    except (TypeError, ValueError):  # the student's value is not numbers
        return []
    if ours.shape != theirs.shape or not (np.all(np.isfinite(ours)) and np.any(theirs)):
        return []
    factor = float(ours @ theirs / (theirs @ theirs))
    if factor == 0.0 or _error(ours, factor * theirs) > 1e-6:
        return []
    what = "the step next_w - w" if name == "next_w" else label
    return [f"{what} is {factor:.4g} times autocnn's on step {step}"]


def _aliased(config: dict, defaults: dict) -> dict[str, tuple[str, float]]:
    """hyperparameter -> (the other name, its value) for each one the student's config also
    holds under another name (see ALIASES)."""
    found = {}
    for key in defaults:
        for alias in ALIASES.get(key, ()):
            value = config.get(alias)
            if isinstance(value, (int, float, np.number)) and not isinstance(value, bool):
                found[key] = (alias, float(value))
                break
    return found


def _texts(choice: dict[str, Option], names: dict[str, str], defaults: dict,
           aliases: dict[str, tuple[str, float]]) -> list[str]:
    fields = {key: f"config[{student!r}]" for key, student in names.items()}
    for key, value in defaults.items():
        if key in aliases:
            alias, alias_value = aliases[key]
            fields[f"ignored_{key}"] = f"config[{alias!r}] ({alias_value:g}) is read instead of config[{key!r}]"
        elif isinstance(value, (int, float)):
            fields[f"ignored_{key}"] = f"config[{key!r}] is ignored (the default {value:g} is used)"
    return [option.text.format(**fields) for option in choice.values() if option.text]


def _explain(rule: str, user: Trajectory, inputs: list, hp: dict, defaults: dict,
             outputs: list[str]) -> tuple[dict[str, Option] | None, dict[str, dict[str, Option]]]:
    """The simplest simulated variant reproducing every output, and for each output the simplest
    reproducing that output alone."""
    keys = STATE_KEYS[rule]
    overall, per_output = None, {}
    for choice in _variants(rule):
        simulated = _simulate(rule, choice, inputs, hp, defaults)
        if simulated is None:
            continue
        errors = _errors(user, simulated, keys)
        agrees = {name for name in outputs if errors[name][0] <= TOLERANCE}
        if overall is None and len(agrees) == len(outputs):
            overall = choice
        for name in agrees:
            per_output.setdefault(name, choice)
        if overall is not None and len(per_output) == len(outputs):
            break
    return overall, per_output


def _draw_inputs(rng: np.random.RandomState, steps: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(w, dw) per step; gradients span six decades so that epsilon matters for some entries."""
    return [(rng.randn(*SHAPE), rng.randn(*SHAPE) * 10.0 ** rng.uniform(-6, 0, SHAPE)) for _ in range(steps)]


def _check_rule(rule: str, function: Callable, rng: np.random.RandomState, steps: int,
                filename: str | None) -> list[OptimRow]:
    hp, defaults = HYPERPARAMETERS[rule], _rule_defaults(rule)
    inputs = _draw_inputs(rng, steps)
    keys = STATE_KEYS[rule]
    try:
        user, names, note, changed_dw, first_config = _run_student(rule, function, inputs, hp, filename)
    except _Unfinished as unfinished:
        return [OptimRow(rule, "next_w", unfinished.status, unfinished.diagnosis)]
    aliases = _aliased(first_config, defaults)
    # A rule reading another name gets that name's value where it "ignores" autocnn's.
    ignored = {**defaults, **{key: value for key, (_, value) in aliases.items()}}
    expected = _run_autocnn(rule, inputs, hp)
    errors = _errors(user, expected, keys)
    outputs = ["next_w", *keys]
    labels = {"next_w": "next_w", **{key: f"config[{names[key]!r}]" for key in keys}}
    failing = [name for name in outputs if errors[name][0] > TOLERANCE]
    status = {name: FAIL if name in failing else PASS for name in outputs}
    diagnosis = {name: [] for name in outputs}
    explanation = None
    if failing:
        overall, per_output = _explain(rule, user, inputs, hp, ignored, outputs)
        explanation = overall
        if overall is not None and all(option.accepted or not option.text for option in overall.values()):
            # A correct form of its own: agreement with it is a pass, and the error is against it.
            accepted = _simulate(rule, overall, inputs, hp, ignored)
            errors = _errors(user, accepted, keys) if accepted is not None else errors
            for name in outputs:
                status[name] = PASS
            diagnosis["next_w"] += ["accepted: " + text for text in _texts(overall, names, defaults, aliases)]
        else:
            for name in failing:
                if overall is not None:
                    diagnosis[name] += _texts(overall, names, defaults, aliases)
                elif name in per_output:  # no one variant fits every output: say what fits this one
                    diagnosis[name] += ["this output fits: " + text
                                        for text in _texts(per_output[name], names, defaults, aliases)]
                else:
                    first = errors[name][1]
                    diagnosis[name].append("wrong from the first step" if first == 1 else
                                           f"right on step 1, wrong from step {first}: the state passed on in "
                                           "config is not what the next step needs")
                    diagnosis[name] += _ratio_hint(user, expected, name, labels[name], first)
    others = sorted(str(key) for key in first_config if key not in hp and key not in names.values()
                    and key not in [alias for group in ALIASES.values() for alias in group])
    for key in keys:
        if key not in user.missing:
            continue
        if status["next_w"] == PASS and others:
            # Right steps throughout need the right state: it is kept under names of another course.
            status[key], errors[key] = NOT_CHECKED, (float("nan"), 0)
            diagnosis[key] = [f"config has no {names[key]!r}; next_w is right on every step, so the state is "
                              f"kept under other names ({', '.join(others)})"]
        else:
            diagnosis[key].append(f"config has no {names[key]!r} after the update")
    if note:
        diagnosis["next_w"].append(note)
    if changed_dw:
        diagnosis["next_w"].append("note: changes dw in place")
    rows = [OptimRow(rule, labels[name], status[name], "; ".join(diagnosis[name]), _reported(errors[name][0]))
            for name in outputs]
    rows.append(_check_defaults(rule, function, inputs[0], defaults, filename, explanation))
    return rows


def _reported(error: float) -> float | None:
    """The error a row shows: None where it is not a number (NaN or infinite outputs; the
    diagnosis says why), so that rows stay plain JSON."""
    return error if np.isfinite(error) else None


def _check_defaults(rule: str, function: Callable, inputs: tuple, defaults: dict, filename: str | None,
                    explanation: dict[str, Option] | None) -> OptimRow:
    """
    rule(w, dw) with no config, judged against autocnn's rule with the student's own defaults
    (another course year's default is not a bug, but it is named). explanation: the variant
    that reproduced the student's explicit-config steps, if they were not autocnn's; agreeing
    with it here is the same (accepted or named) behaviour again.
    """
    output = "config=None"
    w, dw = inputs
    try:
        next_w, config = _call(function, (w.copy(), dw.copy()), filename, "config=None")
    except _Unfinished as unfinished:
        return OptimRow(rule, output, unfinished.status, unfinished.diagnosis)
    aliases = _aliased(config, defaults)
    used = {key: config.get(key, aliases[key][1] if key in aliases else value) for key, value in defaults.items()}
    try:
        expected, _ = getattr(optim, rule)(w.copy(), dw.copy(), dict(used))
    except (TypeError, ValueError) as error:
        return OptimRow(rule, output, FAIL, f"its defaults are not usable: {error}")
    move = next_w - w if next_w.shape == w.shape else None
    error = _error(move, expected - w) if move is not None else float("inf")
    differences = [f"{key} {used[key]!r} (autocnn: {value!r})" for key, value in defaults.items()
                   if key in config and used[key] != value]
    missing = [key for key in defaults if key not in config and key not in aliases]
    notes = [f"config[{alias!r}] = {value:g} stands for {key}" for key, (alias, value) in aliases.items()
             if key not in config]
    if differences:
        notes.append("defaults differ from autocnn's: " + ", ".join(differences))
    if missing:
        notes.append("config=None leaves out " + ", ".join(missing) + " (autocnn's defaults assumed)")
    if error <= TOLERANCE:
        return OptimRow(rule, output, PASS, "; ".join(notes), error)
    if explanation is not None and move is not None:
        simulated = _simulate(rule, explanation, [(w, dw)], used, {**defaults, **used})
        agreement = _error(move, simulated.moves[0]) if simulated is not None else float("inf")
        if agreement <= TOLERANCE:
            if all(option.accepted or not option.text for option in explanation.values()):
                return OptimRow(rule, output, PASS, "; ".join(["accepted form as above", *notes]), agreement)
            notes.insert(0, "the same mistake as with an explicit config")
            return OptimRow(rule, output, FAIL, "; ".join(notes), _reported(error))
    notes.insert(0, "with config=None the step differs from autocnn's with the same hyperparameters")
    return OptimRow(rule, output, FAIL, "; ".join(notes), _reported(error))


# ------------------------------------------------------------------ public entry points

def check_optim(target: types.ModuleType | str | os.PathLike, seed: int = 0, steps: int = STEPS) -> list[OptimRow]:
    """
    Check the update rules a student's optim.py defines against autocnn.training.optim.

    Inputs:
    - target: The student's module object, or a path to optim.py (or a folder holding one)
    - seed: Seed of the random weights and gradients
    - steps: Number of chained steps per rule

    Returns:
    - rows: For each rule the module defines (sgd, sgd_momentum, rmsprop, adam), one row per
      output (next_w, each state in config) and one for config=None; a rule that raises,
      returns None or is not implemented gets a single row. A module that cannot be loaded
      gives a single row for function 'optim.py': NOT CHECKED when it needs a module that is
      not installed, else ERROR.
    """
    if isinstance(target, types.ModuleType):
        module = target
    else:
        path = find_optim(target)  # a wrong path is the caller's error: ValueError
        try:
            module = load_optim(path)
        except ModuleNotFoundError as error:
            return [OptimRow("optim.py", "import", NOT_CHECKED, f"not checked: needs module {error.name}, "
                             f"which is not installed{_where(error, str(path))}")]
        except Exception as error:  # noqa: BLE001 - the student's file, whatever it raises
            return [OptimRow("optim.py", "import", ERROR, _load_failure(error, str(path)))]
        except SystemExit as error:
            return [OptimRow("optim.py", "import", ERROR, f"calls sys.exit({error.code!r}) when imported")]
    filename = getattr(module, "__file__", None)
    rows: list[OptimRow] = []
    for index, rule in enumerate(RULES):
        function = getattr(module, rule, None)
        # Only the student's own functions: one imported from elsewhere is not theirs to judge.
        if not callable(function) or getattr(function, "__module__", None) != module.__name__:
            continue
        rng = np.random.RandomState([seed, index])
        try:
            rows += _check_rule(rule, function, rng, steps, filename)
        except Exception as error:  # noqa: BLE001 - whatever the student's objects do, the others still run
            rows.append(OptimRow(rule, "next_w", ERROR, f"could not be judged: {_describe_exception(error, filename)}"))
    return rows


def format_rows(rows: list[OptimRow]) -> str:
    """The rows as a plain-text table: function, output, status, error, diagnosis."""
    header = ("function", "output", "status", "error", "diagnosis")
    lines = [(row.function, row.output, row.status, "-" if row.error is None else f"{row.error:.1e}", row.diagnosis)
             for row in rows]
    widths = [max(len(header[i]), *(len(line[i]) for line in lines)) if lines else len(header[i]) for i in range(4)]

    def render(cells: tuple[str, ...]) -> str:
        return "  ".join(cell.ljust(width) for cell, width in zip(cells[:4], widths)) + "  " + cells[4]

    return "\n".join([render(header).rstrip(), *(render(line).rstrip() for line in lines)])
