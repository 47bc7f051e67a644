"""``autocnn check``: a student's hand-written notebook layers and models against autograd.

Only what the student wrote is judged: the functions and classes their own files define
(course support files such as ``fast_layers.py`` or ``setup.py`` are not, and ``setup.py``
is never imported). Every known function is run on random float64 inputs over several
shapes, and each forward output and gradient is compared with autocnn's forward and
autograd's *exact* derivative of it (no finite differences, so a 1e-6 tolerance is
meaningful). Conventions that differ between course years (what dropout's p means, the
fully connected net's constructor, sandwich parameter order, an optional batchnorm
branch) are accepted and named on the row.

User code runs only in forked, confined workers (CPU and memory limits, a scratch working
directory, no bytecode written): an exception, an infinite loop, ``sys.exit`` or a crash
ends up on its row and never stops the checker.

Library API: ``check_target(target) -> list[Row]``; ``check_targets(targets, options, jobs)
-> list[TargetResult]`` for a class; ``format_results``, ``format_class``,
``results_as_json``, ``results_as_csv`` print them.
"""

from autocnn.tools.check.cases import Case
from autocnn.tools.check.checker import DEFAULT_TARGET, Options, check_one, check_plan, check_target, check_targets
from autocnn.tools.check.diagnosis import compare, describe_exception
from autocnn.tools.check.isolation import DEFAULT_MEMORY_MB, DEFAULT_TIMEOUT, Limits, run_isolated
from autocnn.tools.check.loading import plan_target
from autocnn.tools.check.report import (FAIL, NOT_CHECKED, NOT_IMPLEMENTED, PASS, SKIP, Outcome, Row, TargetResult,
                                        format_class, format_results, format_table, overall_exit_status,
                                        results_as_csv, results_as_json, summarize)
from autocnn.tools.check.runner import LAYER_TOLERANCE, MODEL_TOLERANCE, as_gradient_tuple, draw_model_params
from autocnn.tools.check.specs import KNOWN_CLASSES, KNOWN_FUNCTIONS, LAYER_SPECS, MODEL_SPECS, LayerSpec, ModelSpec

__all__ = ["Case", "DEFAULT_TARGET", "Options", "check_one", "check_plan", "check_target", "check_targets", "compare",
           "describe_exception", "DEFAULT_MEMORY_MB", "DEFAULT_TIMEOUT", "Limits", "run_isolated", "plan_target",
           "FAIL", "NOT_CHECKED", "NOT_IMPLEMENTED", "PASS", "SKIP", "Outcome", "Row", "TargetResult", "format_class",
           "format_results", "format_table", "overall_exit_status", "results_as_csv", "results_as_json", "summarize",
           "LAYER_TOLERANCE", "MODEL_TOLERANCE", "as_gradient_tuple", "draw_model_params", "KNOWN_CLASSES",
           "KNOWN_FUNCTIONS", "LAYER_SPECS", "MODEL_SPECS", "LayerSpec", "ModelSpec"]
