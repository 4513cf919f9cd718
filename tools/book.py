"""The book's list of pages and chapters, read from ``_toc.yml``: the one loader that the root ``conftest.py``, the
tests (``tests/test_book.py``, ``tests/test_site.py``) and the tools (``tools/execution_cache.py``,
``tools/colab``) share.

A page is a ``.md`` file listed in ``_toc.yml`` (its ``root`` included); a chapter is a page that executes, i.e.
whose front matter declares a kernelspec.
"""

from __future__ import annotations

import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"

__all__ = ["BOOK", "ROOT", "chapters", "is_notebook", "toc_files"]


def toc_files(root: pathlib.Path = ROOT) -> list[pathlib.Path]:
    """The pages listed in ``root/_toc.yml`` (the root page included), in its order, as paths to their ``.md``
    files."""
    text = (root / "_toc.yml").read_text()
    names = re.findall(r"^\s*root:\s*(\S+)", text, re.M) + re.findall(r"file:\s*(\S+)", text)
    return [root / (pathlib.PurePosixPath(n).with_suffix("").as_posix() + ".md") for n in names]


def is_notebook(md: pathlib.Path) -> bool:
    """A page is an executable chapter when its front matter declares a kernelspec."""
    head = md.read_text(encoding="utf8")[:3000]
    return head.startswith("---") and "kernelspec:" in head.split("---", 2)[1]


def chapters(root: pathlib.Path = ROOT) -> list[pathlib.Path]:
    """The executable chapters listed in ``root/_toc.yml``, in its order."""
    return [p for p in toc_files(root) if is_notebook(p)]
