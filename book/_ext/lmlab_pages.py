"""The book's own pages: the status table and the author-year bibliography style.

- ``{lmlab-status-table}``: the status page's table of executed chapters, with each chapter's title, when and how it
  last ran, its run time, its cold-run budget (read from the chapter's front matter, ``lmlab: cpu_budget_s``, so a
  new chapter appears with its budget automatically) and whether it succeeded, in plain words; and whether it passed
  again on the second draw of ``make test`` (another seed offset, the portable CPU kernels, one thread: the records
  ``_build/draws/second/<name>.json`` that ``conftest.py`` writes). It replaces myst-nb's ``{nb-exec-table}``, which
  shows file names and emoji.
- The bibliography style ``author_year``: pybtex's ``plain`` entries, sorted by author and year, labelled
  "Elhage et al., 2021", so the reference list matches the author-year citations in the text
  (``bibtex_reference_style: author_year``).
"""

from __future__ import annotations

import posixpath
import re
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml
from docutils import nodes
from sphinx.addnodes import pending_xref
from sphinx.application import Sphinx
from sphinx.transforms.post_transforms import SphinxPostTransform
from sphinx.util.docutils import SphinxDirective

_FRONT_MATTER = re.compile(r"\A---\s*\n(.*?)\n---\s*\n", re.DOTALL)


def cpu_budget(path: Path) -> float | None:
    """The chapter's ``lmlab: cpu_budget_s`` from the front matter of its MyST source, or ``None``."""
    try:
        match = _FRONT_MATTER.match(path.read_text(encoding="utf-8"))
    except OSError:
        return None
    if not match:
        return None
    meta = yaml.safe_load(match.group(1)) or {}
    budget = (meta.get("lmlab") or {}).get("cpu_budget_s") if isinstance(meta, dict) else None
    return float(budget) if isinstance(budget, (int, float)) else None


class StatusTableNode(nodes.General, nodes.Element):
    """Placeholder, replaced by the table once every chapter has been executed."""


class StatusTable(SphinxDirective):
    """``{lmlab-status-table}``: one row per executed chapter."""

    has_content = False

    def run(self) -> list[nodes.Node]:
        from myst_nb.sphinx_ import NbMetadataCollector

        # myst-nb's key: it re-renders pages that carry it whenever a chapter is re-executed
        NbMetadataCollector.set_doc_data(self.env, self.env.docname, "has_exec_table", True)
        return [StatusTableNode()]


_HEADERS = ("Chapter", "Last run", "Method", "Run time (s)", "Budget (s)", "Status", "Second draw")
SECOND_DRAW = Path("_build") / "draws" / "second"


def second_draw_records(srcdir: Path) -> dict[str, dict[str, Any]]:
    """The second draw's record of each chapter, by chapter name (empty when ``make test-draw2`` has not run)."""
    import json

    records: dict[str, dict[str, Any]] = {}
    for f in sorted((srcdir / SECOND_DRAW).glob("*.json")):
        try:
            rec = json.loads(f.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(rec, dict):
            records[f.stem] = rec
    return records


def _draw_words(draw: dict[str, Any]) -> str:
    threads = draw.get("threads")
    return (
        f"seed offset {draw.get('seed_offset')} (LMLAB_SEED_OFFSET), CPU kernels "
        f"{draw.get('cpu_capability')} (ATEN_CPU_CAPABILITY), {threads} thread{'' if threads == '1' else 's'}"
    )


def _second_draw_cell(rec: dict[str, Any] | None) -> str:
    if rec is None:
        return "not run"
    if rec.get("passed"):
        return "passed"
    cell = rec.get("first_failed_cell")
    return f"failed (cell {cell})" if cell else "failed"


def _second_draw_note(records: dict[str, dict[str, Any]]) -> nodes.paragraph:
    draws = {_draw_words(r.get("draw") or {}) for r in records.values()}
    if not records:
        text = "Second draw: not run in this build (make test runs it; make book does not)."
    elif len(draws) == 1:
        text = f"Second draw: every chapter executed once more on {draws.pop()}, by make test."
    else:
        text = "Second draw: the chapters were executed once more on several draws, by make test."
    return nodes.paragraph(text=text)


def _entry(content: nodes.Node | str) -> nodes.entry:
    para = nodes.paragraph()
    para += nodes.Text(content) if isinstance(content, str) else content
    return nodes.entry("", para)


def _table(env: Any, parent: str, records: dict[str, dict[str, Any]]) -> nodes.table:
    from myst_nb.sphinx_ import NbMetadataCollector

    table = nodes.table(classes=["colwidths-auto", "lmlab-status"])
    tgroup = nodes.tgroup(cols=len(_HEADERS))
    table += tgroup
    for _ in _HEADERS:
        tgroup += nodes.colspec(colwidth=1)
    head = nodes.row()
    for name in _HEADERS:
        head += _entry(name)
    tgroup += nodes.thead("", head)
    body = nodes.tbody()
    tgroup += body
    data = NbMetadataCollector.get_doc_data(env)
    order = {doc: i for i, doc in enumerate(_toc_order(env))}
    for docname in sorted(data, key=lambda d: (order.get(d, len(order)), d)):
        run = data[docname].get("exec_data")
        if not run:
            continue
        title = env.titles[docname].astext() if docname in env.titles else docname
        link = pending_xref(
            refdoc=parent,
            reftarget=posixpath.relpath(docname, posixpath.dirname(parent)),
            reftype="doc",
            refdomain="std",
            refexplicit=True,
            refwarn=True,
            classes=["xref", "doc"],
        )
        link += nodes.inline(text=title)
        budget = cpu_budget(Path(env.doc2path(docname)))
        runtime = run.get("runtime")
        when = datetime.fromtimestamp(run["mtime"]).strftime("%Y-%m-%d %H:%M") if run.get("mtime") else ""
        if run.get("succeeded"):
            status = "ok" if budget is None or runtime is None or runtime <= budget else "ok, over budget"
        else:
            status = "failed"
        row = nodes.row()
        row += _entry(link)
        for cell in (
            when,
            str(run.get("method", "")),
            "–" if runtime is None else f"{runtime:.1f}",
            "–" if budget is None else f"{budget:g}",
            status,
            _second_draw_cell(records.get(posixpath.basename(docname))),
        ):
            row += _entry(cell)
        body += row
    return table


def _toc_order(env: Any) -> list[str]:
    """Documents in reading order (the table of contents), so the table lists chapters as the sidebar does."""
    root = env.config.root_doc
    seen: list[str] = []

    def walk(doc: str) -> None:
        if doc in seen:
            return
        seen.append(doc)
        for child in env.toctree_includes.get(doc, []):
            walk(child)

    walk(root)
    return seen


class StatusTableTransform(SphinxPostTransform):
    """Replace the placeholder with the table (before references are resolved, so the links work)."""

    default_priority = 8

    def run(self, **kwargs: Any) -> None:
        records = second_draw_records(Path(self.app.srcdir))
        for node in list(self.document.findall(StatusTableNode)):
            node.replace_self([_table(self.env, self.env.docname, records), _second_draw_note(records)])


def _last_name(person: Any) -> str:
    """A person's last name as plain text: ``{NVIDIA Corporation}`` -> ``NVIDIA Corporation``."""
    name = " ".join(person.last_names) or " ".join(person.first_names)
    return re.sub(r"[{}]", "", name).replace("\\", "")


def author_year_label(entry: Any) -> str:
    """``Eckart and Young, 1936``, ``Elhage et al., 2021``: the label an author-year reference list shows."""
    persons = entry.persons.get("author") or entry.persons.get("editor") or []
    names = [_last_name(p) for p in persons]
    if not names:
        who = re.sub(r"[{}]", "", entry.fields.get("title", entry.key))
    elif len(names) == 1:
        who = names[0]
    elif len(names) == 2:
        who = f"{names[0]} and {names[1]}"
    else:
        who = f"{names[0]} et al."
    return f"{who}, {entry.fields.get('year', 'n.d.')}"


def _register_bibliography_style() -> None:
    from pybtex.plugin import register_plugin
    from pybtex.style.formatting.plain import Style as PlainStyle
    from pybtex.style.labels import BaseLabelStyle
    from pybtex.style.sorting.author_year_title import SortingStyle as AuthorYearTitleSorting

    class AuthorYearLabels(BaseLabelStyle):
        def format_labels(self, sorted_entries: Any) -> Any:
            labels = [author_year_label(e) for e in sorted_entries]
            for i, label in enumerate(labels):  # two works with one label: "2021a", "2021b"
                same = [j for j, other in enumerate(labels) if other == label]
                yield label + "abcdefghij"[same.index(i)] if len(same) > 1 else label

    class AuthorYearSorting(AuthorYearTitleSorting):
        def person_key(self, person: Any) -> str:  # "{NVIDIA Corporation}" sorts under N, not after Z
            return re.sub(r"[{}]", "", super().person_key(person))

    class AuthorYearStyle(PlainStyle):
        default_label_style = "author_year"
        default_sorting_style = "author_year_braceless"

    register_plugin("pybtex.style.labels", "author_year", AuthorYearLabels, force=True)
    register_plugin("pybtex.style.sorting", "author_year_braceless", AuthorYearSorting, force=True)
    register_plugin("pybtex.style.formatting", "author_year", AuthorYearStyle, force=True)


def setup(app: Sphinx) -> dict[str, Any]:
    _register_bibliography_style()
    app.add_node(StatusTableNode)
    app.add_directive("lmlab-status-table", StatusTable)
    app.add_post_transform(StatusTableTransform)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
