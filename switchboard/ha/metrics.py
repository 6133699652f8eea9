"""Prometheus figures of leadership: ``switchboard_leader`` (1 on the instance that leads),
``switchboard_leader_epoch`` (the epoch it leads with; on a standby the epoch the heartbeat
in Asterisk carries), ``switchboard_failovers_total`` (take-overs by this instance) and
``switchboard_takeover_seconds`` (lock acquired -> acting, the last take-over)."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge


def register(leadership: Any, registry: CollectorRegistry) -> None:
    Gauge("switchboard_leader", "1 when this instance leads (active/standby), else 0.",
          registry=registry).set_function(lambda: 1.0 if leadership.acting() else 0.0)
    Gauge("switchboard_leader_epoch", "The leader epoch this instance leads with (a standby: the one it sees).",
          registry=registry).set_function(lambda: float(leadership.epoch if leadership.acting()
                                                        else leadership.seen_epoch))
    failovers = Counter("switchboard_failovers", "Times this instance took the lead.", registry=registry)
    failovers.inc(leadership.takeovers)

    async def count() -> None:
        failovers.inc()

    leadership.on_lead.append(count)
    Gauge("switchboard_leader_lock", "1 when this instance leads holding its PostgreSQL lock, else 0.",
          registry=registry).set_function(lambda: 1.0 if leadership.holds_lock() else 0.0)
    rewritten = Counter("switchboard_heartbeat_rewritten",
                        "Lower leader epochs found in the heartbeat by this leader and written over.",
                        registry=registry)
    leadership.on_rewritten.append(rewritten.inc)
    Gauge("switchboard_takeover_seconds", "Lock acquired to acting, at this instance's last take-over.",
          registry=registry).set_function(lambda: float(leadership.takeover_s or 0.0))
