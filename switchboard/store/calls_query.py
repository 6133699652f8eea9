"""The call records as the API reads them: search ``calls``, read one call with its
``call_events`` timeline, where its recording was written, and a caller's last calls.

Plain queries over a connection (or pool) handed in; rows come back as asyncpg
records. Turning them into the API's answers and a database that is away into a 503
is the API's job (``switchboard/api/pg_services.py``); writing the rows is the
writer's (``store/writer.py``).
"""

from __future__ import annotations

from datetime import date
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg

from switchboard.store.pool import Db
from switchboard.store.reports import local_day_bounds

SUMMARY_COLUMNS = """
    c.call_id, c.started_at, c.queue_joined_at, c.answered_at, c.ended_at,
    COALESCE(c.caller, '') AS caller, c.dialed, c.topic, c.province, c.agent_id, c.outcome, c.talk_s,
    CASE WHEN c.queue_joined_at IS NULL THEN NULL
         WHEN c.answered_at IS NOT NULL
             THEN COALESCE(c.queue_wait_s, extract(epoch FROM c.answered_at - c.queue_joined_at))
         WHEN c.ended_at IS NOT NULL THEN extract(epoch FROM c.ended_at - c.queue_joined_at)
    END::float8 AS wait_s,
    COALESCE(c.recording_path, '') <> '' AS has_recording,
    ARRAY(SELECT x.agent FROM (SELECT e.data->>'agent_id' AS agent, min(e.seq) AS first_seq
                               FROM call_events e
                               WHERE e.call_id = c.call_id AND e.kind = 'call.answered'
                                 AND jsonb_typeof(e.data->'agent_id') = 'string'
                               GROUP BY 1) x
          ORDER BY x.first_seq) AS answered_by
"""


def number_patterns(number: str) -> list[str]:
    """LIKE patterns for a caller number search: the digits as typed, and the same number
    in the other Vietnamese form (0xxx <-> +84xxx)."""
    escaped = number.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    forms = [escaped]
    if escaped.startswith("+84") and len(escaped) > 3:
        forms.append("0" + escaped[3:])
    elif escaped.startswith("0") and len(escaped) > 1:
        forms.append("+84" + escaped[1:])
    return [f"%{f}%" for f in forms]


def call_filter(*, number: str | None, date_from: date | None, date_to: date | None,
                agent_id: str | None, outcome: str | None, tz: ZoneInfo) -> tuple[str, list[Any]]:
    """The WHERE clause (on ``calls c``) and its arguments for a call search."""
    conds: list[str] = []
    args: list[Any] = []

    def arg(value: Any) -> str:
        args.append(value)
        return f"${len(args)}"

    if number:
        conds.append(f"c.caller LIKE ANY({arg(number_patterns(number))}::text[])")
    if date_from is not None:
        conds.append(f"c.started_at >= {arg(local_day_bounds(date_from, date_from, tz)[0])}")
    if date_to is not None:
        conds.append(f"c.started_at < {arg(local_day_bounds(date_to, date_to, tz)[1])}")
    if agent_id:
        a = arg(agent_id)
        conds.append(f"(c.agent_id = {a} OR EXISTS (SELECT 1 FROM call_events e WHERE e.call_id = c.call_id"
                     f" AND e.kind = 'call.answered' AND e.data->>'agent_id' = {a}))")
    if outcome:
        conds.append(f"c.outcome = {arg(outcome)}")
    return (" AND ".join(conds) or "true"), args


async def search_calls(conn: asyncpg.Connection, where: str, args: list[Any], *, limit: int, offset: int,
                       timeout: float) -> tuple[int, list[asyncpg.Record]]:
    """(every match, one page of summary rows) newest first, read in one snapshot."""
    n = len(args)
    page_sql = (f"SELECT {SUMMARY_COLUMNS} FROM calls c WHERE {where} "
                f"ORDER BY c.started_at DESC NULLS LAST, c.call_id DESC LIMIT ${n + 1} OFFSET ${n + 2}")
    count_sql = f"SELECT count(*) FROM calls c WHERE {where}"
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        total = await conn.fetchval(count_sql, *args, timeout=timeout)
        rows = await conn.fetch(page_sql, *args, limit, offset, timeout=timeout)
    return int(total), rows


async def fetch_call(conn: asyncpg.Connection, call_id: str, *,
                     timeout: float) -> tuple[asyncpg.Record | None, list[asyncpg.Record]]:
    """(summary row or None, timeline rows by ``seq``) of one call, read in one snapshot."""
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        row = await conn.fetchrow(f"SELECT {SUMMARY_COLUMNS} FROM calls c WHERE c.call_id = $1", call_id,
                                  timeout=timeout)
        if row is None:
            return None, []
        events = await conn.fetch(
            "SELECT seq, ts, kind, data::text AS data FROM call_events WHERE call_id = $1 ORDER BY seq",
            call_id, timeout=timeout)
    return row, events


async def recording_path(db: Db, call_id: str, *, timeout: float) -> Any:
    """``calls.recording_path`` of one call as stored (None when there is no such call or none)."""
    return await db.fetchval("SELECT recording_path FROM calls WHERE call_id = $1", call_id, timeout=timeout)


async def recent_calls_of(db: Db, caller: str, *, timeout: float) -> list[asyncpg.Record]:
    """The caller's last six calls, newest first (the screen pop's history)."""
    return list(await db.fetch("SELECT call_id, started_at, topic, outcome, agent_id FROM calls "
                               "WHERE caller = $1 ORDER BY started_at DESC LIMIT 6", caller, timeout=timeout))


async def records_of_callers(conn: Any, numbers: list[str]) -> list[asyncpg.Record]:
    """Every ``calls`` row placed from one of ``numbers`` (a load run's check of its records)."""
    return list(await conn.fetch(
        "SELECT call_id, caller, outcome, ended_at FROM calls WHERE caller = ANY($1::text[])", numbers))


async def start_end_counts(conn: Any, call_ids: list[str]) -> list[asyncpg.Record]:
    """(call_id, kind, n): how many ``call.started`` and ``call.ended`` events each call has."""
    return list(await conn.fetch(
        "SELECT c.call_id, k.kind, count(e.call_id) AS n FROM unnest($1::text[]) AS c(call_id) "
        "CROSS JOIN (VALUES ('call.started'), ('call.ended')) AS k(kind) "
        "LEFT JOIN call_events e ON e.call_id = c.call_id AND e.kind = k.kind GROUP BY 1, 2", call_ids))
