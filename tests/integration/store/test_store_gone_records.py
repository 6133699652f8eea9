"""Records a previous owner left open whose caller hung up while nobody served the hotline
(``telephony/resume.py`` ``GoneRecords`` over ``store/leader.py`` ``open_records``), against a real
PostgreSQL: each is closed once, with the outcome its stored timeline shows. A flow whose last
step was a hang-up node had ended there (the caller heard its goodbye): self-service, or the
node's own reason; a flow that stopped at a question was abandoned in the IVR."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from switchboard.calls import CallBook, CallEventBus, adopted_seq_base
from switchboard.events import CallEvent
from switchboard.telephony.resume import GoneRecords, StartedCheck

HANGUP_NODES = {("hotline", "goodbye"): "normal", ("hotline", "goodbye_no_input"): "no_input",
                ("hotline", "callback_later"): "callback"}


class Pool:
    def __init__(self, dsn: str) -> None:
        self.dsn = dsn

    def acquire(self, *, timeout: float) -> Any:
        dsn = self.dsn

        class _Conn:
            async def __aenter__(self) -> asyncpg.Connection:
                self.conn = await asyncpg.connect(dsn, timeout=timeout)
                return self.conn

            async def __aexit__(self, *exc: object) -> None:
                await self.conn.close()

        return _Conn()


async def _stored(conn: asyncpg.Connection, call_id: str, last_steps: list[tuple[str, str]]) -> None:
    at = datetime.now(UTC) - timedelta(seconds=30)
    await conn.execute("INSERT INTO calls (call_id, started_at, channel) VALUES ($1, $2, 'PJSIP/trunk-1')",
                       call_id, at)
    for seq, (node, kind) in enumerate(last_steps, start=2):
        await conn.execute("INSERT INTO call_events (call_id, seq, ts, kind, data) VALUES ($1, $2, $3, "
                           "'ivr.step', $4::jsonb)", call_id, seq, at,
                           json.dumps({"flow": "hotline", "node": node, "kind": kind}))


async def test_gone_records_close_with_the_outcome_of_where_the_flow_stopped(migrated_db: str) -> None:
    conn = await asyncpg.connect(migrated_db, timeout=10)
    try:
        await _stored(conn, "heard-goodbye", [("ask_si_code", "collect"), ("si_status_menu", "menu"),
                                             ("goodbye", "hangup")])
        await _stored(conn, "at-a-question", [("main_menu", "menu"), ("ask_si_code", "collect")])
        await _stored(conn, "no-input", [("main_menu", "menu"), ("goodbye_no_input", "hangup")])
        await _stored(conn, "no-steps", [])
        await _stored(conn, "still-here", [("goodbye", "hangup")])
    finally:
        await conn.close()
    seen: list[CallEvent] = []
    book = CallBook(CallEventBus([seen.append]))
    gone = GoneRecords(Pool(migrated_db), book, hangup_reason=lambda f, n: HANGUP_NODES.get((f, n)))
    closed = await gone.close({"still-here"})
    assert sorted(closed) == ["at-a-question", "heard-goodbye", "no-input", "no-steps"]
    ended = {e.call_id: (e.data["outcome"], e.data["node"]) for e in seen if e.kind == "call.ended"}
    assert ended == {"heard-goodbye": ("self_service", "goodbye"), "at-a-question": ("abandoned_ivr", None),
                     "no-input": ("abandoned_ivr", "goodbye_no_input"), "no-steps": ("abandoned_ivr", None)}
    assert all(e.data["cause"] == "gone_during_takeover" for e in seen)
    assert await gone.close(None) == []   # Asterisk could not say which calls live: nothing closed


async def test_an_adopted_call_numbers_its_events_above_what_an_earlier_adopter_stored(migrated_db: str) -> None:
    """Two take-overs close together: the first adopter numbered from ``adopted_seq_base`` and
    wrote more events than the base grew since; the second seeds above the stored maximum, so
    none of its events collides with (and is dropped as a duplicate of) the first's."""
    base = adopted_seq_base()
    conn = await asyncpg.connect(migrated_db, timeout=10)
    try:
        await _stored(conn, "twice", [("main_menu", "menu")])
        await conn.execute("INSERT INTO call_events (call_id, seq, ts, kind, data) VALUES ('twice', 1, now(), "
                           "'call.started', '{}')")
        for seq in range(base + 1, base + 41):
            await conn.execute("INSERT INTO call_events (call_id, seq, ts, kind, data) VALUES ('twice', $1, now(), "
                               "'ivr.step', '{}')", seq)
    finally:
        await conn.close()
    check = StartedCheck(Pool(migrated_db))
    assert await check.with_floor("twice") == (True, base + 40)   # started, and its floor
    assert await check.with_floor("unknown") == (False, 0)
    assert await StartedCheck(Pool("postgresql://postgres@127.0.0.1:1/none"), timeout=1).with_floor("twice") == (None, 0)
    bus = CallEventBus()
    bus.seed("twice", adopted_seq_base())
    bus.seed("twice", (await check.with_floor("twice"))[1])
    assert bus.emit("twice", "queue.resumed", {}).seq == base + 41
