"""Every report figure on a fixture day whose numbers were worked out by hand.

Fixture day: Monday 2 March 2026, Vietnam time. T (service level) = 20 s,
short abandon threshold = 5 s. Waits are queue join -> answer / hang-up.

 #  id    topic        province  started  wait  result                 agent talk wrap survey
 1  q01   pension      Hà Nội    07:59:30  10   answered               a1    120  30   5
 2  q02   pension      Hà Nội    08:10     30   answered, 1 transfer   a2    200  20   3
 3  q03   health       Đà Nẵng   08:20      5   answered               a1     60   -   -
 4  q04   health       Hà Nội    08:30     20   answered (== T: in SL) a2    100  10   4
 5  q05   pension      Hà Nội    08:40      3   abandoned SHORT
 6  q06   health       Đà Nẵng   08:41     45   abandoned
 7  q07   pension      Đà Nẵng   08:42      5   abandoned (== 5: not short)
 8  q08   unemployment Hà Nội    08:43     60   callback, later reached
 9  q09   unemployment Đà Nẵng   08:44     90   callback, not reached
10  i10   -            -         08:50      -   hung up in IVR at "menu"
11  i11   -            -         08:51      -   hung up in IVR at "id_entry" (visited menu twice)
12  i12   -            -         08:52      -   self-service done at "info"
13  q13   pension      Hà Nội    14:10      8   answered               a1     90  15   2
14  n14   pension      Hà Nội    3 Mar 09:00 9  answered (next day: outside the window)
"""

from __future__ import annotations

import csv
import io
import json
import random
from datetime import datetime
from pathlib import Path

import asyncpg
import pytest
from store_helpers import local, make_call

from switchboard.config import DatabaseSettings
from switchboard.events import CallEvent
from switchboard.store import reports
from switchboard.store.writer import EventWriter

DAY = (local(2026, 3, 2, 0), local(2026, 3, 3, 0))
PENSION, HEALTH, UNEMP = "social/pension", "health/card", "unemployment/benefit"
HN, DN = "Hà Nội", "Đà Nẵng"


def fixture_events() -> list[CallEvent]:
    d = (2026, 3, 2)
    calls = [
        make_call("q01", local(*d, 7, 59, 30), topic=PENSION, province=HN, wait=10, agent="a1", talk=120, wrap=30, survey=5),
        make_call("q02", local(*d, 8, 10), topic=PENSION, province=HN, wait=30, agent="a2", talk=200, wrap=20, survey=3, transfers=1),
        make_call("q03", local(*d, 8, 20), topic=HEALTH, province=DN, wait=5, agent="a1", talk=60),
        make_call("q04", local(*d, 8, 30), topic=HEALTH, province=HN, wait=20, agent="a2", talk=100, wrap=10, survey=4),
        make_call("q05", local(*d, 8, 40), topic=PENSION, province=HN, wait=3, outcome="abandoned_queue"),
        make_call("q06", local(*d, 8, 41), topic=HEALTH, province=DN, wait=45),
        make_call("q07", local(*d, 8, 42), topic=PENSION, province=DN, wait=5),
        make_call("q08", local(*d, 8, 43), topic=UNEMP, province=HN, wait=60, callback="cb8", callback_result="answered"),
        make_call("q09", local(*d, 8, 44), topic=UNEMP, province=DN, wait=90, callback="cb9"),
        make_call("i10", local(*d, 8, 50), outcome="abandoned_ivr", node="menu"),
        make_call("i11", local(*d, 8, 51), ivr_nodes=("welcome", "menu", "id_entry", "menu", "id_entry"),
                  outcome="abandoned_ivr", node="id_entry"),
        make_call("i12", local(*d, 8, 52), ivr_nodes=("welcome", "menu", "id_entry", "info"),
                  outcome="self_service", node="info"),
        make_call("q13", local(*d, 14, 10), topic=PENSION, province=HN, wait=8, agent="a1", talk=90, wrap=15, survey=2),
        make_call("n14", local(2026, 3, 3, 9, 0), topic=PENSION, province=HN, wait=9, agent="a1", talk=50, wrap=5),
    ]
    return [e for c in calls for e in c]


async def _load(dsn: str, tmp: Path, events: list[CallEvent]) -> EventWriter:
    w = EventWriter(DatabaseSettings(dsn=dsn, spool_dir=str(tmp / "spool"), batch_size=7))
    await w.start()
    try:
        for e in events:
            w.submit(e)
        await w.flush(timeout=30)
    finally:
        await w.stop()
    return w


async def _report(conn: asyncpg.Connection, **kw: object) -> list[reports.ReportRow]:
    return await reports.fetch_report(conn, start=DAY[0], end=DAY[1], service_level_s=20, short_abandon_s=5,
                                      **kw)  # type: ignore[arg-type]


@pytest.fixture
async def day(migrated_db: str, tmp_path: Path, db: asyncpg.Connection) -> asyncpg.Connection:
    await _load(migrated_db, tmp_path, fixture_events())
    return db


async def test_day_totals(day: asyncpg.Connection) -> None:
    [r] = await _report(day)
    assert r.period == datetime(2026, 3, 2)
    assert r.group == "(all)"
    assert r.calls == 13
    assert r.offered == 10                  # q01..q09, q13
    assert r.answered == 5                  # q01 q02 q03 q04 q13
    assert r.answered_in_sl == 4            # waits 10, 5, 20, 8 (30 is over)
    assert r.abandoned == 2                 # q06 (45), q07 (5)
    assert r.short_abandoned == 1           # q05 (3)
    assert r.callbacks == 2 and r.callbacks_reached == 1
    assert r.waiting == 0
    assert r.service_level == pytest.approx(4 / 10)
    assert r.asa_s == pytest.approx((10 + 30 + 5 + 20 + 8) / 5)          # 14.6
    assert r.avg_wait_s == pytest.approx(276 / 10)                        # 10+30+5+20+3+45+5+60+90+8
    assert r.p90_wait_s == pytest.approx(60)  # sorted 3 5 5 8 10 20 30 45 60 90: 9th of 10
    assert r.aht_s == pytest.approx((150 + 220 + 60 + 110 + 105) / 5)     # 129
    assert r.transfers == 1
    assert r.csat_avg == pytest.approx((5 + 3 + 4 + 2) / 4)               # 3.5
    assert r.csat_responses == 4
    assert r.csat_response_rate == pytest.approx(4 / 5)


async def test_by_hour(day: asyncpg.Connection) -> None:
    rows = {r.period.hour: r for r in await _report(day, interval="hour")}
    assert sorted(rows) == [7, 8, 14]       # q01 started 07:59:30 -> the 07:00 hour
    h7, h8, h14 = rows[7], rows[8], rows[14]
    assert (h7.calls, h7.offered, h7.answered, h7.service_level, h7.asa_s) == (1, 1, 1, 1.0, 10)
    assert (h8.calls, h8.offered, h8.answered, h8.answered_in_sl) == (11, 8, 3, 2)
    assert h8.service_level == pytest.approx(2 / 8)
    assert h8.asa_s == pytest.approx((30 + 5 + 20) / 3)
    assert (h8.abandoned, h8.short_abandoned, h8.callbacks) == (2, 1, 2)
    assert h8.aht_s == pytest.approx((220 + 60 + 110) / 3)
    assert (h14.offered, h14.answered, h14.asa_s, h14.aht_s, h14.csat_avg) == (1, 1, 8, 105, 2)


async def test_by_week_includes_next_day(db: asyncpg.Connection, migrated_db: str, tmp_path: Path) -> None:
    await _load(migrated_db, tmp_path, fixture_events())
    [w] = await reports.fetch_report(db, start=local(2026, 3, 2, 0), end=local(2026, 3, 9, 0),
                                     interval="week", service_level_s=20, short_abandon_s=5)
    assert w.period == datetime(2026, 3, 2)  # weeks start on Monday
    assert (w.calls, w.offered, w.answered, w.answered_in_sl) == (14, 11, 6, 5)
    assert w.service_level == pytest.approx(5 / 11)


async def test_by_half_hour_and_satisfied_share(day: asyncpg.Connection) -> None:
    rows = {f"{r.period:%H:%M}": r for r in await _report(day, interval="halfhour")}
    assert sorted(rows) == ["07:30", "08:00", "08:30", "14:00"]     # q01 07:59:30 -> 07:30
    assert (rows["08:00"].offered, rows["08:00"].answered, rows["08:00"].answered_in_sl) == (2, 2, 1)  # q02 30 s
    h = rows["08:30"]                                                 # q04..q09 queued, i10..i12 IVR only
    assert (h.calls, h.offered, h.answered, h.answered_in_sl, h.abandoned, h.short_abandoned, h.callbacks) == \
        (9, 6, 1, 1, 2, 1, 2)
    assert h.service_level == pytest.approx(1 / 6)
    [total] = await _report(day)
    assert (total.csat_responses, total.csat_satisfied) == (4, 2)     # 5, 3, 4, 2: two rated 4 or more
    assert total.csat_satisfied_rate == pytest.approx(0.5)


async def test_by_agent(day: asyncpg.Connection) -> None:
    rows = {r.group: r for r in await _report(day, group_by="agent")}
    assert set(rows) == {"a1", "a2", "(none)"}
    a1, a2, none = rows["a1"], rows["a2"], rows["(none)"]
    assert (a1.answered, a1.answered_in_sl) == (3, 3)                       # q01 q03 q13
    assert a1.asa_s == pytest.approx((10 + 5 + 8) / 3)
    assert a1.aht_s == pytest.approx((150 + 60 + 105) / 3)                  # 105
    assert (a1.csat_avg, a1.csat_responses) == (pytest.approx(3.5), 2)
    assert a1.csat_response_rate == pytest.approx(2 / 3)
    assert (a2.answered, a2.answered_in_sl, a2.transfers) == (2, 1, 1)      # q02 (30 s) q04 (20 s)
    assert a2.asa_s == pytest.approx(25) and a2.aht_s == pytest.approx(165)
    assert (none.calls, none.offered, none.answered) == (8, 5, 0)
    assert (none.abandoned, none.short_abandoned, none.callbacks, none.service_level) == (2, 1, 2, 0.0)


async def test_by_topic(day: asyncpg.Connection) -> None:
    rows = {r.group: r for r in await _report(day, group_by="topic")}
    assert set(rows) == {PENSION, HEALTH, UNEMP, "(none)"}
    p, h, u, n = rows[PENSION], rows[HEALTH], rows[UNEMP], rows["(none)"]
    assert (p.offered, p.answered, p.answered_in_sl, p.abandoned, p.short_abandoned) == (5, 3, 2, 1, 1)
    assert p.service_level == pytest.approx(2 / 5)
    assert p.avg_wait_s == pytest.approx((10 + 30 + 3 + 5 + 8) / 5)
    assert p.p90_wait_s == pytest.approx(30)  # sorted 3 5 8 10 30: rank ceil(4.5) = 5th
    assert p.asa_s == pytest.approx(16) and p.aht_s == pytest.approx(475 / 3)
    assert p.csat_avg == pytest.approx(10 / 3) and p.csat_response_rate == pytest.approx(1.0)
    assert (h.offered, h.answered, h.answered_in_sl, h.abandoned) == (3, 2, 2, 1)
    assert h.avg_wait_s == pytest.approx(70 / 3) and h.asa_s == pytest.approx(12.5)
    assert h.aht_s == pytest.approx(85) and h.csat_response_rate == pytest.approx(1 / 2)
    assert (u.offered, u.answered, u.callbacks, u.callbacks_reached, u.service_level) == (2, 0, 2, 1, 0.0)
    assert u.asa_s is None and u.aht_s is None and u.csat_response_rate is None
    assert (n.calls, n.offered, n.service_level, n.avg_wait_s) == (3, 0, None, None)


async def test_by_province(day: asyncpg.Connection) -> None:
    rows = {r.group: r for r in await _report(day, group_by="province")}
    hn, dn = rows[HN], rows[DN]
    assert (hn.offered, hn.answered, hn.answered_in_sl, hn.short_abandoned, hn.callbacks) == (6, 4, 3, 1, 1)
    assert hn.service_level == pytest.approx(0.5)
    assert (dn.offered, dn.answered, dn.answered_in_sl, dn.abandoned, dn.callbacks) == (4, 1, 1, 2, 1)
    assert dn.service_level == pytest.approx(0.25)
    assert rows["(none)"].calls == 3


async def test_ivr_dropoff(day: asyncpg.Connection) -> None:
    rows = {r.node: r for r in await reports.fetch_ivr_dropoff(day, start=DAY[0], end=DAY[1])}
    assert rows["welcome"].visits == 13 and rows["welcome"].dropped == 0
    assert rows["menu"].visits == 13 and rows["menu"].dropped == 1         # i11 visited twice: counted once
    assert rows["menu"].drop_rate == pytest.approx(1 / 13)
    assert (rows["id_entry"].visits, rows["id_entry"].dropped) == (2, 1)   # i11, i12
    assert (rows["info"].visits, rows["info"].dropped) == (1, 0)
    assert (rows["queue"].visits, rows["queue"].dropped) == (10, 0)   # the offered calls


async def test_replays_change_nothing(day: asyncpg.Connection, migrated_db: str, tmp_path: Path) -> None:
    before = await _report(day, group_by="topic")
    events = fixture_events()
    random.Random(6).shuffle(events)  # replayed twice, out of order
    w = await _load(migrated_db, tmp_path, events + events)
    assert w.written_total == 0 and w.duplicates_total == 2 * len(events)
    assert await _report(day, group_by="topic") == before
    assert await day.fetchval("SELECT count(*) FROM call_events", timeout=10) == len(events)
    assert await day.fetchval("SELECT sum(transfers) FROM calls", timeout=10) == 1
    assert await day.fetchval("SELECT count(*) FROM surveys", timeout=10) == 4   # q01 q02 q04 q13
    assert await day.fetchval("SELECT attempts FROM callbacks WHERE callback_id = 'cb8'", timeout=10) == 1


async def test_formats(day: asyncpg.Connection) -> None:
    rows = await _report(day, group_by="topic")
    parsed = json.loads(reports.to_json(rows))
    assert [r["group"] for r in parsed] == [r.group for r in rows]
    assert parsed[0]["period"] == "2026-03-02T00:00:00"
    table = list(csv.DictReader(io.StringIO(reports.to_csv(rows))))
    assert len(table) == len(rows) and table[0]["offered"] == str(rows[0].offered)
    text = reports.to_table(rows)
    assert text.splitlines()[0].split()[:3] == ["period", "group", "calls"]
    assert len(text.splitlines()) == len(rows) + 1


def test_report_command(migrated_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                        capsys: pytest.CaptureFixture[str]) -> None:
    import asyncio

    from switchboard.cli import main as cli_main

    asyncio.run(_load(migrated_db, tmp_path, fixture_events()))
    monkeypatch.setenv("SWITCHBOARD_DSN", migrated_db)
    monkeypatch.setenv("SWITCHBOARD_ROUTING_SERVICE_LEVEL_S", "20")
    monkeypatch.setenv("SWITCHBOARD_ROUTING_SHORT_ABANDON_S", "5")
    assert cli_main(["report", "--from", "2026-03-02", "--format", "json"]) == 0
    [row] = json.loads(capsys.readouterr().out)
    assert (row["offered"], row["answered"], row["service_level"], row["short_abandoned"]) == (10, 5, 0.4, 1)
    assert cli_main(["report", "--from", "2026-03-02", "--by", "agent", "--format", "csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert {r["group"]: r["answered"] for r in rows} == {"a1": "3", "a2": "2", "(none)": "0"}
    assert cli_main(["report", "--from", "2026-03-02", "--ivr"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["node", "visits", "dropped", "drop_rate"]
    assert any(line.split()[:3] == ["id_entry", "2", "1"] for line in lines)


def test_report_chart(migrated_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                      capsys: pytest.CaptureFixture[str]) -> None:
    """`switchboard report --chart`: a PNG of the fixture day, from series worked out by hand."""
    import asyncio

    from switchboard.cli import main as cli_main
    from switchboard.commands.report_chart import chart_data

    asyncio.run(_load(migrated_db, tmp_path, fixture_events()))

    async def series() -> object:
        conn = await asyncpg.connect(migrated_db, timeout=10)
        try:
            hourly = await _report(conn, interval="halfhour")   # what the CLI draws
            prov = await _report(conn, interval="week", group_by="province")
            ivr = await reports.fetch_ivr_dropoff(conn, start=DAY[0], end=DAY[1])
        finally:
            await conn.close()
        return chart_data(hourly, prov, ivr)

    data = asyncio.run(series())
    assert [h for h, _, _ in data.hours] == ["07:30", "08:00", "08:30", "14:00"]
    assert data.hours[0] == ("07:30", 1.0, 0.0)                       # q01: answered in 10 s
    assert data.hours[1] == ("08:00", 0.5, 0.0)                       # q02 answered in 30 s, q03 in time
    assert data.hours[2][1] == pytest.approx(1 / 6)
    assert data.hours[2][2] == pytest.approx(2 / 6)                    # q06, q07 abandoned of 6 offered
    assert data.provinces == [(HN, 4), (DN, 1)]
    assert data.funnel[:2] == [("menu", 13), ("welcome", 13)] and ("queue", 10) in data.funnel
    assert data.csat_avg == pytest.approx((5 + 3 + 4 + 2) / 4) and data.satisfied == pytest.approx(0.5)
    monkeypatch.setenv("SWITCHBOARD_DSN", migrated_db)
    out = tmp_path / "day.png"
    assert cli_main(["report", "--from", "2026-03-02", "--chart", str(out)]) == 0
    capsys.readouterr()
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 10_000
