"""Registered participants called into a Q&A session at its start: the session's invitation
campaign (docs/sessions.md, docs/campaigns.md).

Owns the link between a session and its campaign, nothing of the dialling: a session with an
``invite`` block gets, at its start, a campaign ``qa-<session>`` of the campaigns part (mode
``message``, flow ``session-invite``) whose contacts are the registered participants (their
phone from ``participants`` by insurance code, or the numbers given), each through the number
policy at import like every campaign contact. The campaign dialer does the rest as for any
campaign: the attempt row claimed before the Originate (one call in flight per number, the
do-not-call list checked last), the calling window, the retries with their spacing up to
``attempts``, an attempt left open by a dead process never dialled again. The flow plays "this
is the care center, joining you to the live session on <title>" and its ``conference`` node
takes a seat like key 5 does. When the session ends the campaign is stopped: nobody is called
into a session that is over.

Only the campaigns' public service (``PgCampaignService``: create, import, state) is used.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
from collections.abc import Iterable
from typing import Any

from switchboard.api.services import ConflictError, NotFoundError
from switchboard.sessions.model import Session
from switchboard.store import sessions as ss
from switchboard.store.pool import Db, acquire

__all__ = ["INVITE_FLOW", "SessionInvites", "invite_campaign_id"]

log = logging.getLogger("switchboard.sessions")

#: The flow of every invitation campaign (ivr_flows/session-invite.yaml).
INVITE_FLOW = "session-invite"


def invite_campaign_id(session_id: str) -> str:
    """``qa-<session>``; a long session id is shortened with a digest (campaign ids: 48 at most)."""
    cid = f"qa-{session_id}"
    if len(cid) <= 48:
        return cid
    return f"qa-{session_id[:37]}-{hashlib.sha1(session_id.encode()).hexdigest()[:7]}"


def invite_definition(s: Session) -> str:
    """The invitation campaign's YAML (the campaigns' own format, validated by their loader)."""
    inv = s.invite
    lines = {
        "campaign": invite_campaign_id(s.session_id),
        "description": f"Invitations to the live Q&A session {s.session_id}: {s.title}"[:300],
        "flow": INVITE_FLOW,
        "mode": "message",
        "topic": s.topic,
        "window": inv.window,
        "public_holidays": inv.public_holidays,
        "max_attempts": inv.attempts,
        "retry": {"no_answer": inv.retry_s, "busy": inv.retry_s, "failed": inv.retry_s},
        "ring_seconds": inv.ring_s,
        "targets": {"csv": "registered.csv"},
    }
    return "".join(f"{k}: {json.dumps(v, ensure_ascii=False)}\n" for k, v in lines.items())


class SessionInvites:
    """The invitation campaigns of the sessions (``SessionService.invites``)."""

    def __init__(self, *, campaigns: Any, pool: Db, policy: Any, context: str, timeout: float = 10.0) -> None:
        self.campaigns = campaigns        # PgCampaignService
        self._pool = pool
        self.policy = policy              # the one number policy (to compare numbers already in the room)
        self.context = context            # where answered campaign legs arrive (campaigns.context)
        self._timeout = timeout

    async def contacts(self, s: Session, *, exclude: Iterable[str] = ()) -> tuple[str, list[str]]:
        """The registered participants as the campaign's CSV (number, name, participant_id and the
        flow's ``session`` / ``session_prompt``), and the problems (unknown code, no phone)."""
        problems: list[str] = []
        rows: list[tuple[str, str, str]] = []
        codes = list(dict.fromkeys(s.invite.participants))
        if codes:
            async with acquire(self._pool, timeout=self._timeout) as conn:
                found = {r["insurance_code"]: r for r in await ss.participant_phones(conn, codes)}
            for code in codes:
                r = found.get(code)
                if r is None:
                    problems.append(f"participant {code}: not in participants")
                elif not r["phone"]:
                    problems.append(f"participant {code}: no phone")
                else:
                    rows.append((r["phone"], r["full_name"] or "", code))
        rows.extend((n, "", "") for n in s.invite.numbers)
        skip = {d.number for d in (self.policy.check(n) for n in exclude) if d.number}
        out = io.StringIO()
        w = csv.writer(out, lineterminator="\n")
        w.writerow(["number", "name", "participant_id", "session", "session_prompt"])
        for number, name, code in rows:
            d = self.policy.check(number)
            if d.number and d.number in skip:
                problems.append(f"{number}: already in the session")
                continue
            w.writerow([number, name, code, s.session_id, s.title_prompt])
        return out.getvalue(), problems

    async def begin(self, s: Session, *, in_room: Iterable[str] = ()) -> dict[str, Any]:
        """At the session's start (again after a restart): the campaign created with the
        registered participants (or new ones imported), and running. Nobody already called is
        called again (a contact is once per campaign; its attempts are the campaign's)."""
        from switchboard.campaigns.model import State

        cid = invite_campaign_id(s.session_id)
        by = f"session {s.session_id}"
        csv_text, problems = await self.contacts(s, exclude=in_room)
        for p in problems:
            log.warning("session %s: registered %s", s.session_id, p)
        try:
            view = await self.campaigns.get(cid)
        except NotFoundError:
            view = await self.campaigns.create(invite_definition(s), contacts_csv=csv_text, by=by)
            log.info("session %s: invitation campaign %s created: %d to call, %d refused by the number policy",
                     s.session_id, cid, view.imported.added if view.imported else 0,
                     view.imported.refused if view.imported else 0)
        else:
            if view.state in ("paused", "running", "finished"):    # stopped: the session is over
                added = await self.campaigns.import_contacts(cid, csv_text, by=by)
                if added.added:
                    log.info("session %s: %d registered participant(s) added to %s", s.session_id, added.added, cid)
                    if view.state == "finished":                   # every earlier one done: it runs again
                        view = await self.campaigns.set_state(cid, State.RUNNING, by=by)
        if view.state == "paused":
            view = await self.campaigns.set_state(cid, State.RUNNING, by=by)
            log.info("session %s: calling the registered participants (%s)", s.session_id, cid)
        return {"campaign": cid, "state": view.state, "problems": problems}

    async def end(self, session_id: str) -> None:
        """The session is over: its campaign stops (calls in flight finish; their flow finds the
        session over and says goodbye)."""
        from switchboard.campaigns.model import State

        cid = invite_campaign_id(session_id)
        try:
            view = await self.campaigns.get(cid)
            if view.state in ("paused", "running", "finished"):
                await self.campaigns.set_state(cid, State.STOPPED, by=f"session {session_id}")
                log.info("session %s over: invitation campaign %s stopped", session_id, cid)
        except (NotFoundError, ConflictError):
            return

    async def status(self, session_id: str) -> dict[str, Any] | None:
        """The invitation campaign's state and counts (None: the session invites nobody yet)."""
        try:
            view = await self.campaigns.get(invite_campaign_id(session_id))
        except NotFoundError:
            return None
        return {"campaign": view.campaign_id, "state": view.state, "contacts": view.contacts,
                "pending": view.pending, "dialing": view.dialing, "done": view.done}

    async def arrival(self, session: Any) -> ss.InvitedLeg | None:
        """The registered participant an answered invitation leg called (None: not an invitation)."""
        if (session.env.get("agi_context") or "") != self.context:
            return None
        async with acquire(self._pool, timeout=self._timeout) as conn:
            return await ss.invited_leg(conn, session.uniqueid)

    async def leg(self, call_id: str) -> ss.InvitedLeg | None:
        """The same for a leg read back from ConfBridge after a restart (its call id is the attempt id)."""
        async with acquire(self._pool, timeout=self._timeout) as conn:
            return await ss.invited_leg(conn, call_id)
