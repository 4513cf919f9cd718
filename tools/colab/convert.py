"""The Colab edition of the book: each chapter's MyST notebook rewritten as a plain Jupyter notebook for Colab.

    python -m tools.colab.convert [--out _build/colab] [--ref COMMIT] [CHAPTER.md ...]

Run after a site build (``make book`` or the strict build of ``make test``). For every chapter listed in
``_toc.yml`` (or those named) it writes ``<out>/book/<chapter>.ipynb`` (and, for a lab chapter, its student edition
``<out>/book/student/<chapter>.ipynb``: :mod:`tools.colab.student`), built from three things:

* the chapter as myst-nb reads it (``myst_nb.core.read``): its cells, tags and MyST Markdown;
* the build's executed notebooks (``_build/jupyter_execute``): the values glued for the prose;
* what the site build recorded about each page (``_build/refs/<page>.json``, written by ``book/_ext``): how each
  cross-reference, citation and equation reference reads on the website, and the numbers of figures,
  equations and exercises.

The Markdown is parsed with myst-parser's markdown-it parser; each MyST construct is rewritten as Colab shows
Markdown: glued values as their text, references as links to the website, labelled equations with ``\\tag``,
exercises as headed blocks, solutions in ``<details>``, admonitions as block quotes, glued figures as image
attachments. Anything the converter does not know raises :class:`ConversionError` naming the chapter and the
construct, so a chapter written later never ships half-converted. Cells the website hides stay runnable but
folded (Colab's form view, ``#@title``); the first cell links back to the chapter's web page.
"""

from __future__ import annotations

import argparse
import base64
import copy
import json
import pathlib
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import nbformat
import yaml
from markdown_it import MarkdownIt
from markdown_it.renderer import RendererHTML
from markdown_it.token import Token
from myst_nb.core.read import read_myst_markdown_notebook
from myst_nb.core.variables import format_plain_text
from myst_parser.config.main import MdParserConfig
from myst_parser.parsers.mdit import create_md_parser

from tools.book import chapters

ROOT = pathlib.Path(__file__).resolve().parents[2]
BUILD = ROOT / "_build"
GLUE_PREFIX = "application/papermill.record/"
ADMONITIONS = {
    "admonition",
    "note",
    "tip",
    "hint",
    "important",
    "warning",
    "caution",
    "attention",
    "danger",
    "error",
    "seealso",
    "margin",
    "sidebar",
    "epigraph",
    "topic",
    "dropdown",
}
# Roles that Sphinx resolves as cross-references: (domain, type) in the records of book/_ext.
XREF_ROLES = {
    "ref": ("std", "ref"),
    "numref": ("std", "numref"),
    "doc": ("std", "doc"),
    "term": ("std", "term"),
    "eq": ("math", "eq"),
    "prf:ref": ("prf", "ref"),
}
# Directives that only arrange the website (table of contents, execution reports): nothing to show on Colab.
WEB_ONLY = {"tableofcontents", "toctree", "nb-exec-table", "index"}


class ConversionError(ValueError):
    """A chapter uses a construct the Colab converter cannot render faithfully."""


# ----------------------------------------------------------------------------------------------------------------
# The book's configuration and the build's records


def load_config() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf8"))


def md_parser(config: dict[str, Any] | None = None) -> MarkdownIt:
    """myst-parser's markdown-it parser with the book's MyST extensions (``parse.myst_enable_extensions``)."""
    config = config or load_config()
    extensions = set(config.get("parse", {}).get("myst_enable_extensions", []))
    return create_md_parser(MdParserConfig(enable_extensions=extensions), RendererHTML)


def glued_values(executed: pathlib.Path = BUILD / "jupyter_execute") -> dict[str, dict[str, Any]]:
    """Every value glued in the build: key -> MIME bundle (``text/plain``, ``image/png``, ...).

    myst-nb moves each executed notebook's glued outputs into ``<page>.glue.json`` beside it (MIME prefix removed);
    outputs still in a notebook (a build that kept them) are read too.
    """
    values: dict[str, dict[str, Any]] = {}
    for path in sorted(executed.rglob("*.glue.json")):
        for key, out in json.loads(path.read_text(encoding="utf8")).items():
            prefix = out.get("metadata", {}).get("scrapbook", {}).get("mime_prefix", "")
            values[key] = {k.removeprefix(prefix): v for k, v in out.get("data", {}).items()}
    for path in sorted(executed.rglob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        for cell in nb.cells:
            for out in cell.get("outputs", []):
                scrap = out.get("metadata", {}).get("scrapbook")
                if out.get("output_type") != "display_data" or not scrap:
                    continue
                prefix = scrap.get("mime_prefix", "")
                values[scrap["name"]] = {k.removeprefix(prefix): v for k, v in out.get("data", {}).items()}
    return values


@dataclass
class PageRefs:
    """What the site build recorded for one page (``book/_ext/lmlab_site.py``)."""

    docname: str
    url: str
    refs: list[dict[str, Any]]
    labels: dict[str, dict[str, Any]]
    equations: dict[str, int]

    @classmethod
    def load(cls, docname: str, folder: pathlib.Path = BUILD / "refs") -> PageRefs:
        path = folder / f"{docname}.json"
        if not path.exists():
            raise ConversionError(f"{path} is missing: build the site first (make book)")
        return cls(**json.loads(path.read_text(encoding="utf8")))

    def xref(self, domain: str, typ: str, target: str) -> str:
        """The Markdown the website shows for a reference (text with absolute links)."""
        found = [r for r in self.refs if r["domain"] == domain and r["target"] in (target, target.lower())]
        # Extensions may retype a reference (sphinx-exercise turns {ref} to an exercise into a numbered one).
        for r in sorted(found, key=lambda r: r["type"] != typ):
            return r["markdown"]
        raise ConversionError(f"{self.docname}: the build recorded no {domain}:{typ} reference to {target!r}")

    def label_url(self, label: str) -> str:
        info = self.labels.get(label)
        return f"{self.url}#{info['id']}" if info else self.url


# ----------------------------------------------------------------------------------------------------------------
# Markdown


def directive_parts(token: Token) -> tuple[str, str, dict[str, str], str]:
    """A MyST directive fence as (name, argument, options, body), options from ``:key: value`` lines or YAML."""
    name, _, argument = token.info.strip().partition(" ")
    name = name.strip()[1:-1]
    lines = token.content.splitlines()
    options: dict[str, str] = {}
    if lines and lines[0].strip() == "---":
        end = next((i for i in range(1, len(lines)) if lines[i].strip() == "---"), None)
        if end is None:
            raise ConversionError(f"directive {name}: unterminated YAML options block")
        options = {k: str(v) for k, v in (yaml.safe_load("\n".join(lines[1:end])) or {}).items()}
        lines = lines[end + 1 :]
    else:
        while lines and lines[0].startswith(":") and lines[0].count(":") >= 2:
            key, _, value = lines[0][1:].partition(":")
            options[key.strip()] = value.strip()
            lines = lines[1:]
    return name, argument.strip(), options, "\n".join(lines).strip("\n")


def quote(text: str) -> str:
    return "\n".join(("> " + line).rstrip() for line in text.splitlines())


def details(summary: str, body: str) -> str:
    return f"<details>\n<summary>{summary}</summary>\n\n{body.strip()}\n\n</details>"


def display_math(body: str, number: int | str | None) -> str:
    body = body.strip()
    if "\\\\" in body and "\\begin" not in body:
        body = "\\begin{aligned}\n" + body + "\n\\end{aligned}"  # as Sphinx wraps a multi-line equation
    tag = f" \\tag{{{number}}}" if number is not None else ""
    return f"$$\n{body}{tag}\n$$"


def _walk(tokens: list[Token]) -> Iterator[Token]:
    for t in tokens:
        yield t
        if t.children:
            yield from _walk(t.children)


@dataclass
class Chapter:
    """Converts one chapter; holds what its Markdown needs (glued values, the page's references, the site)."""

    md: pathlib.Path
    glue: dict[str, dict[str, Any]]
    refs: PageRefs
    parser: MarkdownIt
    repo_url: str
    ref: str | None = None
    attachments: dict[str, dict[str, str]] = field(default_factory=dict)
    gate: str | None = None  # the exercise label while inside a solution-start/solution-end pair

    # ---- inline ---------------------------------------------------------------------------------------------

    def glue_value(self, key: str) -> dict[str, Any]:
        key = key.split("::")[-1]
        if key not in self.glue:
            raise ConversionError(f"{self.md.name}: no value glued as {key!r} in the build's executed notebooks")
        return self.glue[key]

    def role(self, name: str, content: str) -> str:
        """The Markdown a MyST role reads as on the website."""
        if name.startswith("glue"):
            key, _, spec = content.partition(":")
            if "::" in content:
                doc, _, rest = content.partition("::")
                key, _, spec = rest.partition(":")
                key = f"{doc}::{key}"
            value = self.glue_value(key)
            if name in ("glue:text", "glue", "glue:any") and "text/markdown" not in value or name == "glue:text":
                if "text/plain" not in value:
                    raise ConversionError(f"{self.md.name}: glued {key!r} has no text to show")
                return format_plain_text(value["text/plain"], spec)
            if name in ("glue:md", "glue", "glue:any"):
                return self.markdown(value["text/markdown"]).strip()
            if name == "glue:math":
                latex = value.get("text/latex", "").strip().strip("$")
                return f"${latex}$"
        if name.startswith("cite"):
            typ = name.partition(":")[2] or "p"
            return self.refs.xref("cite", typ, content)
        if name in XREF_ROLES:
            domain, typ = XREF_ROLES[name]
            m = re.fullmatch(r"(?s)(.*?)\s*<([^<>]+)>", content)
            target = m.group(2) if m else content
            md = self.refs.xref(domain, typ, target)
            if m and m.group(1):  # an explicit title: keep the link, show the author's words
                link = re.search(r"\]\(([^()]+)\)$", md)
                return f"[{m.group(1)}]({link.group(1)})" if link else m.group(1)
            return md
        simple = {
            "math": lambda c: f"${c}$",
            "sub": lambda c: f"<sub>{c}</sub>",
            "sup": lambda c: f"<sup>{c}</sup>",
            "kbd": lambda c: f"<kbd>{c}</kbd>",
            "code": lambda c: f"`{c}`",
            "samp": lambda c: f"`{c}`",
            "abbr": lambda c: c.split(" (")[0],
        }
        if name in simple:
            return simple[name](content)
        raise ConversionError(f"{self.md.name}: the Colab converter does not know the role {{{name}}}")

    def link(self, href: str) -> str:
        """A link of the chapter's Markdown as an absolute link (other pages and anchors point to the website)."""
        if re.match(r"^[a-z][a-z0-9+.-]*:", href):
            return href
        base = self.refs.url.rsplit("/", 1)[0] + "/"
        path, _, anchor = href.partition("#")
        if not path:
            return self.refs.label_url(anchor) if anchor in self.refs.labels else f"{self.refs.url}#{anchor}"
        path = re.sub(r"\.(md|ipynb)$", ".html", path)
        return base + path + (f"#{anchor}" if anchor else "")

    def inline(self, text: str, tokens: list[Token]) -> str:
        """``text`` (the source of one block) with its roles and links rewritten, found in source order."""
        out, cursor = [], 0
        for t in _walk(tokens):
            if t.type == "code_inline":
                i = text.find(t.content, cursor)
                if i >= 0:
                    out.append(text[cursor : i + len(t.content)])
                    cursor = i + len(t.content)
            elif t.type == "myst_role":
                name, content = t.meta["name"], t.content
                m = re.compile(r"\{" + re.escape(name) + r"\}(`+)" + re.escape(content) + r"\1").search(text, cursor)
                if not m:
                    raise ConversionError(f"{self.md.name}: cannot locate {{{name}}}`{content}` in its paragraph")
                out.append(text[cursor : m.start()] + self.role(name, content))
                cursor = m.end()
            elif t.type in ("link_open", "image"):
                attr = "href" if t.type == "link_open" else "src"
                href = str(t.attrs.get(attr, ""))
                i = text.find("](" + href, cursor)
                if i < 0:
                    continue  # an autolink or reference-style link: nothing to rewrite
                new = self.link(href) if t.type == "link_open" else self.image(href)
                out.append(text[cursor : i + 2] + new)
                cursor = i + 2 + len(href)
        out.append(text[cursor:])
        return "".join(out)

    def image(self, src: str) -> str:
        if re.match(r"^[a-z][a-z0-9+.-]*:", src):
            return src
        path = (self.md.parent / src).resolve()
        if not path.exists():
            raise ConversionError(f"{self.md.name}: image {src} not found")
        mime = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".svg": "image/svg+xml"}
        name = path.name
        data = base64.b64encode(path.read_bytes()).decode()
        self.attachments[name] = {mime.get(path.suffix.lower(), "image/png"): data}
        return f"attachment:{name}"

    # ---- blocks ---------------------------------------------------------------------------------------------

    def number(self, label: str) -> str | None:
        info = self.refs.labels.get(label) or self.refs.labels.get(label.lower())
        return info.get("number") if info else None

    def glued_figure(self, key: str, name: str | None, caption: str) -> str:
        value = self.glue_value(key)
        for mime, ext in (("image/png", "png"), ("image/jpeg", "jpg"), ("image/svg+xml", "svg")):
            if mime in value:
                data = value[mime]
                self.attachments[f"{key}.{ext}"] = {mime: data if isinstance(data, str) else "".join(data)}
                number = self.number(name) if name else None
                head = f"**Fig. {number}.** " if number else ""
                return f"![{key}](attachment:{key}.{ext})\n\n{head}{caption}".strip()
        if "text/markdown" in value:
            return self.markdown(value["text/markdown"])
        if "text/html" in value:
            return value["text/html"] if isinstance(value["text/html"], str) else "".join(value["text/html"])
        raise ConversionError(f"{self.md.name}: glued {key!r} has no image or text to show")

    def exercise_name(self, label: str) -> str:
        number = self.number(label)
        return f"Exercise {number}" if number else "Exercise"

    def directive(self, token: Token) -> str:
        name, arg, opts, body = directive_parts(token)
        if name in WEB_ONLY:
            return ""
        if name in ("math", "amsmath"):
            label = opts.get("label")
            number = self.refs.equations.get(label) if label else None
            return "\n\n".join(display_math(eq, number) for eq in [body])
        if name in ADMONITIONS:
            title = arg or ("Going further" if name == "dropdown" else name.capitalize())
            inner = self.markdown(body)
            if "dropdown" in opts.get("class", "") or name == "dropdown":
                return details(f"<b>{self.markdown(title).strip()}</b>", inner)
            return quote(f"**{self.markdown(title).strip()}**\n\n{inner}")
        if name == "exercise":
            label = opts.get("label", "")
            title = f" ({self.markdown(arg).strip()})" if arg else ""
            return f"#### {self.exercise_name(label)}{title}\n\n{self.markdown(body)}"
        if name == "solution":
            return details(f"Solution to {self.exercise_name(arg)}", self.markdown(body))
        if name == "solution-start":
            self.gate = arg
            return ""
        if name == "solution-end":
            self.gate = None
            return ""
        if name == "glue:figure" or name in ("glue", "glue:any"):
            return self.glued_figure(arg, opts.get("name"), self.markdown(body))
        if name == "glue:md":
            return self.markdown(self.glue_value(arg)["text/markdown"])
        if name == "figure":
            number = self.number(opts["name"]) if "name" in opts else None
            head = f"**Fig. {number}.** " if number else ""
            return f"![{opts.get('alt', '')}]({self.image(arg)})\n\n{head}{self.markdown(body)}".strip()
        if name in ("code-block", "code", "sourcecode"):
            return f"```{arg}\n{body}\n```"
        if name == "bibliography":
            return f"[Bibliography]({self.link('bibliography.md')})"
        raise ConversionError(f"{self.md.name}: the Colab converter does not know the directive {{{name}}}")

    def markdown(self, text: str, top: bool = False) -> str:
        """MyST Markdown -> Markdown as Colab renders it (CommonMark, GFM tables, dollar math, HTML).

        With ``top`` (a whole Markdown cell), the blocks between a ``solution-start`` and its ``solution-end`` are
        folded into a ``<details>`` block (the pair may span cells: each cell's part is folded on its own).
        """
        tokens = self.parser.parse(text)
        lines = text.splitlines(keepends=True)
        out: list[str] = []
        folded: list[str] = []
        fold_label = self.gate

        def fold() -> None:
            if folded and fold_label is not None:
                out.append(details(f"Solution to {self.exercise_name(fold_label)}", "\n\n".join(folded)))
            folded.clear()

        i = 0
        while i < len(tokens):
            t = tokens[i]
            j = i
            if t.nesting == 1:  # a container: find its matching close at the same level
                depth = 0
                for j in range(i, len(tokens)):
                    depth += tokens[j].nesting
                    if depth == 0:
                        break
            block = tokens[i : j + 1]
            i = j + 1
            if t.map is None:
                continue
            source = "".join(lines[t.map[0] : t.map[1]])
            gate = self.gate
            if t.type in ("fence", "colon_fence") and t.info.strip().startswith("{"):
                converted = self.directive(t)
                if top and self.gate != gate:  # a solution-start or solution-end
                    fold()
                    fold_label = self.gate
                    continue
                (folded if top and gate is not None else out).append(converted)
            elif t.type in ("myst_target", "myst_line_comment", "myst_block_break", "front_matter"):
                continue
            else:
                if t.type == "math_block_label":
                    converted = display_math(t.content, self.refs.equations.get(t.info))
                elif t.type == "amsmath":
                    converted = f"$$\n{t.content.strip()}\n$$"
                else:
                    nested = [b for b in block[1:] if b.type in ("fence", "colon_fence") and b.info.startswith("{")]
                    if nested:
                        raise ConversionError(f"{self.md.name}: a directive nested in a {t.type} is not supported")
                    converted = self.inline(source, block).rstrip("\n")
                (folded if top and gate is not None else out).append(converted)
        fold()
        return "\n\n".join(s for s in out if s.strip()) + ("\n" if out else "")

    # ---- cells ----------------------------------------------------------------------------------------------

    def install_cell(self, source: str) -> str:
        requirement = f"lmlab @ git+{self.repo_url}"
        if requirement not in source:
            raise ConversionError(f"{self.md.name}: the first code cell does not install {requirement!r}")
        if self.ref:
            source = source.replace(requirement, f"{requirement}@{self.ref}")
        return source

    def code_cell(self, cell: nbformat.NotebookNode, first: bool) -> nbformat.NotebookNode:
        tags = list(cell.metadata.get("tags", []))
        source = self.install_cell(cell.source) if first else cell.source
        hidden = {"remove-cell", "remove-input", "hide-input", "hide-cell"} & set(tags)
        title = None
        if self.gate is not None:
            title = f"Solution to {self.exercise_name(self.gate)}"
        elif hidden:
            comment = source.lstrip().splitlines()[0] if source.strip() else ""
            if comment.startswith("#") and not comment.startswith("#@"):
                title = comment.lstrip("# ").strip()
                source = source.lstrip().split("\n", 1)[1] if "\n" in source.strip() else source
            else:
                title = "Set-up and bookkeeping (hidden on the website)"
        metadata: dict[str, Any] = {"tags": tags} if tags else {}
        if title and not source.lstrip().startswith("%%"):
            source = f'#@title {title} {{ display-mode: "form" }}\n' + source
            metadata["cellView"] = "form"
        return nbformat.v4.new_code_cell(source, metadata=metadata)

    def markdown_cell(self, source: str) -> nbformat.NotebookNode | None:
        self.attachments = {}
        text = self.markdown(source, top=True).strip()
        if not text:
            return None
        cell = nbformat.v4.new_markdown_cell(text)
        if self.attachments:
            cell["attachments"] = copy.deepcopy(self.attachments)
        return cell

    def notebook(self) -> nbformat.NotebookNode:
        source = read_myst_markdown_notebook(self.md.read_text(encoding="utf8"), path=self.md)
        cells: list[nbformat.NotebookNode] = []
        first_code = True
        for cell in source.cells:
            if cell.cell_type == "code":
                cells.append(self.code_cell(cell, first_code))
                first_code = False
            elif cell.cell_type == "markdown":
                md_cell = self.markdown_cell(cell.source)
                if md_cell is not None:
                    cells.append(md_cell)
        title = next(
            (t.children[0].content if t.children else "" for t in self._headings(source) if t.type == "inline"),
            self.md.stem,
        )
        intro = nbformat.v4.new_markdown_cell(
            f"*The Colab edition of [{title}]({self.refs.url}), a chapter of the book "
            "*Transformers and Large Models, by Running Them*. Read it on the website for the full layout. "
            "Numbers in the text are those of the build that published the website; run the cells in order "
            "(Runtime → Run all) to reproduce them. Folded cells hold code the website hides: open them to read it.*"
        )
        nb = nbformat.v4.new_notebook(cells=[intro, *cells])
        nb.metadata = {
            "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
            "language_info": {"name": "python"},
            "colab": {"provenance": [], "toc_visible": True},
            "lmlab": {"source": self.refs.docname + self.md.suffix, "website": self.refs.url},
        }
        return nb

    def _headings(self, nb: nbformat.NotebookNode) -> Iterator[Token]:
        for cell in nb.cells:
            if cell.cell_type != "markdown":
                continue
            tokens = self.parser.parse(cell.source)
            for k, t in enumerate(tokens):
                if t.type == "heading_open" and t.tag == "h1":
                    yield tokens[k + 1]
                    return


def convert(md: pathlib.Path, glue: dict[str, dict[str, Any]], ref: str | None = None) -> nbformat.NotebookNode:
    """The Colab notebook of chapter ``md`` (see the module's docstring)."""
    config = load_config()
    docname = md.resolve().relative_to(ROOT).with_suffix("").as_posix()
    chapter = Chapter(
        md=md,
        glue=glue,
        refs=PageRefs.load(docname),
        parser=md_parser(config),
        repo_url=config["repository"]["url"].rstrip("/"),
        ref=ref,
    )
    return chapter.notebook()


def main(argv: list[str] | None = None) -> int:
    from tools.colab import student  # imports this module

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("chapters", nargs="*", type=pathlib.Path, help="default: every chapter in _toc.yml")
    parser.add_argument("--out", type=pathlib.Path, default=BUILD / "colab")
    parser.add_argument("--ref", default=None, help="commit the install cell pins lmlab to (default: the branch)")
    args = parser.parse_args(argv)
    glue = glued_values()
    todo = [p.resolve() for p in args.chapters] or chapters()
    for md in todo:
        nb = convert(md, glue, args.ref)
        target = args.out / md.resolve().relative_to(ROOT).with_suffix(".ipynb")
        target.parent.mkdir(parents=True, exist_ok=True)
        nbformat.validate(nb)
        nbformat.write(nb, target)
        print(f"{target.relative_to(ROOT) if target.is_relative_to(ROOT) else target}: {len(nb.cells)} cells")
        if student.has_lab(nb):  # a lab chapter: its student edition beside it, in student/
            edition = student.student_notebook(nb, md.name)
            target = target.parent / "student" / target.name
            target.parent.mkdir(parents=True, exist_ok=True)
            nbformat.validate(edition)
            nbformat.write(edition, target)
            print(f"{target.relative_to(ROOT) if target.is_relative_to(ROOT) else target}: student edition")
    return 0


if __name__ == "__main__":
    sys.exit(main())
