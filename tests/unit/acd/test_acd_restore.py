"""What the ACD takes back after a restart: owed callbacks go back in line
(AcdService.restore_callbacks) and agents take back their last logged state
(AcdService.restore_states).

Pure: no phone is reachable, so nothing is offered; what is checked is the line, the
states and the events. The database queries and the dialling are covered by
tests/integration/store and tests/e2e (test_acd_callback.py, test_acd_readoption.py).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from switchboard.acd.service import AcdService
from switchboard.config import RoutingSettings
from switchboard.store.callbacks import OpenCallback

NOW = 1_800_000_000.0


def _acd(events: list[tuple[str, str, dict[str, Any]]]) -> AcdService:
    return AcdService(ami=object(), routing=RoutingSettings(), agents=(), region_of={},
                      emit=lambda call_id, kind, data: events.append((call_id, str(kind), data)),
                      clock=lambda: 500.0, wall=lambda: NOW)


def _owed(n: int, *, number: str = "", age_s: float = 600.0, joined_s: float | None = None,
          attempts: int = 0) -> OpenCallback:
    at = datetime.fromtimestamp(NOW - age_s, UTC)
    joined = datetime.fromtimestamp(NOW - (joined_s if joined_s is not None else age_s), UTC)
    return OpenCallback(callback_id=f"cb-{n}", call_id=f"call-{n}", number=number or f"09000000{n:02d}",
                        topic="social.pension", province="ha-noi", language="vi", requested_at=at,
                        joined_at=joined, attempts=attempts, priority=n % 2)


async def test_owed_callbacks_keep_their_place_and_their_attempts() -> None:
    events: list[tuple[str, str, dict[str, Any]]] = []
    acd = _acd(events)
    restored = acd.restore_callbacks([_owed(1, joined_s=900, attempts=1), _owed(2, age_s=60)], max_age_s=3600)
    assert restored == ["call-1", "call-2"] and events == []
    w1, w2 = acd.waiting["call-1"], acd.waiting["call-2"]
    assert w1.callback is not None and (w1.callback.callback_id, w1.callback.attempts) == ("cb-1", 1)
    assert w1.caller == "0900000001" and w1.session is None and w1.done is None
    assert w1.call.joined_at == 500.0 - 900 and w2.call.joined_at == 500.0 - 60   # place: when they joined
    assert (w1.call.topic, w1.call.province, w1.call.priority) == ("social.pension", "ha-noi", 1)
    # a second sweep finds the same rows: nothing doubles
    assert acd.restore_callbacks([_owed(1), _owed(2)], max_age_s=3600) == []
    assert len(acd.waiting) == 2 and acd.callbacks_pending() == 2


async def test_expired_duplicate_and_just_closed_callbacks_stay_out() -> None:
    events: list[tuple[str, str, dict[str, Any]]] = []
    acd = _acd(events)
    acd.callbacks.closed("cb-4")            # answered a moment ago; its event not in the database yet
    owed = [_owed(1), _owed(2, age_s=7200, attempts=2), _owed(3, number="0900000001"), _owed(4)]
    assert acd.restore_callbacks(owed, max_age_s=3600) == ["call-1"]
    assert events == [
        ("call-2", "callback.completed", {"callback_id": "cb-2", "result": "expired", "attempt": 2, "final": True}),
        ("call-3", "callback.completed", {"callback_id": "cb-3", "result": "duplicate", "attempt": 0,
                                          "final": True}),
    ]
    assert acd.restore_callbacks(owed, max_age_s=3600) == [] and len(events) == 2   # closed ones stay closed


async def test_agents_take_back_their_last_logged_state() -> None:
    from switchboard.acd.agents import AgentRecord

    acd = _acd([])
    acd.set_agents([AgentRecord(id=f"a{i}", name=f"A{i}", sip_endpoint=f"a{i}", skills={"general": 3},
                                home_province="ha-noi") for i in range(1, 7)])
    acd.ready("a6")                                   # logged in since the start: left alone
    acd.pause("a6", "meeting")
    last = {"a1": ("ready", None), "a2": ("paused", "lunch"), "a3": ("on_call", None), "a4": ("logged_out", None),
            "a5": ("wrap_up", None), "a6": ("ready", None), "ghost": ("ready", None)}
    assert acd.restore_states(last) == ["a1", "a2", "a3", "a5"]
    status = {a: (s.status.value, s.pause_reason) for a, s in acd.states.items()}
    assert status == {"a1": ("ready", None), "a2": ("paused", "lunch"), "a3": ("ready", None),
                      "a4": ("logged_out", None), "a5": ("ready", None), "a6": ("paused", "meeting")}
    assert acd.restore_states(last) == []             # nobody is logged out any more


async def test_owed_callbacks_the_number_policy_refuses_are_closed_not_dialled() -> None:
    """A callback stored before the number policy (or under another configuration) is checked
    again when read back: refused numbers are closed as ``refused``, never put in line."""
    events: list[tuple[str, str, dict[str, Any]]] = []
    acd = _acd(events)
    owed = [_owed(1, number="0912345678&PJSIP/agent1003"), _owed(2, number="19001234"), _owed(3, number="+84912345678")]
    assert acd.restore_callbacks(owed, max_age_s=3600) == ["call-3"]
    assert acd.waiting["call-3"].callback is not None and acd.waiting["call-3"].callback.number == "0912345678"
    assert [(c, k, d.get("reason") or d.get("result")) for c, k, d in events] == [
        ("call-1", "callback.refused", "malformed"), ("call-1", "callback.completed", "refused"),
        ("call-2", "callback.refused", "denied_prefix"), ("call-2", "callback.completed", "refused")]


async def test_owed_callbacks_wait_for_the_calling_window_keeping_their_place() -> None:
    """Outside the calling window a ready agent is not offered an owed callback; once the
    window opens, the one that joined first is routed."""
    from zoneinfo import ZoneInfo

    from switchboard.acd.agents import AgentRecord
    from switchboard.telephony.windows import CallingWindow

    acd = _acd([])
    acd.set_agents([AgentRecord(id="a1", name="A1", sip_endpoint="a1", skills={"social.pension": 3},
                                home_province="ha-noi")])
    acd.ready("a1")
    acd.desk.device_changed("PJSIP/a1", "NOT_INUSE")                     # the phone is idle
    local = [datetime(2026, 3, 4, 1, 27, tzinfo=ZoneInfo("Asia/Ho_Chi_Minh"))]
    acd.callbacks.window, acd.callbacks.local_clock = CallingWindow.build(), lambda: local[0]
    offered: list[str] = []
    acd.offer_lifecycle.offer = lambda a: offered.append(a.call_id)   # type: ignore[method-assign]
    acd.restore_callbacks([_owed(2, joined_s=300), _owed(1, joined_s=900)], max_age_s=3600)
    acd._route_now()
    assert offered == [] and acd.callbacks_pending() == 2                 # 01:27: nobody is called
    assert acd.callbacks.expected_at() == datetime(2026, 3, 4, 7, 30, tzinfo=ZoneInfo("Asia/Ho_Chi_Minh"))
    local[0] = local[0].replace(hour=7, minute=30)
    acd.schedule_route()                  # an unnamed change, as the routing timer's pass declares
    acd._route_now()                      # its step sees the window open
    assert offered == ["call-1"] and acd.callbacks.expected_at() is None  # the first in line, at 07:30
