"""The API's PostgreSQL services against a real PostgreSQL, fed by the real event writer.

Fixture day: Monday 2 March 2026 in Hà Nội (UTC+7). Expected figures are
worked out by hand in the comments next to each assertion.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "store"))
from store_helpers import TcpProxy, free_port, host_port, local, make_call

from switchboard.api.pg_services import (
    HealthChecks,
    PgCallService,
    PgRecordingService,
    PgReportService,
    RegistryFlowService,
)
from switchboard.api.recording_files import resolve_recording
from switchboard.api.services import CallQuery, NotFoundError
from switchboard.config import DatabaseSettings, PathSettings, Settings
from switchboard.events import CallEvent
from switchboard.ivr.registry import FlowRegistry
from switchboard.store import reports
from switchboard.store.agent_log import AgentStateLog
from switchboard.store.migrate import apply_migrations
from switchboard.store.pool import close_pool, create_pool
from switchboard.store.writer import EventWriter

DAY = date(2026, 3, 2)
AST_DIR = "/var/lib/switchboard/recordings"


def then(events: list[CallEvent], dt: float, kind: str, **data: Any) -> list[CallEvent]:
    """Append one event ``dt`` seconds after the call's last event."""
    last = events[-1]
    events.append(CallEvent(last.call_id, last.seq + 1, last.ts + timedelta(seconds=dt), kind, data))
    return events


def fixture_calls() -> list[list[CallEvent]]:
    c1 = make_call("k-000001", local(2026, 3, 2, 9), topic="social.pension", province="ha-noi", wait=10,
                   agent="a1", talk=120, wrap=30, survey=5)
    then(c1, 0, "agent.offer_result", agent_id="a1", result="answered")
    then(c1, 0, "call.recording", path=f"{AST_DIR}/calls/2026/03/02/k-000001.wav")
    c2 = make_call("k-000002", local(2026, 3, 2, 9, 30), topic="health.card", province="hue", wait=40,
                   agent="a2", talk=200, wrap=20, survey=3)
    c3 = make_call("k-000003", local(2026, 3, 2, 10), topic="social.pension", province="ha-noi", wait=30,
                   outcome="abandoned_queue")
    then(c3, 0, "agent.offer_result", agent_id="a1", result="timeout")
    c4 = make_call("k-000004", local(2026, 3, 2, 11), outcome="abandoned_ivr", node="menu")
    c5 = make_call("k-000005", local(2026, 3, 3, 8), topic="social.pension", province="ha-noi", wait=3,
                   agent="a1", talk=60, wrap=10)
    then(c5, 0, "call.recording", path="calls/2026/03/03/k-000005.wav")
    # 00:10 on the 2nd in Hà Nội is still the 1st in UTC: a local-day boundary case
    c6 = make_call("k-000006", local(2026, 3, 2, 0, 10), topic="health.card", province="hue", wait=5,
                   agent="a2", talk=30)
    c7 = make_call("k-000007", local(2026, 3, 1, 23, 50), topic="social.pension", province="ha-noi", wait=8,
                   outcome="abandoned_queue")
    then(c7, 0, "agent.offer_result", agent_id="a1", result="rejected")
    return [c1, c2, c3, c4, c5, c6, c7]


@pytest.fixture
async def migrated(fresh_db: str) -> str:
    conn = await asyncpg.connect(fresh_db, timeout=10)
    try:
        await apply_migrations(conn)
    finally:
        await conn.close(timeout=5)
    return fresh_db


@pytest.fixture
async def pool(migrated: str) -> AsyncIterator[asyncpg.Pool]:
    p = await create_pool(DatabaseSettings(dsn=migrated, pool_min=1, pool_max=3, command_timeout=10))
    yield p
    await close_pool(p)


@pytest.fixture
async def day_db(migrated: str, pool: asyncpg.Pool, tmp_path: Path) -> str:
    """The fixture day, written through the real EventWriter. The second half of every
    timeline goes in first, so arrival order differs from seq order."""
    w = EventWriter(DatabaseSettings(dsn=migrated, spool_dir=str(tmp_path / "spool"), flush_interval=0.05,
                                     command_timeout=5.0), connect_timeout=5.0)
    await w.start()
    calls = fixture_calls()
    for events in calls:
        for e in events[len(events) // 2:]:
            w.submit(e)
    await w.flush(timeout=15)
    for events in calls:
        for e in events[:len(events) // 2]:
            w.submit(e)
    await w.flush(timeout=15)
    await w.stop()
    assert w.written_total == sum(len(c) for c in calls)
    return migrated


# ============================================================================ calls


async def test_search_by_local_day_newest_first_with_paging(day_db: str, pool: asyncpg.Pool) -> None:
    calls = PgCallService(pool)
    page = await calls.search(CallQuery(date_from=DAY, date_to=DAY))
    # local 2 March: c6 (00:10), c1 (09:00), c2 (09:30), c3 (10:00), c4 (11:00); not c7 (1 Mar 23:50
    # local), nor c5 (3 Mar)
    assert [c.call_id for c in page.items] == ["k-000004", "k-000003", "k-000002", "k-000001", "k-000006"]
    assert page.total == 5
    two = await calls.search(CallQuery(date_from=DAY, date_to=DAY, limit=2, offset=2))
    assert ([c.call_id for c in two.items], two.total) == (["k-000002", "k-000001"], 5)
    past_end = await calls.search(CallQuery(date_from=DAY, date_to=DAY, limit=2, offset=10))
    assert (list(past_end.items), past_end.total) == ([], 5)
    only_from = await calls.search(CallQuery(date_from=date(2026, 3, 3)))
    assert [c.call_id for c in only_from.items] == ["k-000005"]
    only_to = await calls.search(CallQuery(date_to=date(2026, 3, 1)))
    assert [c.call_id for c in only_to.items] == ["k-000007"]


async def test_search_by_number_agent_outcome(day_db: str, pool: asyncpg.Pool) -> None:
    calls = PgCallService(pool)
    exact = await calls.search(CallQuery(number="0901000001"))
    assert [c.call_id for c in exact.items] == ["k-000001"]
    intl = await calls.search(CallQuery(number="+84901000001"))  # the same number, international form
    assert [c.call_id for c in intl.items] == ["k-000001"]
    part = await calls.search(CallQuery(number="00000"))  # contained in every fixture caller
    assert part.total == 7
    assert (await calls.search(CallQuery(number="0999"))).total == 0
    a1 = await calls.search(CallQuery(agent_id="a1"))
    assert [c.call_id for c in a1.items] == ["k-000005", "k-000001"]  # offers alone (c3, c7) do not count
    a2_day = await calls.search(CallQuery(agent_id="a2", date_from=DAY, date_to=DAY))
    assert [c.call_id for c in a2_day.items] == ["k-000002", "k-000006"]
    gone = await calls.search(CallQuery(outcome="abandoned_queue"))
    assert [c.call_id for c in gone.items] == ["k-000003", "k-000007"]
    none = await calls.search(CallQuery(outcome="abandoned_queue", agent_id="a1"))
    assert none.total == 0 and not none.items


async def test_summary_fields(day_db: str, pool: asyncpg.Pool) -> None:
    calls = PgCallService(pool)
    page = await calls.search(CallQuery(number="0901000001"))
    c1 = page.items[0]
    assert c1.started_at == local(2026, 3, 2, 9)
    assert (c1.caller, c1.dialed, c1.topic, c1.province) == ("0901000001", "19008000", "social.pension", "ha-noi")
    assert (tuple(c1.agent_ids), c1.outcome, c1.wait_s, c1.talk_s, c1.has_recording) == \
        (("a1",), "answered", 10.0, 120.0, True)
    c3 = (await calls.search(CallQuery(number="0901000003"))).items[0]
    # not answered: wait = queue join -> end = 30 s; no agent, no recording
    assert (tuple(c3.agent_ids), c3.wait_s, c3.talk_s, c3.has_recording) == ((), 30.0, None, False)
    c4 = (await calls.search(CallQuery(number="0901000004"))).items[0]
    assert (c4.wait_s, c4.outcome, c4.topic) == (None, "abandoned_ivr", None)


async def test_get_timeline_in_seq_order_and_not_found(day_db: str, pool: asyncpg.Pool) -> None:
    calls = PgCallService(pool)
    detail = await calls.get("k-000001")
    expected = fixture_calls()[0]
    assert [t.seq for t in detail.timeline] == list(range(1, len(expected) + 1))
    assert [t.kind for t in detail.timeline] == [e.kind for e in expected]
    assert [t.ts for t in detail.timeline] == [e.ts for e in expected]
    assert detail.timeline[-1].data == {"path": f"{AST_DIR}/calls/2026/03/02/k-000001.wav"}
    assert detail.call.call_id == "k-000001" and detail.call.has_recording
    # arrival order really was different from seq order (second half written first)
    conn = await asyncpg.connect(day_db, timeout=10)
    try:
        by_id = await conn.fetch("SELECT seq FROM call_events WHERE call_id = 'k-000001' ORDER BY id", timeout=10)
    finally:
        await conn.close(timeout=5)
    assert [r["seq"] for r in by_id] != sorted(r["seq"] for r in by_id)
    with pytest.raises(NotFoundError) as err:
        await calls.get("k-nope")
    assert err.value.details == {"call_id": "k-nope"}


# ============================================================================ recordings


async def test_recording_paths_mapped_into_recordings_dir(day_db: str, pool: asyncpg.Pool,
                                                          tmp_path: Path) -> None:
    rec_dir = tmp_path / "recordings"
    settings = Settings().replace(paths=PathSettings(recordings_dir=str(rec_dir),
                                                 asterisk_recordings_dir=AST_DIR))
    recs = PgRecordingService.from_settings(pool, settings)
    # absolute path as Asterisk wrote it -> the same file under our recordings_dir
    assert await recs.path_for("k-000001") == rec_dir / "calls/2026/03/02/k-000001.wav"
    # a relative path is relative to recordings_dir
    assert await recs.path_for("k-000005") == rec_dir / "calls/2026/03/03/k-000005.wav"
    assert await recs.path_for("k-000002") is None  # no recording
    assert await recs.path_for("k-nope") is None  # no call
    assert resolve_recording(rec_dir, rec_dir / "calls/2026/03/02/k-000001.wav") is not None
    # paths that leave the folder come back unchanged (normalised): the API refuses them
    assert recs.map_path("/etc/passwd") == Path("/etc/passwd")
    sneaky = recs.map_path(f"{AST_DIR}/../../../etc/passwd")
    assert sneaky == Path("/var/etc/passwd")
    assert resolve_recording(rec_dir, sneaky) is None
    assert resolve_recording(rec_dir, recs.map_path("calls/../../x.wav")) is None
    same = PgRecordingService(pool, recordings_dir=rec_dir)  # Asterisk sees the folder where we do
    assert same.map_path(str(rec_dir / "calls/a.wav")) == rec_dir / "calls/a.wav"


# ============================================================================ reports


async def test_daily_report_hand_worked_and_consistent_with_store(day_db: str, pool: asyncpg.Pool) -> None:
    svc = PgReportService(pool, Settings())
    assert {"daily", "hourly", "weekly", "daily-by-topic", "ivr-dropoff"} <= set(svc.names())
    table = await svc.run("daily", date_from=DAY, date_to=DAY)
    assert table.name == "daily"
    assert len(table.rows) == 1
    row = dict(zip(table.columns, table.rows[0], strict=True))
    # started on 2 Mar (local): c6, c1, c2, c3, c4; offered = c6, c1, c2, c3; answered c6, c1, c2;
    # c3 abandoned after 30 s (>= 5 s); within 20 s: c1 (10 s) and c6 (5 s)
    assert (row["period"], row["group"], row["calls"], row["offered"], row["answered"]) == \
        ("2026-03-02", "(all)", 5, 4, 3)
    assert (row["answered_in_sl"], row["abandoned"], row["short_abandoned"], row["waiting"]) == (2, 1, 0, 0)
    assert row["service_level"] == 0.5
    assert row["asa_s"] == round((10 + 40 + 5) / 3, 4)
    # handle: (120 + 30) + (200 + 20) + (30 + 0) over 3 answered calls
    assert row["aht_s"] == round(400 / 3, 4)
    assert (row["csat_avg"], row["csat_responses"]) == (4.0, 2)

    # the same figures as the store's own report, over three days
    start = datetime(2026, 3, 1, tzinfo=UTC) - timedelta(hours=7)
    end = start + timedelta(days=3)
    async with pool.acquire(timeout=10) as conn:
        store_rows = await reports.fetch_report(conn, start=start, end=end, interval="day")
        store_topics = await reports.fetch_report(conn, start=start, end=end, interval="day", group_by="topic")
        store_ivr = await reports.fetch_ivr_dropoff(conn, start=start, end=end)
    three = await svc.run("daily", date_from=date(2026, 3, 1), date_to=date(2026, 3, 3))
    assert len(three.rows) == len(store_rows) == 3
    for mine, theirs in zip(three.rows, store_rows, strict=True):
        assert mine[0] == theirs.period.date().isoformat()
        for col, v in zip(three.columns[1:], mine[1:], strict=True):
            expected = getattr(theirs, col)
            assert v == (round(expected, 4) if isinstance(expected, float) else expected), col
    topics = await svc.run("daily-by-topic", date_from=date(2026, 3, 1), date_to=date(2026, 3, 3))
    assert [(r[0], r[1], r[3]) for r in topics.rows] == \
        [(s.period.date().isoformat(), s.group, s.offered) for s in store_topics]
    ivr = await svc.run("ivr-dropoff", date_from=date(2026, 3, 1), date_to=date(2026, 3, 3))
    assert ivr.columns[:3] == ["node", "visits", "dropped"]
    assert [tuple(r[:3]) for r in ivr.rows] == [(s.node, s.visits, s.dropped) for s in store_ivr]
    assert ("menu", 7, 1) in [tuple(r[:3]) for r in ivr.rows]  # every call passed "menu"; c4 left there

    hourly = await svc.run("hourly", date_from=DAY, date_to=DAY)
    assert [r[0] for r in hourly.rows] == ["2026-03-02T00:00", "2026-03-02T09:00", "2026-03-02T10:00",
                                           "2026-03-02T11:00"]
    with pytest.raises(NotFoundError):
        await svc.run("nope", date_from=DAY, date_to=DAY)
    with pytest.raises(ValueError):
        await svc.run("daily", date_from=DAY, date_to=DAY - timedelta(days=1))


async def test_agent_day_figures(day_db: str, pool: asyncpg.Pool) -> None:
    log_ = AgentStateLog(pool, flush_interval=0.05)
    await log_.start()
    rows = [  # agent a1, local times
        ("a1", local(2026, 3, 1, 23), "ready", "paused", "break"),
        ("a1", local(2026, 3, 2, 0, 30), "paused", "ready", None),     # 00:00-00:30 paused on the 2nd: 1800 s
        ("a1", local(2026, 3, 2, 9, 0, 10), "ready", "on_call", None),
        ("a1", local(2026, 3, 2, 9, 2, 10), "on_call", "wrap_up", None),
        ("a1", local(2026, 3, 2, 9, 2, 40), "wrap_up", "ready", None),  # wrap-up 30 s
        ("a1", local(2026, 3, 2, 12), "ready", "paused", "lunch"),
        ("a1", local(2026, 3, 2, 13), "paused", "ready", None),         # paused 3600 s
        ("a1", local(2026, 3, 2, 23, 50), "ready", "wrap_up", None),
        ("a1", local(2026, 3, 3, 0, 20), "wrap_up", "ready", None),     # 23:50-24:00 on the 2nd: 600 s
        ("a3", local(2026, 3, 2, 23), "ready", "paused", "meeting"),    # still paused: 3600 s on the 2nd
    ]
    for agent, at, frm, to, reason in rows:
        log_.record(agent, at, frm, to, reason)
    assert await log_.flush(timeout=10)
    await log_.stop()
    svc = PgReportService(pool, Settings())
    a1 = await svc.agent_day("a1", day=DAY)
    # answered c1 only (c5 is on the 3rd); missed: c3 timeout (c7's rejection is on the 1st, local)
    assert (a1.answered, a1.missed_offers, a1.talk_s) == (1, 1, 120.0)
    assert (a1.paused_s, a1.wrap_up_s) == (1800.0 + 3600.0, 30.0 + 600.0)
    assert a1.avg_handle_s == 120.0 + 630.0
    assert a1.survey_avg == 5.0
    a2 = await svc.agent_day("a2", day=DAY)
    # c6 (00:10 local) and c2; talk 30 + 200; survey of c2 only
    assert (a2.answered, a2.missed_offers, a2.talk_s, a2.wrap_up_s, a2.paused_s) == (2, 0, 230.0, 0.0, 0.0)
    assert (a2.avg_handle_s, a2.survey_avg) == (115.0, 3.0)
    a3 = await svc.agent_day("a3", day=DAY)
    assert (a3.answered, a3.paused_s, a3.avg_handle_s, a3.survey_avg) == (0, 3600.0, None, None)
    a1_next = await svc.agent_day("a1", day=date(2026, 3, 3))
    # c5 answered; wrap-up 00:00-00:20 = 1200 s, then ready until now (not counted)
    assert (a1_next.answered, a1_next.talk_s, a1_next.wrap_up_s, a1_next.paused_s) == (1, 60.0, 1200.0, 0.0)


# ============================================================================ flows

GOOD = "flow: demo\nstart: a\nnodes:\n  a:\n    type: hangup\n"
GOOD_V2 = "flow: demo\nstart: a\nnodes:\n  a:\n    type: hangup\n    reason: done\n"
BROKEN = ("flow: demo\nstart: a\nnodes:\n  a:\n    type: hangup\n    oops: 1\n"
          "  b:\n    type: play\n    prompts: [x]\n    next: nowhere\n")


async def test_flow_validate_reports_file_line_column(tmp_path: Path) -> None:
    svc = RegistryFlowService(FlowRegistry(tmp_path, None, log_errors=False))
    ok = await svc.validate(GOOD, name="demo")
    assert ok.ok and not ok.problems
    bad = await svc.validate(BROKEN, name="demo")
    assert not bad.ok
    assert [(p.where, p.message) for p in bad.problems] == [
        ("demo.yaml:6:5", "node a: unknown key 'oops' for type hangup (allowed: prompts, reason)"),
        ("demo.yaml:10:11", "node b: destination 'nowhere' does not exist"),
    ]
    syntax = await svc.validate("flow: demo\nstart: a\nnodes:\n  a: [\n", name="x.yaml")
    assert [p.where for p in syntax.problems] == ["x.yaml:5:1"]
    transfer = await svc.validate("flow: demo\nstart: a\nnodes:\n  a:\n    type: transfer\n    flow: other\n",
                                  name="demo")
    assert [(p.where, p.message) for p in transfer.problems] == [
        ("demo.yaml:4:3", "node a: transfer to unknown flow 'other'")]


async def test_flow_reload_keeps_last_good_version(tmp_path: Path) -> None:
    registry = FlowRegistry(tmp_path, None, log_errors=False)
    svc = RegistryFlowService(registry)
    path = tmp_path / "demo.yaml"
    path.write_text(GOOD, encoding="utf-8")
    first = await svc.reload()
    assert (list(first.loaded), list(first.problems)) == (["demo"], [])
    v1 = registry.flow("demo").version
    path.write_text(BROKEN, encoding="utf-8")
    second = await svc.reload()
    assert list(second.loaded) == []
    wheres = [p.where for p in second.problems]
    assert f"{path}:6:5" in wheres and f"{path}:10:11" in wheres
    assert any(f"version {v1} keeps running" in p.message for p in second.problems)
    assert registry.flow("demo").version == v1  # still in service
    path.write_text(GOOD_V2, encoding="utf-8")
    third = await svc.reload()
    assert (list(third.loaded), list(third.problems)) == (["demo"], [])
    assert registry.flow("demo").version != v1


# ============================================================================ health and pool


async def test_health_checks_and_pool(migrated: str, pool: asyncpg.Pool) -> None:
    async def database() -> bool:
        return bool(await pool.fetchval("SELECT true", timeout=2))

    async def slow() -> bool:
        await asyncio.sleep(5)
        return True

    def boom() -> bool:
        raise RuntimeError("broken check")

    health = HealthChecks({"database": database, "ami": lambda: False, "boom": boom, "slow": slow,
                           "plain": lambda: True}, timeout=0.3)
    t0 = asyncio.get_running_loop().time()
    assert dict(await health.checks()) == {"database": True, "ami": False, "boom": False, "slow": False,
                                           "plain": True}
    assert asyncio.get_running_loop().time() - t0 < 2  # the slow check was cut at 0.3 s, concurrently
    refused = DatabaseSettings(dsn=f"postgresql://postgres@127.0.0.1:{free_port()}/x", pool_min=1, pool_max=1)
    t0 = asyncio.get_running_loop().time()
    with pytest.raises(OSError):
        await create_pool(refused, connect_timeout=1.0)
    assert asyncio.get_running_loop().time() - t0 < 5


# ============================================================================ agent state log


async def _states(dsn: str) -> list[tuple[Any, ...]]:
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        rows = await conn.fetch("SELECT agent_id, at, from_state, to_state, reason, call_id, duration_s "
                                "FROM agent_state_log ORDER BY at, id", timeout=10)
    finally:
        await conn.close(timeout=5)
    return [tuple(r) for r in rows]


async def _until(pred: Any, timeout: float) -> bool:
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        if await pred():
            return True
        await asyncio.sleep(0.05)
    return bool(await pred())


T0 = datetime(2026, 3, 2, 2, 0, tzinfo=UTC)


async def test_agent_state_log_writes_on_its_timer(migrated: str, pool: asyncpg.Pool) -> None:
    log_ = AgentStateLog(pool)  # default: every 0.5 s
    await log_.start()
    log_.record("a1", T0, None, "ready", "login")
    log_.record("a1", T0 + timedelta(seconds=42.5), "ready", "offered", None, "k-1", 42.5)
    assert log_.queue_depth == 2  # queued, not written by record()
    assert await _until(lambda: _count(migrated, 2), timeout=3)
    assert log_.written_total == 2 and log_.queue_depth == 0
    assert await _states(migrated) == [
        ("a1", T0, None, "ready", "login", None, None),
        ("a1", T0 + timedelta(seconds=42.5), "ready", "offered", None, "k-1", 42.5),
    ]
    with pytest.raises(ValueError):
        log_.record("a1", datetime(2026, 3, 2, 2), "ready", "paused")  # naive
    await log_.stop()


async def _count(dsn: str, n: int) -> bool:
    return len(await _states(dsn)) == n


@pytest.mark.parametrize("mode", ["dsn", "pool"])
async def test_agent_state_log_survives_the_database_going_away(migrated: str, mode: str,
                                                                caplog: pytest.LogCaptureFixture) -> None:
    proxy = TcpProxy(*host_port(migrated))
    await proxy.start()
    via_proxy = proxy.dsn(migrated)
    proxy_pool = None
    if mode == "pool":
        proxy_pool = await create_pool(DatabaseSettings(dsn=via_proxy, pool_min=1, pool_max=2,
                                                        command_timeout=2), connect_timeout=2)
    log_ = AgentStateLog(proxy_pool if proxy_pool is not None else via_proxy, flush_interval=0.05, timeout=2.0,
                         reconnect_min=0.05, reconnect_max=0.3)
    try:
        await log_.start()
        for i in range(2):
            log_.record("a1", T0 + timedelta(seconds=i), None, f"s{i}")
        assert await log_.flush(timeout=10)
        assert log_.written_total == 2
        proxy.cut()
        with caplog.at_level(logging.WARNING, logger="switchboard.api.services"):
            for i in range(2, 6):
                log_.record("a1", T0 + timedelta(seconds=i), f"s{i - 1}", f"s{i}")
            assert not await log_.flush(timeout=1.0)  # the database is away: kept, not written
        assert log_.queue_depth == 4 and log_.written_total == 2 and log_.dropped_total == 0
        assert log_.last_error is not None
        assert any("cannot write" in r.getMessage() for r in caplog.records)
        proxy.restore()
        assert await log_.flush(timeout=10)
        assert (log_.written_total, log_.dropped_total) == (6, 0)
        assert not log_.last_error  # cleared once the database took rows again
    finally:
        await log_.stop()
        if proxy_pool is not None:
            await close_pool(proxy_pool, timeout=2)
        await proxy.close()
    states = await _states(migrated)
    assert [s[3] for s in states] == [f"s{i}" for i in range(6)]  # every change once, in order


async def test_agent_state_log_bounded_drops_oldest_and_stop_reports_leftovers(
        migrated: str, caplog: pytest.LogCaptureFixture) -> None:
    proxy = TcpProxy(*host_port(migrated))
    await proxy.start()
    log_ = AgentStateLog(proxy.dsn(migrated), max_rows=4, batch_size=2, flush_interval=0.05, timeout=2.0,
                         reconnect_min=0.05, reconnect_max=0.2, stop_timeout=0.5)
    try:
        await log_.start()
        proxy.cut()
        with caplog.at_level(logging.WARNING, logger="switchboard.api.services"):
            for i in range(7):
                log_.record("a2", T0 + timedelta(seconds=i), None, f"s{i}")
                await asyncio.sleep(0.03)  # let the loop try (and fail) between records
            await asyncio.sleep(0.3)
        assert (log_.queue_depth, log_.dropped_total, log_.written_total) == (4, 3, 0)
        assert sum("queue full" in r.getMessage() for r in caplog.records) == 1  # one line, not one per row
        proxy.restore()
        assert await log_.flush(timeout=10)
        assert [s[3] for s in await _states(migrated)] == ["s3", "s4", "s5", "s6"]  # the newest four
        proxy.cut()
        log_.record("a2", T0 + timedelta(seconds=10), "s6", "s7")
        log_.record("a2", T0 + timedelta(seconds=11), "s7", "s8")
        t0 = asyncio.get_running_loop().time()
        with caplog.at_level(logging.ERROR, logger="switchboard.api.services"):
            await log_.stop()
        assert asyncio.get_running_loop().time() - t0 < 3
        assert (log_.dropped_total, log_.queue_depth) == (5, 0)
        assert any("2 changes not written" in r.getMessage() for r in caplog.records)
    finally:
        await log_.stop()
        await proxy.close()
