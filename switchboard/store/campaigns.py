"""Campaigns in PostgreSQL: definitions and states, contacts, attempts, the do-not-call list.

The dialer's safety rests on :func:`claim`: one statement, run right before each Originate,
that closes contacts whose number is on the do-not-call list, picks the next due contact of
the campaign (``FOR UPDATE SKIP LOCKED``: two dialers never pick the same), counts the
attempt and writes the attempt row with no result. Partial unique indexes allow one open
attempt per contact and per number, so a number is never in two calls at once, and a
restart finds every call that may be in flight (:func:`open_attempts`).

The selections over ``participants`` are fixed, named, parameterised queries
(:data:`SELECTION_SQL`, the names and parameters of ``campaigns.model.SELECTIONS``):
nothing from the API becomes SQL text.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from switchboard.campaigns.model import Campaign, Result, State
from switchboard.campaigns.rules import Next
from switchboard.campaigns.targets import Contact

__all__ = ["SELECTION_SQL", "Claimed", "Held", "IllegalState", "OpenAttempt", "add_contacts", "add_dnc",
           "campaign_rows", "claim", "contact_report", "day_counts", "dnc_numbers", "finish_attempt",
           "get_campaign", "is_dnc", "mark_originated", "open_attempts", "preview_held", "preview_hold",
           "preview_release", "preview_skip", "result_counts", "select_participants", "set_state",
           "upsert_campaign"]

SELECTION_SQL: Mapping[str, str] = {
    "cards_expiring": """
        SELECT insurance_code, full_name, phone, province, health_card_valid_to::text AS card_valid_to
        FROM participants
        WHERE phone IS NOT NULL AND health_card_valid_to >= ($1::timestamptz AT TIME ZONE 'Asia/Ho_Chi_Minh')::date
          AND health_card_valid_to < ($1::timestamptz AT TIME ZONE 'Asia/Ho_Chi_Minh')::date + $2::int
        ORDER BY health_card_valid_to, insurance_code""",
    "contribution_stopped": """
        SELECT insurance_code, full_name, phone, province, last_contribution::text AS last_contribution
        FROM participants
        WHERE phone IS NOT NULL AND contribution_status IN ('stopped', 'paused')
          AND last_contribution < ($1::timestamptz AT TIME ZONE 'Asia/Ho_Chi_Minh')::date - make_interval(months => $2::int)
        ORDER BY last_contribution, insurance_code""",
}
_SELECTION_ARGS: Mapping[str, tuple[str, ...]] = {"cards_expiring": ("days",), "contribution_stopped": ("months",)}

#: Which state a campaign may go to from which (stop is final; finished only by the dialer).
_TRANSITIONS: Mapping[str, frozenset[str]] = {
    "running": frozenset({"paused", "stopped", "finished"}),
    "paused": frozenset({"running", "stopped", "finished"}),
    "stopped": frozenset(),
    "finished": frozenset({"running", "stopped"}),   # new contacts added: it may run again
}


class IllegalState(Exception):
    def __init__(self, campaign_id: str, current: str, wanted: str) -> None:
        super().__init__(f"campaign {campaign_id} is {current}: cannot go to {wanted}")
        self.current = current
        self.wanted = wanted


# ------------------------------------------------------------------ campaigns


async def upsert_campaign(conn: asyncpg.Connection, campaign: Campaign, *, source: str,
                          timeout: float = 10.0) -> bool:
    """Store a definition; True if new. A changed definition replaces the old one, the state stays."""
    row = await conn.fetchrow(
        """INSERT INTO campaigns (campaign_id, definition, source) VALUES ($1, $2::jsonb, $3)
           ON CONFLICT (campaign_id) DO UPDATE SET definition = EXCLUDED.definition, source = EXCLUDED.source,
               updated_at = now()
           RETURNING (xmax = 0) AS inserted""",
        campaign.campaign_id, json.dumps(campaign.to_json()), source, timeout=timeout)
    return bool(row["inserted"])


async def set_state(conn: asyncpg.Connection, campaign_id: str, state: State, *, by: str,
                    timeout: float = 10.0) -> str:
    """Move a campaign to ``state``; returns the previous one. ``LookupError`` / ``IllegalState``."""
    async with conn.transaction():
        current = await conn.fetchval("SELECT state FROM campaigns WHERE campaign_id = $1 FOR UPDATE",
                                      campaign_id, timeout=timeout)
        if current is None:
            raise LookupError(campaign_id)
        if current == state.value:
            return str(current)
        if state.value not in _TRANSITIONS[current]:
            raise IllegalState(campaign_id, current, state.value)
        await conn.execute("UPDATE campaigns SET state = $2, state_by = $3, updated_at = now() WHERE campaign_id = $1",
                           campaign_id, state.value, by, timeout=timeout)
        return str(current)


_CAMPAIGN_ROWS = """
SELECT c.campaign_id, c.definition, c.source, c.state, c.state_by, c.created_at, c.updated_at,
       count(ct.contact_id) AS contacts,
       count(ct.contact_id) FILTER (WHERE ct.status = 'pending') AS pending,
       count(ct.contact_id) FILTER (WHERE ct.status = 'dialing') AS dialing,
       count(ct.contact_id) FILTER (WHERE ct.status = 'done') AS done
FROM campaigns c LEFT JOIN campaign_contacts ct ON ct.campaign_id = c.campaign_id
WHERE $1::text IS NULL OR c.campaign_id = $1
GROUP BY c.campaign_id ORDER BY c.created_at, c.campaign_id
"""


async def campaign_rows(conn: asyncpg.Connection, *, campaign_id: str | None = None,
                        timeout: float = 10.0) -> list[dict[str, Any]]:
    """Campaigns with their contact counts (one, or all in creation order)."""
    rows = await conn.fetch(_CAMPAIGN_ROWS, campaign_id, timeout=timeout)
    out = []
    for r in rows:
        d = dict(r)
        d["definition"] = _json(d["definition"])
        out.append(d)
    return out


async def get_campaign(conn: asyncpg.Connection, campaign_id: str, *,
                       timeout: float = 10.0) -> tuple[Campaign, str] | None:
    """The stored definition and state, or None."""
    row = await conn.fetchrow("SELECT definition, state FROM campaigns WHERE campaign_id = $1", campaign_id,
                              timeout=timeout)
    if row is None:
        return None
    return Campaign.from_json(_json(row["definition"])), str(row["state"])


async def running_campaigns(conn: asyncpg.Connection, *, timeout: float = 10.0) -> list[Campaign]:
    rows = await conn.fetch("SELECT definition FROM campaigns WHERE state = 'running' ORDER BY created_at",
                            timeout=timeout)
    return [Campaign.from_json(_json(r["definition"])) for r in rows]


async def finish_if_done(conn: asyncpg.Connection, campaign_id: str, *, timeout: float = 10.0) -> bool:
    """A running campaign with no contact pending or dialling becomes finished; True if it did."""
    status = await conn.execute(
        """UPDATE campaigns SET state = 'finished', state_by = 'dialer', updated_at = now()
           WHERE campaign_id = $1 AND state = 'running'
             AND NOT EXISTS (SELECT 1 FROM campaign_contacts
                             WHERE campaign_id = $1 AND status IN ('pending', 'dialing'))""",
        campaign_id, timeout=timeout)
    return bool(status.endswith(" 1"))


# ------------------------------------------------------------------ contacts


async def add_contacts(conn: asyncpg.Connection, campaign_id: str, contacts: Sequence[Contact], *,
                       now: datetime, timeout: float = 60.0) -> int:
    """Add contacts (numbers already through the number policy); a number already in the
    campaign is skipped. Returns how many were added. A new contact is due at once, whatever
    the clock (``next_at`` = the epoch): retries come after it; ``now`` stamps the row."""
    if not contacts:
        return 0
    rows = await conn.fetch(
        """INSERT INTO campaign_contacts (campaign_id, number, participant_id, name, province, data, next_at,
                                          updated_at)
           SELECT $1, c.number, nullif(c.participant_id, ''), nullif(c.name, ''), nullif(c.province, ''),
                  c.data::jsonb, 'epoch'::timestamptz, $7
           FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::text[])
                AS c(number, participant_id, name, province, data)
           ON CONFLICT (campaign_id, number) DO NOTHING
           RETURNING contact_id""",
        campaign_id, [c.number for c in contacts], [c.participant_id for c in contacts],
        [c.name for c in contacts], [c.province for c in contacts],
        [json.dumps(dict(c.data)) for c in contacts], now, timeout=timeout)
    return len(rows)


async def select_participants(conn: asyncpg.Connection, name: str, params: Mapping[str, Any], *, now: datetime,
                              timeout: float = 60.0) -> list[dict[str, Any]]:
    """The rows of the named selection (``KeyError`` for an unknown name or a missing parameter)."""
    sql = SELECTION_SQL[name]
    args = [int(params[k]) for k in _SELECTION_ARGS[name]]
    return [dict(r) for r in await conn.fetch(sql, now, *args, timeout=timeout)]


# ------------------------------------------------------------------ the do-not-call list


async def add_dnc(conn: asyncpg.Connection, number: str, *, source: str, campaign_id: str | None = None,
                  attempt_id: str | None = None, now: datetime, timeout: float = 10.0) -> bool:
    """Put a (normalised) number on the list; True if it was not there. Its pending contacts close."""
    async with conn.transaction():
        status = await conn.execute(
            """INSERT INTO do_not_call (number, added_at, source, campaign_id, attempt_id)
               VALUES ($1, $2, $3, $4, $5) ON CONFLICT (number) DO NOTHING""",
            number, now, source, campaign_id, attempt_id, timeout=timeout)
        await conn.execute(
            """UPDATE campaign_contacts SET status = 'done', final_result = coalesce(final_result, 'do_not_call'),
                   updated_at = $2, preview_agent = NULL, preview_until = NULL
               WHERE number = $1 AND status = 'pending'""", number, now, timeout=timeout)
    return bool(status.endswith(" 1"))


async def is_dnc(conn: asyncpg.Connection, number: str, *, timeout: float = 10.0) -> bool:
    return bool(await conn.fetchval("SELECT EXISTS (SELECT 1 FROM do_not_call WHERE number = $1)", number,
                                    timeout=timeout))


async def dnc_numbers(conn: asyncpg.Connection, *, timeout: float = 10.0) -> list[dict[str, Any]]:
    rows = await conn.fetch("SELECT number, added_at, source, campaign_id FROM do_not_call ORDER BY added_at",
                            timeout=timeout)
    return [dict(r) for r in rows]


# ------------------------------------------------------------------ preview


@dataclass(frozen=True, slots=True)
class Held:
    """A contact one agent previews (holds) until ``until``."""

    campaign_id: str
    contact_id: int
    number: str
    name: str
    participant_id: str
    province: str
    data: Mapping[str, str]
    attempts: int
    last_result: str
    until: datetime


def _held(r: asyncpg.Record) -> Held:
    return Held(campaign_id=r["campaign_id"], contact_id=int(r["contact_id"]), number=r["number"],
                name=r["name"] or "", participant_id=r["participant_id"] or "", province=r["province"] or "",
                data={str(k): str(v) for k, v in _json(r["data"]).items()}, attempts=int(r["attempts"]),
                last_result=r["last_result"] or "", until=r["preview_until"])


_HELD_COLUMNS = "campaign_id, contact_id, number, name, participant_id, province, data, attempts, " \
                "last_result, preview_until"

_PREVIEW_TAKE = f"""
UPDATE campaign_contacts ct SET preview_agent = $2, preview_until = $4
WHERE ct.contact_id = (
    SELECT c.contact_id FROM campaign_contacts c
    WHERE c.campaign_id = ANY($1::text[]) AND c.status = 'pending' AND c.next_at <= $3
      AND (c.preview_until IS NULL OR c.preview_until <= $3)
      AND NOT EXISTS (SELECT 1 FROM do_not_call d WHERE d.number = c.number)
      AND NOT EXISTS (SELECT 1 FROM campaign_attempts a WHERE a.number = c.number AND a.result IS NULL)
    ORDER BY c.next_at, c.contact_id
    LIMIT 1
    FOR UPDATE SKIP LOCKED)
RETURNING {_HELD_COLUMNS}
"""


async def preview_hold(conn: asyncpg.Connection, agent_id: str, campaign_ids: Sequence[str], *, now: datetime,
                       until: datetime, timeout: float = 10.0) -> Held | None:
    """The contact ``agent_id`` previews: the one it already holds (in one of ``campaign_ids``),
    else the next due contact of those campaigns, held until ``until``. A contact is held by
    one agent at a time (an expired hold is free again), an agent holds one contact (a
    unique index); numbers on the do-not-call list or in a call are never handed out."""
    for _ in range(2):
        try:
            async with conn.transaction():
                await conn.execute(
                    """UPDATE campaign_contacts SET preview_agent = NULL, preview_until = NULL
                       WHERE preview_agent = $1
                         AND (preview_until <= $2 OR status <> 'pending' OR NOT (campaign_id = ANY($3::text[])))""",
                    agent_id, now, list(campaign_ids), timeout=timeout)
                row = await conn.fetchrow(
                    f"""SELECT {_HELD_COLUMNS} FROM campaign_contacts WHERE preview_agent = $1""", agent_id,
                    timeout=timeout)
                if row is None and campaign_ids:
                    row = await conn.fetchrow(_PREVIEW_TAKE, list(campaign_ids), agent_id, now, until,
                                              timeout=timeout)
                return _held(row) if row is not None else None
        except asyncpg.UniqueViolationError:
            continue     # the same agent asked twice at once: the other request's hold is the one
    return None


async def preview_release(conn: asyncpg.Connection, agent_id: str, *, timeout: float = 10.0) -> int:
    """The agent gives its held contact back (logged out, say); how many were released."""
    done = await conn.execute(
        "UPDATE campaign_contacts SET preview_agent = NULL, preview_until = NULL WHERE preview_agent = $1",
        agent_id, timeout=timeout)
    return int(done.split()[-1])


async def preview_held(conn: asyncpg.Connection, agent_id: str, contact_id: int, *, now: datetime,
                       timeout: float = 10.0) -> Held | None:
    """The contact if ``agent_id`` holds it now (not expired, still pending), else None."""
    row = await conn.fetchrow(
        f"""SELECT {_HELD_COLUMNS} FROM campaign_contacts
            WHERE contact_id = $2 AND preview_agent = $1 AND preview_until > $3 AND status = 'pending'""",
        agent_id, contact_id, now, timeout=timeout)
    return _held(row) if row is not None else None


async def preview_skip(conn: asyncpg.Connection, agent_id: str, contact_id: int, reason: str, *, now: datetime,
                       timeout: float = 10.0) -> bool:
    """The agent skips the contact it holds: done, final result ``skipped``, with the reason.
    False if the agent does not hold it (any more)."""
    row = await conn.fetchrow(
        """UPDATE campaign_contacts SET status = 'done', last_result = 'skipped', final_result = 'skipped',
               skip_reason = $3, preview_agent = NULL, preview_until = NULL, updated_at = $4
           WHERE contact_id = $2 AND preview_agent = $1 AND preview_until > $4 AND status = 'pending'
           RETURNING contact_id""", agent_id, contact_id, reason, now, timeout=timeout)
    return row is not None


# ------------------------------------------------------------------ attempts


@dataclass(frozen=True, slots=True)
class Claimed:
    attempt_id: str
    campaign_id: str
    contact_id: int
    number: str
    attempt_no: int
    name: str
    participant_id: str
    province: str
    data: Mapping[str, str]


_CLAIM = """
WITH dnc AS (
    UPDATE campaign_contacts ct SET status = 'done', final_result = 'do_not_call', updated_at = $2,
                                    preview_agent = NULL, preview_until = NULL
    WHERE ct.campaign_id = $1 AND ct.status = 'pending' AND ct.next_at <= $2
      AND EXISTS (SELECT 1 FROM do_not_call d WHERE d.number = ct.number)
    RETURNING ct.contact_id
), pick AS (
    SELECT ct.contact_id FROM campaign_contacts ct
    WHERE ct.campaign_id = $1 AND ct.status = 'pending' AND ct.next_at <= $2
      AND NOT EXISTS (SELECT 1 FROM do_not_call d WHERE d.number = ct.number)
      AND NOT EXISTS (SELECT 1 FROM campaign_attempts a WHERE a.number = ct.number AND a.result IS NULL)
      AND ct.contact_id NOT IN (SELECT contact_id FROM dnc)
      AND CASE WHEN $5::bigint IS NULL
               THEN ct.preview_until IS NULL OR ct.preview_until <= $2          -- not held by an agent
               ELSE ct.contact_id = $5 AND ct.preview_agent = $4 AND ct.preview_until > $2   -- held by $4
          END
    ORDER BY ct.next_at, ct.contact_id
    LIMIT 1
    FOR UPDATE SKIP LOCKED
), upd AS (
    UPDATE campaign_contacts ct SET status = 'dialing', attempts = ct.attempts + 1, updated_at = $2,
                                    preview_agent = NULL, preview_until = NULL
    FROM pick WHERE ct.contact_id = pick.contact_id
    RETURNING ct.*
)
INSERT INTO campaign_attempts (attempt_id, campaign_id, contact_id, number, attempt_no, agent_id, claimed_at)
SELECT $3, upd.campaign_id, upd.contact_id, upd.number, upd.attempts, $4, $2 FROM upd
RETURNING attempt_id, campaign_id, contact_id, number, attempt_no,
          (SELECT row_to_json(upd)::jsonb FROM upd) AS contact
"""


async def claim(conn: asyncpg.Connection, campaign_id: str, *, attempt_id: str, now: datetime,
                agent_id: str | None = None, contact_id: int | None = None, timeout: float = 10.0) -> Claimed | None:
    """Claim the next due contact of a campaign for one attempt (the row is written before any
    dial); None when no contact is due. Contacts whose number is on the do-not-call list close.

    ``contact_id`` (preview): that contact only, and only while ``agent_id`` holds it
    (:func:`preview_hold`); its hold ends with the claim. Without it, held contacts are skipped."""
    try:
        row = await conn.fetchrow(_CLAIM, campaign_id, now, attempt_id, agent_id, contact_id, timeout=timeout)
    except asyncpg.UniqueViolationError:
        return None   # the same number is in flight for another campaign right now
    if row is None:
        return None
    c = _json(row["contact"])
    return Claimed(attempt_id=row["attempt_id"], campaign_id=row["campaign_id"], contact_id=int(row["contact_id"]),
                   number=row["number"], attempt_no=int(row["attempt_no"]), name=c.get("name") or "",
                   participant_id=c.get("participant_id") or "", province=c.get("province") or "",
                   data={str(k): str(v) for k, v in (c.get("data") or {}).items()})


async def mark_originated(conn: asyncpg.Connection, attempt_id: str, *, now: datetime,
                          timeout: float = 10.0) -> None:
    """Asterisk accepted the Originate: the number may be ringing (a restart will not give it back)."""
    await conn.execute("UPDATE campaign_attempts SET originated_at = $2 WHERE attempt_id = $1", attempt_id, now,
                       timeout=timeout)


async def finish_attempt(conn: asyncpg.Connection, attempt_id: str, result: Result, nxt: Next, *, now: datetime,
                         answered_at: datetime | None = None, abandoned: bool = False, agent_id: str | None = None,
                         detail: str = "", timeout: float = 10.0) -> bool:
    """Close an open attempt with its result and move its contact on (retry at ``nxt.retry_at`` or
    done with ``nxt.final``), in one transaction. False if the attempt was already closed
    (idempotent: a replayed hang-up changes nothing)."""
    async with conn.transaction():
        row = await conn.fetchrow(
            """UPDATE campaign_attempts SET result = $2, ended_at = $3, answered_at = coalesce($4, answered_at),
                   abandoned = $5, agent_id = coalesce($6, agent_id), detail = nullif($7, '')
               WHERE attempt_id = $1 AND result IS NULL RETURNING contact_id""",
            attempt_id, result.value, now, answered_at, abandoned, agent_id, detail, timeout=timeout)
        if row is None:
            return False
        uncount = 1 if result is Result.NOT_DIALLED else 0
        if nxt.done:
            await conn.execute(
                """UPDATE campaign_contacts SET status = 'done', attempts = attempts - $2, last_result = $3,
                       final_result = $4, updated_at = $5 WHERE contact_id = $1""",
                row["contact_id"], uncount, result.value, (nxt.final or result).value, now, timeout=timeout)
        else:
            await conn.execute(
                """UPDATE campaign_contacts SET status = 'pending', attempts = attempts - $2, last_result = $3,
                       next_at = $4, updated_at = $5 WHERE contact_id = $1""",
                row["contact_id"], uncount, result.value, nxt.retry_at or now, now, timeout=timeout)
    return True


@dataclass(frozen=True, slots=True)
class OpenAttempt:
    attempt_id: str
    campaign_id: str
    contact_id: int
    number: str
    attempt_no: int
    claimed_at: datetime
    originated_at: datetime | None
    answered_at: datetime | None
    agent_id: str | None


async def open_attempts(conn: asyncpg.Connection, *, timeout: float = 10.0) -> list[OpenAttempt]:
    """Attempts with no result yet (after a restart: calls that may be in flight)."""
    rows = await conn.fetch(
        """SELECT attempt_id, campaign_id, contact_id, number, attempt_no, claimed_at, originated_at, answered_at,
                  agent_id FROM campaign_attempts WHERE result IS NULL ORDER BY claimed_at""", timeout=timeout)
    return [OpenAttempt(**dict(r)) for r in rows]


async def mark_answered(conn: asyncpg.Connection, attempt_id: str, *, now: datetime, timeout: float = 10.0) -> None:
    await conn.execute("UPDATE campaign_attempts SET answered_at = coalesce(answered_at, $2) WHERE attempt_id = $1",
                       attempt_id, now, timeout=timeout)


async def day_counts(conn: asyncpg.Connection, campaign_id: str, *, since: datetime,
                     timeout: float = 10.0) -> tuple[int, int]:
    """(answered, abandoned) live answers of the campaign since ``since`` (the local day's start)."""
    row = await conn.fetchrow(
        """SELECT count(*) FILTER (WHERE answered_at IS NOT NULL) AS answered,
                  count(*) FILTER (WHERE abandoned) AS abandoned
           FROM campaign_attempts WHERE campaign_id = $1 AND claimed_at >= $2""", campaign_id, since,
        timeout=timeout)
    return int(row["answered"]), int(row["abandoned"])


# ------------------------------------------------------------------ reports


async def result_counts(conn: asyncpg.Connection, campaign_id: str, *, timeout: float = 10.0) -> dict[str, int]:
    """Attempts per result (open attempts under ``in_flight``) and abandoned live answers."""
    rows = await conn.fetch(
        """SELECT coalesce(result, 'in_flight') AS result, count(*) AS n, count(*) FILTER (WHERE abandoned) AS ab
           FROM campaign_attempts WHERE campaign_id = $1 GROUP BY 1""", campaign_id, timeout=timeout)
    out = {str(r["result"]): int(r["n"]) for r in rows}
    out["abandoned"] = sum(int(r["ab"]) for r in rows)
    return out


CONTACT_REPORT_COLUMNS = ("contact_id", "number", "name", "participant_id", "status", "attempts", "final_result",
                          "last_result", "next_at", "last_attempt_at", "answered", "abandoned", "agent_id",
                          "skip_reason")


async def contact_report(conn: asyncpg.Connection, campaign_id: str, *, timeout: float = 30.0) -> list[tuple[Any, ...]]:
    """One row per contact (columns :data:`CONTACT_REPORT_COLUMNS`), in contact order."""
    rows = await conn.fetch(
        """SELECT ct.contact_id, ct.number, coalesce(ct.name, '') AS name, coalesce(ct.participant_id, '') AS pid,
                  ct.status, ct.attempts, coalesce(ct.final_result, '') AS final_result,
                  coalesce(ct.last_result, '') AS last_result,
                  CASE WHEN ct.status = 'pending' THEN ct.next_at END AS next_at,
                  max(a.claimed_at) AS last_attempt_at,
                  count(a.answered_at) AS answered, count(*) FILTER (WHERE a.abandoned) AS abandoned,
                  (array_agg(a.agent_id ORDER BY a.attempt_no DESC) FILTER (WHERE a.agent_id IS NOT NULL))[1]
                      AS agent_id,
                  coalesce(ct.skip_reason, '') AS skip_reason
           FROM campaign_contacts ct LEFT JOIN campaign_attempts a ON a.contact_id = ct.contact_id
           WHERE ct.campaign_id = $1 GROUP BY ct.contact_id ORDER BY ct.contact_id""", campaign_id, timeout=timeout)
    return [tuple(r.values()) for r in rows]


def _json(v: Any) -> dict[str, Any]:
    if isinstance(v, dict):
        return v
    out: dict[str, Any] = json.loads(v) if v else {}
    return out


