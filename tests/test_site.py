"""The built website, checked in a real browser (headless Chromium driven by Playwright).

Run after the strict build (`make test` does both). Every page of _build/html loads without console errors, its
math is typeset by the bundled MathJax (no raw ``\\(`` left, no request leaves the machine), every chapter page
links to its notebook in the Colab edition, no page shows a Python traceback, and nothing on a chapter page (display
equation, code, output, table, image) is wider than the text column at a 1280 px window.

Where no Chromium is installed the checks are skipped with a message; under CI (``CI`` set) Chromium is required.
"""

from __future__ import annotations

import functools
import http.server
import os
import pathlib
import re
import shutil
import threading
from collections.abc import Iterator

import pytest
import yaml

from tools.book import chapters, toc_files

pytestmark = pytest.mark.site

ROOT = pathlib.Path(__file__).resolve().parents[1]
HTML = ROOT / "_build" / "html"


def chromium_path() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


def page_paths() -> list[str]:
    """The HTML pages built from _toc.yml, relative to _build/html."""
    return [str(p.relative_to(ROOT).with_suffix(".html")) for p in toc_files()]


def chapter_paths() -> list[str]:
    return [str(p.relative_to(ROOT).with_suffix(".html")) for p in chapters()]


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    if not (HTML / "index.html").exists():
        pytest.fail("_build/html/index.html is missing: build the site first (make book-strict)")

    class QuietHandler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
            pass

    handler = functools.partial(QuietHandler, directory=str(HTML))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    exe = chromium_path()
    if exe is None:
        if os.environ.get("CI"):
            pytest.fail("Chromium is required under CI (.ci/run installs Debian's chromium)")
        pytest.skip("no Chromium on this machine: install Debian's `chromium` to run the browser checks")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=exe,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        yield b
        b.close()


def visit(browser: object, url: str) -> tuple[object, list[str], list[str]]:
    """Open ``url``; return the page, its console errors, and requests that left 127.0.0.1 (which are blocked)."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})  # type: ignore[attr-defined]
    errors: list[str] = []
    external: list[str] = []

    def route(r: object) -> None:
        req_url = r.request.url  # type: ignore[attr-defined]
        if req_url.startswith(("http://127.0.0.1", "data:", "blob:")):
            r.continue_()  # type: ignore[attr-defined]
        else:
            external.append(req_url)
            r.abort()  # type: ignore[attr-defined]

    context.route("**/*", route)
    page = context.new_page()
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(url, wait_until="load")
    return page, errors, external


@pytest.mark.parametrize("path", page_paths())
def test_page_loads_cleanly(server: str, browser: object, path: str) -> None:
    page, errors, _ = visit(browser, f"{server}/{path}")
    body = page.inner_text("body")  # type: ignore[attr-defined]
    assert "Traceback (most recent call last)" not in body, f"{path} shows a Python traceback"
    assert not errors, f"{path}: console errors {errors}"
    page.context.close()  # type: ignore[attr-defined]


@pytest.mark.parametrize("path", page_paths())
def test_math_is_typeset_offline(server: str, browser: object, path: str) -> None:
    page, _, external = visit(browser, f"{server}/{path}")
    has_math = page.evaluate("document.querySelectorAll('.math').length") > 0  # type: ignore[attr-defined]
    if has_math:
        page.wait_for_function(  # type: ignore[attr-defined]
            "() => window.MathJax && MathJax.startup && MathJax.startup.promise"
            " && document.querySelectorAll('mjx-container').length > 0",
            timeout=30_000,
        )
        page.evaluate("MathJax.startup.promise")  # type: ignore[attr-defined]
        raw = page.evaluate(  # type: ignore[attr-defined]
            "Array.from(document.querySelectorAll('.math')).filter(e => !e.querySelector('mjx-container'))"
            ".map(e => e.textContent.slice(0, 60))"
        )
        assert not raw, f"{path}: math left untypeset: {raw[:5]}"
        text = page.inner_text("article")  # type: ignore[attr-defined]
        assert "\\(" not in text and "\\[" not in text, f"{path}: raw TeX delimiters in the text"
    mathjax = [u for u in external if "mathjax" in u.lower()]
    assert not mathjax, f"{path}: MathJax requested from the network: {mathjax}"
    page.context.close()  # type: ignore[attr-defined]


# Elements wider than the article column, or cut off inside their own box (scrollWidth > clientWidth): what a
# reader loses at the right edge. The same probe as ../shared/tools/screenshots.py.
WIDE = """() => {
  const col = document.querySelector('article.bd-article') || document.querySelector('article');
  const sel = 'mjx-container[display="true"], div.highlight pre, div.cell_output pre, div.output pre, '
            + 'article table, article img';
  const out = [];
  for (const el of document.querySelectorAll(sel)) {
    const w = el.getBoundingClientRect().width;
    if (el.scrollWidth > el.clientWidth + 2 || (col && w > col.clientWidth + 2))
      out.push(el.tagName.toLowerCase() + ': '
               + (el.innerText || el.textContent || el.getAttribute('src') || '').slice(0, 70).replace(/\\s+/g, ' '));
  }
  return out;
}"""


def wait_for_math(page: object) -> None:
    if page.evaluate("document.querySelectorAll('.math').length") > 0:  # type: ignore[attr-defined]
        page.wait_for_function(  # type: ignore[attr-defined]
            "() => window.MathJax && MathJax.startup && MathJax.startup.promise"
            " && document.querySelectorAll('mjx-container').length > 0",
            timeout=30_000,
        )
        page.evaluate("MathJax.startup.promise")  # type: ignore[attr-defined]


@pytest.mark.parametrize("path", chapter_paths())
def test_nothing_wider_than_the_column(server: str, browser: object, path: str) -> None:
    page, _, _ = visit(browser, f"{server}/{path}")
    wait_for_math(page)
    wide = page.evaluate(WIDE)  # type: ignore[attr-defined]
    page.context.close()  # type: ignore[attr-defined]
    assert not wide, f"{path}: {len(wide)} element(s) wider than the text column:\n" + "\n".join(wide[:15])


def test_width_probe_catches_a_wide_equation_and_table(browser: object, tmp_path: pathlib.Path) -> None:
    """The probe itself, on a page made to overflow: a long line of code and a wide table are reported."""
    html = (
        "<html><body><article class='bd-article' style='width:700px'>"
        "<div class='highlight'><pre style='overflow:auto'>" + "x = 1 + " * 40 + "</pre></div>"
        "<table><tr>" + "<td>wide&nbsp;cell&nbsp;content</td>" * 20 + "</tr></table>"
        "<div class='highlight'><pre style='overflow:auto'>y = 2</pre></div>"
        "</article></body></html>"
    )
    context = browser.new_context(viewport={"width": 1280, "height": 900})  # type: ignore[attr-defined]
    page = context.new_page()
    page.set_content(html)
    wide = page.evaluate(WIDE)
    context.close()
    assert len(wide) == 2 and wide[0].startswith("pre: x = 1") and wide[1].startswith("table:"), wide


@pytest.mark.parametrize("path", chapter_paths())
def test_chapter_has_colab_link(server: str, browser: object, path: str) -> None:
    page, _, _ = visit(browser, f"{server}/{path}")
    links = page.eval_on_selector_all(  # type: ignore[attr-defined]
        "a[href*='colab.research.google.com']", "els => els.map(e => e.href)"
    )
    assert links, f"{path}: no Colab launch link"
    assert all(link.endswith(".ipynb") for link in links), links
    stem = pathlib.PurePosixPath(path).with_suffix(".ipynb").as_posix()
    assert any(link.endswith(stem) for link in links), f"{path}: Colab link does not point at {stem}: {links}"
    branch = yaml.safe_load((ROOT / "_config.yml").read_text())["sphinx"]["config"]["lmlab_colab_branch"]
    assert all(f"/blob/{branch}/" in link for link in links), f"{path}: not the Colab edition's branch: {links}"
    # A lab chapter links its student edition too (tools/colab/student.py), and only a lab chapter does.
    source = (ROOT / path).with_suffix(".md").read_text(encoding="utf8")
    lab = re.search(r"^:tags:.*\blab-function\b", source, re.M) is not None
    student = pathlib.PurePosixPath(stem).parent / "student" / pathlib.PurePosixPath(stem).name
    assert any(link.endswith(student.as_posix()) for link in links) == lab, f"{path}: student edition {links}"
    page.context.close()  # type: ignore[attr-defined]


NUMBERED = {
    "Fig.": re.compile(r'class="caption-number">Fig\. (\d+(?:\.\d+)*) <'),
    "Exercise": re.compile(r'class="caption-number">Exercise (\d+(?:\.\d+)*) <'),
    "equation": re.compile(r'<span class="eqno">\((\d+(?:\.\d+)*)\)'),
}


@pytest.mark.parametrize("path", chapter_paths())
def test_numbers_restart_on_every_chapter(path: str) -> None:
    """Figures, exercises and equations are numbered 1, 2, ... on each chapter, in page order (not book-wide)."""
    html = (HTML / path).read_text(encoding="utf8")
    for kind, pattern in NUMBERED.items():
        found = pattern.findall(html)
        assert found == [str(i + 1) for i in range(len(found))], f"{path}: {kind} numbered {found}"
