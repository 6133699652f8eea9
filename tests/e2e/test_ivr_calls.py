"""The hotline flow on the real Asterisk 22: SIPp callers press keys (SIP INFO),
the IVR runner drives the call over AsyncAGI with the committed prompt audio.
Asserts the AGI commands Asterisk ran, their results, and the recorded path.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from e2e_stack import ami_settings, put_heartbeat, sip_remote

from switchboard.ami.agi import AgiHangup, AgiManager, AgiResult, AgiSession
from switchboard.ami.client import AmiClient
from switchboard.demo.sipp import AwaitHangup, Dtmf, HangUp, Pause, caller_scenario, run_sipp
from switchboard.events import EventKind
from switchboard.ivr import machine as mc
from switchboard.ivr.registry import FlowRegistry
from switchboard.ivr.runner import IvrRunner, RunResult

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
OPEN = datetime(2026, 3, 3, 3, 0, tzinfo=UTC)  # Tuesday 10:00 in Hà Nội
EVENING = datetime(2026, 3, 3, 13, 0, tzinfo=UTC)  # 20:00


class Recorded:
    """The real AgiSession, with every command and result kept for the asserts."""

    def __init__(self, session: AgiSession) -> None:
        self._s = session
        self.channel, self.uniqueid, self.linkedid, self.env = (session.channel, session.uniqueid,
                                                                 session.linkedid, session.env)
        self.log: list[tuple[str, AgiResult | None]] = []
        self.times: list[tuple[float, float]] = []

    async def execute(self, command: str, *, timeout: float | None = None, tag: str = "") -> AgiResult:
        t0 = time.monotonic()
        try:
            result = await self._s.execute(command, timeout=timeout, tag=tag)
        except AgiHangup:
            self.log.append((command, None))
            self.times.append((t0, time.monotonic()))
            raise
        self.log.append((command, result))
        self.times.append((t0, time.monotonic()))
        return result

    def commands(self) -> list[str]:
        return [c for c, _ in self.log]


async def _call(stack_env: dict[str, str], steps: list[Any], *, dialed: str, caller: str,
                now: datetime) -> tuple[RunResult, Recorded, list[mc.Enqueue], list[Any], list[tuple[EventKind, Any]]]:
    registry = FlowRegistry(REPO / "ivr_flows", REPO / "recordings" / "prompts")
    assert registry.reload().ok
    started = time.monotonic()
    enqueued: list[mc.Enqueue] = []
    callbacks: list[Any] = []
    events: list[tuple[EventKind, Any]] = []

    async def on_enqueue(session: Any, request: mc.Enqueue) -> str:
        enqueued.append(request)
        await session.execute("EXEC StartMusicOnHold default", timeout=10)
        for _ in range(30):  # wait like a queued caller; the caller hangs up
            await session.execute("WAIT FOR DIGIT 1000", timeout=10)
        return "abandoned"

    async def on_callback(session: Any, request: mc.RequestCallback) -> str:
        callbacks.append(request)
        return "cb-e2e"

    runner = IvrRunner(
        registry, emit=lambda k, d: events.append((k, d)), on_enqueue=on_enqueue, on_callback=on_callback,
        sound_prefix=stack_env["STACK_SOUND_PREFIX"],
        clock=lambda: now + timedelta(seconds=time.monotonic() - started),
    )
    done: asyncio.Future[tuple[RunResult, Recorded]] = asyncio.get_running_loop().create_future()

    recs: list[Recorded] = []

    async def on_start(session: AgiSession) -> None:
        rec = Recorded(session)
        recs.append(rec)
        try:
            done.set_result((await runner.run(rec), rec))
        except Exception as exc:  # surface it in the test
            done.set_exception(exc)

    client = AmiClient(ami_settings(stack_env))
    await client.start(timeout=10)
    manager = AgiManager(client, on_start=on_start)
    try:
        await put_heartbeat(client)
        scenario = caller_scenario(steps, caller=caller)
        sipp = await run_sipp(scenario, remote=sip_remote(stack_env), service=dialed, timeout=90)
        try:
            result, rec = await asyncio.wait_for(done, 20)
        except TimeoutError:
            raise AssertionError(f"the runner did not finish; sipp ok={sipp.ok}; AGI so far: "
                                 f"{list(zip(recs[0].times, recs[0].log, strict=True)) if recs else 'no AsyncAGIStart'}") from None
        assert sipp.ok, sipp.errors or sipp.stderr
        return result, rec, enqueued, callbacks, events
    finally:
        await manager.aclose()
        await client.close()


async def test_pension_call_on_a_provincial_number(stack_env: dict[str, str]) -> None:
    steps = [Pause(2.5), Dtmf("1"), Pause(2.5), Dtmf("1"), Pause(2.5), Dtmf("1"), Pause(9), HangUp()]
    result, rec, enqueued, _, events = await _call(stack_env, steps, dialed="02439999001", caller="0912345678",
                                                   now=OPEN)
    prefix = stack_env["STACK_SOUND_PREFIX"]
    cmds = rec.commands()
    assert cmds[:2] == ["ANSWER", f'STREAM FILE "{prefix}/vi/welcome" "0123456789*#"']
    first = rec.log[1][1]
    assert first is not None and first.digit == "1"  # barged in on the welcome with DTMF 1
    assert f'GET DATA "{prefix}/vi/main_menu" 5000 1' in cmds
    results = {c: r for c, r in rec.log}
    main = results[f'GET DATA "{prefix}/vi/main_menu" 5000 1']
    assert main is not None and main.result == "1"
    social = results[f'GET DATA "{prefix}/vi/social_menu" 5000 1']
    assert social is not None and social.result == "1"
    assert f'EXEC Playback "{prefix}/vi/connecting"' in cmds
    play = results[f'EXEC Playback "{prefix}/vi/connecting"']
    assert play is not None and play.code == 200 and play.result == "0"  # the file exists and played
    assert [(e.topic, e.province, e.province_source) for e in enqueued] == [("social.pension", "ha-noi", "did")]
    assert result.end == mc.End("caller_hangup", "agent")
    path = [(d["node"], d["input"]) for k, d in events if k is EventKind.IVR_STEP]
    assert path == [("welcome", None), ("choose_language", "1"), ("hours_check", "default"),
                    ("session_check", "not found"), ("main_menu", "1"), ("social_menu", "1"), ("province_check", "case 1"),
                    ("connecting", None), ("agent", "hangup")]


async def test_english_then_hang_up_mid_menu_with_area_code_caller(stack_env: dict[str, str]) -> None:
    steps = [Pause(2.5), Dtmf("2"), Pause(4), HangUp()]
    result, rec, enqueued, _, events = await _call(stack_env, steps, dialed="19009068", caller="02363822000",
                                                   now=OPEN)
    prefix = stack_env["STACK_SOUND_PREFIX"]
    assert f'GET DATA "{prefix}/en/main_menu" 5000 1' in rec.commands()
    last_command, last_result = rec.log[-1]
    assert last_command == f'GET DATA "{prefix}/en/main_menu" 5000 1'  # nothing sent after the hang-up
    assert last_result is None or last_result.result == "-1"
    assert result.end == mc.End("caller_hangup", "main_menu")
    assert result.variables["caller_province"] == "da-nang" and result.variables["language"] == "en"
    assert enqueued == []
    assert [(d["node"], d["input"]) for k, d in events if k is EventKind.IVR_STEP][-1] == ("main_menu", "hangup")


async def test_after_hours_callback_request(stack_env: dict[str, str]) -> None:
    steps = [Pause(2.5), Dtmf("1"), Pause(3), Dtmf("1"), AwaitHangup(40)]
    result, rec, _, callbacks, events = await _call(stack_env, steps, dialed="19009068", caller="0912345678",
                                                    now=EVENING)
    prefix = stack_env["STACK_SOUND_PREFIX"]
    cmds = rec.commands()
    assert f'STREAM FILE "{prefix}/vi/closed" "0123456789*#"' in cmds
    assert cmds[-2:] == [f'EXEC Playback "{prefix}/vi/callback_confirmed&{prefix}/vi/goodbye"', "HANGUP"]
    assert callbacks == [mc.RequestCallback("0912345678", "general", "", "vi")]
    assert any(k is EventKind.CALLBACK_REQUESTED and d["callback_id"] == "cb-e2e" for k, d in events)
    assert result.end == mc.End("hangup", "callback_confirmed")
