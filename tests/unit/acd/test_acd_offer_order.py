"""An offer's ``Originate`` leaves before anything else the offer does.

The agent's phone rings from that action; the offer's event, the agents' pages (listeners)
and the log lines follow in the same call, in their usual order (docs/capacity.md, dispatch
latency). A real ``AcdService`` over the tests' fake AMI link (``tests/unit/api/fake_asterisk.py``)
and the real ``AgiManager``.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "api"))   # the one fake AMI link

from fake_asterisk import FakeAsterisk, registered

from switchboard.acd import agent_state as ast
from switchboard.acd.agents import AgentRecord
from switchboard.acd.service import AcdService
from switchboard.ami.agi import AgiManager, AgiSession
from switchboard.ami.protocol import Event
from switchboard.config import RoutingSettings
from switchboard.geo import load_provinces
from switchboard.ivr.machine import Enqueue


async def test_the_originate_leaves_before_the_offer_is_told(caplog: pytest.LogCaptureFixture) -> None:
    order: list[str] = []
    rec = AgentRecord(id="a1", name="A1", sip_endpoint="a1", home_province="ha-noi", skills={"health.card": 3})
    asterisk = FakeAsterisk(endpoints=registered(["a1"]))
    send_nowait = asterisk.send_nowait

    def noting_send(action: Any, **kw: Any) -> Any:
        if action.get("Action") == "Originate":
            order.append("originate")
        return send_nowait(action, **kw)

    asterisk.send_nowait = noting_send   # type: ignore[method-assign]
    acd = AcdService(ami=asterisk, routing=RoutingSettings(), agents=[rec],
                     region_of=load_provinces().region_of_map(),
                     emit=lambda call_id, kind, data: order.append(f"event {kind}"))
    acd.listeners.append(lambda kind, payload: order.append(
        f"{kind} {payload.get('to', '')}".strip()))

    sessions: dict[str, AgiSession] = {}

    async def on_start(session: AgiSession) -> None:
        sessions[session.uniqueid] = session

    AgiManager(asterisk, on_start=on_start)
    acd.login("a1")
    acd.ready("a1")
    acd.handle_event(Event("DeviceStateChange", {"Device": "PJSIP/a1", "State": "NOT_INUSE"}))
    chan = asterisk.caller_enters_agi(caller="0241000001")
    for _ in range(10):
        await asyncio.sleep(0)
    order.clear()
    caplog.set_level(logging.INFO, logger="switchboard.acd")

    class NotingHandler(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            order.append("log " + record.getMessage().split(":")[0].split(" (")[0])

    handler = NotingHandler()
    logging.getLogger("switchboard.acd").addHandler(handler)
    try:
        task = asyncio.create_task(acd.enqueue(sessions[chan.uniqueid], Enqueue(
            topic="health.card", province="ha-noi", priority=0, language="vi", province_source="did")))
        await asyncio.sleep(0)
    finally:
        logging.getLogger("switchboard.acd").removeHandler(handler)
    assert acd.states["a1"].status is ast.AgentStatus.OFFERED
    # the join's event keeps its place before the offer's; the Originate comes before every
    # other effect of the offer, and the news keeps its order (the state, then the offer)
    assert order[:2] == ["event queue.joined", "originate"], order
    assert order.index("event agent.offer") < order.index("agent.state offered") < order.index("agent.offer"), order
    call_id = sessions[chan.uniqueid].linkedid
    logs = [o for o in order if o.startswith("log ")]
    assert logs == [f"log offer call {call_id} to a1", "log agent a1", f"log call {call_id} joined the line"], order
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await acd.stop()
