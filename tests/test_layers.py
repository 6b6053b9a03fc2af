"""The import layers of robofeedback, checked on the source: a module imports only from its own layer or lower
ones, no method imports another method, a method's model does not import its own flags or bench section, and
robofeedback modules are imported at module top unless that keeps an optional dependency optional.

Layers, low to high: config, protocols, registry, seeding, parallel -> envs -> data -> feedback -> rewards -> rl
-> methods -> apps -> bench -> cli (the bench measures the app; the CLI runs everything). Imports under
``if TYPE_CHECKING:`` are only for type checkers and are not counted. The registry finds ``robofeedback.methods``
with importlib, never with a static import.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import robofeedback

PACKAGE = Path(robofeedback.__file__).resolve().parent
LAYERS = [
    ("config", "protocols", "registry", "seeding", "parallel"),
    ("envs",),
    ("data",),
    ("feedback",),
    ("rewards",),
    ("rl",),
    ("methods",),
    ("apps",),
    ("bench",),
    ("cli",),
]
LAYER = {part: level for level, parts in enumerate(LAYERS) for part in parts}
METHOD_SIDES = ("cli", "bench")  # a method's own flags and bench section, which only its registration imports

# The robofeedback modules that may be imported inside a function, since importing them imports an optional
# dependency: the module -> the reason.
LOCAL_IMPORTS_ALLOWED = {
    "robofeedback.apps.annotate": "gradio, fastapi and uvicorn are the app extra",
    "robofeedback.envs.mujoco_view": "mujoco comes with the metaworld extra (or gymnasium[mujoco]), not with the rest",
}


@dataclass(frozen=True)
class Import:
    """One import of a robofeedback module: where it is, what it imports, and whether it sits in a function."""

    module: str
    target: str
    line: int
    local: bool


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_module(name: str) -> bool:
    """Whether ``name`` (``robofeedback.x.y``) is a module or package of robofeedback's source."""
    path = PACKAGE.parent.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imports_of(path: Path) -> list[Import]:
    """The robofeedback modules the module at ``path`` imports, outside ``if TYPE_CHECKING:`` blocks."""
    return imports_in(path.read_text(), module_name(path), path.name == "__init__.py")


def imports_in(source: str, module: str, is_package: bool = False) -> list[Import]:
    """The robofeedback modules ``source`` (the module ``module``) imports, outside ``if TYPE_CHECKING:`` blocks."""
    package = module if is_package else module.rpartition(".")[0]
    found: list[Import] = []

    def visit(node: ast.AST, local: bool) -> None:
        if isinstance(node, ast.If) and is_type_checking(node.test):
            for child in node.orelse:
                visit(child, local)
            return
        if isinstance(node, ast.Import):
            found.extend(Import(module, a.name, node.lineno, local) for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                found.append(Import(module, sub if is_module(sub) else base, node.lineno, local))
        inside = local or isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
        for child in ast.iter_child_nodes(node):
            visit(child, inside)

    visit(ast.parse(source), False)
    return [i for i in found if i.target == "robofeedback" or i.target.startswith("robofeedback.")]


def every_import() -> list[Import]:
    return [i for path in sorted(PACKAGE.rglob("*.py")) for i in imports_of(path)]


def layer(module: str) -> int | None:
    """The layer of a robofeedback module (the package's own ``__init__`` is the lowest); None when in none."""
    parts = module.split(".")
    return 0 if len(parts) == 1 else LAYER.get(parts[1])


def method_of(module: str) -> tuple[str, str] | None:
    """For a module inside a method package, ``(method, the module's first part inside it)``; else None."""
    parts = module.split(".")
    if len(parts) < 3 or parts[1] != "methods" or not (PACKAGE / "methods" / parts[2]).is_dir():
        return None
    return parts[2], parts[3] if len(parts) > 3 else "__init__"


def violation(imp: Import) -> str | None:
    """Why ``imp`` breaks the layering, or None."""
    own, other = layer(imp.module), layer(imp.target)
    if own is None:
        return f"{imp.module} is in no layer"
    if other is None:
        return None  # the imported module is reported as in no layer itself
    if imp.module == "robofeedback.registry" and imp.target.startswith("robofeedback.methods"):
        return "the registry finds the methods with importlib, never with a static import"
    if other > own:
        return f"a layer above ({imp.target.split('.')[1]} over {imp.module.split('.')[1]})"
    here, there = method_of(imp.module), method_of(imp.target)
    if there is not None and here is None and own == LAYER["methods"]:
        return "a shared methods module imports a method package"
    if here is not None and there is not None and here[0] != there[0]:
        return "a method imports another method"
    if here is not None and there is not None and here[1] not in (*METHOD_SIDES, "__init__"):
        if there[1] in METHOD_SIDES:
            return f"a method's model imports its own {there[1]}"
    return None


def report(title: str, offenders: set[str]) -> str:
    """``offenders`` as the test prints them: a count, then one per line."""
    return f"{len(offenders)} {title}:\n" + "\n".join(sorted(offenders))


def test_no_module_imports_from_a_layer_above_its_own():
    offenders = {f"{i.module} -> {i.target}  ({why}, line {i.line})" for i in every_import() if (why := violation(i))}
    print(report("imports break the layering", offenders))
    assert not offenders, report("imports break the layering", offenders)


def test_robofeedback_modules_are_imported_at_module_top():
    local = [i for i in every_import() if i.local and i.target not in LOCAL_IMPORTS_ALLOWED]
    offenders = {f"{i.module} -> {i.target}  (line {i.line})" for i in local}
    print(report("function-local imports of robofeedback modules", offenders))
    assert not offenders, report("function-local imports of robofeedback modules", offenders)


def test_the_allowed_local_imports_are_still_there():
    local = {i.target for i in every_import() if i.local}
    assert set(LOCAL_IMPORTS_ALLOWED) <= local, sorted(set(LOCAL_IMPORTS_ALLOWED) - local)


def test_the_check_sees_what_it_must():
    source = (
        "from typing import TYPE_CHECKING\n"
        "import numpy\n"
        "from robofeedback.rl import train\n"
        "from .base import EnvReward\n"
        "if TYPE_CHECKING:\n"
        "    from robofeedback.apps import shell\n"
        "def f():\n"
        "    import robofeedback.bench.suite\n"
    )
    found = imports_in(source, "robofeedback.rewards.probe")
    assert [(i.target, i.local) for i in found] == [
        ("robofeedback.rl.train", False),
        ("robofeedback.rewards.base", False),
        ("robofeedback.bench.suite", True),
    ]
    assert violation(found[0]) == "a layer above (rl over rewards)"
    assert violation(found[1]) is None
    assert violation(Import("robofeedback.registry", "robofeedback.methods", 1, False)).startswith("the registry")
    assert violation(Import("robofeedback.methods.heron", "robofeedback.methods.preference", 1, False)) == (
        "a method imports another method"
    )
    assert violation(Import("robofeedback.methods.heron.bench", "robofeedback.methods.bench", 1, False)) is None
    assert violation(Import("robofeedback.methods.bench", "robofeedback.methods.heron", 1, False)) == (
        "a shared methods module imports a method package"
    )
    assert violation(Import("robofeedback.methods.heron.judge", "robofeedback.methods.heron.bench", 1, False)) == (
        "a method's model imports its own bench"
    )
    assert violation(Import("robofeedback.methods.heron", "robofeedback.methods.heron.bench", 1, False)) is None
