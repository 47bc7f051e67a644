"""Smoke test of `autocnn report --quick`: every section and figure is written."""

import re

import pytest

from autocnn import report
from autocnn.cli import main


def fake_benchmark(quick: bool) -> dict:
    assert quick
    return {"rows": [{"name": "conv forward+backward", "reference_ms": 2.0, "autocnn_ms": 2.5, "ratio": 1.25},
                     {"name": "training step", "reference_ms": 10.0, "autocnn_ms": 9.0, "ratio": 0.9}]}


@pytest.fixture
def quick_bench(monkeypatch):
    # The real benchmark has its own tests; here only the report's use of its result is checked.
    monkeypatch.setattr(report, "_run_benchmark", fake_benchmark)


def test_report_quick_writes_markdown_and_figures(tmp_path, capsys, quick_bench):
    out = tmp_path / "report"
    assert main(["report", "--quick", "--out", str(out)]) == 0
    assert str(out / "report.md") in capsys.readouterr().out
    text = (out / "report.md").read_text()
    for heading in ("## 1. Code to write", "## 2. Gradient agreement", "## 3. Speed",
                    "## 4. Why numerical gradients need loose tolerances"):
        assert heading in text
    for image in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text):
        assert (out / image).stat().st_size > 10_000, image
    assert {"lines_of_code.png", "step_size.png", "speed_ratios.png"} <= {p.name for p in out.iterdir()}
    # Exact derivations agree far below the numerical-gradient noise.
    exact = [float(v) for v in re.findall(r"^\| (?:affine|conv \(fast\)) \| d\w+ \| ([0-9.e+-]+) \|", text, re.M)]
    assert exact and max(exact) < 1e-10


def test_count_code_lines_skips_docstring_comments_and_signature():
    source = '''
def f(x,
      y):
    """Doc
    string."""
    # a comment

    z = x + y  # trailing comment counts as code
    return z
'''
    assert report.count_code_lines(source) == 2
