"""lmlab.report: numbers for prose (fmt, sig_figs, Text) and the chapters' tables (Table, Comparison)."""

from __future__ import annotations

import pint
import pytest
from lmlab import report
from lmlab.presentation.units import Q_

# ---------------------------------------------------------------------------------------------------------------
# Presentation helpers
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "n"), [("1e30", 1), ("1.7e15", 2), ("66175.20", 7), ("90,000", 1), ("0.02", 1), ("1070", 3), ("2.0", 2)]
)
def test_sig_figs(text: str, n: int) -> None:
    assert report.sig_figs(text) == n


def test_comparison_verdicts() -> None:
    t = report.Comparison()
    assert t.add("a", "x", Q_(1.67e15, "token"), "1.7e15 token").status == "agrees"  # 1.8% < half of 0.1e15
    assert t.add("b", "x", Q_(97_700, "burger"), "90,000 burger").status == "slip"  # 8.5% > 5.6%
    r = t.add("c", "x", Q_(1.82e-4, "W"), "1.98e-4 W", chain=Q_(1.98e-4, "W"))
    assert r.status == "carried"
    assert t.add("d", "x", Q_(2.1e12, "USD"), "1e12 USD", tolerance="oom").status == "oom"
    assert t.add("e", "x", Q_(1.33, "percent"), "0.02 percent").status == "slip"
    with pytest.raises(pint.DimensionalityError):
        t.add("f", "x", Q_(1, "token"), "1 FLOP")
    assert t.count("slip") == 2 and t["c"].ratio == pytest.approx(1.82 / 1.98)
    html = t._repr_html_()
    assert html.count("<tr") == 1 + 5 and "homework" in html
    assert "✗ slip, ×66" in html  # the verdict is short: it fits the column without wrapping


def test_html_tables_read_in_light_and_dark_mode() -> None:
    """Theme colours, no forced background, cells padded, numbers kept on one line."""
    for html in (
        report.Table(["a", "b"], [["x", Q_(2e14, "byte")]], title="T")._repr_html_(),
        report.Comparison("C")._repr_html_(),
    ):
        assert "var(--pst-color-text-base" in html and "var(--pst-color-border" in html
        assert "background: transparent" in html
        assert not any(c in html.lower() for c in ("#fff", "background: white", "#f5f5f5", "color: black"))
        assert "padding: 0.3em" in html and "<caption" in html and "dataframe" in html
    table = report.Table(["a", "b"], [["text", 1.5]])._repr_html_()
    assert table.count("nowrap") == 1  # only the number


def test_fmt() -> None:
    assert report.fmt(Q_(1e30, "FLOP")) == "1×10³⁰ FLOP"
    assert report.fmt(Q_(41.6667, "s")) == "41.7 s"
    assert report.fmt(66181.8) == "66\u202f200"
    assert report.fmt(Q_(8000, "token")) == "8\u202f000 tokens" and report.fmt(Q_(1, "day")) == "1 day"
    with pytest.raises(ValueError, match="glue"):
        report.Text("8,000")  # myst-nb would show the tuple (8, 0)
    assert report.fmt(Q_(2e14, "byte"), "TB") == "200 TB"
    assert report.fmt(9.96e5, sig=2) == "1×10⁶"
    assert report.fmt(1419) == "1\u202f419"  # counts are not rounded
    assert str(report.Text("1.7×10¹⁵")) == "1.7×10¹⁵" and repr(report.Text("a")) == "a"
    table = report.Table(["a", "b"], [["x", Q_(2e14, "byte")]])
    assert "2×10¹⁴ B" in table._repr_html_()
    with pytest.raises(ValueError, match="cells"):
        report.Table(["a", "b"], [["x"]])
