"""The Chinchilla scaling law: the compute-optimal split of a training budget, symbolically and numerically.

Hoffmann et al. (2022) fitted the final loss of a few hundred training runs with
``L(N, D) = A / N**alpha + B / D**beta + L0`` (``N`` parameters, ``D`` training tokens) and estimated the training
compute as ``C = C0 N D`` with ``C0 = 6`` FLOP per parameter per token. This module

* minimises ``L`` under that constraint with sympy (:func:`chinchilla_symbolic`), giving
  ``N_opt = G (C/C0)**a`` and ``D_opt = G**-1 (C/C0)**b`` with ``G``, ``a``, ``b`` as expressions;
* substitutes a fit's constants into those expressions (:func:`chinchilla_law`), so no coefficient is typed;
* checks the closed form by a plain 1-D search along the constraint (:func:`isoflop_minimum`);
* holds the published constants, each in one place: :data:`HOMEWORK_FIT` (as printed in the paper and used by the
  homework), :data:`HOFFMANN_TEX_FIT` (the less rounded values of the paper's TeX source),
  :data:`BESIROGLU_FIT` (the refit of the same data) and :data:`HOMEWORK_DIRECT_FIT` (the directly fitted
  allocation ``N_opt = 0.1 C**0.5``, ``D_opt = 1.7 C**0.5``).

Budgets, parameter and token counts are quantities of :data:`lmlab.units.ureg` (``FLOP``, ``parameter``,
``token``); the loss is a plain float in nats per token.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pint
import sympy as sp
from scipy.optimize import minimize_scalar

from lmlab.presentation.units import Q_, require

__all__ = [
    "TRAIN_FLOP_PER_PARAM_TOKEN",
    "ChinchillaFit",
    "AllocationLaw",
    "ChinchillaLaw",
    "ChinchillaSymbolic",
    "IsoflopMinimum",
    "HOMEWORK_FIT",
    "HOFFMANN_TEX_FIT",
    "BESIROGLU_FIT",
    "HOMEWORK_DIRECT_FIT",
    "chinchilla_symbolic",
    "chinchilla_law",
    "isoflop_minimum",
]

TRAIN_FLOP_PER_PARAM_TOKEN = Q_(6.0, "FLOP / parameter / token")
"""``C0``: forward + backward pass, about 6 FLOP for every parameter and every training token (``C = 6 N D``)."""


def _check_positive_floats(obj: object, attrs: tuple[str, ...]) -> None:
    """Each named attribute of ``obj`` is a finite float > 0 (TypeError / ValueError naming it otherwise)."""
    for attr in attrs:
        v = getattr(obj, attr)
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise TypeError(f"{attr} must be a float, got {type(v).__name__}")
        if not (math.isfinite(v) and v > 0):
            raise ValueError(f"{attr} must be a finite number > 0, got {v}")


# ----------------------------------------------------------------------------------------------------------------
# Chinchilla: symbolic
# ----------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ChinchillaSymbolic:
    """The compute-optimal allocation, solved by sympy; every field is a sympy expression or symbol.

    ``loss`` is ``A/N**alpha + B/D**beta + L0``. ``D_solution`` is what ``sympy.solve`` returns for the first-order
    condition of ``loss`` along ``C = C0 N D`` (with ``N = C / (C0 D)`` substituted); it is checked to equal
    ``D_opt = G**-1 (C/C0)**b``. Then ``N_opt = G (C/C0)**a`` with ``G = (alpha A / (beta B))**(1/(alpha+beta))``,
    ``a = beta/(alpha+beta)``, ``b = alpha/(alpha+beta)``, and ``L_opt = L_coef (C/C0)**(-gamma) + L0`` with
    ``gamma = alpha beta / (alpha + beta)`` and ``L_coef = A G**-alpha + B G**beta``.
    """

    N: sp.Symbol
    D: sp.Symbol
    C: sp.Symbol
    C0: sp.Symbol
    A: sp.Symbol
    B: sp.Symbol
    alpha: sp.Symbol
    beta: sp.Symbol
    L0: sp.Symbol
    loss: sp.Expr
    loss_along_constraint: sp.Expr
    D_solution: sp.Expr
    G: sp.Expr
    a: sp.Expr
    b: sp.Expr
    N_opt: sp.Expr
    D_opt: sp.Expr
    gamma: sp.Expr
    L_coef: sp.Expr
    L_opt: sp.Expr

    def constants(self, fit: ChinchillaFit, C0: float = 6.0) -> dict[sp.Symbol, float]:
        """The substitution dict ``{A: fit.A, ..., C0: C0}`` for ``expr.subs``."""
        return {
            self.A: fit.A,
            self.B: fit.B,
            self.alpha: fit.alpha,
            self.beta: fit.beta,
            self.L0: fit.L0,
            self.C0: C0,
        }


def _same(x: sp.Expr, y: sp.Expr) -> bool:
    """True if sympy can show x / y == 1 for positive symbols."""
    ratio = sp.powsimp(sp.expand_power_base(x / y, force=True), force=True)
    return sp.simplify(ratio) == 1


@functools.lru_cache(maxsize=1)
def chinchilla_symbolic() -> ChinchillaSymbolic:
    """Minimise ``L = A/N**alpha + B/D**beta + L0`` subject to ``C0 N D = C`` with sympy (cached; ~1 s).

    The route is the homework's: eliminate ``N = C / (C0 D)``, differentiate with respect to ``D``, solve the
    first-order condition, then recover ``N`` from the constraint. The solution sympy returns is checked against the
    closed form in ``G, a, b``.

    Raises:
        RuntimeError: sympy's solution does not have the closed form (it would mean a sympy regression).
    """
    N, D, C, C0, A, B, alpha, beta, L0 = sp.symbols("N D C C_0 A B alpha beta L_0", positive=True)
    loss = A / N**alpha + B / D**beta + L0
    along = loss.subs(N, C / (C0 * D))
    solutions = sp.solve(sp.Eq(sp.diff(along, D), 0), D)
    if len(solutions) != 1:
        raise RuntimeError(f"expected one stationary point, sympy found {solutions}")
    D_solution = solutions[0]
    G = (alpha * A / (beta * B)) ** (1 / (alpha + beta))
    a = beta / (alpha + beta)
    b = alpha / (alpha + beta)
    D_opt = G**-1 * (C / C0) ** b
    N_opt = G * (C / C0) ** a
    if not _same(D_solution, D_opt) or not _same(C / (C0 * D_solution), N_opt):
        raise RuntimeError(f"sympy's stationary point {D_solution} differs from G**-1 (C/C0)**b")
    gamma = alpha * beta / (alpha + beta)
    L_coef = A * G**-alpha + B * G**beta
    L_opt = L_coef * (C / C0) ** (-gamma) + L0
    return ChinchillaSymbolic(
        N=N,
        D=D,
        C=C,
        C0=C0,
        A=A,
        B=B,
        alpha=alpha,
        beta=beta,
        L0=L0,
        loss=loss,
        loss_along_constraint=along,
        D_solution=D_solution,
        G=G,
        a=a,
        b=b,
        N_opt=N_opt,
        D_opt=D_opt,
        gamma=gamma,
        L_coef=L_coef,
        L_opt=L_opt,
    )


# ----------------------------------------------------------------------------------------------------------------
# Chinchilla: numeric
# ----------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ChinchillaFit:
    """Constants of the parametric loss ``L(N, D) = A / N**alpha + B / D**beta + L0`` (N in parameters, D in tokens).

    ``L`` is a cross-entropy in nats per token (a plain float).
    """

    A: float
    B: float
    L0: float
    alpha: float
    beta: float
    name: str = ""

    def __post_init__(self) -> None:
        _check_positive_floats(self, ("A", "B", "L0", "alpha", "beta"))

    def loss(self, N: pint.Quantity, D: pint.Quantity) -> Any:
        """``A / N**alpha + B / D**beta + L0`` for ``N`` parameters and ``D`` tokens (scalars or arrays)."""
        n = require("N", N, "parameter").to("parameter").magnitude
        d = require("D", D, "token").to("token").magnitude
        return self.A / np.power(n, self.alpha) + self.B / np.power(d, self.beta) + self.L0


HOMEWORK_FIT = ChinchillaFit(A=406.4, B=410.7, L0=1.69, alpha=0.34, beta=0.28, name="Hoffmann et al. (rounded)")
"""The constants of the homework, i.e. those printed in Hoffmann et al. (2022), Approach 3."""

HOFFMANN_TEX_FIT = ChinchillaFit(
    A=406.4, B=410.7, L0=1.6934, alpha=0.33917, beta=0.28491, name="Hoffmann et al. (TeX source)"
)
"""The same fit with the less rounded ``L0``, ``alpha``, ``beta`` of the paper's TeX source (as quoted by
Besiroglu et al., 2024): the exponents differ from :data:`HOMEWORK_FIT` in the third digit, which moves the
compute-optimal tokens per parameter at Chinchilla's budget from about 93 to about 59."""

BESIROGLU_FIT = ChinchillaFit(A=482.01, B=2085.43, L0=1.8172, alpha=0.3478, beta=0.3658, name="Besiroglu et al.")
"""The refit of the same data by Besiroglu, Erdil, Barnett and You (2024)."""


@dataclass(frozen=True)
class AllocationLaw:
    """A compute-optimal allocation ``N_opt = k_N C**a`` parameters and ``D_opt = k_D C**b`` tokens (C in FLOP)."""

    k_N: float
    a: float
    k_D: float
    b: float
    name: str = ""

    def __post_init__(self) -> None:
        _check_positive_floats(self, ("k_N", "a", "k_D", "b"))

    def N_opt(self, C: pint.Quantity) -> pint.Quantity:
        """Compute-optimal number of parameters for ``C`` FLOP."""
        c = require("C", C, "FLOP").to("FLOP").magnitude
        return Q_(self.k_N * np.power(c, self.a), "parameter")

    def D_opt(self, C: pint.Quantity) -> pint.Quantity:
        """Compute-optimal number of training tokens for ``C`` FLOP."""
        c = require("C", C, "FLOP").to("FLOP").magnitude
        return Q_(self.k_D * np.power(c, self.b), "token")

    def compute_for_params(self, N: pint.Quantity) -> pint.Quantity:
        """The budget ``C`` for which ``N`` is compute-optimal: ``C = (N / k_N)**(1/a)`` FLOP."""
        n = require("N", N, "parameter").to("parameter").magnitude
        return Q_(np.power(n / self.k_N, 1.0 / self.a), "FLOP")

    def tokens_per_param(self, C: pint.Quantity) -> pint.Quantity:
        """``D_opt / N_opt`` at budget ``C``, tokens per parameter."""
        return (self.D_opt(C) / self.N_opt(C)).to("token / parameter")

    def implied_C0(self, C: pint.Quantity) -> pint.Quantity:
        """``C / (N_opt D_opt)``: the FLOP per parameter per token that the law implies at budget ``C``."""
        return (C / (self.N_opt(C) * self.D_opt(C))).to("FLOP / parameter / token")


HOMEWORK_DIRECT_FIT = AllocationLaw(k_N=0.1, a=0.5, k_D=1.7, b=0.5, name="direct fit (homework)")
"""The homework's 'direct fit' ``N_opt = 0.1 C**0.5``, ``D_opt = 1.7 C**0.5``."""


@dataclass(frozen=True)
class ChinchillaLaw(AllocationLaw):
    """The allocation law obtained from a :class:`ChinchillaFit` by the calculus, plus the optimal loss.

    ``L_opt(C) = k_L C**(-gamma) + L0``. ``G`` is the sympy ``G`` with the constants substituted; ``C0`` the
    FLOP per parameter per token used.
    """

    fit: ChinchillaFit = field(default=HOMEWORK_FIT)
    C0: float = 6.0
    G: float = 1.0
    k_L: float = 1.0
    gamma: float = 1.0

    def L_opt(self, C: pint.Quantity) -> Any:
        """The loss at the compute-optimal allocation for ``C`` FLOP (nats per token)."""
        c = require("C", C, "FLOP").to("FLOP").magnitude
        return self.k_L * np.power(c, -self.gamma) + self.fit.L0


def chinchilla_law(fit: ChinchillaFit, C0: pint.Quantity = TRAIN_FLOP_PER_PARAM_TOKEN) -> ChinchillaLaw:
    """Substitute ``fit`` and ``C0`` into the symbolic optimum of :func:`chinchilla_symbolic`.

    Every coefficient is computed from the sympy expressions: ``k_N = G C0**-a``, ``k_D = G**-1 C0**-b``,
    ``k_L = L_coef C0**gamma``, so that ``N_opt = k_N C**a`` with ``C`` in FLOP.

    Args:
        fit: the loss constants.
        C0: FLOP per parameter per token (default 6).
    """
    if not isinstance(fit, ChinchillaFit):
        raise TypeError(f"fit must be a ChinchillaFit, got {type(fit).__name__}")
    c0 = float(require("C0", C0, "FLOP / parameter / token").to("FLOP / parameter / token").magnitude)
    s = chinchilla_symbolic()
    values = s.constants(fit, c0)

    def num(expr: sp.Expr) -> float:
        return float(sp.N(expr.subs(values), 30))

    C = s.C
    return ChinchillaLaw(
        k_N=num(s.N_opt / C**s.a),
        a=num(s.a),
        k_D=num(s.D_opt / C**s.b),
        b=num(s.b),
        name=fit.name,
        fit=fit,
        C0=c0,
        G=num(s.G),
        k_L=num((s.L_opt - s.L0) * C**s.gamma),
        gamma=num(s.gamma),
    )


@dataclass(frozen=True)
class IsoflopMinimum:
    """The minimum of the loss along one iso-FLOP curve, found numerically."""

    C: pint.Quantity
    N: pint.Quantity
    D: pint.Quantity
    L: float
    nfev: int


def isoflop_minimum(
    fit: ChinchillaFit, C: pint.Quantity, C0: pint.Quantity = TRAIN_FLOP_PER_PARAM_TOKEN
) -> IsoflopMinimum:
    """Minimise ``fit.loss(N, C / (C0 N))`` over ``log N`` with ``scipy.optimize.minimize_scalar`` (bounded Brent).

    An independent check of the closed form: no calculus, just a 1-D search along the constraint ``C = C0 N D``
    with ``1 <= N`` and ``1 <= D``.

    Args:
        fit: the loss constants.
        C: the compute budget, FLOP (a scalar).
        C0: FLOP per parameter per token (default 6).
    """
    if not isinstance(fit, ChinchillaFit):
        raise TypeError(f"fit must be a ChinchillaFit, got {type(fit).__name__}")
    c = float(require("C", C, "FLOP").to("FLOP").magnitude)
    c0 = float(require("C0", C0, "FLOP / parameter / token").to("FLOP / parameter / token").magnitude)
    if c <= c0:
        raise ValueError(f"C must exceed C0 * 1 parameter * 1 token = {c0} FLOP, got {c}")
    log_budget = math.log(c / c0)  # = log N + log D

    def excess_loss(log_n: float) -> float:  # L - L0: keeps the small terms' precision
        return fit.A * math.exp(-fit.alpha * log_n) + fit.B * math.exp(-fit.beta * (log_budget - log_n))

    res = minimize_scalar(excess_loss, bounds=(0.0, log_budget), method="bounded", options={"xatol": 1e-12})
    if not res.success:  # pragma: no cover
        raise RuntimeError(f"minimize_scalar failed: {res.message}")
    n = math.exp(res.x)
    return IsoflopMinimum(
        C=Q_(c, "FLOP"),
        N=Q_(n, "parameter"),
        D=Q_(c / (c0 * n), "token"),
        L=float(res.fun) + fit.L0,
        nfev=int(res.nfev),
    )
