"""The package's layout: every module sits in the part of the book it serves, imports go one way, modules stay small.

The map lives in ``lmlab/__init__.py`` (``_WHERE``: short name -> part) and in each part's ``_MODULES``; these tests
keep the map, the files and the import graph in agreement.
"""

from __future__ import annotations

import ast
import importlib
import pathlib

import lmlab
import pytest

PACKAGE = pathlib.Path(lmlab.__file__).parent
PARTS = lmlab._PARTS
MAX_LINES = 500
# Core modules that may name other parts: the registry of small trained models lists every part's recipes.
REGISTRY = {"core.pretrained", "core.recipes"}


def modules() -> list[pathlib.Path]:
    """Every module file of lmlab, without the packages' ``__init__.py``."""
    return sorted(p for p in PACKAGE.rglob("*.py") if p.name != "__init__.py")


def part_and_name(path: pathlib.Path) -> tuple[str, str]:
    rel = path.relative_to(PACKAGE)
    return (rel.parts[0] if len(rel.parts) > 1 else ""), rel.stem


def lmlab_imports(path: pathlib.Path) -> set[str]:
    """The lmlab modules a file imports (``from lmlab.core.checks import x`` -> ``lmlab.core.checks``)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "lmlab":
            if node.module == "lmlab":  # from lmlab import circuits: the alias of lmlab.<part>.circuits
                for a in node.names:
                    found.add(f"lmlab.{lmlab._WHERE[a.name]}.{a.name}" if a.name in lmlab._WHERE else "lmlab")
            else:
                found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "lmlab")
    return found


def test_every_module_is_in_a_part_and_on_the_map() -> None:
    top = [p.name for p in PACKAGE.glob("*.py") if p.name != "__init__.py"]
    assert not top, f"modules outside the parts: {top}; move each into the part it serves"
    on_disk: dict[str, str] = {}
    for path in modules():
        part, name = part_and_name(path)
        if part == "check" or name.startswith("_"):
            continue
        assert part in PARTS, f"{path}: {part!r} is not a part {PARTS}"
        on_disk[name] = part
    assert on_disk == lmlab._WHERE, "lmlab._WHERE must list every module with its part"
    for part in PARTS:
        listed = importlib.import_module(f"lmlab.{part}")._MODULES
        assert sorted(listed) == sorted(n for n, p in on_disk.items() if p == part), f"lmlab.{part}._MODULES"


@pytest.mark.parametrize("name", sorted(lmlab._WHERE))
def test_short_name_is_the_module_in_its_part(name: str) -> None:
    module = getattr(lmlab, name)
    assert module is importlib.import_module(f"lmlab.{lmlab._WHERE[name]}.{name}")
    assert module is getattr(importlib.import_module(f"lmlab.{lmlab._WHERE[name]}"), name)


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'circuit'"):
        _ = lmlab.circuit
    with pytest.raises(AttributeError, match="no attribute 'model'"):
        _ = lmlab.inside.model


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_module_is_over_the_line_limit(path: pathlib.Path) -> None:
    n = len(path.read_text(encoding="utf8").splitlines())
    assert n <= MAX_LINES, f"{path.name} has {n} lines (> {MAX_LINES}): split it by idea"


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_go_one_way(path: pathlib.Path) -> None:
    """A part imports core and presentation, never another part; core imports no part (but the registry)."""
    part, name = part_and_name(path)
    allowed = {"core", "presentation"}
    if part == "presentation":
        allowed = {"core", "presentation"}
    elif part == "core":
        allowed = set(PARTS) if f"core.{name}" in REGISTRY else {"core"}
    elif part == "check":
        allowed = set(PARTS) | {"check"}
    else:
        allowed = allowed | {part}
    for imported in lmlab_imports(path):
        bits = imported.split(".")
        if len(bits) < 2:
            continue  # `import lmlab`: the top level (runtime helpers and aliases)
        assert bits[1] in allowed, (
            f"{path.relative_to(PACKAGE)} imports {imported}; {part or 'lmlab'} may import {allowed}"
        )


def test_the_import_checker_sees_a_wrong_import(tmp_path: pathlib.Path) -> None:
    bad = tmp_path / "x.py"
    bad.write_text("from lmlab import circuits\nfrom lmlab.scaling.sweep import sweep\nimport lmlab.core.train\n")
    assert lmlab_imports(bad) == {"lmlab.inside.circuits", "lmlab.scaling.sweep", "lmlab.core.train"}
