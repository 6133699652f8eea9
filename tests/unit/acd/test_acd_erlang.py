"""Our Erlang-C against an independent implementation (pyworkforce) and known values."""

from __future__ import annotations

import math

import pytest
from pyworkforce.queuing import ErlangC

from switchboard.acd import erlang


@pytest.mark.parametrize(("a", "n"), [(2.0, 3), (10.0, 11), (10.0, 14), (47.5, 52), (100.0, 105), (100.0, 112)])
@pytest.mark.parametrize("aht", [180.0, 300.0])
def test_against_pyworkforce(a: float, n: int, aht: float) -> None:
    # pyworkforce takes transactions per interval, aht and the target ("asa") in the same unit
    ref = ErlangC(transactions=a * 3600 / aht, aht=aht / 60, asa=20 / 60, interval=60)
    assert erlang.erlang_c(a, n) == pytest.approx(ref.waiting_probability(n), rel=1e-9)
    assert erlang.service_level(a, n, aht, 20) == pytest.approx(ref.service_level(n), rel=1e-9)


def test_known_values() -> None:
    # M/M/1: P(wait) = rho, ASA = rho/(1-rho) * aht
    assert erlang.erlang_c(0.5, 1) == pytest.approx(0.5)
    assert erlang.asa(0.5, 1, 100.0) == pytest.approx(100.0)
    assert erlang.erlang_b(1.0, 1) == pytest.approx(0.5)
    # overload
    assert erlang.erlang_c(5.0, 5) == 1.0 and erlang.service_level(5.0, 4, 100, 20) == 0.0
    assert math.isinf(erlang.asa(5.0, 5, 100))
    n = erlang.agents_for_service_level(100.0, 300.0, 20.0, 0.8)
    assert erlang.service_level(100.0, n, 300.0, 20.0) >= 0.8 > erlang.service_level(100.0, n - 1, 300.0, 20.0)
    with pytest.raises(ValueError):
        erlang.erlang_b(-1, 3)
