"""The book's list of chapters, for the tooling: the root ``conftest.py`` reads ``_toc.yml``; load it by path
(``import conftest`` may find ``tests/conftest.py`` instead)."""

from __future__ import annotations

import importlib.util
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[1]

_spec = importlib.util.spec_from_file_location("book_conftest", ROOT / "conftest.py")
_book = importlib.util.module_from_spec(_spec)  # type: ignore[arg-type]
_spec.loader.exec_module(_book)  # type: ignore[union-attr]
is_notebook, toc_files = _book.is_notebook, _book.toc_files


def chapters() -> list[pathlib.Path]:
    """The executable chapters listed in ``_toc.yml``, in its order."""
    return [p for p in toc_files() if is_notebook(p)]
