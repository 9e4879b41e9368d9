"""Every public name of every simkit subpackage is documented (the API reference is built from
these docstrings).

Public API of a package: the names in its `__all__` if it defines one, otherwise the names its
`__init__.py` binds by a relative import (`from ._x import y as y`) or defines, minus those that
start with "_" and minus modules (a subpackage is checked as its own package). Third-party objects
re-exported by absolute imports are not simkit's API. Every package without a "_" in its dotted
name is checked, and the test fails if one of the packages the docs have a page for is missing.

Rules, per public name:
- functions and classes (exceptions and enums included) have a docstring of their own whose
  summary line has at least three words (a dataclass's generated `Name(field=...)` signature
  does not count);
- functions and classes other than exceptions and enums have an example section: a line
  `Example:` or `Examples:` (optionally with a caption, `Example (lid-driven cavity):`) followed
  by at least one `>>>` line;
- public methods and properties of public classes (those defined by simkit, inherited ones
  included; not the fields of a dataclass or module) have a docstring, their own or the one of
  the base class method they override (diffrax's, for a diffrax solver);
- constants (arrays, numbers, strings, lattice descriptors) have an attribute docstring: a
  string literal right after their assignment in the module that defines them (what
  mkdocstrings renders).
Whether the shapes, units and examples are right is for review: the examples are not executed
(many need a run's state); the README and docs pages are the tested examples.
"""

from __future__ import annotations

import ast
import enum
import importlib
import importlib.util
import inspect
import pkgutil
import re
import types
from pathlib import Path

import pytest

import simkit

EXPECTED = {
    "simkit",
    "simkit.ode",
    "simkit.fit",
    "simkit.run",
    "simkit.io",
    "simkit.ensemble",
    "simkit.md",
    "simkit.fluids",
    "simkit.fluids.lbm",
    "simkit.fluids.spectral",
}
EXAMPLE = re.compile(r"^\s*Examples?\b[^\n]*:\s*\n(?:.*\n)*?\s*>>> ", re.MULTILINE)


def _packages() -> list[str]:
    found = ["simkit"]
    for info in pkgutil.walk_packages(simkit.__path__, "simkit."):
        if info.ispkg and not any(part.startswith("_") for part in info.name.split(".")):
            found.append(info.name)
    return sorted(found)


PACKAGES = _packages()


def _init_bindings(pkg: types.ModuleType) -> dict[str, str | None]:
    """Names the package's `__init__.py` binds itself: {name: defining module (None: here)}."""
    tree = ast.parse(Path(pkg.__file__ or "").read_text())
    names: dict[str, str | None] = {}
    for node in tree.body:
        if isinstance(node, ast.Try):
            continue
        if isinstance(node, ast.ImportFrom) and node.level > 0:
            base = importlib.util.resolve_name("." * node.level + (node.module or ""), pkg.__name__)
            for alias in node.names:
                names[alias.asname or alias.name] = base
        elif isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names[node.name] = None
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                if isinstance(target, ast.Name):
                    names[target.id] = pkg.__name__
    return names


def public_api(package: str) -> dict[str, tuple[object, str | None]]:
    """{name: (object, module that defines it)} for the public names of `package`."""
    pkg = importlib.import_module(package)
    bound = _init_bindings(pkg)
    names = getattr(pkg, "__all__", None) or [n for n in bound if not n.startswith("_")]
    api = {}
    for name in names:
        obj = getattr(pkg, name)
        if isinstance(obj, types.ModuleType):
            continue
        api[name] = (obj, getattr(obj, "__module__", None) or bound.get(name))
    return api


def _kind(obj: object) -> str:
    if inspect.isclass(obj):
        if issubclass(obj, BaseException):
            return "exception"
        if issubclass(obj, enum.Enum):
            return "enum"
        return "class"
    if callable(obj):
        return "function"
    return "constant"


def _own_doc(obj: object) -> str:
    doc = obj.__dict__.get("__doc__") if inspect.isclass(obj) else getattr(obj, "__doc__", None)
    doc = inspect.cleandoc(doc or "")
    if inspect.isclass(obj) and doc.startswith(f"{obj.__name__}("):
        return ""  # the signature dataclasses write when a class has no docstring
    return doc


def _nontrivial(doc: str) -> bool:
    summary = doc.split("\n\n", 1)[0]
    return len(summary.split()) >= 3


def _attribute_docstring(module: str | None, name: str) -> str:
    if module is None:
        return ""
    source = Path(importlib.import_module(module).__file__ or "").read_text()
    body = ast.parse(source).body
    for node, after in zip(body, body[1:], strict=False):
        targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
        if any(isinstance(t, ast.Name) and t.id == name for t in targets):
            if isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant):
                return str(after.value.value)
    return ""


def _undocumented_methods(cls: type) -> list[str]:
    missing = []
    fields = set(getattr(cls, "__dataclass_fields__", {}))
    for name in sorted(dir(cls)):
        if name.startswith("_") or name in fields:
            continue
        owners = [k for k in cls.__mro__ if name in vars(k)]
        if not owners or not owners[0].__module__.startswith("simkit"):
            continue
        raw = vars(owners[0])[name]
        if isinstance(raw, (staticmethod, classmethod)):
            raw = raw.__func__
        if not (inspect.isfunction(raw) or isinstance(raw, property)):
            continue
        docs = [getattr(vars(k)[name], "__doc__", None) for k in owners]
        if not any(d and _nontrivial(inspect.cleandoc(d)) for d in docs):
            missing.append(f"{cls.__name__}.{name}")
    return missing


def test_every_public_package_is_checked():
    assert EXPECTED <= set(PACKAGES), sorted(EXPECTED - set(PACKAGES))


@pytest.mark.parametrize("package", PACKAGES)
def test_public_api_is_documented(package):
    api = public_api(package)
    assert api, f"{package} exports nothing"
    no_doc, no_example, no_method_doc, no_constant_doc = [], [], [], []
    for name, (obj, module) in sorted(api.items()):
        kind = _kind(obj)
        if kind == "constant":
            if not _nontrivial(inspect.cleandoc(_attribute_docstring(module, name))):
                no_constant_doc.append(name)
            continue
        doc = _own_doc(obj)
        if not _nontrivial(doc):
            no_doc.append(name)
        elif kind in ("class", "function") and not EXAMPLE.search(doc + "\n"):
            no_example.append(name)
        if kind == "class":
            no_method_doc += _undocumented_methods(obj)
    problems = {
        "no docstring (or a summary under three words)": no_doc,
        "no example section (`Example:` followed by `>>>` lines)": no_example,
        "public methods without a docstring": no_method_doc,
        "constants without an attribute docstring": no_constant_doc,
    }
    report = "\n".join(f"  {what}: {', '.join(names)}" for what, names in problems.items() if names)
    assert not report, f"{package}:\n{report}"
