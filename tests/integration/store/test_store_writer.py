"""The event writer against a real PostgreSQL, with a proxy that cuts the link."""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest
from store_helpers import TcpProxy, host_port, local, make_call

from switchboard.config import DatabaseSettings
from switchboard.events import CallEvent
from switchboard.store import batch_sql
from switchboard.store.batch_sql import LAST_SEQ_COLUMNS
from switchboard.store.errors import WriterClosed, WriterOverloaded
from switchboard.store.writer import EventWriter


@pytest.fixture
async def proxy(migrated_db: str) -> AsyncIterator[TcpProxy]:
    p = TcpProxy(*host_port(migrated_db))
    await p.start()
    yield p
    await p.close()


def settings(dsn: str, tmp: Path, **kw: object) -> DatabaseSettings:
    base: dict[str, object] = {"dsn": dsn, "spool_dir": str(tmp / "spool"), "flush_interval": 0.05,
                               "command_timeout": 3.0}
    base.update(kw)
    return DatabaseSettings(**base)  # type: ignore[arg-type]


def writer(dsn: str, tmp: Path, **kw: object) -> EventWriter:
    return EventWriter(settings(dsn, tmp, **kw), connect_timeout=2.0, reconnect_min=0.05, reconnect_max=0.5)


async def assert_exactly_once_in_order(conn: asyncpg.Connection, expected: dict[str, int]) -> None:
    """Every call has seq 1..n once, and arrival order (id) follows seq within each call."""
    rows = await conn.fetch(
        "SELECT call_id, count(*) AS n, min(seq) AS lo, max(seq) AS hi FROM call_events GROUP BY call_id",
        timeout=30)
    got = {r["call_id"]: (r["n"], r["lo"], r["hi"]) for r in rows}
    assert got == {c: (n, 1, n) for c, n in expected.items()}
    disorder = await conn.fetchval(
        """SELECT count(*) FROM (SELECT seq, lag(seq) OVER (PARTITION BY call_id ORDER BY id) AS prev
                                 FROM call_events) t WHERE prev >= seq""", timeout=30)
    assert disorder == 0


async def test_calls_row_derived_and_bad_values_ignored(migrated_db: str, tmp_path: Path,
                                                        db: asyncpg.Connection) -> None:
    w = writer(migrated_db, tmp_path)
    await w.start()
    t0 = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)
    evs = [
        CallEvent("k1", 1, t0, "call.started", {"caller": "0912345678", "dialed": "19008000", "language": "vi"}),
        CallEvent("k1", 2, t0 + timedelta(seconds=1), "ivr.lookup", {"by": "phone", "found": True,
                                                                     "participant_id": "0100000001"}),
        CallEvent("k1", 3, t0 + timedelta(seconds=2), "queue.joined",
                  {"topic": "health/card", "province": "Huế", "province_source": "area_code",
                   "priority": "high"}),  # wrong type: ignored, not a failed batch
        CallEvent("k1", 4, t0 + timedelta(seconds=3), "queue.overflow", {"tier": "region"}),
        CallEvent("k1", 5, t0 + timedelta(seconds=4), "call.answered", {"agent_id": "a7", "wait_s": 2.0}),
        CallEvent("k1", 6, t0 + timedelta(seconds=5), "call.recording", {"path": "2026/03/02/k1.wav"}),
        CallEvent("k1", 7, t0 + timedelta(seconds=9), "call.survey", {"score": 9}),  # out of range: ignored
        CallEvent("k1", 8, t0 + timedelta(seconds=9), "call.ended",
                  {"outcome": "answered", "cause": "16", "node": "talk"}),
    ]
    for e in evs[4:]:  # later half first: the row is built whatever the arrival order
        w.submit(e)
    await w.flush(timeout=10)
    for e in evs[:4]:
        w.submit(e)
    await w.flush(timeout=10)
    await w.stop()
    r = await db.fetchrow("SELECT * FROM calls WHERE call_id = 'k1'", timeout=10)
    assert r is not None
    assert (r["caller"], r["participant_id"], r["topic"], r["province"], r["province_source"]) == (
        "0912345678", "0100000001", "health/card", "Huế", "area_code")
    assert r["priority"] is None and r["survey_score"] is None
    assert (r["overflow_tier"], r["agent_id"], r["queue_wait_s"]) == ("region", "a7", 2.0)
    assert r["recording_path"] == "2026/03/02/k1.wav"
    assert r["started_at"] == t0 and r["answered_at"] == t0 + timedelta(seconds=4)
    assert (r["outcome"], r["hangup_cause"], r["ivr_node"]) == ("answered", "16", "talk")
    assert w.written_total == 8 and w.batches == 2


async def test_submit_validates_and_refuses_after_stop(migrated_db: str, tmp_path: Path) -> None:
    w = writer(migrated_db, tmp_path)
    await w.start()
    with pytest.raises(ValueError, match="timezone-aware"):
        w.submit(CallEvent("v", 1, datetime(2026, 1, 1), "call.started"))
    with pytest.raises(ValueError, match="NUL"):
        w.submit(CallEvent("v", 1, datetime.now(UTC), "call.started", {"caller": "a\x00b"}))
    with pytest.raises(ValueError, match="seq"):
        w.submit(CallEvent("v", 0, datetime.now(UTC), "call.started"))
    assert w.accepted_total == 0
    await w.stop()
    with pytest.raises(WriterClosed):
        w.submit(CallEvent("v", 1, datetime.now(UTC), "call.started"))


async def test_db_down_at_start_spools_then_replays(migrated_db: str, tmp_path: Path, proxy: TcpProxy,
                                                    db: asyncpg.Connection) -> None:
    proxy.cut()
    w = writer(proxy.dsn(migrated_db), tmp_path)
    await w.start()
    assert not w.db_connected
    events = make_call("d1", local(2026, 3, 2, 9), topic="t", province="p", wait=4, agent="a", talk=30, wrap=3)
    for e in events:
        w.submit(e)
    deadline = time.monotonic() + 10
    while w.spooled_total < len(events):
        assert time.monotonic() < deadline, w.stats()
        await asyncio.sleep(0.02)
    assert w.spool_bytes > 0 and w.last_error is not None
    assert await db.fetchval("SELECT count(*) FROM call_events", timeout=10) == 0
    proxy.restore()
    await w.flush(timeout=15)
    assert w.spool_bytes == 0 and w.replayed_total == len(events)
    await assert_exactly_once_in_order(db, {"d1": len(events)})
    await w.stop()


async def test_restart_replays_old_spool_before_new_events(migrated_db: str, tmp_path: Path, proxy: TcpProxy,
                                                           db: asyncpg.Connection) -> None:
    proxy.cut()
    w1 = writer(proxy.dsn(migrated_db), tmp_path)
    await w1.start()
    old = make_call("r1", local(2026, 3, 2, 9), topic="t", province="p", wait=4, agent="a", talk=30)
    for e in old[:5]:
        w1.submit(e)
    await w1.stop()  # database away: stop() must leave everything in the spool
    assert w1.spool_bytes > 0 and w1.spooled_total == 5
    proxy.restore()
    w2 = writer(migrated_db, tmp_path)
    await w2.start()
    for e in old[5:]:
        w2.submit(e)
    await w2.flush(timeout=15)
    await w2.stop()
    assert w2.replayed_total >= 5
    await assert_exactly_once_in_order(db, {"r1": len(old)})


async def test_full_queue_spills_to_spool_in_order(migrated_db: str, tmp_path: Path, proxy: TcpProxy,
                                                   db: asyncpg.Connection) -> None:
    w = writer(proxy.dsn(migrated_db), tmp_path, queue_size=40, batch_size=25)
    await w.start()
    proxy.cut()
    calls = [make_call(f"s{i:03d}", local(2026, 3, 2, 10, i), topic="t", province="p", wait=3, agent="a",
                       talk=20, wrap=2, survey=4) for i in range(60)]
    # interleave calls, submit in bursts without yielding: the queue overflows
    flat = [e for group in zip(*calls, strict=False) for e in group]
    for i in range(0, len(flat), 100):
        for e in flat[i:i + 100]:
            w.submit(e)
        await asyncio.sleep(0.01)
    assert w.spooled_total > 0 and w.queue_depth <= 40
    proxy.restore()
    await w.flush(timeout=20)
    await w.stop()
    await assert_exactly_once_in_order(db, {c[0].call_id: len(c) for c in calls})
    assert await db.fetchval("SELECT count(*) FROM surveys", timeout=10) == 60


async def test_spool_full_refuses_loudly(migrated_db: str, tmp_path: Path, proxy: TcpProxy) -> None:
    proxy.cut()
    w = writer(proxy.dsn(migrated_db), tmp_path, queue_size=10, spool_max_bytes=4000)
    await w.start()
    refused = 0
    for i in range(200):
        try:
            w.submit(CallEvent("f", i + 1, datetime.now(UTC), "ivr.step", {"node": "x" * 50}))
        except WriterOverloaded:
            refused += 1
    assert refused > 0 and w.rejected_total == refused
    assert w.accepted_total == 200 - refused
    assert w.near_full and w.spool_bytes <= 4000
    proxy.restore()
    await w.flush(timeout=15)
    await w.stop()


async def test_outage_under_load_every_event_once_in_order(migrated_db: str, tmp_path: Path, proxy: TcpProxy,
                                                           db: asyncpg.Connection) -> None:
    """20 new calls/s for 30 s; the link to PostgreSQL is cut twice while events flow."""
    w = writer(proxy.dsn(migrated_db), tmp_path, batch_size=500)
    await w.start()
    rng = random.Random(20)
    active: list[list[CallEvent]] = []
    expected: dict[str, int] = {}
    outages = [(6.0, 14.0), (20.0, 23.0)]
    t_start = time.monotonic()
    n = 0
    spool_peak = 0
    while (elapsed := time.monotonic() - t_start) < 30.0:
        cut = any(a <= elapsed < b for a, b in outages)
        if cut and proxy.connected:
            proxy.cut()
        elif not cut and not proxy.connected:
            proxy.restore()
        cid = f"L{n:05d}"
        n += 1
        call = make_call(cid, local(2026, 3, 2, 9) + timedelta(seconds=elapsed), topic="social/pension",
                         province="Hà Nội", wait=rng.uniform(0, 40), agent=rng.choice(["a1", "a2", None]),
                         talk=rng.uniform(30, 300), wrap=5, survey=rng.choice([None, 3, 5]))
        expected[cid] = len(call)
        active.append(call)
        for c in active:  # each live call moves one step per tick
            w.submit(c.pop(0))
        active = [c for c in active if c]
        spool_peak = max(spool_peak, w.spool_bytes)
        await asyncio.sleep(max(0.0, t_start + n * 0.05 - time.monotonic()))
    proxy.restore()
    while active:
        for c in active:
            w.submit(c.pop(0))
        active = [c for c in active if c]
    await w.flush(timeout=60)
    await w.stop()
    assert n >= 580  # ~20 calls/s for 30 s
    assert spool_peak > 0 and w.replayed_total > 0 and w.spool_bytes == 0
    await assert_exactly_once_in_order(db, expected)
    assert await db.fetchval("SELECT count(*) FROM calls", timeout=10) == n
    assert await db.fetchval("SELECT count(*) FROM call_events", timeout=10) == sum(expected.values())
    # A batch whose COMMIT reached PostgreSQL but whose answer was lost in the cut is
    # replayed and then counted as already present, not as written (the rows above show
    # none is stored twice): the counters never claim more writes than rows, nor miss any.
    total = sum(expected.values())
    assert w.written_total <= total <= w.written_total + w.duplicates_total


async def test_schema_missing_spools_until_migrated(fresh_db: str, tmp_path: Path) -> None:
    """A database error that is not a lost link (no tables yet) also keeps every event, then replays."""
    from switchboard.store.migrate import apply_migrations

    w = writer(fresh_db, tmp_path)
    await w.start()
    assert w.db_connected
    events = make_call("m1", local(2026, 3, 2, 9), topic="t", province="p", wait=4, agent="a", talk=30)
    for e in events:
        w.submit(e)
    deadline = time.monotonic() + 10
    while w.spooled_total < len(events):
        assert time.monotonic() < deadline, w.stats()
        await asyncio.sleep(0.02)
    assert w.last_error is not None and "UndefinedTable" in w.last_error
    conn = await asyncpg.connect(fresh_db, timeout=10)
    try:
        await apply_migrations(conn)
        await w.flush(timeout=20)
        await assert_exactly_once_in_order(conn, {"m1": len(events)})
    finally:
        await conn.close(timeout=5)
    await w.stop()


async def test_a_second_call_started_of_a_call_is_not_stored(migrated_db: str, tmp_path: Path,
                                                             db: asyncpg.Connection) -> None:
    """Two owners of one call (docs/ha.md): the new leader adopted it and wrote call.started
    (a high seq); the old leader's spool replays its own call.started (seq 1) later: one kept."""
    w = writer(migrated_db, tmp_path)
    await w.start()
    t0 = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)
    w.submit(CallEvent("s1", 500_000_001, t0 + timedelta(seconds=3), "call.started",
                       {"caller": "0912345678", "dialed": "19009068", "adopted": True}))
    await w.flush(timeout=10)
    w.submit(CallEvent("s1", 1, t0, "call.started", {"caller": "0912345678", "dialed": "19009068"}))
    w.submit(CallEvent("s1", 2, t0 + timedelta(seconds=1), "ivr.step", {"node": "welcome"}))
    await w.flush(timeout=10)
    await w.stop()
    kinds = [r["kind"] for r in await db.fetch("SELECT kind FROM call_events WHERE call_id = 's1' ORDER BY seq",
                                               timeout=10)]
    assert kinds == ["ivr.step", "call.started"]
    assert w.written_total == 2 and w.duplicates_total == 1


async def test_replayed_older_spool_never_regresses_the_newer_columns(
        migrated_db: str, tmp_path: Path, proxy: TcpProxy, db: asyncpg.Connection) -> None:
    """Issue 17: a leader cut from PostgreSQL spools a call's events; a standby takes over, adopts
    the caller (seq from ``adopted_seq_base``, far above) and writes how the call really went on;
    the old leader's spool is replayed after that. Every event is kept, and the ``calls`` row keeps
    what the newer events set: outcome, end, agent, queue, language are not the old leader's."""
    t0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    old = writer(proxy.dsn(migrated_db), tmp_path / "old")   # the leader, through the proxy
    await old.start()
    old.submit(CallEvent("h1", 1, t0, "call.started", {"caller": "0912000001", "dialed": "19008000",
                                                       "language": "vi"}))
    old.submit(CallEvent("h1", 2, t0 + timedelta(seconds=2), "ivr.step", {"flow": "hotline", "node": "welcome"}))
    await old.flush(timeout=10)
    proxy.cut()   # cut from PostgreSQL: it serves on, spooling
    spooled = [
        CallEvent("h1", 3, t0 + timedelta(seconds=10), "queue.joined",
                  {"topic": "health/old", "province": "Huế", "province_source": "area_code", "language": "vi"}),
        CallEvent("h1", 4, t0 + timedelta(seconds=12), "call.answered", {"agent_id": "a1", "wait_s": 2.0}),
        CallEvent("h1", 5, t0 + timedelta(seconds=20), "call.ended",
                  {"outcome": "abandoned_queue", "cause": "gone", "node": "queue"}),
    ]
    for e in spooled:
        old.submit(e)
    deadline = time.monotonic() + 10
    while old.spooled_total < len(spooled):
        assert time.monotonic() < deadline, old.stats()
        await asyncio.sleep(0.02)
    await old.stop()   # fenced: what was not written stays in the spool
    assert old.spool_bytes > 0

    base = 400_000_000   # the new leader's numbering of an adopted call (adopted_seq_base: far above)
    new = writer(migrated_db, tmp_path / "new")
    await new.start()
    for i, (dt, kind, data) in enumerate([
        (30, "queue.joined", {"topic": "health/card", "province": "Đà Nẵng", "province_source": "participant",
                              "language": "en", "priority": 2}),
        (40, "call.answered", {"agent_id": "a9", "wait_s": 10.0}),
        (90, "agent.ended", {"talk_s": 50.0}),
        (95, "call.ended", {"outcome": "answered", "cause": "16", "node": "talk"}),
    ], start=1):
        new.submit(CallEvent("h1", base + i, t0 + timedelta(seconds=dt), kind, data))
    await new.flush(timeout=10)
    await new.stop()
    columns = "outcome, ended_at, agent_id, topic, province, province_source, language, hangup_cause, ivr_node"
    before = await db.fetchrow(f"SELECT {columns} FROM calls WHERE call_id = 'h1'", timeout=10)

    proxy.restore()   # the old leader back (as a standby): its spool replays
    replay = writer(proxy.dsn(migrated_db), tmp_path / "old")
    await replay.start()
    await replay.flush(timeout=15)
    await replay.stop()
    assert replay.replayed_total == len(spooled)
    assert await db.fetchval("SELECT count(*) FROM call_events WHERE call_id = 'h1'", timeout=10) == 9
    after = await db.fetchrow(f"SELECT {columns}, talk_s, started_at, caller FROM calls WHERE call_id = 'h1'",
                              timeout=10)
    assert after is not None and before is not None
    assert dict(after) == {**dict(before), "talk_s": 50.0, "started_at": t0, "caller": "0912000001"}
    assert (after["outcome"], after["ended_at"], after["agent_id"]) == (
        "answered", t0 + timedelta(seconds=95), "a9")
    assert (after["topic"], after["province"], after["language"]) == ("health/card", "Đà Nẵng", "en")


async def test_last_wins_by_seq_whatever_the_batch_order(migrated_db: str, tmp_path: Path,
                                                         db: asyncpg.Connection) -> None:
    """Each last-wins column follows the newest event that carries it: a newer event without a
    value leaves the column alone, an older one arriving later does not take it back."""
    t0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
    w = writer(migrated_db, tmp_path)
    await w.start()
    for batch in (
        [CallEvent("o1", 7, t0 + timedelta(seconds=7), "queue.joined", {"topic": "t7"})],   # no province
        [CallEvent("o1", 3, t0 + timedelta(seconds=3), "queue.joined", {"topic": "t3", "province": "p3"}),
         CallEvent("o1", 1, t0, "call.started", {"caller": "0912000002", "dialed": "19008000"})],
        [CallEvent("o1", 5, t0 + timedelta(seconds=5), "queue.joined", {"topic": "t5", "province": "p5"})],
        [CallEvent("o1", 4, t0 + timedelta(seconds=4), "queue.joined", {"topic": "t4", "province": "p4"})],
    ):
        for e in batch:
            w.submit(e)
        await w.flush(timeout=10)
    await w.stop()
    row = await db.fetchrow("SELECT topic, province, last_seq FROM calls WHERE call_id = 'o1'", timeout=10)
    assert row is not None
    assert (row["topic"], row["province"]) == ("t7", "p5")
    seqs = dict(zip(LAST_SEQ_COLUMNS, row["last_seq"], strict=False))
    assert (seqs["topic"], seqs["province"], seqs["caller"]) == (7, 5, 1)


async def test_batch_statements_stay_prepared_on_both_connections(migrated_db: str, tmp_path: Path) -> None:
    """Each batch statement is parsed and planned once per connection, then reused (asyncpg keeps
    statements only up to a size; the side-table statement, above its default, was parsed,
    planned and described again for every batch)."""
    w = writer(migrated_db, tmp_path, batch_size=50)
    await w.start()
    t0 = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)
    for c in range(100):
        for seq, kind in enumerate(("call.started", "ivr.step", "queue.joined", "call.answered", "call.ended"), 1):
            w.submit(CallEvent(f"r{c:03d}", seq, t0 + timedelta(seconds=c + seq), kind, {"node": "x"}))
    await w.flush(timeout=30)
    assert w.batches == 10 and w.overlapped_total > 0
    reused: dict[str, int] = {}
    for conn in (w._conn, w._partner):
        assert conn is not None
        for r in await conn.fetch("SELECT statement, generic_plans FROM pg_prepared_statements", timeout=10):
            reused[r["statement"]] = reused.get(r["statement"], 0) + r["generic_plans"]
    await w.stop()
    assert reused.get(batch_sql.INSERT_EVENTS, 0) >= 8 and reused.get(batch_sql.UPDATE_SIDE_TABLES, 0) >= 8, reused


def _plan_nodes(node: dict) -> list[dict]:
    return [node, *(n for child in node.get("Plans", []) for n in _plan_nodes(child))]


async def test_batch_statement_probes_the_index_not_the_table(migrated_db: str, tmp_path: Path,
                                                              db: asyncpg.Connection) -> None:
    """The check for a stored call.started is a per-row index probe: the planner may not hash every
    call.started of call_events per batch (a scan of the whole table, growing with it), and the
    writer's session compiles nothing (JIT took 9 s of a 9.3 s batch: bench/RESULTS.md, store_write)."""
    w = writer(migrated_db, tmp_path)
    await w.start()
    t0 = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)
    for c in range(2_000):
        for seq, kind in enumerate(("call.started", "ivr.step", "queue.joined", "call.answered",
                                    "agent.ended", "call.ended", "call.recording", "agent.offer"), 1):
            w.submit(CallEvent(f"p{c:05d}", seq, t0 + timedelta(seconds=c + seq), kind, {"node": "x"}))
    await w.flush(timeout=60)
    assert w._conn is not None and await w._conn.fetchval("SHOW jit", timeout=10) == "off"
    await w.stop()
    await db.execute(batch_sql.CREATE_TEMP, timeout=10)
    async with db.transaction():
        await db.copy_records_to_table(
            batch_sql.TEMP_TABLE, columns=batch_sql.COPY_COLUMNS,
            records=[(f"q{c:05d}", 1, t0, "call.started", "{}") for c in range(2_000)], timeout=10)
        plans = [json.loads(await db.fetchval("EXPLAIN (FORMAT JSON) " + sql, timeout=10))
                 for sql in (batch_sql.WRITE_BATCH, batch_sql.INSERT_EVENTS)]
    for plan in plans:
        nodes = _plan_nodes(plan[0]["Plan"])
        seq_scans = [n for n in nodes if n["Node Type"] == "Seq Scan" and n.get("Relation Name") == "call_events"]
        assert seq_scans == [], f"call_events scanned whole per batch: {seq_scans}"
        assert any(n.get("Index Name") == "call_events_call_seq" for n in nodes)


def _mixed_traffic(prefix: str, rng: random.Random) -> list[CallEvent]:
    """200 calls interleaved, each with a full life (callbacks, surveys, transfers, wrap-up), then
    disturbed: events of a call swapped out of seq order, 1 % submitted twice (the second time
    later), and some calls given a second call.started (a far higher seq, as an adopting owner)
    that arrives soon after the first, often in the next batch."""
    t0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
    lives: list[list[CallEvent]] = []
    for c in range(200):
        cid, t = f"{prefix}{c:03d}", t0 + timedelta(seconds=c)
        kinds: list[tuple[str, dict[str, object]]] = [
            ("call.started", {"caller": f"09{c:08d}", "dialed": "19008000", "language": "vi", "channel": "PJSIP/x"}),
            ("ivr.step", {"flow": "main", "flow_version": str(c % 3), "node": "menu"}),
            ("queue.joined", {"topic": f"t{c % 4}", "province": f"p{c % 5}", "province_source": "dialed",
                              "priority": c % 3, "language": "en" if c % 2 else "vi"}),
            ("agent.offer", {"agent_id": f"a{c % 7}"}),
            ("agent.offer", {"agent_id": f"a{(c + 1) % 7}"}),
            ("call.answered", {"agent_id": f"a{(c + 1) % 7}", "wait_s": c / 4}),
            ("call.transfer", {"to": "x"}),
            ("agent.ended", {"agent_id": f"a{(c + 1) % 7}", "talk_s": 30.0 + c}),
            ("agent.wrap_up_ended", {"disposition": f"d{c % 3}", "wrap_up_s": 5.5}),
        ]
        if c % 5 == 0:
            kinds += [("callback.requested", {"callback_id": f"{prefix}cb{c}", "number": f"09{c:08d}"}),
                      ("callback.completed", {"callback_id": f"{prefix}cb{c}", "result": "reached"})]
        if c % 4 == 0:
            kinds.append(("call.survey", {"score": 1 + c % 5, "agent_id": f"a{(c + 1) % 7}"}))
        kinds.append(("call.ended", {"outcome": "answered", "cause": "16", "node": "talk"}))
        lives.append([CallEvent(cid, i, t + timedelta(seconds=7 * i), k, d) for i, (k, d) in enumerate(kinds, 1)])
    out: list[CallEvent] = []
    while lives:
        life = rng.choice(lives)
        out.append(life.pop(0))
        if not life:
            lives.remove(life)
    for i in range(0, len(out) - 1, 9):   # out of seq order now and then
        if rng.random() < 0.5:
            out[i], out[i + 1] = out[i + 1], out[i]
    for i in sorted(rng.sample(range(len(out)), len(out) // 100), reverse=True):   # duplicates, later
        out.insert(min(len(out), i + rng.randrange(1, 120)), out[i])
    for i in [j for j, e in enumerate(out) if e.kind == "call.started" and int(e.call_id[-3:]) % 15 == 1][::-1]:
        e = out[i]
        out.insert(min(len(out), i + rng.randrange(5, 60)), CallEvent(
            e.call_id, 900_000_000 + e.seq, e.ts + timedelta(seconds=1), "call.started",
            {**e.data, "caller": "0999999999", "adopted": True}))
    return out


async def _side_rows(conn: asyncpg.Connection, prefix: str) -> dict[str, list[tuple[object, ...]]]:
    """calls, callbacks, surveys and the timeline of the calls under ``prefix``, the prefix cut off."""
    n = len(prefix)
    q = {
        "calls": "SELECT * FROM calls WHERE call_id LIKE $1 ORDER BY call_id",
        "callbacks": "SELECT * FROM callbacks WHERE callback_id LIKE $1 ORDER BY callback_id",
        "surveys": "SELECT * FROM surveys WHERE call_id LIKE $1 ORDER BY call_id",
        "call_events": "SELECT call_id, seq, ts, kind, data::text FROM call_events WHERE call_id LIKE $1 "
                       "ORDER BY call_id, seq",
    }
    out: dict[str, list[tuple[object, ...]]] = {}
    for table, sql in q.items():
        rows = []
        for r in await conn.fetch(sql, prefix + "%", timeout=30):
            d = {k: v for k, v in dict(r).items() if k != "updated_at"}
            for k in ("call_id", "callback_id"):
                if isinstance(d.get(k), str) and d[k].startswith(prefix):
                    d[k] = d[k][n:]
            if "data" in d:
                d["data"] = d["data"].replace(f'"{prefix}cb', '"cb')
            rows.append(tuple(d.items()))
        out[table] = rows
    return out


async def test_overlapped_batches_write_what_one_statement_per_batch_writes(
        migrated_db: str, tmp_path: Path, db: asyncpg.Connection) -> None:
    """Pipelining (step 1 of a batch while the one before commits, on a second connection) leaves
    the same rows as writing each batch serially with the one-statement path (``WRITE_BATCH``), for
    traffic with out-of-order events, duplicates across batches and second call.started events:
    the timeline, every ``calls`` column, callbacks and surveys."""
    size = 40
    ref = _mixed_traffic("R", random.Random(7))
    await db.execute(batch_sql.CREATE_TEMP, timeout=10)
    for i in range(0, len(ref), size):   # the reference: serially, one statement per batch
        async with db.transaction():
            await db.copy_records_to_table(batch_sql.TEMP_TABLE, columns=batch_sql.COPY_COLUMNS, timeout=10,
                                           records=[(e.call_id, e.seq, e.ts, e.kind, json.dumps(e.data))
                                                    for e in ref[i:i + size]])
            await db.fetchrow(batch_sql.WRITE_BATCH, timeout=10)

    evs = _mixed_traffic("P", random.Random(7))
    w = writer(migrated_db, tmp_path, batch_size=size)
    await w.start()
    for e in evs:   # all queued before the writer runs: every batch has a next one to overlap with
        w.submit(e)
    await w.flush(timeout=60)
    await w.stop()
    assert w.overlapped_total >= len(evs) // size // 2, w.stats()
    assert w.written_total + w.duplicates_total == len(evs) and w.duplicates_total > 0
    want, got = await _side_rows(db, "R"), await _side_rows(db, "P")
    assert len(want["calls"]) == 200 and len(want["callbacks"]) == 40 and len(want["surveys"]) == 50
    for table in want:
        assert got[table] == want[table], table


async def test_cut_while_batches_overlap_every_event_once_in_order(migrated_db: str, tmp_path: Path,
                                                                   proxy: TcpProxy, db: asyncpg.Connection) -> None:
    """The link cut twice while batches are overlapped (one committing, the next in step 1 on the
    other connection): the batches that failed are spooled in order and replayed, the ones after
    them behind; every event once, each call's events in seq order, every call's row."""
    w = writer(proxy.dsn(migrated_db), tmp_path, batch_size=50)
    await w.start()
    rng = random.Random(5)
    calls = [make_call(f"V{c:04d}", local(2026, 3, 2, 11) + timedelta(seconds=c), topic="social/pension",
                       province="Huế", wait=rng.uniform(0, 30), agent=rng.choice(["a1", None]), talk=60, wrap=5)
             for c in range(500)]
    expected = {c[0].call_id: len(c) for c in calls}
    live = calls[:40]
    rest = calls[40:]
    while live:   # 40 calls at a time, each next event from a random live call
        c = rng.choice(live)
        w.submit(c.pop(0))
        if not c:
            live.remove(c)
            if rest:
                live.append(rest.pop(0))
    total = sum(expected.values())
    for after in (8, 30):
        while w.batches < after:  # noqa: ASYNC110  (polling a counter)
            await asyncio.sleep(0.001)
        proxy.cut()
        await asyncio.sleep(0.3)
        proxy.restore()
    await w.flush(timeout=60)
    await w.stop()
    assert w.overlapped_total > 0 and w.spooled_total > 0 and w.replayed_total > 0, w.stats()
    await assert_exactly_once_in_order(db, expected)
    assert await db.fetchval("SELECT count(*) FROM calls WHERE call_id LIKE 'V%'", timeout=10) == len(calls)
    assert w.written_total <= total <= w.written_total + w.duplicates_total


async def test_stop_past_its_deadline_spools_the_batches_being_written(migrated_db: str, tmp_path: Path,
                                                                       db: asyncpg.Connection) -> None:
    """A database that hangs (call_events locked): ``stop`` gives up after ``stop_timeout`` and keeps
    on disk, with the queue, the batch taken off it whose insert waits (before, it was lost; with
    overlapping there can be two); a writer started on that spool stores every event once."""
    await db.execute("BEGIN; LOCK TABLE call_events IN ACCESS EXCLUSIVE MODE", timeout=10)
    w = EventWriter(settings(migrated_db, tmp_path, batch_size=50, command_timeout=30.0), connect_timeout=2.0,
                    reconnect_min=0.05, reconnect_max=0.5, stop_timeout=0.5)
    await w.start()
    t0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
    evs = [CallEvent(f"z{c:02d}", seq, t0 + timedelta(seconds=seq), kind, {"node": "x"})
           for seq, kind in enumerate(("call.started", "ivr.step", "ivr.step", "call.ended"), 1) for c in range(40)]
    for e in evs:
        w.submit(e)
    deadline = time.monotonic() + 10
    while not w._held:   # a batch is in the database's hands (its insert waits on the lock)
        assert time.monotonic() < deadline
        await asyncio.sleep(0.01)
    await w.stop()
    assert w.written_total == 0 and w.spooled_total == len(evs), w.stats()
    await db.execute("ROLLBACK", timeout=10)

    again = writer(migrated_db, tmp_path)
    await again.start()
    await again.flush(timeout=20)
    await again.stop()
    assert again.replayed_total == len(evs)
    await assert_exactly_once_in_order(db, {f"z{c:02d}": 4 for c in range(40)})
