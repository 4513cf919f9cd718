"""Root pytest configuration: run the book's chapters (MyST Markdown notebooks) with nbval.

nbval collects only ``.ipynb`` files and reads them with ``nbformat.read``. The chapters' source of truth is
``book/<name>.md``; this file hands each chapter listed in ``_toc.yml`` (read by ``tools/book.py``, the one loader)
to nbval's ``IPyNbFile`` after reading it through jupytext, so a chapter is executed once, one pytest item per code
cell. The paired ``book/*.ipynb`` files
(kept for Colab) are never collected.

With ``--lmlab-executed DIR`` each chapter whose cells all passed is also written, with the outputs nbval
recorded, to ``DIR/<name>.ipynb``; ``tools/execution_cache.py`` stores those notebooks in the build's jupyter-cache,
so the strict site build renders this very execution instead of running every chapter a second time.

Every chapter kernel inherits an environment in which outbound connections to non-loopback addresses are refused
(see ``tests/netguard/sitecustomize.py``), so a chapter that downloads anything fails here on any machine.
"""

from __future__ import annotations

import os
import pathlib
import sys
from typing import Any

import jupytext
import pytest

ROOT = pathlib.Path(__file__).resolve().parent
if str(ROOT) not in sys.path:  # loaded by path (benchmarks/chapters.py): tools/ must still be importable
    sys.path.insert(0, str(ROOT))

from tools.book import BOOK, is_notebook, toc_files  # noqa: E402 - the one reader of _toc.yml

NETGUARD = ROOT / "tests" / "netguard"

collect_ignore_glob = ["book/*.ipynb", "_build/*", ".venv/*", "benchmarks/*"]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--lmlab-executed",
        metavar="DIR",
        default=None,
        help="write each chapter that passed, with the outputs nbval recorded, to DIR/<name>.ipynb",
    )
    parser.addoption(
        "--lmlab-draw-record",
        metavar="DIR",
        default=None,
        help="write DIR/<name>.json for each chapter: the draw it ran on (seed offset, CPU kernels, threads, "
        "device), whether every cell passed, and its run time (the status page shows the second draw's records)",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "colab: runs the Colab edition's notebooks as Colab would (make test-colab)")
    # The chapter kernels are started by nbval with this process's environment.
    os.environ["LMLAB_BLOCK_NETWORK"] = "1"
    os.environ["LMLAB_QUIET"] = "1"
    # The kernels draw figures with ipykernel's inline backend (PNG outputs), as the build's kernels do: the site
    # renders this execution (tools/execution_cache.py), so a forced non-interactive backend would lose every figure.
    os.environ.pop("MPLBACKEND", None)
    # pytest-xdist runs two chapters at once on a 2-core machine: one thread per kernel avoids the
    # oversubscription that makes small-tensor training many times slower.
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    paths = [str(NETGUARD), str(ROOT / "code")]
    old = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(paths + ([old] if old else []))


class _JupytextReader:
    """Stands in for the ``nbformat`` module inside nbval while a Markdown chapter is collected."""

    def __init__(self, real: Any) -> None:
        self._real = real

    def read(self, path: str, as_version: int = 4) -> Any:  # noqa: ARG002 - nbval's signature
        return jupytext.read(path)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


def pytest_collect_file(file_path: pathlib.Path, parent: pytest.Collector) -> pytest.Collector | None:
    if file_path.suffix != ".md" or file_path.parent != BOOK:
        return None
    opt = parent.config.option
    if not (getattr(opt, "nbval", False) or getattr(opt, "nbval_lax", False)):
        return None
    if file_path not in toc_files() or not is_notebook(file_path):
        return None
    from nbval import plugin

    class MarkdownNotebook(plugin.IPyNbFile):
        def collect(self):  # type: ignore[override]
            real = plugin.nbformat
            plugin.nbformat = _JupytextReader(real)
            try:
                items = list(super().collect())
            finally:
                plugin.nbformat = real
            self._lmlab_items = items
            return items

        def teardown(self) -> None:
            super().teardown()
            items = getattr(self, "_lmlab_items", [])
            out = self.config.getoption("lmlab_executed")
            if out:
                write_executed(self.path, items, pathlib.Path(out))
            record = self.config.getoption("lmlab_draw_record")
            if record:
                write_draw_record(self.path, items, pathlib.Path(record))

    return MarkdownNotebook.from_parent(parent, path=file_path)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    outcome = yield
    report = outcome.get_result()
    if report.failed or report.skipped:
        item._lmlab_passed = False  # type: ignore[attr-defined]
    elif report.when == "call":
        item._lmlab_passed = getattr(item, "_lmlab_passed", True)  # type: ignore[attr-defined]
        item._lmlab_seconds = report.duration  # type: ignore[attr-defined]  # the cell's run time


def current_draw() -> dict[str, Any]:
    """The draw the chapter kernels run on: seed offset, CPU kernel family, thread count and device (from the
    environment, which the kernels inherit; unset values are the machine's own)."""
    return {
        "seed_offset": int(os.environ.get("LMLAB_SEED_OFFSET") or 0),
        "cpu_capability": os.environ.get("ATEN_CPU_CAPABILITY") or "native",
        "threads": os.environ.get("OMP_NUM_THREADS") or "all",
        "device": os.environ.get("LMLAB_DEVICE") or "auto",
    }


def write_draw_record(md: pathlib.Path, items: list[Any], out: pathlib.Path) -> None:
    """Write ``out/<name>.json``: the draw, whether every code cell of chapter ``md`` passed, and its run time."""
    import json

    passed = bool(items) and all(getattr(i, "_lmlab_passed", False) for i in items)
    failed = [n for n, i in enumerate(items, start=1) if not getattr(i, "_lmlab_passed", False)]
    record = {
        "chapter": md.stem,
        "passed": passed,
        "cells": len(items),
        "first_failed_cell": failed[0] if failed else None,
        "seconds": sum(getattr(i, "_lmlab_seconds", 0.0) for i in items),
        "draw": current_draw(),
        "run": os.environ.get("LMLAB_RUN_ID", ""),
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{md.stem}.json").write_text(json.dumps(record, indent=1) + "\n")


def write_executed(md: pathlib.Path, items: list[Any], out: pathlib.Path) -> None:
    """Write the chapter ``md`` with the outputs nbval recorded for its code cells, if every cell passed.

    The notebook is the one nbval executed (read through jupytext), each code cell given its outputs and execution
    count; a chapter with a failed, skipped or unrun cell is not written (and a stale copy is removed), so the
    build can never render a failed execution.
    """
    target = out / f"{md.stem}.ipynb"
    target.unlink(missing_ok=True)
    nb = jupytext.read(md)
    code = [c for c in nb.cells if c.cell_type == "code"]
    if len(items) != len(code) or not all(getattr(i, "_lmlab_passed", False) for i in items):
        return
    for n, (cell, item) in enumerate(zip(code, items, strict=True), start=1):
        if item.cell.source != cell.source:
            return
        cell.outputs = list(item.test_outputs or [])
        cell.execution_count = n
        for o in cell.outputs:
            if o.get("output_type") == "execute_result":
                o["execution_count"] = n
    seconds = sum(getattr(i, "_lmlab_seconds", 0.0) for i in items)  # the chapter's run time, cell by cell
    nb.metadata["lmlab_executed"] = {"by": "nbval", "run": os.environ.get("LMLAB_RUN_ID", ""), "seconds": seconds}
    out.mkdir(parents=True, exist_ok=True)
    import nbformat

    nbformat.write(nb, target)
