"""Consistency of the book's sources: table of contents, chapters, Colab setup cells, paired notebooks."""

from __future__ import annotations

import importlib.util
import pathlib
import re

import jupytext
import nbformat
import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"

# The root conftest.py knows how to read _toc.yml; load it by path (tests/conftest.py is another module).
_spec = importlib.util.spec_from_file_location("book_conftest", ROOT / "conftest.py")
_book = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_book)  # type: ignore[union-attr]
is_notebook, toc_files = _book.is_notebook, _book.toc_files


def pages() -> set[pathlib.Path]:
    """Every page of the book: book/*.md except templates and partials (names starting with '_')."""
    return {p for p in BOOK.glob("*.md") if not p.name.startswith("_")}


def chapters() -> list[pathlib.Path]:
    return sorted(p for p in toc_files() if is_notebook(p))


def repository_url() -> str:
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    return config["repository"]["url"].rstrip("/")


def test_every_page_is_in_the_toc_and_back() -> None:
    listed = set(toc_files())
    missing_files = sorted(str(p.relative_to(ROOT)) for p in listed if not p.exists())
    assert not missing_files, f"_toc.yml lists pages that do not exist: {missing_files}"
    unlisted = sorted(str(p.relative_to(ROOT)) for p in pages() - listed)
    assert not unlisted, f"pages missing from _toc.yml: {unlisted}"


def test_toc_has_no_duplicates() -> None:
    listed = toc_files()
    assert len(listed) == len(set(listed))


def test_there_is_at_least_one_chapter() -> None:
    assert chapters(), "no executable page is listed in _toc.yml"


@pytest.mark.parametrize("md", chapters(), ids=lambda p: p.stem)
def test_chapter_front_matter(md: pathlib.Path) -> None:
    nb = jupytext.read(md)
    spec = nb.metadata.get("kernelspec", {})
    assert spec.get("name") == "python3" and spec.get("language") == "python", f"{md.name}: kernelspec {spec}"
    budget = nb.metadata.get("lmlab", {}).get("cpu_budget_s")
    assert isinstance(budget, (int, float)) and budget > 0, f"{md.name}: front matter needs lmlab: cpu_budget_s"


@pytest.mark.parametrize("md", chapters(), ids=lambda p: p.stem)
def test_colab_setup_cell(md: pathlib.Path) -> None:
    """The first cell installs lmlab on Colab only, from the repository URL in _config.yml, and is hidden."""
    nb = jupytext.read(md)
    first = next(c for c in nb.cells if c.cell_type == "code")
    assert "remove-cell" in first.metadata.get("tags", []), f"{md.name}: the setup cell must be tagged remove-cell"
    src = first.source
    assert '"google.colab" in sys.modules' in src, f"{md.name}: the setup cell must run only on Colab"
    urls = re.findall(r"git\+(https://\S+?)[\"'\s]", src)
    assert urls == [repository_url()], f"{md.name}: installs from {urls}, _config.yml says {repository_url()}"
    assert "lmlab @ git+" in src


@pytest.mark.parametrize("md", chapters(), ids=lambda p: p.stem)
def test_paired_notebook_is_in_sync(md: pathlib.Path) -> None:
    """book/<name>.ipynb exists, has the same cells as the .md (a drift test) and carries no outputs."""
    ipynb = md.with_suffix(".ipynb")
    assert ipynb.exists(), f"{ipynb.name} is missing: run `make sync`"
    a = [(c.cell_type, c.source, c.metadata.get("tags", [])) for c in jupytext.read(md).cells]
    nb = nbformat.read(ipynb, as_version=4)
    b = [(c.cell_type, c.source, c.metadata.get("tags", [])) for c in nb.cells]
    assert a == b, f"{ipynb.name} has drifted from {md.name}: run `make sync`"
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3"
    with_outputs = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and c.get("outputs")]
    assert not with_outputs, f"{ipynb.name}: cells {with_outputs} carry outputs; commit notebooks without outputs"


def test_config_traps() -> None:
    """Settings whose absence breaks the build silently (see CONTRIBUTING.md)."""
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    for pattern in (".*", "README.md", "code", "tests", "book/*.ipynb"):
        assert pattern in config["exclude_patterns"], pattern
    assert config["repository"]["branch"] == "main"
    sphinx = config["sphinx"]["config"]
    assert sphinx["nb_execution_raise_on_error"] is True
    assert sphinx["numfig"] is True and sphinx["math_numfig"] is True
    assert "sphinx-mathjax-offline" in config["sphinx"]["extra_extensions"]


def test_bibliography_keys_exist() -> None:
    """Every {cite} key used in the book is defined in book/references.bib."""
    bib = (BOOK / "references.bib").read_text()
    defined = set(re.findall(r"@\w+\{([^,\s]+),", bib))
    used: set[str] = set()
    for p in pages():
        for group in re.findall(r"\{cite(?::\w+)?\}`([^`]+)`", p.read_text()):
            used |= {k.strip() for k in group.split(",")}
    assert used, "no citations found"
    assert used <= defined, f"undefined citation keys: {sorted(used - defined)}"
