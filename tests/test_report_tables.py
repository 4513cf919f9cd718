"""lmlab.report: numbers for prose (fmt, sig_figs, Text) and the chapters' tables (Table, Comparison)."""

from __future__ import annotations

import numpy as np
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


# ---------------------------------------------------------------------------------------------------------------
# Percentages, spreads over seeds and verdicts: the one copy every chapter uses
# ---------------------------------------------------------------------------------------------------------------


def test_percent_and_points() -> None:
    assert str(report.percent(0.97214)) == "97.2%" and str(report.percent(0.9, 0)) == "90%"
    assert str(report.percent(1.0)) == "100.0%" and str(report.percent(0.25, 2)) == "25.00%"
    assert isinstance(report.percent(0.5), report.Text)  # glued without quotes
    assert str(report.points(0.01)) == "1 point" and str(report.points(0.031)) == "3 points"
    assert str(report.points(-0.012, 1)) == "-1.2 points"
    import torch

    assert str(report.percent(torch.tensor(0.5))) == "50.0%"  # a 0-d tensor is a number
    with pytest.raises(TypeError, match="fraction"):
        report.percent("0.5")
    with pytest.raises(ValueError, match="fraction"):
        report.percent(float("nan"))
    with pytest.raises(ValueError, match="digits"):
        report.percent(0.5, -1)
    with pytest.raises(TypeError, match="digits"):
        report.points(0.5, 1.0)


def test_spread_and_value_range() -> None:
    assert str(report.spread([0.971, 0.972, 0.975], percent_digits=1)) == "97.3% (97.1%–97.5%)"
    assert str(report.spread([0.99, 0.99], percent_digits=1)) == "99.0%"  # no range when every seed agrees
    assert str(report.spread([0.4, 0.41, 0.415])) == "0.408 (0.4–0.415)"
    assert str(report.spread(np.array([66_000.0, 66_400.0]), sig=2)) == "66\u202f000 (66\u202f000–66\u202f000)"
    assert str(report.value_range([2.5, 1.0], sig=2)) == "1–2.5"
    assert str(report.value_range([0.2, 0.3], percent_digits=0)) == "20%–30%"
    assert str(report.spread([0.5, 0.63, 0.57], sig=2, scale=100, unit="%")) == "57 % (50–63 %)"
    assert str(report.value_range([0.5, 0.63], sig=2, scale=100, unit="%")) == "50–63 %"
    assert str(report.spread(0.12, sig=2, scale=100, unit="%")) == "12 %"  # one number: no range
    with pytest.raises(ValueError, match="not both"):
        report.spread([0.1, 0.2], percent_digits=1, unit="%")
    with pytest.raises(ValueError, match="scale"):
        report.spread([0.1], scale=0)
    with pytest.raises(ValueError, match="at least one"):
        report.spread([])
    with pytest.raises(ValueError, match=r"values\[1\]"):
        report.spread([0.1, float("inf")])
    with pytest.raises(TypeError, match="values"):
        report.value_range("0.1")
    with pytest.raises(ValueError, match="sig"):
        report.spread([1.0], sig=0)


def test_verdict_separated_and_say() -> None:
    # the means must differ by more than either range and the margin: otherwise a tie
    assert report.verdict([0.9, 0.91], [0.8, 0.81]) == 1
    assert report.verdict([0.8, 0.81], [0.9, 0.91]) == -1
    assert report.verdict([0.80, 0.90], [0.84, 0.85]) == 0  # inside a's range
    assert report.verdict([0.905], [0.9], margin=0.01) == 0  # inside the margin
    assert report.separated([3, 4], [1, 2]) == 1 and report.separated([1, 2], [3, 4]) == -1
    assert report.separated([1, 3], [2, 4]) == 0
    words = {"above": "better", "tie": "a tie", "below": "worse"}
    assert [str(report.say(v, **words)) for v in (1, 0, -1)] == ["better", "a tie", "worse"]
    with pytest.raises(ValueError, match="margin"):
        report.verdict([1.0], [0.0], margin=-0.1)
    with pytest.raises(ValueError, match="outcome"):
        report.say(2, **words)
    with pytest.raises(TypeError, match="tie"):
        report.say(0, above="a", tie=None, below="b")  # type: ignore[arg-type]


def test_table_takes_text_cells_and_renders_markdown() -> None:
    t = report.Table(["method", "accuracy", "loss"], [["a", report.percent(0.5), 1.23456]], title="T")
    assert t.cells == [["a", "50.0%", "1.23"]]
    md = t.markdown().data
    assert md.splitlines()[2:] == ["| method | accuracy | loss |", "| --- | --- | --- |", "| a | 50.0% | 1.23 |"]
    assert report.Table(["a"], [[0.5]]).markdown().data.startswith("| a |")  # no title line
    with pytest.raises(ValueError, match="sig"):
        report.Table(["a"], [[1.0]], sig=0)
    from lmlab.presentation import tables

    assert report.Table is tables.Table and report.Comparison is tables.Comparison  # one definition
