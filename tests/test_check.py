"""`autocnn check`: right on real submissions' layouts and conventions, every real bug caught and explained.

Fixtures (all written for these tests): ``fixtures/broken_layers`` (one bug each),
``fixtures/submissions`` (complete, correct submissions in the UCLA and CS231n layouts),
``fixtures/situations`` (Python 2, NumPy 2, blank starter code, ...). Variants of the
submissions (a missing course package, a classifiers/ folder without __init__.py, the 2022
constructor, a read-only copy) are made in a temporary folder.
"""

import csv
import io
import json
import os
import shutil
import stat
import time
from pathlib import Path

import numpy as np
import pytest

from autocnn.cli import main
from autocnn.tools import check
from autocnn.tools.check import (FAIL, NOT_CHECKED, NOT_IMPLEMENTED, PASS, SKIP, Case, Options, check_one,
                                 check_target, check_targets, compare, format_class, results_as_csv, results_as_json,
                                 run_isolated)

FIXTURES = Path(__file__).parent / "fixtures"
BROKEN = FIXTURES / "broken_layers"
SUBMISSIONS = FIXTURES / "submissions"
SITUATIONS = FIXTURES / "situations"
TIMEOUT = 5.0  # user calls here take milliseconds; the hang test sets its own limit


def rows_by_key(rows):
    return {(row.function, row.output): row for row in rows}


def statuses(rows):
    return {row.status for row in rows}


def copy_submission(name: str, destination: Path) -> Path:
    target = destination / name
    shutil.copytree(SUBMISSIONS / name, target, ignore=shutil.ignore_patterns("__pycache__", "SETUP_WAS_RUN"))
    return target


@pytest.fixture(scope="module")
def reference_result():
    return check_one("reference", Options(timeout=10.0))


@pytest.fixture(scope="module")
def ucla_result():
    return check_one(str(SUBMISSIONS / "ucla"), Options(timeout=TIMEOUT))


@pytest.fixture(scope="module")
def cs231n_result():
    return check_one(str(SUBMISSIONS / "cs231n_2019"), Options(timeout=TIMEOUT))


# ------------------------------------------------------------ correct code passes, in every layout


def test_reference_passes_completely(reference_result):
    rows = reference_result.rows
    assert [(r.function, r.output, r.diagnosis) for r in rows if r.status != PASS] == []
    found = {row.function for row in rows}
    # Every function of the notebook API but the fast layers (fast_layers.py is support code) and both models.
    for spec in check.LAYER_SPECS:
        if spec.forward.endswith("_fast"):
            assert spec.forward not in found
            continue
        assert {spec.forward, *spec.backwards} <= found, spec.forward
    assert {"ThreeLayerConvNet.loss", "FullyConnectedNet.loss (batchnorm)", "FullyConnectedNet.loss (dropout)"} <= found
    assert all(row.error <= row.tolerance == 1e-6 for row in rows)
    assert reference_result.exit_status() == 0


def test_cli_default_target_exits_zero(capsys):
    assert main(["check"]) == 0
    out = capsys.readouterr().out
    assert "passed, 0 failed, 0 not implemented, 0 not checked" in out and "FAIL" not in out


def test_ucla_submission_with_uncompiled_extension_passes(ucla_result):
    rows = rows_by_key(ucla_result.rows)
    assert ucla_result.exit_status() == 0
    assert statuses(ucla_result.rows) == {PASS, SKIP}
    # The student's sandwiches and model use the course's fast layers: the numpy stand-ins make them run.
    assert rows[("conv_relu_pool_backward", "dw")].status == PASS
    assert rows[("ThreeLayerConvNet.loss", "grad W1")].status == PASS
    assert any("im2col_cython is not compiled for this Python: numpy equivalents" in note for note in ucla_result.notes)
    # Support files are not judged: gradient_check.py defines a broken affine_forward; data_utils.py
    # raises if imported; setup.py leaves a marker if imported or run.
    assert rows[("affine_forward", "out")].module == "nndl/layers.py"
    assert not (SUBMISSIONS / "ucla" / "cs231n" / "SETUP_WAS_RUN").exists()
    assert not any(r.function.startswith("import") for r in ucla_result.rows)


def test_conventions_are_accepted_and_named(ucla_result, cs231n_result):
    ucla, cs231n = rows_by_key(ucla_result.rows), rows_by_key(cs231n_result.rows)
    assert ucla[("dropout_forward", "out")].diagnosis == "p = drop probability"
    assert cs231n[("dropout_forward", "out")].diagnosis == "p = keep probability"
    # The 2016 constructor (dropout=0 means none, p dropped) and the 2018+ one (dropout=1, normalization=).
    assert "dropout=0.3 (p = drop probability" in ucla[("FullyConnectedNet.loss (dropout)", "loss")].diagnosis
    assert "dropout=0.7 (p = keep probability" in cs231n[("FullyConnectedNet.loss (dropout)", "loss")].diagnosis
    assert 'normalization="batchnorm"' in cs231n[("FullyConnectedNet.loss (batchnorm)", "loss")].diagnosis
    assert cs231n[("FullyConnectedNet.loss (batchnorm)", "grad gamma1")].status == PASS
    # Sandwich parameters in the student's order, called by name; CS231n names found.
    row = ucla[("conv_batchnorm_relu_pool_forward", "out")]
    assert row.status == PASS and "called by parameter name (x, w, b, conv_param, pool_param, gamma" in row.diagnosis
    assert cs231n[("conv_bn_relu_backward", "dgamma")].status == PASS
    assert cs231n[("affine_bn_relu_backward", "dx")].status == PASS
    # A test-mode batchnorm whose cache is None: the test-mode forward is judged, no backward through it.
    assert ucla[("batchnorm_forward", "out")].status == PASS and ucla[("batchnorm_backward", "dx")].status == PASS
    # The optional batchnorm branch of ThreeLayerConvNet is missing: SKIP with its reason, the rest judged.
    skipped = ucla[("ThreeLayerConvNet.loss (batchnorm)", "-")]
    assert skipped.status == SKIP and "takes no use_batchnorm or normalization" in skipped.diagnosis


def test_later_years_normalizations(cs231n_result):
    rows = rows_by_key(cs231n_result.rows)
    # A layer norm reusing the batchnorm code (it leaves running statistics in ln_param, which is fine).
    for key in [("layernorm_forward", "out"), ("layernorm_backward", "dx"), ("spatial_groupnorm_forward", "out"),
                ("spatial_groupnorm_backward", "dgamma")]:
        assert rows[key].status == PASS, key
    row = rows_by_key(check_target(str(SITUATIONS / "layernorm_wrong_axis.py"), timeout=TIMEOUT))[
        ("layernorm_forward", "out")]
    assert row.status == FAIL and row.diagnosis.startswith("normalizes each feature over the batch (axis 0)")


def test_cs231n_layout_with_failing_package_init(cs231n_result):
    rows = rows_by_key(cs231n_result.rows)
    assert cs231n_result.exit_status() == 0
    # classifiers/__init__.py imports a module the submission lacks; cnn.py and fc_net.py are checked anyway.
    assert rows[("ThreeLayerConvNet.loss", "grad W2")].status == PASS
    assert rows[("ThreeLayerConvNet.loss", "grad W2")].module == "cs231n/classifiers/cnn.py"
    assert any("cs231n/classifiers/__init__.py failed to import" in note for note in cs231n_result.notes)


def test_cs231n_single_file_and_classifiers_without_init(tmp_path):
    rows = check_target(str(SUBMISSIONS / "cs231n_2019" / "cs231n" / "classifiers" / "cnn.py"), timeout=TIMEOUT)
    assert {r.status for r in rows} == {PASS, SKIP} and len(rows) == 9
    submission = copy_submission("cs231n_2019", tmp_path)
    (submission / "cs231n" / "classifiers" / "__init__.py").unlink()
    result = check_one(str(submission / "cs231n"), Options(timeout=TIMEOUT))
    assert result.exit_status() == 0
    assert rows_by_key(result.rows)[("FullyConnectedNet.loss", "grad W1")].status == PASS


def test_2022_constructor_dropout_keep_ratio(tmp_path):
    submission = copy_submission("cs231n_2019", tmp_path)
    fc_net = submission / "cs231n" / "classifiers" / "fc_net.py"
    text = fc_net.read_text().replace("dropout=1, normalization", "dropout_keep_ratio=1, normalization")
    fc_net.write_text(text.replace("dropout != 1", "dropout_keep_ratio != 1").replace("'p': dropout}",
                                                                                     "'p': dropout_keep_ratio}"))
    rows = rows_by_key(check_target(str(fc_net), timeout=TIMEOUT))
    row = rows[("FullyConnectedNet.loss (dropout)", "loss")]
    assert row.status == PASS and "dropout_keep_ratio=0.7" in row.diagnosis
    assert rows[("FullyConnectedNet.loss (dropout)", "grad W1")].status == PASS


def test_an_extension_built_for_another_python_is_stood_in_for(tmp_path):
    submission = copy_submission("ucla", tmp_path)
    (submission / "cs231n" / "im2col_cython.cpython-38-x86_64-linux-gnu.so").write_bytes(b"\x7fELF not loadable")
    result = check_one(str(submission / "nndl" / "conv_layer_utils.py"), Options(timeout=TIMEOUT))
    assert result.exit_status() == 0 and statuses(result.rows) == {PASS}
    assert any("im2col_cython is not compiled for this Python" in note for note in result.notes)


def test_blank_starter_copies_in_the_course_package_are_not_judged(tmp_path):
    submission = copy_submission("ucla", tmp_path)
    (submission / "cs231n" / "layers.py").write_text(
        "def relu_forward(x):\n    out = None\n    pass\n    return out, x\n\n\n"
        "def relu_backward(dout, cache):\n    dx = None\n    return dx\n")
    rows = rows_by_key(check_target(str(submission / "nndl" / "layer_utils.py"), timeout=TIMEOUT))
    # Only nndl/layer_utils.py is the target; with the whole submission, nndl/layers.py's relu is the one judged.
    result = check_one(str(submission), Options(timeout=TIMEOUT))
    by_key = rows_by_key(result.rows)
    assert by_key[("relu_backward", "dx")].status == PASS
    assert by_key[("relu_forward", "out")].module == "nndl/layers.py"
    assert result.exit_status() == 0
    assert rows[("affine_relu_backward", "dx")].status == PASS


def test_missing_course_package(tmp_path):
    submission = copy_submission("ucla", tmp_path)
    shutil.rmtree(submission / "cs231n")
    (submission / "nndl" / "extra.py").write_text(
        "from cs231n.data_utils import load_CIFAR10\n\n\ndef svm_loss(x, y):\n    return 0.0, x\n")
    result = check_one(str(submission), Options(timeout=TIMEOUT))
    rows = rows_by_key(result.rows)
    # The fast layers cnn.py imports stand in from the bundled reference; the model is still judged.
    assert rows[("ThreeLayerConvNet.loss", "grad W1")].status == PASS
    assert any("cs231n.fast_layers: no cs231n/ beside nndl/" in note for note in result.notes)
    row = rows[("import nndl/extra.py", "-")]
    assert row.status == NOT_CHECKED
    assert row.diagnosis == "not checked: needs module cs231n.data_utils, not found beside nndl/"
    assert result.exit_status() == 0  # nothing the student wrote is wrong


def test_callers_of_a_wrong_function_are_judged_on_their_own_code(tmp_path):
    submission = copy_submission("ucla", tmp_path)
    layers = submission / "nndl" / "layers.py"
    text = layers.read_text()
    layers.write_text(text.replace("    flat = x.reshape(x.shape[0], -1)\n    return flat @ w + b, (x, w, b)",
                                   "    out = None\n    pass\n    return out, (x, w, b)", 1))
    result = check_one(str(submission), Options(timeout=TIMEOUT))
    wrong = [(r.function, r.output, r.status) for r in result.rows if r.status not in (PASS, SKIP)]
    # Only the blank function counts against the student; the sandwiches and models calling it
    # are checked with autocnn's affine_forward / affine_backward in its place.
    assert wrong == [("affine_forward", "out", NOT_IMPLEMENTED)]
    assert any("checked with autocnn's versions of affine_forward, affine_backward" in n for n in result.notes)


def test_a_model_whose_backward_raises_still_has_its_scores_judged(tmp_path):
    submission = copy_submission("ucla", tmp_path)
    cnn = submission / "nndl" / "cnn.py"
    text = cnn.read_text()
    old = "_, grads['W1'], grads['b1'] = conv_relu_pool_backward(dh1, cache1)"
    assert old in text
    cnn.write_text(text.replace(old, "_, grads['W1'], grads['b1'] = conv_relu_pool_backward(dh1, cache2)"))
    rows = rows_by_key(check_target(str(cnn), timeout=TIMEOUT))
    train = [r for key, r in rows.items() if key[0] == "ThreeLayerConvNet.loss" and key[1] != "scores"]
    # The error is raised in conv_layer_utils.py, a student file though not the one checked here.
    assert len(train) == 7 and all(r.status == FAIL and "(at nndl/conv_layer_utils.py:" in r.diagnosis for r in train)
    assert rows[("ThreeLayerConvNet.loss", "scores")].status == PASS


def test_a_file_importing_a_broken_file_is_not_checked_not_failed(tmp_path):
    submission = copy_submission("ucla", tmp_path)
    layers = submission / "nndl" / "layers.py"
    layers.write_text(layers.read_text().replace("def relu_forward(x):\n", "def relu_forward(x):\n    print x\n"))
    rows = check_target(str(submission), timeout=TIMEOUT)
    assert [r.function for r in rows if r.status == FAIL] == ["import nndl/layers.py"]
    assert rows_by_key(rows)[("import nndl/cnn.py", "-")].diagnosis == \
        "not checked: imports nndl/layers.py, which does not import"


def test_read_only_folder_gets_no_bytecode_and_nothing_written(tmp_path):
    submission = copy_submission("ucla", tmp_path)
    before = sorted(str(p.relative_to(submission)) for p in submission.rglob("*"))
    for path in [submission, *submission.rglob("*")]:
        path.chmod(path.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    try:
        result = check_one(str(submission / "nndl" / "fc_net.py"), Options(timeout=TIMEOUT))
    finally:
        for path in [submission, *submission.rglob("*")]:
            path.chmod(path.stat().st_mode | stat.S_IWUSR)
    assert result.exit_status() == 0
    assert sorted(str(p.relative_to(submission)) for p in submission.rglob("*")) == before


def test_a_writable_submission_is_left_as_it_was(tmp_path):
    submission = copy_submission("cs231n_2019", tmp_path)
    before = sorted(str(p.relative_to(submission)) for p in submission.rglob("*"))
    check_one(str(submission / "cs231n" / "layers.py"), Options(timeout=TIMEOUT))
    assert sorted(str(p.relative_to(submission)) for p in submission.rglob("*")) == before
    assert not list(submission.rglob("__pycache__"))


def test_optim_py_goes_to_the_update_rule_checker():
    rows = check_target(str(SUBMISSIONS / "ucla" / "nndl" / "optim.py"), timeout=TIMEOUT)
    judged = {r.function for r in rows}
    assert {"sgd_momentum", "rmsprop", "adam"} <= judged, judged
    assert all(r.status == PASS for r in rows), [(r.function, r.output, r.status, r.diagnosis) for r in rows]
    assert {r.module for r in rows} == {"nndl/optim.py"}


def test_a_wrong_update_rule_is_named_in_the_table(tmp_path):
    source = (SUBMISSIONS / "ucla" / "nndl" / "optim.py").read_text()
    broken = tmp_path / "optim.py"
    broken.write_text(source.replace("(np.sqrt(v_hat) + config['epsilon'])", "np.sqrt(v_hat + config['epsilon'])"))
    assert broken.read_text() != source, "the fixture's Adam line changed; update this test"
    rows = [r for r in check_target(str(broken), timeout=TIMEOUT) if r.function == "adam"]
    assert any(r.status == FAIL and "epsilon" in r.diagnosis.lower() for r in rows), \
        [(r.output, r.status, r.diagnosis) for r in rows]


# ------------------------------------------------------------ situations: status and diagnosis


def test_python2_print_statement():
    rows = check_target(str(SITUATIONS / "py2_print"), timeout=TIMEOUT)
    (row,) = [r for r in rows if r.function.startswith("import")]
    assert row.status == FAIL
    assert row.diagnosis == "Python 2 syntax (print statement) at layers.py:9: the checker runs Python 3"
    assert rows_by_key(rows)[("affine_forward", "-")].status == NOT_CHECKED  # what the file would define


def test_true_division_size():
    row = rows_by_key(check_target(str(SITUATIONS / "true_division.py"), timeout=TIMEOUT))[("conv_forward_naive", "out")]
    assert row.status == FAIL and row.error is None
    assert "a float in Python 3: use // (true_division.py:9: H_out = 1 + (H + 2 * pad - HH) / stride)" in row.diagnosis


def test_python2_name():
    row = rows_by_key(check_target(str(SITUATIONS / "py2_xrange.py"), timeout=TIMEOUT))[("max_pool_forward_naive", "out")]
    assert row.status == FAIL and row.diagnosis.startswith("xrange is Python 2: use range (at py2_xrange.py:9)")


def test_numpy2_removed_name():
    rows = rows_by_key(check_target(str(SITUATIONS / "numpy2_product.py"), timeout=TIMEOUT))
    row = rows[("affine_forward", "out")]
    assert row.status == FAIL and row.error is None
    assert row.diagnosis.startswith("np.product: removed in NumPy 2, use np.prod (at numpy2_product.py:6)")
    assert rows[("relu_backward", "dx")].status == PASS


def test_blank_functions_are_not_implemented_never_pass():
    rows = rows_by_key(check_target(str(SITUATIONS / "blank.py"), timeout=TIMEOUT))
    # Rows that all say the same (dx, dw, db of a blank backward) are one row, output "-".
    expected = {("affine_forward", "out"): "returns None", ("affine_backward", "-"): "returns None",
                ("relu_forward", "out"): "raises NotImplementedError", ("relu_backward", "dx"): "assert False",
                ("svm_loss", "-"): "only pass"}
    for key, diagnosis in expected.items():
        assert (rows[key].status, rows[key].diagnosis) == (NOT_IMPLEMENTED, diagnosis), key
    assert rows[("softmax_loss", "dx")].status == PASS
    assert main(["check", str(SITUATIONS / "blank.py")]) == 1


def test_dropout_keeping_one_fraction_but_scaling_by_another_fails():
    rows = rows_by_key(check_target(str(SITUATIONS / "dropout_scale_mismatch.py"), timeout=TIMEOUT))
    row = rows[("dropout_forward", "out")]
    assert row.status == FAIL
    assert "(p = keep probability) but scales them by 1.429, not 1/0.3" in row.diagnosis
    assert rows[("dropout_backward", "dx")].status == NOT_CHECKED


def test_every_independent_failure_pattern_is_named():
    row = rows_by_key(check_target(str(SITUATIONS / "conv_two_bugs.py"), timeout=TIMEOUT))[("conv_forward_naive", "out")]
    assert row.status == FAIL
    assert "fails for cases with pad > 0" in row.diagnosis and "fails for cases with stride 2" in row.diagnosis


def test_a_shape_problem_names_the_cases_it_hinges_on():
    rows = rows_by_key(check_target(str(SITUATIONS / "conv_unpad_slice.py"), timeout=TIMEOUT))
    row = rows[("conv_backward_naive", "dx")]
    assert row.status == FAIL and row.error is None
    assert "wrong shape (1, 2, 0, 0), expected (1, 2, 9, 7)" in row.diagnosis
    assert row.diagnosis.endswith("fails for cases with pad = 0")
    assert rows[("conv_backward_naive", "dw")].status == PASS


def test_exception_names_the_students_file_and_line():
    row = rows_by_key(check_target(str(SITUATIONS / "exception_line.py"), timeout=TIMEOUT))[("relu_backward", "dx")]
    assert row.status == FAIL and row.error is None
    assert row.diagnosis.startswith("raised IndexError: tuple index out of range (at exception_line.py:10)")


def test_debugger_calls_are_skipped_and_input_is_named():
    rows = rows_by_key(check_target(str(SITUATIONS / "debugger_and_input.py"), timeout=TIMEOUT))
    assert rows[("relu_forward", "out")].status == PASS
    row = rows[("relu_backward", "dx")]
    assert row.status == FAIL
    assert row.diagnosis.startswith("waits for keyboard input (input() at debugger_and_input.py:12)")


def test_memory_cap_turns_a_huge_allocation_into_a_row():
    row = rows_by_key(check_target(str(SITUATIONS / "memory_hog.py"), timeout=TIMEOUT))[("relu_forward", "out")]
    assert row.status == FAIL and "MemoryError" in row.diagnosis


def test_only_support_files_means_nothing_checked(capsys):
    assert main(["check", str(SUBMISSIONS / "ucla" / "cs231n")]) == 2
    assert "support files not judged" in capsys.readouterr().out


def test_include_judges_a_support_file_but_never_setup(tmp_path):
    rows = rows_by_key(check_target(str(SUBMISSIONS / "ucla" / "cs231n"), timeout=TIMEOUT,
                                    include=("gradient_check.py", "setup.py")))
    assert rows[("affine_forward", "out")].status == FAIL
    assert "support code must not be judged (at cs231n/gradient_check.py:5)" in rows[("affine_forward", "out")].diagnosis
    assert not (SUBMISSIONS / "ucla" / "cs231n" / "SETUP_WAS_RUN").exists()


# ------------------------------------------------------------ one bug each (broken_layers)

BROKEN_CASES = [
    ("relu_leaks_negative.py", "relu_backward", "dx", "wrong only where x < 0"),
    ("affine_dw_transposed.py", "affine_backward", "dw", "transposed: shape (6, 20), expected (20, 6)"),
    ("affine_dx_flat.py", "affine_backward", "dx", "values right after a reshape"),
    ("softmax_missing_mean.py", "softmax_loss", "dx", "user = N x expected"),
    ("conv_dw_sign_flipped.py", "conv_backward_naive", "dw", "sign flipped"),
    ("max_pool_overwrites_overlaps.py", "max_pool_backward_naive", "dx", "wrong only where pool windows overlap"),
    ("conv_ignores_padding.py", "conv_backward_naive", "dx", "wrong only in the border next to the zero padding"),
    ("relu_mutates_dout.py", "relu_backward", "dx", "modifies its input dout in place"),
    ("raises.py", "dropout_forward", "out", "raised SystemExit: debugging: stop here (at raises.py:"),
    ("batchnorm_eps_outside_sqrt.py", "batchnorm_forward", "out", ""),
]


@pytest.mark.parametrize("fixture, function, output, diagnosis", BROKEN_CASES,
                         ids=[f"{b[0]}:{b[1]}" for b in BROKEN_CASES])
def test_broken_fixture_is_caught_with_its_diagnosis(fixture, function, output, diagnosis):
    rows = rows_by_key(check_target(str(BROKEN / fixture), timeout=TIMEOUT))
    row = rows[(function, output)]
    assert row.status == FAIL
    assert diagnosis in row.diagnosis
    # One bug each: nothing else in the fixture counts against it (raises.py also has a blank forward).
    bugs = {(b[1], b[2]) for b in BROKEN_CASES if b[0] == fixture}
    assert [key for key, r in rows.items() if r.failed and key not in bugs and r.status != NOT_IMPLEMENTED] == []


def test_pattern_hints_name_the_case_that_breaks():
    rows = rows_by_key(check_target(str(BROKEN / "max_pool_overwrites_overlaps.py"), timeout=TIMEOUT))
    assert "fails for cases with overlapping windows" in rows[("max_pool_backward_naive", "dx")].diagnosis
    rows = rows_by_key(check_target(str(BROKEN / "conv_ignores_padding.py"), timeout=TIMEOUT))
    assert "fails for cases with pad > 0" in rows[("conv_backward_naive", "dx")].diagnosis
    assert rows[("conv_backward_naive", "dw")].status == PASS


def test_backward_of_a_failed_forward_is_not_checked_never_passed():
    rows = rows_by_key(check_target(str(BROKEN / "raises.py"), timeout=TIMEOUT))
    assert rows[("affine_forward", "out")].status == NOT_IMPLEMENTED
    row = rows[("affine_backward", "-")]
    assert (row.status, row.diagnosis) == (NOT_CHECKED, "not checked: affine_forward is not implemented")
    row = rows[("dropout_backward", "dx")]
    assert (row.status, row.diagnosis) == (NOT_CHECKED, "not checked: dropout_forward failed")


def test_infinite_loop_is_stopped_and_reported():
    start = time.monotonic()
    rows = rows_by_key(check_target(str(BROKEN / "relu_infinite_loop.py"), timeout=1.0))
    assert time.monotonic() - start < 15
    assert rows[("relu_forward", "out")].status == PASS
    row = rows[("relu_backward", "dx")]
    assert row.status == FAIL and ("timed out after 1 s" in row.diagnosis or "CPU-time limit" in row.diagnosis)


def test_module_that_fails_to_import_is_a_row():
    rows = check_target(str(BROKEN / "import_fails.py"), timeout=TIMEOUT)
    row = rows_by_key(rows)[("import import_fails.py", "-")]
    assert row.status == FAIL and "ZeroDivisionError" in row.diagnosis and "(at import_fails.py:" in row.diagnosis
    assert {r.status for r in rows if r is not row} == {NOT_CHECKED}


def test_folder_with_relative_and_package_imports_and_missing_reg_term():
    rows = rows_by_key(check_target(str(BROKEN / "nndl"), timeout=TIMEOUT))
    for key in [("affine_backward", "dw"), ("affine_relu_backward", "dx"), ("conv_relu_pool_backward", "dw")]:
        assert rows[key].status == PASS
    assert rows[("affine_relu_forward", "out")].module == "nndl/layer_utils.py"
    for name in ("W1", "W2", "W3"):
        row = rows[("ThreeLayerConvNet.loss", f"grad {name}")]
        assert row.status == FAIL
        assert "missing the regularization term" in row.diagnosis
        assert "fails for cases with reg > 0" in row.diagnosis
    assert rows[("ThreeLayerConvNet.loss", "grad b1")].status == PASS
    assert rows[("ThreeLayerConvNet.loss", "loss")].status == PASS
    assert rows[("ThreeLayerConvNet.loss (batchnorm)", "-")].status == SKIP


def test_module_name_target():
    rows = check_target("autocnn.core.layer_utils", timeout=10.0)
    assert rows and all(row.status == PASS for row in rows)
    assert {row.function for row in rows} >= {"conv_relu_pool_forward", "conv_relu_pool_backward"}


# ------------------------------------------------------------ output, exit status, a whole class


def test_cli_json_and_exit_status(capsys):
    assert main(["check", "--json", "--timeout", "2", str(BROKEN / "softmax_missing_mean.py")]) == 1
    payload = json.loads(capsys.readouterr().out)
    assert payload["passed"] is False and payload["exit_status"] == 1
    (target,) = payload["targets"]
    dx = next(row for row in target["rows"] if row["output"] == "dx")
    assert {"function", "output", "status", "diagnosis"} <= dx.keys()
    assert dx["status"] == FAIL and dx["passed"] is False and dx["error"] > 1e-6
    assert main(["check", "no/such/folder/"]) == 1
    assert "no such file or folder" in capsys.readouterr().err


def test_a_class_at_a_time(tmp_path, capsys):
    broken = tmp_path / "broken_submission"
    broken.mkdir()
    (broken / "layers.py").write_text("import os\nos._exit(7)\n")  # kills whatever imports it
    targets = [str(SUBMISSIONS / "ucla"), str(SITUATIONS / "blank.py"), str(broken), str(SITUATIONS / "py2_print")]
    csv_path = tmp_path / "grades.csv"
    assert main(["check", "--jobs", "2", "--csv", str(csv_path), *targets]) == 1
    out = capsys.readouterr().out
    lines = out.splitlines()
    # 95 layer and model checks and 13 of its optim.py's update rules; the 1 skipped is an option its model lacks
    assert lines[0].startswith(f"{targets[0]}: 108 checks: 107 passed, 0 failed, 0 not implemented, 0 not checked")
    assert lines[1].startswith(f"{targets[1]}: 7 checks: 2 passed, 0 failed, 5 not implemented, 0 not checked")
    assert lines[2].startswith(f"{targets[2]}: ") and "1 failed" in lines[2]  # the broken one did not stop the rest
    assert lines[3].startswith(f"{targets[3]}: 2 checks: 0 passed, 1 failed, 0 not implemented, 1 not checked")
    matrix = {line.split()[0]: line.split()[1:] for line in lines[5:] if line and not line.startswith(("-", "["))}
    assert matrix["relu_forward"] == ["pass", "todo"]
    rows = list(csv.reader(io.StringIO(csv_path.read_text())))
    assert rows[0][:5] == ["submission", "passed", "failed", "not implemented", "not checked"]
    assert [r[0] for r in rows[1:]] == targets
    assert rows[2][rows[0].index("affine_forward")] == "todo"


def test_an_import_that_hangs_is_one_row_and_quick(tmp_path):
    (tmp_path / "layers.py").write_text("def relu_forward(x):\n    return x, x\n\nwhile True:\n    pass\n")
    start = time.monotonic()
    rows = check_target(str(tmp_path / "layers.py"), timeout=1.0)
    assert time.monotonic() - start < 15
    (row,) = rows
    assert row.status == FAIL and "timed out after 1 s" in row.diagnosis and "(import layers.py)" in row.diagnosis


def test_a_large_class_gets_counts_per_function_not_a_matrix():
    results = [check.TargetResult(f"s{i}", [check.Row("relu_forward", "out", 0.0, 1e-6, PASS if i % 3 else FAIL)])
               for i in range(30)]
    lines = format_class(results).splitlines()
    assert lines[0] == "s0: 1 checks: 0 passed, 1 failed, 0 not implemented, 0 not checked"
    counts = next(line for line in lines if line.startswith("relu_forward")).split()[1:]
    assert counts == ["20", "10", "0", "0", "0", "0"]  # pass, FAIL, todo, n/c, skip, absent


def test_class_results_json_and_matrix_functions():
    results = check_targets([str(SITUATIONS / "numpy2_product.py"), str(SITUATIONS / "exception_line.py")],
                            Options(timeout=TIMEOUT), jobs=2)
    payload = results_as_json(results)
    assert [t["target"] for t in payload["targets"]] == [r.target for r in results]
    assert payload["targets"][0]["counts"]["FAIL"] == 1
    text = format_class(results)
    assert "affine_forward" in text and "relu_backward" in text
    assert results_as_csv(results).splitlines()[0].startswith("submission,passed,failed")


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


def test_worker_runs_in_a_scratch_folder_without_bytecode(tmp_path):
    def report(send):
        import sys

        send(("where", os.getcwd(), sys.dont_write_bytecode, os.environ.get("PYTHONDONTWRITEBYTECODE")))

    events, failure = run_isolated(report, timeout=5, limits=check.Limits(5.0, 512, str(tmp_path)))
    assert failure == "" and events == [("where", str(tmp_path), True, "1")]


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


def test_class_timing_experiment_smoke(tmp_path):
    from experiments import check_class

    assert check_class.main(["--smoke", "--out", str(tmp_path)]) == 0
    timing = json.loads((tmp_path / "timing.json").read_text())
    assert timing["submissions"] == 4 and timing["exit_statuses"] == [0, 1] and timing["wall_seconds"] > 0
    lines = (tmp_path / "summary.txt").read_text().splitlines()
    assert lines[0].startswith("student000: ") and "0 failed, 0 not implemented" in lines[0]
    assert "1 not implemented" in lines[1] and "3 failed" in lines[2]
    # The Python 2 print: one FAIL, the file's functions not checked (its optim.py, Python 3, passes)
    assert ": 13 passed, 1 failed, 0 not implemented, 33 not checked" in lines[3]
