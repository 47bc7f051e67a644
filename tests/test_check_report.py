"""``from autocnn import check``: the checker's rows as a report a notebook displays."""

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import autocnn
from autocnn.tools import check as checker
from autocnn.tools.check_report import CheckReport, ClassReport, check, check_all, worst_case_difference

ROOT = Path(__file__).resolve().parents[1]
BROKEN = ROOT / "tests" / "fixtures" / "broken_layers"
TIMEOUT = 5.0


@pytest.fixture(scope="module")
def reference_report():
    return check("reference")


@pytest.fixture(scope="module")
def padding_report():
    return check(str(BROKEN / "conv_ignores_padding.py"), timeout=TIMEOUT)


def test_import_autocnn_stays_light_and_check_is_lazy():
    code = ("import sys, autocnn; heavy = [m for m in ('numpy', 'matplotlib', 'autograd') if m in sys.modules]; "
            "from autocnn import check; import autocnn.tools.check_report as r; "
            "print(heavy, check is r.check)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[] True"
    with pytest.raises(AttributeError, match="no attribute 'chek'"):
        autocnn.chek  # noqa: B018
    assert "check" in dir(autocnn)


def test_reference_report_passes_and_prints_the_cli_table(reference_report):
    assert reference_report.passed
    assert reference_report.rows and all(row.status == "PASS" for row in reference_report.rows)
    assert str(reference_report) == checker.format_results([("reference", reference_report.rows)])
    assert repr(reference_report) == str(reference_report)
    page = reference_report._repr_html_()
    assert page.count(">PASS</td>") == len(reference_report.rows) and ">FAIL<" not in page
    assert "passed" in page and "conv_backward_naive" in page


def test_to_dict_is_plain_json_with_the_rows_of_the_cli(reference_report):
    data = reference_report.to_dict()
    assert json.loads(json.dumps(data)) == data
    cli_entry = checker.results_as_json([("reference", reference_report.rows)])["targets"][0]
    assert data["rows"] == cli_entry["rows"] and data["passed"] is True
    assert data["notes"] == [] and data["pictures"] == []


def test_a_padding_bug_shows_as_a_border(padding_report):
    assert not padding_report.passed
    assert [(row.function, row.output) for row in padding_report.failures] == [("conv_backward_naive", "dx")]
    (function, output, case, image), = padding_report.pictures
    assert (function, output) == ("conv_backward_naive", "dx") and "pad 1" in case
    # A 3x3 filter over 1 pixel of padding reaches 2 pixels into the image: wrong there, right inside.
    inside = np.zeros(image.shape, dtype=bool)
    inside[2:-2, 2:-2] = True
    assert np.all(image[inside] < 1e-9)
    assert np.all(image[~inside] > 1e-6)
    page = padding_report._repr_html_()
    assert ">FAIL</td>" in page and "data:image/png;base64," in page and "border next to the zero padding" in page
    data = padding_report.to_dict()
    assert data["passed"] is False and data["pictures"][0]["function"] == "conv_backward_naive"
    assert json.loads(json.dumps(data)) == data


def test_overlapping_pool_windows_show_where_they_overlap():
    report = check(str(BROKEN / "max_pool_overwrites_overlaps.py"), timeout=TIMEOUT)
    (function, output, case, image), = report.pictures
    assert (function, output) == ("max_pool_backward_naive", "dx")
    # The worst case's geometry, from its label: "x (1, 2, 7, 9), pool 3x3, stride 2".
    assert case == "x (1, 2, 7, 9), pool 3x3, stride 2"
    coverage = np.zeros(image.shape, dtype=int)
    for top in range(0, image.shape[0] - 3 + 1, 2):
        for left in range(0, image.shape[1] - 3 + 1, 2):
            coverage[top:top + 3, left:left + 3] += 1
    assert image.max() > 1e-6
    assert np.all(image[coverage < 2] < 1e-9)


def test_pictures_can_be_turned_off_and_passing_rows_get_none(padding_report):
    report = check(str(BROKEN / "conv_ignores_padding.py"), timeout=TIMEOUT, pictures=False)
    assert report.pictures == [] and "data:image/png" not in report._repr_html_()
    passing = next(row for row in padding_report.rows if row.output == "dw")
    assert worst_case_difference(str(BROKEN / "conv_ignores_padding.py"), passing, timeout=TIMEOUT) is not None
    affine = checker.Row("affine_backward", "dx", 1.0, 1e-6, "FAIL", "", "x (2, 4, 5), w (20, 6)")
    assert worst_case_difference("reference", affine, timeout=TIMEOUT) is None  # no spatial axes


@dataclasses.dataclass
class _RowWithMore(checker.Row):
    convention: str = ""
    difference: object = None
    verdict: str = "extra field the report does not know"


def test_extra_row_fields_are_tolerated_notes_shown_and_arrays_used():
    difference = np.zeros((2, 1, 4, 4))
    difference[1, 0, 0, :] = 3.0
    rows = [_RowWithMore("dropout_forward", "out", 0.0, 1e-6, "PASS", convention="p = drop probability"),
            _RowWithMore("conv_backward_naive", "dx", 0.5, 1e-6, "FAIL", "no simple pattern", "N=2 C=1 4x4",
                         difference=difference),
            _RowWithMore("layernorm_backward", "dx", None, 1e-6, "NOT CHECKED", "needs module cs231n")]
    found = worst_case_difference("unused", rows[1])
    assert found[0] == "N=2 C=1 4x4" and found[1].shape == (4, 4) and found[1][0].tolist() == [3.0] * 4
    report = CheckReport("t", rows, pictures=[("conv_backward_naive", "dx", *found)])
    assert report.notes == ["p = drop probability"]
    assert "note: p = drop probability" in str(report)
    page = report._repr_html_()
    assert "p = drop probability" in page and ">NOT CHECKED</td>" in page and "#9a6700" in page
    assert report.counts() == {"PASS": 1, "FAIL": 1, "NOT CHECKED": 1} and not report.passed
    assert report.to_dict()["pictures"][0]["argmax"] == [0, 0]


def test_check_all_reports_each_target_of_a_class(capsys):
    targets = [str(BROKEN / "relu_leaks_negative.py"), str(BROKEN / "softmax_missing_mean.py")]
    result = check_all(targets, timeout=TIMEOUT, progress=False)
    assert isinstance(result, ClassReport) and not result.passed
    assert [r.target for r in result.reports] == targets
    assert all(len(r.failures) == 1 for r in result.reports)
    # One FAIL per target in the summary table, one more in each target's own table.
    assert result._repr_html_().count(">FAIL</td>") == 4
    assert json.loads(json.dumps(result.to_dict()))["passed"] is False


def test_bad_target_type_names_the_problem():
    with pytest.raises(TypeError, match="use check_all"):
        check(["a", "b"])
    with pytest.raises(ValueError, match="no such file or folder"):
        check("no/such/folder")


def test_check_all_shows_a_progress_bar(capsys):
    check_all([str(BROKEN / "relu_leaks_negative.py")], timeout=TIMEOUT, progress=True)
    err = capsys.readouterr().err
    assert "autocnn check: 100%" in err and "1/1" in err
