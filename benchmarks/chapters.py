"""Execute every chapter cold, in a fresh kernel, and compare its wall time with its stated CPU budget.

    .venv/bin/python benchmarks/chapters.py [chapter ...]

Prints one line per chapter: seconds, budget (front matter `lmlab: cpu_budget_s`), and their ratio. The budget is
for a 2-core CPU with the lmlab model cache empty (a cold run trains the chapter's "pretrained" models), so the
script points LMLAB_CACHE at a fresh temporary folder. Not a test: timings depend on the machine.
"""

from __future__ import annotations

import importlib.util
import os
import pathlib
import sys
import tempfile
import time

import jupytext
from nbclient import NotebookClient

ROOT = pathlib.Path(__file__).resolve().parents[1]
# The root conftest.py knows how to read _toc.yml; load it by path (tests/conftest.py is another module).
_spec = importlib.util.spec_from_file_location("book_conftest", ROOT / "conftest.py")
_book = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_book)  # type: ignore[union-attr]
is_notebook, toc_files = _book.is_notebook, _book.toc_files


def main(names: list[str]) -> int:
    chapters = [p for p in toc_files() if is_notebook(p) and (not names or p.stem in names)]
    print(f"{'chapter':<20} {'seconds':>8} {'budget':>7} {'ratio':>6}")
    worst = 0.0
    with tempfile.TemporaryDirectory() as cache:
        os.environ["LMLAB_CACHE"] = cache
        os.environ["LMLAB_QUIET"] = "1"
        for md in chapters:
            nb = jupytext.read(md)
            budget = float(nb.metadata.get("lmlab", {}).get("cpu_budget_s", float("nan")))
            start = time.perf_counter()
            NotebookClient(
                nb, timeout=1800, kernel_name="python3", resources={"metadata": {"path": str(md.parent)}}
            ).execute()
            seconds = time.perf_counter() - start
            worst = max(worst, seconds / budget)
            print(f"{md.stem:<20} {seconds:8.1f} {budget:7.0f} {seconds / budget:6.2f}", flush=True)
    print(f"largest time/budget ratio: {worst:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
