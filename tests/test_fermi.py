"""lmlab.fermi: the unit-checked arithmetic of a Fermi estimate (pint), and the roofline of decoding."""

from __future__ import annotations

import math

import numpy as np
import pint
import pytest
import scipy.constants
from lmlab import fermi
from lmlab.presentation.units import Q_

H200 = fermi.Accelerator(  # the homework's figures
    "H200",
    Q_(1.98, "PFLOP/s"),
    Q_(4.8, "TB/s"),
    Q_(100, "GB"),
    Q_(0.7, "kW"),
    Q_(30_000, "USD"),
    Q_(1.5, "USD/hour"),
)


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
    h200 = H200
    cost = fermi.rental_cost(Q_(1e30, "FLOP"), h200)
    assert cost.to("USD").magnitude == pytest.approx(1e30 / 1.98e15 / 3600 * 1.5)
    assert fermi.rental_cost(Q_(1e30, "FLOP"), h200, utilization=0.3).magnitude == pytest.approx(cost.magnitude / 0.3)
    assert h200.energy_per_flop.to("J/FLOP").magnitude == pytest.approx(700 / 1.98e15)


def test_plain_numbers_raise_type_error_naming_the_argument() -> None:
    with pytest.raises(TypeError, match="N"):
        fermi.training_flops(1e14, Q_(1, "token"))
    with pytest.raises(TypeError, match="bandwidth"):
        fermi.token_latency(Q_(1, "param"), 4.8e12)
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


# ---------------------------------------------------------------------------------------------------------------
# Roofline of decoding
# ---------------------------------------------------------------------------------------------------------------


def test_roofline_batch_is_the_ridge_point_in_tokens() -> None:
    """1.98 PFLOP/s over 4.8 TB/s is 412.5 FLOP/byte; with 2 bytes and 2 FLOP per parameter, 412.5 tokens; with
    1-byte weights the weights are read in half the time and the turn comes at half the batch."""
    assert H200.ridge.to("FLOP/byte").magnitude == pytest.approx(412.5)
    assert fermi.roofline_batch(H200).to("token").magnitude == pytest.approx(412.5)
    assert fermi.roofline_batch(H200, Q_(1, "byte/param")).to("token").magnitude == pytest.approx(206.25)


def test_decoding_throughput_saturates_at_the_roofline_batch() -> None:
    N = Q_(1e12, "param")
    b_star = fermi.roofline_batch(H200).to("token").magnitude
    batch = Q_(np.array([1.0, 2.0, 100.0, b_star, 2 * b_star, 1e5]), "token")
    tput = fermi.decode_throughput(N, batch, H200).to("token/s").magnitude
    # below B*: linear in the batch (the weights are read once per step whatever the batch)
    assert tput[1] == pytest.approx(2 * tput[0]) and tput[2] == pytest.approx(100 * tput[0])
    # at B* the two limits meet; above it the throughput is the compute bound peak / (2N)
    compute_bound = 1.98e15 / (2 * 1e12)
    assert tput[3] == pytest.approx(compute_bound) and tput[4] == pytest.approx(compute_bound)
    assert tput[5] == pytest.approx(compute_bound)
    assert np.all(np.diff(tput) >= 0)
    # batch 1 is the bandwidth bound of token_latency
    lat = fermi.token_latency(N, H200.bandwidth).to("s/token").magnitude
    assert tput[0] == pytest.approx(1 / lat)


def test_cost_per_token_falls_by_the_roofline_batch() -> None:
    """The rent per token at batch 1 over that at a large batch is B*; the large-batch cost is part (j)'s."""
    N = Q_(1e12, "param")
    one = fermi.decode_cost_per_token(N, Q_(1, "token"), H200).to("USD/token").magnitude
    big = fermi.decode_cost_per_token(N, Q_(1e4, "token"), H200).to("USD/token").magnitude
    assert one / big == pytest.approx(fermi.roofline_batch(H200).to("token").magnitude)
    flops = fermi.inference_flops(N, Q_(1e6, "token"))
    assert big * 1e6 == pytest.approx(fermi.rental_cost(flops, H200).to("USD").magnitude)


def test_roofline_rejects_bad_arguments() -> None:
    with pytest.raises(TypeError, match="accelerator"):
        fermi.roofline_batch("H200")  # type: ignore[arg-type]
    with pytest.raises(pint.DimensionalityError, match="'batch'"):
        fermi.decode_step_time(Q_(1, "param"), Q_(4, "param"), H200)
    with pytest.raises(ValueError, match="batch"):
        fermi.decode_throughput(Q_(1, "param"), Q_(0, "token"), H200)
