"""Transfers on the real stack, the paths beyond tests/e2e/test_transfers.py (issue 16): the
softphone's cancel (``*7``) and three-way (``*8``) codes, a colleague who does not answer a
consult, the consult's safety return (``routing.consult_max_wait_s``), a directory number that
is busy, and a supervisor's own phone as a target (blind and consult). SIPp callers, agents,
supervisor phone and far end; Asterisk 22; the records read back from PostgreSQL.
"""

from __future__ import annotations

import asyncio
import json

import pytest
from e2e_service import PENSION, Service, running_service, until
from test_acd_routing import ivr
from test_supervisor_spy import SUP_PHONE, _supervisor_phone
from test_transfers import _bridged, _consult_rung, _released

from switchboard.demo.sipp import HangUp, Pause, SippResult

pytestmark = pytest.mark.e2e

CONSULT_KEYS = "*5,1010#" + "," * 6      # consult agent1010, then talk to it for 12 s


async def _answered(svc: Service, caller: str, *, talk_s: float) -> tuple[asyncio.Task[SippResult], str]:
    """A pension caller answered by agent1009 (ready already): its SIPp task and its call id."""
    call = svc.call([*ivr(PENSION), Pause(talk_s), HangUp()], caller=caller)
    call_id = await svc.wait_call_id(caller)
    await svc.wait_event(call_id, "call.answered", timeout=25)
    return call, call_id


async def test_softphone_code_cancels_the_consult(stack_env: dict[str, str], pg_dsn: str) -> None:
    """``*5<agent>#`` then ``*7``: the agent talks to its colleague, then goes back to its caller."""
    async with running_service(stack_env, pg_dsn) as svc:
        await svc.agent("agent1009", talk=None, keys=CONSULT_KEYS + "*7", keys_after=3.0)
        colleague = await svc.agent("agent1010", talk=None, ready=False)
        x = "02838100051"
        call_x = svc.call([*ivr(PENSION), Pause(40), HangUp()], caller=x)
        cx = await svc.wait_call_id(x)
        answered = await svc.wait_event(cx, "call.answered", timeout=25)
        svc.acd.ready("agent1010")
        await svc.wait_event(cx, "consult.answered", timeout=25)
        failed = await svc.wait_event(cx, "transfer.failed", timeout=30)
        assert (failed.data["reason"], failed.data["then"], failed.data["by"]) == \
            ("cancelled", "back_to_agent", "agent1009")
        caller_uid = svc.of(cx, "call.started")[0].data["uniqueid"]
        await until(lambda: _bridged(svc, answered.data["leg_uniqueid"], caller_uid), timeout=10,
                    what="the agent back with its caller")
        await until(lambda: _released(svc, "agent1010"), timeout=10, what="agent1010 released")
        assert svc.status("agent1009") == "on_call"
        assert (await call_x).ok
        row, timeline = await svc.record(cx, until=("call.ended", "consult.ended"))
        assert (row["outcome"], row["agent_id"], row["transfers"]) == ("answered", "agent1009", 0)
        ended = [e for e in timeline if e["kind"] == "consult.ended"]
        assert len(ended) == 1 and '"cancelled"' in ended[0]["data"]
        assert colleague.calls_answered() == 1


async def test_softphone_code_makes_a_three_way_call(stack_env: dict[str, str], pg_dsn: str) -> None:
    """``*5<agent>#`` then ``*8``: the caller joins the two agents."""
    async with running_service(stack_env, pg_dsn) as svc:
        await svc.agent("agent1009", talk=None, keys=CONSULT_KEYS + "*8", keys_after=3.0)
        await svc.agent("agent1010", talk=None, ready=False)
        x = "02838100052"
        call_x = svc.call([*ivr(PENSION), Pause(40), HangUp()], caller=x)
        cx = await svc.wait_call_id(x)
        answered = await svc.wait_event(cx, "call.answered", timeout=25)
        svc.acd.ready("agent1010")
        offer = await svc.wait_event(cx, "consult.offer", timeout=25)
        done = await svc.wait_event(cx, "transfer.completed", timeout=30)
        assert (done.data["kind"], done.data["to_agent"], done.data["result"]) == ("consult", "agent1010", "three_way")
        caller_uid = svc.of(cx, "call.started")[0].data["uniqueid"]
        await until(lambda: _bridged(svc, answered.data["leg_uniqueid"], offer.data["leg_uniqueid"], caller_uid),
                    timeout=10, what="caller and both agents in one bridge")
        assert (await call_x).ok              # the caller hangs up: both agents' legs end
        await until(lambda: _released(svc, "agent1009", "agent1010"), timeout=10, what="both agents released")
        row, _ = await svc.record(cx, until=("call.ended", "transfer.completed"))
        assert (row["outcome"], row["transfers"]) == ("answered", 1)


async def test_consult_not_answered_brings_the_agent_back(stack_env: dict[str, str], pg_dsn: str) -> None:
    async with running_service(stack_env, pg_dsn, routing={"ring_timeout_s": 6.0}) as svc:
        c = await _consult_rung(svc, "02838100053", mode="ringout")       # rings, never answers
        failed = await svc.wait_event(c.call_id, "transfer.failed", timeout=25)
        assert (failed.data["reason"], failed.data["then"]) == ("timeout", "back_to_agent")
        await until(lambda: _bridged(svc, c.first_leg, c.consult.caller_uniqueid), timeout=10,
                    what="the agent back with its caller")
        assert svc.status("agent1009") == "on_call"
        (ended,) = svc.of(c.call_id, "consult.ended")
        assert ended.data["result"] == "timeout" and ended.data["ring_s"] >= 5.0 and ended.data["talk_s"] == 0.0
        assert (await c.call).ok
        row, _ = await svc.record(c.call_id, until=("call.ended", "consult.ended"))
        assert (row["outcome"], row["agent_id"], row["transfers"]) == ("answered", "agent1009", 0)
        assert c.colleague.calls_answered() == 1          # its phone really rang


async def test_consult_safety_return_after_the_wait(stack_env: dict[str, str], pg_dsn: str) -> None:
    """The agent's leg waits at most ``consult_max_wait_s`` (SB_CONSULT_WAIT) in consult-agent, then
    the dialplan takes it back to its caller by itself; the service sees the caller bridged again,
    ends the colleague's ringing leg and records why."""
    async with running_service(stack_env, pg_dsn, routing={"ring_timeout_s": 40.0, "consult_max_wait_s": 6.0}) \
            as svc:
        c = await _consult_rung(svc, "02838100054", mode="ringout")
        failed = await svc.wait_event(c.call_id, "transfer.failed", timeout=25)
        assert (failed.data["reason"], failed.data["then"]) == ("wait_over", "back_to_agent")
        took = failed.ts.timestamp() - svc.of(c.call_id, "consult.offer")[0].ts.timestamp()
        assert 5.0 <= took < 40.0, took           # the wait, not the colleague's ring timeout
        await until(lambda: _bridged(svc, c.first_leg, c.consult.caller_uniqueid), timeout=10,
                    what="the agent back with its caller")
        await until(lambda: svc.status("agent1010") == "ready", timeout=10, what="agent1010's ring ended")
        assert svc.status("agent1009") == "on_call" and not svc.acd.consults.consults
        assert (await c.call).ok
        row, _ = await svc.record(c.call_id, until=("call.ended", "consult.ended"))
        assert (row["outcome"], row["agent_id"], row["transfers"]) == ("answered", "agent1009", 0)


async def test_a_busy_directory_number_sends_the_caller_back_into_the_line(stack_env: dict[str, str],
                                                                            pg_dsn: str) -> None:
    async with running_service(stack_env, pg_dsn) as svc:
        await svc.agent("agent1009", talk=None)
        entry = svc.acd.transfers.directory.find("ho-chi-minh")
        assert entry is not None
        office = svc.pstn(mode="reject", answer_after=0.5, expect_number=entry.dial)   # 486 Busy Here
        call_x, cx = await _answered(svc, "02838100055", talk_s=45.0)
        assert not office.done(), "the far end's SIPp must be waiting for the INVITE"
        await svc.acd.transfers.blind("agent1009", kind="number", target="ho-chi-minh")
        failed = await svc.wait_event(cx, "transfer.failed", timeout=20)
        assert (failed.data["kind"], failed.data["reason"], failed.data["then"]) == ("number", "busy", "line")
        rejoined = await svc.wait_event(cx, "queue.joined", timeout=15,
                                        where=lambda e: e.data["province_source"] == "transfer")
        assert rejoined.data["topic"] == svc.of(cx, "queue.joined")[0].data["topic"]     # its own topic
        # agent1009, back from wrap-up, is the pension agent: it takes the caller again
        again = await svc.wait_event(cx, "call.answered", timeout=30, where=lambda e: e.ts > failed.ts)
        assert again.data["agent_id"] == "agent1009"
        done = await svc.wait_event(cx, "transfer.completed", timeout=5)
        assert (done.data["kind"], done.data["to_agent"], done.data["fell_back"]) == ("number", "agent1009", True)
        result = await office
        assert result.ok, result.errors or result.stderr
        assert (await call_x).ok
        row, _ = await svc.record(cx, until=("call.ended", "transfer.completed"))
        assert (row["outcome"], row["agent_id"], row["transfers"]) == ("answered", "agent1009", 1)


async def test_blind_transfer_to_a_supervisors_phone(stack_env: dict[str, str], pg_dsn: str) -> None:
    async with running_service(stack_env, pg_dsn) as svc:
        await svc.agent("agent1009", talk=None)
        sup = await _supervisor_phone(svc)
        call_x, cx = await _answered(svc, "02838100056", talk_s=30.0)
        await svc.acd.transfers.blind("agent1009", kind="supervisor", target="sup1")
        done = await svc.wait_event(cx, "transfer.completed", timeout=20)
        assert (done.data["kind"], done.data["to_supervisor"], done.data["fell_back"]) == ("supervisor", "sup1", False)
        await until(lambda: _released(svc, "agent1009"), timeout=10, what="agent1009 left")
        listing = await svc.app.context["client"].send({"Action": "CoreShowChannels"}, timeout=5)
        bridges = {ev.get("CallerIDNum"): ev.get("BridgeId") for ev in getattr(listing, "events", ())}
        on_sup = [ev for ev in getattr(listing, "events", ()) if (ev.get("Channel") or "").startswith(f"PJSIP/{SUP_PHONE}-")]
        assert len(on_sup) == 1 and on_sup[0].get("BridgeId") and on_sup[0].get("BridgeId") == bridges.get("02838100056")
        assert (await call_x).ok
        row, timeline = await svc.record(cx, until=("call.ended", "transfer.completed", "agent.ended",
                                                    "supervisor.ended"))
        assert (row["outcome"], row["agent_id"], row["transfers"]) == ("answered", "agent1009", 1)
        talked = [json.loads(e["data"]) for e in timeline if e["kind"] == "supervisor.ended"]
        assert len(talked) == 1 and talked[0]["supervisor_id"] == "sup1" and talked[0]["talk_s"] > 1.0, talked
        assert sup.calls_answered() == 1


async def test_a_supervisor_who_does_not_answer_sends_the_caller_to_the_line(stack_env: dict[str, str],
                                                                             pg_dsn: str) -> None:
    async with running_service(stack_env, pg_dsn, routing={"transfer_ring_s": 6.0}) as svc:
        await svc.agent("agent1009", talk=None)
        sup = await _supervisor_phone(svc, mode="ringout")
        call_x, cx = await _answered(svc, "02838100057", talk_s=45.0)
        await svc.acd.transfers.blind("agent1009", kind="supervisor", target="sup1")
        failed = await svc.wait_event(cx, "transfer.failed", timeout=25)
        assert (failed.data["kind"], failed.data["reason"], failed.data["then"]) == ("supervisor", "noanswer", "line")
        took = failed.ts.timestamp() - svc.of(cx, "transfer.requested")[0].ts.timestamp()
        assert 5.0 <= took < 20.0, took              # its bounded turn (transfer_ring_s)
        again = await svc.wait_event(cx, "call.answered", timeout=30, where=lambda e: e.ts > failed.ts)
        assert again.data["agent_id"] == "agent1009"
        done = await svc.wait_event(cx, "transfer.completed", timeout=5)
        assert (done.data["to_agent"], done.data["to_supervisor"], done.data["fell_back"]) == ("agent1009", None, True)
        assert (await call_x).ok
        row, _ = await svc.record(cx, until=("call.ended", "transfer.completed"))
        assert (row["outcome"], row["agent_id"], row["transfers"]) == ("answered", "agent1009", 1)
        assert sup.calls_answered() == 1             # its phone really rang


async def test_consult_a_supervisor_then_complete(stack_env: dict[str, str], pg_dsn: str) -> None:
    async with running_service(stack_env, pg_dsn) as svc:
        await svc.agent("agent1009", talk=None)
        sup = await _supervisor_phone(svc)
        call_x, cx = await _answered(svc, "02838100058", talk_s=35.0)
        consult = await svc.acd.consults.start("agent1009", kind="supervisor", target="sup1")
        await svc.wait_event(cx, "consult.answered", timeout=15)
        await svc.acd.consults.finish("agent1009", "complete")
        await until(lambda: _bridged(svc, consult.leg, consult.caller_uniqueid), timeout=10,
                    what="the supervisor bridged with the caller")
        await until(lambda: _released(svc, "agent1009"), timeout=10, what="agent1009 left")
        done = svc.of(cx, "transfer.completed")[0]
        assert (done.data["kind"], done.data["to_supervisor"], done.data["result"]) == ("consult", "sup1", "completed")
        assert (await call_x).ok
        row, timeline = await svc.record(cx, until=("call.ended", "transfer.completed", "consult.ended"))
        assert (row["outcome"], row["agent_id"], row["transfers"]) == ("answered", "agent1009", 1)
        ended = [e for e in timeline if e["kind"] == "consult.ended"]
        assert len(ended) == 1 and '"sup1"' in ended[0]["data"]
        assert not [e for e in timeline if e["kind"] == "agent.ended" and '"sup1"' in e["data"]]
        assert sup.calls_answered() == 1
