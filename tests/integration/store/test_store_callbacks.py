"""Owed callbacks read back from the real call timeline (switchboard.store.callbacks)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from switchboard.store.callbacks import open_callbacks


async def _events(conn: asyncpg.Connection, call_id: str, *evs: tuple[datetime, str, dict[str, Any]]) -> None:
    seq = await conn.fetchval("SELECT coalesce(max(seq), 0) FROM call_events WHERE call_id = $1", call_id)
    for ts, kind, data in evs:
        seq += 1
        await conn.execute("INSERT INTO call_events (call_id, seq, ts, kind, data) VALUES ($1, $2, $3, $4, $5::jsonb)",
                           call_id, seq, ts, kind, json.dumps(data))


def _req(cb: str, number: str, **extra: Any) -> dict[str, Any]:
    return {"callback_id": cb, "number": number, "topic": "social.pension", "province": "ha-noi",
            "language": "vi", "priority": 0, **extra}


async def test_owed_callbacks_are_the_requested_and_not_closed(db: asyncpg.Connection) -> None:
    now = datetime.now(UTC)
    t = now - timedelta(minutes=30)
    await _events(db, "c-open", (t, "queue.joined", {"topic": "social.pension"}),
                  (t + timedelta(seconds=40), "callback.requested", _req("cb-open", "0901")))
    await _events(db, "c-retry", (t + timedelta(seconds=1), "callback.requested", _req("cb-retry", "0902")),
                  (t + timedelta(minutes=5), "callback.completed",
                   {"callback_id": "cb-retry", "result": "no_answer", "attempt": 1, "final": False}))
    await _events(db, "c-answered", (t, "callback.requested", _req("cb-ans", "0903")),
                  (t + timedelta(minutes=2), "callback.completed", {"callback_id": "cb-ans", "result": "answered"}))
    await _events(db, "c-gaveup", (t, "callback.requested", _req("cb-final", "0904")),
                  (t + timedelta(minutes=9), "callback.completed",
                   {"callback_id": "cb-final", "result": "no_answer", "attempt": 3, "final": True}))
    # a second call from 0901 asked while cb-open was pending: it names cb-open, marked duplicate
    await _events(db, "c-dup", (t + timedelta(minutes=1), "callback.requested",
                                _req("cb-open", "0901", duplicate=True)))
    # after hours: no queue.joined, no province; and one without a callback id (older service)
    await _events(db, "c-night", (t + timedelta(minutes=2), "callback.requested",
                                  {"callback_id": "cb-night", "number": "0905", "topic": "general",
                                   "province": "", "language": "en"}))
    await _events(db, "c-noid", (t, "callback.requested", {"callback_id": None, "number": "0906"}))
    await _events(db, "c-old", (now - timedelta(days=5), "callback.requested", _req("cb-old", "0907")))

    owed = await open_callbacks(db, since=now - timedelta(days=2))
    # in line order: by when the caller joined the line (cb-open joined before cb-retry asked)
    assert [(c.callback_id, c.call_id, c.number, c.attempts) for c in owed] == [
        ("cb-open", "c-open", "0901", 0), ("cb-retry", "c-retry", "0902", 1), ("cb-night", "c-night", "0905", 0)]
    first, _, night = owed
    assert first.joined_at == t and first.requested_at == t + timedelta(seconds=40)   # place: the queue join
    assert (first.topic, first.province, first.language) == ("social.pension", "ha-noi", "vi")
    assert night.joined_at == night.requested_at and night.province is None and night.language == "en"
    wider = await open_callbacks(db, since=now - timedelta(days=7))
    assert [c.callback_id for c in wider] == ["cb-old", "cb-open", "cb-retry", "cb-night"]
