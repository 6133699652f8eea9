"""Never strand a caller (issue 12), on the real stack.

* An AGI step that never answers: Asterisk is paused (SIGSTOP) the moment a
  caller enters AGI, so the service's ``ANSWER`` gives no result in 10 s. The
  caller must end up in the fallback queue (AMI Redirect to
  ``hotline-rescue``), the record must say so and stay open while the caller
  waits there, close with outcome ``fallback`` when the caller hangs up, and
  no channel of the call may be left.
* A caller whose SIP peer vanishes (SIPp killed with SIGKILL: no BYE, no more
  RTP) is hung up by Asterisk after the shipped ``rtp_timeout`` (60 s,
  ``reap-vanished`` in deploy/asterisk/pjsip.conf); its record stays open
  until then and closes at that hang-up. A second caller that keeps sending
  RTP (SIPp playing Debian's g711a.pcap in a loop) over the same time is not
  cut. Both come from 127.0.0.2, the local stack's ``trunk-media`` endpoint,
  which carries the shipped values (the 127.0.0.1 trunk has RTP timeouts off
  for the RTP-less SIPp callers of the other tests).
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from typing import Any

import pytest
from e2e_service import PENSION, Service, running_service, start_media_caller, until
from e2e_stack import asterisk_pid, stop_process

from switchboard.demo.sipp import Dtmf, HangUp, Pause, PlayAudio, caller_scenario

pytestmark = pytest.mark.e2e

PCAP = "/usr/share/sip-tester/g711a.pcap"   # 7 s of PCMA, shipped by Debian's sip-tester
RTP_TIMEOUT_S = 60                           # reap-vanished in deploy/asterisk/pjsip.conf



async def _channels(svc: Service) -> list[Any]:
    listing = await svc.app.context["client"].send({"Action": "CoreShowChannels"}, timeout=10)
    return [ev for ev in getattr(listing, "events", ()) if ev.name == "CoreShowChannel"]


async def _channels_of(svc: Service, call_id: str) -> list[Any]:
    return [ev for ev in await _channels(svc) if call_id in (ev.get("Linkedid"), ev.get("Uniqueid"))]


async def _open(svc: Service, call_id: str) -> bool:
    rows = await svc.fetch("SELECT ended_at FROM calls WHERE call_id = $1", call_id)
    return bool(rows) and rows[0]["ended_at"] is None


async def test_a_stuck_agi_step_hands_the_caller_to_the_fallback_queue(stack_env: dict[str, str],
                                                                      pg_dsn: str) -> None:
    # ping_interval 60 s: the AMI link stays up through the pause, so the step fails as under load,
    # by its own timeout ("AGI ANSWER gave no result in 10s"), not by a reconnect.
    async with running_service(stack_env, pg_dsn, ami={"ping_interval": 60.0, "reconcile_interval_s": 0}) as svc:
        pid = asterisk_pid(stack_env)
        paused: dict[str, float] = {}

        def pause_asterisk(ev: Any) -> None:
            if not paused:
                stop_process(pid)
                paused["at"] = time.monotonic()

        client = svc.app.context["client"]
        unsubscribe = client.subscribe(pause_asterisk, names=frozenset({"AsyncAGIStart"}))
        caller = "0912000412"
        task = svc.call([Pause(25), HangUp()], caller=caller, timeout=90)
        try:
            await until(lambda: bool(paused), timeout=20, what="the caller in AGI (Asterisk paused)")
            unsubscribe()
            await asyncio.sleep(12)        # the ANSWER times out at 10 s; the Redirect waits
        finally:
            os.kill(pid, signal.SIGCONT)
        call_id = await svc.wait_call_id(caller)
        handed = await svc.wait_event(call_id, "call.handed_to_fallback", timeout=20)
        assert handed.data["reason"] == "agi_timeout"
        node = handed.data["node"]
        assert node                                    # where the caller was: the flow's first node

        async def in_fallback_queue() -> bool:
            return any(ev.get("Context") == "hotline-rescue" and ev.get("Application") == "Queue"
                       for ev in await _channels_of(svc, call_id))

        await until(in_fallback_queue, timeout=15, what="the caller in the fallback queue")
        assert "call.ended" not in svc.kinds(call_id)
        await svc.record(call_id, until=("call.handed_to_fallback",))
        assert await _open(svc, call_id)               # the caller is on the line: the record is open

        result = await task                             # the caller hangs up after 25 s in the queue
        assert result.returncode == 0, result.errors
        row, events = await svc.record(call_id)
        assert row["outcome"] == "fallback" and row["ivr_node"] == node
        assert row["ended_at"] is not None
        kinds = [e["kind"] for e in events]
        assert kinds.index("call.handed_to_fallback") < kinds.index("call.ended")
        await until(lambda: _none_left(svc, call_id), timeout=10, what="no channel of the call left")
        metrics = svc.app.context["metrics"]
        assert metrics.registry.get_sample_value("switchboard_calls_handed_to_fallback_total",
                                                 {"reason": "agi_timeout"}) == 1


async def _none_left(svc: Service, call_id: str) -> bool:
    return not await _channels_of(svc, call_id)


# ---------------------------------------------------------------------------- vanished peer


def _rtp_caller(caller: str, *, loops: int) -> str:
    """A caller that sends RTP (PCMA from the pcap, looped) except while it presses keys to the line."""
    talk = PlayAudio(PCAP, 7.0)
    steps = [talk] + [x for k in PENSION for x in (Pause(2.5), Dtmf(k))] + [talk] * loops
    return caller_scenario([*steps, HangUp()], caller=caller, answer_timeout=30, codec="PCMA")


async def test_a_vanished_caller_is_hung_up_after_the_rtp_timeout_and_only_then_closed(
        stack_env: dict[str, str], pg_dsn: str) -> None:
    ip = stack_env.get("STACK_MEDIA_TRUNK_IP", "127.0.0.2")
    async with running_service(stack_env, pg_dsn) as svc:
        dead = await start_media_caller(stack_env, _rtp_caller("02439000501", loops=30), ip=ip)
        live = await start_media_caller(stack_env, _rtp_caller("02439000502", loops=14), ip=ip)   # ~118 s, then BYE
        try:
            dead_id = await svc.wait_call_id("02439000501", timeout=20)
            live_id = await svc.wait_call_id("02439000502", timeout=20)
            await svc.wait_event(dead_id, "queue.joined", timeout=30)   # waiting in line: no agent is ready
            await svc.wait_event(live_id, "queue.joined", timeout=30)
            [dead_ch] = await _channels_of(svc, dead_id)
            assert dead_ch.get("Channel", "").startswith("PJSIP/trunk-media-")   # the shipped values apply
            await asyncio.sleep(3)       # it sends RTP (a pcap loop) ...
            dead.kill()                  # ... until its phone vanishes: SIGKILL, no BYE
            await dead.wait()
            killed, killed_wall = time.monotonic(), time.time()

            await asyncio.sleep(10)
            assert await _channels_of(svc, dead_id), "reaped long before the RTP timeout"
            assert await _open(svc, dead_id)          # still on Asterisk: the record stays open
            assert "call.ended" not in svc.kinds(dead_id)

            await until(lambda: _none_left(svc, dead_id), timeout=RTP_TIMEOUT_S + 30, interval=0.5,
                        what="the vanished caller hung up by Asterisk")
            gone, gone_wall = time.monotonic() - killed, time.time()
            assert RTP_TIMEOUT_S - 12 <= gone <= RTP_TIMEOUT_S + 15, f"hung up {gone:.1f}s after the kill"
            row, _ = await svc.record(dead_id)
            assert row["outcome"] == "abandoned_queue"
            assert row["hangup_cause"] in ("44", "Requested channel not available")   # rtp_timeout's cause
            assert abs(row["ended_at"].timestamp() - gone_wall) < 3

            # the caller that kept sending RTP is still up, longer than the timeout after its answer
            assert await _channels_of(svc, live_id), "a caller sending RTP was cut"
            assert await _open(svc, live_id)
            print(f"vanished caller hung up {gone:.1f}s after SIGKILL (killed at {killed_wall:.0f})")
            assert await asyncio.wait_for(live.wait(), 90) == 0   # it hangs up itself at the end
            row, _ = await svc.record(live_id)
            assert row["outcome"] == "abandoned_queue" and row["hangup_cause"] not in ("44",)
        finally:
            for proc in (dead, live):
                if proc.returncode is None:
                    proc.kill()
                    await proc.wait()

