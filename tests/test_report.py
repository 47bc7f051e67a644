"""Smoke test of `autocnn report --quick`: every section and figure is written."""

import json
import re

from autocnn.tools import report
from autocnn.cli import main


# What `autocnn bench --json` writes, cut down to what the report reads. The real
# benchmark has its own tests; here only the report's use of its results is checked.
BENCH = {"machine": {"cpu": "test cpu", "cores": 2, "load_average_start": [0.5, 0.5, 0.5]},
         "settings": {"quick": True, "repeats": 2},
         "rows": [{"name": "conv forward+backward N=4 float32", "reference_ms": 2.0, "autocnn_ms": 2.5, "ratio": 1.25},
                  {"name": "3-layer net train step N=8 float32", "reference_ms": 10.0, "autocnn_ms": 9.0,
                   "ratio": 0.9}]}


def test_report_quick_writes_markdown_and_figures(tmp_path, capsys):
    bench_json = tmp_path / "bench.json"
    bench_json.write_text(json.dumps(BENCH))
    out = tmp_path / "report"
    assert main(["report", "--quick", "--out", str(out), "--bench-json", str(bench_json)]) == 0
    assert str(out / "report.md") in capsys.readouterr().out
    text = (out / "report.md").read_text()
    for heading in ("## 1. Code to write", "## 2. Gradient agreement", "## 3. Speed",
                    "## 4. Why numerical gradients need loose tolerances"):
        assert heading in text
    for image in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text):
        assert (out / image).stat().st_size > 10_000, image
    assert {"lines_of_code.png", "step_size.png", "speed_ratios.png"} <= {p.name for p in out.iterdir()}
    assert "| 3-layer net train step N=8 float32 | 10.00 | 9.00 | 0.90× |" in text
    # Exact derivations agree far below the numerical-gradient noise.
    exact = [float(v) for v in re.findall(r"^\| (?:affine|conv \(fast\)) \| d\w+ \| ([0-9.e+-]+) \|", text, re.M)]
    assert exact and max(exact) < 1e-10


def test_report_without_speed_says_so(tmp_path):
    assert main(["report", "--quick", "--no-speed", "--out", str(tmp_path)]) == 0
    assert "Not measured (--no-speed)." in (tmp_path / "report.md").read_text()
    assert main(["report", "--bench-json", str(tmp_path / "missing.json"), "--out", str(tmp_path)]) == 1


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
