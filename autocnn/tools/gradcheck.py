"""Numerical gradients by centred differences, to check analytic gradients.

These mirror the notebook's ``utils/gradient_check.py``. Each function perturbs
its input array x in place, one element at a time, and always puts the original
value back, so x is unchanged afterwards (even if f raises).

Numerical gradients are returned as float64 arrays. For float32 inputs the
difference quotient divides by the step actually stored in x (x + h and x - h
are rounded to float32), which removes most of the error a fixed 2h would add;
float32 still needs a larger h (about 1e-3 to 1e-2) than float64 because f
itself is only accurate to about 1e-7 relative.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np


def _check_perturbable(x: np.ndarray) -> None:
    if not isinstance(x, np.ndarray) or not np.issubdtype(x.dtype, np.floating):
        raise TypeError(f"x must be a floating point numpy array to perturb it, got "
                        f"{type(x).__name__} of dtype {getattr(x, 'dtype', None)}")
    if not x.flags.writeable:
        raise ValueError("x must be writeable: the gradient check perturbs it in place")


def _centred_difference(f: Callable[[np.ndarray], object], x: np.ndarray, index: tuple,
                        h: float, reduce: Callable[[object, object], float]) -> float:
    """
    Return reduce(f(x + h e_i), f(x - h e_i)) / (step actually taken) at one index.

    reduce turns the two outputs into their (float64) difference; the outputs
    are copied first because f may return a view of x.
    """
    old_value = x[index]
    try:
        x[index] = old_value + h
        plus_value = float(x[index])
        output_plus = np.array(f(x), dtype=np.float64, copy=True)
        x[index] = old_value - h
        minus_value = float(x[index])
        output_minus = np.array(f(x), dtype=np.float64, copy=True)
    finally:
        x[index] = old_value
    return reduce(output_plus, output_minus) / (plus_value - minus_value)


def eval_numerical_gradient(f: Callable[[np.ndarray], float], x: np.ndarray,
                            verbose: bool = True, h: float = 1e-5) -> np.ndarray:
    """
    A naive implementation of the numerical gradient of f at x.

    Inputs:
    - f: A function that takes a single argument (the array x) and returns a scalar.
    - x: A floating point numpy array of any shape; the point at which to
      evaluate the gradient. It is perturbed in place and restored.
    - verbose: If True, print each index and its gradient as it is computed.
    - h: Step size of the centred difference.

    Returns:
    - grad: A float64 numpy array of the same shape as x with df/dx.
    """
    _check_perturbable(x)
    grad = np.zeros(x.shape, dtype=np.float64)
    iterator = np.nditer(x, flags=["multi_index"], op_flags=[["readwrite"]])
    while not iterator.finished:
        index = iterator.multi_index
        grad[index] = _centred_difference(f, x, index, h, lambda plus, minus: float(plus - minus))
        if verbose:
            print(index, grad[index])
        iterator.iternext()
    return grad


def eval_numerical_gradient_array(f: Callable[[np.ndarray], np.ndarray], x: np.ndarray,
                                  df: np.ndarray, h: float = 1e-5) -> np.ndarray:
    """
    Evaluate a numeric gradient for a function that accepts a numpy array and
    returns a numpy array, contracted with the upstream gradient df.

    Inputs:
    - f: A function that takes the array x and returns an array out.
    - x: A floating point numpy array; perturbed in place and restored.
    - df: Upstream gradient dL/dout, of the same shape as f(x).
    - h: Step size of the centred difference.

    Returns:
    - grad: A float64 numpy array of the same shape as x with
      dL/dx = sum(df * dout/dx).
    """
    _check_perturbable(x)
    upstream = np.asarray(df, dtype=np.float64)
    grad = np.zeros(x.shape, dtype=np.float64)
    iterator = np.nditer(x, flags=["multi_index"], op_flags=[["readwrite"]])
    while not iterator.finished:
        index = iterator.multi_index
        grad[index] = _centred_difference(
            f, x, index, h, lambda plus, minus: float(np.sum((plus - minus) * upstream)))
        iterator.iternext()
    return grad


def rel_error(x: np.ndarray, y: np.ndarray) -> float:
    """
    Returns the maximum relative error between x and y:
    max(|x - y| / max(1e-8, |x| + |y|)), elementwise, computed in float64.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    return float(np.max(np.abs(x - y) / np.maximum(1e-8, np.abs(x) + np.abs(y))))


def grad_check_sparse(f: Callable[[np.ndarray], float], x: np.ndarray, analytic_grad: np.ndarray,
                      num_checks: int = 10, h: float = 1e-5,
                      rng: np.random.RandomState | np.random.Generator | None = None) -> list[float]:
    """
    Sample a few random elements and compare the numerical gradient with the
    analytic one in those dimensions only, printing one line per check:
    'numerical: %f analytic: %f, relative error: %e'.

    Inputs:
    - f: A function that takes the array x and returns a scalar.
    - x: A floating point numpy array; perturbed in place and restored.
    - analytic_grad: Array of the same shape as x with the gradient to check.
    - num_checks: How many random elements to check.
    - h: Step size of the centred difference.
    - rng: Source of the random indices; None uses the global np.random, so
      np.random.seed() makes the choice reproducible.

    Returns:
    - errors: List of the num_checks relative errors (see rel_error).
    """
    _check_perturbable(x)
    if np.shape(analytic_grad) != x.shape:
        raise ValueError(f"analytic_grad has shape {np.shape(analytic_grad)} but x has shape {x.shape}")
    if rng is None:
        draw = np.random.randint
    else:
        draw = rng.integers if isinstance(rng, np.random.Generator) else rng.randint

    errors = []
    for _ in range(num_checks):
        index = tuple(int(draw(0, size)) for size in x.shape)
        numerical = _centred_difference(f, x, index, h, lambda plus, minus: float(plus - minus))
        analytic = float(analytic_grad[index])
        error = rel_error(numerical, analytic)
        print("numerical: %f analytic: %f, relative error: %e" % (numerical, analytic, error))
        errors.append(error)
    return errors


# ---------------------------------------------------------------------- the notebook's cell [3]

#: The notebook's tolerances for cell [3]: W1 and W2 may reach 1e-2 (kinks of ReLU and max
#: pool inside the finite difference), everything else 1e-5.
NOTEBOOK_TOLERANCES = {"W1": 1e-2, "W2": 1e-2}
NOTEBOOK_DEFAULT_TOLERANCE = 1e-5
#: Two exact gradients of the same float64 loss differ only by rounding.
EXACT_TOLERANCE = 1e-7
#: At most this many failing elements per parameter get the (two extra losses each) kink test.
MAX_KINK_TESTS = 50

ROUNDING, KINK, UNEXPLAINED = "rounding", "kink", "unexplained"


@dataclass
class GradcheckRow:
    """One parameter of the gradient check: the three relative errors and their verdicts.

    - autocnn_vs_numerical / reference_vs_numerical: rel_error of each side's analytic
      gradient against the numerical gradient of its own loss.
    - autocnn_vs_reference: rel_error between the two analytic gradients.
    - tolerance: The notebook's tolerance for the numerical columns.
    - autocnn_causes / reference_causes: Why the elements beyond tolerance are beyond it:
      'rounding' (the centred difference's own rounding error explains the gap),
      'kink' (the loss has a kink within +-h: the centred difference moves by about the
      gap when h is halved), 'unexplained'; empty when the column passes.
    - zero_gradient: Both analytic gradients are zero up to rounding (<= 1000 eps |loss|),
      as for a bias feeding batchnorm; rel_error then compares rounding noise with its
      1e-8 floor, so the exact comparison counts as passed.
    """

    name: str
    autocnn_vs_numerical: float
    reference_vs_numerical: float
    autocnn_vs_reference: float
    tolerance: float
    autocnn_causes: list
    reference_causes: list
    zero_gradient: bool = False

    @property
    def numerical_passes(self) -> tuple[bool, bool]:
        return (self.autocnn_vs_numerical <= self.tolerance, self.reference_vs_numerical <= self.tolerance)

    @property
    def exact_passes(self) -> bool:
        return self.autocnn_vs_reference <= EXACT_TOLERANCE or self.zero_gradient

    @property
    def explained(self) -> bool:
        """Every numerical failure has a known cause (rounding or a kink)."""
        return UNEXPLAINED not in self.autocnn_causes + self.reference_causes


@dataclass
class GradcheckResult:
    """The settings of a notebook gradient check, its loss, rounding noise and rows."""

    settings: dict
    loss: float
    rounding_noise: float
    rows: list

    @property
    def passed(self) -> bool:
        """Every comparison within tolerance."""
        return all(all(row.numerical_passes) and row.exact_passes for row in self.rows)

    @property
    def gradients_agree(self) -> bool:
        """autocnn matches the reference everywhere and every numerical failure is explained."""
        return all(row.exact_passes and row.explained for row in self.rows)

    def to_dict(self) -> dict:
        return {"settings": self.settings, "loss": self.loss, "rounding_noise": self.rounding_noise,
                "passed": self.passed, "gradients_agree": self.gradients_agree,
                "rows": [dict(vars(row), numerical_passes=list(row.numerical_passes), exact_passes=row.exact_passes)
                         for row in self.rows]}


def _failure_causes(f: Callable[[np.ndarray], float], x: np.ndarray, numerical: np.ndarray,
                    analytic: np.ndarray, tolerance: float, noise: float, h: float) -> list[str]:
    """
    Why do the elements of numerical and analytic that differ by more than tolerance differ?

    - rounding: |numerical - analytic| <= 10 * noise, where noise = eps * |loss| / h is
      the rounding error of the centred difference itself.
    - kink: the centred difference with step h/2 differs from the one with step h by
      more than rounding and by at least half the gap. On a smooth loss the two agree
      to O(h^2); they differ when the loss bends sharply inside [x-h, x+h] (a ReLU or a
      max-pool switch), where no centred difference is right.
    - unexplained: neither.

    Returns the sorted list of causes found (empty if nothing exceeds tolerance).
    """
    numerical = np.asarray(numerical, dtype=np.float64)
    analytic = np.asarray(analytic, dtype=np.float64)
    gaps = np.abs(numerical - analytic)
    errors = gaps / np.maximum(1e-8, np.abs(numerical) + np.abs(analytic))
    failing = np.argwhere(errors > tolerance)
    causes = set()
    kink_tests = 0
    for index in map(tuple, failing):
        if gaps[index] <= 10 * noise:
            causes.add(ROUNDING)
            continue
        kink_tests += 1
        if kink_tests > MAX_KINK_TESTS:
            causes.add(UNEXPLAINED)
            break
        # A smooth loss gives the same centred difference at h and h/2 (they differ by
        # O(h^2)); across a kink it depends on where in the interval the kink falls.
        half_step = _centred_difference(f, x, index, h / 2, lambda plus, minus: float(plus - minus))
        shift = abs(half_step - numerical[index])
        causes.add(KINK if shift > 20 * noise and shift >= 0.5 * gaps[index] else UNEXPLAINED)
    return sorted(causes)


def notebook_gradient_check(weight_scale: float = 1e-3, seed: int | None = None, use_batchnorm: bool = False,
                            input_dim: tuple[int, int, int] = (3, 16, 16), num_inputs: int = 2,
                            num_filters: int = 3, filter_size: int = 3, hidden_dim: int = 7,
                            h: float = 1e-6) -> GradcheckResult:
    """
    Run the notebook's cell [3] on autocnn's ThreeLayerConvNet and the hand-written one.

    As in the cell: X ~ randn(num_inputs, *input_dim), y ~ randint(10), a float64
    ThreeLayerConvNet(num_filters=3, filter_size=3, input_dim, hidden_dim=7) with
    reg 0, and for every parameter the numerical gradient with h = 1e-6. The
    reference model gets the autocnn model's parameters, so both sides compute
    the same loss.

    Inputs:
    - weight_scale: Std of the initial weights (the cell uses the default, 1e-3).
    - seed: Seed of np.random before X, y and the weights are drawn; None leaves
      np.random as it is (as the notebook does).
    - use_batchnorm: Check the batchnorm variant of the network.
    - input_dim, num_inputs, num_filters, filter_size, hidden_dim, h: The cell's sizes and step.

    Returns:
    - A GradcheckResult with one row per parameter, in sorted order as the cell prints them.
    """
    from autocnn.core.models import ThreeLayerConvNet
    from reference.cnn import ThreeLayerConvNet as ReferenceThreeLayerConvNet

    if seed is not None:
        np.random.seed(seed)
    X = np.random.randn(num_inputs, *input_dim)
    y = np.random.randint(10, size=num_inputs)
    kwargs = dict(num_filters=num_filters, filter_size=filter_size, input_dim=tuple(input_dim),
                  hidden_dim=hidden_dim, weight_scale=weight_scale, reg=0.0, dtype=np.float64,
                  use_batchnorm=use_batchnorm)
    model = ThreeLayerConvNet(**kwargs)
    reference = ReferenceThreeLayerConvNet(**kwargs)
    reference.params = {name: value.copy() for name, value in model.params.items()}

    loss, grads = model.loss(X, y)
    _, reference_grads = reference.loss(X, y)
    noise = float(np.finfo(np.float64).eps * abs(float(loss)) / h)  # rounding error of one centred difference
    rows = []
    for name in sorted(grads):
        tolerance = NOTEBOOK_TOLERANCES.get(name, NOTEBOOK_DEFAULT_TOLERANCE)
        sides = []
        for net, analytic in ((model, grads[name]), (reference, reference_grads[name])):
            f = lambda _, net=net: net.loss(X, y)[0]  # noqa: E731  (the cell's own lambda)
            numerical = eval_numerical_gradient(f, net.params[name], verbose=False, h=h)
            causes = _failure_causes(f, net.params[name], numerical, analytic, tolerance, noise, h)
            sides.append((rel_error(numerical, analytic), causes))
        largest = max(np.max(np.abs(grads[name])), np.max(np.abs(reference_grads[name])))
        rows.append(GradcheckRow(name=name, autocnn_vs_numerical=sides[0][0], reference_vs_numerical=sides[1][0],
                                 autocnn_vs_reference=rel_error(grads[name], reference_grads[name]),
                                 tolerance=tolerance, autocnn_causes=sides[0][1], reference_causes=sides[1][1],
                                 zero_gradient=bool(largest <= 1000 * np.finfo(np.float64).eps * abs(float(loss)))))
    settings = dict(kwargs, input_dim=list(input_dim), dtype="float64", num_inputs=num_inputs, seed=seed, h=h)
    return GradcheckResult(settings=settings, loss=float(loss), rounding_noise=noise, rows=rows)


def format_gradcheck(result: GradcheckResult) -> str:
    """
    The result as text: the notebook's lines ('W1 max relative error: ...', for
    autocnn), then the three-way table with PASS/FAIL, then the verdict and,
    when a numerical column fails although autocnn matches the reference, why.
    """
    lines = ["{} max relative error: {}".format(row.name, row.autocnn_vs_numerical) for row in result.rows]
    lines.append("")
    header = (f"{'param':<7}{'tol':>7}  {'autocnn vs numerical':<22}{'reference vs numerical':<24}"
              f"{'autocnn vs reference':<22}{'note'}")
    lines += [header, "-" * (len(header) + 6)]

    def cell(error: float, passed: bool, width: int) -> str:
        return f"{error:.2e} {'PASS' if passed else 'FAIL'}".ljust(width)

    for row in result.rows:
        autocnn_ok, reference_ok = row.numerical_passes
        why = "+".join(sorted(set(row.autocnn_causes + row.reference_causes)))
        if row.zero_gradient and row.autocnn_vs_reference > EXACT_TOLERANCE:
            why = "+".join(filter(None, [why, "zero gradient"]))
        lines.append(f"{row.name:<7}{row.tolerance:>7.0e}  {cell(row.autocnn_vs_numerical, autocnn_ok, 22)}"
                     f"{cell(row.reference_vs_numerical, reference_ok, 24)}"
                     f"{cell(row.autocnn_vs_reference, row.exact_passes, 22)}{why}")
    settings = result.settings
    lines.append(f"(tolerances: W1, W2 1e-2, the rest 1e-5 as in the notebook; autocnn vs reference "
                 f"{EXACT_TOLERANCE:g}. weight_scale {settings['weight_scale']:g}, seed {settings['seed']}, "
                 f"batchnorm {settings['use_batchnorm']}, h {settings['h']:g}, loss {result.loss:.6f})")

    causes = {cause for row in result.rows for cause in row.autocnn_causes + row.reference_causes}
    if result.passed:
        lines.append("PASS: every gradient is within the notebook's tolerances.")
    elif result.gradients_agree:
        failing = ", ".join(row.name for row in result.rows if not all(row.numerical_passes))
        lines.append(f"GRADIENTS AGREE: autocnn matches the hand-written reference to <= {EXACT_TOLERANCE:g} "
                     f"everywhere; the numerical columns fail for {failing} because the finite difference "
                     f"itself is off there, on both sides alike:")
        if ROUNDING in causes:
            lines.append(
                f"  rounding: (f(x+h) - f(x-h)) / 2h carries a rounding error of about eps * |loss| / h = "
                f"{result.rounding_noise:.1e}. At weight_scale {settings['weight_scale']:g} some gradients are "
                f"only ~1e-6 or less, so that error alone exceeds the tolerance (the notebook's own printout "
                f"shows W3 at 2.8e-04). A larger weight scale lifts the gradients above it: "
                f"--weight-scale 1e-2 --seed 12 passes.")
        if KINK in causes:
            lines.append(
                "  kink: a ReLU input or a max-pool winner changes within +-h of the point, so the loss bends "
                "there and the slopes left and right of it differ; no centred difference is right at a kink "
                "(the reason the notebook allows W1, W2 1e-2). Another --seed moves the point away from it.")
    else:
        lines.append("FAIL: a gradient disagrees beyond what rounding or kinks explain (see the FAIL cells).")
    zeros = [row.name for row in result.rows if row.zero_gradient and row.autocnn_vs_reference > EXACT_TOLERANCE]
    if zeros:
        lines.append(f"  zero gradient: {', '.join(zeros)} feed(s) batchnorm, which removes any constant, so the "
                     f"exact gradient is 0 and both sides return rounding noise (<= 1000 eps |loss|); rel_error "
                     f"divides that noise by its 1e-8 floor, so autocnn vs reference counts as PASS there.")
    return "\n".join(lines)
