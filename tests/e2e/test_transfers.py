"""Transfers on the real stack (issue 16): SIPp callers through the hotline IVR, SIPp agents,
Asterisk moving the caller with AMI Redirect, the records read back from PostgreSQL.
"""

from __future__ import annotations

import pytest
from e2e_service import PENSION, running_service, until
from test_acd_routing import ivr

from switchboard.acd.transfers import TransferError
from switchboard.demo.sipp import HangUp, Pause

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
        await svc.acd.transfers.blind("agent1009", kind="number", target="ho-chi-minh")
        done = await svc.wait_event(cx, "transfer.completed", timeout=20)
        assert (done.data["kind"], done.data["number"]) == ("number", entry.number)
        await until(lambda: svc.status("agent1009") in ("wrap_up", "ready"), timeout=10, what="agent1009 left")
        assert (await call_x).ok
        result = await office
        assert result.ok, result.errors or result.stderr
        row, _ = await svc.record(cx, until=("call.ended", "transfer.completed", "agent.ended"))
        assert (row["outcome"], row["agent_id"], row["transfers"]) == ("answered", "agent1009", 1)
