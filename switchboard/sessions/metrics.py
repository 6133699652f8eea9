"""Q&A sessions' metrics, read at scrape time from the service's rooms:
``switchboard_session_participants{session}`` (callers in the conference now),
``switchboard_session_hands_waiting{session}`` (raised hands waiting now) and
``switchboard_session_hands_raised_total{session}`` (every ``*1`` since the start)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

__all__ = ["register"]


class _Sessions:
    def __init__(self, figures: Callable[[], Mapping[str, tuple[int, int]]],
                 totals: Callable[[], Mapping[str, int]]) -> None:
        self._figures = figures
        self._totals = totals

    def describe(self) -> Iterator[Metric]:
        return iter(())

    def collect(self) -> Iterator[Metric]:
        now = dict(self._figures())
        people = GaugeMetricFamily("switchboard_session_participants",
                                   "Callers in a Q&A session's conference now (the moderator not counted).",
                                   labels=["session"])
        hands = GaugeMetricFamily("switchboard_session_hands_waiting",
                                  "Raised hands waiting for the floor in a Q&A session now.", labels=["session"])
        for sid, (n, h) in sorted(now.items()):
            people.add_metric([sid], n)
            hands.add_metric([sid], h)
        yield people
        yield hands
        total = CounterMetricFamily("switchboard_session_hands_raised",
                                    "Hands raised (*1) in a Q&A session since the service started.",
                                    labels=["session"])
        for sid, t in sorted(self._totals().items()):
            total.add_metric([sid], t)
        yield total


def register(registry: CollectorRegistry, service: Any) -> None:
    registry.register(_Sessions(service.figures, lambda: dict(service.hands_raised_total)))
