"""The agent state machine: every legal and every illegal transition of the table."""

from __future__ import annotations

import itertools

import pytest

from switchboard.acd.agent_state import (
    TRANSITIONS,
    AgentRules,
    AgentState,
    AgentStatus,
    Answer,
    CancelOffer,
    DeviceChanged,
    DeviceState,
    Event,
    Hangup,
    IllegalTransition,
    Login,
    Logout,
    NoAnswer,
    NotOfferable,
    Offer,
    Pause,
    Reject,
    Resume,
    WrapUpDone,
    due_event,
    logged_out,
    offerable,
    transition,
)

S = AgentStatus
RULES = AgentRules(wrap_up_s=10.0, no_answer_limit=3)

SAMPLE_EVENTS: list[Event] = [
    Login(), Logout(), Offer("c1"), Answer(), NoAnswer(), Reject(), CancelOffer(), Hangup(), WrapUpDone(),
    Pause("lunch"), Resume(), DeviceChanged(DeviceState.INUSE),
]

EXPECTED = {
    (S.LOGGED_OUT, Login): S.READY,
    (S.READY, Offer): S.OFFERED,
    (S.READY, Pause): S.PAUSED,
    (S.READY, Logout): S.LOGGED_OUT,
    (S.OFFERED, Answer): S.ON_CALL,
    (S.OFFERED, NoAnswer): S.READY,
    (S.OFFERED, Reject): S.READY,
    (S.OFFERED, CancelOffer): S.READY,
    (S.ON_CALL, Hangup): S.WRAP_UP,
    (S.ON_CALL, Pause): S.ON_CALL,
    (S.WRAP_UP, WrapUpDone): S.READY,
    (S.WRAP_UP, Pause): S.WRAP_UP,
    (S.WRAP_UP, Logout): S.LOGGED_OUT,
    (S.PAUSED, Resume): S.READY,
    (S.PAUSED, Pause): S.PAUSED,
    (S.PAUSED, Logout): S.LOGGED_OUT,
}


def state_in(status: AgentStatus, device: DeviceState = DeviceState.NOT_INUSE) -> AgentState:
    return AgentState(agent_id="a1", status=status, since=0.0, device=device,
                      pause_reason="lunch" if status is S.PAUSED else None,
                      call_id="c0" if status in (S.OFFERED, S.ON_CALL) else None)


def test_table_is_exactly_the_documented_one() -> None:
    without_device = {k: v for k, v in TRANSITIONS.items() if k[1] is not DeviceChanged}
    assert without_device == EXPECTED
    assert {k[0] for k in TRANSITIONS if k[1] is DeviceChanged} == set(AgentStatus)


@pytest.mark.parametrize(("status", "event"), list(itertools.product(AgentStatus, SAMPLE_EVENTS)),
                         ids=lambda x: getattr(x, "value", type(x).__name__))
def test_every_pair_is_legal_or_raises(status: AgentStatus, event: Event) -> None:
    before = state_in(status)
    key = (status, type(event))
    if isinstance(event, DeviceChanged):
        after = transition(before, event, 5.0, RULES)
        assert after.status is status
        assert after.device is DeviceState.INUSE
        assert after.since == before.since
    elif key in EXPECTED:
        after = transition(before, event, 5.0, RULES)
        assert after.status is EXPECTED[key]
        assert after.since == (5.0 if after.status is not status else 0.0)
    else:
        with pytest.raises(IllegalTransition) as info:
            transition(before, event, 5.0, RULES)
        assert info.value.status is status
        assert info.value.event == event


def test_full_cycle_and_wrap_up_timer() -> None:
    s = logged_out("a1", 0.0, DeviceState.NOT_INUSE)
    s = transition(s, Login(), 1.0, RULES)
    assert offerable(s) and s.ready_since == 1.0
    s = transition(s, Offer("c9"), 2.0, RULES)
    assert s.call_id == "c9" and not offerable(s) and s.ready_since is None
    s = transition(s, Answer(), 3.0, RULES)
    s = transition(s, Hangup(), 50.0, RULES)
    assert s.status is S.WRAP_UP and s.wrap_up_until == 60.0 and s.call_id is None
    assert due_event(s, 59.9) is None
    assert due_event(s, 60.0) == WrapUpDone()
    s = transition(s, WrapUpDone(), 60.0, RULES)
    assert s.status is S.READY and s.since == 60.0 and s.wrap_up_until is None


def test_no_answer_limit_pauses_and_answer_resets() -> None:
    s = state_in(S.READY)
    for i in range(2):
        s = transition(transition(s, Offer(f"c{i}"), i, RULES), NoAnswer(), i + 0.5, RULES)
        assert s.status is S.READY and s.no_answer_streak == i + 1
    # an answered offer resets the streak
    s = transition(transition(s, Offer("x"), 3, RULES), Answer(), 3.5, RULES)
    assert s.no_answer_streak == 0
    s = transition(transition(s, Hangup(), 4, RULES), WrapUpDone(), 20, RULES)
    # cancelled offers (caller gone) do not count; rejects do
    s = transition(transition(s, Offer("y"), 21, RULES), CancelOffer(), 22, RULES)
    assert s.no_answer_streak == 0
    for i, ev in enumerate([Reject(), NoAnswer()]):
        s = transition(transition(s, Offer(f"z{i}"), 30 + i, RULES), ev, 30.5 + i, RULES)
    assert s.status is S.READY and s.no_answer_streak == 2
    s = transition(transition(s, Offer("last"), 40, RULES), NoAnswer(), 41, RULES)
    assert s.status is S.PAUSED and s.pause_reason == "no-answer" and s.since == 41
    s = transition(s, Resume(), 50, RULES)
    assert s.status is S.READY and s.pause_reason is None and s.no_answer_streak == 0


def test_pause_during_call_is_taken_after_wrap_up() -> None:
    s = state_in(S.ON_CALL)
    s = transition(s, Pause("meeting"), 1, RULES)
    assert s.status is S.ON_CALL and s.pending_pause == "meeting" and s.pause_reason is None
    s = transition(s, Hangup(), 2, RULES)
    s = transition(s, WrapUpDone(), 12, RULES)
    assert s.status is S.PAUSED and s.pause_reason == "meeting" and s.pending_pause is None
    s = transition(s, Pause("lunch"), 13, RULES)
    assert s.pause_reason == "lunch" and s.since == 12


def test_device_state_gates_offers() -> None:
    s = state_in(S.READY, DeviceState.UNAVAILABLE)
    assert not offerable(s) and not s.reachable
    with pytest.raises(NotOfferable):
        transition(s, Offer("c1"), 1, RULES)
    for dev in (DeviceState.INUSE, DeviceState.RINGING, DeviceState.UNKNOWN, DeviceState.BUSY):
        assert not offerable(transition(s, DeviceChanged(dev), 2, RULES))
    s = transition(s, DeviceChanged(DeviceState.NOT_INUSE), 2, RULES)
    assert offerable(s) and s.reachable
    assert transition(s, Offer("c1"), 3, RULES).status is S.OFFERED


def test_device_state_parse() -> None:
    assert DeviceState.parse("NOT_INUSE") is DeviceState.NOT_INUSE
    assert DeviceState.parse("Not in use") is DeviceState.NOT_INUSE
    assert DeviceState.parse("unavailable") is DeviceState.UNAVAILABLE
    assert DeviceState.parse("whatever") is DeviceState.UNKNOWN


def test_logout_clears_pause_and_rules_validate() -> None:
    s = transition(state_in(S.PAUSED), Logout(), 9, RULES)
    assert s.status is S.LOGGED_OUT and s.pause_reason is None
    with pytest.raises(ValueError):
        AgentRules(no_answer_limit=0)
    with pytest.raises(ValueError):
        AgentRules(wrap_up_s=-1)
