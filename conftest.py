"""Root pytest configuration: run the book's chapters (MyST Markdown notebooks) with nbval.

nbval collects only ``.ipynb`` files and reads them with ``nbformat.read``. The chapters' source of truth is
``book/<name>.md``; this file hands each chapter listed in ``_toc.yml`` to nbval's ``IPyNbFile`` after reading it
through jupytext, so a chapter is executed once, one pytest item per code cell. The paired ``book/*.ipynb`` files
(kept for Colab) are never collected.

Every chapter kernel inherits an environment in which outbound connections to non-loopback addresses are refused
(see ``tests/netguard/sitecustomize.py``), so a chapter that downloads anything fails here on any machine.
"""

from __future__ import annotations

import os
import pathlib
import re
from typing import Any

import jupytext
import pytest

ROOT = pathlib.Path(__file__).resolve().parent
BOOK = ROOT / "book"
NETGUARD = ROOT / "tests" / "netguard"

collect_ignore_glob = ["book/*.ipynb", "_build/*", ".venv/*", "benchmarks/*"]


def toc_files() -> list[pathlib.Path]:
    """The pages listed in ``_toc.yml`` (the root included), as paths to their ``.md`` files."""
    text = (ROOT / "_toc.yml").read_text()
    names = re.findall(r"^\s*root:\s*(\S+)", text, re.M) + re.findall(r"file:\s*(\S+)", text)
    return [ROOT / (pathlib.PurePosixPath(n).with_suffix("").as_posix() + ".md") for n in names]


def is_notebook(md: pathlib.Path) -> bool:
    """A page is an executable chapter when its front matter declares a kernelspec."""
    head = md.read_text(encoding="utf8")[:3000]
    return head.startswith("---") and "kernelspec:" in head.split("---", 2)[1]


def pytest_configure(config: pytest.Config) -> None:
    # The chapter kernels are started by nbval with this process's environment.
    os.environ["LMLAB_BLOCK_NETWORK"] = "1"
    os.environ["LMLAB_QUIET"] = "1"
    os.environ.setdefault("MPLBACKEND", "Agg")
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
            return items

    return MarkdownNotebook.from_parent(parent, path=file_path)
