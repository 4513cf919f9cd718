"""Back-of-the-envelope estimates for large language models, with units everywhere.

Small functions for the arithmetic of a Fermi estimate: memory for ``N`` parameters, bandwidth-bound latency per
token, training FLOPs ``6ND`` and inference FLOPs ``2N`` per token, accelerator-hours and rental cost, storage
cost, the Landauer bound on the energy of erasing bits, and the roofline of autoregressive decoding (how the
throughput and the cost per token depend on the batch size). The scaling law lives in :mod:`lmlab.chinchilla`,
the units in :mod:`lmlab.units`, the Monte Carlo propagation of ranges in :mod:`lmlab.uncertainty`.

Every input is a :class:`pint.Quantity` of :data:`lmlab.units.ureg`. A plain number passed where a quantity is
required raises :class:`TypeError` naming the argument; a quantity in the wrong units raises
:class:`pint.DimensionalityError` naming it. All functions take scalars or NumPy arrays as magnitudes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pint

from lmlab.presentation.units import Q_, require, ureg
from lmlab.scaling.chinchilla import TRAIN_FLOP_PER_PARAM_TOKEN

__all__ = [
    "Accelerator",
    "TRAIN_FLOP_PER_PARAM_TOKEN",
    "INFER_FLOP_PER_PARAM_TOKEN",
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
    "roofline_batch",
    "decode_step_time",
    "decode_throughput",
    "decode_cost_per_token",
]

INFER_FLOP_PER_PARAM_TOKEN = Q_(2.0, "FLOP / parameter / token")
"""Forward pass only: about 2 FLOP (one multiply, one add) per parameter per generated token."""


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
            require(attr, getattr(self, attr), unit)

    @property
    def energy_per_flop(self) -> pint.Quantity:
        """Joules per FLOP at full load: ``power / peak``."""
        return (self.power / self.peak).to("J / FLOP")

    @property
    def ridge(self) -> pint.Quantity:
        """The roofline's ridge point ``peak / bandwidth``, FLOP per byte: below this arithmetic intensity a
        computation is bandwidth-bound, above it compute-bound."""
        return (self.peak / self.bandwidth).to("FLOP / byte")


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
    require("N", N, "parameter")
    require("D", D, "token")
    require("flop_per_param_token", flop_per_param_token, "FLOP / parameter / token")
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
    require("N", N, "parameter")
    require("tokens", tokens, "token")
    require("flop_per_param_token", flop_per_param_token, "FLOP / parameter / token")
    return (flop_per_param_token * N * tokens).to("FLOP")


def model_memory(N: pint.Quantity, bytes_per_param: pint.Quantity = Q_(2.0, "byte / parameter")) -> pint.Quantity:
    """Bytes needed to store ``N`` numbers of ``bytes_per_param`` each (default 2: 16-bit floats).

    Args:
        N: number of parameters (or of stored numbers; unit ``parameter``).
        bytes_per_param: storage per parameter, e.g. ``Q_(2, "byte/param")``; for training with Adam, count the
            gradient and the two moments as well.
    """
    require("N", N, "parameter")
    require("bytes_per_param", bytes_per_param, "byte / parameter")
    return (N * bytes_per_param).to("byte")


def devices_to_hold(memory: pint.Quantity, device_memory: pint.Quantity) -> int:
    """The smallest whole number of devices whose memories together hold ``memory`` bytes.

    Args:
        memory: bytes to hold.
        device_memory: memory of one device, bytes.
    """
    require("memory", memory, "byte")
    require("device_memory", device_memory, "byte")
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
    require("bandwidth", bandwidth, "byte / s")
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
    require("bytes_per_value", bytes_per_value, "byte")
    return (n_layers * d_model * bytes_per_value / Q_(1.0, "token")).to("byte / token")


def accelerator_hours(flops: pint.Quantity, peak: pint.Quantity, utilization: float = 1.0) -> pint.Quantity:
    """Hours one accelerator needs for ``flops`` at ``utilization`` of its ``peak`` (accelerator-hours).

    Args:
        flops: work to do, FLOP.
        peak: peak throughput of one accelerator, FLOP/s.
        utilization: achieved fraction of the peak, in (0, 1].
    """
    require("flops", flops, "FLOP")
    require("peak", peak, "FLOP / s")
    u = _require_fraction("utilization", utilization)
    return (flops / (u * peak)).to("hour")


def rental_cost(flops: pint.Quantity, accelerator: Accelerator, utilization: float = 1.0) -> pint.Quantity:
    """USD to rent enough accelerator-hours for ``flops`` at ``utilization`` of the peak.

    Args:
        flops: work to do, FLOP.
        accelerator: the device rented (its ``peak`` and ``rental`` are used).
        utilization: achieved fraction of the peak, in (0, 1].
    """
    _check_accelerator(accelerator)
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
    require("memory", memory, "byte")
    require("price", price, "USD / byte")
    require("lifetime", lifetime, "year")
    return (memory * price / lifetime).to("USD / year")


def landauer_energy(temperature: pint.Quantity, bits: pint.Quantity = Q_(1.0, "bit")) -> pint.Quantity:
    """Minimum heat released by erasing ``bits`` of information at ``temperature``: ``bits * k_B T ln 2``.

    Args:
        temperature: absolute temperature, kelvin (or any temperature unit pint can convert to kelvin).
        bits: information erased, in bits (unit ``bit``; ``byte`` converts).
    """
    if isinstance(temperature, ureg.Quantity) and temperature.dimensionality == ureg.kelvin.dimensionality:
        temperature = temperature.to("kelvin")
    require("temperature", temperature, "kelvin")
    require("bits", bits, "bit")
    per_bit = Q_(1.0, "boltzmann_constant") * temperature * math.log(2)
    return (bits.to("bit").magnitude * per_bit).to("J")


def landauer_power(
    flop_rate: pint.Quantity, temperature: pint.Quantity, bits_per_flop: pint.Quantity = Q_(32.0, "bit / FLOP")
) -> pint.Quantity:
    """Minimum power to run ``flop_rate`` if each FLOP erases ``bits_per_flop`` bits (Landauer bound), watts.

    The default 32 bits is the homework's count: a 32-bit operation takes two 32-bit inputs and keeps one
    32-bit output, so one input's worth of information is erased. It is a convention, not a law: Landauer's bound
    applies only to bits that are logically erased, a reversible computation (one that keeps its inputs) need
    erase none, and a real chip erases far more bits per FLOP (every register, wire and cache line it overwrites).

    Args:
        flop_rate: FLOP/s.
        temperature: kelvin.
        bits_per_flop: bits erased per FLOP.
    """
    require("flop_rate", flop_rate, "FLOP / s")
    require("bits_per_flop", bits_per_flop, "bit / FLOP")
    per_flop = landauer_energy(temperature, bits_per_flop * Q_(1.0, "FLOP"))
    return (flop_rate * per_flop / Q_(1.0, "FLOP")).to("W")


# ----------------------------------------------------------------------------------------------------------------
# The roofline of autoregressive decoding
# ----------------------------------------------------------------------------------------------------------------


def _check_accelerator(accelerator: Any) -> None:
    if not isinstance(accelerator, Accelerator):
        raise TypeError(f"accelerator must be an Accelerator, got {type(accelerator).__name__}")


def roofline_batch(
    accelerator: Accelerator,
    bytes_per_param: pint.Quantity = Q_(2.0, "byte / parameter"),
    flop_per_param_token: pint.Quantity = INFER_FLOP_PER_PARAM_TOKEN,
) -> pint.Quantity:
    """The batch ``B*`` (tokens per decoding step) at which decoding turns from bandwidth- to compute-bound.

    One step of a batch of ``B`` sequences reads every weight once (``N * bytes_per_param`` bytes) and does
    ``flop_per_param_token * N * B`` FLOP. The two take equally long when the step's arithmetic intensity,
    ``B * flop_per_param_token / bytes_per_param`` FLOP per byte, equals the accelerator's ridge point
    ``peak / bandwidth``; so ``B* = (peak / bandwidth) * bytes_per_param / flop_per_param_token``, independent of
    ``N``. Activations and the key-value cache are not counted (they lower ``B*`` a little).

    Args:
        accelerator: its ``peak`` and ``bandwidth`` are used.
        bytes_per_param: bytes per stored parameter (default 2).
        flop_per_param_token: FLOP per parameter per generated token (default 2).
    """
    _check_accelerator(accelerator)
    require("bytes_per_param", bytes_per_param, "byte / parameter")
    require("flop_per_param_token", flop_per_param_token, "FLOP / parameter / token")
    return (accelerator.ridge * bytes_per_param / flop_per_param_token).to("token")


def decode_step_time(
    N: pint.Quantity,
    batch: pint.Quantity,
    accelerator: Accelerator,
    bytes_per_param: pint.Quantity = Q_(2.0, "byte / parameter"),
    flop_per_param_token: pint.Quantity = INFER_FLOP_PER_PARAM_TOKEN,
) -> pint.Quantity:
    """Roofline time of one decoding step of ``batch`` tokens: ``max(weights / bandwidth, FLOP / peak)``, seconds.

    ``N`` counts all the model's parameters; if the model is spread over ``k`` accelerators each does ``1/k`` of
    the reading and of the arithmetic, so the time in accelerator-seconds per step is the same.

    Args:
        N: number of parameters (unit ``parameter``).
        batch: tokens generated per step, one per sequence in the batch (unit ``token``; arrays allowed).
        accelerator: its ``peak`` and ``bandwidth`` are used.
        bytes_per_param: bytes per stored parameter (default 2).
        flop_per_param_token: FLOP per parameter per generated token (default 2).
    """
    _check_accelerator(accelerator)
    require("batch", batch, "token")
    memory_time = model_memory(N, bytes_per_param) / accelerator.bandwidth
    compute_time = inference_flops(N, batch, flop_per_param_token) / accelerator.peak
    m = np.asarray(memory_time.to("s").magnitude, dtype=float)
    c = np.asarray(compute_time.to("s").magnitude, dtype=float)
    out = np.maximum(m, c)
    return Q_(out if out.ndim else float(out), "s")


def decode_throughput(
    N: pint.Quantity,
    batch: pint.Quantity,
    accelerator: Accelerator,
    bytes_per_param: pint.Quantity = Q_(2.0, "byte / parameter"),
    flop_per_param_token: pint.Quantity = INFER_FLOP_PER_PARAM_TOKEN,
) -> pint.Quantity:
    """Tokens per second that one accelerator's worth of hardware generates at ``batch``: ``batch / step time``.

    Grows linearly with ``batch`` up to :func:`roofline_batch`, then stays at ``peak / (flop_per_param_token N)``.
    Arguments as in :func:`decode_step_time`.
    """
    step = decode_step_time(N, batch, accelerator, bytes_per_param, flop_per_param_token)
    return (batch / step).to("token / s")


def decode_cost_per_token(
    N: pint.Quantity,
    batch: pint.Quantity,
    accelerator: Accelerator,
    bytes_per_param: pint.Quantity = Q_(2.0, "byte / parameter"),
    flop_per_param_token: pint.Quantity = INFER_FLOP_PER_PARAM_TOKEN,
) -> pint.Quantity:
    """Rent per generated token at ``batch``: accelerator-seconds per token times the rental price, USD/token.

    At batch 1 this is the bandwidth-bound ``N * bytes_per_param / bandwidth * rental``; from
    :func:`roofline_batch` on it is the compute-bound ``flop_per_param_token * N / peak * rental``.
    Arguments as in :func:`decode_step_time`.
    """
    throughput = decode_throughput(N, batch, accelerator, bytes_per_param, flop_per_param_token)
    return (accelerator.rental / throughput).to("USD / token")
