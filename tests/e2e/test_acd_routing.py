"""The ACD on the real stack: SIPp callers go through the hotline IVR, the
router offers them to SIPp agents by topic and province over Originate +
Bridge. Every test checks what Asterisk and the SIPp peers did, the agents'
states, and the call record written to PostgreSQL.
"""

from __future__ import annotations

import asyncio

import pytest
from e2e_service import PENSION, Service, running_service, until

from switchboard.demo.sipp import Dtmf, HangUp, Pause

pytestmark = pytest.mark.e2e


def ivr(keys: str) -> list[Pause | Dtmf]:
    """Key presses through the hotline menus, one per prompt."""
    steps: list[Pause | Dtmf] = []
    for k in keys:
        steps += [Pause(2.5), Dtmf(k)]
    return steps


async def test_call_reaches_the_agent_of_its_province(stack_env: dict[str, str], pg_dsn: str) -> None:
    async with running_service(stack_env, pg_dsn) as svc:
        hanoi = await svc.agent("agent1001", talk=None)
        hcm = await svc.agent("agent1009", talk=None)
        caller = "02838100001"          # Hồ Chí Minh City landline (area code 28)
        sipp = svc.call([*ivr(PENSION), Pause(8), HangUp()], caller=caller)
        call_id = await svc.wait_call_id(caller)
        answered = await svc.wait_event(call_id, "call.answered", timeout=25)
        assert answered.data["agent_id"] == "agent1009"
        assert svc.status("agent1009") == "on_call"
        assert svc.status("agent1001") == "ready"
        result = await sipp
        assert result.ok, result.errors or result.stderr
        await until(lambda: svc.status("agent1009") == "wrap_up", timeout=5, what="agent1009 in wrap-up")
        await until(lambda: svc.status("agent1009") == "ready", timeout=8, what="agent1009 ready after wrap-up")
        row, timeline = await svc.record(call_id, until=("call.ended", "agent.ended", "agent.wrap_up_ended"))
        assert (row["outcome"], row["agent_id"], row["offers"]) == ("answered", "agent1009", 1)
        assert (row["topic"], row["province"], row["province_source"]) == ("social.pension", "ho-chi-minh",
                                                                            "caller_id")
        kinds = [e["kind"] for e in timeline]
        assert kinds.index("queue.joined") < kinds.index("agent.offer") < kinds.index("call.answered") \
            < kinds.index("call.ended")
        assert row["talk_s"] > 0 and row["wrap_up_s"] > 0      # the events after the caller hung up count too
        assert [e["seq"] for e in timeline] == sorted({e["seq"] for e in timeline})
        assert hcm.calls_answered() == 1 and hanoi.calls_answered() == 0


def _ts(ev: object) -> float:
    return ev.ts.timestamp()  # type: ignore[attr-defined]


async def test_call_waits_for_its_province_then_overflows_to_the_region(stack_env: dict[str, str],
                                                                       pg_dsn: str) -> None:
    async with running_service(stack_env, pg_dsn) as svc:
        north = await svc.agent("agent1001", talk=None)   # Hà Nội: another region
        south = await svc.agent("agent1011", talk=None)   # Cần Thơ: the caller's region, not its province
        caller = "02838100002"
        sipp = svc.call([*ivr(PENSION), Pause(16), HangUp()], caller=caller)
        call_id = await svc.wait_call_id(caller)
        offer = await svc.wait_event(call_id, "agent.offer", timeout=35)
        joined = svc.of(call_id, "queue.joined")[0]
        waited = _ts(offer) - _ts(joined)
        region_after = svc.acd.settings.region_after_s
        assert offer.data["agent_id"] == "agent1011" and offer.data["tier"] == "region"
        assert region_after - 0.3 <= waited <= region_after + 2.5, waited
        overflow = svc.of(call_id, "queue.overflow")
        assert [e.data["tier"] for e in overflow][:1] == ["region"]
        assert _ts(overflow[0]) <= _ts(offer)
        result = await sipp
        assert result.ok, result.errors or result.stderr
        row, timeline = await svc.record(call_id)
        assert (row["outcome"], row["agent_id"], row["offers"], row["overflow_tier"]) == \
            ("answered", "agent1011", 1, "region")
        assert [e["kind"] for e in timeline].count("agent.offer") == 1
        assert north.calls_answered() == 0 and south.calls_answered() == 1


async def test_ring_timeout_moves_the_call_to_the_next_agent(stack_env: dict[str, str], pg_dsn: str) -> None:
    async with running_service(stack_env, pg_dsn) as svc:
        slow = await svc.agent("agent1009", mode="ringout")   # ready first: idle longest, offered first
        quick = await svc.agent("agent1010", talk=None)
        caller = "02838100003"
        sipp = svc.call([*ivr("121"), Pause(20), HangUp()], caller=caller)   # health card
        call_id = await svc.wait_call_id(caller)
        answered = await svc.wait_event(call_id, "call.answered", timeout=40)
        assert answered.data["agent_id"] == "agent1010"
        results = [(e.data["agent_id"], e.data["result"]) for e in svc.of(call_id, "agent.offer_result")]
        assert results == [("agent1009", "timeout"), ("agent1010", "answered")]
        first = svc.of(call_id, "agent.offer_result")[0]
        ring = svc.acd.settings.ring_timeout_s
        assert ring - 0.5 <= first.data["ring_s"] <= ring + 3
        assert svc.status("agent1009") == "ready"
        assert svc.acd.states["agent1009"].no_answer_streak == 1
        result = await sipp
        assert result.ok, result.errors or result.stderr
        row, _ = await svc.record(call_id)
        assert (row["outcome"], row["agent_id"], row["offers"]) == ("answered", "agent1010", 2)
        assert slow.calls_answered() == 1 and quick.calls_answered() == 1   # both got the INVITE


async def test_agent_rejects_and_the_next_agent_answers(stack_env: dict[str, str], pg_dsn: str) -> None:
    async with running_service(stack_env, pg_dsn) as svc:
        await svc.agent("agent1009", mode="reject", answer_after=0.5)
        await svc.agent("agent1010", talk=None)
        caller = "02838100004"
        sipp = svc.call([*ivr("121"), Pause(10), HangUp()], caller=caller)
        call_id = await svc.wait_call_id(caller)
        answered = await svc.wait_event(call_id, "call.answered", timeout=30)
        assert answered.data["agent_id"] == "agent1010"
        results = [(e.data["agent_id"], e.data["result"]) for e in svc.of(call_id, "agent.offer_result")]
        assert results == [("agent1009", "rejected"), ("agent1010", "answered")]
        assert svc.of(call_id, "agent.offer_result")[0].data["ring_s"] < 3   # at once, not a ring timeout
        assert svc.status("agent1009") == "ready" and svc.acd.states["agent1009"].no_answer_streak == 1
        result = await sipp
        assert result.ok, result.errors or result.stderr
        row, _ = await svc.record(call_id)
        assert (row["outcome"], row["agent_id"], row["offers"]) == ("answered", "agent1010", 2)


async def test_caller_hangs_up_while_waiting(stack_env: dict[str, str], pg_dsn: str) -> None:
    async with running_service(stack_env, pg_dsn) as svc:
        idle = await svc.agent("agent1009", ready=False)      # registered, but not ready
        caller = "02838100005"
        sipp = svc.call([*ivr(PENSION), Pause(10), HangUp()], caller=caller)
        call_id = await svc.wait_call_id(caller)
        await svc.wait_event(call_id, "queue.joined", timeout=20)
        assert [w.call_id for w in svc.acd.waiting_calls()] == [call_id]
        result = await sipp
        assert result.ok, result.errors or result.stderr
        await until(lambda: not svc.acd.waiting, timeout=5, what="the line empty")
        row, timeline = await svc.record(call_id)
        assert (row["outcome"], row["agent_id"], row["offers"]) == ("abandoned_queue", None, 0)
        kinds = [e["kind"] for e in timeline]
        assert "call.ended" in kinds and "agent.offer" not in kinds
        # the queue step closes when the caller hangs up, often after call.ended: it is stored either way
        # (it used to restart at seq 1 after call.ended and be dropped as a duplicate)
        last_step = [e for e in timeline if e["kind"] == "ivr.step"][-1]
        assert '"agent"' in last_step["data"] and '"hangup"' in last_step["data"]
        assert len({e["seq"] for e in timeline}) == len(timeline)
        assert idle.calls_answered() == 0 and svc.status("agent1009") == "logged_out"


async def test_caller_hangs_up_while_the_agent_rings(stack_env: dict[str, str], pg_dsn: str) -> None:
    async with running_service(stack_env, pg_dsn) as svc:
        ringing = await svc.agent("agent1009", mode="ringout")
        caller = "02838100006"
        sipp = svc.call([*ivr(PENSION), Pause(7.5), HangUp()], caller=caller)
        call_id = await svc.wait_call_id(caller)
        offer = await svc.wait_event(call_id, "agent.offer", timeout=20)
        leg = offer.data["leg_uniqueid"]
        result = await sipp
        assert result.ok, result.errors or result.stderr
        ended = await svc.wait_event(call_id, "agent.offer_result", timeout=5)
        assert ended.data == {**ended.data, "agent_id": "agent1009", "result": "caller_gone"}
        assert ended.data["ring_s"] < svc.acd.settings.ring_timeout_s        # not a ring timeout
        await until(lambda: svc.status("agent1009") == "ready", timeout=5, what="agent1009 ready")
        assert svc.acd.states["agent1009"].no_answer_streak == 0          # not the agent's fault
        # Asterisk really ended the agent leg (the SIPp phone got CANCEL and answered 487).
        await until(lambda: _leg_gone(svc, leg), timeout=5, what=f"agent leg {leg} hung up")
        await until(lambda: svc.acd.states["agent1009"].device.value == "NOT_INUSE", timeout=5,
                    what="agent1009's phone idle again")
        row, _ = await svc.record(call_id)
        assert (row["outcome"], row["agent_id"], row["offers"]) == ("abandoned_queue", None, 1)
        assert ringing.calls_answered() == 1


async def _leg_gone(svc: Service, leg: str) -> bool:
    listing = await svc.app.context["client"].send({"Action": "CoreShowChannels"}, timeout=5)
    return not any(ev.get("Uniqueid") == leg for ev in getattr(listing, "events", ()))


async def test_wrap_up_holds_the_agent_across_topics(stack_env: dict[str, str], pg_dsn: str) -> None:
    async with running_service(stack_env, pg_dsn, routing={"wrap_up_s": 8.0}) as svc:
        await svc.agent("agent1009", talk=None)      # pension 5 and health card 4
        first, second = "02838100007", "02838100008"
        call1 = svc.call([*ivr(PENSION), Pause(10), HangUp()], caller=first)
        call2 = svc.call([Pause(1.5), *ivr("121"), Pause(26), HangUp()], caller=second)
        c1 = await svc.wait_call_id(first)
        c2 = await svc.wait_call_id(second)
        await svc.wait_event(c1, "call.answered", timeout=25)
        await svc.wait_event(c2, "queue.joined", timeout=10)
        assert (await call1).ok
        wrap_end = await svc.wait_event(c1, "agent.wrap_up_ended", timeout=15)
        offer = await svc.wait_event(c2, "agent.offer", timeout=10)
        agent_ended = svc.of(c1, "agent.ended")[0]
        assert offer.data["agent_id"] == "agent1009"
        assert _ts(offer) >= _ts(wrap_end) >= _ts(agent_ended) + 8.0 - 0.3
        assert _ts(offer) - _ts(svc.of(c2, "queue.joined")[0]) > 5    # it really waited for the wrap-up
        assert (await call2).ok
        row1, _ = await svc.record(c1, until=("call.ended", "agent.wrap_up_ended"))
        row2, _ = await svc.record(c2)
        assert (row1["outcome"], row1["agent_id"], row1["topic"]) == ("answered", "agent1009", "social.pension")
        assert (row2["outcome"], row2["agent_id"], row2["topic"], row2["offers"]) == \
            ("answered", "agent1009", "health.card", 1)
        assert 7.5 <= row1["wrap_up_s"] <= 10


async def test_agent_paused_after_unanswered_offers_in_a_row(stack_env: dict[str, str], pg_dsn: str) -> None:
    async with running_service(stack_env, pg_dsn) as svc:
        await svc.agent("agent1009", mode="ringout")
        caller = "02838100009"
        sipp = svc.call([*ivr(PENSION), Pause(26), HangUp()], caller=caller)
        call_id = await svc.wait_call_id(caller)
        limit = svc.acd.settings.no_answer_limit
        await until(lambda: svc.status("agent1009") == "paused", timeout=20 + 8 * limit,
                    what="agent1009 paused")
        assert svc.acd.states["agent1009"].pause_reason == "no-answer"
        results = [(e.data["agent_id"], e.data["result"]) for e in svc.of(call_id, "agent.offer_result")]
        assert results == [("agent1009", "timeout")] * limit
        assert [w.call_id for w in svc.acd.waiting_calls()] == [call_id]   # still waiting, not offered
        await asyncio.sleep(svc.acd.settings.reevaluate_interval_s * 3)
        assert len(svc.of(call_id, "agent.offer")) == limit                 # a paused agent gets no offer
        assert (await sipp).ok
        await until(lambda: not svc.acd.waiting, timeout=5, what="the caller gone")
        row, _ = await svc.record(call_id)
        assert (row["outcome"], row["offers"]) == ("abandoned_queue", limit)
        states = await svc.fetch("SELECT to_state, reason FROM agent_state_log WHERE agent_id = 'agent1009' "
                                 "AND at >= to_timestamp($1) ORDER BY id", svc.started_wall)
        assert ("paused", "no-answer") in [(r["to_state"], r["reason"]) for r in states]
