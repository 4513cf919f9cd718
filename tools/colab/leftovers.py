"""Find MyST syntax left in a Colab notebook's Markdown, which Colab would show as literal text.

    python -m tools.colab.leftovers _build/colab/book/*.ipynb

Each Markdown cell is parsed with myst-parser's parser (the book's extensions on): any token that only MyST
defines (a role, a directive fence, a ``(label)=`` target, a ``%`` comment, a ``+++`` break, a labelled ``$$``
block, a ``{{ substitution }}``) is a leftover; so is the text of a role or a directive fence anywhere, HTML
blocks included (where the parser does not look for roles).
"""

from __future__ import annotations

import pathlib
import re
import sys

import nbformat

from tools.colab.convert import _walk, md_parser

MYST_TOKENS = {
    "myst_role",
    "myst_target",
    "myst_line_comment",
    "myst_block_break",
    "math_block_label",
    "substitution_inline",
    "substitution_block",
}
MYST_TEXT = re.compile(r"\{[a-z][\w:.-]*\}`[^`\n]*`?|^[`:]{3,}\{[\w:.-]+\}.*|^\(([\w:.-]+)\)=\s*$", re.M)


def leftovers(nb: nbformat.NotebookNode) -> list[tuple[int, str]]:
    """(cell index, offending text) for every piece of MyST syntax in the notebook's Markdown cells."""
    parser = md_parser()
    found: list[tuple[int, str]] = []
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "markdown":
            continue
        hits = set()
        for t in _walk(parser.parse(cell.source)):
            if t.type == "myst_role":
                hits.add(f"role: {{{t.meta.get('name')}}}`{t.content}`"[:80])
            elif t.type in MYST_TOKENS:
                hits.add(f"{t.type}: {t.markup}{t.content}"[:80])
            elif t.type in ("fence", "colon_fence") and t.info.strip().startswith("{"):
                hits.add(f"directive: {t.info.strip()}"[:80])
            elif t.type in ("html_block", "html_inline"):
                hits |= {m.group(0)[:80] for m in MYST_TEXT.finditer(t.content)}
        found += [(index, h) for h in sorted(hits)]
    return found


def main(argv: list[str]) -> int:
    bad = 0
    for path in map(pathlib.Path, argv):
        for index, text in leftovers(nbformat.read(path, as_version=4)):
            print(f"{path}: cell {index}: {text}")
            bad += 1
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
