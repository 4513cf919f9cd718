"""Consistency of the book's sources: table of contents, chapters, Colab setup cells, the house template."""

from __future__ import annotations

import ast
import pathlib
import re

import jupytext
import pytest
import yaml
from myst_nb.core.read import read_myst_markdown_notebook

from tools.book import chapters as toc_chapters
from tools.book import toc_files
from tools.colab.convert import md_parser

ROOT = pathlib.Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"


def pages() -> set[pathlib.Path]:
    """Every page of the book: book/*.md except templates and partials (names starting with '_')."""
    return {p for p in BOOK.glob("*.md") if not p.name.startswith("_")}


def chapters() -> list[pathlib.Path]:
    return sorted(toc_chapters())


def repository_url() -> str:
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    return config["repository"]["url"].rstrip("/")


def test_every_page_is_in_the_toc_and_back() -> None:
    listed = set(toc_files())
    missing_files = sorted(str(p.relative_to(ROOT)) for p in listed if not p.exists())
    assert not missing_files, f"_toc.yml lists pages that do not exist: {missing_files}"
    unlisted = sorted(str(p.relative_to(ROOT)) for p in pages() - listed)
    assert not unlisted, f"pages missing from _toc.yml: {unlisted}"


def test_toc_has_no_duplicates() -> None:
    listed = toc_files()
    assert len(listed) == len(set(listed))


def test_there_is_at_least_one_chapter() -> None:
    assert chapters(), "no executable page is listed in _toc.yml"


@pytest.mark.parametrize("md", chapters(), ids=lambda p: p.stem)
def test_chapter_front_matter(md: pathlib.Path) -> None:
    nb = jupytext.read(md)
    spec = nb.metadata.get("kernelspec", {})
    assert spec.get("name") == "python3" and spec.get("language") == "python", f"{md.name}: kernelspec {spec}"
    budget = nb.metadata.get("lmlab", {}).get("cpu_budget_s")
    assert isinstance(budget, (int, float)) and budget > 0, f"{md.name}: front matter needs lmlab: cpu_budget_s"


@pytest.mark.parametrize("md", chapters(), ids=lambda p: p.stem)
def test_colab_setup_cell(md: pathlib.Path) -> None:
    """The first cell installs lmlab on Colab only, from the repository URL in _config.yml, and is hidden."""
    nb = jupytext.read(md)
    first = next(c for c in nb.cells if c.cell_type == "code")
    assert "remove-cell" in first.metadata.get("tags", []), f"{md.name}: the setup cell must be tagged remove-cell"
    src = first.source
    assert '"google.colab" in sys.modules' in src, f"{md.name}: the setup cell must run only on Colab"
    urls = re.findall(r"git\+(https://\S+?)[\"'\s]", src)
    assert urls == [repository_url()], f"{md.name}: installs from {urls}, _config.yml says {repository_url()}"
    assert "lmlab @ git+" in src


def test_config_traps() -> None:
    """Settings whose absence breaks the build silently (see CONTRIBUTING.md)."""
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    for pattern in (".*", "README.md", "code", "tests", "book/*.ipynb"):
        assert pattern in config["exclude_patterns"], pattern
    assert config["repository"]["branch"] == "main"
    sphinx = config["sphinx"]["config"]
    assert sphinx["nb_execution_raise_on_error"] is True
    assert sphinx["numfig"] is True and sphinx["math_numfig"] is True
    assert "sphinx-mathjax-offline" in config["sphinx"]["extra_extensions"]


def test_bibliography_keys_exist() -> None:
    """Every {cite} key used in the book is defined in book/references.bib."""
    bib = (BOOK / "references.bib").read_text()
    defined = set(re.findall(r"@\w+\{([^,\s]+),", bib))
    used: set[str] = set()
    for p in pages():
        for group in re.findall(r"\{cite(?::\w+)?\}`([^`]+)`", p.read_text()):
            used |= {k.strip() for k in group.split(",")}
    assert used, "no citations found"
    assert used <= defined, f"undefined citation keys: {sorted(used - defined)}"


# ---------------------------------------------------------------------------------------------------------------
# The house template (book/_template.md, CONTRIBUTING.md): checked on every chapter, and on fixtures below.

CODE_WIDTH = 78  # characters a code cell shows in the text column of the website
NARROW_CODE_WIDTH = 74  # in a collapsed (hide-input) cell or a solution box, which sit indented
OPENING = "What you will be able to do"
# Seeding that bypasses the draw (LMLAB_SEED_OFFSET): use lmlab.seed_everything / lmlab.generator / lmlab.draw_seed.
RAW_SEEDING = re.compile(
    r"torch\.manual_seed\(|torch\.Generator\([^)]*\)\.manual_seed\(|np\.random\.seed\(|"
    r"np\.random\.default_rng\(\s*\d|random\.Random\(\s*\d|random\.seed\("
)


def template_problems(text: str) -> list[str]:
    """What a chapter's MyST source breaks of the house template; empty when it follows it.

    - every code cell's lines fit the column (at most ``CODE_WIDTH`` characters; ``NARROW_CODE_WIDTH`` in a
      collapsed ``hide-input`` cell or a solution box, which are narrower);
    - right after the title (before the first ``##`` section) an admonition titled "What you will be able to do";
    - a ``## Summary`` section, and ``## Exercises`` as the last section, holding every exercise of the chapter;
    - no seeding that bypasses the draw (``RAW_SEEDING``): a chapter's claims must hold on any seed offset.
    """
    problems = []
    nb = read_myst_markdown_notebook(text)
    long = []
    in_solution = False  # a solution box and a collapsed cell are narrower than the column
    n = 0
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            if "{solution-start}" in cell.source:
                in_solution = True
            if "{solution-end}" in cell.source:
                in_solution = False
            continue
        n += 1
        narrow = in_solution or "hide-input" in cell.metadata.get("tags", [])
        width = NARROW_CODE_WIDTH if narrow else CODE_WIDTH
        long += [
            f"code cell {n}: line of {len(line)} > {width} characters: {line[:40]}..."
            for line in cell.source.splitlines()
            if len(line) > width
        ]
        long += [
            f"code cell {n}: seeds outside lmlab (use lmlab.generator / lmlab.seed_everything): {line.strip()[:50]}"
            for line in cell.source.splitlines()
            if RAW_SEEDING.search(line)
        ]
    if long:
        problems += [f"{len(long)} code line(s) wider than the column or seeding outside the draw, e.g.", *long[:3]]
    sections: list[str] = []  # the ## headings, in order
    opening = False
    exercises_outside = 0
    tokens = md_parser().parse(text)
    for k, t in enumerate(tokens):
        if t.type == "heading_open" and t.tag == "h2":
            sections.append(tokens[k + 1].content.strip())
        elif t.type in ("fence", "colon_fence") and t.info.strip().startswith("{"):
            name, _, arg = t.info.strip().partition(" ")
            if name == "{admonition}" and arg.strip() == OPENING and not sections:
                opening = True
            if name == "{exercise}" and (not sections or sections[-1] != "Exercises"):
                exercises_outside += 1
    if not opening:
        problems.append(f"no ':::{{admonition}} {OPENING}' block between the title and the first section")
    if "Summary" not in sections:
        problems.append("no '## Summary' section")
    if not sections or sections[-1] != "Exercises":
        problems.append(f"the last section is {sections[-1] if sections else None!r}, not '## Exercises'")
    if exercises_outside:
        problems.append(f"{exercises_outside} exercise(s) outside the closing '## Exercises' section")
    return problems


GOOD = """---
kernelspec:
  name: python3
  display_name: Python 3
  language: python
---

# A chapter

What it answers.

:::{admonition} What you will be able to do
- something
:::

```{code-cell} ipython3
x = 1  # a short line
```

## The body

Text.

## Summary

- a result

## Exercises

````{exercise}
:label: a-ex

Try it.
````
"""


def test_template_checks_pass_a_conforming_chapter() -> None:
    assert template_problems(GOOD) == []


@pytest.mark.parametrize(
    "change, problem",
    [
        (("x = 1  # a short line", "x = 1  # " + "a" * 70), "line of 79 > 78"),
        (("x = 1  # a short line", "g = torch.Generator().manual_seed(0)"), "seeds outside lmlab"),
        (("x = 1  # a short line", "torch.manual_seed(3)"), "seeds outside lmlab"),
        ((":::{admonition} What you will be able to do", ":::{admonition} Goals"), "What you will be able to do"),
        (("## Summary", "## Results"), "no '## Summary'"),
        (("## Exercises", "## Problems"), "not '## Exercises'"),
        (("## The body", "## The body\n\n````{exercise}\n:label: b-ex\n\nEarly.\n````"), "1 exercise(s) outside"),
        (("Try it.\n````\n", "Try it.\n````\n\n## Afterword\n\nMore.\n"), "is 'Afterword', not '## Exercises'"),
    ],
)
def test_template_checks_catch_each_breach(change: tuple[str, str], problem: str) -> None:
    old, new = change
    assert old in GOOD
    problems = template_problems(GOOD.replace(old, new, 1))
    assert any(problem in p for p in problems), problems


@pytest.mark.parametrize("md", [BOOK / "_template.md", *chapters()], ids=lambda p: p.stem)
def test_chapter_follows_the_house_template(md: pathlib.Path) -> None:
    """Every chapter, and the template new chapters are copied from."""
    problems = template_problems(md.read_text(encoding="utf8"))
    assert not problems, f"{md.name}:\n" + "\n".join(problems)


# ---------------------------------------------------------------------------------------------------------------
# Numbers in the prose come from the code (tools/prose_numbers.py, book/prose_numbers/).

PROSE = """# Title 12

Text with a glued {glue:text}`key_3` value, math $x_1 = 2$, code `n = 4`, a {cite}`a2021` and float32.

$$
y = 3x
$$

```{code-cell} ipython3
z = 5
```

:::{note}
:class: c7
Inside a note: NOTE_DIGIT.
:::

```{exercise}
:label: t-ex-1

Exercise text: EXERCISE_DIGIT.
```

Body: BODY_DIGIT. Problem 4 of the homework.
"""


def test_prose_numbers_ignore_math_code_roles_and_names() -> None:
    from tools.prose_numbers import typed_numbers

    clean = PROSE.replace("NOTE_DIGIT", "none").replace("EXERCISE_DIGIT", "none").replace("BODY_DIGIT", "none")
    assert typed_numbers(clean, ["Problem 4"]) == []
    assert len(typed_numbers(clean, [])) == 1  # "Problem 4" without its allowed entry


@pytest.mark.parametrize("where", ["NOTE_DIGIT", "EXERCISE_DIGIT", "BODY_DIGIT"])
def test_prose_numbers_catch_a_typed_number(where: str) -> None:
    from tools.prose_numbers import typed_numbers

    text = PROSE.replace(where, "a loss of 0.25").replace("_DIGIT", "")
    found = typed_numbers(text, ["Problem 4"])
    assert len(found) == 1 and "'0.25'" in found[0], found


@pytest.mark.parametrize("md", chapters(), ids=lambda p: p.stem)
def test_no_typed_numbers_in_prose(md: pathlib.Path) -> None:
    """Every number a chapter states in prose is glued from the code, or listed in book/prose_numbers/<chapter>.yml
    with the reason it is a fixed constant (the homework's settings, a published figure, a name like "layer-0")."""
    from tools.prose_numbers import load_allowed, typed_numbers

    found = typed_numbers(md.read_text(encoding="utf8"), load_allowed(md.stem))
    assert not found, f"{len(found)} number(s) typed in the prose of {md.name}:\n" + "\n".join(found[:40])


# ---------------------------------------------------------------------------------------------------------------
# One presentation path: tables, percentages, spreads over seeds, verdicts and axis ticks come from
# lmlab.presentation.report / lmlab.presentation.plotting, never from a chapter-local copy.

# A chapter may not define a function under one of these names: the package has it (report.percent, report.spread,
# report.value_range, report.verdict, report.separated, report.say, report.Table(...).markdown(), report.fmt*,
# plotting.log_ticks / integer_ticks).
PRESENTATION_HELPER = re.compile(
    r"(md|markdown|html)_table|pct|percent(age)?|points|spread|\w+_spread|span|value_range|verdict|separated|say"
    r"|fmt\w*|\w*_ticks"
)
PERCENT_CALLS = ("Text", "glue", "glue_all")  # where a percentage typed with an f-string reaches the prose


def _code(source: str) -> str:
    """A code cell's Python: IPython magics and shell lines blanked (line numbers kept)."""
    return "\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in source.splitlines())


def _typed_percentage(f: ast.JoinedStr) -> bool:
    """An f-string that formats a percentage itself: a ``:.1%`` spec, a ``100 *`` product, or a literal ``%`` or
    ``point`` after a value."""
    for part in f.values:
        if isinstance(part, ast.FormattedValue):
            spec = part.format_spec
            if isinstance(spec, ast.JoinedStr) and any(
                isinstance(s, ast.Constant) and str(s.value).endswith("%") for s in spec.values
            ):
                return True
            for node in ast.walk(part.value):
                if (
                    isinstance(node, ast.BinOp)
                    and isinstance(node.op, ast.Mult)
                    and any(isinstance(x, ast.Constant) and x.value == 100 for x in (node.left, node.right))
                ):
                    return True
    after_value = False
    for part in f.values:
        if isinstance(part, ast.FormattedValue):
            after_value = True
        elif after_value and re.match(r"\s*(%|points?\b)", str(part.value)):
            return True
    return False


def presentation_copies(text: str) -> list[str]:
    """The chapter-local copies of the package's presentation helpers in a chapter's MyST source: functions named
    like one (``PRESENTATION_HELPER``), and percentages typed with an f-string inside ``Text(...)``, ``glue`` or
    ``glue_all`` (use ``report.percent`` / ``report.points`` / ``report.spread``)."""
    found = []
    nb = read_myst_markdown_notebook(text)
    code_cells = [c for c in nb.cells if c.cell_type == "code"]
    for n, cell in enumerate(code_cells, start=1):
        try:
            tree = ast.parse(_code(cell.source))
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and PRESENTATION_HELPER.fullmatch(node.name):
                found.append(f"code cell {n}: defines {node.name}(), a copy of a presentation helper of lmlab")
            if isinstance(node, ast.Call):
                name = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", "")
                if name not in PERCENT_CALLS:
                    continue
                for inner in ast.walk(node):
                    if isinstance(inner, ast.JoinedStr) and _typed_percentage(inner):
                        line = cell.source.splitlines()[inner.lineno - 1].strip()
                        found.append(f"code cell {n}: a percentage typed in an f-string: {line[:60]}")
    return list(dict.fromkeys(found))  # an f-string inside Text(...) inside glue_all(...) once


@pytest.mark.parametrize(
    "code, problem",
    [
        ("def md_table(headers, rows):\n    return rows", "defines md_table()"),
        ("def spread(v):\n    return f'{v.mean()}'", "defines spread()"),
        ("def glue_spread(p, w):\n    pass", "defines glue_spread()"),
        ("def pct(x):\n    return x", "defines pct()"),
        ("def verdict(a, b):\n    return 0", "defines verdict()"),
        ("def fmt_loss(x):\n    return x", "defines fmt_loss()"),
        ("def log_ticks(ax, axis='x'):\n    pass", "defines log_ticks()"),
        ("if True:\n    def span(v):\n        return v", "defines span()"),
        ("x = Text(f'{100 * acc:.1f}%')", "a percentage typed in an f-string"),
        ("x = Text(f'{acc:.0%}')", "a percentage typed in an f-string"),
        ("glue_all('c', {'a': Text(f'{s:.1%} to {t:.1%}')})", "a percentage typed in an f-string"),
        ("glue('c_a', Text(f'{gap:.0f} points'))", "a percentage typed in an f-string"),
        ("glue_all('c', {'m': Text(f'{m:.1f} %')})", "a percentage typed in an f-string"),
    ],
)
def test_presentation_check_catches_a_copy(code: str, problem: str) -> None:
    text = GOOD.replace("x = 1  # a short line", code)
    found = presentation_copies(text)
    assert any(problem in p for p in found), found


def test_presentation_check_passes_the_package_calls() -> None:
    code = (
        "%matplotlib inline\n"
        "def copy_of(model):\n    return model\n"
        "glue_all('c', {'acc': percent(acc), 'gap': points(gap), 'runs': spread(accs, percent_digits=1)})\n"
        "print(f'accuracy {acc:.1%}')  # printed output, not glued prose\n"
        "glue_all('c', {'name': Text(f'layer {l} head {h}')})"
    )
    assert presentation_copies(GOOD.replace("x = 1  # a short line", code)) == []


@pytest.mark.parametrize("md", chapters(), ids=lambda p: p.stem)
def test_no_chapter_local_presentation_helpers(md: pathlib.Path) -> None:
    """Tables, percentages, spreads, verdicts and ticks go through lmlab.presentation (one copy, tested there)."""
    found = presentation_copies(md.read_text(encoding="utf8"))
    assert not found, f"{md.name}: use lmlab.presentation.report / plotting instead:\n" + "\n".join(found[:40])
