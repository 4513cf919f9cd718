"""Small fixes to the generated pages that the themes do not expose as options.

- sphinx-thebe registers its inline configuration script twice, so every page logs
  ``Identifier 'THEBE_JS_URL' has already been declared``; drop exact duplicate scripts.
- The Colab launch button points at the page's source (``book/<page>.md``) on the repository's branch; point it at
  the Colab edition instead, ``book/<page>.ipynb`` on the branch ``lmlab_colab_branch`` that the Pages workflow
  publishes from the same build; a lab chapter gets a second button for its student edition.
- Sphinx numbers figures, equations and exercises across the whole book (the sixth chapter's first exercise
  would be "Exercise 22"); number them per page instead, restarting at 1 on every page.
- pydata-sphinx-theme reads the colour mode from localStorage and falls back to ``default_mode``, which
  sphinx-book-theme leaves empty, so a first visit logs ``Got invalid theme mode``; default to ``auto``.

It also records, for the Colab edition (``tools/colab``), how each page's cross-references read on the website:
every reference role of the page (``{cite}``, ``{eq}``, ``{numref}``, ``{ref}``, ...) with the text and absolute link
Sphinx renders for it, and the numbers of the page's labelled figures, exercises and equations. It is written to
``_build/refs/<docname>.json`` when the page is written, so the Colab notebooks say "Fig. 3" and "(12)" exactly
where the website does.
"""

from __future__ import annotations

import json
import pathlib
import posixpath
import re
from typing import Any

from docutils import nodes
from sphinx import addnodes
from sphinx.application import Sphinx
from sphinx.transforms.post_transforms import ReferencesResolver, SphinxPostTransform


def _colab_link(url: str, branch: str) -> str:
    """A launch URL of Colab rewritten to the Colab edition: branch ``branch``, the page's ``.ipynb``."""
    head, sep, path = url.partition("/blob/")
    if not sep:
        return url
    path = path.split("/", 1)[1] if "/" in path else path
    stem, dot, ext = path.rpartition(".")
    return f"{head}/blob/{branch}/{stem if dot else path}.ipynb"


def _rewrite_colab(buttons: list[Any], branch: str, student: bool = False) -> None:
    """Point the Colab buttons at the Colab edition; beside each, for a lab chapter, one for its student edition
    (``book/student/<page>.ipynb``, :mod:`tools.colab.student`)."""
    for b in list(buttons):
        if isinstance(b, dict):
            if "colab.research.google.com" in str(b.get("url", "")):
                b["url"] = _colab_link(b["url"], branch)
                if student:
                    head, _, name = b["url"].rpartition("/")
                    edition = dict(b, url=f"{head}/student/{name}", text="Colab (student edition)")
                    edition["tooltip"] = "The lab on Colab: write the homework's functions, checked as you go"
                    buttons.insert(buttons.index(b) + 1, edition)
            _rewrite_colab(b.get("buttons", []), branch, student)


def _has_student_edition(app: Sphinx, pagename: str) -> bool:
    """Whether the page's source marks a code cell ``lab-function`` (tools/colab/student.py)."""
    if pagename not in app.env.all_docs:
        return False
    source = pathlib.Path(app.env.doc2path(pagename))
    return (
        source.suffix == ".md" and re.search(r"^:tags:.*\blab-function\b", source.read_text("utf8"), re.M) is not None
    )


def _tidy_page(app: Sphinx, pagename: str, templatename: str, context: dict[str, Any], doctree: Any) -> None:
    # The launch buttons open the page's notebook in the Colab edition (tools/colab), published on its own branch.
    student = _has_student_edition(app, pagename)
    _rewrite_colab(context.get("header_buttons", []), app.config.lmlab_colab_branch, student)
    scripts = context.get("script_files")
    if scripts:
        seen: set[tuple[str, str]] = set()
        unique = []
        for js in scripts:
            key = (str(getattr(js, "filename", js) or ""), str(getattr(js, "attributes", {}).get("body", "")))
            if key not in seen:
                seen.add(key)
                unique.append(js)
        scripts[:] = unique
    if not context.get("default_mode"):
        context["default_mode"] = "auto"


def _site_url(app: Sphinx, docname: str, uri: str) -> str:
    """``uri`` (relative to the HTML page of ``docname``) as an absolute URL on the published site."""
    base = (app.config.html_baseurl or "").rstrip("/") + "/"
    if "://" in uri or uri.startswith("mailto:"):
        return uri
    page = docname + ".html"
    if not uri or uri.startswith("#"):
        return base + page + uri
    return base + posixpath.normpath(posixpath.join(posixpath.dirname(page), uri))


def _markdown(app: Sphinx, docname: str, node: nodes.Node) -> str:
    """A resolved inline node as Markdown: text, emphasis, and links made absolute on the site."""
    if isinstance(node, nodes.Text):
        return re.sub(r"([\\`*_\[\]<>])", r"\\\1", node.astext())  # Markdown's special characters, escaped
    inner = "".join(_markdown(app, docname, child) for child in node.children)
    if isinstance(node, nodes.reference):
        uri = node.get("refuri") or ("#" + node["refid"] if node.get("refid") else "")
        return f"[{inner}]({_site_url(app, docname, uri)})" if uri else inner
    if isinstance(node, nodes.emphasis):
        return f"*{inner}*"
    if isinstance(node, nodes.strong):
        return f"**{inner}**"
    if isinstance(node, nodes.literal):
        return f"`{node.astext()}`"
    if isinstance(node, nodes.math):
        return f"${node.astext()}$"
    return inner


class RecordReferences(SphinxPostTransform):
    """Record how each cross-reference of the page resolves, before Sphinx's own resolver replaces it."""

    default_priority = ReferencesResolver.default_priority - 1
    formats = ("html",)

    def run(self, **kwargs: Any) -> None:
        app, env, docname = self.app, self.env, self.env.docname
        refs = []
        for node in self.document.findall(addnodes.pending_xref):
            domain_name, typ, target = node.get("refdomain", ""), node.get("reftype", ""), node.get("reftarget", "")
            contnode = node[0].deepcopy() if len(node) else nodes.Text(target)
            try:
                domain = env.get_domain(domain_name)
                new = domain.resolve_xref(env, docname, app.builder, typ, target, node.deepcopy(), contnode)
            except Exception:  # noqa: BLE001 - unresolvable here; the Colab converter reports what it misses
                continue
            if new is None:
                continue
            refs.append(
                {
                    "domain": domain_name,
                    "type": typ,
                    "target": target,
                    "explicit": bool(node.get("refexplicit")),
                    "markdown": _markdown(app, docname, new),
                }
            )
        std = env.get_domain("std")
        fignumbers = env.toc_fignumbers.get(docname, {})
        labels = {}
        for label, (doc, labelid, sectname) in std.labels.items():  # type: ignore[attr-defined]
            if doc != docname:
                continue
            number = next(
                (".".join(map(str, n[labelid])) for n in fignumbers.values() if labelid in n),
                None,
            )
            labels[label] = {"id": labelid, "title": sectname, "number": number}
        math = env.get_domain("math")
        equations = {
            label: number
            for label, (doc, number) in math.data.get("objects", {}).items()  # type: ignore[attr-defined]
            if doc == docname
        }
        out = pathlib.Path(app.outdir).parent / "refs" / f"{docname}.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        record = {
            "docname": docname,
            "url": _site_url(app, docname, ""),
            "refs": refs,
            "labels": labels,
            "equations": equations,
        }
        out.write_text(json.dumps(record, indent=1, ensure_ascii=False), encoding="utf8")


def _number_per_page(app: Sphinx, env: Any) -> list[str]:
    """Renumber every page's figures, equations and exercises 1, 2, ... in the order of the page.

    Sphinx's toctree collector assigns ``env.toc_fignumbers[docname][figtype][id]`` one counter per figure type
    for the whole book; keeping the order and restarting the counter on each page gives per-chapter numbers
    that every reference ({numref}, {eq}, an exercise's {ref}) and the Colab edition read from the same place.
    Idempotent: renumbering numbers that already restart gives the same numbers.
    """
    for per_type in env.toc_fignumbers.values():
        for figtype, numbers in per_type.items():
            ordered = sorted(numbers, key=lambda figure_id: numbers[figure_id])
            per_type[figtype] = {figure_id: (i + 1,) for i, figure_id in enumerate(ordered)}
    return []  # the collector has already listed the pages to rewrite


def setup(app: Sphinx) -> dict[str, Any]:
    app.connect("html-page-context", _tidy_page, priority=900)
    # after the toctree collector's own handler (priority 500) has assigned the book-wide numbers
    app.connect("env-get-updated", _number_per_page, priority=900)
    app.add_post_transform(RecordReferences)
    app.add_config_value("lmlab_colab_branch", "colab", "html")
    return {"parallel_read_safe": True, "parallel_write_safe": True}
