"""Never strand a caller: the reconciliation decision (pure) and the rescuer's choices, with a
spec'd fake AMI (what Asterisk answers to Redirect / Hangup), and the records they leave."""

from __future__ import annotations

import asyncio

import pytest

from switchboard.ami.client import AmiTimeout
from switchboard.ami.protocol import Event, Headers, Response
from switchboard.calls import CallBook, CallEventBus
from switchboard.events import CallEvent, EventKind
from switchboard.metrics import Metrics
from switchboard.telephony.rescue import (
    CAUSE_NORMAL_CLEARING,
    CAUSE_TEMPORARY_FAILURE,
    Act,
    Action,
    Channel,
    Rescuer,
    duration_s,
    reconcile,
)

HOT = ("hotline",)
OTHER = ("hotline-after", "agents")


def ch(uid: str, *, context: str = "hotline", app: str = "AGI", age: float = 60.0, bridged: bool = False) -> Channel:
    return Channel(uniqueid=uid, channel=f"PJSIP/trunk-{uid}", context=context, application=app, age_s=age,
                   bridged=bridged)


def decide(channels: list[Channel], *, open_calls: dict[str, str] | None = None, served: tuple[str, ...] = (),
           sessions: tuple[str, ...] = (), over: tuple[str, ...] = (), min_age: float = 10.0) -> list[Action]:
    return reconcile(open_calls=open_calls or {}, channels=channels, served=served, sessions=sessions,
                     flow_over=over, hotline_contexts=HOT, other_contexts=OTHER, min_age_s=min_age)


def test_everything_in_order_means_nothing_to_do() -> None:
    listed = [ch("u1"), ch("u2", app="StartMusicOnHold"), ch("u3", app="Bridge", bridged=True)]
    assert decide(listed, open_calls={"c1": "u1", "c2": "u2", "c3": "u3"}, served=("u1", "u2"),
                  sessions=("u1", "u2")) == []


def test_a_record_whose_channel_is_gone_is_closed() -> None:
    actions = decide([ch("u1")], open_calls={"c1": "u1", "c2": "u2"}, served=("u1",), sessions=("u1",))
    assert actions == [Action(Act.CLOSE_GONE, call_id="c2", uniqueid="u2")]


def test_a_channel_in_agi_the_service_never_saw_is_adopted() -> None:
    [action] = decide([ch("u9")])
    assert (action.act, action.uniqueid, action.call_id, action.channel) == (Act.ADOPT, "u9", "", "PJSIP/trunk-u9")


def test_a_channel_the_service_knows_but_no_longer_serves_goes_to_the_fallback_queue() -> None:
    # the flow task died (a timed-out step whose rescue failed): session and record known, nothing running
    [action] = decide([ch("u1", app="Playback")], open_calls={"c1": "u1"}, sessions=("u1",))
    assert (action.act, action.call_id) == (Act.FALLBACK, "c1")
    # a record without a session (the session closed, the channel stayed in AGI) too
    [action] = decide([ch("u1")], open_calls={"c1": "u1"})
    assert action.act is Act.FALLBACK


def test_a_caller_whose_flow_ended_is_hung_up_not_queued() -> None:
    [action] = decide([ch("u1")], open_calls={"c1": "u1"}, sessions=("u1",), over=("u1",))
    assert action.act is Act.HANGUP


def test_survey_and_feature_code_channels_left_in_agi_are_hung_up() -> None:
    actions = decide([ch("u1", context="hotline-after"), ch("u2", context="agents")])
    assert [a.act for a in actions] == [Act.HANGUP, Act.HANGUP]


@pytest.mark.parametrize("channel", [
    ch("u1", age=3.0),                              # young: its AsyncAGIStart may be on its way
    ch("u1", app="Queue"),                          # the fallback queue already has it
    ch("u1", app="Dial"),                           # an IVR transfer
    ch("u1", app="Bridge", bridged=True),           # talking to an agent
    ch("u1", context="hotline-rescue", app="Queue"),  # handed on by the rescuer
    ch("u1", context="callback-out", app="Dial"),   # not an AGI context
    ch("u1", context="default", app="AGI"),
])
def test_channels_that_are_not_stranded_are_left_alone(channel: Channel) -> None:
    assert decide([channel]) == []


def test_served_channels_are_never_touched_even_when_old() -> None:
    assert decide([ch("u1", age=3600)], open_calls={"c1": "u1"}, served=("u1",), sessions=("u1",)) == []


def test_a_record_opened_after_the_listing_is_not_closed() -> None:
    # the caller filters open_calls by start time; what it passes is what it means
    assert decide([], open_calls={}) == []


def test_channel_from_a_core_show_channel_event() -> None:
    ev = Event("CoreShowChannel", {"Uniqueid": "1.2", "Channel": "PJSIP/trunk-1", "Context": "hotline",
                                   "Application": "AGI", "Duration": "01:02:03", "BridgeId": ""})
    c = Channel.from_event(ev)
    assert (c.uniqueid, c.context, c.application, c.age_s, c.bridged) == ("1.2", "hotline", "AGI", 3723.0, False)
    assert duration_s("x") == 0.0


# ---------------------------------------------------------------------------- the rescuer


class FakeAmi:
    """Answers Redirect / Hangup as Asterisk would: ``script`` is a list of what each action gets
    ("ok", "error", "timeout"), in order."""

    def __init__(self, script: list[str]) -> None:
        self.script = list(script)
        self.sent: list[dict[str, str]] = []
        self.connected = True

    async def send(self, action: dict[str, str], *, timeout: float | None = None) -> Response:
        self.sent.append(dict(action))
        what = self.script.pop(0) if self.script else "ok"
        if what == "timeout":
            raise AmiTimeout(f"no answer to {action['Action']} within {timeout}s")
        if what == "error":
            return Response("Error", Headers({"Message": "Channel not existent"}))
        return Response("Success", Headers({"Message": "done"}))

    async def wait_connected(self, *, timeout: float) -> None:
        return None


class FakeSession:
    def __init__(self) -> None:
        self.closed = False
        self.close_reason = ""


def _setup(script: list[str]) -> tuple[FakeAmi, CallBook, list[CallEvent], Metrics, Rescuer]:
    seen: list[CallEvent] = []
    metrics = Metrics()
    book = CallBook(CallEventBus([seen.append, metrics.observe_event]), flow_grace_s=0.05)
    book.started(call_id="c1", uniqueid="u1", caller="0243", dialed="1900", channel="PJSIP/trunk-1")
    ami = FakeAmi(script)
    return ami, book, seen, metrics, Rescuer(ami, book, observe=metrics.observe_rescue, retry_s=0.05)


def _count(metrics: Metrics, name: str, **labels: str) -> float:
    value = metrics.registry.get_sample_value(name, labels)
    return value or 0.0


async def test_a_failed_step_hands_the_caller_to_the_fallback_queue_and_the_record_says_so() -> None:
    ami, book, seen, metrics, rescuer = _setup(["ok"])
    result = await rescuer.hand_to_fallback(channel="PJSIP/trunk-1", uniqueid="u1", call_id="c1",
                                            reason="agi_timeout", node="language", detail="ANSWER: no result")
    assert result == "fallback"
    assert ami.sent == [{"Action": "Redirect", "Channel": "PJSIP/trunk-1", "Context": "hotline-rescue",
                         "Exten": "fallback", "Priority": "1"}]
    [handed] = [e.data for e in seen if e.kind == EventKind.HANDED_TO_FALLBACK]
    assert handed["reason"] == "agi_timeout" and handed["node"] == "language"
    assert [e.kind for e in seen if e.kind == EventKind.CALL_ENDED] == []   # the caller is still on the line
    book.channel_hung_up("u1", cause="16", cause_txt="Normal Clearing")
    await asyncio.sleep(0.1)
    [ended] = [e.data for e in seen if e.kind == EventKind.CALL_ENDED]
    assert (ended["outcome"], ended["node"]) == ("fallback", "language")
    assert _count(metrics, "switchboard_calls_handed_to_fallback_total", reason="agi_timeout") == 1
    assert _count(metrics, "switchboard_calls_total", topic="unknown", province="unknown", outcome="fallback") == 1


async def test_redirect_retried_while_asterisk_does_not_answer() -> None:
    ami, _book, _seen, _metrics, rescuer = _setup(["timeout", "timeout", "ok"])
    assert await rescuer.hand_to_fallback(channel="PJSIP/trunk-1", uniqueid="u1", call_id="c1",
                                          reason="agi_timeout", node="welcome") == "fallback"
    assert [a["Action"] for a in ami.sent] == ["Redirect"] * 3


async def test_a_redirect_that_landed_late_is_not_sent_twice() -> None:
    ami, _book, _seen, _metrics, rescuer = _setup(["timeout"])
    session = FakeSession()

    async def lands() -> None:   # Asterisk runs the Redirect after all: AsyncAGIEnd closes the session
        await asyncio.sleep(0.02)
        session.closed, session.close_reason = True, "left AGI"

    task = asyncio.create_task(lands())
    assert await rescuer.hand_to_fallback(channel="PJSIP/trunk-1", uniqueid="u1", call_id="c1", reason="agi_timeout",
                                          node="welcome", session=session) == "fallback"
    await task
    assert [a["Action"] for a in ami.sent] == ["Redirect"]


async def test_when_redirect_is_refused_the_caller_is_hung_up_with_a_cause() -> None:
    ami, book, seen, _metrics, rescuer = _setup(["error", "ok"])
    assert await rescuer.hand_to_fallback(channel="PJSIP/trunk-1", uniqueid="u1", call_id="c1",
                                          reason="agi_refused", node="menu") == "hung_up"
    assert ami.sent[1] == {"Action": "Hangup", "Channel": "PJSIP/trunk-1", "Cause": str(CAUSE_TEMPORARY_FAILURE)}
    [hung] = [e.data for e in seen if e.kind == EventKind.HUNG_UP_BY_SERVICE]
    assert hung["cause"] == 41 and hung["node"] == "menu"
    book.channel_hung_up("u1", cause="41")
    await asyncio.sleep(0.1)
    [ended] = [e.data for e in seen if e.kind == EventKind.CALL_ENDED]
    assert (ended["outcome"], ended["node"]) == ("failed", "menu")


async def test_a_caller_that_hung_up_meanwhile_is_left_alone() -> None:
    ami, _book, _seen, _metrics, rescuer = _setup([])
    session = FakeSession()
    session.closed, session.close_reason = True, "hang-up"
    assert await rescuer.hand_to_fallback(channel="PJSIP/trunk-1", uniqueid="u1", call_id="c1", reason="error",
                                          node="welcome", session=session) == "gone"
    assert ami.sent == []


async def test_nothing_answers_counts_a_failure_for_the_next_pass() -> None:
    _ami, book, _seen, metrics, rescuer = _setup(["timeout"] * 10)
    assert await rescuer.hand_to_fallback(channel="PJSIP/trunk-1", uniqueid="u1", call_id="c1",
                                          reason="ami_disconnected", node="welcome") == "failed"
    assert _count(metrics, "switchboard_rescue_failures_total", reason="ami_disconnected") == 1
    assert "c1" in book.calls   # the record stays open: the channel may well still be there


async def test_hangup_after_the_flow_keeps_the_outcome() -> None:
    _ami, book, seen, _metrics, rescuer = _setup(["ok"])
    book.flow_ended("c1", reason="hangup", node="goodbye")
    await rescuer.hang_up(channel="PJSIP/trunk-1", call_id="c1", reason="stranded", node="goodbye",
                          cause=CAUSE_NORMAL_CLEARING)
    book.channel_hung_up("u1", cause="16")
    [ended] = [e.data for e in seen if e.kind == EventKind.CALL_ENDED]
    assert ended["outcome"] == "self_service"


async def test_the_record_closes_at_the_hangup_with_the_node_the_stuck_flow_was_at() -> None:
    seen: list[CallEvent] = []
    nodes = {"u1": "si_code"}
    book = CallBook(CallEventBus([seen.append]), flow_grace_s=0.05, current_node=nodes.get)
    book.started(call_id="c1", uniqueid="u1", caller="", dialed="1900", channel="x")
    await asyncio.sleep(0.1)
    assert "c1" in book.calls                    # no timer while the channel lives
    book.channel_hung_up("u1", cause="16")
    await asyncio.sleep(0.15)
    [ended] = [e.data for e in seen if e.kind == EventKind.CALL_ENDED]
    assert (ended["outcome"], ended["node"]) == ("abandoned_ivr", "si_code")


async def test_reconciled_gone_closes_the_record_with_that_cause() -> None:
    seen: list[CallEvent] = []
    book = CallBook(CallEventBus([seen.append]))
    book.started(call_id="c1", uniqueid="u1", caller="", dialed="1900", channel="x")
    assert book.open_calls() == {"c1": "u1"}
    book.channel_gone("c1", cause="reconciled_gone")
    [ended] = [e.data for e in seen if e.kind == EventKind.CALL_ENDED]
    assert ended["cause"] == "reconciled_gone" and book.open_calls() == {}

