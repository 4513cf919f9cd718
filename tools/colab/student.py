"""The student editions of the lab chapters: the Colab edition with the homework's functions left to write.

A chapter marks the code cells that define the functions a homework lab asks for with the tag ``lab-function``,
and the cells that check them with ``lab-check`` (``lmlab.check.<name>(<name>)``). Its student edition
(``<out>/book/student/<chapter>.ipynb``) is its Colab edition (:mod:`tools.colab.convert`) with

* every top-level function of a ``lab-function`` cell reduced to its signature and docstring and a
  ``raise NotImplementedError`` (a function without a docstring is an error: the docstring is the assignment);
* the ``lab-check`` cells unfolded, so the verdict is in view;
* an opening cell that says what to write and how the checks answer.

Nothing else changes, so everything but the checks runs before the student writes a line; a chapter must
therefore not use its ``lab-function`` definitions outside the ``lab-check`` cells (``make test-colab`` runs
each student edition with the stubs and fails if any other cell raises). The ordinary Colab edition keeps the
chapter's own definitions, and there every check passes.
"""

from __future__ import annotations

import ast
import copy

import nbformat

from tools.colab.convert import ConversionError

LAB_FUNCTION = "lab-function"
LAB_CHECK = "lab-check"
STUB = "# Your code here; the cell after this one checks it.\nraise NotImplementedError"


def tags(cell: nbformat.NotebookNode) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def has_lab(nb: nbformat.NotebookNode) -> bool:
    """Whether a notebook (a chapter read by myst-nb, or its Colab edition) has cells for a student edition."""
    return any(c.cell_type == "code" and LAB_FUNCTION in tags(c) for c in nb.cells)


def stub_source(source: str, where: str = "a lab-function cell") -> tuple[str, list[str]]:
    """``source`` with the body of every top-level function replaced by ``STUB`` after its docstring.

    Returns the new source and the names of the functions. Lines outside the functions (imports, constants,
    ``#@title``) are kept as they are.

    Raises:
        ConversionError: the source does not parse, defines no function, or a function has no docstring.
    """
    try:
        tree = ast.parse(source)
    except SyntaxError as e:
        raise ConversionError(f"{where}: does not parse: {e}") from e
    functions = [n for n in tree.body if isinstance(n, ast.FunctionDef)]
    if not functions:
        raise ConversionError(f"{where}: tagged {LAB_FUNCTION!r} but defines no function")
    lines = source.splitlines(keepends=True)
    for node in reversed(functions):
        if ast.get_docstring(node) is None:
            raise ConversionError(f"{where}: {node.name} has no docstring; the student edition keeps only it")
        doc = node.body[0]
        indent = " " * doc.col_offset
        stub = [indent + line + "\n" for line in STUB.splitlines()]
        end = node.end_lineno or doc.end_lineno or 0
        lines[doc.end_lineno or 0 : end] = stub
    text = "".join(lines)
    return (text if source.endswith("\n") else text.rstrip("\n")), [f.name for f in functions]


def _unfold(cell: nbformat.NotebookNode) -> None:
    if cell.source.startswith("#@title"):
        cell.source = cell.source.split("\n", 1)[1] if "\n" in cell.source else ""
    cell.metadata.pop("cellView", None)


def student_notebook(colab: nbformat.NotebookNode, name: str) -> nbformat.NotebookNode:
    """The student edition of a chapter's Colab edition ``colab`` (see the module's docstring).

    Raises:
        ConversionError: the notebook has no ``lab-function`` cell, a check cell is missing, or a function is
            not stubbable (see :func:`stub_source`).
    """
    if not has_lab(colab):
        raise ConversionError(f"{name}: no cell is tagged {LAB_FUNCTION!r}, so there is no student edition")
    nb = copy.deepcopy(colab)
    asked: list[str] = []
    checks = 0
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        if LAB_FUNCTION in tags(cell):
            _unfold(cell)
            cell.source, names = stub_source(cell.source, f"{name}, cell {index}")
            asked += names
        elif LAB_CHECK in tags(cell):
            _unfold(cell)
            checks += 1
    if checks == 0:
        raise ConversionError(f"{name}: functions to write but no cell tagged {LAB_CHECK!r} to check them")
    website = nb.metadata.get("lmlab", {}).get("website", "")
    listing = ", ".join(f"`{a}`" for a in asked)
    nb.cells[0] = nbformat.v4.new_markdown_cell(
        f"*The student edition of [this chapter]({website}): the homework's lab, to do yourself.* "
        f"Write the functions {listing} where the notebook says `raise NotImplementedError`, keeping their "
        "names and arguments. The cell after each calls `lmlab.check`, which runs your function and the book's on "
        "the same fixed and random cases: it prints a ✓ line when they agree, and otherwise stops with the case, "
        "what went in, what was expected, what came back and the first entry that differs. Every other cell runs "
        "as in the chapter, with the book's own functions. A check that fails stops Runtime → Run all at its "
        "cell: write the function, run its cell and the check again, then carry on with Runtime → Run after. The "
        "worked answers are in the chapter on the website."
    )
    nb.metadata.setdefault("lmlab", {})["edition"] = "student"
    nb.metadata["lmlab"]["asked"] = asked
    return nb
