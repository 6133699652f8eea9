"""Q&A sessions in PostgreSQL: definitions (``qa_sessions``) and attendance (``qa_attendance``).

One attendance row per stay of a caller (or of the moderator's leg) in the conference:
inserted when the caller joins, completed when they leave (hands raised, floor given,
why they left), how they came in (``joined_via``: the menu, an invitation, the moderator's leg).
The hands a caller raised are written as they are raised (a restarted service reads them back).
Migrations ``0016_sessions.sql``, ``0020_session_invites.sql``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from switchboard.sessions.model import Session

__all__ = ["InvitedLeg", "OpenStay", "SessionRow", "attendance", "end_session", "figures", "get_session",
           "insert_session", "invited_leg", "join", "leave", "open_stays", "participant_phones", "session_rows",
           "set_recording", "update_session"]


@dataclass(frozen=True, slots=True)
class SessionRow:
    session: Session
    source: str
    ended_at: datetime | None
    ended_by: str | None
    recording: str | None


def _row(r: asyncpg.Record) -> SessionRow:
    definition = r["definition"]
    if isinstance(definition, str):
        definition = json.loads(definition)
    return SessionRow(Session.from_json(definition), r["source"], r["ended_at"], r["ended_by"], r["recording"])


async def session_rows(conn: Any) -> list[SessionRow]:
    rows = await conn.fetch("SELECT definition, source, ended_at, ended_by, recording FROM qa_sessions "
                            "ORDER BY starts_at, session_id", timeout=10)
    return [_row(r) for r in rows]


async def get_session(conn: Any, session_id: str) -> SessionRow | None:
    r = await conn.fetchrow("SELECT definition, source, ended_at, ended_by, recording FROM qa_sessions "
                            "WHERE session_id = $1", session_id, timeout=10)
    return _row(r) if r is not None else None


async def insert_session(conn: Any, s: Session, *, source: str) -> bool:
    """Store a new session; False when one with that id exists (left as it is)."""
    done = await conn.execute(
        "INSERT INTO qa_sessions (session_id, definition, source, starts_at, ends_at, moderator) "
        "VALUES ($1, $2::jsonb, $3, $4, $5, $6) ON CONFLICT (session_id) DO NOTHING",
        s.session_id, json.dumps(s.to_json()), source, s.starts, s.ends, s.moderator, timeout=10)
    return bool(done.endswith(" 1"))


async def update_session(conn: Any, s: Session) -> bool:
    """Replace a session's definition (not once it has ended); False when absent or ended."""
    done = await conn.execute(
        "UPDATE qa_sessions SET definition = $2::jsonb, starts_at = $3, ends_at = $4, moderator = $5 "
        "WHERE session_id = $1 AND ended_at IS NULL",
        s.session_id, json.dumps(s.to_json()), s.starts, s.ends, s.moderator, timeout=10)
    return bool(done.endswith(" 1"))


async def end_session(conn: Any, session_id: str, *, at: datetime, by: str) -> None:
    await conn.execute("UPDATE qa_sessions SET ended_at = $2, ended_by = $3 WHERE session_id = $1 "
                       "AND ended_at IS NULL", session_id, at, by, timeout=10)


async def set_recording(conn: Any, session_id: str, path: str) -> None:
    await conn.execute("UPDATE qa_sessions SET recording = $2 WHERE session_id = $1", session_id, path, timeout=10)


async def join(conn: Any, *, session_id: str, call_id: str, caller: str, role: str, channel: str,
               joined_at: datetime, via: str | None = None, participant_id: str = "") -> None:
    await conn.execute(
        "INSERT INTO qa_attendance (session_id, call_id, caller, role, channel, joined_at, joined_via, participant_id) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (session_id, call_id, joined_at) DO NOTHING",
        session_id, call_id, caller or None, role, channel, joined_at, via, participant_id or None, timeout=10)


async def figures(conn: Any, *, session_id: str, call_id: str, joined_at: datetime, hands: int,
                  hand_raised_at: datetime | None, unmuted_at: datetime | None, unmuted_s: float) -> None:
    """A stay's figures as they are now (a hand raised, the floor given or taken back), before
    the leave completes them: a restarted service takes them over."""
    await conn.execute(
        "UPDATE qa_attendance SET hands = $4, hand_raised_at = coalesce(hand_raised_at, $5), "
        "unmuted_at = coalesce(unmuted_at, $6), unmuted_s = $7 "
        "WHERE session_id = $1 AND call_id = $2 AND joined_at = $3 AND left_at IS NULL",
        session_id, call_id, joined_at, hands, hand_raised_at, unmuted_at, unmuted_s, timeout=10)


async def leave(conn: Any, *, session_id: str, call_id: str, joined_at: datetime, left_at: datetime,
                reason: str, hand_raised_at: datetime | None, hands: int, unmuted_at: datetime | None,
                unmuted_s: float) -> None:
    await conn.execute(
        "UPDATE qa_attendance SET left_at = $4, left_reason = $5, hand_raised_at = $6, hands = $7, "
        "unmuted_at = $8, unmuted_s = $9 WHERE session_id = $1 AND call_id = $2 AND joined_at = $3",
        session_id, call_id, joined_at, left_at, reason, hand_raised_at, hands, unmuted_at, unmuted_s, timeout=10)


@dataclass(frozen=True, slots=True)
class OpenStay:
    """A stay not closed yet (a previous process's, read back at start)."""

    joined_at: datetime
    hands: int = 0
    hand_raised_at: datetime | None = None
    unmuted_at: datetime | None = None
    unmuted_s: float = 0.0
    via: str | None = None
    participant_id: str = ""


async def open_stays(conn: Any, session_id: str) -> dict[str, OpenStay]:
    """call id -> the stay not closed yet (a previous process's, at start)."""
    rows = await conn.fetch("SELECT call_id, joined_at, hands, hand_raised_at, unmuted_at, unmuted_s, joined_via, "
                            "participant_id FROM qa_attendance WHERE session_id = $1 AND left_at IS NULL",
                            session_id, timeout=10)
    return {r["call_id"]: OpenStay(r["joined_at"], int(r["hands"]), r["hand_raised_at"], r["unmuted_at"],
                                   float(r["unmuted_s"]), r["joined_via"], r["participant_id"] or "") for r in rows}


@dataclass(frozen=True, slots=True)
class InvitedLeg:
    """The registered participant a campaign leg called (its attempt id is the leg's uniqueid)."""

    number: str
    participant_id: str
    campaign_id: str


async def invited_leg(conn: Any, attempt_id: str) -> InvitedLeg | None:
    r = await conn.fetchrow(
        "SELECT a.number, c.participant_id, a.campaign_id FROM campaign_attempts a "
        "JOIN campaign_contacts c USING (contact_id) WHERE a.attempt_id = $1", attempt_id, timeout=10)
    return InvitedLeg(r["number"], r["participant_id"] or "", r["campaign_id"]) if r is not None else None


async def participant_phones(conn: Any, codes: list[str]) -> list[dict[str, Any]]:
    """The registered participants (insurance codes) as ``participants`` knows them: code, name, phone."""
    rows = await conn.fetch("SELECT insurance_code, full_name, phone FROM participants "
                            "WHERE insurance_code = ANY($1::text[]) ORDER BY insurance_code", codes, timeout=10)
    return [dict(r) for r in rows]


async def attendance(conn: Any, session_id: str) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        "SELECT call_id, caller, role, channel, joined_via, participant_id, joined_at, left_at, hand_raised_at, hands, "
        "unmuted_at, unmuted_s, left_reason, EXTRACT(EPOCH FROM (coalesce(left_at, now()) - joined_at))::float8 AS seconds "
        "FROM qa_attendance WHERE session_id = $1 ORDER BY joined_at, attendance_id", session_id, timeout=10)
    out: list[dict[str, Any]] = []
    for r in rows:
        d = dict(r)
        for k in ("joined_at", "left_at", "hand_raised_at", "unmuted_at"):
            d[k] = d[k].isoformat() if d[k] is not None else None
        out.append(d)
    return out
