"""The layout's rules: what each subpackage may import, and what importing autocnn does.

| where | may import (besides the standard library) |
| --- | --- |
| ``autocnn/core`` | numpy, scipy, autograd, threadpoolctl (BLAS threads), ``autocnn.core``, ``reference.validation`` |
| ``autocnn/training`` | numpy, ``autocnn.core``, ``autocnn.files``, ``reference.validation`` |
| ``autocnn/data`` | numpy, tqdm, ``autocnn.files`` |
| ``autocnn/tools`` | anything above, matplotlib, tqdm, dask (the sweep), torch (optional, for the bench), ``reference``; not ``autocnn.cli`` |
| ``autocnn/cli`` | anything; the only place that imports argparse or picks the matplotlib backend |
| ``reference`` | numpy, ``reference`` (the oracle knows nothing of autocnn) |
"""

from __future__ import annotations

import ast
import json
import pathlib
import re
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]

ALLOWED: dict[str, tuple[str, ...]] = {
    "autocnn/core": ("numpy", "scipy", "autograd", "threadpoolctl", "autocnn.core", "reference.validation"),
    "autocnn/training": ("numpy", "autocnn.core", "autocnn.files", "autocnn.training", "reference.validation"),
    "autocnn/data": ("numpy", "tqdm", "autocnn.files", "autocnn.data"),
    "autocnn/tools": ("numpy", "scipy", "autograd", "matplotlib", "tqdm", "dask", "distributed", "torch", "threadpoolctl",
                      "autocnn.core", "autocnn.training",
                      "autocnn.data", "autocnn.files", "autocnn.tools", "autocnn.gradcheck", "reference"),
    "reference": ("numpy", "reference"),
}


def imported_modules(path: pathlib.Path) -> list[str]:
    """Every module a file imports, absolute (relative imports resolved against its package)."""
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            names.append(module)
            # "from autocnn.core import ops" imports autocnn.core.ops
            names += [f"{module}.{alias.name}" for alias in node.names if module.startswith(("autocnn", "reference"))]
    return names


def _allowed(name: str, allowed: tuple[str, ...]) -> bool:
    top = name.split(".")[0]
    if top in sys.stdlib_module_names and top not in ("autocnn", "reference"):
        return True
    return any(name == prefix or name.startswith(prefix + ".") for prefix in allowed) or \
        any(prefix.startswith(name + ".") for prefix in allowed)  # "from autocnn import core" style parents


@pytest.mark.parametrize("folder", sorted(ALLOWED))
def test_each_subpackage_imports_only_what_its_rule_allows(folder):
    files = sorted((ROOT / folder).rglob("*.py"))
    assert files, folder
    for path in files:
        for name in imported_modules(path):
            assert _allowed(name, ALLOWED[folder]), f"{path.relative_to(ROOT)} imports {name}"


def test_only_the_cli_imports_argparse_or_picks_a_matplotlib_backend():
    for path in sorted((ROOT / "autocnn").rglob("*.py")):
        if "cli" in path.relative_to(ROOT).parts:
            continue
        names = imported_modules(path)
        assert "argparse" not in names, f"{path.relative_to(ROOT)} imports argparse"
        assert "matplotlib.pyplot" not in names, f"{path.relative_to(ROOT)} imports pyplot (global figure state)"
        assert "matplotlib.use(" not in path.read_text(), f"{path.relative_to(ROOT)} picks a backend"


def test_autograd_internals_are_used_in_one_module_only():
    for path in sorted((ROOT / "autocnn").rglob("*.py")):
        if path.name == "autograd_internals.py":
            continue
        for name in imported_modules(path):
            assert not name.startswith(("autograd.tracer", "autograd.core", "autograd.util")), \
                f"{path.relative_to(ROOT)} imports {name}: go through autocnn.core.autograd_internals"


IMPORT_EVERYTHING = """
import importlib, json, pathlib, sys
import matplotlib
backend_before = dict.__getitem__(matplotlib.rcParams, "backend")
root = pathlib.Path("autocnn")
names = [".".join(path.with_suffix("").parts).removesuffix(".__init__") for path in sorted(root.rglob("*.py"))
         if path.name != "__main__.py"]
for name in names:
    importlib.import_module(name)
print(json.dumps({"backend_before": str(backend_before),
                  "backend_after": str(dict.__getitem__(matplotlib.rcParams, "backend")),
                  "pyplot": "matplotlib.pyplot" in sys.modules, "modules": names}))
"""


def test_importing_every_module_changes_no_process_setting():
    done = subprocess.run([sys.executable, "-c", IMPORT_EVERYTHING], capture_output=True, text=True, timeout=300,
                          cwd=ROOT)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.splitlines()[-1])
    assert report["backend_after"] == report["backend_before"]
    assert not report["pyplot"]
    assert {"autocnn.core.derive", "autocnn.tools.check", "autocnn.cli.train"} <= set(report["modules"])


NOTEBOOK_PATHS = {"autocnn.layers": "autocnn.core.layers", "autocnn.layer_utils": "autocnn.core.layer_utils",
                  "autocnn.models": "autocnn.core.models", "autocnn.solver": "autocnn.training.solver",
                  "autocnn.optim": "autocnn.training.optim", "autocnn.gradcheck": "autocnn.tools.gradcheck"}


@pytest.mark.parametrize("path", sorted(NOTEBOOK_PATHS))
def test_the_notebook_import_paths_are_the_modules_themselves(path):
    import importlib

    assert importlib.import_module(path) is importlib.import_module(NOTEBOOK_PATHS[path])


def test_the_data_loader_keeps_its_notebook_path():
    from autocnn.data import get_CIFAR10_data, load_CIFAR10
    from autocnn.data.cifar10 import get_CIFAR10_data as loader

    assert get_CIFAR10_data is loader and callable(load_CIFAR10)


NOTEBOOK_NAME = re.compile(r"\w+_(forward|backward)(_naive|_fast|_alt)?|softmax_loss|svm_loss")


@pytest.mark.parametrize("module", ["autocnn.layers", "autocnn.layer_utils", "reference.layers",
                                    "reference.layer_utils", "reference.conv_layers", "reference.fast_layers"])
def test_star_import_binds_the_notebook_names_only(module):
    namespace: dict = {}
    exec(f"from {module} import *", namespace)
    bound = {name for name in namespace if not name.startswith("__")}
    assert bound, module
    for name in bound:
        assert NOTEBOOK_NAME.fullmatch(name), f"from {module} import * binds {name}"


def test_experiments_are_not_installed_as_a_package():
    import tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    include = config["tool"]["setuptools"]["packages"]["find"]["include"]
    assert not any(pattern.startswith("experiments") for pattern in include)
    assert "reference" in include and "autocnn" in include
