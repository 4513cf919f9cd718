"""Fermi estimates for large language models, with units everywhere.

Two halves:

* **The Chinchilla calculus.** The parametric loss of Hoffmann et al. (2022),
  ``L(N, D) = A / N**alpha + B / D**beta + L0``, minimised under the compute constraint ``C = C0 * N * D``,
  symbolically with sympy (:func:`chinchilla_symbolic`) and numerically for given constants
  (:func:`chinchilla_law`, :func:`isoflop_minimum`).
* **Back-of-the-envelope arithmetic with units** (pint): memory for N parameters, bandwidth-bound latency per
  token, training FLOPs ``6ND`` and inference FLOPs ``2N`` per token, accelerator-hours and rental cost, storage
  cost, and the Landauer bound on the energy of erasing bits.

Every quantity is a :class:`pint.Quantity` of the one registry :data:`ureg` of this module, which adds the units
the estimates need: ``FLOP`` (with prefixes: ``PFLOP``), ``petaFLOP_day``, ``USD``, ``token``, ``parameter``
(``param``), ``word``, ``page``, ``book``, ``essay``, ``burger`` and ``gram_CO2`` (``kg_CO2``, ``t_CO2``).
Counting units are independent dimensions, so a token count passed where a parameter count belongs raises
:class:`pint.DimensionalityError`. A plain number passed where a quantity is required raises :class:`TypeError`
naming the argument. All functions take scalars or NumPy arrays as magnitudes (no tensors, no shapes beyond that).
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

from lmlab.report import Comparison, ComparisonRow, Table, Text, fmt, sig_figs
from lmlab.units import Q_, ureg

__all__ = [
    "ureg",
    "Q_",
    "Accelerator",
    "ChinchillaFit",
    "AllocationLaw",
    "ChinchillaLaw",
    "ChinchillaSymbolic",
    "IsoflopMinimum",
    "Comparison",
    "ComparisonRow",
    "Text",
    "Table",
    "HOMEWORK_FIT",
    "BESIROGLU_FIT",
    "HOMEWORK_DIRECT_FIT",
    "TRAIN_FLOP_PER_PARAM_TOKEN",
    "INFER_FLOP_PER_PARAM_TOKEN",
    "chinchilla_symbolic",
    "chinchilla_law",
    "isoflop_minimum",
    "training_flops",
    "inference_flops",
    "model_memory",
    "devices_to_hold",
    "token_latency",
    "activation_memory_per_token",
    "accelerator_hours",
    "rental_cost",
    "storage_cost",
    "landauer_energy",
    "landauer_power",
    "fmt",
    "sig_figs",
]

TRAIN_FLOP_PER_PARAM_TOKEN = Q_(6.0, "FLOP / parameter / token")
"""Forward + backward pass: about 6 FLOP for every parameter and every training token (``C = 6 N D``)."""

INFER_FLOP_PER_PARAM_TOKEN = Q_(2.0, "FLOP / parameter / token")
"""Forward pass only: about 2 FLOP (one multiply, one add) per parameter per generated token."""


def _require(name: str, value: Any, unit: str, *, positive: bool = True) -> pint.Quantity:
    """Check that ``value`` is a quantity of :data:`ureg` with the dimensions of ``unit`` (and > 0)."""
    target = ureg.parse_units(unit)
    if not isinstance(value, ureg.Quantity):
        if isinstance(value, pint.Quantity):
            raise TypeError(f"{name} must be a quantity of lmlab.fermi.ureg, got one from another UnitRegistry")
        raise TypeError(
            f"{name} must be a pint Quantity in units of {unit} (for example fermi.Q_(1.0, {unit!r})), "
            f"got {type(value).__name__}"
        )
    if value.dimensionality != target.dimensionality:
        raise pint.DimensionalityError(
            value.units,
            target,
            value.dimensionality,
            target.dimensionality,
            extra_msg=f" (argument {name!r} must be in units of {unit})",
        )
    mag = np.asarray(value.magnitude, dtype=float)
    if not np.all(np.isfinite(mag)):
        raise ValueError(f"{name} must be finite, got {value}")
    if positive and not np.all(mag > 0):
        raise ValueError(f"{name} must be > 0, got {value}")
    return value


def _check_positive_floats(obj: object, attrs: tuple[str, ...]) -> None:
    """Each named attribute of ``obj`` is a finite float > 0 (TypeError / ValueError naming it otherwise)."""
    for attr in attrs:
        v = getattr(obj, attr)
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise TypeError(f"{attr} must be a float, got {type(v).__name__}")
        if not (math.isfinite(v) and v > 0):
            raise ValueError(f"{attr} must be a finite number > 0, got {v}")


def _require_fraction(name: str, value: Any) -> float:
    """A plain number in (0, 1], such as a utilisation."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a float in (0, 1], got {type(value).__name__}")
    if not 0.0 < float(value) <= 1.0:
        raise ValueError(f"{name} must be in (0, 1], got {value}")
    return float(value)


# ----------------------------------------------------------------------------------------------------------------
# Hardware
# ----------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Accelerator:
    """The figures of one accelerator (one GPU) that the estimates need; each field is a quantity.

    Attributes:
        name: a label, e.g. ``"H200"``.
        peak: peak arithmetic throughput, FLOP/s (say which number format it refers to where you set it).
        bandwidth: memory bandwidth between its DRAM (HBM) and its compute units, bytes/s.
        memory: DRAM capacity, bytes.
        power: electrical power drawn at full load, W.
        price: purchase price, USD.
        rental: rental price per hour of one accelerator, USD/hour.

    Raises:
        TypeError / pint.DimensionalityError / ValueError: a field is not a positive quantity in its units.
    """

    name: str
    peak: pint.Quantity
    bandwidth: pint.Quantity
    memory: pint.Quantity
    power: pint.Quantity
    price: pint.Quantity
    rental: pint.Quantity

    _UNITS = {
        "peak": "FLOP / s",
        "bandwidth": "byte / s",
        "memory": "byte",
        "power": "W",
        "price": "USD",
        "rental": "USD / hour",
    }

    def __post_init__(self) -> None:
        if not isinstance(self.name, str):
            raise TypeError(f"name must be a str, got {type(self.name).__name__}")
        for attr, unit in self._UNITS.items():
            _require(attr, getattr(self, attr), unit)

    @property
    def energy_per_flop(self) -> pint.Quantity:
        """Joules per FLOP at full load: ``power / peak``."""
        return (self.power / self.peak).to("J / FLOP")


# ----------------------------------------------------------------------------------------------------------------
# Small estimating functions
# ----------------------------------------------------------------------------------------------------------------


def training_flops(
    N: pint.Quantity, D: pint.Quantity, flop_per_param_token: pint.Quantity = TRAIN_FLOP_PER_PARAM_TOKEN
) -> pint.Quantity:
    """Training compute ``C = C0 N D`` in FLOP.

    Args:
        N: number of parameters (unit ``parameter``).
        D: number of training tokens (unit ``token``).
        flop_per_param_token: ``C0``, FLOP per parameter per token (default 6).
    """
    _require("N", N, "parameter")
    _require("D", D, "token")
    _require("flop_per_param_token", flop_per_param_token, "FLOP / parameter / token")
    return (flop_per_param_token * N * D).to("FLOP")


def inference_flops(
    N: pint.Quantity, tokens: pint.Quantity, flop_per_param_token: pint.Quantity = INFER_FLOP_PER_PARAM_TOKEN
) -> pint.Quantity:
    """Inference compute ``2 N`` FLOP per token, times the number of tokens, in FLOP.

    Args:
        N: number of parameters (unit ``parameter``).
        tokens: number of tokens processed or generated (unit ``token``).
        flop_per_param_token: FLOP per parameter per token (default 2: one multiply and one add).
    """
    _require("N", N, "parameter")
    _require("tokens", tokens, "token")
    _require("flop_per_param_token", flop_per_param_token, "FLOP / parameter / token")
    return (flop_per_param_token * N * tokens).to("FLOP")


def model_memory(N: pint.Quantity, bytes_per_param: pint.Quantity = Q_(2.0, "byte / parameter")) -> pint.Quantity:
    """Bytes needed to store ``N`` numbers of ``bytes_per_param`` each (default 2: 16-bit floats).

    Args:
        N: number of parameters (or of stored numbers; unit ``parameter``).
        bytes_per_param: storage per parameter, e.g. ``Q_(2, "byte/param")``; for training with Adam, count the
            gradient and the two moments as well.
    """
    _require("N", N, "parameter")
    _require("bytes_per_param", bytes_per_param, "byte / parameter")
    return (N * bytes_per_param).to("byte")


def devices_to_hold(memory: pint.Quantity, device_memory: pint.Quantity) -> int:
    """The smallest whole number of devices whose memories together hold ``memory`` bytes.

    Args:
        memory: bytes to hold.
        device_memory: memory of one device, bytes.
    """
    _require("memory", memory, "byte")
    _require("device_memory", device_memory, "byte")
    ratio = float((memory / device_memory).to("dimensionless").magnitude)
    return int(math.ceil(ratio * (1 - 1e-12)))  # tolerate floating-point fuzz on exact multiples


def token_latency(
    N: pint.Quantity, bandwidth: pint.Quantity, bytes_per_param: pint.Quantity = Q_(2.0, "byte / parameter")
) -> pint.Quantity:
    """Bandwidth-bound time per generated token, seconds per token.

    Each autoregressive step must stream every weight from DRAM through the compute units once, so at batch size
    one a step takes at least ``N * bytes_per_param / bandwidth``. Activations, the KV cache and compute time are
    ignored (this is a lower bound).

    Args:
        N: number of parameters (unit ``parameter``).
        bandwidth: memory bandwidth, bytes/s.
        bytes_per_param: bytes per stored parameter (default 2).
    """
    _require("bandwidth", bandwidth, "byte / s")
    return (model_memory(N, bytes_per_param) / bandwidth / Q_(1.0, "token")).to("s / token")


def activation_memory_per_token(
    n_layers: int, d_model: int, bytes_per_value: pint.Quantity = Q_(2.0, "byte")
) -> pint.Quantity:
    """Bytes of residual-stream activations one token occupies: one ``d_model`` vector per layer.

    Args:
        n_layers: number of layers (positive int).
        d_model: width of the residual stream (positive int), e.g. ``n_heads * d_head``.
        bytes_per_value: bytes per stored number (default 2: 16-bit floats).
    """
    for name, v in (("n_layers", n_layers), ("d_model", d_model)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
            raise TypeError(f"{name} must be an int, got {type(v).__name__}")
        if v <= 0:
            raise ValueError(f"{name} must be >= 1, got {v}")
    _require("bytes_per_value", bytes_per_value, "byte")
    return (n_layers * d_model * bytes_per_value / Q_(1.0, "token")).to("byte / token")


def accelerator_hours(flops: pint.Quantity, peak: pint.Quantity, utilization: float = 1.0) -> pint.Quantity:
    """Hours one accelerator needs for ``flops`` at ``utilization`` of its ``peak`` (accelerator-hours).

    Args:
        flops: work to do, FLOP.
        peak: peak throughput of one accelerator, FLOP/s.
        utilization: achieved fraction of the peak, in (0, 1].
    """
    _require("flops", flops, "FLOP")
    _require("peak", peak, "FLOP / s")
    u = _require_fraction("utilization", utilization)
    return (flops / (u * peak)).to("hour")


def rental_cost(flops: pint.Quantity, accelerator: Accelerator, utilization: float = 1.0) -> pint.Quantity:
    """USD to rent enough accelerator-hours for ``flops`` at ``utilization`` of the peak.

    Args:
        flops: work to do, FLOP.
        accelerator: the device rented (its ``peak`` and ``rental`` are used).
        utilization: achieved fraction of the peak, in (0, 1].
    """
    if not isinstance(accelerator, Accelerator):
        raise TypeError(f"accelerator must be an Accelerator, got {type(accelerator).__name__}")
    return (accelerator_hours(flops, accelerator.peak, utilization) * accelerator.rental).to("USD")


def storage_cost(
    memory: pint.Quantity, price: pint.Quantity, lifetime: pint.Quantity = Q_(1.0, "year")
) -> pint.Quantity:
    """Cost per year of keeping ``memory`` bytes on a medium bought at ``price`` that lasts ``lifetime``.

    Args:
        memory: bytes stored.
        price: purchase price per byte of the medium, e.g. ``Q_(0.05, "USD/GB")``.
        lifetime: how long the medium lasts before it is replaced (default one year).
    """
    _require("memory", memory, "byte")
    _require("price", price, "USD / byte")
    _require("lifetime", lifetime, "year")
    return (memory * price / lifetime).to("USD / year")


def landauer_energy(temperature: pint.Quantity, bits: pint.Quantity = Q_(1.0, "bit")) -> pint.Quantity:
    """Minimum heat released by erasing ``bits`` of information at ``temperature``: ``bits * k_B T ln 2``.

    Args:
        temperature: absolute temperature, kelvin (or any temperature unit pint can convert to kelvin).
        bits: information erased, in bits (unit ``bit``; ``byte`` converts).
    """
    if isinstance(temperature, ureg.Quantity) and temperature.dimensionality == ureg.kelvin.dimensionality:
        temperature = temperature.to("kelvin")
    _require("temperature", temperature, "kelvin")
    _require("bits", bits, "bit")
    per_bit = Q_(1.0, "boltzmann_constant") * temperature * math.log(2)
    return (bits.to("bit").magnitude * per_bit).to("J")


def landauer_power(
    flop_rate: pint.Quantity, temperature: pint.Quantity, bits_per_flop: pint.Quantity = Q_(32.0, "bit / FLOP")
) -> pint.Quantity:
    """Minimum power to run ``flop_rate`` if each FLOP erases ``bits_per_flop`` bits (Landauer bound), watts.

    The default 32 bits: a 32-bit operation takes two 32-bit inputs and keeps one 32-bit output.

    Args:
        flop_rate: FLOP/s.
        temperature: kelvin.
        bits_per_flop: bits erased per FLOP.
    """
    _require("flop_rate", flop_rate, "FLOP / s")
    _require("bits_per_flop", bits_per_flop, "bit / FLOP")
    per_flop = landauer_energy(temperature, bits_per_flop * Q_(1.0, "FLOP"))
    return (flop_rate * per_flop / Q_(1.0, "FLOP")).to("W")


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
        n = _require("N", N, "parameter").to("parameter").magnitude
        d = _require("D", D, "token").to("token").magnitude
        return self.A / np.power(n, self.alpha) + self.B / np.power(d, self.beta) + self.L0


HOMEWORK_FIT = ChinchillaFit(A=406.4, B=410.7, L0=1.69, alpha=0.34, beta=0.28, name="Hoffmann et al. (rounded)")
"""The constants of the homework, i.e. those printed in Hoffmann et al. (2022), Approach 3."""

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
        c = _require("C", C, "FLOP").to("FLOP").magnitude
        return Q_(self.k_N * np.power(c, self.a), "parameter")

    def D_opt(self, C: pint.Quantity) -> pint.Quantity:
        """Compute-optimal number of training tokens for ``C`` FLOP."""
        c = _require("C", C, "FLOP").to("FLOP").magnitude
        return Q_(self.k_D * np.power(c, self.b), "token")

    def compute_for_params(self, N: pint.Quantity) -> pint.Quantity:
        """The budget ``C`` for which ``N`` is compute-optimal: ``C = (N / k_N)**(1/a)`` FLOP."""
        n = _require("N", N, "parameter").to("parameter").magnitude
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
        c = _require("C", C, "FLOP").to("FLOP").magnitude
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
    c0 = float(_require("C0", C0, "FLOP / parameter / token").to("FLOP / parameter / token").magnitude)
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
    c = float(_require("C", C, "FLOP").to("FLOP").magnitude)
    c0 = float(_require("C0", C0, "FLOP / parameter / token").to("FLOP / parameter / token").magnitude)
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
