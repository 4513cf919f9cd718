"""Numbers typed in a chapter's prose, which can go stale when the code changes.

A chapter's prose states a measured number through ``{glue:text}`` (the value the code produced), never typed by
hand. What is left to type is what the homework or the literature fixes (the homework's settings, a paper's
constants, a problem's number, a name such as "layer-0 head"); each chapter lists those strings, with the reason,
in ``book/prose_numbers/<chapter>.yml``.

``typed_numbers(text, allowed)`` returns every digit of the prose that is neither glued nor allowed. Prose here is
the text of paragraphs, list items, tables, admonitions, exercises, solutions and figure captions; not prose are
code cells and code blocks, math (``$...$``, ``$$...$$``, ``{math}``), inline code, roles and their targets
(``{cite}``, ``{eq}``, ``{glue:text}``, ...), headings, labels, directive options, comments and link targets. A digit
right after a letter belongs to a name (``float32``, ``W0``, ``H200``) and is not a number.
"""

from __future__ import annotations

import pathlib
import re
from typing import Any

import yaml
from markdown_it.token import Token

from tools.colab.convert import directive_parts, md_parser

ROOT = pathlib.Path(__file__).resolve().parents[1]
ALLOWED = ROOT / "book" / "prose_numbers"
# Directives whose body is not prose.
NOT_PROSE = {"code-cell", "math", "code", "code-block", "raw", "glue:math", "glue", "glue:any", "bibliography"}
NUMBER = re.compile(r"(?<![A-Za-z_\d])\d[\d,.]*")


def load_allowed(chapter: str, folder: pathlib.Path = ALLOWED) -> list[str]:
    """The strings with digits that ``book/<chapter>.md`` may type in prose (its list, and ``common.yml``'s).

    Each file is a YAML list of ``{text: ..., why: ...}``; an entry without a reason is an error.
    """
    allowed: list[str] = []
    for name in ("common", chapter):
        path = folder / f"{name}.yml"
        entries: list[dict[str, Any]] = (
            yaml.safe_load(path.read_text(encoding="utf8")) if path.exists() else None
        ) or []
        for e in entries:
            if not str(e.get("text", "")).strip() or not str(e.get("why", "")).strip():
                raise ValueError(f"{path}: every entry needs a non-empty 'text' and 'why': {e!r}")
            allowed.append(str(e["text"]))
    return allowed


def _prose_runs(text: str, line0: int = 0) -> list[tuple[int, str]]:
    """(line number, text) of each run of prose in a MyST Markdown source."""
    runs: list[tuple[int, str]] = []
    tokens = md_parser().parse(text)
    skip_inline = False
    for t in tokens:
        line = line0 + (t.map[0] + 1 if t.map else 0)
        if t.type == "heading_open":
            skip_inline = True
        elif t.type == "inline":
            if not skip_inline:
                runs += [(line, c.content) for c in t.children or [] if c.type == "text"]
            skip_inline = False
        elif t.type in ("fence", "colon_fence") and t.info.strip().startswith("{"):
            runs += _directive_runs(t, line)
    return runs


def _directive_runs(t: Token, line: int) -> list[tuple[int, str]]:
    name, argument, _options, body = directive_parts(t)
    if name in NOT_PROSE:
        return []
    runs = [(line, argument)] if name in ("admonition", "exercise", "solution-start") and argument else []
    # the body starts after the fence line and the option lines
    offset = t.content.count("\n", 0, max(t.content.find(body[:20]), 0)) if body else 0
    return runs + _prose_runs(body, line + offset)


def typed_numbers(text: str, allowed: list[str]) -> list[str]:
    """Every number typed in the prose of ``text`` that is not in ``allowed``, as ``line N: ...context...``."""
    found = []
    ordered = sorted(allowed, key=len, reverse=True)
    for line, run in _prose_runs(text):
        stripped = run
        for a in ordered:
            stripped = stripped.replace(a, " " * len(a))
        for m in NUMBER.finditer(stripped):
            lo, hi = max(m.start() - 30, 0), min(m.end() + 30, len(run))
            found.append(f"line {line}: {m.group().rstrip(',.')!r} in ...{run[lo:hi]}...")
    return found
