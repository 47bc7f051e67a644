"""The promises the project makes about itself: commands, CI, and the oracle's independence."""

import ast
import pathlib
import re
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]


def readme_commands() -> list[str]:
    """The shell commands in the README's opening code block."""
    text = (ROOT / "README.md").read_text()
    block = re.search(r"```(?:bash|sh)?\n(.*?)```", text, re.S)
    assert block, "README.md must open with a code block of commands"
    return [line.strip() for line in block.group(1).splitlines() if line.strip() and not line.startswith("#")]


def test_ci_runs_exactly_the_readme_test_command():
    test_commands = [c for c in readme_commands() if "pytest" in c]
    assert len(test_commands) == 1, test_commands
    ci_lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert test_commands[0] in ci_lines


def test_readme_main_job_installs_and_trains():
    main_jobs = [c for c in readme_commands() if "pytest" not in c]
    assert any("pip install" in c and "autocnn train" in c for c in main_jobs), main_jobs


def test_cli_help_works():
    result = subprocess.run([sys.executable, "-m", "autocnn.cli", "--help"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "usage: autocnn" in result.stdout


def test_reference_imports_nothing_from_autocnn():
    """The oracle must stay independent of what it checks: numpy and the standard library only."""
    for path in sorted((ROOT / "reference").glob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""] if node.level == 0 else ["reference"]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                allowed = top in {"numpy", "reference"} or top in sys.stdlib_module_names
                assert allowed, f"{path.name} imports {name}"


def test_autocnn_ops_write_no_backward():
    """autocnn's layers are forward ops: defvjp appears only in the primitives module."""
    for path in sorted((ROOT / "autocnn").rglob("*.py")):
        if path.name == "primitives.py":
            continue
        source = path.read_text()
        assert "defvjp" not in source and "@primitive" not in source, f"{path.name} defines a gradient by hand"
