"""Running the checks: each function group in its own confined worker, step by step.

A layer group is one forward (under the name the student gave it) and its backward(s):
for every case, autocnn's forward and autograd's derivative of it are computed, the
student's forward is called (sandwiches by parameter name), its output and updated state
judged, and, on train-mode cases only, each backward is fed the student's own cache.
Dropout is judged on its behaviour (which fraction it keeps and how it scales them), so a
student's own random numbers and either meaning of p are accepted. A model is built with
the student's constructor arguments for each case, given the same random params as
autocnn's, and its loss, gradients and test-time scores compared.
"""

from __future__ import annotations

import copy
import inspect
import re
import zlib
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from autocnn.tools.check.cases import Case
from autocnn.tools.check.diagnosis import compare, describe_exception
from autocnn.tools.check.isolation import Send, lift_cpu_limit, limit_cpu_of_next_call
from autocnn.tools.check.report import Outcome
from autocnn.tools.check.specs import ARG_SYNONYMS, LayerSpec, ModelCase, ModelSpec
from autocnn.tools.gradcheck import rel_error

# Inputs are float64. Measured on the reference, correct implementations agree to
# <= 3e-12, and to <= 4e-8 only on gradients that are exactly zero in theory (a bias
# before batchnorm), where rel_error compares rounding noise with its 1e-8 floor.
# 1e-6 keeps a wide margin over that, yet catches bugs as small as eps added outside
# the square root in batchnorm (~1e-5), which the notebook's 1e-5 would let through.
LAYER_TOLERANCE = 1e-6
MODEL_TOLERANCE = 1e-6
USER_ERRORS = (Exception, SystemExit)  # what a call of user code may raise and still be a row


@dataclass
class Context:
    """What a worker knows about the submission while it checks one group."""

    send: Send
    tol: float
    files: dict[str, str] = field(default_factory=dict)  # absolute path -> label, for tracebacks
    blank: dict[str, str] = field(default_factory=dict)  # function -> why it is not implemented
    docs: dict[str, str] = field(default_factory=dict)

    def emit(self, function: str, output: str, case: Case, error=None, problem="", hints=(), skipped="", kind=""):
        self.send(("outcome", Outcome(function, output, case.label, case.tags, error, problem, tuple(hints),
                                      skipped, kind)))

    def call(self, function: str, case: Case, outputs: list[str], fn: Callable, *args, **kwargs):
        """Call user code under the per-call CPU limit, after telling the parent what runs (a hang is named)."""
        self.send(("call", function, case.label, tuple(outputs)))
        limit_cpu_of_next_call()
        try:
            return fn(*args, **kwargs)
        finally:
            lift_cpu_limit()
            self.send(("returned", function))

    def raised(self, error: BaseException) -> str:
        return describe_exception(error, self.files)


def spec_seed(seed: int, name: str) -> int:
    return (seed * 1_000_003 + zlib.crc32(name.encode())) % (2**32)


def as_gradient_tuple(value: Any, count: int) -> tuple | str:
    """A backward's return value as a tuple of count gradients, or the reason it is not."""
    if count == 1:
        return (value,)
    if not isinstance(value, (tuple, list)):
        return f"wrong type: returned {type(value).__name__}, expected a tuple of {count} gradients"
    if len(value) != count:
        return f"returned {len(value)} values, expected {count}"
    return tuple(value)


def _changed(before: Any, after: Any) -> bool:
    """True when a deep copy taken before a call no longer equals the object after it."""
    if isinstance(before, np.ndarray):
        return not (isinstance(after, np.ndarray) and before.shape == after.shape
                    and np.array_equal(before, after, equal_nan=True))
    if isinstance(before, dict):
        return not isinstance(after, dict) or before.keys() - after.keys() != set() or any(
            _changed(value, after[key]) for key, value in before.items())
    if isinstance(before, (list, tuple)):
        return len(before) != len(after) or any(_changed(b, a) for b, a in zip(before, after))
    try:
        return bool(before != after)
    except Exception:
        return False


def mutated_inputs(names, snapshot: tuple, current: tuple, state_keys: tuple[str, ...]) -> list[str]:
    """Names of the inputs a call changed; entries in state_keys of dicts may change."""
    changed = []
    for name, before, after in zip(names, snapshot, current):
        if isinstance(before, dict) and state_keys:
            before = {k: v for k, v in before.items() if k not in state_keys}
            after = {k: v for k, v in after.items() if k not in state_keys} if isinstance(after, dict) else after
        if _changed(before, after):
            changed.append(name)
    return changed


def _autocnn_module(source: str):
    import autocnn.core.layer_utils
    import autocnn.core.layers

    return autocnn.core.layers if source == "layers" else autocnn.core.layer_utils


# ----------------------------------------------------------------- calling by parameter name

def bind_by_name(fn: Callable, canonical: tuple[str, ...]) -> tuple[list[str] | None, str]:
    """
    How to call a student's sandwich: its parameters mapped to canonical input names.

    Returns a tuple of:
    - order: For each of the student's parameters, the canonical input it receives, or
      None when the canonical order is to be used as is
    - reason: '' when callable, else why not (an unknown required parameter); a
      'note: ...' when it is called by name in an order other than autocnn's
    """
    try:
        parameters = [p for p in inspect.signature(fn).parameters.values()
                      if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    except (TypeError, ValueError):
        return None, ""
    lookup = {alias.lower(): name for name, aliases in ARG_SYNONYMS.items() for alias in aliases if name in canonical}
    order, unknown = [], []
    for parameter in parameters:
        name = lookup.get(parameter.name.lower())
        if name is None or name in order:
            if parameter.default is inspect.Parameter.empty:
                unknown.append(parameter.name)
            continue
        order.append(name)
    if sorted(order) == sorted(canonical) and not unknown:
        if order == list(canonical):
            return None, ""
        return order, f"note: called by parameter name ({', '.join(p.name for p in parameters)})"
    if len(parameters) == len(canonical) and not [p for p in parameters if p.name.lower() in lookup and
                                                  lookup[p.name.lower()] != canonical[parameters.index(p)]]:
        return None, ""  # unfamiliar names in autocnn's order: positional
    missing = [name for name in canonical if name not in order]
    if unknown:
        return None, f"takes {', '.join(unknown)}, which the notebook's {len(canonical)} inputs do not fill"
    return None, f"takes no {', '.join(missing)}"


def _student_to_canonical(fn: Callable, canonical: tuple[str, ...]) -> dict[str, str] | None:
    """The student's parameter names -> canonical input names, or None when they do not all map."""
    try:
        parameters = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return None
    lookup = {alias.lower(): name for name, aliases in ARG_SYNONYMS.items() for alias in aliases if name in canonical}
    mapping = {p.name: lookup[p.name.lower()] for p in parameters if p.name.lower() in lookup}
    if sorted(mapping.values()) != sorted(canonical):
        if len(parameters) == len(canonical):  # unfamiliar names: autocnn's order
            return {p.name: name for p, name in zip(parameters, canonical)}
        return None
    return mapping


def autocnn_stand_in(spec: LayerSpec, name: str, student_fn: Callable, convention: str = "") -> Callable | None:
    """
    autocnn's version of one of the student's functions, callable exactly as the student's is.

    Used when checking a sandwich or model that calls a function of the student's that is
    wrong or missing, so that the caller is judged on its own code. Forward and backward
    of a pair are always replaced together (their caches must match).

    Inputs:
    - spec: The function's group
    - name: The student's name for it (forward or backward)
    - student_fn: The student's function (its signature decides the argument order)
    - convention: For dropout, what the student's p means ('keep' or 'drop')

    Returns:
    - The stand-in, or None when the student's signature cannot be mapped
    """
    mine = _autocnn_module(spec.source)
    forwards = {forward for forward, _ in spec.names()}
    if name not in forwards:
        return getattr(mine, spec.backwards[0])
    target = getattr(mine, spec.forward)
    if spec.kind == "dropout":
        def dropout_forward(x, dropout_param):
            param = dict(dropout_param)
            if convention == DROP and "p" in param:
                param["p"] = 1 - param["p"]
            return target(x, param)
        return dropout_forward
    if not spec.by_name:
        return target
    mapping = _student_to_canonical(student_fn, spec.arg_names)
    if mapping is None:
        return None
    signature = inspect.signature(student_fn)

    def sandwich(*args, **kwargs):
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        values = {mapping[key]: value for key, value in bound.arguments.items() if key in mapping}
        return target(*[values[name] for name in spec.arg_names])

    return sandwich


def replace_in_modules(modules, replacements: dict[str, Callable]) -> None:
    """Rebind names in every module of the student's that binds them (star imports copy names)."""
    for module in modules:
        namespace = vars(module)
        for name, function in replacements.items():
            if name in namespace:
                namespace[name] = function


def _arguments(order: list[str] | None, canonical: tuple[str, ...], args: tuple) -> tuple:
    if order is None:
        return args
    values = dict(zip(canonical, args))
    return tuple(values[name] for name in order)


# ----------------------------------------------------------------- one layer group

@dataclass
class ForwardRun:
    """The student's forward on one case: its result and arguments, after the call."""

    out: Any
    cache: Any
    args: tuple
    mutation: str


def _expected_forward(spec: LayerSpec, case: Case):
    mine = _autocnn_module(spec.source)
    args = copy.deepcopy(case.args)
    return getattr(mine, spec.forward)(*args), args


def _not_reached(ctx: Context, spec: LayerSpec, backwards: list[str], case: Case, why: str) -> None:
    """Backwards that cannot run for want of a cache: 'not checked', unless they are blank themselves."""
    for name in backwards:
        for grad in spec.grads:
            if name in ctx.blank:
                ctx.emit(name, grad, case, problem=ctx.blank[name], kind="todo")
            else:
                ctx.emit(name, grad, case, skipped=f"not checked: {why}", kind="not checked")


def _forward_outputs(spec: LayerSpec) -> list[str]:
    return ["loss", "dx"] if spec.is_loss else ["out", *spec.state_keys]


def _run_user_forward(spec: LayerSpec, forward: str, fn: Callable, order, case: Case, ctx: Context
                      ) -> ForwardRun | None:
    """Call the student's forward; on failure emit its rows and return None."""
    outputs = _forward_outputs(spec)
    args = copy.deepcopy(case.args)
    snapshot = copy.deepcopy(args)
    try:
        result = ctx.call(forward, case, outputs, fn, *_arguments(order, spec.arg_names, args))
    except NotImplementedError:
        for output in outputs:
            ctx.emit(forward, output, case, problem="raises NotImplementedError", kind="todo")
        return None
    except USER_ERRORS as error:
        for output in outputs:
            ctx.emit(forward, output, case, problem=ctx.raised(error))
        return None
    changed = [name for name in mutated_inputs(spec.arg_names, snapshot, args, spec.state_keys)
               if name not in spec.scratch_params]
    mutation = f"modifies its input {', '.join(changed)} in place" if changed else ""
    if result is None:
        for output in outputs:
            ctx.emit(forward, output, case, problem="returns None", kind="todo")
        return None
    if not isinstance(result, (tuple, list)) or len(result) != 2:
        kind = f"{len(result)}-tuple" if isinstance(result, (tuple, list)) else type(result).__name__
        what = "(loss, dx)" if spec.is_loss else "(out, cache)"
        for output in outputs:
            ctx.emit(forward, output, case, problem=f"wrong type: returned {kind}, expected {what}")
        return None
    return ForwardRun(result[0], result[1], args, mutation)


def _judge(ctx: Context, function: str, output: str, case: Case, got, want, extra_problem: str = "",
           notes: tuple[str, ...] = ()) -> None:
    """Compare one output and emit its outcome (None is 'not implemented')."""
    if got is None:
        ctx.emit(function, output, case, problem="returns None", kind="todo")
        return
    error, problem, hints = compare(got, want, ctx.tol, case, output)
    ctx.emit(function, output, case, error, problem or extra_problem, (*hints, *notes))


def _matches(got, suspect, tol: float) -> bool:
    try:
        return np.shape(got) == np.shape(suspect) and rel_error(np.asarray(got, dtype=np.float64), suspect) <= tol
    except (TypeError, ValueError):
        return False


def _judge_forward(spec: LayerSpec, forward: str, run: ForwardRun, expected, mine_args, case: Case, ctx: Context,
                   notes: tuple[str, ...]) -> None:
    if spec.is_loss:
        for output, got, want in zip(["loss", "dx"], (run.out, run.cache), expected):
            _judge(ctx, forward, output, case, got, want, run.mutation, notes)
        return
    suspected = tuple(text for text, suspect in spec.suspects
                      if _matches(run.out, suspect(*copy.deepcopy(case.args)), ctx.tol))
    _judge(ctx, forward, "out", case, run.out, expected[0], run.mutation, suspected + notes)
    for key in spec.state_keys:
        index = spec.arg_names.index("bn_param")
        got, want = run.args[index].get(key), mine_args[index][key]
        if got is None:
            ctx.emit(forward, key, case, problem=f"bn_param['{key}'] not set")
            continue
        _judge(ctx, forward, key, case, got, want)


def _judge_backwards(spec: LayerSpec, backwards: list[str], user: dict, run: ForwardRun, expected, rng,
                     case: Case, ctx: Context) -> None:
    mine = _autocnn_module(spec.source)
    dout = rng.randn(*np.shape(expected[0]))
    want = as_gradient_tuple(getattr(mine, spec.backwards[0])(dout.copy(), expected[1]), len(spec.grads))
    for name in backwards:
        if name in ctx.blank:
            for grad in spec.grads:
                ctx.emit(name, grad, case, problem=ctx.blank[name], kind="todo")
            continue
        user_dout = dout.copy()
        try:
            cache = copy.deepcopy(run.cache)
        except Exception:  # an exotic cache: hand over the object itself
            cache = run.cache
        try:
            grads = ctx.call(name, case, list(spec.grads), user[name], user_dout, cache)
        except NotImplementedError:
            for grad in spec.grads:
                ctx.emit(name, grad, case, problem="raises NotImplementedError", kind="todo")
            continue
        except USER_ERRORS as error:
            for grad in spec.grads:
                ctx.emit(name, grad, case, problem=ctx.raised(error))
            continue
        if grads is None:
            for grad in spec.grads:
                ctx.emit(name, grad, case, problem="returns None", kind="todo")
            continue
        grads = as_gradient_tuple(grads, len(spec.grads))
        if isinstance(grads, str):
            for grad in spec.grads:
                ctx.emit(name, grad, case, problem=grads)
            continue
        mutation = "modifies its input dout in place" if _changed(dout, user_dout) else ""
        for grad, got, expected_grad in zip(spec.grads, grads, want):
            _judge(ctx, name, grad, case, got, expected_grad, mutation)


def run_layer_spec(spec: LayerSpec, forward: str, backwards: list[str], user: dict[str, Callable],
                   rng: np.random.RandomState, ctx: Context) -> None:
    """Check one forward (or loss) under the student's name for it, and its backwards, on every case."""
    fn = user[forward]
    order, reason = (bind_by_name(fn, spec.arg_names) if spec.by_name else (None, ""))
    notes = (reason,) if reason.startswith("note:") else ()
    for case in spec.make_cases(rng):
        outputs = _forward_outputs(spec)
        if reason and not notes:
            for output in outputs:
                ctx.emit(forward, output, case, skipped=f"not checked: {forward} {reason}", kind="not checked")
            _not_reached(ctx, spec, backwards, case, f"{forward} {reason}")
            continue
        if forward in ctx.blank:
            for output in outputs:
                ctx.emit(forward, output, case, problem=ctx.blank[forward], kind="todo")
            _not_reached(ctx, spec, backwards, case, f"{forward} is not implemented")
            continue
        expected, mine_args = _expected_forward(spec, case)
        run = _run_user_forward(spec, forward, fn, order, case, ctx)
        if run is None:
            _not_reached(ctx, spec, backwards, case, f"{forward} failed")
            continue
        _judge_forward(spec, forward, run, expected, mine_args, case, ctx, notes)
        if spec.is_loss or not backwards:
            continue
        if not case.train:
            continue  # the homework never backpropagates through a test-mode forward
        _judge_backwards(spec, backwards, user, run, expected, rng, case, ctx)


# ----------------------------------------------------------------- dropout, by behaviour

KEEP, DROP = "keep", "drop"
_FRACTION_SLACK = 0.05  # the kept fraction of >= 3000 units is within 0.03 of its probability (4 sd)


def docstring_convention(doc: str) -> str:
    """'keep' or 'drop' when a docstring says what p means, else ''."""
    text = " ".join(doc.lower().split())
    if re.search(r"(drop|dropping)[^.]{0,40}with probability p|probability (of|for) dropping|p is the drop|"
                 r"drop probability|dropout probability", text):
        return DROP
    if re.search(r"(keep|keeping|retain)[^.]{0,40}with probability p|probability (of|for) keeping|"
                 r"keep probability|p is the keep", text):
        return KEEP
    return ""


def _convention_of(out: np.ndarray, x: np.ndarray, p: float) -> tuple[str, str]:
    """(convention, problem) read off one train-mode output: which fraction is kept and how it is scaled."""
    kept = out != 0
    fraction = float(kept.mean())
    if not kept.any():
        return "", "keeps no unit at all"
    scales = out[kept] / x[kept]
    scale = float(np.median(scales))
    if np.max(np.abs(scales - scale)) > 1e-9 * abs(scale):
        return "", "kept units are not all scaled by the same factor"
    by_fraction = KEEP if abs(fraction - p) <= _FRACTION_SLACK else DROP if abs(fraction - (1 - p)) <= _FRACTION_SLACK \
        else ""
    by_scale = KEEP if abs(scale - 1 / p) <= 1e-9 / p else DROP if abs(scale - 1 / (1 - p)) <= 1e-9 / (1 - p) \
        else ""
    if not by_fraction:
        return "", (f"keeps {fraction:.0%} of the units for p = {p}: expected {p:.0%} (p = keep probability) "
                    f"or {1 - p:.0%} (p = drop probability)")
    if abs(scale - 1) <= 1e-12:
        return by_fraction, ("kept units are not scaled in training: the notebook's inverted dropout divides by "
                             "the keep probability")
    if by_scale != by_fraction:
        meaning = "keep" if by_fraction == KEEP else "drop"
        kept_as = f"1/{p}" if by_fraction == KEEP else f"1/(1 - {p})"
        return by_fraction, (f"keeps a fraction {fraction:.2f} of the units (p = {meaning} probability) but scales "
                             f"them by {scale:.4g}, not {kept_as}")
    return by_fraction, ""


def run_dropout_spec(spec: LayerSpec, forward: str, backwards: list[str], user: dict[str, Callable],
                     rng: np.random.RandomState, ctx: Context) -> None:
    """Judge dropout on its behaviour: kept fraction and scale give p's meaning; the backward uses the same mask."""
    fn = user[forward]
    hinted = docstring_convention(ctx.docs.get(forward, ""))
    conventions: list[str] = []
    for case in spec.make_cases(rng):
        if forward in ctx.blank:
            ctx.emit(forward, "out", case, problem=ctx.blank[forward], kind="todo")
            _not_reached(ctx, spec, backwards, case, f"{forward} is not implemented")
            continue
        x, param = case.args
        run = _run_user_forward(spec, forward, fn, None, case, ctx)
        if run is None:
            _not_reached(ctx, spec, backwards, case, f"{forward} failed")
            continue
        if run.out is None:
            ctx.emit(forward, "out", case, problem="returns None", kind="todo")
            _not_reached(ctx, spec, backwards, case, f"{forward} is not implemented")
            continue
        out = np.asarray(run.out, dtype=np.float64) if isinstance(run.out, np.ndarray) else None
        if out is None or out.shape != x.shape:
            _judge(ctx, forward, "out", case, run.out, x)  # names the type / shape problem
            _not_reached(ctx, spec, backwards, case, f"{forward} failed")
            continue
        if not case.train:
            _judge_test_mode_dropout(ctx, forward, case, out, x, param["p"], run.mutation)
            continue
        convention, problem = _convention_of(out, x, param["p"])
        if convention:
            conventions.append(convention)
        if not problem and len(set(conventions)) > 1:
            problem = "p means the keep probability in one case and the drop probability in another"
        if not problem:
            again = _run_user_forward(spec, forward, fn, None, case, ctx)
            if again is not None and isinstance(again.out, np.ndarray) and not np.array_equal(again.out, run.out):
                problem = f"the same seed ({param['seed']}) gives different masks: seed the generator with it"
        meaning = f"note: p = {convention} probability" + ("" if convention == hinted or not hinted else
                                                           " (the docstring says otherwise)")
        ctx.emit(forward, "out", case, 0.0 if not problem else None, problem or run.mutation,
                 (meaning,) if convention else ())
        if problem:
            _not_reached(ctx, spec, backwards, case, f"{forward} failed")
            continue
        mask_scale = np.where(x != 0, out / np.where(x != 0, x, 1), 0.0)
        dout = rng.randn(*x.shape)
        for name in backwards:
            _judge_dropout_backward(ctx, name, case, user[name], run.cache, dout, dout * mask_scale)
    if conventions:
        ctx.send(("convention", "dropout", conventions[0]))


def _judge_test_mode_dropout(ctx: Context, forward: str, case: Case, out, x, p: float, mutation: str) -> None:
    if np.allclose(out, x * p, rtol=1e-12, atol=0) or np.allclose(out, x * (1 - p), rtol=1e-12, atol=0):
        ctx.emit(forward, "out", case, None, "test mode scales x: with inverted dropout it returns x unchanged")
        return
    _judge(ctx, forward, "out", case, out, x, mutation)


def _judge_dropout_backward(ctx: Context, name: str, case: Case, fn: Callable, cache, dout, want) -> None:
    if name in ctx.blank:
        ctx.emit(name, "dx", case, problem=ctx.blank[name], kind="todo")
        return
    try:
        got = ctx.call(name, case, ["dx"], fn, dout.copy(), copy.deepcopy(cache))
    except NotImplementedError:
        ctx.emit(name, "dx", case, problem="raises NotImplementedError", kind="todo")
        return
    except USER_ERRORS as error:
        ctx.emit(name, "dx", case, problem=ctx.raised(error))
        return
    _judge(ctx, name, "dx", case, got, want)


# ----------------------------------------------------------------- one model class

def draw_model_params(rng: np.random.RandomState, shapes: dict[str, tuple[int, ...]]) -> dict[str, np.ndarray]:
    """
    Random float64 values for a model's params: He-scaled weights, gamma near 1.

    Inputs:
    - rng: Source of the values
    - shapes: Param name -> shape (e.g. from an autocnn model's params)

    Returns:
    - params: Param name -> float64 array
    """
    params = {}
    for name, shape in shapes.items():
        if name.startswith("W"):
            fan_in = int(np.prod(shape[1:])) if len(shape) == 4 else shape[0]
            params[name] = np.sqrt(2.0 / fan_in) * rng.randn(*shape)
        elif name.startswith("gamma"):
            params[name] = 1.0 + 0.2 * rng.randn(*shape)
        else:
            params[name] = 0.2 * rng.randn(*shape)
    return params


def autocnn_model(spec: ModelSpec, case: ModelCase):
    """autocnn's model for a case: the plain architecture plus the case's optional part."""
    import autocnn.core.models

    options: dict[str, Any] = {"use_batchnorm": case.part == "batchnorm"}
    if spec.name == "FullyConnectedNet":
        options["dropout"] = case.keep if case.part == "dropout" else 1
    return getattr(autocnn.core.models, spec.name)(**case.kwargs, **options, dtype=np.float64)


def model_function(spec: ModelSpec, part: str) -> str:
    return f"{spec.name}.loss" + (f" ({part})" if part else "")


def model_outputs(spec: ModelSpec, part: str) -> list[str]:
    """Rows of a model part: loss, one gradient per param (autocnn's names), test-time scores."""
    names: list[str] = []
    for case in spec.cases:
        if case.part == part:
            names += [name for name in autocnn_model(spec, case).params if name not in names]
    return ["loss", *[f"grad {name}" for name in names], "scores"]


def _reg_offsets(reg: float, params: dict[str, np.ndarray]) -> dict:
    """The L2 term's contributions: a wrong one shows up as user - expected = k * these."""

    def describe_grad(k: float) -> str:
        if abs(k + 1) < 1e-6:
            return "missing the regularization term (grad short by reg * W)"
        if abs(k - 1) < 1e-6:
            return "regularization term added twice (grad has an extra reg * W)"
        return f"regularization gradient wrong: off by {k:+.3g} x reg * W"

    def describe_loss(k: float) -> str:
        if abs(k + 1) < 1e-6:
            return "loss missing the regularization term 0.5 * reg * sum(W**2)"
        if abs(k - 1) < 1e-6:
            return "loss has reg * sum(W**2): the 0.5 is missing (or the term is added twice)"
        return f"loss regularization term wrong: off by {k:+.3g} x 0.5 * reg * sum(W**2)"

    weights = [name for name in params if name.startswith("W")]
    offsets = {f"grad {name}": [(reg * params[name], describe_grad)] for name in weights}
    offsets["loss"] = [(0.5 * reg * sum(np.sum(params[name] ** 2) for name in weights), describe_loss)]
    return offsets


@dataclass
class Constructor:
    """The parameters a student's model constructor takes."""

    names: set[str]
    defaults: dict[str, Any]
    any_keyword: bool
    doc: str

    @classmethod
    def of(cls, model_class: type) -> "Constructor":
        try:
            parameters = inspect.signature(model_class).parameters.values()
        except (TypeError, ValueError):
            return cls(set(), {}, True, "")
        doc = (model_class.__doc__ or "") + (getattr(model_class.__init__, "__doc__", "") or "")
        return cls({p.name for p in parameters}, {p.name: p.default for p in parameters
                                                  if p.default is not inspect.Parameter.empty},
                   any(p.kind is p.VAR_KEYWORD for p in parameters), doc)

    def takes(self, name: str) -> bool:
        return name in self.names or self.any_keyword and not self.names - {"args", "kwargs"}


def constructor_kwargs(spec: ModelSpec, case: ModelCase, constructor: Constructor, layer_convention: str
                       ) -> tuple[dict, str, str]:
    """
    The student's constructor arguments for a case.

    Returns a tuple of:
    - kwargs: What to pass (architecture, dtype, and the case's option in the student's API)
    - skip: '' or why the constructor cannot express this case
    - note: How the option was expressed ('normalization="batchnorm"', 'dropout=0.3 (p = drop probability)')
    """
    missing = [k for k in case.kwargs if not constructor.takes(k)]
    if missing:
        return {}, f"the constructor takes no {', '.join(missing)}", ""
    kwargs = dict(case.kwargs)
    if constructor.takes("dtype"):
        kwargs["dtype"] = np.float64
    note = ""
    if case.part == "batchnorm":
        if "use_batchnorm" in constructor.names or constructor.any_keyword and "normalization" not in constructor.names:
            kwargs["use_batchnorm"] = True
        elif "normalization" in constructor.names:
            kwargs["normalization"] = "batchnorm"
            note = 'normalization="batchnorm"'
        else:
            return {}, "the constructor takes no use_batchnorm or normalization (optional part)", ""
    if case.part != "dropout":  # no dropout, said the way this constructor says it
        if "dropout_keep_ratio" in constructor.names and constructor.defaults.get("dropout_keep_ratio") != 1:
            kwargs["dropout_keep_ratio"] = 1
        elif "dropout" in constructor.names and constructor.defaults.get("dropout") not in (0, 1):
            kwargs["dropout"] = 1 if _model_dropout_convention(constructor, layer_convention)[0] == KEEP else 0
    if case.part == "dropout":
        keep = case.keep
        if "dropout_keep_ratio" in constructor.names:
            kwargs["dropout_keep_ratio"] = keep
            note = f"dropout_keep_ratio={keep}"
        elif "dropout" in constructor.names or constructor.any_keyword:
            convention, source = _model_dropout_convention(constructor, layer_convention)
            value = keep if convention == KEEP else round(1 - keep, 12)
            kwargs["dropout"] = value
            note = f"dropout={value:g} (p = {convention} probability, {source})"
        else:
            return {}, "the constructor takes no dropout or dropout_keep_ratio", ""
    return kwargs, "", note


def _model_dropout_convention(constructor: Constructor, layer_convention: str) -> tuple[str, str]:
    if layer_convention:
        return layer_convention, "as its dropout_forward"
    default = constructor.defaults.get("dropout")
    if default == 0:
        return DROP, "default dropout=0 means none"
    if default == 1:
        return KEEP, "default dropout=1 means none"
    hinted = docstring_convention(constructor.doc)
    if hinted:
        return hinted, "from the docstring"
    return KEEP, "assumed"


def _params_problem(got: Any, expected: dict) -> str:
    if not isinstance(got, dict):
        return f"model.params is a {type(got).__name__}, expected a dict"
    missing = [n for n in expected if n not in got]
    extra = [n for n in got if n not in expected]
    wrong = [f"{n} {np.shape(got[n])} (expected {expected[n].shape})" for n in expected
             if n in got and np.shape(got[n]) != expected[n].shape]
    parts = [f"{what} {', '.join(names)}" for what, names in (("missing", missing), ("unexpected", extra),
                                                              ("wrong shape", wrong)) if names]
    return "params differ from the notebook's: " + "; ".join(parts) if parts else ""


def _patch_dropout(modules, convention: str) -> None:
    """Make the student's model use autocnn's dropout (same mask for the same seed), p read in its convention."""
    import autocnn.core.layers as layers

    def dropout_forward(x, dropout_param):
        param = dict(dropout_param)
        if convention == DROP and "p" in param:
            param["p"] = 1 - param["p"]
        return layers.dropout_forward(x, param)

    for module in modules:
        namespace = vars(module)
        if "dropout_forward" in namespace:
            namespace["dropout_forward"] = dropout_forward
        if "dropout_backward" in namespace:
            namespace["dropout_backward"] = layers.dropout_backward


def run_model_spec(spec: ModelSpec, model_class: type, rng: np.random.RandomState, ctx: Context,
                   layer_convention: str = "", modules=()) -> None:
    """Check a model class: same constructor arguments, same params -> same loss, grads and scores."""
    constructor = Constructor.of(model_class)
    for model_case in spec.cases:
        function = model_function(spec, model_case.part)
        outputs = model_outputs(spec, model_case.part)
        case = Case(model_case.label, (), model_case.tags, {"N": model_case.num_examples})
        if spec.name in ctx.blank:
            for output in outputs:
                ctx.emit(function, output, case, problem=ctx.blank[spec.name], kind="todo")
            continue
        kwargs, skip, note = constructor_kwargs(spec, model_case, constructor, layer_convention)
        if skip:
            for output in outputs:
                ctx.emit(function, output, case, skipped=skip, kind="skip")
            continue
        if model_case.part == "dropout":
            convention = KEEP if "dropout_keep_ratio" in kwargs or "p = keep" in note else DROP
            _patch_dropout(modules, convention)
            note += "; dropout layers replaced by autocnn's so that the masks match"
        _check_model_case(spec, model_case, model_class, kwargs, function, outputs, rng, ctx,
                          (f"note: {note}",) if note else ())


@dataclass
class ModelRun:
    """One model case: autocnn's model and the student's, the same params, one batch."""

    function: str
    outputs: list[str]
    case: Case
    mine: Any
    params: dict
    X: np.ndarray
    y: np.ndarray

    def fail_all(self, ctx: Context, problem: str, kind: str = "", train_only: bool = False) -> None:
        """The problem on every output (train_only: all but the test-time scores, judged apart)."""
        for output in self.outputs[:-1] if train_only else self.outputs:
            ctx.emit(self.function, output, self.case, problem=problem, kind=kind)


def _draw_model_run(spec: ModelSpec, model_case: ModelCase, function: str, outputs: list[str], rng) -> ModelRun:
    mine = autocnn_model(spec, model_case)
    params = draw_model_params(rng, {name: value.shape for name, value in mine.params.items()})
    X = rng.randn(model_case.num_examples, *model_case.input_shape)
    y = rng.randint(model_case.kwargs["num_classes"], size=model_case.num_examples)
    case = Case(model_case.label, (), model_case.tags, {"N": model_case.num_examples},
                offsets=_reg_offsets(model_case.kwargs["reg"], params))
    return ModelRun(function, outputs, case, mine, params, X, y)


def _build_user_model(run: ModelRun, model_class: type, kwargs: dict, ctx: Context):
    """The student's model with autocnn's params, or None (its rows emitted) when that fails."""
    try:
        model = ctx.call(run.function, run.case, run.outputs, model_class, **kwargs)
    except USER_ERRORS as error:
        return run.fail_all(ctx, "the constructor " + ctx.raised(error))
    problem = _params_problem(getattr(model, "params", None), run.mine.params)
    if problem:
        return run.fail_all(ctx, problem)
    for name, value in run.params.items():
        model.params[name] = value.copy()
        run.mine.params[name] = value.copy()
    return model


def _judge_loss_and_grads(run: ModelRun, model, ctx: Context, notes: tuple[str, ...]) -> None:
    # autocnn's side first: its running statistics must be updated even if the student's call fails.
    expected_loss, expected_grads = run.mine.loss(run.X.copy(), run.y.copy())
    snapshot = (run.X.copy(), run.y.copy(), copy.deepcopy(run.params))
    user_X, user_y = run.X.copy(), run.y.copy()
    try:
        result = ctx.call(run.function, run.case, run.outputs, model.loss, user_X, user_y)
    except NotImplementedError:
        return run.fail_all(ctx, "loss raises NotImplementedError", "todo", train_only=True)
    except USER_ERRORS as error:
        return run.fail_all(ctx, ctx.raised(error), train_only=True)
    changed = mutated_inputs(("X", "y", "params"), snapshot, (user_X, user_y, dict(model.params)), ())
    mutation = f"loss() modifies {', '.join(changed)} in place" if changed else ""
    if not isinstance(result, (tuple, list)) or len(result) != 2 or not isinstance(result[1], dict):
        if result is None or isinstance(result, (tuple, list)) and result and result[0] is None:
            return run.fail_all(ctx, "loss(X, y) returns None", "todo", train_only=True)
        return run.fail_all(ctx, f"wrong type: loss(X, y) returned {type(result).__name__}, "
                                 "expected (loss, grads dict)", train_only=True)
    user_loss, user_grads = result
    _judge(ctx, run.function, "loss", run.case, user_loss, expected_loss, mutation, notes)
    for output in run.outputs[1:-1]:
        param = output[len("grad "):]
        if param not in expected_grads:
            continue
        if param not in user_grads:
            kind = "todo" if not user_grads else ""
            ctx.emit(run.function, output, run.case, problem=f"grads has no '{param}'", kind=kind)
            continue
        _judge(ctx, run.function, output, run.case, user_grads[param], expected_grads[param], mutation)


def _judge_scores(run: ModelRun, model, ctx: Context) -> None:
    try:
        scores = ctx.call(run.function, run.case, ["scores"], model.loss, run.X.copy())
    except USER_ERRORS as error:
        ctx.emit(run.function, "scores", run.case, problem=ctx.raised(error))  # same words: one row if all fail
        return
    _judge(ctx, run.function, "scores", run.case, scores, run.mine.loss(run.X.copy()))


def _check_model_case(spec: ModelSpec, model_case: ModelCase, model_class: type, kwargs: dict, function: str,
                      outputs: list[str], rng, ctx: Context, notes: tuple[str, ...]) -> None:
    """Build both models with the same params; judge the loss and gradients, then test-time scores."""
    run = _draw_model_run(spec, model_case, function, outputs, rng)
    model = _build_user_model(run, model_class, kwargs, ctx)
    if model is None:
        return
    _judge_loss_and_grads(run, model, ctx, notes)
    _judge_scores(run, model, ctx)
