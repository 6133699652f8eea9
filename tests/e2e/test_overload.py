"""Refuse cleanly past capacity (issue 12), on the real stack: SIPp callers, Asterisk 22, PostgreSQL.

With ``overload.max_calls`` low (the other limits off, so the test does not
depend on the machine's speed), callers under the limit are served by the IVR
flow; the extra ones hear "all lines are busy" (vi then en, the committed
prompt, as ``STREAM FILE`` commands Asterisk ran) and are hung up by the
service (SIPp receives the BYE), or, with ``action = "fallback"``, are handed
straight to the fallback queue. Their records say ``call.refused_overload``
with the reason and the figures, and close with outcome ``overload``. No
channel is left behind.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from e2e_service import Service, running_service, until
from test_ivr_service import AgiLog

from switchboard.demo.sipp import AwaitHangup, HangUp, Pause

pytestmark = pytest.mark.e2e

ONLY_CALLS = {"max_calls": 2, "max_loop_lag_s": 0.0, "max_agi_ack_s": 0.0}


async def _channels(svc: Service) -> list[Any]:
    listing = await svc.app.context["client"].send({"Action": "CoreShowChannels"}, timeout=10)
    return [ev for ev in getattr(listing, "events", ()) if ev.name == "CoreShowChannel"]


async def _none_left(svc: Service) -> bool:
    return not await _channels(svc)


async def test_past_max_calls_new_callers_hear_busy_and_are_hung_up(stack_env: dict[str, str],
                                                                   pg_dsn: str) -> None:
    async with running_service(stack_env, pg_dsn, overload=ONLY_CALLS) as svc:
        agi = AgiLog.attach(svc)
        held = ["0912000501", "0912000502"]
        extra = ["0912000503", "0912000504"]
        served = [svc.call([Pause(30), HangUp()], caller=c, timeout=90) for c in held]
        held_ids = [await svc.wait_call_id(c) for c in held]
        # the two held callers are in the flow: the service holds max_calls now
        await until(lambda: svc.book.live_calls() == 2, timeout=10, what="two callers held")
        refused = [svc.call([AwaitHangup(45)], caller=c, timeout=90) for c in extra]
        for result in await asyncio.gather(*refused):
            assert result.returncode == 0, result.errors          # SIPp got the service's BYE
        for caller in extra:
            call_id = await svc.wait_call_id(caller)
            row, events = await svc.record(call_id)
            assert row["outcome"] == "overload" and row["ended_at"] is not None
            kinds = [e["kind"] for e in events]
            assert kinds[:2] == ["call.started", "call.refused_overload"] and kinds[-1] == "call.ended"
            assert "ivr.step" not in kinds                          # never entered the flow
            data = next(e["data"] for e in events if e["kind"] == "call.refused_overload")
            data = data if isinstance(data, dict) else json.loads(data)
            assert data["reason"] == "calls" and data["action"] == "busy" and data["calls"] == 2
            commands = agi.commands(call_id)
            assert [c for c in commands if c.startswith("STREAM FILE")] == [
                f'STREAM FILE "{stack_env["STACK_SOUND_PREFIX"]}/{lang}/all_lines_busy" ""' for lang in ("vi", "en")]
            assert commands[0] == "ANSWER" and commands[-1] == "HANGUP"
        # the held callers were served by the flow all along, and nobody else was refused
        for call_id in held_ids:
            assert "ivr.step" in svc.kinds(call_id) and "call.refused_overload" not in svc.kinds(call_id)
        for result in await asyncio.gather(*served):
            assert result.returncode == 0, result.errors
        for call_id in held_ids:
            row, _ = await svc.record(call_id)
            assert row["outcome"] == "abandoned_ivr"
        await until(lambda: _none_left(svc), timeout=10, what="no channel left")
        metrics = svc.app.context["metrics"]
        assert metrics.registry.get_sample_value("switchboard_overload_refused_total", {"reason": "calls"}) == 2


async def test_with_action_fallback_the_extra_caller_reaches_the_fallback_queue(stack_env: dict[str, str],
                                                                               pg_dsn: str) -> None:
    async with running_service(stack_env, pg_dsn, overload={**ONLY_CALLS, "max_calls": 1,
                                                            "action": "fallback"}) as svc:
        agi = AgiLog.attach(svc)
        first = svc.call([Pause(25), HangUp()], caller="0912000511", timeout=90)
        first_id = await svc.wait_call_id("0912000511")
        await until(lambda: svc.book.live_calls() == 1, timeout=10, what="one caller held")
        extra = svc.call([Pause(12), HangUp()], caller="0912000512", timeout=90)
        call_id = await svc.wait_call_id("0912000512")
        handed = await svc.wait_event(call_id, "call.handed_to_fallback", timeout=15)
        assert handed.data["reason"] == "overload"

        async def in_fallback_queue() -> bool:
            return any(ev.get("Context") == "hotline-rescue" and ev.get("Application") == "Queue"
                       and call_id in (ev.get("Linkedid"), ev.get("Uniqueid")) for ev in await _channels(svc))

        await until(in_fallback_queue, timeout=10, what="the extra caller in the fallback queue")
        assert agi.commands(call_id) == []          # no prompt, no flow: straight to the queue
        result = await extra
        assert result.returncode == 0, result.errors
        row, events = await svc.record(call_id)
        kinds = [e["kind"] for e in events]
        assert row["outcome"] == "overload"
        assert kinds.index("call.refused_overload") < kinds.index("call.handed_to_fallback") < kinds.index(
            "call.ended")
        assert "ivr.step" in svc.kinds(first_id)
        assert (await first).returncode == 0
        await until(lambda: _none_left(svc), timeout=10, what="no channel left")
