"""The layering holds: each part imports only what its package docstring allows ("May import:
..."), checkers and refnode import no harness module, and no two modules import each other,
however indirectly. Imports count wherever they are: inside functions (a lazy import hides a
cycle, it does not remove it), relative ones, and modules named in strings to be imported at
run time ("module:function", `python -m module`); only those made for type checkers alone do
not."""

from __future__ import annotations

import ast
import re
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TOPS = ("checkers", "refnode", "pluginkit", "harness")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@cache
def modules() -> dict[str, Path]:
    return {_module_name(p): p for top in TOPS for p in sorted((ROOT / top).rglob("*.py"))}


def part_of(module: str) -> str:
    """The part a module belongs to: a top-level package, or a package directly under
    harness (harness.run, harness.faults, ...)."""
    bits = module.split(".")
    if bits[0] == "harness" and len(bits) > 1 and (ROOT / "harness" / bits[1]).is_dir():
        return ".".join(bits[:2])
    return bits[0]           # a top-level package, or a module of harness's own (__main__)


@cache
def imports(module: str) -> frozenset[str]:
    """The project modules `module` imports, at any level of its code; imports made only for
    type checkers (under `if TYPE_CHECKING:`) are never run and do not count."""
    known = modules()
    found = set()
    tree = ast.parse(known[module].read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            node.body = []
    package = module if known[module].name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:                       # relative: from the module's own package
                parent = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(parent + ([base] if base else []))
            submodules = [f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in known]
            # `from package import submodule` needs only the submodule; a name defined in the
            # package's __init__ (or a module's attribute) is a dependency on that module.
            names = submodules + ([base] if len(submodules) < len(node.names) else [])
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and \
                "." in node.value.partition(":")[0]:
            # A module named in a string ("module:function", `python -m module`) is imported
            # by name at run time: an import all the same. (Dotted only: "refnode" and
            # "checkers" are also a system's name and a field's.)
            names = [node.value.partition(":")[0]]
        else:
            continue
        found.update(name for name in names if name in known and name != module)
    return frozenset(found)


def rules(part: str) -> dict[str, str | None]:
    """What the part's package docstring says it may import: each part by name, with the one
    module of this part that alone may import it ("refnode (from harness.systems.refnode
    only)"), or None when any may. Other words in brackets explain, and bind nothing."""
    init = ROOT / part.replace(".", "/") / "__init__.py"
    doc = ast.get_docstring(ast.parse(init.read_text())) or ""
    match = re.search(r"^May import: (.*?)(?:\n\n|\Z)", doc, re.M | re.S)
    assert match, f"{init.relative_to(ROOT)}: its docstring has no 'May import:' paragraph"
    text = " ".join(match.group(1).split()).rstrip(".")
    if text.startswith("nothing of faultline"):
        return {}
    found = {}
    for item in re.split(r",\s*(?![^(]*\))", text):
        name, _, note = item.partition("(")
        only = re.fullmatch(r"from ([\w.]+) only\)", note.strip())
        found[name.strip()] = only.group(1) if only else None
    return found


def allowed(part: str) -> set[str]:
    """The parts `part` may import, by its docstring."""
    return set(rules(part))


PARTS = sorted({part_of(m) for m in modules()
                if (ROOT / part_of(m).replace(".", "/") / "__init__.py").exists()})


@pytest.mark.parametrize("part", PARTS)
def test_each_part_imports_only_what_its_docstring_allows(part):
    granted = rules(part)
    unknown = sorted(set(granted) - set(PARTS))
    assert not unknown, f"{part}'s docstring names parts that do not exist: {unknown}"
    wrong = []
    for module in (m for m in modules() if part_of(m) == part):
        for target in imports(module):
            other = part_of(target)
            if other == part or target == "harness":   # `from harness import x` names x
                continue
            if other not in granted or granted[other] not in (None, module):
                wrong.append(f"{module} imports {target}")
    assert not wrong, "\n".join(sorted(wrong))


def test_checkers_and_refnode_import_no_harness_module():
    wrong = sorted(f"{m} imports {t}" for m in modules() if m.split(".")[0] in ("checkers",
                   "refnode") for t in imports(m) if t.startswith("harness"))
    assert not wrong


def test_every_harness_module_belongs_to_a_package():
    loose = sorted(m for m in modules() if m.count(".") == 1 and m.startswith("harness.")
                   and not (ROOT / m.replace(".", "/")).is_dir()
                   and m != "harness.__main__")     # the package's own: harness's rules
    assert not loose, f"modules outside any part: {loose}"


def test_no_import_cycle_between_modules():
    # Every edge counts, a package's __init__ importing its own submodules included: a
    # submodule that takes a name from its own package's __init__ closes a cycle.
    graph = {m: set(imports(m)) for m in modules()}
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(module: str) -> list[str] | None:
        state[module] = 1
        stack.append(module)
        for target in sorted(graph[module]):
            if state.get(target) == 1:
                return stack[stack.index(target):] + [target]
            if target not in state and (cycle := visit(target)):
                return cycle
        stack.pop()
        state[module] = 2
        return None

    for module in sorted(graph):
        if module not in state and (cycle := visit(module)):
            pytest.fail("import cycle: " + " -> ".join(cycle))


def test_the_rules_can_fail():
    """The checks above read what they should: a part that allows nothing does import
    something, and the module graph is not empty."""
    assert imports("harness.run.runner")
    assert allowed("harness.rundirs") == set()
    assert "harness.run" in allowed("harness.cli")
