"""Erlang-C: the M/M/N queue (Poisson arrivals, exponential handle times, no abandonment).

``a`` is the offered load in Erlangs (arrival rate x average handle time), ``n`` the
number of agents. For one pooled group of agents this is the textbook bound the
simulator's results are compared with (callers who abandon make real queues
look slightly better than this formula).
"""

from __future__ import annotations

import math

__all__ = ["agents_for_service_level", "asa", "erlang_b", "erlang_c", "service_level"]


def erlang_b(a: float, n: int) -> float:
    """Blocking probability of n servers at load a (the stable recursion B(k) = aB(k-1)/(k + aB(k-1)))."""
    if a < 0 or n < 0:
        raise ValueError("load and agents must be non-negative")
    b = 1.0
    for k in range(1, n + 1):
        b = a * b / (k + a * b)
    return b


def erlang_c(a: float, n: int) -> float:
    """Probability that a caller waits (1.0 when the group is overloaded, n <= a)."""
    if n <= a:
        return 1.0
    b = erlang_b(a, n)
    return n * b / (n - a * (1.0 - b))


def service_level(a: float, n: int, aht_s: float, target_s: float) -> float:
    """Share of callers answered within ``target_s``."""
    if n <= a:
        return 0.0
    return max(0.0, 1.0 - erlang_c(a, n) * math.exp(-(n - a) * target_s / aht_s))


def asa(a: float, n: int, aht_s: float) -> float:
    """Average speed of answer (s) over all callers."""
    if n <= a:
        return math.inf
    return erlang_c(a, n) * aht_s / (n - a)


def agents_for_service_level(a: float, aht_s: float, target_s: float, goal: float) -> int:
    """Fewest agents whose service level reaches ``goal`` (e.g. 0.8 for 80/20)."""
    n = max(1, math.floor(a) + 1)
    while service_level(a, n, aht_s, target_s) < goal:
        n += 1
    return n
