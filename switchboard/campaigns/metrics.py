"""The campaigns' Prometheus metrics, registered in the service's one registry.

* ``switchboard_campaign_calls_total{campaign,result}``: attempts ended, by result (the
  results of ``campaigns.model.Result``), plus ``result="abandoned"`` for live answers
  that reached no agent (they also count under their own result);
* ``switchboard_campaign_dials_total{campaign}``: Originates sent (the dial rate is its ``rate()``;
  agent first: the agent's leg, whose answer dials the contact);
* ``switchboard_campaign_previews_total{campaign,outcome}``: previewed contacts the agent
  ``called`` or ``skipped``;
* ``switchboard_campaign_abandon_ratio{campaign}``: abandoned / answered live answers today
  (the figure the pacing holds at or under the campaign's limit);
* ``switchboard_campaign_calls_in_flight{campaign}``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import GaugeMetricFamily, Metric

from switchboard.campaigns.model import Result

__all__ = ["CampaignMetrics"]

RESULTS = frozenset({r.value for r in Result} | {"abandoned"})


class CampaignMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.calls = Counter("switchboard_campaign_calls", "Campaign attempts ended, by campaign and result "
                             "(result=abandoned: live answers that reached no agent).", ["campaign", "result"],
                             registry=registry)
        self.dials = Counter("switchboard_campaign_dials", "Campaign numbers dialled (Originates sent).",
                             ["campaign"], registry=registry)
        self.previews = Counter("switchboard_campaign_previews", "Previewed contacts, by campaign and what the "
                                "agent did (called, skipped).", ["campaign", "outcome"], registry=registry)
        self.abandon_ratios: Callable[[], Mapping[str, float]] = dict
        self.in_flight: Callable[[], Mapping[str, int]] = dict
        self._seen_dials: dict[str, int] = {}
        self.dials_source: Callable[[], Mapping[str, int]] = dict
        registry.register(_Live(self))

    def observe(self, campaign: str, result: str) -> None:
        self.calls.labels(campaign, result if result in RESULTS else "other").inc()

    def observe_preview(self, campaign: str, outcome: str) -> None:
        self.previews.labels(campaign, outcome).inc()

    def sync_dials(self) -> None:
        """Bring the dial counter up to the dialer's totals (read at scrape time)."""
        for cid, total in self.dials_source().items():
            seen = self._seen_dials.get(cid, 0)
            if total > seen:
                self.dials.labels(cid).inc(total - seen)
                self._seen_dials[cid] = total


class _Live:
    def __init__(self, m: CampaignMetrics) -> None:
        self._m = m

    def describe(self) -> Iterator[Metric]:
        return iter(())

    def collect(self) -> Iterator[Metric]:
        self._m.sync_dials()
        ratio = GaugeMetricFamily("switchboard_campaign_abandon_ratio",
                                  "Live answers with no agent / answered, per campaign, today (local day).",
                                  labels=["campaign"])
        for cid, value in sorted(self._m.abandon_ratios().items()):
            ratio.add_metric([cid], value)
        yield ratio
        flight = GaugeMetricFamily("switchboard_campaign_calls_in_flight", "Campaign calls ringing or talking now.",
                                   labels=["campaign"])
        for cid, n in sorted(self._m.in_flight().items()):
            flight.add_metric([cid], n)
        yield flight
