"""Small fixes to the generated pages that the themes do not expose as options.

- sphinx-thebe registers its inline configuration script twice, so every page logs
  ``Identifier 'THEBE_JS_URL' has already been declared``; drop exact duplicate scripts.
- pydata-sphinx-theme reads the colour mode from localStorage and falls back to ``default_mode``, which
  sphinx-book-theme leaves empty, so a first visit logs ``Got invalid theme mode``; default to ``auto``.
"""

from __future__ import annotations

from typing import Any

from sphinx.application import Sphinx


def _tidy_page(app: Sphinx, pagename: str, templatename: str, context: dict[str, Any], doctree: Any) -> None:
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


def setup(app: Sphinx) -> dict[str, Any]:
    app.connect("html-page-context", _tidy_page, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
