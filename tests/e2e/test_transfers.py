"""Transfers on the real stack (issue 16): SIPp callers through the hotline IVR, SIPp agents,
Asterisk moving the caller with AMI Redirect, the records read back from PostgreSQL.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import pytest
from e2e_service import PENSION, Service, running_service, until
from test_acd_routing import ivr

from switchboard.acd.consults import Consult
from switchboard.acd.transfers import TransferError
from switchboard.demo.sipp import HangUp, Pause, SippAgent, SippResult

pytestmark = pytest.mark.e2e

HEALTH_BENEFIT = "122"


def _ts(ev: object) -> float:
    return ev.ts.timestamp()  # type: ignore[attr-defined]


async def test_blind_transfer_to_a_topic_keeps_the_callers_place(stack_env: dict[str, str], pg_dsn: str) -> None:
    async with running_service(stack_env, pg_dsn) as svc:
        first = await svc.agent("agent1009", talk=None)              # pension 5, Hồ Chí Minh City
        second = await svc.agent("agent1010", talk=None, ready=False)   # health benefit 5, not ready yet
        x, y = "02838100021", "02838100022"
        call_x = svc.call([*ivr(PENSION), Pause(45), HangUp()], caller=x)
        cx = await svc.wait_call_id(x)
        await svc.wait_event(cx, "call.answered", timeout=25)
        # y joins the health-benefit line after x's call started (and after x was answered)
        call_y = svc.call([*ivr(HEALTH_BENEFIT), Pause(40), HangUp()], caller=y)
        cy = await svc.wait_call_id(y)
        await svc.wait_event(cy, "queue.joined", timeout=20)
        await svc.acd.transfers.blind("agent1009", kind="topic", target="health.benefit")
        rejoined = await svc.wait_event(cx, "queue.joined", timeout=15,
                                        where=lambda e: e.data["province_source"] == "transfer")
        assert (rejoined.data["topic"], rejoined.data["province"]) == ("health.benefit", "ho-chi-minh")
        await until(lambda: svc.status("agent1009") in ("wrap_up", "ready"), timeout=10, what="agent1009 left")
        # both wait now: x ahead of y, as it joined the line first
        waiting = [w.call_id for w in svc.acd.waiting_calls()]
        assert waiting == [cx, cy], waiting
        svc.acd.ready("agent1010")
        answered = await svc.wait_event(cx, "call.answered", timeout=20,
                                        where=lambda e: e.data["agent_id"] == "agent1010")
        # y is offered to agent1010 only after x was served
        assert all(_ts(e) > _ts(answered) for e in svc.of(cy, "agent.offer"))
        done = await svc.wait_event(cx, "transfer.completed", timeout=5)
        assert (done.data["kind"], done.data["to_agent"], done.data["fell_back"]) == ("topic", "agent1010", False)
        assert (await call_x).ok
        await call_y
        row, timeline = await svc.record(cx, until=("call.ended", "agent.ended", "transfer.completed"))
        assert (row["outcome"], row["agent_id"], row["topic"], row["transfers"]) == \
            ("answered", "agent1010", "health.benefit", 1)
        kinds = [e["kind"] for e in timeline]
        assert kinds.index("transfer.requested") < kinds.index("transfer.completed")
        assert kinds.count("call.answered") == 2 and kinds.count("queue.joined") == 2
        ended = [e for e in timeline if e["kind"] == "agent.ended"]
        assert len(ended) >= 1 and '"agent1009"' in ended[0]["data"]   # the first agent's talk time is its own
        assert first.calls_answered() == 1 and second.calls_answered() >= 1


async def test_blind_transfer_to_a_named_agent_who_does_not_answer_goes_to_the_line(
        stack_env: dict[str, str], pg_dsn: str) -> None:
    async with running_service(stack_env, pg_dsn, routing={"transfer_ring_s": 8.0}) as svc:
        await svc.agent("agent1009", talk=None)
        named = await svc.agent("agent1011", mode="ringout")      # pension 4, Cần Thơ: rings, never answers
        x = "02838100023"
        call_x = svc.call([*ivr(PENSION), Pause(40), HangUp()], caller=x)
        cx = await svc.wait_call_id(x)
        await svc.wait_event(cx, "call.answered", timeout=25)
        await svc.acd.transfers.blind("agent1009", kind="agent", target="agent1011")
        offer = await svc.wait_event(cx, "agent.offer", timeout=15, where=lambda e: e.data["agent_id"] == "agent1011")
        failed = await svc.wait_event(cx, "transfer.failed", timeout=20)
        assert (failed.data["kind"], failed.data["target"], failed.data["then"]) == ("agent", "agent1011", "line")
        results = [e.data["result"] for e in svc.of(cx, "agent.offer_result") if e.data["agent_id"] == "agent1011"]
        assert results == ["timeout"]
        assert _ts(failed) > _ts(offer)
        # the topic's line: agent1009 (back from wrap-up) is the only other pension agent
        answered = await svc.wait_event(cx, "call.answered", timeout=30,
                                        where=lambda e: e.ts.timestamp() > _ts(failed))
        assert answered.data["agent_id"] == "agent1009"
        done = await svc.wait_event(cx, "transfer.completed", timeout=5)
        assert (done.data["to_agent"], done.data["fell_back"]) == ("agent1009", True)
        assert (await call_x).ok
        row, _ = await svc.record(cx, until=("call.ended", "transfer.completed"))
        assert (row["outcome"], row["transfers"]) == ("answered", 1)
        assert named.calls_answered() == 1      # its phone really rang


async def test_transfer_refused_for_a_number_not_in_the_directory(stack_env: dict[str, str], pg_dsn: str) -> None:
    async with running_service(stack_env, pg_dsn) as svc:
        agent = await svc.agent("agent1009", talk=None)
        x = "02838100024"
        call_x = svc.call([*ivr(PENSION), Pause(14), HangUp()], caller=x)
        cx = await svc.wait_call_id(x)
        await svc.wait_event(cx, "call.answered", timeout=25)
        with pytest.raises(TransferError) as err:
            await svc.acd.transfers.blind("agent1009", kind="number", target="0912345678")
        assert err.value.error_id == "not-in-directory"
        assert svc.status("agent1009") == "on_call"            # nothing moved
        assert (await call_x).ok
        row, _ = await svc.record(cx, until=("call.ended", "transfer.refused"))
        assert (row["outcome"], row["agent_id"], row["transfers"]) == ("answered", "agent1009", 0)
        assert agent.calls_answered() == 1


async def test_transfer_to_a_directory_number_via_the_trunk(stack_env: dict[str, str], pg_dsn: str) -> None:
    async with running_service(stack_env, pg_dsn) as svc:
        await svc.agent("agent1009", talk=None)
        entry = svc.acd.transfers.directory.find("ho-chi-minh")
        assert entry is not None
        office = svc.pstn(talk=None, expect_number=entry.dial)   # the office answers, the caller hangs up
        x = "02838100025"
        call_x = svc.call([*ivr(PENSION), Pause(22), HangUp()], caller=x)
        cx = await svc.wait_call_id(x)
        await svc.wait_event(cx, "call.answered", timeout=25)
        if office.done():
            r = await office
            raise AssertionError(f"the far end's SIPp is gone before the INVITE: {r.returncode} {r.errors} {r.stderr}")
        await svc.acd.transfers.blind("agent1009", kind="number", target="ho-chi-minh")
        done = await svc.wait_event(cx, "transfer.completed", timeout=20)
        assert (done.data["kind"], done.data["number"]) == ("number", entry.number)
        await until(lambda: svc.status("agent1009") in ("wrap_up", "ready"), timeout=10, what="agent1009 left")
        assert (await call_x).ok
        result = await office
        assert result.ok, result.errors or result.stderr
        row, _ = await svc.record(cx, until=("call.ended", "transfer.completed", "agent.ended"))
        assert (row["outcome"], row["agent_id"], row["transfers"]) == ("answered", "agent1009", 1)


async def _bridged(svc: Service, *uniqueids: str) -> bool:
    """Are these channels all in one bridge now (CoreShowChannels' BridgeId)?"""
    listing = await svc.app.context["client"].send({"Action": "CoreShowChannels"}, timeout=5)
    bridges = {ev.get("Uniqueid"): ev.get("BridgeId") for ev in getattr(listing, "events", ())}
    ids = {bridges.get(u) for u in uniqueids}
    return len(ids) == 1 and None not in ids and "" not in ids


@dataclass
class Consulting:
    call: asyncio.Task[SippResult]
    call_id: str
    first_leg: str            # agent1009's leg
    consult: Consult
    colleague: SippAgent      # agent1010's phone


async def _consulting(svc: Service, caller: str, *, talk_s: float = 30.0, kind: str = "agent",
                      target: str = "agent1010") -> Consulting:
    """agent1009 answers a pension caller, then consults agent1010 (by id, or as the router's pick
    for a topic), who answers."""
    await svc.agent("agent1009", talk=None)
    colleague = await svc.agent("agent1010", talk=None, ready=False)
    call = svc.call([*ivr(PENSION), Pause(talk_s), HangUp()], caller=caller)
    call_id = await svc.wait_call_id(caller)
    answered = await svc.wait_event(call_id, "call.answered", timeout=25)
    svc.acd.ready("agent1010")
    consult = await svc.acd.consults.start("agent1009", kind=kind, target=target)
    await svc.wait_event(call_id, "consult.answered", timeout=15)
    return Consulting(call, call_id, answered.data["leg_uniqueid"], consult, colleague)


async def _consult_rung(svc: Service, caller: str, *, mode: str, talk_s: float = 35.0) -> Consulting:
    """agent1009 answers a pension caller, then consults agent1010, whose phone does ``mode``
    (reject: 486 after 0.5 s; ringout: rings until given up); returns as the consult starts."""
    await svc.agent("agent1009", talk=None)
    colleague = await svc.agent("agent1010", mode=mode, answer_after=0.5, ready=False)
    call = svc.call([*ivr(PENSION), Pause(talk_s), HangUp()], caller=caller)
    call_id = await svc.wait_call_id(caller)
    answered = await svc.wait_event(call_id, "call.answered", timeout=25)
    svc.acd.ready("agent1010")
    consult = await svc.acd.consults.start("agent1009", kind="agent", target="agent1010")
    return Consulting(call, call_id, answered.data["leg_uniqueid"], consult, colleague)


def _released(svc: Service, *agents: str) -> bool:
    return all(svc.status(a) in ("wrap_up", "ready") for a in agents)


async def test_consult_then_complete(stack_env: dict[str, str], pg_dsn: str) -> None:
    async with running_service(stack_env, pg_dsn) as svc:
        c = await _consulting(svc, "02838100031")
        await until(lambda: _bridged(svc, c.first_leg, c.consult.leg), timeout=10, what="the two agents bridged")
        await svc.acd.consults.finish("agent1009", "complete")
        await until(lambda: _bridged(svc, c.consult.leg, c.consult.caller_uniqueid), timeout=10,
                    what="the colleague bridged with the caller")
        await until(lambda: _released(svc, "agent1009"), timeout=10, what="agent1009 left")
        assert svc.status("agent1010") == "on_call"
        assert (await c.call).ok
        await until(lambda: _released(svc, "agent1010"), timeout=10, what="agent1010 done")
        row, timeline = await svc.record(c.call_id, until=("call.ended", "transfer.completed"))
        assert (row["outcome"], row["agent_id"], row["transfers"]) == ("answered", "agent1010", 1)
        kinds = [e["kind"] for e in timeline]
        assert kinds.index("transfer.requested") < kinds.index("consult.offer") < kinds.index("consult.answered") \
            < kinds.index("transfer.completed")
        assert c.colleague.calls_answered() == 1


async def test_consult_then_cancel(stack_env: dict[str, str], pg_dsn: str) -> None:
    async with running_service(stack_env, pg_dsn) as svc:
        c = await _consulting(svc, "02838100032", kind="topic", target="health.benefit")
        assert c.consult.colleague == "agent1010"           # the router's pick for the topic
        await svc.acd.consults.finish("agent1009", "cancel")
        await until(lambda: _bridged(svc, c.first_leg, c.consult.caller_uniqueid), timeout=10,
                    what="the agent back with its caller")
        await until(lambda: _released(svc, "agent1010"), timeout=10, what="agent1010 released")
        assert svc.status("agent1009") == "on_call"
        failed = svc.of(c.call_id, "transfer.failed")
        assert [(e.data["reason"], e.data["then"]) for e in failed] == [("cancelled", "back_to_agent")]
        assert (await c.call).ok
        row, timeline = await svc.record(c.call_id, until=("call.ended", "consult.ended"))
        assert (row["outcome"], row["agent_id"], row["transfers"]) == ("answered", "agent1009", 0)
        ended = [e for e in timeline if e["kind"] == "agent.ended"]
        assert any('"agent1010"' in e["data"] for e in ended)       # the colleague's talk time is its own


async def test_consult_then_three_way(stack_env: dict[str, str], pg_dsn: str) -> None:
    async with running_service(stack_env, pg_dsn) as svc:
        c = await _consulting(svc, "02838100033")
        await svc.acd.consults.finish("agent1009", "three_way")
        await until(lambda: _bridged(svc, c.first_leg, c.consult.leg, c.consult.caller_uniqueid), timeout=10,
                    what="caller and both agents in one bridge")
        assert svc.of(c.call_id, "transfer.completed")[0].data["result"] == "three_way"
        assert (await c.call).ok              # the caller hangs up: both agents' legs end
        await until(lambda: _released(svc, "agent1009", "agent1010"), timeout=10, what="both agents released")
        row, _ = await svc.record(c.call_id, until=("call.ended", "transfer.completed"))
        assert (row["outcome"], row["transfers"]) == ("answered", 1)


async def test_caller_hangs_up_during_the_consult(stack_env: dict[str, str], pg_dsn: str) -> None:
    async with running_service(stack_env, pg_dsn) as svc:
        c = await _consulting(svc, "02838100034", talk_s=14.0)
        assert (await c.call).ok              # hangs up while on hold
        failed = await svc.wait_event(c.call_id, "transfer.failed", timeout=10)
        assert failed.data["reason"] == "caller_gone"
        await until(lambda: _released(svc, "agent1009", "agent1010"), timeout=10, what="both agents released")
        row, _ = await svc.record(c.call_id, until=("call.ended", "consult.ended"))
        assert (row["outcome"], row["agent_id"], row["transfers"]) == ("answered", "agent1009", 0)
        assert not svc.acd.consults.consults


async def test_softphone_code_transfers_to_a_topic(stack_env: dict[str, str], pg_dsn: str) -> None:
    """``*4<n>#`` pressed on the agent's softphone during the call (SIP INFO): the n-th topic."""
    async with running_service(stack_env, pg_dsn) as svc:
        n = svc.acd.transfers.topics().index("health.benefit") + 1
        await svc.agent("agent1009", talk=None, keys=f"*4,{n}#", keys_after=3.0)
        await svc.agent("agent1010", talk=None)
        x = "02838100041"
        call_x = svc.call([*ivr(PENSION), Pause(30), HangUp()], caller=x)
        cx = await svc.wait_call_id(x)
        await svc.wait_event(cx, "call.answered", timeout=25)
        requested = await svc.wait_event(cx, "transfer.requested", timeout=20)
        assert (requested.data["kind"], requested.data["target"], requested.data["by"]) == \
            ("topic", "health.benefit", "agent1009")
        done = await svc.wait_event(cx, "transfer.completed", timeout=25)
        assert done.data["to_agent"] == "agent1010"
        await until(lambda: _released(svc, "agent1009"), timeout=10, what="agent1009 left")
        assert (await call_x).ok
        row, _ = await svc.record(cx, until=("call.ended", "transfer.completed"))
        assert (row["agent_id"], row["topic"], row["transfers"]) == ("agent1010", "health.benefit", 1)


async def test_softphone_codes_consult_then_complete(stack_env: dict[str, str], pg_dsn: str) -> None:
    """``*5<agent>#`` then ``*6`` on the softphone: consult agent1010, then hand the caller over."""
    async with running_service(stack_env, pg_dsn) as svc:
        await svc.agent("agent1009", talk=None, keys="*5,1010#" + "," * 6 + "*6", keys_after=3.0)
        colleague = await svc.agent("agent1010", talk=None, ready=False)
        x = "02838100042"
        call_x = svc.call([*ivr(PENSION), Pause(35), HangUp()], caller=x)
        cx = await svc.wait_call_id(x)
        await svc.wait_event(cx, "call.answered", timeout=25)
        svc.acd.ready("agent1010")
        await svc.wait_event(cx, "consult.answered", timeout=25)
        done = await svc.wait_event(cx, "transfer.completed", timeout=25)
        assert (done.data["kind"], done.data["to_agent"], done.data["result"]) == ("consult", "agent1010", "completed")
        await until(lambda: _released(svc, "agent1009"), timeout=10, what="agent1009 left")
        assert svc.status("agent1010") == "on_call"
        assert (await call_x).ok
        row, _ = await svc.record(cx, until=("call.ended", "transfer.completed"))
        assert (row["agent_id"], row["transfers"]) == ("agent1010", 1)
        assert colleague.calls_answered() == 1


async def test_consult_rejected_brings_the_agent_back(stack_env: dict[str, str], pg_dsn: str) -> None:
    async with running_service(stack_env, pg_dsn) as svc:
        c = await _consult_rung(svc, "02838100035", mode="reject", talk_s=25.0)
        failed = await svc.wait_event(c.call_id, "transfer.failed", timeout=20)
        assert (failed.data["reason"], failed.data["then"]) == ("rejected", "back_to_agent")
        await until(lambda: _bridged(svc, c.first_leg, c.consult.caller_uniqueid), timeout=10,
                    what="the agent back with its caller")
        assert svc.status("agent1009") == "on_call" and svc.status("agent1010") == "ready"
        assert (await c.call).ok
        row, _ = await svc.record(c.call_id, until=("call.ended", "consult.ended"))
        assert (row["outcome"], row["agent_id"], row["transfers"]) == ("answered", "agent1009", 0)

