"""The SQL of leadership (``switchboard.ha``): the session-level advisory lock on the
leader's own connection, and the leader epoch (table ``leader_epoch``, one row)."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg


@dataclass(frozen=True, slots=True)
class LeaderRow:
    epoch: int
    instance: str
    api_url: str


async def try_lock(conn: asyncpg.Connection, key: int, *, timeout: float) -> bool:
    """Take the session-level advisory lock ``key`` if free (never waits for it)."""
    return bool(await conn.fetchval("SELECT pg_try_advisory_lock($1)", key, timeout=timeout))


async def probe(conn: asyncpg.Connection, *, timeout: float) -> None:
    """A round trip on the lock's connection (raises when the session is gone)."""
    await conn.fetchval("SELECT 1", timeout=timeout)


async def bump_epoch(conn: asyncpg.Connection, *, instance: str, api_url: str, timeout: float,
                     at_least: int = 1) -> int:
    """The next epoch (never below ``at_least``: above the one Asterisk's heartbeat carries),
    recorded with who leads from now on."""
    epoch = await conn.fetchval(
        "UPDATE leader_epoch SET epoch = GREATEST(epoch + 1, $3), instance = $1, api_url = $2, since = now() "
        "WHERE id = 1 RETURNING epoch", instance, api_url, at_least, timeout=timeout)
    if epoch is None:   # the row was deleted by hand: start again
        epoch = await conn.fetchval(
            "INSERT INTO leader_epoch (id, epoch, instance, api_url) VALUES (1, GREATEST(1, $3), $1, $2) "
            "ON CONFLICT (id) DO UPDATE SET epoch = GREATEST(leader_epoch.epoch + 1, $3), instance = $1, "
            "api_url = $2, since = now() RETURNING epoch", instance, api_url, at_least, timeout=timeout)
    return int(epoch)


async def mark_released(conn: asyncpg.Connection, epoch: int, *, timeout: float) -> bool:
    """A leader handing over cleanly (its gate closed, its lock still held): record that
    ``epoch`` let go of the lead, so the next leader skips the take-over grace."""
    done = await conn.fetchval(
        "UPDATE leader_epoch SET released_epoch = $1 WHERE id = 1 AND epoch = $1 RETURNING 1", epoch,
        timeout=timeout)
    return done is not None


async def released_cleanly(conn: asyncpg.Connection, *, timeout: float) -> LeaderRow | None:
    """The leader before us if it handed over cleanly (its epoch is the table's and it marked
    its release), else None (it crashed, was cut from PostgreSQL, or was fenced)."""
    row = await conn.fetchrow("SELECT epoch, instance, api_url FROM leader_epoch "
                              "WHERE id = 1 AND epoch > 0 AND released_epoch = epoch", timeout=timeout)
    return None if row is None else LeaderRow(int(row["epoch"]), row["instance"], row["api_url"])


async def current_leader(conn: asyncpg.Connection, *, timeout: float) -> LeaderRow | None:
    row = await conn.fetchrow("SELECT epoch, instance, api_url FROM leader_epoch WHERE id = 1", timeout=timeout)
    return None if row is None else LeaderRow(int(row["epoch"]), row["instance"], row["api_url"])


async def calls_started(conn: asyncpg.Connection, call_ids: list[str], *, timeout: float,
                        kind: str = "call.started") -> set[str]:
    """Which of ``call_ids`` already have their ``call.started`` (or ``kind``) event stored."""
    rows = await conn.fetch("SELECT DISTINCT call_id FROM call_events WHERE call_id = ANY($1::text[]) "
                            "AND kind = $2", call_ids, kind, timeout=timeout)
    return {r["call_id"] for r in rows}


async def stored_marks(conn: asyncpg.Connection, call_id: str, *, kind: str, timeout: float) -> tuple[bool, int]:
    """Whether ``call_id`` has a ``kind`` event stored, and its highest stored ``seq`` (0: none);
    one pass over the call's events (the ``(call_id, seq)`` index)."""
    row = await conn.fetchrow("SELECT coalesce(bool_or(kind = $2), false) AS has, coalesce(max(seq), 0) AS seq "
                              "FROM call_events WHERE call_id = $1", call_id, kind, timeout=timeout)
    return bool(row["has"]), int(row["seq"])


@dataclass(frozen=True, slots=True)
class OpenRecord:
    call_id: str
    answered: bool
    queued: bool
    callback: bool
    #: the flow's last closed step (``ivr.step``): (flow, node, kind); empty when none is stored
    last_step: tuple[str, str, str] = ("", "", "")


async def open_records(conn: asyncpg.Connection, *, max_age_s: float, timeout: float) -> list[OpenRecord]:
    """Records of callers' channels started within ``max_age_s`` and never ended, with each one's
    last IVR step (an index probe of ``call_events`` per record)."""
    rows = await conn.fetch(
        "SELECT c.call_id, c.answered_at IS NOT NULL AS answered, c.queue_joined_at IS NOT NULL AS queued, "
        "c.callback_id IS NOT NULL AS callback, s.data->>'flow' AS flow, s.data->>'node' AS node, "
        "s.data->>'kind' AS kind FROM calls c LEFT JOIN LATERAL (SELECT e.data FROM call_events e "
        "WHERE e.call_id = c.call_id AND e.kind = 'ivr.step' ORDER BY e.seq DESC LIMIT 1) s ON true "
        "WHERE c.ended_at IS NULL AND c.started_at IS NOT NULL "
        "AND c.started_at > now() - make_interval(secs => $1) AND coalesce(c.channel, '') <> ''",
        max_age_s, timeout=timeout)
    return [OpenRecord(r["call_id"], r["answered"], r["queued"], r["callback"],
                       (r["flow"] or "", r["node"] or "", r["kind"] or "")) for r in rows]
