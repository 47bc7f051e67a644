"""Finding a submission's own code, and importing it inside a worker.

``plan_target`` reads the files only (``ast``, nothing is run): which files are the
student's (support files the course hands out are not), the dotted name each file is
imported under, the folder that goes on ``sys.path``, which notebook functions and classes
each file defines itself (``def``/``class``/assignment at top level; a ``from x import *``
defines nothing), which of them are still blank, Python 2 syntax, and which stand-ins the
submission needs (a missing course package, an uncompiled ``im2col_cython``).

``import_plan`` runs in a worker: it installs the stand-ins, imports each student file
(a package ``__init__.py`` that fails is replaced by an empty package, so the package's
other modules still load) and says, per file, what went wrong.
"""

from __future__ import annotations

import ast
import importlib
import importlib.machinery
import importlib.util
import os
import re
import sys
import traceback
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autocnn.tools.check import standins
from autocnn.tools.check.diagnosis import describe_exception, describe_syntax_error
from autocnn.tools.check.isolation import lift_cpu_limit, limit_cpu_of_next_call
from autocnn.tools.check.specs import KNOWN_CLASSES, KNOWN_FUNCTIONS

#: Files the course hands out: not judged, and imported only when the student's code imports them.
SUPPORT_FILES = frozenset({
    "fast_layers.py", "im2col.py", "im2col_cython.pyx", "gradient_check.py", "data_utils.py", "setup.py",
    "vis_utils.py", "layer_tests.py", "solver.py", "optim.py", "captioning_solver.py", "coco_utils.py",
    "image_utils.py", "conftest.py", "__init__.py", "build.py", "_layer_tests.py",
})
_SUPPORT_PATTERN = re.compile(r"^(test_.*|.*_tests?)\.py$")
NEVER_IMPORTED = frozenset({"setup.py"})
_SKIPPED_FOLDERS = frozenset({"__pycache__", "build", "datasets", ".ipynb_checkpoints", ".git", "venv", ".venv"})


@dataclass
class StudentFile:
    """
    One file whose functions are judged.

    - path: Absolute path
    - module: Dotted name it is imported under ('nndl.layers', 'cs231n.classifiers.cnn')
    - label: Path shown to the user ('nndl/layers.py')
    - defined: Notebook names the file defines itself -> line
    - blank: Name -> why it is not implemented ('only pass', 'raises NotImplementedError', ...)
    - syntax: '' or the diagnosis of a syntax error (the file cannot be imported)
    - docs: Name -> docstring of the known functions it defines
    """

    path: Path
    module: str
    label: str
    defined: dict[str, int] = field(default_factory=dict)
    blank: dict[str, str] = field(default_factory=dict)
    syntax: str = ""
    docs: dict[str, str] = field(default_factory=dict)


@dataclass
class Plan:
    """Everything known about a target before any of its code runs."""

    target: str
    root: Path
    sys_path: list[str]
    files: list[StudentFile]
    support: list[str]
    standin_modules: list[str] = field(default_factory=list)  # dotted names given a stand-in
    notes: list[str] = field(default_factory=list)
    missing: dict[str, str] = field(default_factory=dict)  # top-level module -> where it was looked for
    optim: list[StudentFile] = field(default_factory=list)  # the student's optim.py: judged on its own
    neighbours: dict[str, str] = field(default_factory=dict)  # other student files: path -> label

    def labels(self) -> dict[str, str]:
        """Absolute path -> label of the student's files (judged or not), for naming them in tracebacks."""
        return {**self.neighbours, **{str(f.path): f.label for f in self.files}}


# ----------------------------------------------------------------- reading the files

def _imports(tree: ast.AST) -> tuple[set[str], set[str], int]:
    """(absolute module names imported, their top-level names, deepest relative level)."""
    modules, level = set(), 0
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                level = max(level, node.level)
            elif node.module:
                modules.add(node.module)
                modules.update(f"{node.module}.{alias.name}" for alias in node.names if alias.name != "*")
    return modules, {name.split(".")[0] for name in modules}, level


def _is_docstring(node: ast.stmt) -> bool:
    return isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)


def _is_none(node: ast.AST) -> bool:
    return isinstance(node, ast.Constant) and node.value is None


def _plain_names(node: ast.AST) -> bool:
    """A name, or a tuple of names: bookkeeping such as ``cache = (x, w, b)``, no computation."""
    if isinstance(node, ast.Name):
        return True
    return isinstance(node, ast.Tuple) and all(isinstance(e, ast.Name) or _is_none(e) for e in node.elts)


def _returns_only_placeholders(node: ast.Return, placeholders: set[str], passthrough: set[str]) -> bool:
    """A return of None, or of placeholders (None) possibly with inputs passed through (the starter's cache)."""
    value = node.value
    if value is None or _is_none(value):
        return True
    elements = value.elts if isinstance(value, ast.Tuple) else [value]
    if not all(_is_none(e) or isinstance(e, ast.Name) and e.id in placeholders | passthrough for e in elements):
        return False
    return any(_is_none(e) or isinstance(e, ast.Name) and e.id in placeholders for e in elements)


def blank_reason(function: ast.FunctionDef) -> str:
    """
    Why a function is still the starter code, or '' when it does something.

    Blank: nothing but a docstring, ``pass``, placeholders set to None (``out = None``,
    ``dx, dw = None, None``), inputs bundled without computation (``cache = (x, w, b)``),
    ``raise NotImplementedError``, ``assert False`` and a return of placeholders.
    """
    body = [node for node in function.body if not _is_docstring(node)]
    placeholders: set[str] = set()
    passthrough = {a.arg for a in function.args.args}
    reason = "only pass"
    for node in body:
        if isinstance(node, ast.Pass):
            continue
        if isinstance(node, ast.Assign) and all(isinstance(t, (ast.Name, ast.Tuple)) for t in node.targets):
            value = node.value
            nones = _is_none(value) or isinstance(value, ast.Tuple) and all(_is_none(e) for e in value.elts)
            if not nones and not _plain_names(value):
                return ""
            for target in node.targets:
                names = target.elts if isinstance(target, ast.Tuple) else [target]
                (placeholders if nones else passthrough).update(n.id for n in names if isinstance(n, ast.Name))
            continue
        if isinstance(node, ast.Raise):
            exc = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
            if isinstance(exc, ast.Name) and exc.id == "NotImplementedError":
                return "raises NotImplementedError"
            return ""
        if isinstance(node, ast.Assert) and isinstance(node.test, ast.Constant) and not node.test.value:
            return "assert False"
        if isinstance(node, ast.Return) and _returns_only_placeholders(node, placeholders, passthrough):
            return "returns None"
        return ""
    return reason


def _top_level_names(tree: ast.Module) -> tuple[dict[str, int], dict[str, ast.AST]]:
    """Names a module binds itself at top level (def, class, assignment) -> line, node."""
    lines, nodes = {}, {}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            lines[node.name], nodes[node.name] = node.lineno, node
        elif isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    lines[target.id], nodes[target.id] = node.lineno, node
    return lines, nodes


def _class_blank(node: ast.ClassDef) -> str:
    for item in node.body:
        if isinstance(item, ast.FunctionDef) and item.name == "loss":
            reason = blank_reason(item)
            return f"loss {reason}" if reason else ""
    return "no loss method"


def read_student_file(path: Path, module: str, label: str) -> StudentFile:
    """What a student file defines, parsed without running it."""
    file = StudentFile(path, module, label)
    try:
        source = path.read_text(encoding="utf-8", errors="replace")
        tree = ast.parse(source, filename=str(path))
    except SyntaxError as error:
        file.syntax = describe_syntax_error(error, label)
        # Still say which notebook names it would define: they are reported as not checked.
        for number, line in enumerate(source.splitlines(), 1):
            match = re.match(r"(?:def|class)\s+(\w+)", line)
            if match and match.group(1) in KNOWN_FUNCTIONS + KNOWN_CLASSES:
                file.defined.setdefault(match.group(1), number)
        return file
    except (OSError, ValueError) as error:
        file.syntax = f"cannot read {label}: {error}"
        return file
    lines, nodes = _top_level_names(tree)
    for name in KNOWN_FUNCTIONS + KNOWN_CLASSES:
        if name in lines:
            file.defined[name] = lines[name]
            node = nodes[name]
            if isinstance(node, ast.FunctionDef):
                reason = blank_reason(node)
                file.docs[name] = ast.get_docstring(node) or ""
            elif isinstance(node, ast.ClassDef):
                reason = _class_blank(node)
                file.docs[name] = ast.get_docstring(node) or ""
            else:
                reason = ""
            if reason:
                file.blank[name] = reason
    return file


def _is_support(path: Path) -> bool:
    return path.name in SUPPORT_FILES or bool(_SUPPORT_PATTERN.match(path.name))


# ----------------------------------------------------------------- where things live

def _module_name(path: Path, tops: set[str], level: int, package_floor: Path | None) -> tuple[str, Path]:
    """
    (dotted name, folder for sys.path) of a file: climb while the folder is a package.

    A folder counts as a package when it has an __init__.py, when some file imports it by
    name (``from nndl.layers import *``), when relative imports need it, or when it lies
    inside ``package_floor`` (the folder the user named, e.g. ``cs231n/``, whose
    ``classifiers/`` may lack an __init__.py).
    """
    parts = [path.stem]
    folder = path.parent
    depth = 0
    while True:
        inside_floor = package_floor is not None and (folder == package_floor or package_floor in folder.parents)
        # (folder.parent / __init__.py): a folder without one inside a package, e.g. classifiers/
        is_package = ((folder / "__init__.py").exists() or folder.name in tops or depth < level or inside_floor
                      or (folder.parent / "__init__.py").exists())
        if not is_package or folder.parent == folder or not folder.name.isidentifier():
            return ".".join(parts), folder
        parts.insert(0, folder.name)
        folder = folder.parent
        depth += 1


def _candidate_files(folder: Path) -> list[Path]:
    found = []
    for path in sorted(folder.rglob("*.py")):
        relative = path.relative_to(folder)
        if any(part in _SKIPPED_FOLDERS or part.startswith(".") for part in relative.parts[:-1]):
            continue
        found.append(path)
    return found


def _resolve(target: str) -> tuple[str, Path]:
    """('file' | 'folder', path) for a command-line target; a module name is looked up without importing it."""
    path = Path(target)
    if path.suffix == ".py" or os.sep in target or path.exists():
        if path.is_file():
            return "file", path.resolve()
        if path.is_dir():
            return "folder", path.resolve()
        raise ValueError(f"no such file or folder: {target}")
    try:
        spec = importlib.util.find_spec(target)
    except (ImportError, ValueError) as error:
        raise ValueError(f"no such file, folder or module: {target} ({error})") from None
    if spec is None or not spec.origin or spec.origin in ("built-in", "frozen"):
        raise ValueError(f"no such file, folder or module: {target}")
    origin = Path(spec.origin).resolve()
    if spec.submodule_search_locations:
        return "folder", origin.parent
    return "file", origin


def plan_target(target: str, include: tuple[str, ...] = ()) -> Plan:
    """
    Read a target (file, folder or module name) without running it.

    Inputs:
    - target: 'nndl/layers.py', 'nndl/', 'submissions/alice/' or a module name ('reference')
    - include: Support files to judge anyway (e.g. 'fast_layers.py'); setup.py never is

    Returns:
    - Plan
    """
    kind, path = _resolve(target)
    included = {Path(p).name for p in include} - NEVER_IMPORTED
    if kind == "file":
        candidates = [path]
        folder = path.parent
        floor = None
    else:
        candidates = _candidate_files(path)
        folder = path
        floor = None
    candidates.sort(key=lambda p: (len(p.parts), str(p)))  # layers.py before classifiers/cnn.py
    judged = [p for p in candidates if (not _is_support(p) or p.name in included or kind == "file")
              and p.name not in NEVER_IMPORTED]
    support = sorted({p.name for p in candidates if p not in judged})

    trees = {}
    tops: set[str] = set()
    imported: set[str] = set()
    for p in judged:
        try:
            trees[p] = ast.parse(p.read_text(encoding="utf-8", errors="replace"))
        except (SyntaxError, ValueError, OSError):
            continue
        mods, names, _ = _imports(trees[p])
        tops |= names
        imported |= mods
    files, roots = [], []
    for p in judged:
        level = _imports(trees[p])[2] if p in trees else 0
        module, root = _module_name(p, tops, level, floor)
        label = str(p.relative_to(root)) if root in p.parents else p.name
        files.append(read_student_file(p, module, label))
        roots.append(root)
    optim = []
    for p in candidates:
        if p.name == "optim.py" and p not in judged or kind == "file" and p.name == "optim.py":
            module, optim_root = _module_name(p, tops, 0, floor)
            label = str(p.relative_to(optim_root)) if optim_root in p.parents else p.name
            optim.append(StudentFile(p, module, label))
            roots.append(optim_root)
    files = [f for f in files if f.path.name != "optim.py"]
    root = min(roots, key=lambda r: len(r.parts)) if roots else folder
    sys_path = list(dict.fromkeys(str(r) for r in [root, *roots]))
    neighbours = {str(p): str(p.relative_to(root)) for pattern in ("*.py", "*/*.py", "*/*/*.py")
                  for p in root.glob(pattern) if not _is_support(p)}
    plan = Plan(target, root, sys_path, files, support, optim=optim, neighbours=neighbours)
    _plan_course_code(plan, imported, tops)
    return plan


def _found_beside(name: str, folders: list[Path]) -> Path | None:
    for folder in folders:
        for candidate in (folder / name, folder / f"{name}.py"):
            if candidate.exists():
                return folder
    return None


def _plan_course_code(plan: Plan, imported: set[str], tops: set[str]) -> None:
    """Extra sys.path entries, stand-ins for a missing course package or an uncompiled im2col_cython."""
    own = {f.module.split(".")[0] for f in plan.files}
    ancestors = [plan.root, *list(plan.root.parents)[:2]]
    for top in sorted(tops - own):
        if top in sys.stdlib_module_names or top in sys.modules:
            continue
        beside = _found_beside(top, ancestors)
        if beside is not None:
            if str(beside) not in plan.sys_path:
                plan.sys_path.append(str(beside))
            continue
        try:
            if importlib.util.find_spec(top) is not None:
                continue  # an installed library
        except (ImportError, ValueError):
            pass
        where = f"beside {plan.files[0].label.split(os.sep)[0]}/" if plan.files and os.sep in plan.files[0].label \
            else f"in {plan.root}"
        plan.missing[top] = where
        if f"{top}.fast_layers" in imported:
            plan.standin_modules += [top, f"{top}.fast_layers"]
            plan.notes.append(f"{top}.fast_layers: no {top}/ {where}; the bundled reference fast layers stood in "
                              "(not judged)")
    # The course's fast layers import a compiled extension; without a build, stand in numpy versions.
    uses_fast_layers = any("fast_layers" in f.path.read_text(errors="replace") for f in plan.files)
    for folder in [Path(p) for p in plan.sys_path] if uses_fast_layers else []:
        fasts = [f for pattern in ("fast_layers.py", "*/fast_layers.py", "*/*/fast_layers.py")
                 for f in sorted(folder.glob(pattern))]
        for fast in fasts:
            if any(part in _SKIPPED_FOLDERS for part in fast.relative_to(folder).parts):
                continue
            # A build for another Python (im2col_cython.cpython-38-...so) cannot be loaded here.
            compiled = [fast.parent / f"im2col_cython{suffix}" for suffix in importlib.machinery.EXTENSION_SUFFIXES]
            if any(path.exists() for path in compiled) or "im2col_cython" not in fast.read_text(errors="replace"):
                continue
            package = ".".join(fast.parent.relative_to(folder).parts)
            names = [f"{package}.im2col_cython" if package else "im2col_cython", "im2col_cython"]
            new = [n for n in names if n not in plan.standin_modules]
            if new:
                plan.standin_modules += new
                note = (f"{package or fast.parent.name}/im2col_cython is not compiled for this Python: numpy "
                        "equivalents of im2col_cython, col2im_cython and col2im_6d_cython stood in (setup.py is "
                        "never run)")
                if note not in plan.notes:
                    plan.notes.append(note)


# ----------------------------------------------------------------- importing, in a worker

@dataclass
class Imported:
    """The student's modules as imported in a worker, and what went wrong per file."""

    modules: dict[str, types.ModuleType]  # label -> module
    problems: dict[str, tuple[str, str]]  # label -> (kind 'fail' | 'not checked', text)
    notes: list[str]


def _install_standins(plan: Plan) -> None:
    modules: dict[str, types.ModuleType] = {}
    for name in plan.standin_modules:
        if name.endswith("im2col_cython"):
            modules[name] = standins.im2col_module(name)
        elif name.endswith(".fast_layers"):
            modules.update(standins.course_package(name.rsplit(".", 1)[0]))
    standins.install(modules)


def _import_packages_of(module: str, notes: list, plan: Plan) -> None:
    """Import the packages above a module; one whose __init__ fails becomes an empty package."""
    parts = module.split(".")[:-1]
    for depth in range(1, len(parts) + 1):
        name = ".".join(parts[:depth])
        if name in sys.modules:
            continue
        folder = Path(plan.root, *parts[:depth])
        for entry in plan.sys_path:
            if Path(entry, *parts[:depth]).is_dir():
                folder = Path(entry, *parts[:depth])
                break
        try:
            importlib.import_module(name)
        except BaseException as error:  # noqa: B902 - anything the __init__ does
            text = describe_exception(error, {str(folder / "__init__.py"): f"{name.replace('.', '/')}/__init__.py"})
            stub = types.ModuleType(name)
            stub.__path__ = [str(folder)]
            stub.__package__ = name
            sys.modules[name] = stub
            if depth > 1:
                setattr(sys.modules[".".join(parts[:depth - 1])], parts[depth - 1], stub)
            notes.append(f"{name.replace('.', '/')}/__init__.py failed to import ({text}); "
                         "its modules were imported without it")


def classify_import_error(error: BaseException, plan: Plan, labels: dict[str, str], file: StudentFile | None = None
                          ) -> tuple[str, str]:
    """('not checked' | 'fail', text) for an exception raised while importing a student file."""
    if file is not None:
        # Raised in another student file this one imports: that file's row says why.
        origin = error.filename if isinstance(error, SyntaxError) else None
        if origin is None:
            frames = [f for f in traceback.extract_tb(error.__traceback__) if f.filename in labels]
            origin = frames[-1].filename if frames else None
        if origin in labels and origin != str(file.path):
            return "not checked", f"imports {labels[origin]}, which does not import"
    if isinstance(error, ModuleNotFoundError) and error.name:
        top = error.name.split(".")[0]
        own = {f.module.split(".")[0] for f in plan.files}
        if top in plan.missing:
            return "not checked", f"needs module {error.name}, not found {plan.missing[top]}"
        if top not in own:
            beside = _found_beside(top, [Path(p) for p in plan.sys_path])
            if beside is None:
                return "not checked", f"needs module {error.name}, not installed"
        return "not checked", f"needs module {error.name}, not found"
    if isinstance(error, SyntaxError):
        return "fail", describe_syntax_error(error, labels.get(error.filename or "", Path(error.filename or "?").name))
    return "fail", describe_exception(error, labels)


def import_plan(plan: Plan, send=None) -> Imported:
    """
    Import every student file of a plan (in the current process: call this in a worker).

    Inputs:
    - plan: From plan_target
    - send: If given, each import is announced as a call of user code (('call', ...),
      ('returned', ...)), so that the worker's per-call time limit applies to it
    """
    sys.dont_write_bytecode = True
    for entry in reversed(plan.sys_path):
        if entry not in sys.path:
            sys.path.insert(0, entry)
    _install_standins(plan)
    labels = plan.labels()
    modules, problems, notes = {}, {}, []
    for file in plan.files:
        if file.syntax:
            problems[file.label] = ("fail", file.syntax)
            continue
        if send is not None:
            send(("call", f"import {file.label}", "", ("-",)))
            limit_cpu_of_next_call()
        _import_packages_of(file.module, notes, plan)
        try:
            if file.module in sys.modules and getattr(sys.modules[file.module], "__file__", None) != str(file.path):
                # Another file already claimed this name (two folders named alike): load this one by path.
                spec = importlib.util.spec_from_file_location(file.module + "_", file.path)
                module = importlib.util.module_from_spec(spec)
                spec.loader.exec_module(module)
            else:
                module = importlib.import_module(file.module)
            modules[file.label] = module
        except BaseException as error:  # noqa: B902 - SystemExit from user code included
            problems[file.label] = classify_import_error(error, plan, labels, file)
        finally:
            if send is not None:
                lift_cpu_limit()
                send(("returned", f"import {file.label}"))
    return Imported(modules, problems, notes)


def defined_names(plan: Plan) -> dict[str, StudentFile]:
    """
    Name -> the student file whose definition of it is judged.

    A name defined in several files is taken from the first file (layers before models)
    that does not leave it blank: a course package beside the student's may carry the
    blank starter version of the same function.
    """
    found: dict[str, StudentFile] = {}
    for file in plan.files:
        for name in file.defined:
            if name not in found or name in found[name].blank and name not in file.blank:
                found[name] = file
    return found


def student_objects(plan: Plan, imported: Imported) -> tuple[dict[str, Any], dict[str, str]]:
    """The notebook functions and classes the student defined: name -> object, name -> file label."""
    namespace, origins = {}, {}
    for name, file in defined_names(plan).items():
        module = imported.modules.get(file.label)
        value = getattr(module, name, None) if module is not None else None
        if value is not None and callable(value):
            namespace[name] = value
            origins[name] = file.label
    return namespace, origins
