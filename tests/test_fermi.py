"""lmlab.fermi: the Chinchilla calculus (sympy, scipy) and the unit-checked Fermi arithmetic (pint)."""

from __future__ import annotations

import math

import numpy as np
import pint
import pytest
import scipy.constants
import sympy as sp
from lmlab import fermi
from lmlab.fermi import Q_


@pytest.fixture(scope="module")
def sym() -> fermi.ChinchillaSymbolic:
    return fermi.chinchilla_symbolic()


def _zero(expr: sp.Expr) -> bool:
    """sympy shows expr == 0 for positive symbols (power bases expanded first)."""
    e = sp.powsimp(sp.expand_power_base(sp.expand(expr), force=True), force=True)
    return sp.simplify(e) == 0


# ---------------------------------------------------------------------------------------------------------------
# Symbolic optimum
# ---------------------------------------------------------------------------------------------------------------


def test_first_order_condition_along_the_constraint(sym: fermi.ChinchillaSymbolic) -> None:
    """d/dD L(C/(C0 D), D) vanishes at D_opt, symbolically."""
    derivative = sp.diff(sym.loss_along_constraint, sym.D).subs(sym.D, sym.D_opt)
    assert _zero(derivative)


def test_lagrange_condition(sym: fermi.ChinchillaSymbolic) -> None:
    """grad L is parallel to grad (N D) at the optimum: N dL/dN == D dL/dD (both equal -lambda C0 N D)."""
    s = sym
    cond = (s.N * sp.diff(s.loss, s.N) - s.D * sp.diff(s.loss, s.D)).subs({s.N: s.N_opt, s.D: s.D_opt})
    assert _zero(cond)


def test_closed_form_matches_the_homework_form(sym: fermi.ChinchillaSymbolic) -> None:
    """G, a, b built independently here equal the module's; N_opt D_opt C0 == C; a + b == 1."""
    A, B, al, be, C, C0 = sym.A, sym.B, sym.alpha, sym.beta, sym.C, sym.C0
    G = (al * A / (be * B)) ** (1 / (al + be))
    assert sp.simplify(sym.G - G) == 0
    assert sp.simplify(sym.a - be / (al + be)) == 0
    assert sp.simplify(sym.b - al / (al + be)) == 0
    assert sp.simplify(sym.a + sym.b - 1) == 0
    assert _zero(C0 * sym.N_opt * sym.D_opt - C)
    # sympy's own solution of the first-order condition is the closed form
    assert _zero(sym.D_solution - sym.D_opt)


def test_optimal_loss_formula(sym: fermi.ChinchillaSymbolic) -> None:
    """L_opt equals the loss evaluated at (N_opt, D_opt), at random positive constants (to 25 digits)."""
    direct = sym.loss.subs({sym.N: sym.N_opt, sym.D: sym.D_opt})
    rng = np.random.default_rng(0)
    for _ in range(5):
        vals = {
            sym.A: rng.uniform(10, 1000),
            sym.B: rng.uniform(10, 1000),
            sym.alpha: rng.uniform(0.1, 0.6),
            sym.beta: rng.uniform(0.1, 0.6),
            sym.L0: rng.uniform(0.5, 3),
            sym.C0: 6,
            sym.C: 10 ** rng.uniform(15, 30),
        }
        vals = {k: sp.Float(float(v), 60) for k, v in vals.items()}  # 60-digit inputs, so 40 digits mean 40
        x, y = sp.N(direct.subs(vals), 40), sp.N(sym.L_opt.subs(vals), 40)
        assert abs(x - y) < 1e-25 * abs(y)


# ---------------------------------------------------------------------------------------------------------------
# Numeric law
# ---------------------------------------------------------------------------------------------------------------


def test_numeric_coefficients_round_to_the_homeworks() -> None:
    """N_opt = 0.6 C^0.45 and D_opt = 0.3 C^0.55 (the homework's part (b)), each within half a unit of the last
    digit the homework prints: coefficients +-0.05, exponents +-0.005; L_opt = 1070 C^-0.154 + 1.7 likewise."""
    law = fermi.chinchilla_law(fermi.HOMEWORK_FIT)
    assert abs(law.k_N - 0.6) <= 0.05 and abs(law.a - 0.45) <= 0.005  # the parameter law: larger coefficient
    assert abs(law.k_D - 0.3) <= 0.05 and abs(law.b - 0.55) <= 0.005  # the token law: larger exponent
    assert abs(law.k_L - 1070) <= 5 and abs(law.gamma - 0.154) <= 0.0005 and abs(law.fit.L0 - 1.7) <= 0.05
    # exact identities behind them
    assert law.a == pytest.approx(0.28 / 0.62, rel=1e-12) and law.b == pytest.approx(0.34 / 0.62, rel=1e-12)
    assert law.gamma == pytest.approx(0.34 * 0.28 / 0.62, rel=1e-12)
    C = Q_(1e24, "FLOP")
    assert (6 * law.N_opt(C).magnitude * law.D_opt(C).magnitude) == pytest.approx(1e24, rel=1e-12)


@pytest.mark.parametrize("fit", [fermi.HOMEWORK_FIT, fermi.BESIROGLU_FIT], ids=["hoffmann", "besiroglu"])
@pytest.mark.parametrize("logC", [18.0, 23.76, 30.0])
def test_numeric_minimisation_agrees_with_closed_form(fit: fermi.ChinchillaFit, logC: float) -> None:
    C = Q_(10.0**logC, "FLOP")
    law = fermi.chinchilla_law(fit)
    m = fermi.isoflop_minimum(fit, C)
    assert m.N.magnitude == pytest.approx(law.N_opt(C).magnitude, rel=1e-5)
    assert m.D.magnitude == pytest.approx(law.D_opt(C).magnitude, rel=1e-5)
    assert m.L == pytest.approx(float(law.L_opt(C)), rel=1e-12)
    assert float(fit.loss(law.N_opt(C), law.D_opt(C))) == pytest.approx(float(law.L_opt(C)), rel=1e-12)


def test_besiroglu_refit_is_near_twenty_tokens_per_parameter() -> None:
    """At Chinchilla's own budget (~5.76e23 FLOP) the refit gives ~20 tokens/param; the rounded fit far more."""
    C = Q_(5.76e23, "FLOP")
    refit = fermi.chinchilla_law(fermi.BESIROGLU_FIT).tokens_per_param(C).magnitude
    rounded = fermi.chinchilla_law(fermi.HOMEWORK_FIT).tokens_per_param(C).magnitude
    assert 15 < refit < 25
    assert rounded > 3 * refit


def test_direct_fit_for_one_hundred_trillion_parameters() -> None:
    """The homework's part (c): N = 1e14 gives C = 1e30 FLOP (from N = 0.1 C^0.5) and D = 1.7e15 tokens
    (from D = 1.7 C^0.5; C / (6 N) = 1.67e15 rounds to the same two digits)."""
    law = fermi.HOMEWORK_DIRECT_FIT
    N = Q_(1e14, "parameter")
    C = law.compute_for_params(N)
    assert C.to("FLOP").magnitude == pytest.approx(1e30, rel=1e-12)
    D = law.D_opt(C)
    assert D.to("token").magnitude == pytest.approx(1.7e15, rel=1e-12)
    D_constraint = (C / (fermi.TRAIN_FLOP_PER_PARAM_TOKEN * N)).to("token").magnitude
    assert round(D_constraint / 1e15, 1) == 1.7
    assert law.N_opt(C).magnitude == pytest.approx(1e14, rel=1e-12)
    assert law.implied_C0(C).magnitude == pytest.approx(1 / 0.17, rel=1e-12)


# ---------------------------------------------------------------------------------------------------------------
# Unit-checked arithmetic
# ---------------------------------------------------------------------------------------------------------------


def test_arithmetic_against_hand_formulas() -> None:
    N, D = Q_(1e14, "param"), Q_(1.7e15, "token")
    assert fermi.training_flops(N, D).magnitude == pytest.approx(6 * 1e14 * 1.7e15)
    assert fermi.inference_flops(Q_(1e12, "param"), Q_(1e6, "token")).magnitude == pytest.approx(2e18)
    assert fermi.model_memory(N).to("TB").magnitude == pytest.approx(200)
    assert fermi.devices_to_hold(Q_(200, "TB"), Q_(100, "GB")) == 2000
    assert fermi.devices_to_hold(Q_(200, "TB"), Q_(141, "GB")) == math.ceil(200e12 / 141e9)
    assert fermi.token_latency(N, Q_(4.8, "TB/s")).to("s/token").magnitude == pytest.approx(2e14 / 4.8e12)
    assert Q_(1, "petaFLOP_day").to("FLOP").magnitude == pytest.approx(1e15 * 86400)
    assert fermi.accelerator_hours(Q_(1, "PFLOP_day"), Q_(1.98, "PFLOP/s")).to("hour").magnitude == pytest.approx(
        24 / 1.98
    )
    act = fermi.activation_memory_per_token(96, 96 * 128)
    assert act.to("byte/token").magnitude == 96 * 96 * 128 * 2
    price = Q_(0.00005, "USD/MB")
    assert fermi.storage_cost(Q_(200, "TB"), price).to("USD/year").magnitude == pytest.approx(10_000)


def test_landauer_matches_scipy_constants() -> None:
    T = Q_(300, "K")
    e = fermi.landauer_energy(T).to("J").magnitude
    assert e == pytest.approx(scipy.constants.k * 300 * math.log(2), rel=1e-9)
    assert fermi.landauer_energy(T, Q_(1, "byte")).to("J").magnitude == pytest.approx(8 * e, rel=1e-12)
    p = fermi.landauer_power(Q_(1.98e15, "FLOP/s"), T).to("W").magnitude
    assert p == pytest.approx(1.98e15 * 32 * e, rel=1e-9)
    assert fermi.landauer_energy(Q_(26.85, "degC")).to("J").magnitude == pytest.approx(e, rel=1e-6)


def test_rental_cost_and_accelerator() -> None:
    h200 = fermi.Accelerator(
        "H200",
        Q_(1.98, "PFLOP/s"),
        Q_(4.8, "TB/s"),
        Q_(100, "GB"),
        Q_(0.7, "kW"),
        Q_(30_000, "USD"),
        Q_(1.5, "USD/hour"),
    )
    cost = fermi.rental_cost(Q_(1e30, "FLOP"), h200)
    assert cost.to("USD").magnitude == pytest.approx(1e30 / 1.98e15 / 3600 * 1.5)
    assert fermi.rental_cost(Q_(1e30, "FLOP"), h200, utilization=0.3).magnitude == pytest.approx(cost.magnitude / 0.3)
    assert h200.energy_per_flop.to("J/FLOP").magnitude == pytest.approx(700 / 1.98e15)


def test_plain_numbers_raise_type_error_naming_the_argument() -> None:
    with pytest.raises(TypeError, match="N"):
        fermi.training_flops(1e14, Q_(1, "token"))
    with pytest.raises(TypeError, match="bandwidth"):
        fermi.token_latency(Q_(1, "param"), 4.8e12)
    with pytest.raises(TypeError, match="C"):
        fermi.HOMEWORK_DIRECT_FIT.N_opt(1e30)
    with pytest.raises(TypeError, match="peak"):
        fermi.Accelerator("x", 1.98e15, Q_(1, "TB/s"), Q_(1, "GB"), Q_(1, "W"), Q_(1, "USD"), Q_(1, "USD/h"))
    other = pint.UnitRegistry()
    with pytest.raises(TypeError, match="another UnitRegistry"):
        fermi.token_latency(Q_(1, "param"), other.Quantity(4.8e12, "byte / s"))


def test_wrong_units_raise_dimensionality_error_naming_the_argument() -> None:
    with pytest.raises(pint.DimensionalityError, match="'N'"):
        fermi.training_flops(Q_(1e14, "token"), Q_(1, "token"))  # tokens where parameters belong
    with pytest.raises(pint.DimensionalityError, match="'bandwidth'"):
        fermi.token_latency(Q_(1, "param"), Q_(4.8, "TB"))  # bytes, not bytes per second
    with pytest.raises(pint.DimensionalityError, match="'rental'"):
        fermi.Accelerator("x", Q_(1, "PFLOP/s"), Q_(1, "TB/s"), Q_(1, "GB"), Q_(1, "W"), Q_(1, "USD"), Q_(1, "USD"))
    with pytest.raises(pint.DimensionalityError, match="'temperature'"):
        fermi.landauer_energy(Q_(300, "J"))


def test_bad_values_raise_value_error() -> None:
    with pytest.raises(ValueError, match="N"):
        fermi.model_memory(Q_(-1, "param"))
    with pytest.raises(ValueError, match="utilization"):
        fermi.accelerator_hours(Q_(1, "FLOP"), Q_(1, "FLOP/s"), utilization=1.5)
    with pytest.raises(ValueError, match="C"):
        fermi.isoflop_minimum(fermi.HOMEWORK_FIT, Q_(1, "FLOP"))
    with pytest.raises(ValueError, match="alpha"):
        fermi.ChinchillaFit(A=1.0, B=1.0, L0=1.0, alpha=-0.3, beta=0.3)


# ---------------------------------------------------------------------------------------------------------------
# Presentation helpers
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "n"), [("1e30", 1), ("1.7e15", 2), ("66175.20", 7), ("90,000", 1), ("0.02", 1), ("1070", 3), ("2.0", 2)]
)
def test_sig_figs(text: str, n: int) -> None:
    assert fermi.sig_figs(text) == n


def test_comparison_verdicts() -> None:
    t = fermi.Comparison()
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
    assert html.count("<tr>") == 1 + 5 and "homework" in html


def test_fmt() -> None:
    assert fermi.fmt(Q_(1e30, "FLOP")) == "1×10³⁰ FLOP"
    assert fermi.fmt(Q_(41.6667, "s")) == "41.7 s"
    assert fermi.fmt(66181.8) == "66\u202f200"
    assert fermi.fmt(Q_(8000, "token")) == "8\u202f000 tokens" and fermi.fmt(Q_(1, "day")) == "1 day"
    with pytest.raises(ValueError, match="glue"):
        fermi.Text("8,000")  # myst-nb would show the tuple (8, 0)
    assert fermi.fmt(Q_(2e14, "byte"), "TB") == "200 TB"
    assert fermi.fmt(9.96e5, sig=2) == "1×10⁶"
    assert fermi.fmt(1419) == "1\u202f419"  # counts are not rounded
    assert str(fermi.Text("1.7×10¹⁵")) == "1.7×10¹⁵" and repr(fermi.Text("a")) == "a"
    table = fermi.Table(["a", "b"], [["x", Q_(2e14, "byte")]])
    assert "2×10¹⁴ B" in table._repr_html_()
    with pytest.raises(ValueError, match="cells"):
        fermi.Table(["a", "b"], [["x"]])
