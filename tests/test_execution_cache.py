"""tools/execution_cache.py: nbval's execution reaches the build's jupyter-cache, and a second execution is caught."""

from __future__ import annotations

import pathlib

import nbformat
import pytest
from jupyter_cache import get_cache
from jupyter_cache.base import CacheBundleIn

from tools import execution_cache as ec

CHAPTER = """---
kernelspec:
  name: python3
  display_name: Python 3
  language: python
---

# A chapter

```{code-cell} ipython3
:tags: [remove-input]

x = 1
```

Text.

```{code-cell} ipython3
print(x + 1)
```
"""


def executed(md: pathlib.Path, run: str, outputs: list | None = None) -> nbformat.NotebookNode:
    """What the root conftest writes for a chapter nbval ran: the chapter with outputs and the run's id."""
    nb = ec.read_source(md)
    code = [c for c in nb.cells if c.cell_type == "code"]
    code[1].outputs = outputs or [nbformat.v4.new_output("stream", name="stdout", text="2\n")]
    nb.metadata["lmlab_executed"] = {"by": "nbval", "run": run}
    return nb


@pytest.fixture
def setup(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> tuple[pathlib.Path, pathlib.Path, pathlib.Path]:
    monkeypatch.setenv("LMLAB_RUN_ID", "run-1")
    md = tmp_path / "ch.md"
    md.write_text(CHAPTER, encoding="utf8")
    out = tmp_path / "nbval"
    out.mkdir()
    return md, out, tmp_path / "cache"


def test_store_then_the_build_finds_nbval_outputs(setup: tuple[pathlib.Path, pathlib.Path, pathlib.Path]) -> None:
    md, out, cache = setup
    nbformat.write(executed(md, "run-1"), out / "ch.ipynb")
    assert ec.store(out, cache, [md]) == 0
    # What myst-nb does in the build: match the chapter as it reads it, merge the cached outputs.
    _, merged = get_cache(str(cache)).merge_match_into_notebook(ec.read_source(md))
    assert [c.get("outputs") for c in merged.cells if c.cell_type == "code"][1][0]["text"] == "2\n"
    assert ec.check(cache, [md]) == 0


def test_check_fails_when_the_build_executed_again(setup: tuple[pathlib.Path, pathlib.Path, pathlib.Path]) -> None:
    md, out, cache = setup
    nbformat.write(executed(md, "run-1"), out / "ch.ipynb")
    assert ec.store(out, cache, [md]) == 0
    # A cache miss in the build overwrites the record with its own execution (myst-nb's NotebookClientCache).
    nb = executed(md, "run-1")
    get_cache(str(cache)).cache_notebook_bundle(
        CacheBundleIn(nb, str(md), data={"execution_seconds": 1.0}), check_validity=False, overwrite=True
    )
    assert ec.check(cache, [md]) == 1


def test_store_refuses_other_runs_changed_code_and_lost_figures(
    setup: tuple[pathlib.Path, pathlib.Path, pathlib.Path],
) -> None:
    md, out, cache = setup
    nbformat.write(executed(md, "run-0"), out / "ch.ipynb")
    assert ec.store(out, cache, [md]) == 1  # a stale notebook from an earlier run
    assert ec.check(cache, [md]) == 1  # and nothing was stored
    stale = executed(md, "run-1")
    md.write_text(CHAPTER.replace("x + 1", "x + 2"), encoding="utf8")
    with pytest.raises(ValueError, match="code differs"):
        ec.with_outputs(md, stale)
    md.write_text(CHAPTER, encoding="utf8")
    figure = nbformat.v4.new_output("display_data", data={"text/plain": "<Figure size 640x480 with 1 Axes>"})
    with pytest.raises(ValueError, match="without an image"):
        ec.with_outputs(md, executed(md, "run-1", [figure]))
