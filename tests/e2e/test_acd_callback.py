"""Callback that keeps the caller's place (issue 5), on the real stack: the caller
presses 1 while waiting, hears the flow's ``callback_later`` prompt and is hung
up; the request keeps its original place in line. When its turn comes the
AGENT is called first (Originate into ``callback-out``), then the caller's
number on the trunk, played by a SIPp UAS behind the local "PSTN" port.
"""

from __future__ import annotations

import asyncio
import json
import re
import signal
import time
from pathlib import Path

import asyncpg
import pytest
from e2e_process import ServiceProcess, service_config, set_routing
from e2e_service import (
    HOTLINE,
    PENSION,
    close_owed_callbacks,
    run_caller,
    running_service,
    sip_remote,
    until,
)

from switchboard.demo.sipp import AwaitHangup, Dtmf, HangUp, Pause, caller_scenario

pytestmark = pytest.mark.e2e


def ivr(keys: str) -> list[Pause | Dtmf]:
    steps: list[Pause | Dtmf] = []
    for k in keys:
        steps += [Pause(2.5), Dtmf(k)]
    return steps


def _ts(ev: object) -> float:
    return ev.ts.timestamp()  # type: ignore[attr-defined]


async def test_callback_keeps_its_place_and_calls_the_agent_first(stack_env: dict[str, str], pg_dsn: str) -> None:
    async with running_service(stack_env, pg_dsn) as svc:
        svc.acd.callback_retry_s = 2.0
        agent = await svc.agent("agent1009", talk=None)
        busy, asks, dup, later = "02838200001", "02838200002", "02838200002", "02838200003"
        pstn = svc.pstn(answer_after=1.0, talk=3.0)
        # the first caller gets the agent; the others join the line while they talk
        talking = svc.call([*ivr(PENSION), Pause(25), HangUp()], caller=busy)
        asking = svc.call([Pause(2), *ivr(PENSION), Pause(7.5), Dtmf("1"), AwaitHangup(30)], caller=asks)
        cid = await svc.wait_call_id(asks)
        # the same number calls again (only once its first call is in: on a loaded machine two SIPp
        # callers started a second apart may arrive the other way round) and asks too while its
        # callback is pending: the first one is kept
        again = svc.call([*ivr(PENSION), Pause(11), Dtmf("1"), AwaitHangup(30)], caller=dup)
        waiting = svc.call([Pause(4), *ivr(PENSION), Pause(45), HangUp()], caller=later)
        answered_busy = await svc.wait_event(await svc.wait_call_id(busy), "call.answered", timeout=25)
        assert answered_busy.data["agent_id"] == "agent1009"
        requested = await svc.wait_event(cid, "callback.requested", timeout=25)
        callback_id = requested.data["callback_id"]
        assert requested.data["number"] == asks and callback_id
        await until(lambda: len(svc.call_ids_of(dup)) == 2, timeout=10, what="second call from the number")
        cid2 = svc.call_ids_of(dup)[1]
        second = await svc.wait_event(cid2, "callback.requested", timeout=25)
        assert second.data["callback_id"] == callback_id and second.data["duplicate"] is True
        for task in (asking, again):
            result = await task
            assert result.ok, result.errors or result.stderr       # the line was hung up on them
        assert "callback_later" in str([e.data for e in svc.of(cid, "ivr.step")])
        cid_later = await svc.wait_call_id(later)
        await svc.wait_event(cid_later, "queue.joined", timeout=25)
        # the callback still holds its place, ahead of the later caller
        order = [w.call_id for w in svc.acd.waiting_calls()]
        assert order == [cid, cid_later], order
        done = await svc.wait_event(cid, "callback.completed", timeout=45)
        assert done.data["result"] == "answered" and done.data["callback_id"] == callback_id
        offer = svc.of(cid, "agent.offer")[0]
        agent_took = svc.of(cid, "agent.offer_result")[0]
        assert offer.data["agent_id"] == "agent1009" and offer.data["callback_id"] == callback_id
        assert _ts(offer) <= _ts(agent_took) <= _ts(done)        # the agent first, then the caller
        # the later caller gets the agent only after the callback
        answered_later = await svc.wait_event(cid_later, "call.answered", timeout=30)
        assert _ts(answered_later) > _ts(done)
        assert (await pstn).ok
        assert (await talking).ok and (await waiting).ok
        row, timeline = await svc.record(cid, until=("call.ended", "callback.completed", "agent.wrap_up_ended"))
        assert (row["outcome"], row["callback_id"], row["callback_result"], row["agent_id"], row["offers"]) == \
            ("callback", callback_id, "answered", "agent1009", 1)
        seqs = [e["seq"] for e in timeline]
        assert seqs == sorted(set(seqs))
        kinds = [e["kind"] for e in timeline]
        assert kinds.index("callback.requested") < kinds.index("call.ended") < kinds.index("agent.offer") \
            < kinds.index("callback.completed")
        row2, _ = await svc.record(cid2)
        assert (row2["outcome"], row2["callback_id"]) == ("callback", callback_id)
        cbs = await svc.fetch("SELECT callback_id, call_id, number, result, attempts FROM callbacks "
                              "WHERE number = $1", asks)
        assert [(r["callback_id"], r["call_id"], r["result"], r["attempts"]) for r in cbs] == \
            [(callback_id, cid, "answered", 1)]
        assert agent.calls_answered() == 3
        assert json.loads(timeline[kinds.index("agent.offer")]["data"])["callback_id"] == callback_id


async def test_callback_retries_a_number_that_does_not_answer_up_to_the_limit(stack_env: dict[str, str],
                                                                              pg_dsn: str) -> None:
    async with running_service(stack_env, pg_dsn) as svc:
        svc.acd.callback_retry_s = 1.0
        svc.acd.callback_ring_s = 4.0
        limit = svc.acd.settings.callback_max_attempts
        agent = await svc.agent("agent1009", talk=None, ready=False)    # nobody free: the caller waits
        pstn = svc.pstn(mode="ringout", calls=limit)
        caller = "02838200009"
        asking = svc.call([*ivr(PENSION), Pause(7.5), Dtmf("1"), AwaitHangup(30)], caller=caller)
        cid = await svc.wait_call_id(caller)
        requested = await svc.wait_event(cid, "callback.requested", timeout=25)
        assert (await asking).ok
        svc.acd.ready("agent1009")
        await until(lambda: any(e.data.get("final") for e in svc.of(cid, "callback.completed")),
                    timeout=20 + 12 * limit, what="the last callback attempt")
        attempts = [(e.data["result"], e.data["attempt"], e.data["final"]) for e in svc.of(cid, "callback.completed")]
        assert attempts == [("no_answer", n, n == limit) for n in range(1, limit + 1)]
        assert [e.data["result"] for e in svc.of(cid, "agent.offer_result")] == ["answered"] * limit
        assert not svc.acd.waiting                                   # given up: out of the line
        await until(lambda: svc.status("agent1009") == "ready", timeout=8, what="agent1009 ready again")
        assert svc.acd.states["agent1009"].no_answer_streak == 0     # the agent did answer
        assert (await pstn).ok                                      # the number rang `limit` times
        assert agent.calls_answered() == limit
        row, _ = await svc.record(cid, until=("call.ended", "callback.completed"))
        await until(lambda: _attempts_stored(svc, requested.data["callback_id"], limit), timeout=10,
                    what="every attempt stored")
        cbs = await svc.fetch("SELECT result, attempts FROM callbacks WHERE callback_id = $1",
                              requested.data["callback_id"])
        assert [(r["result"], r["attempts"]) for r in cbs] == [("no_answer", limit)]
        assert (row["outcome"], row["agent_id"], row["offers"]) == ("callback", None, limit)


async def _callback_stored(dsn: str, caller: str, *, timeout: float = 40.0) -> asyncpg.Record:
    """The owed callback of ``caller`` once its request is in PostgreSQL."""
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        deadline = time.monotonic() + timeout
        while True:
            row = await conn.fetchrow("SELECT callback_id, call_id FROM callbacks WHERE number = $1 "
                                      "AND completed_at IS NULL ORDER BY requested_at DESC LIMIT 1", caller, timeout=5)
            if row is not None:
                return row
            assert time.monotonic() < deadline, f"no owed callback of {caller} stored within {timeout}s"
            await asyncio.sleep(0.2)
    finally:
        await conn.close()


async def _has_event(dsn: str, call_id: str, kind: str) -> bool:
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        return bool(await conn.fetchval("SELECT count(*) FROM call_events WHERE call_id = $1 AND kind = $2",
                                        call_id, kind, timeout=5))
    finally:
        await conn.close()


async def _joined_at(dsn: str, call_id: str) -> float:
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        ts = await conn.fetchval("SELECT ts FROM call_events WHERE call_id = $1 AND kind = 'queue.joined'",
                                 call_id, timeout=5)
    finally:
        await conn.close()
    assert ts is not None, f"no queue.joined of {call_id} stored"
    return float(ts.timestamp())


async def _attempts_stored(svc: object, callback_id: str, n: int) -> bool:
    rows = await svc.fetch("SELECT attempts FROM callbacks WHERE callback_id = $1", callback_id)  # type: ignore[attr-defined]
    return bool(rows) and rows[0]["attempts"] == n


async def test_owed_callback_survives_a_kill_9_of_the_service(stack_env: dict[str, str], pg_dsn: str,
                                                              tmp_path: Path) -> None:
    """The service runs as a real process (``switchboard run``) and is killed with SIGKILL while
    a callback is owed: no shutdown code runs. The next process reads the callback back from
    the database, keeps its place and its number of attempts, and calls it."""
    caller = "02838200021"
    config, http_port = await service_config(stack_env, pg_dsn, tmp_path)   # migrates the database
    # agents stay logged out at start (earlier tests of the shared database left some ready)
    set_routing(config, restore_agent_states_h=0.0)
    await close_owed_callbacks(pg_dsn)
    service = ServiceProcess(config, tmp_path / "service.log", http_port)
    asking = None
    try:
        await service.start()                                     # every agent logged out: the caller waits
        asking = asyncio.create_task(run_caller(
            caller_scenario([*ivr(PENSION), Pause(7.5), Dtmf("1"), AwaitHangup(30)], caller=caller),
            remote=sip_remote(stack_env), service=HOTLINE, timeout=90))
        stored = await _callback_stored(pg_dsn, caller)
        assert (await asking).ok
        callback_id, cid = stored["callback_id"], stored["call_id"]
        joined = await _joined_at(pg_dsn, cid)
        # the caller's hang-up is written before the crash: this test is about the owed callback,
        # not the events still in the writer's memory at the instant of a kill -9
        await until(lambda: _has_event(pg_dsn, cid, "call.ended"), timeout=15, what="call.ended stored")
        service.kill9()                                           # no shutdown code runs
        assert service.proc is not None and await asyncio.wait_for(service.proc.wait(), 10) == -signal.SIGKILL
    finally:
        if asking is not None and not asking.done():
            asking.cancel()
        await service.stop()
    # a new process (as after a crash or a deploy): the callback is back in line at start
    async with running_service(stack_env, pg_dsn, keep_owed_callbacks=True) as svc2:
        line = svc2.acd.waiting_calls()
        assert [w.call_id for w in line] == [cid]
        w = svc2.acd.waiting[cid]
        assert w.callback is not None and (w.callback.callback_id, w.callback.number) == (callback_id, caller)
        assert abs(w.joined_wall - joined) < 0.01                        # its place: when it joined the line
        metrics = svc2.app.context["metrics"].scrape().decode()
        assert "switchboard_callbacks_pending 1.0" in metrics
        pstn = svc2.pstn(answer_after=1.0, talk=2.0)
        agent = await svc2.agent("agent1009", talk=None)
        done = await svc2.wait_event(cid, "callback.completed", timeout=45)
        assert (done.data["result"], done.data["callback_id"], done.data["attempt"]) == ("answered", callback_id, 1)
        assert (await pstn).ok and agent.calls_answered() == 1
        row, timeline = await svc2.record(cid, until=("callback.completed", "agent.wrap_up_ended"))
        seqs = [e["seq"] for e in timeline]
        assert seqs == sorted(set(seqs))                                 # the new process numbers above the old
        kinds = [e["kind"] for e in timeline]
        assert kinds.index("call.ended") < kinds.index("agent.offer") < kinds.index("callback.completed")
        assert (row["outcome"], row["callback_id"], row["callback_result"], row["agent_id"]) == \
            ("callback", callback_id, "answered", "agent1009")
        assert not svc2.acd.waiting


async def test_after_hours_callback_joins_the_line_and_is_called(stack_env: dict[str, str], pg_dsn: str) -> None:
    """A caller asks for a callback in the after-hours menu: the request is recorded with an id,
    the next sweep puts it in line, and the first agent ready calls the number."""
    caller = "02838200022"
    # 18:00 in Vietnam: the hotline is closed (17:00), the calling window open (until 20:00)
    async with running_service(stack_env, pg_dsn, routing={"callback_sweep_s": 1.0},
                               ivr={"clock_offset_s": 8 * 3600}) as svc:
        asking = svc.call([Pause(2.5), Dtmf("1"), Pause(3), Dtmf("1"), AwaitHangup(40)], caller=caller)
        cid = await svc.wait_call_id(caller)
        requested = await svc.wait_event(cid, "callback.requested", timeout=30)
        callback_id = requested.data["callback_id"]
        assert callback_id and requested.data["number"] == caller
        assert (await asking).ok
        assert "queue.joined" not in svc.kinds(cid)
        await until(lambda: cid in svc.acd.waiting, timeout=15, what="the after-hours callback in line")
        pstn = svc.pstn(answer_after=1.0, talk=2.0)
        await svc.agent("agent1006", talk=None)
        done = await svc.wait_event(cid, "callback.completed", timeout=45)
        assert (done.data["result"], done.data["callback_id"]) == ("answered", callback_id)
        assert (await pstn).ok
        row, _ = await svc.record(cid, until=("call.ended", "callback.completed"))
        assert (row["outcome"], row["callback_id"], row["callback_result"]) == ("callback", callback_id, "answered")
        cbs = await svc.fetch("SELECT result, attempts FROM callbacks WHERE callback_id = $1", callback_id)
        assert [(r["result"], r["attempts"]) for r in cbs] == [("answered", 1)]


async def test_after_hours_callback_waits_for_the_calling_window(stack_env: dict[str, str], pg_dsn: str) -> None:
    """A callback asked at 07:28 (hotline closed, calling window closed until 07:30) is told
    "from seven thirty today", is not dialled while the window is closed although an agent is
    ready, and is dialled within a minute after it opens; its place and record stay right."""
    from datetime import datetime, timedelta
    from zoneinfo import ZoneInfo

    from test_ivr_service import AgiLog

    caller = "02838200024"
    opens = datetime(2026, 3, 4, 7, 30, tzinfo=ZoneInfo("Asia/Ho_Chi_Minh"))   # Wednesday
    # the harness's clock starts on Tuesday 10:00: + 21 h 28 min = Wednesday 07:28
    async with running_service(stack_env, pg_dsn, routing={"callback_sweep_s": 1.0},
                               ivr={"clock_offset_s": (21 * 60 + 28) * 60}) as svc:
        clock = svc.app.context["ivr_clock"]
        agi = AgiLog.attach(svc)
        await svc.agent("agent1006", talk=None)
        asking = svc.call([Pause(2.5), Dtmf("1"), Pause(3), Dtmf("1"), AwaitHangup(40)], caller=caller)
        cid = await svc.wait_call_id(caller)
        requested = await svc.wait_event(cid, "callback.requested", timeout=30)
        assert clock() < opens, "the request must come before the window opens (a slow machine?)"
        assert (await asking).ok
        played = re.findall(r"/vi/([a-z0-9_]+)", " ".join(agi.commands(cid)))
        notice = ["callback_expect_from", "num_7", "time_hours", "num_3", "num_muoi_ngang", "day_today"]
        at = played.index("callback_expect_from")                  # "... từ bảy giờ ba mươi hôm nay"
        assert played[at:at + len(notice)] == notice, played
        await until(lambda: cid in svc.acd.waiting, timeout=15, what="the after-hours callback in line")
        pstn = svc.pstn(answer_after=1.0, talk=2.0, timeout=240, expect_number=caller)
        while clock() < opens:                                     # ready agent, owed callback: no dial
            assert "agent.offer" not in svc.kinds(cid), f"dialled at {clock()} before the window opens"
            assert svc.acd.waiting[cid].offer is None
            await asyncio.sleep(0.25)
        offer = await svc.wait_event(cid, "agent.offer", timeout=60)
        assert clock() < opens + timedelta(seconds=60), f"dialled only at {clock()}"
        assert offer.data["agent_id"] == "agent1006"
        done = await svc.wait_event(cid, "callback.completed", timeout=45)
        assert (done.data["result"], done.data["callback_id"]) == ("answered", requested.data["callback_id"])
        assert (await pstn).ok
        row, _ = await svc.record(cid, until=("call.ended", "callback.completed"))
        assert (row["outcome"], row["callback_result"]) == ("callback", "answered")
