"""Imports flow one way: the rules of cshell/'s layers, read from the source with ``ast``.

Every import counts: ``import X`` and ``from X import Y``, at module level and inside
functions (the lazy imports that keep start-up quick are dependencies all the same).
Two kinds do not: imports under ``if TYPE_CHECKING:`` (they never run), and the implicit
import of a parent package (``cshell/commands/__init__.py`` registers the commands; every
other ``__init__.py`` imports nothing, which ``test_init_files_import_nothing`` checks).

The rules:

1. No cycle between modules. A failure names the cycle, module by module.
2. The engine imports nothing above it: no ``cshell.commands``, ``cshell.views``,
   ``cshell.shell``, ``cshell.cli``, and no ``rich`` or ``prompt_toolkit``.
3. Commands never import the front ends above them (``cshell.shell``, ``cshell.cli``).
4. Views import neither commands nor front ends.
5. Views read engine records and never act. The check, simple on purpose: a view takes
   from the engine only names that cannot act, by ``from cshell.engine.X import NAME``:
   ``@record`` classes (the results it renders), constants (anything not callable), the
   pure helpers listed in ``PURE_HELPERS`` (formatting that reads and changes nothing) and
   the read-only classes in ``READ_ONLY`` (``Container``: a container's files as read).
   A function, a ``Runtime`` or a ``Store`` is refused, and so is a whole module
   (``import cshell.engine.X``, ``from cshell.engine import X``), which would reach every
   name in it. A record's methods are not checked: records carry data.
6. Each engine package declares, on a ``May import:`` line of its ``__init__.py``
   docstring, which other engine packages and top-level engine modules it may import;
   any other engine import is refused (lazy ones too). ``state`` and ``trace``, the
   floor every package stands on, import no engine module but ``kernel.syscalls``.
"""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "cshell"
ABOVE_ENGINE = ("cshell.commands", "cshell.views", "cshell.shell", "cshell.cli")
UI_LIBRARIES = ("rich", "prompt_toolkit")
FRONT_ENDS = ("cshell.shell", "cshell.cli")
PURE_HELPERS = {"human_size", "parse_time", "full_name"}  # engine functions a view may call: pure formatting
READ_ONLY = {"Container"}  # engine classes that are no @record but only read: a container's files as found
IMPORTING_INITS = {"cshell.commands"}  # registers every command; no other __init__ imports


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or \
        (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _import_nodes(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    """Every import statement, at any depth, except those under `if TYPE_CHECKING:`."""
    found: list[ast.Import | ast.ImportFrom] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import | ast.ImportFrom):
            found.append(node)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def _known(name: str) -> str:
    """The cshell module an import of NAME runs (the longest known prefix)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name


def imports_of(module: str) -> list[tuple[str, str | None, int]]:
    """(imported module, name taken from it or None, line) for each import in MODULE.

    ``from cshell.engine import trace`` is the module ``cshell.engine.trace``;
    ``from cshell.engine.state import human_size`` is (``cshell.engine.state``, ``human_size``).
    Third-party and standard modules keep their dotted name.
    """
    path = MODULES[module]
    tree = ast.parse(path.read_text(), str(path))
    found: list[tuple[str, str | None, int]] = []
    for node in _import_nodes(tree):
        if isinstance(node, ast.Import):
            found.extend((_known(a.name) or a.name, None, node.lineno) for a in node.names)
            continue
        base = node.module or ""
        if node.level:
            package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
            package = package[:len(package) - node.level + 1]
            base = ".".join([*package, base] if base else package)
        for alias in node.names:
            full = f"{base}.{alias.name}"
            if full in MODULES:
                found.append((full, None, node.lineno))
            else:
                found.append((_known(base) or base, alias.name, node.lineno))
    return found


def _under(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def graph() -> dict[str, set[str]]:
    return {m: {t for t, _, _ in imports_of(m) if t in MODULES and t != m} for m in MODULES}


def find_cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """One cycle per strongly connected component (Tarjan), as a path that comes back to its start."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []

    def connect(v: str) -> None:  # recursive: the graph is a few hundred modules deep at most
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1 or v in edges.get(v, ()):
                components.append(component)

    for v in sorted(edges):
        if v not in index:
            connect(v)
    cycles = []
    for component in components:
        start = min(component)
        # breadth-first from start back to start, inside the component: the shortest cycle through it
        paths = {start: [start]}
        queue = [start]
        cycle = None
        while queue and cycle is None:
            v = queue.pop(0)
            for w in sorted(edges[v] & component):
                if w == start:
                    cycle = [*paths[v], start]
                    break
                if w not in paths:
                    paths[w] = [*paths[v], w]
                    queue.append(w)
        cycles.append(cycle or sorted(component))
    return cycles


def violations(sources: tuple[str, ...], forbidden: tuple[str, ...]) -> list[str]:
    return [f"{m}:{line} imports {target}" for m in MODULES if _under(m, sources)
            for target, _, line in imports_of(m) if _under(target, forbidden)]


KNOWN = pytest.mark.xfail(strict=True, reason="#14: the tree breaks this rule today; the next commits fix it")

# -- the rules --------------------------------------------------------------------------------------------


def test_find_cycles_reports_the_path() -> None:
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert find_cycles(edges) == [["a", "b", "c", "a"]]
    assert find_cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles() -> None:
    cycles = find_cycles(graph())
    assert not cycles, "import cycles (module-level and lazy imports alike):\n" + \
        "\n".join("  " + " -> ".join(c) for c in cycles)


def test_engine_imports_nothing_above_it() -> None:
    bad = violations(("cshell.engine",), ABOVE_ENGINE + UI_LIBRARIES)
    assert not bad, "the engine reaches up:\n  " + "\n  ".join(bad)


def test_commands_never_import_the_front_ends() -> None:
    bad = violations(("cshell.commands",), FRONT_ENDS)
    assert not bad, "commands reach up into the front ends:\n  " + "\n  ".join(bad)


def test_views_import_neither_commands_nor_front_ends() -> None:
    bad = violations(("cshell.views",), ("cshell.commands", *FRONT_ENDS))
    assert not bad, "views reach up:\n  " + "\n  ".join(bad)


def _is_record(obj: object) -> bool:
    return isinstance(obj, type) and getattr(obj.__init__, "__qualname__", "").startswith("record.")


def test_views_take_only_records_and_pure_helpers_from_the_engine() -> None:
    bad = []
    for m, path in MODULES.items():
        if not _under(m, ("cshell.views",)):
            continue
        tree = ast.parse(path.read_text())
        checked = {(n.lineno, a.name) for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) for a in n.names}
        for target, name, line in imports_of(m):
            if not _under(target, ("cshell.engine",)):
                continue
            if name is None:
                bad.append(f"{m}:{line} imports the module {target}: take the records by name")
                continue
            obj = getattr(importlib.import_module(target), name)
            if not (_is_record(obj) or not callable(obj) or name in PURE_HELPERS | READ_ONLY):
                bad.append(f"{m}:{line} takes {target}.{name}, which could act (not a record, constant "
                           "or pure helper)")
        assert checked  # the walk saw the module's imports
    assert not bad, "views may only read the engine:\n  " + "\n  ".join(bad)


def test_init_files_import_nothing() -> None:
    """Start-up time: importing a package must not import its modules (a one-shot `ps` needs few)."""
    bad = [f"{m}:{line} imports {target}" for m, path in MODULES.items()
           if path.name == "__init__.py" and m not in IMPORTING_INITS
           for target, _, line in imports_of(m) if target != "__future__"]
    assert not bad, "\n".join(bad)


# -- engine packages: what each may import, from its docstring --------------------------------------------

ENGINE = PACKAGE / "engine"
ENGINE_PACKAGES = sorted(p.parent.name for p in ENGINE.glob("*/__init__.py"))
FLOOR = {"state": {"kernel.syscalls", "trace"}, "trace": set(), "events": set()}


def _engine_unit(module: str) -> str:
    """cshell.engine.net.network -> net; cshell.engine.state -> state; cshell.engine.kernel.syscalls stays."""
    rest = module.removeprefix("cshell.engine.")
    return rest.split(".")[0]


def declared(package: str) -> set[str]:
    doc = ast.get_docstring(ast.parse((ENGINE / package / "__init__.py").read_text())) or ""
    match = re.search(r"^May import: (.*?)\.?$", doc, re.MULTILINE)
    assert match, f"cshell/engine/{package}/__init__.py: its docstring needs a line 'May import: A, B.'"
    text = match.group(1).strip()
    return set() if text.lower() in ("nothing", "no other engine package") else \
        {w.strip() for w in text.split(",") if w.strip()}


@pytest.mark.parametrize("package", ENGINE_PACKAGES)
def test_engine_package_imports_only_what_it_declares(package: str) -> None:
    allowed = declared(package) | {package}
    units = set(ENGINE_PACKAGES) | {p.stem for p in ENGINE.glob("*.py") if p.stem != "__init__"}
    assert allowed <= units, f"{package} declares unknown names: {sorted(allowed - units)}"
    bad = [f"{m}:{line} imports {target}" for m in MODULES if m.startswith(f"cshell.engine.{package}.")
           for target, _, line in imports_of(m)
           if target.startswith("cshell.engine.") and _engine_unit(target) not in allowed]
    assert not bad, f"engine/{package} declares 'May import: {', '.join(sorted(allowed - {package}))}':\n  " + \
        "\n  ".join(bad)


@pytest.mark.parametrize("module", sorted(FLOOR))
def test_state_and_trace_stand_on_nothing(module: str) -> None:
    name = f"cshell.engine.{module}"
    bad = [f"{name}:{line} imports {target}" for target, _, line in imports_of(name)
           if target.startswith("cshell.engine.") and target.removeprefix("cshell.engine.") not in FLOOR[module]]
    assert not bad, "\n".join(bad)


def test_engine_packages_declare_a_one_way_order() -> None:
    """The `May import:` lines themselves form no loop: the packages read bottom up."""
    edges = {p: declared(p) & set(ENGINE_PACKAGES) for p in ENGINE_PACKAGES}
    assert find_cycles(edges) == [], find_cycles(edges)
