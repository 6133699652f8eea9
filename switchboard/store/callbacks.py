"""Callbacks still owed to callers, read back from the call timeline.

A callback is owed from its ``callback.requested`` event (a caller who pressed 1
while waiting, or one who asked after hours) until a ``callback.completed``
event closes it: ``result`` ``answered``, or any result marked ``final`` (the
last allowed attempt, expired, duplicate). The ACD keeps owed callbacks in
memory; this query is how they survive a restart of the service and how the
after-hours requests reach the line.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

import asyncpg

OPEN_CALLBACKS = """
WITH req AS (
    SELECT DISTINCT ON (data->>'callback_id') call_id, ts, data
    FROM call_events
    WHERE kind = 'callback.requested' AND ts >= $1
      AND data->>'callback_id' IS NOT NULL
      AND NOT coalesce((data->>'duplicate')::boolean, false)
    ORDER BY data->>'callback_id', ts
), done AS (
    SELECT data->>'callback_id' AS callback_id,
           count(*) AS attempts,
           bool_or(data->>'result' = 'answered' OR coalesce((data->>'final')::boolean, false)) AS closed
    FROM call_events
    WHERE kind = 'callback.completed' AND ts >= $1
    GROUP BY 1
)
SELECT req.call_id, req.ts AS requested_at, req.data, coalesce(done.attempts, 0) AS attempts,
       coalesce((SELECT min(q.ts) FROM call_events q WHERE q.call_id = req.call_id AND q.kind = 'queue.joined'),
                req.ts) AS joined_at
FROM req LEFT JOIN done ON done.callback_id = req.data->>'callback_id'
WHERE NOT coalesce(done.closed, false)
ORDER BY joined_at, req.ts
"""


@dataclass(frozen=True, slots=True)
class OpenCallback:
    callback_id: str
    call_id: str
    number: str
    topic: str
    province: str | None
    language: str
    requested_at: datetime
    joined_at: datetime          # when the caller joined the line (the request, after hours)
    attempts: int                # calls to the number made so far
    priority: int = 0


async def open_callbacks(conn: asyncpg.Connection, *, since: datetime, timeout: float = 10.0) -> list[OpenCallback]:
    """Callbacks requested at or after ``since`` and not closed yet, in line order (joined first)."""
    rows = await conn.fetch(OPEN_CALLBACKS, since, timeout=timeout)
    out: list[OpenCallback] = []
    for r in rows:
        data = r["data"] if isinstance(r["data"], dict) else json.loads(r["data"])
        number = str(data.get("number") or "")
        if not number:
            continue
        out.append(OpenCallback(
            callback_id=str(data["callback_id"]), call_id=r["call_id"], number=number,
            topic=str(data.get("topic") or "general"), province=data.get("province") or None,
            language=str(data.get("language") or "vi"), requested_at=r["requested_at"],
            joined_at=r["joined_at"], attempts=int(r["attempts"]),
            priority=int(data.get("priority") or 0)))
    return out


CALLBACKS_GRANTED = """
SELECT data->>'number' AS number, count(DISTINCT data->>'callback_id') AS n
FROM call_events
WHERE kind = 'callback.requested' AND ts >= $1
  AND data->>'callback_id' IS NOT NULL
  AND NOT coalesce((data->>'duplicate')::boolean, false)
GROUP BY 1
"""


async def callbacks_granted(conn: asyncpg.Connection, *, since: datetime, timeout: float = 10.0) -> dict[str, int]:
    """Callbacks granted since ``since`` per number as recorded (the daily cap's count after a restart)."""
    rows = await conn.fetch(CALLBACKS_GRANTED, since, timeout=timeout)
    return {str(r["number"] or ""): int(r["n"]) for r in rows}
