"""`autocnn check`: the reference passes; each deliberately broken fixture is caught and explained."""

import json
import os
import time
from pathlib import Path

import numpy as np
import pytest

from autocnn.tools import check
from autocnn.tools.check import FAIL, PASS, SKIP, Case, check_target, compare, run_isolated
from autocnn.cli import main

FIXTURES = Path(__file__).parent / "fixtures" / "broken_layers"
TIMEOUT = 2.0  # user calls here take milliseconds; a short limit keeps the hang test fast


def rows_by_key(rows):
    return {(row.function, row.output): row for row in rows}


@pytest.fixture(scope="module")
def reference_rows():
    return check_target("reference", timeout=10.0)


def test_reference_passes_completely(reference_rows):
    failed = [(r.function, r.output, r.diagnosis) for r in reference_rows if r.status != PASS]
    assert failed == []
    found = {row.function for row in reference_rows}
    # Every function of the notebook API and both models were found and checked.
    for spec in check.LAYER_SPECS:
        assert set(spec.functions()) <= found, spec.forward
    assert {"ThreeLayerConvNet.loss", "FullyConnectedNet.loss"} <= found
    assert all(row.error <= row.tolerance == 1e-6 for row in reference_rows)


def test_cli_default_target_exits_zero(capsys):
    assert main(["check"]) == 0
    out = capsys.readouterr().out
    assert "passed, 0 failed" in out and "FAIL" not in out


# (fixture, function, output, words the diagnosis must contain)
BROKEN = [
    ("relu_leaks_negative.py", "relu_backward", "dx", "wrong only where x < 0"),
    ("affine_dw_transposed.py", "affine_backward", "dw", "transposed: shape (6, 20), expected (20, 6)"),
    ("affine_dx_flat.py", "affine_backward", "dx", "values right after a reshape"),
    ("softmax_missing_mean.py", "softmax_loss", "dx", "user = N x expected"),
    ("conv_dw_sign_flipped.py", "conv_backward_naive", "dw", "sign flipped"),
    ("max_pool_overwrites_overlaps.py", "max_pool_backward_naive", "dx", "wrong only where pool windows overlap"),
    ("conv_ignores_padding.py", "conv_backward_naive", "dx", "wrong only in the border next to the zero padding"),
    ("relu_mutates_dout.py", "relu_backward", "dx", "modifies its input dout in place"),
    ("raises.py", "affine_forward", "out", "raised NotImplementedError: YOUR CODE HERE"),
    ("raises.py", "dropout_forward", "out", "SystemExit: debugging: stop here"),
    ("batchnorm_eps_outside_sqrt.py", "batchnorm_forward", "out", ""),
]


@pytest.mark.parametrize("fixture, function, output, diagnosis", BROKEN, ids=[f"{b[0]}:{b[1]}" for b in BROKEN])
def test_broken_fixture_is_caught_with_its_diagnosis(fixture, function, output, diagnosis):
    rows = rows_by_key(check_target(str(FIXTURES / fixture), timeout=TIMEOUT))
    row = rows[(function, output)]
    assert row.status == FAIL
    assert diagnosis in row.diagnosis
    # One bug each (raises.py has two): nothing else in the fixture is reported as failing.
    bugs = {(b[1], b[2]) for b in BROKEN if b[0] == fixture}
    assert [key for key, r in rows.items() if r.status == FAIL and key not in bugs] == []


def test_pattern_hints_name_the_case_that_breaks():
    rows = rows_by_key(check_target(str(FIXTURES / "max_pool_overwrites_overlaps.py"), timeout=TIMEOUT))
    assert "fails only for cases with overlapping windows" in rows[("max_pool_backward_naive", "dx")].diagnosis
    rows = rows_by_key(check_target(str(FIXTURES / "conv_ignores_padding.py"), timeout=TIMEOUT))
    assert "fails only for cases with pad > 0" in rows[("conv_backward_naive", "dx")].diagnosis
    assert rows[("conv_backward_naive", "dw")].status == PASS


def test_backward_of_a_failed_forward_is_skipped_not_failed():
    rows = rows_by_key(check_target(str(FIXTURES / "raises.py"), timeout=TIMEOUT))
    assert rows[("affine_backward", "dw")].status == SKIP
    assert "affine_forward failed" in rows[("affine_backward", "dw")].diagnosis


def test_infinite_loop_is_stopped_and_reported():
    start = time.monotonic()
    rows = rows_by_key(check_target(str(FIXTURES / "relu_infinite_loop.py"), timeout=1.0))
    assert time.monotonic() - start < 8
    assert rows[("relu_forward", "out")].status == PASS
    row = rows[("relu_backward", "dx")]
    assert row.status == FAIL and "timed out after 1 s" in row.diagnosis


def test_module_that_fails_to_import_is_a_row():
    rows = check_target(str(FIXTURES / "import_fails.py"), timeout=TIMEOUT)
    assert [(r.function, r.status) for r in rows] == [("import import_fails.py", FAIL)]
    assert "ZeroDivisionError" in rows[0].diagnosis


def test_folder_with_relative_and_package_imports_and_missing_reg_term():
    rows = rows_by_key(check_target(str(FIXTURES / "nndl"), timeout=TIMEOUT))
    # layers.py, layer_utils.py (`from .layers import *`), cnn.py (`from nndl.layers import *`)
    for key in [("affine_backward", "dw"), ("affine_relu_backward", "dx"), ("conv_relu_pool_backward", "dw")]:
        assert rows[key].status == PASS
    assert rows[("affine_relu_forward", "out")].module == "layer_utils"
    for name in ("W1", "W2", "W3"):
        row = rows[("ThreeLayerConvNet.loss", f"grad {name}")]
        assert row.status == FAIL
        assert "missing the regularization term" in row.diagnosis
        assert "fails only for cases with reg > 0" in row.diagnosis
    assert rows[("ThreeLayerConvNet.loss", "grad b1")].status == PASS
    loss = rows[("ThreeLayerConvNet.loss", "loss")]
    assert loss.status == PASS and "the constructor takes no use_batchnorm" in loss.diagnosis
    assert rows[("ThreeLayerConvNet.loss", "grad gamma1")].status == SKIP


def test_module_name_target():
    rows = check_target("autocnn.core.layer_utils", timeout=10.0)
    assert rows and all(row.status == PASS for row in rows)
    assert {row.function for row in rows} >= {"conv_relu_pool_forward", "conv_relu_pool_backward"}


def test_cli_json_and_exit_status(capsys):
    assert main(["check", "--json", "--timeout", "2", str(FIXTURES / "softmax_missing_mean.py")]) == 1
    payload = json.loads(capsys.readouterr().out)
    assert payload["passed"] is False
    (target,) = payload["targets"]
    dx = next(row for row in target["rows"] if row["output"] == "dx")
    assert dx["status"] == FAIL and dx["passed"] is False and dx["error"] > 1e-6
    assert main(["check", "no/such/folder/"]) == 1
    assert "no such file or folder" in capsys.readouterr().err


# ------------------------------------------------------------ the diagnosis engine


def plain_case(**context):
    return Case("case", (), context=context)


@pytest.mark.parametrize("factor, context, words", [
    (1 / 4, {"N": 4}, "user = expected / N"),
    (4.0, {"N": 4}, "user = N x expected"),
    (-1.0, {}, "sign flipped"),
    (2.0, {"N": 3}, "user = 2 x expected"),
    (0.7, {"p": 0.7}, "missing the 1/p"),
    (1.37, {}, "user = 1.37 x expected"),
])
def test_constant_factor_is_named(factor, context, words):
    expected = np.random.RandomState(0).randn(4, 3)
    error, problem, hints = compare(factor * expected, expected, 1e-6, plain_case(**context), "dx")
    assert error > 1e-6 and problem == ""
    assert words in hints[0]


def test_square_transpose_and_dtype_hints():
    expected = np.random.RandomState(1).randn(5, 5)
    _, _, hints = compare(expected.T.copy(), expected, 1e-6, plain_case(), "dw")
    assert "transposed" in hints
    _, _, hints = compare((expected + 1e-3).astype(np.float32), expected, 1e-6, plain_case(), "dw")
    assert "returned float32 for float64 inputs" in hints


def test_wrong_types_and_nan_are_problems():
    expected = np.ones((2, 3))
    assert compare(None, expected, 1e-6, plain_case(), "dx")[1] == "returned None"
    assert "wrong type: returned list" in compare([[1, 1, 1]] * 2, expected, 1e-6, plain_case(), "dx")[1]
    assert "NaN" in compare(np.full((2, 3), np.nan), expected, 1e-6, plain_case(), "dx")[1]
    assert "wrong shape (3,), expected (2, 3)" == compare(np.ones(3), expected, 1e-6, plain_case(), "dx")[1]


def test_worker_that_dies_is_reported():
    events, failure = run_isolated(lambda send: os._exit(3), timeout=5)
    assert events == [] and failure == "died with exit code 3"


def test_timeout_applies_to_user_calls_not_to_the_checker():
    def slow_checker_then_hung_user(send):
        time.sleep(0.6)  # the checker's own work: allowed up to between_calls
        send(("outcome", "ok"))
        send(("call", "relu_backward", "case", ("dx",)))
        while True:  # user code that never returns
            pass

    start = time.monotonic()
    events, failure = run_isolated(slow_checker_then_hung_user, timeout=0.3, between_calls=5.0)
    assert failure == "timed out after 0.3 s"
    assert [e[0] for e in events] == ["outcome", "call"]
    assert time.monotonic() - start < 4
