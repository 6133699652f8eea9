"""Call records: event numbering, outcomes, and call.ended waiting for the flow's end."""

from __future__ import annotations

import asyncio

import pytest

from switchboard.calls import CallBook, CallEventBus, adopted_seq_base
from switchboard.events import CallEvent, EventKind


def _book(grace: float = 5.0) -> tuple[CallBook, list[CallEvent]]:
    seen: list[CallEvent] = []
    return CallBook(CallEventBus([seen.append]), flow_grace_s=grace), seen


def _ended(seen: list[CallEvent]) -> list[dict[str, object]]:
    return [e.data for e in seen if e.kind == EventKind.CALL_ENDED]


async def test_seq_numbers_per_call_and_started_once() -> None:
    book, seen = _book()
    book.started(call_id="c1", uniqueid="u1", caller="0243", dialed="1900", channel="PJSIP/t-1")
    book.started(call_id="c1", uniqueid="u1", caller="0243", dialed="1900", channel="PJSIP/t-1")
    book.emit("c1", EventKind.IVR_STEP, {"node": "welcome"})
    book.started(call_id="c2", uniqueid="u2", caller="", dialed="1900", channel="PJSIP/t-2")
    assert [(e.call_id, e.seq, e.kind) for e in seen] == [
        ("c1", 1, "call.started"), ("c1", 2, "ivr.step"), ("c2", 1, "call.started")]


async def test_hangup_before_the_flow_reports_waits_for_it() -> None:
    book, seen = _book()
    book.started(call_id="c1", uniqueid="u1", caller="0243", dialed="1900", channel="x")
    book.channel_hung_up("u1", cause="16", cause_txt="Normal Clearing")
    assert _ended(seen) == []                     # held: the flow is still running
    book.flow_ended("c1", reason="caller_hangup", node="si_retry_menu")
    [ended] = _ended(seen)
    assert ended["outcome"] == "abandoned_ivr" and ended["node"] == "si_retry_menu"
    assert ended["cause"] == "Normal Clearing"


async def test_flow_that_never_reports_is_closed_after_the_grace() -> None:
    book, seen = _book(grace=0.05)
    book.started(call_id="c1", uniqueid="u1", caller="", dialed="1900", channel="x")
    book.channel_hung_up("u1")
    await asyncio.sleep(0.15)
    [ended] = _ended(seen)
    assert ended["outcome"] == "abandoned_ivr"
    assert "c1" not in book.calls


@pytest.mark.parametrize(
    ("events", "flow", "expected"),
    [
        ([(EventKind.QUEUE_JOINED, {}), (EventKind.ANSWERED, {"agent_id": "a"})], ("queue:bridged", "agent", ""),
         "answered"),
        ([(EventKind.QUEUE_JOINED, {})], ("caller_hangup", "agent", ""), "abandoned_queue"),
        ([(EventKind.QUEUE_JOINED, {}), (EventKind.CALLBACK_REQUESTED, {})], ("hangup", "callback_later", "callback"),
         "callback"),
        ([(EventKind.IVR_STEP, {"node": "after_hours"})], ("hangup", "goodbye", ""), "after_hours"),
        ([], ("hangup", "goodbye", ""), "self_service"),
        ([(EventKind.SESSION_SEAT, {"session": "s", "outcome": "joined"})], ("conference", "session_join", ""),
         "self_service"),
        ([], ("hangup", "goodbye_no_input", "no_input"), "abandoned_ivr"),
        ([(EventKind.TRANSFER, {"target": "113"})], ("transfer", "x", ""), "transferred"),
        ([], ("failed", "", ""), "failed"),
    ],
)
async def test_outcomes(events: list[tuple[EventKind, dict[str, object]]], flow: tuple[str, str, str],
                        expected: str) -> None:
    book, seen = _book()
    book.started(call_id="c", uniqueid="u", caller="1", dialed="2", channel="x")
    for kind, data in events:
        book.emit("c", kind, data)
    book.flow_ended("c", reason=flow[0], node=flow[1], hangup_reason=flow[2])
    book.channel_hung_up("u")
    assert _ended(seen)[0]["outcome"] == expected


def test_adopted_calls_number_above_earlier_events() -> None:
    assert adopted_seq_base() > 100_000
    bus = CallEventBus()
    bus.seed("c", 1000)
    assert bus.emit("c", EventKind.QUEUE_JOINED, {}).seq == 1001


def test_events_after_the_end_keep_numbering() -> None:
    book, seen = _book(grace=0)
    book.started(call_id="c1", uniqueid="u1", caller="1", dialed="2", channel="x")
    book.flow_ended("c1", reason="queue:bridged", node="agent")
    book.channel_hung_up("u1")
    book.emit("c1", EventKind.WRAP_UP_ENDED, {"agent_id": "a"})   # the agent's wrap-up, after call.ended
    assert [e.seq for e in seen if e.call_id == "c1"] == [1, 2, 3]


def test_bus_counters_are_bounded_lru() -> None:
    bus = CallEventBus(max_calls=2)
    bus.emit("a", EventKind.IVR_STEP, {})
    bus.emit("b", EventKind.IVR_STEP, {})
    bus.emit("a", EventKind.IVR_STEP, {})      # a is recent again
    bus.emit("c", EventKind.IVR_STEP, {})      # evicts b, the least recently active
    assert bus.emit("a", EventKind.IVR_STEP, {}).seq == 3
    assert bus.emit("b", EventKind.IVR_STEP, {}).seq == 1


async def test_screen_pop_info_follows_the_calls_events_until_it_ends() -> None:
    book, seen = _book()
    book.started(call_id="c1", uniqueid="u1", caller="0243", dialed="1900", channel="x")
    book.emit("c1", EventKind.IVR_STEP, {"node": "welcome"})
    book.emit("c1", EventKind.IVR_STEP, {"node": "menu"})
    book.emit("c1", "ivr.lookup", {"found": True, "participant_id": "SI123"})
    book.emit("c1", EventKind.QUEUE_JOINED, {"topic": "health/card", "province": "HN", "language": "vi"})
    book.emit("c1", "agent.offer", {"agent_id": "a1"})
    book.emit("c1", EventKind.ANSWERED, {"agent_id": "a1"})
    offer, answer = (e for e in seen if e.kind in ("agent.offer", "call.answered"))
    assert book.call_info("c1") == {
        "caller": "0243", "ivr_path": ["welcome", "menu"], "si_code": "SI123", "topic": "health/card",
        "province": "HN", "language": "vi", "offered_at": offer.ts, "answered_at": answer.ts}
    book.emit("cb", EventKind.QUEUE_JOINED, {"topic": "social/pension", "province": "HCM", "language": "vi"})
    assert book.call_info("cb")["topic"] == "social/pension"   # a call id with no live record (a callback)
    book.channel_hung_up("u1", cause="16")
    book.flow_ended("c1", reason="caller_hangup", node="menu")
    assert book.call_info("c1") == {} and book.call_info("nobody") == {}
