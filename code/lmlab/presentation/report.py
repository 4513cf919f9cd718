"""Presenting results in a chapter: glued values, numbers formatted for prose, and small tables.

One home for what every chapter needs between a computation and the page:

* :func:`glue` and :func:`glue_all` store values for the prose (``{glue:text}`key` `` in MyST). They write the same
  output that myst-nb's ``glue`` writes, without importing myst-nb, so a chapter also runs where myst-nb is not
  installed (Colab); there a value glued with ``display=False`` is simply not shown.
* :func:`fmt` formats a number or a pint quantity for prose and tables (``66 200``, ``5×10⁻⁷``, ``200 TB``);
  :func:`fmt_error` formats an error or a difference (``exactly 0`` or ``5×10⁻⁷``).
* :class:`Text` is a string that ``{glue:text}`` shows verbatim; :class:`Table` and :class:`Comparison` are
  tables for notebook output that fit the book's column.
"""

from __future__ import annotations

import ast
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "GLUE_PREFIX",
    "glue",
    "glue_all",
    "fmt",
    "fmt_error",
    "Text",
    "Table",
    "Comparison",
    "ComparisonRow",
    "markdown_table",
    "sig_figs",
]

GLUE_PREFIX = "application/papermill.record/"
"""The MIME prefix under which myst-nb (and papermill's scrapbook) finds values glued with ``display=False``."""


def glue(name: str, value: Any, display: bool = False) -> None:
    """Store ``value`` under ``name`` for the book's prose, as myst-nb's ``glue`` does.

    The value's rich representations (text, HTML, PNG, ...) are written to the cell's output with the metadata
    myst-nb reads (``{glue:text}`name` ``, ``{glue:figure}`` ...). Unlike myst-nb's version this needs nothing but
    IPython, so a chapter runs unchanged where myst-nb is not installed.

    Args:
        name: the key, global to the book: prefix it with the chapter's name (``"lora_floor"``).
        value: any object IPython can display: a number, a :class:`Text`, a matplotlib figure, a table.
        display: also show the value in the cell's output (default ``False``: stored only).

    Raises:
        TypeError: ``name`` is not a string.
        ValueError: ``name`` is empty or contains whitespace.
    """
    if not isinstance(name, str):
        raise TypeError(f"name must be a str, got {type(name).__name__}")
    if not name or any(c.isspace() for c in name):
        raise ValueError(f"name must be a non-empty key without whitespace, got {name!r}")
    from IPython.core.formatters import format_display_data
    from IPython.display import display as ipy_display

    bundle, metadata = format_display_data(value)
    prefix = "" if display else GLUE_PREFIX
    metadata = dict(metadata)
    metadata["scrapbook"] = {"name": name, "mime_prefix": prefix}
    ipy_display({prefix + k: v for k, v in bundle.items()}, raw=True, metadata=metadata)


def glue_all(prefix: str, values: Mapping[str, Any], *, sig: int | None = None) -> None:
    """Glue a group of values in one call: ``glue_all("lora", {"floor": x})`` stores ``lora_floor``.

    Args:
        prefix: the chapter's name; keys become ``f"{prefix}_{key}"``.
        values: key -> value. Values are glued as they are, unless ``sig`` is given: then floats, ints and pint
            quantities are first formatted with :func:`fmt` (``sig`` significant digits) into a :class:`Text`.
        sig: see ``values``.
    """
    if not isinstance(values, Mapping):
        raise TypeError(f"values must be a mapping of key -> value, got {type(values).__name__}")
    for key, value in values.items():
        if (
            sig is not None
            and (isinstance(value, (int, float, np.integer, np.floating)) or _is_quantity(value))
            and not isinstance(value, bool)
        ):
            value = Text(fmt(value, sig=sig))
        glue(f"{prefix}_{key}", value, display=False)


def _is_quantity(value: Any) -> bool:
    """A pint quantity (duck-typed, so this module does not import pint)."""
    return hasattr(value, "magnitude") and hasattr(value, "units") and hasattr(value, "to")


_SUPERSCRIPT = str.maketrans("0123456789-", "⁰¹²³⁴⁵⁶⁷⁸⁹⁻")
_GROUP = "\u202f"  # narrow no-break space groups thousands (SI style): "66 200", never "66,200"
_PLURAL = {"token", "word", "page", "book", "essay", "burger", "param", "bit", "day", "month", "year", "week"}


def _fmt_number(x: float, sig: int) -> str:
    if x == 0:
        return "0"
    if not math.isfinite(x):
        return str(x)
    e = math.floor(math.log10(abs(x)))
    mant = round(x / 10**e, sig - 1)
    if abs(mant) >= 10:  # rounding carried into the next decade
        e += 1
        mant = round(x / 10**e, sig - 1)
    if -3 <= e < 6:
        value = round(x, sig - 1 - e)
        if sig - 1 - e <= 0:
            return f"{int(round(value)):,}".replace(",", _GROUP)
        text = f"{value:,.{sig - 1 - e}f}".replace(",", _GROUP)
        return text.rstrip("0").rstrip(".") if "." in text else text
    m = f"{mant:.{sig - 1}f}"
    m = m.rstrip("0").rstrip(".") if "." in m else m
    return f"{m}×10{str(e).translate(_SUPERSCRIPT)}"


_UNIT_WORDS = (
    (re.compile(r"\ba\b"), "year"),
    (re.compile(r"\bd\b"), "day"),
    (re.compile(r"_CO2\b"), " CO₂"),
    (re.compile(r"PFLOP_day"), "PFLOP-day"),
)


def _unit_text(units: Any) -> str:
    """Compact unit symbols (``TB``, ``token/min``), with words where pint's symbol is cryptic (``a`` -> year)."""
    text = f"{units:~P}"
    for pattern, word in _UNIT_WORDS:
        text = pattern.sub(word, text)
    return text


def _plural(units: str, magnitude: float) -> str:
    """``token`` -> ``tokens`` for a bare counting or calendar unit and a magnitude other than one."""
    return units + "s" if units in _PLURAL and magnitude != 1 else units


def fmt(value: Any, unit: str | None = None, sig: int = 3) -> str:
    """Format a number or quantity for prose and tables: ``sig`` significant digits, ``×10ⁿ`` outside [1e-3, 1e6).

    Thousands are grouped with a narrow no-break space (``66 200``): a comma would make myst-nb's ``{glue:text}``,
    which reads the text as a Python literal, show ``8,000`` as the tuple ``(8, 0)``.

    Args:
        value: a float, an int or a pint quantity (of :data:`lmlab.units.ureg`).
        unit: convert the quantity to this unit first (e.g. ``"TB"``); ``None`` keeps its unit.
        sig: significant digits (>= 1). Trailing zeros are dropped. Python ints are shown with all their digits.
    """
    if isinstance(sig, bool) or not isinstance(sig, int) or sig < 1:
        raise ValueError(f"sig must be an int >= 1, got {sig!r}")
    if _is_quantity(value):
        q = value.to(unit) if unit is not None else value
        units = _unit_text(q.units)
        if units == "%":
            return _fmt_number(float(q.magnitude), sig) + "%"
        text = _fmt_number(float(q.magnitude), sig)
        return f"{text} {_plural(units, float(q.magnitude))}" if units else text
    if unit is not None:
        raise TypeError("unit was given, but value is a plain number; pass a quantity")
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):  # counts are shown exactly
        return _fmt_number(float(value), max(sig, len(str(abs(int(value))))))
    return _fmt_number(float(value), sig)


def fmt_error(value: Any, sig: int = 1) -> str:
    """Format an error, a difference or a residual for prose: ``exactly 0``, or ``5×10⁻⁷`` (``sig`` digits).

    Args:
        value: a float, a 0-d tensor or array (its absolute value is shown).
        sig: significant digits (>= 1).
    """
    if hasattr(value, "item"):
        value = value.item()
    x = abs(float(value))
    if x == 0:
        return "exactly 0"
    return fmt(x, sig=sig)


class Text:
    """A string whose ``repr`` is the string itself, so myst-nb's ``{glue:text}`` shows it without quotes.

    Raises:
        ValueError: ``text`` reads as a Python literal that prints differently (``"8,000"`` is the tuple ``(8, 0)``),
            which myst-nb would show instead of the text.
    """

    def __init__(self, text: str) -> None:
        self.text = str(text)
        try:
            shown = str(ast.literal_eval(self.text))
        except (SyntaxError, ValueError, TypeError, MemoryError, RecursionError):
            shown = self.text
        if shown != self.text:
            raise ValueError(f"text {self.text!r} would be shown as {shown!r} by myst-nb's glue:text")

    def __repr__(self) -> str:
        return self.text

    __str__ = __repr__

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(self.text)


_NUMBER = re.compile(r"^\s*([-+]?(?:\d[\d,]*)?\.?\d*(?:[eE][-+]?\d+)?)\s*(.*?)\s*$")


def sig_figs(number: str) -> int:
    """Significant digits of a number as written: ``"1.70"`` -> 3, ``"90,000"`` -> 1, ``"1e30"`` -> 1.

    Trailing zeros of a whole number without a decimal point are taken as not significant.
    """
    mant = number.replace(",", "").lstrip("+-").lower().split("e")[0]
    digits = mant.replace(".", "").lstrip("0")
    if "." not in mant:
        digits = digits.rstrip("0")
    return max(len(digits), 1)


@dataclass
class ComparisonRow:
    """One line of a :class:`Comparison`: our value against the value the homework's solution states."""

    key: str
    quantity: str
    ours: Any
    stated_text: str | None
    stated: Any
    chain: Any
    tolerance: float | str
    note: str
    status: str = ""
    ratio: float = float("nan")
    stated_sig: int = 3

    @property
    def stated_display(self) -> str:
        """The stated value formatted like ours, to the number of digits the homework wrote (``—`` if none)."""
        return "—" if self.stated is None else fmt(self.stated, sig=self.stated_sig)

    @property
    def verdict(self) -> str:
        """A short verdict: ``agrees``, ``same order`` (of magnitude), ``carried`` (reproduced from the homework's
        own earlier, rounded or mistaken, figure), ``slip`` (does not follow from its inputs), or ``—`` when
        nothing is stated. Each but ``agrees`` and ``—`` ends with ``×r``, ``r`` = ours ÷ stated."""
        r = f"×{self.ratio:.3g}" if abs(self.ratio - 1) < 0.1 else f"×{self.ratio:.2g}"  # never a bare "×1"
        return {
            "agrees": "✓ agrees",
            "oom": f"✓ same order, {r}",
            "carried": f"↳ carried, {r}",
            "slip": f"✗ slip, {r}",
            "none": "—",
        }[self.status]


class Comparison:
    """A small table: quantity | ours (computed) | the homework's solution states | verdict.

    The homework's stated values are typed only here, as strings such as ``"1e30 FLOP"``. The verdict is computed:
    ``agrees`` when ours is within half a unit of the stated value's last significant digit (at least 1%),
    ``carried`` when a ``chain`` value recomputed from the homework's own earlier figures (rounded, or themselves
    mistaken) reproduces the stated value, ``slip`` otherwise. ``tolerance="oom"`` asks only for the same order of
    magnitude (a factor below sqrt(10)); a float sets the relative tolerance explicitly.
    """

    def __init__(self, title: str = "") -> None:
        self.title = title
        self.rows: list[ComparisonRow] = []

    def add(
        self,
        key: str,
        quantity: str,
        ours: Any,
        stated: str | None,
        *,
        chain: Any = None,
        tolerance: float | str | None = None,
        note: str = "",
    ) -> ComparisonRow:
        """Add a row and compute its verdict; returns the row. ``ours`` is a quantity or a float."""
        if any(r.key == key for r in self.rows):
            raise ValueError(f"key {key!r} is already in this table")
        from lmlab.presentation.units import Q_

        parsed: Any = None
        tol: float | str = 0.0
        if stated is not None:
            m = _NUMBER.match(stated)
            if not m or not m.group(1):
                raise ValueError(f"stated must start with a number, got {stated!r}")
            number, unit = m.group(1), m.group(2)
            value = float(number.replace(",", ""))
            parsed = Q_(value, unit) if unit else Q_(value, "dimensionless")
            if tolerance is None:
                mant = number.replace(",", "").lower().split("e")
                exp10 = int(mant[1]) if len(mant) > 1 else 0
                base = float(mant[0])
                # half a unit in the last significant place, relative to the value
                lead = math.floor(math.log10(abs(base))) if base else 0
                ulp = 10 ** (lead - sig_figs(number) + 1 + exp10)
                tol = max(0.5 * ulp / abs(value), 0.01)
            else:
                tol = tolerance
        row = ComparisonRow(key, quantity, ours, stated, parsed, chain, tol, note)
        if stated is not None:
            row.stated_sig = max(sig_figs(number), 1)
        if parsed is None:
            row.status = "none"
        else:
            ours_q = ours if _is_quantity(ours) else Q_(float(ours), "dimensionless")
            ratio = float((ours_q / parsed).to("dimensionless").magnitude)
            row.ratio = ratio

            def close(r: float) -> bool:
                if tol == "oom":
                    return abs(math.log10(r)) < 0.5
                return abs(r - 1) <= float(tol)

            if close(ratio):
                row.status = "oom" if tol == "oom" else "agrees"
            elif chain is not None:
                chain_q = chain if _is_quantity(chain) else Q_(float(chain), "dimensionless")
                c_ratio = float((chain_q / parsed).to("dimensionless").magnitude)
                chain_tol = 0.01 if tol == "oom" else float(tol)
                row.status = "carried" if abs(c_ratio - 1) <= chain_tol else "slip"
            else:
                row.status = "slip"
        self.rows.append(row)
        return row

    def __getitem__(self, key: str) -> ComparisonRow:
        for r in self.rows:
            if r.key == key:
                return r
        raise KeyError(key)

    def count(self, status: str) -> int:
        """How many rows have this status (``agrees``, ``oom``, ``carried``, ``slip``, ``none``)."""
        return sum(r.status == status for r in self.rows)

    def _cells(self, r: ComparisonRow) -> tuple[str, str, str, str]:
        if r.stated is not None and _is_quantity(r.ours):
            ours = fmt(r.ours.to(r.stated.units))  # in the homework's unit, so the two columns compare at a glance
        else:
            ours = fmt(r.ours)
        verdict = r.verdict + (f"; {r.note}" if r.note else "")
        return r.quantity, ours, r.stated_display, verdict

    def __repr__(self) -> str:
        head = ("quantity", "ours", "homework", "verdict")
        lines = [" | ".join(head)] + [" | ".join(self._cells(r)) for r in self.rows]
        return (self.title + "\n" if self.title else "") + "\n".join(lines)

    def _repr_html_(self) -> str:
        head = ("quantity", "ours", "homework", "verdict")
        rows = [self._cells(r) for r in self.rows]
        nowrap = [[False, True, True, False] for _ in rows]  # numbers never break inside
        return _html_table(head, rows, self.title, "lmlab-comparison", nowrap)


class Table:
    """A plain table for notebook output (HTML, with a text fallback).

    Args:
        headers: column titles.
        rows: one sequence of cells per row; quantities and floats are formatted with :func:`fmt` (``sig`` digits),
            strings are shown as they are.
        title: an optional caption.
    """

    def __init__(self, headers: list[str], rows: list[list[Any]], title: str = "", sig: int = 3) -> None:
        if any(len(r) != len(headers) for r in rows):
            raise ValueError(f"every row must have len(headers) = {len(headers)} cells")
        self.headers = list(headers)
        self.title = title
        self.cells = [[c if isinstance(c, str) else fmt(c, sig=sig) for c in r] for r in rows]
        self._numeric = [[not isinstance(c, str) for c in r] for r in rows]

    def __repr__(self) -> str:
        lines = [" | ".join(self.headers)] + [" | ".join(r) for r in self.cells]
        return (self.title + "\n" if self.title else "") + "\n".join(lines)

    def _repr_html_(self) -> str:
        return _html_table(self.headers, self.cells, self.title, "lmlab-table", self._numeric)


_TEXT = "color: var(--pst-color-text-base, inherit)"
_CELL = (
    f"{_TEXT}; background: transparent; text-align: left; vertical-align: top; padding: 0.3em 0.8em 0.3em 0;"
    " border: none; border-bottom: 1px solid var(--pst-color-border, rgba(128, 128, 128, 0.4));"
    " white-space: normal; line-height: 1.35"
)


def _html_table(
    headers: list[str] | tuple[str, ...], rows: list[Any], title: str, cls: str, nowrap: list[list[bool]]
) -> str:
    """The chapters' one HTML table: theme colours (readable in light and dark mode), no background slab, room
    between the columns, the caption above in the text colour, and numbers that do not break inside.

    The class ``dataframe`` matters: in dark mode the pydata theme paints every HTML output on a light slab except
    a ``table.dataframe`` (pandas' class), which it styles with the theme's own table colours instead.
    """
    import html

    def cell(tag: str, text: str, extra: str = "") -> str:
        return f"<{tag} style='{_CELL}{extra}'>{html.escape(text)}</{tag}>"

    head = "".join(cell("th", h, "; font-weight: 600") for h in headers)
    body = "".join(
        "<tr style='background: transparent'>"
        + "".join(cell("td", c, "; white-space: nowrap" if keep else "") for c, keep in zip(r, keep_row))
        + "</tr>"
        for r, keep_row in zip(rows, nowrap)
    )
    cap = (
        f"<caption style='{_TEXT}; caption-side: top; text-align: left; font-weight: 600; padding: 0 0 0.3em 0'>"
        f"{html.escape(title)}</caption>"
        if title
        else ""
    )
    style = (
        f"{_TEXT}; background: transparent; border: none; border-collapse: collapse; margin: 0.5em 0 1em 0;"
        " font-size: 0.9em"
    )
    head_row = f"<tr style='background: transparent'>{head}</tr>"
    return f"<table class='dataframe {cls}' style='{style}'>{cap}<thead>{head_row}</thead><tbody>{body}</tbody></table>"


def markdown_table(
    rows: Sequence[dict[str, Any]], columns: dict[str, str], formats: dict[str, str] | None = None
) -> str:
    """A Markdown table of ``rows`` (dicts), one column per key of ``columns`` (key -> header).

    Args:
        rows: the records, e.g. from :func:`lmlab.induction_eval.broken_variants`.
        columns: which keys to show, in order, with their headers.
        formats: optional format specs per key (e.g. ``{"loss_first": ".3f"}``); others use ``str``.
    """
    formats = formats or {}
    head = "| " + " | ".join(columns.values()) + " |"
    rule = "|" + "|".join("---" for _ in columns) + "|"
    body = [
        "| " + " | ".join(format(r[k], formats[k]) if k in formats else str(r[k]) for k in columns) + " |" for r in rows
    ]
    return "\n".join([head, rule, *body])
