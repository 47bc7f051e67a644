"""The notebooks in experiments/notebooks run headless, quick, on every implementation choice."""

import os
import sys
from pathlib import Path

import numpy as np
import pytest

nbformat = pytest.importorskip("nbformat", reason="the test extra brings nbformat, nbclient and ipykernel")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "experiments" / "notebooks"
STUDENT = ROOT / "tests" / "fixtures" / "student_nndl" / "nndl"
CELL_TIMEOUT = 600  # seconds per cell; quick cells take a few seconds even on a loaded machine

sys.path.insert(0, str(NOTEBOOKS))
import homework  # noqa: E402  (the notebooks' own helper, beside them)


def execute(path: Path, implementation: str | None = None, monkeypatch=None):
    """Run a notebook headless with AUTOCNN_NOTEBOOK_QUICK=1; any cell error raises CellExecutionError."""
    monkeypatch.setenv("AUTOCNN_NOTEBOOK_QUICK", "1")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    notebook = nbformat.read(path, as_version=4)
    if implementation is not None:
        parameters = [cell for cell in notebook.cells if "parameters" in cell.metadata.get("tags", [])]
        assert len(parameters) == 1, "the CNN notebook has one cell that picks the implementation"
        parameters[0].source = f"IMPLEMENTATION = {implementation!r}"
    nbclient.NotebookClient(notebook, timeout=CELL_TIMEOUT, kernel_name="python3",
                            resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()
    return notebook


def text_of(notebook) -> str:
    """Everything the cells printed or displayed as text."""
    parts = []
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            parts.append(output.get("text", ""))
            parts.append(output.get("data", {}).get("text/plain", ""))
            parts.append(output.get("data", {}).get("text/html", ""))
    return "\n".join(parts)


def images_in(notebook) -> int:
    return sum("image/png" in output.get("data", {}) for cell in notebook.cells for output in cell.get("outputs", []))


@pytest.mark.parametrize("choice", ["autocnn", "reference", "student"])
def test_cnn_notebook_runs_on_each_implementation(choice, monkeypatch):
    implementation = str(STUDENT) if choice == "student" else choice
    notebook = execute(NOTEBOOKS / "cnn.ipynb", implementation, monkeypatch)
    text = text_of(notebook)
    assert f"<implementation {implementation!r}" in text
    assert "QUICK mode" in text
    # The notebook's log lines, from every training cell, and the gradient-check cell's.
    assert text.count("(Epoch 0 / ") == 4 and "(Iteration 1 / " in text
    assert "W1 max relative error" in text and "b3 max relative error" in text
    assert images_in(notebook) == 5  # curves after overfitting, the >65% run and the deeper net; filters twice
    # The checker's report of what was chosen, as an HTML table that passed.
    assert "autocnn check" in text and ">FAIL</td>" not in text
    if choice == "student":
        # The switch really used the folder: it has no fast layers, and the checker read the folder.
        assert "conv_backward_fast           (not in this implementation)" in text
        assert f"autocnn check {STUDENT}" in text
    else:
        assert "conv_backward_fast           dx error" in text


def test_teaching_notebook_runs(monkeypatch):
    notebook = execute(NOTEBOOKS / "autodiff_vs_backprop.ipynb", monkeypatch=monkeypatch)
    text = text_of(notebook)
    assert "H v, fast vs pure formulation" in text and "derived vs hand-written" in text
    assert "pure autograd.numpy (slices and sums)" in text and "scipy.signal.correlate" in text
    assert images_in(notebook) >= 3  # lines of code, step sizes, speed


def test_every_notebook_is_tested():
    assert sorted(path.name for path in NOTEBOOKS.glob("*.ipynb")) == ["autodiff_vs_backprop.ipynb", "cnn.ipynb"]


@pytest.mark.parametrize("name", ["cnn.ipynb", "autodiff_vs_backprop.ipynb"])
def test_committed_notebooks_carry_the_outputs_of_a_clean_run(name):
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert all(cell.execution_count for cell in code), "every code cell was run"
    counts = [cell.execution_count for cell in code]
    assert counts == sorted(counts), "the cells were run top to bottom"
    assert not [o for cell in code for o in cell.outputs if o.output_type == "error"]
    assert "which run produced" in " ".join(cell.source for cell in notebook.cells).lower()


def test_implementation_switch_rejects_what_it_cannot_load(tmp_path):
    with pytest.raises(ValueError, match="'autocnn', 'reference' or a folder path"):
        homework.load_implementation("autocnnn")
    with pytest.raises(ValueError, match="no cnn.py"):
        homework.load_implementation(str(tmp_path))
    with pytest.raises(ValueError, match="got None"):
        homework.load_implementation(None)


def test_student_switch_imports_the_folder_and_chains_its_layers():
    student = homework.load_implementation(str(STUDENT))
    assert student.origin["conv_forward_naive"] == "nndl.conv_layers"
    assert student.ThreeLayerConvNet.__module__ == "nndl.cnn"
    assert not student.has("conv_forward_fast")
    reference = homework.load_implementation("reference")
    # The deeper net chained from each side's layers: same architecture, gradients that agree
    # with autograd's derivative of autocnn's ConvNet given the same weights.
    autocnn_net = homework.load_implementation("autocnn").deeper_convnet(
        blocks=[[3], [4]], hidden_dims=[5], reg=0.1, dtype=np.float64, input_dim=(2, 8, 8), num_classes=3)
    rng = np.random.RandomState(0)
    X, y = rng.randn(4, 2, 8, 8), rng.randint(3, size=4)
    expected_loss, expected = autocnn_net.loss(X, y)
    for impl in (student, reference):
        net = impl.deeper_convnet(blocks=[[3], [4]], hidden_dims=[5], reg=0.1, dtype=np.float64,
                                  input_dim=(2, 8, 8), num_classes=3)
        assert sorted(net.params) == sorted(autocnn_net.params)
        for name in net.params:
            net.params[name] = autocnn_net.params[name].copy()
        loss, grads = net.loss(X, y)
        assert abs(loss - expected_loss) < 1e-10
        for name, grad in grads.items():
            scale = max(np.max(np.abs(expected[name])), 1.0)
            assert np.max(np.abs(grad - expected[name])) < 1e-8 * scale, name
        assert net.loss(X).shape == (4, 3)  # test mode: scores


def test_formulation_table_counts_no_rule_for_the_pure_formulation():
    rows = {row["side"]: row for row in homework.formulation_rows("conv")}
    assert rows["autocnn-pure"]["derivative_lines"] == 0
    assert 0 < rows["autocnn-scipy"]["derivative_lines"] < rows["autocnn"]["derivative_lines"]
    assert all(row["median_ms"] is None for row in rows.values())
    fake = {"cases": [{"name": "conv 32->64 3x3 pad 1, 16x16", "phase": "forward+backward", "batch": 50,
                       "sides": {"autocnn-pure": {"median_s": 0.02, "ratio": 1.5}}}]}
    timed = {row["side"]: row for row in homework.formulation_rows("conv", fake, "conv 32->64 3x3 pad 1, 16x16")}
    assert timed["autocnn-pure"]["median_ms"] == pytest.approx(20.0) and timed["autocnn"]["median_ms"] is None
    assert homework.formulation_rows("max pool")[0]["derivative_lines"] == 0
