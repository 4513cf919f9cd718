"""Hand nbval's execution of the chapters to the site build, so `make test` executes each chapter once.

``make test`` runs the chapters under nbval with ``--lmlab-executed DIR`` (see the root ``conftest.py``), which
writes every chapter that passed, with its outputs, to ``DIR/<name>.ipynb``. Then:

    python -m tools.execution_cache store DIR     # put those outputs into the build's jupyter-cache
    jupyter-book build ...                       # execute_notebooks: cache -> every chapter is a cache hit
    python -m tools.execution_cache check        # fail unless each chapter was rendered from this nbval run

myst-nb looks a notebook up in jupyter-cache by a hash of its code cells (sources and metadata) and its kernelspec,
so ``store`` reads each chapter with myst-nb's own MyST reader (the notebook the build will hash) and copies the
outputs into it cell by cell, refusing a chapter whose code no longer matches what nbval ran. Each stored record
carries the run's id (``LMLAB_RUN_ID``); ``check`` fails for a chapter whose cache record lacks it, which is what
happens when the build had to execute the chapter itself (a cache miss overwrites the record).
"""

from __future__ import annotations

import argparse
import os
import pathlib
import sys

import nbformat
from jupyter_cache import get_cache
from jupyter_cache.base import CacheBundleIn
from myst_nb.core.read import read_myst_markdown_notebook

from tools.book import chapters

ROOT = pathlib.Path(__file__).resolve().parents[1]
CACHE = ROOT / "_build" / ".jupyter_cache"


def read_source(md: pathlib.Path) -> nbformat.NotebookNode:
    """The chapter as myst-nb reads it for the build (the notebook whose hash the cache is matched by)."""
    return read_myst_markdown_notebook(md.read_text(encoding="utf8"), path=md)


def with_outputs(md: pathlib.Path, executed: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """``md`` as myst-nb reads it, its code cells given the outputs of ``executed`` (same code, same order).

    Raises:
        ValueError: the executed notebook's code cells differ from the chapter's (it ran an older version).
    """
    nb = read_source(md)
    code = [c for c in nb.cells if c.cell_type == "code"]
    ran = [c for c in executed.cells if c.cell_type == "code"]
    if [c.source for c in code] != [c.source for c in ran]:
        raise ValueError(f"{md.name}: the executed notebook's code differs from the chapter's; run nbval again")
    for cell, done in zip(code, ran, strict=True):
        for out in done.get("outputs", []):
            data = out.get("data", {})
            text = "".join(v for k, v in data.items() if k.endswith("text/plain"))
            if text.startswith("<Figure size") and not any("image/" in k for k in data):
                raise ValueError(
                    f"{md.name}: a figure was executed without an image (is MPLBACKEND set for the kernels?)"
                )
        cell.outputs = done.get("outputs", [])
        cell.execution_count = done.get("execution_count")
    return nb


def run_id() -> str:
    rid = os.environ.get("LMLAB_RUN_ID", "")
    if not rid:
        raise SystemExit("LMLAB_RUN_ID is not set: the Makefile sets it for one `make test` run")
    return rid


def store(executed_dir: pathlib.Path, cache_path: pathlib.Path = CACHE, mds: list[pathlib.Path] | None = None) -> int:
    """Store every chapter's executed notebook from ``executed_dir`` in the jupyter-cache at ``cache_path``."""
    rid = run_id()
    cache = get_cache(str(cache_path))
    missing = []
    mds = chapters() if mds is None else mds
    for md in mds:
        path = executed_dir / f"{md.stem}.ipynb"
        if not path.exists():
            missing.append(md.name)
            continue
        executed = nbformat.read(path, as_version=4)
        if executed.metadata.get("lmlab_executed", {}).get("run") != rid:
            missing.append(f"{md.name} (from another run)")
            continue
        nb = with_outputs(md, executed)
        # myst-nb shows "execution_seconds" as the run time (the status page's column)
        seconds = executed.metadata["lmlab_executed"].get("seconds")
        cache.cache_notebook_bundle(
            CacheBundleIn(nb, str(md), data={"executed_by": "nbval", "run": rid, "execution_seconds": seconds}),
            check_validity=False,
            overwrite=True,
        )
    if missing:
        print(f"no passing nbval execution for: {', '.join(missing)}", file=sys.stderr)
        return 1
    print(f"stored nbval's execution of {len(mds)} chapters in {cache_path}")
    return 0


def check(cache_path: pathlib.Path = CACHE, mds: list[pathlib.Path] | None = None) -> int:
    """Fail unless every chapter's cache record is the one this run's nbval stored."""
    rid = run_id()
    cache = get_cache(str(cache_path))
    bad = []
    mds = chapters() if mds is None else mds
    for md in mds:
        try:
            record = cache.match_cache_notebook(read_source(md))
        except KeyError:
            bad.append(f"{md.name}: not in the cache")
            continue
        if record.data.get("run") != rid:
            bad.append(f"{md.name}: rendered from another execution than this run's nbval ({record.data})")
    if bad:
        print("\n".join(bad), file=sys.stderr)
        return 1
    print(f"all {len(mds)} chapters were rendered from this run's nbval execution")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("store", help="store nbval's executed chapters in the build's jupyter-cache")
    s.add_argument("executed_dir", type=pathlib.Path)
    sub.add_parser("check", help="fail unless every chapter's cache record comes from this run's nbval")
    args = parser.parse_args(argv)
    return store(args.executed_dir) if args.cmd == "store" else check()


if __name__ == "__main__":
    sys.exit(main())
