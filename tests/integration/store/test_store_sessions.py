"""Q&A sessions in the real PostgreSQL: a definition stored once, attendance rows opened at the
join and completed at the leave, the session ended once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from switchboard.sessions.model import Session
from switchboard.store import sessions as ss

T0 = datetime(2026, 3, 3, 2, 0, tzinfo=UTC)
S = Session(session_id="pension", title="The new pension law", starts=T0, ends=T0 + timedelta(hours=1),
            moderator="agent1001", capacity=10, title_prompt="session_title_pension_law")


async def test_a_session_stored_once_and_ended_once(migrated_db: str) -> None:
    db = await asyncpg.connect(migrated_db)
    try:
        assert await ss.insert_session(db, S, source="test")
        assert not await ss.insert_session(db, S, source="again")       # left as it is
        row = await ss.get_session(db, "pension")
        assert row is not None and row.session == S and row.source == "test" and row.ended_at is None
        changed = Session(**{**{f: getattr(S, f) for f in S.__dataclass_fields__}, "capacity": 20})
        assert await ss.update_session(db, changed)
        await ss.end_session(db, "pension", at=T0 + timedelta(minutes=30), by="agent1001")
        await ss.end_session(db, "pension", at=T0 + timedelta(minutes=40), by="late")   # no effect
        row = await ss.get_session(db, "pension")
        assert row is not None and row.session.capacity == 20
        assert (row.ended_at, row.ended_by) == (T0 + timedelta(minutes=30), "agent1001")
        assert not await ss.update_session(db, S)                        # not once it has ended
        assert [r.session.session_id for r in await ss.session_rows(db)] == ["pension"]
    finally:
        await db.close()


async def test_attendance_opened_at_the_join_completed_at_the_leave(migrated_db: str) -> None:
    db = await asyncpg.connect(migrated_db)
    try:
        await ss.insert_session(db, S, source="test")
        j1, j2 = T0 + timedelta(seconds=10), T0 + timedelta(seconds=12)
        await ss.join(db, session_id="pension", call_id="c1", caller="0912000001", role="caller",
                      channel="PJSIP/trunk-1", joined_at=j1)
        await ss.join(db, session_id="pension", call_id="c1", caller="0912000001", role="caller",
                      channel="PJSIP/trunk-1", joined_at=j1)                # the same stay again: one row
        await ss.join(db, session_id="pension", call_id="m1", caller="", role="moderator",
                      channel="PJSIP/agent1001-1", joined_at=j2)
        await ss.leave(db, session_id="pension", call_id="c1", joined_at=j1, left_at=j1 + timedelta(seconds=90),
                       reason="session_ended", hand_raised_at=j1 + timedelta(seconds=5), hands=2,
                       unmuted_at=j1 + timedelta(seconds=20), unmuted_s=12.5)
        rows = await ss.attendance(db, "pension")
        assert [(r["call_id"], r["role"]) for r in rows] == [("c1", "caller"), ("m1", "moderator")]
        c1 = rows[0]
        assert (c1["hands"], c1["unmuted_s"], c1["left_reason"], c1["seconds"]) == (2, 12.5, "session_ended", 90.0)
        assert rows[1]["left_at"] is None and rows[1]["caller"] is None
    finally:
        await db.close()


async def test_an_open_stay_keeps_how_it_came_in_and_its_hands_for_a_restart(migrated_db: str) -> None:
    db = await asyncpg.connect(migrated_db)
    try:
        await ss.insert_session(db, S, source="test")
        j1 = T0 + timedelta(seconds=10)
        await ss.join(db, session_id="pension", call_id="cmp-1", caller="0912000001", role="caller",
                      channel="PJSIP/trunk-1", joined_at=j1, via="invited", participant_id="9900000101")
        await ss.figures(db, session_id="pension", call_id="cmp-1", joined_at=j1, hands=1,
                         hand_raised_at=j1 + timedelta(seconds=5), unmuted_at=None, unmuted_s=0.0)
        await ss.figures(db, session_id="pension", call_id="cmp-1", joined_at=j1, hands=2,   # the first times kept
                         hand_raised_at=j1 + timedelta(seconds=9), unmuted_at=j1 + timedelta(seconds=20), unmuted_s=3.5)
        stays = await ss.open_stays(db, "pension")
        assert stays == {"cmp-1": ss.OpenStay(j1, 2, j1 + timedelta(seconds=5), j1 + timedelta(seconds=20), 3.5,
                                              "invited", "9900000101")}
        rows = await ss.attendance(db, "pension")
        assert (rows[0]["joined_via"], rows[0]["participant_id"], rows[0]["hands"]) == ("invited", "9900000101", 2)
        with pytest.raises(asyncpg.CheckViolationError):
            await ss.join(db, session_id="pension", call_id="c9", caller="", role="caller", channel="x",
                          joined_at=j1, via="somehow")
        await db.execute("INSERT INTO participants (insurance_code, full_name, phone, contribution_status) VALUES "
                         "('9900000101', 'A', '0912000001', 'active'), ('9900000102', 'B', NULL, 'active')")
        found = await ss.participant_phones(db, ["9900000102", "9900000101", "9900000199"])
        assert [(r["insurance_code"], r["phone"]) for r in found] == [("9900000101", "0912000001"),
                                                                      ("9900000102", None)]
        assert await ss.invited_leg(db, "cmp-none") is None
    finally:
        await db.close()


async def test_participants_registered_later_are_stored_with_the_session(migrated_db: str) -> None:
    """``SessionService.register`` (the API's POST .../registered): merged once each into the stored
    definition; bad codes or numbers refused with every problem and nothing added; not once over."""
    from switchboard.api.services import ConflictError
    from switchboard.config import SessionSettings
    from switchboard.sessions.service import SessionInvalid, SessionService

    db = await asyncpg.connect(migrated_db)
    try:
        await ss.insert_session(db, S, source="test")
        svc = SessionService(pool=db, ami=None, settings=SessionSettings(), clock=lambda: T0 - timedelta(hours=1))
        await svc.sync("/nonexistent")
        out = await svc.register("pension", participants=["9900000101"], numbers=["0912700103"], by="test")
        assert out["invite"]["participants"] == ["9900000101"] and out["invite"]["numbers"] == ["0912700103"]
        await svc.register("pension", participants=["9900000101", "9900000102"], numbers=[], by="test")
        row = await ss.get_session(db, "pension")
        assert row is not None and row.session.invite.participants == ("9900000101", "9900000102")
        assert row.session.invite.numbers == ("0912700103",) and row.session.capacity == S.capacity
        with pytest.raises(SessionInvalid) as bad:
            await svc.register("pension", participants=["123"], numbers=["call me"], by="test")
        assert len(bad.value.details["problems"]) == 2
        assert (await ss.get_session(db, "pension")).session.invite.participants == ("9900000101", "9900000102")
        await ss.end_session(db, "pension", at=T0, by="test")
        svc.sessions["pension"].finished = True
        with pytest.raises(ConflictError):
            await svc.register("pension", participants=["9900000103"], numbers=[], by="test")
    finally:
        await db.close()
