"""Wrap-up ends when it is due, not at the ACD timer's next tick (``AgentDesk._end_wrap_up_at``),
and a caller joining the line with a free agent is offered within that turn of the loop
(``schedule_route(at_once=True)``): the two halves of dispatch latency the service controls."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from switchboard.acd import agent_state as st
from switchboard.acd.agents import AgentRecord
from switchboard.acd.service import AcdService
from switchboard.config import RoutingSettings


def _acd(**routing: Any) -> tuple[AcdService, list[tuple[str, str, dict[str, Any]]]]:
    events: list[tuple[str, str, dict[str, Any]]] = []
    acd = AcdService(ami=object(), routing=RoutingSettings(reevaluate_interval_s=3600, **routing), region_of={},
                     agents=[AgentRecord(id="agent1001", name="A", sip_endpoint="agent1001", home_province="ha-noi",
                                         skills={"general": 3})],
                     clock=time.monotonic, wall=time.time,
                     emit=lambda call_id, kind, data: events.append((call_id, str(kind), data)))
    return acd, events


async def test_wrap_up_ends_when_due_without_the_timer() -> None:
    acd, events = _acd(wrap_up_s=0.2)
    desk = acd.desk
    desk.apply("agent1001", st.DeviceChanged(st.DeviceState.NOT_INUSE))
    desk.apply("agent1001", st.Login())
    desk.apply("agent1001", st.Offer("c1"))
    desk.apply("agent1001", st.Answer())
    desk.last_call["agent1001"] = "c1"
    desk.apply("agent1001", st.Hangup())
    assert desk.states["agent1001"].status is st.AgentStatus.WRAP_UP
    ready = asyncio.Event()
    desk.listeners.append(lambda kind, data: ready.set() if kind == "agent.state" and data["to"] == "ready" else None)
    async with asyncio.timeout(5):       # the ACD timer (3600 s) never ticks here
        await ready.wait()
    assert desk.states["agent1001"].status is st.AgentStatus.READY
    assert desk.clock() >= desk.states["agent1001"].since
    ended = [d for c, k, d in events if k == "agent.wrap_up_ended" and c == "c1"]
    assert len(ended) == 1 and ended[0]["wrap_up_s"] >= 0.2


async def test_a_wrap_up_ended_by_hand_leaves_no_timer_behind() -> None:
    acd, events = _acd(wrap_up_s=0.2)
    desk = acd.desk
    for ev in (st.DeviceChanged(st.DeviceState.NOT_INUSE), st.Login(), st.Offer("c1"), st.Answer(), st.Hangup()):
        desk.apply("agent1001", ev)
    desk.last_call["agent1001"] = "c1"
    assert "agent1001" in desk._wrap_up_timers
    desk.end_wrap_up("agent1001", disposition="resolved")
    assert "agent1001" not in desk._wrap_up_timers
    desk.apply("agent1001", st.Pause("lunch"))
    await asyncio.sleep(0.4)             # past the first wrap-up's end: nothing may change
    assert desk.states["agent1001"].status is st.AgentStatus.PAUSED
    assert len([1 for _, k, _ in events if k == "agent.wrap_up_ended"]) == 1
    await acd.stop()
    assert not desk._wrap_up_timers


def test_at_once_routes_inside_the_call_and_never_inside_a_step() -> None:
    acd, _ = _acd()
    steps: list[int] = []
    real_step = acd.book.step

    def step(now: float) -> Any:
        steps.append(len(steps))
        if len(steps) == 1:      # a change seen inside a step: at_once must not recurse into it
            acd.schedule_route("c-inner", at_once=True)
            assert len(steps) == 1
        return real_step(now)

    acd.book.step = step     # type: ignore[method-assign]

    async def main() -> None:
        acd.schedule_route("c1", at_once=True)
        assert steps == [0]                            # ran now, within this turn of the loop
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert steps == [0, 1]                         # the inner change: its own step, a turn later

    asyncio.run(main())
