"""Tables for a chapter's output: :class:`Table` (HTML with a text fallback, or Markdown), :class:`Comparison` (our
value against the one the homework's solution states, with a computed verdict) and :func:`markdown_table`.

Every cell that is a number or a pint quantity is formatted with :func:`lmlab.presentation.report.fmt`; strings and
:class:`~lmlab.presentation.report.Text` are shown as they are. :mod:`lmlab.presentation.report` re-exports every
name here, so ``from lmlab.presentation.report import Table`` keeps working.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from lmlab.core.checks import check_int
from lmlab.presentation.report import Text, _is_quantity, fmt

__all__ = ["Comparison", "ComparisonRow", "Table", "markdown_table", "sig_figs"]

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
    """A plain table for notebook output (HTML, with a text fallback); :meth:`markdown` renders it as Markdown.

    Args:
        headers: column titles.
        rows: one sequence of cells per row; quantities and numbers are formatted with :func:`fmt` (``sig``
            digits), strings and :class:`Text` (e.g. :func:`~lmlab.presentation.report.percent`) are shown as they
            are.
        title: an optional caption.
        sig: significant digits of the formatted numbers (>= 1).

    Raises:
        ValueError: a row does not have one cell per header.
    """

    def __init__(self, headers: Sequence[str], rows: Sequence[Sequence[Any]], title: str = "", sig: int = 3) -> None:
        sig = check_int("sig", sig, 1)
        if isinstance(headers, str) or not all(isinstance(h, (str, Text)) for h in headers):
            raise TypeError("headers must be a list of str (or Text)")
        if any(len(r) != len(headers) for r in rows):
            raise ValueError(f"every row must have len(headers) = {len(headers)} cells")
        self.headers = [str(h) for h in headers]
        self.title = title
        self.cells = [[str(c) if isinstance(c, (str, Text)) else fmt(c, sig=sig) for c in r] for r in rows]
        self._numeric = [[not isinstance(c, str) for c in r] for r in rows]

    def markdown(self) -> Any:
        """The table as Markdown (an ``IPython.display.Markdown``), which the book renders as a page table."""
        from IPython.display import Markdown

        lines = [self.headers, ["---"] * len(self.headers), *self.cells]
        title = f"**{self.title}**\n\n" if self.title else ""
        return Markdown(title + "\n".join("| " + " | ".join(r) + " |" for r in lines))

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
