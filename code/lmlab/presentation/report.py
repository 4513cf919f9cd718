"""Presenting results in a chapter: glued values, numbers and verdicts worded for prose, and small tables.

One home for what every chapter needs between a computation and the page (a chapter defines none of these itself;
``tests/test_book.py`` rejects a chapter-local copy):

* :func:`glue` and :func:`glue_all` store values for the prose (``{glue:text}`key` `` in MyST). They write the same
  output that myst-nb's ``glue`` writes, without importing myst-nb, so a chapter also runs where myst-nb is not
  installed (Colab); there a value glued with ``display=False`` is simply not shown.
* :func:`fmt` formats a number or a pint quantity for prose and tables (``66 200``, ``5×10⁻⁷``, ``200 TB``);
  :func:`fmt_error` formats an error or a difference (``exactly 0`` or ``5×10⁻⁷``).
* :func:`percent` (``97.2%``) and :func:`points` (``3 points``) format fractions; :func:`spread`
  (``97.2% (96.1%–97.5%)``) and :func:`value_range` (``0.41–0.47``) show values over seeds; :func:`verdict` and
  :func:`separated` decide whether two sets of runs differ beyond their spread or tie; :func:`say` words it.
* :class:`Text` is a string that ``{glue:text}`` shows verbatim; :class:`Table` (HTML or Markdown) and
  :class:`Comparison` are tables for notebook output that fit the book's column (defined in
  :mod:`lmlab.presentation.tables`, re-exported here).
"""

from __future__ import annotations

import ast
import math
import re
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from lmlab.core.checks import check_float, check_int

__all__ = [
    "GLUE_PREFIX",
    "glue",
    "glue_all",
    "fmt",
    "fmt_error",
    "percent",
    "points",
    "spread",
    "value_range",
    "verdict",
    "separated",
    "say",
    "Text",
]

_TABLES = ("Table", "Comparison", "ComparisonRow", "markdown_table", "sig_figs")
__all__ += list(_TABLES)  # defined in lmlab.presentation.tables


def __getattr__(name: str) -> Any:
    """The tables live in :mod:`lmlab.presentation.tables` (imported on first use: it imports this module)."""
    if name in _TABLES:
        from lmlab.presentation import tables

        return getattr(tables, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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


def _real(name: str, value: Any) -> float:
    """``value`` (a number, or a 0-d tensor or array) as a finite float; the error names ``name``."""
    if hasattr(value, "item") and getattr(value, "ndim", 0) == 0 and not isinstance(value, (int, float)):
        value = value.item()
    return check_float(name, value, -math.inf)


def _reals(name: str, values: Any) -> np.ndarray:
    """A non-empty sequence of finite numbers (a list, an array or a tensor; a single number is a sequence of one)
    as a 1-d float64 array."""
    if hasattr(values, "detach"):
        values = values.detach().cpu().numpy()
    if isinstance(values, (int, float, np.integer, np.floating)) and not isinstance(values, bool):
        values = [values]
    if isinstance(values, (str, bytes)) or not isinstance(values, (Iterable, np.ndarray)):
        raise TypeError(f"{name} must be a sequence of numbers, got {type(values).__name__}")
    v = [_real(f"{name}[{i}]", x) for i, x in enumerate(np.asarray(values, dtype=object).ravel())]
    if not v:
        raise ValueError(f"{name} must hold at least one value, got none")
    return np.asarray(v, dtype=float)


def percent(fraction: Any, digits: int = 1) -> Text:
    """A fraction as a percentage for prose and tables: ``percent(0.9721)`` is ``97.2%`` (``digits`` decimals).

    Args:
        fraction: a number (or 0-d tensor/array), ``1.0`` for 100%.
        digits: decimals after the point (>= 0).

    Raises:
        TypeError, ValueError: ``fraction`` is not a finite number, or ``digits`` is not an int >= 0.
    """
    x = _real("fraction", fraction)
    digits = check_int("digits", digits, 0, 6)
    return Text(f"{x:.{digits}%}")


def points(fraction: Any, digits: int = 0) -> Text:
    """A difference of two fractions in percentage points: ``points(0.031)`` is ``3 points``, ``1 point``.

    Args:
        fraction: the difference as a fraction (``0.01`` is one point); its sign is kept.
        digits: decimals after the point (>= 0).
    """
    x = _real("fraction", fraction)
    digits = check_int("digits", digits, 0, 6)
    text = f"{100 * x:.{digits}f}"
    return Text(f"{text} point" + ("" if text in ("1", "-1") else "s"))


def _one(x: float, sig: int, percent_digits: int | None) -> str:
    return fmt(x, sig=sig) if percent_digits is None else percent(x, percent_digits).text


def _checked(
    values: Any, sig: int, percent_digits: int | None, scale: float, unit: str
) -> tuple[np.ndarray, int, int | None, str]:
    v = _reals("values", values) * check_float("scale", scale, 0.0, strict=True)
    sig = check_int("sig", sig, 1)
    if not isinstance(unit, str):
        raise TypeError(f"unit must be a str, got {type(unit).__name__}")
    if percent_digits is not None:
        percent_digits = check_int("percent_digits", percent_digits, 0, 6)
        if unit:
            raise ValueError(f"give percent_digits or unit, not both (unit={unit!r})")
    return v, sig, percent_digits, f" {unit}" if unit else ""


def spread(values: Any, *, sig: int = 3, percent_digits: int | None = None, scale: float = 1.0, unit: str = "") -> Text:
    """The mean and the range of ``values`` (one per seed or draw): ``0.412 (0.405–0.420)``.

    With ``percent_digits`` the values are fractions shown as percentages with that many decimals,
    ``97.2% (96.1%–97.5%)``; with ``unit`` the unit follows the mean and the range, ``57 % (50–63 %)``. When
    every value is the same, only the mean is shown.

    Args:
        values: a non-empty sequence of finite numbers (list, array or tensor), or one number.
        sig: significant digits of each number (:func:`fmt`), when ``percent_digits`` is ``None``.
        percent_digits: show percentages with this many decimals instead.
        scale: multiply every value by this (> 0) first, e.g. ``100`` to show fractions in ``unit="%"``.
        unit: the unit written after the numbers (not with ``percent_digits``).
    """
    v, sig, percent_digits, unit = _checked(values, sig, percent_digits, scale, unit)
    mean = _one(float(v.mean()), sig, percent_digits) + unit
    if v.min() == v.max():
        return Text(mean)
    return Text(
        f"{mean} ({_one(float(v.min()), sig, percent_digits)}–{_one(float(v.max()), sig, percent_digits)}{unit})"
    )


def value_range(
    values: Any, *, sig: int = 3, percent_digits: int | None = None, scale: float = 1.0, unit: str = ""
) -> Text:
    """The lowest and the highest of ``values``, joined by an en dash: ``0.405–0.420``, ``97.2%–98.1%``,
    ``50–63 %``.

    Args:
        values: a non-empty sequence of finite numbers; ``value_range([lo, hi])`` shows a given range.
        sig, percent_digits, scale, unit: as in :func:`spread`.
    """
    v, sig, percent_digits, unit = _checked(values, sig, percent_digits, scale, unit)
    return Text(f"{_one(float(v.min()), sig, percent_digits)}–{_one(float(v.max()), sig, percent_digits)}{unit}")


def verdict(a: Any, b: Any, *, margin: float = 0.0) -> int:
    """Does ``a`` beat ``b`` over seeds? ``+1`` (higher), ``-1`` (lower) or ``0``, a tie.

    The means must differ by more than the range of either (the spread over seeds) and by more than ``margin``;
    a difference inside the spread is a tie. A single value has range 0.

    Args:
        a, b: the values of two methods over seeds (non-empty sequences of finite numbers, or one number; higher
            is better).
        margin: the smallest difference of means that counts (>= 0), e.g. ``0.01`` for one point of accuracy.
    """
    va, vb = _reals("a", a), _reals("b", b)
    margin = check_float("margin", margin, 0.0)
    gap = float(va.mean() - vb.mean())
    return int(np.sign(gap)) if abs(gap) > max(float(np.ptp(va)), float(np.ptp(vb)), margin) else 0


def separated(a: Any, b: Any) -> int:
    """Do the runs of ``a`` and ``b`` separate? ``+1``: every run of ``a`` is above every run of ``b``; ``-1``:
    every one below; ``0``: the ranges overlap (a tie).

    Args:
        a, b: the values of two methods over seeds (non-empty sequences of finite numbers, or one number).
    """
    va, vb = _reals("a", a), _reals("b", b)
    if va.min() > vb.max():
        return 1
    if va.max() < vb.min():
        return -1
    return 0


def say(outcome: int, *, above: str, tie: str, below: str) -> Text:
    """Word a verdict (:func:`verdict` or :func:`separated`): ``above`` for ``+1``, ``tie`` for 0, ``below`` for -1.

    Raises:
        ValueError: ``outcome`` is not -1, 0 or 1.
    """
    outcome = check_int("outcome", outcome, -1, 1)
    for name, text in (("above", above), ("tie", tie), ("below", below)):
        if not isinstance(text, str):
            raise TypeError(f"{name} must be a str, got {type(text).__name__}")
    return Text({1: above, 0: tie, -1: below}[outcome])
