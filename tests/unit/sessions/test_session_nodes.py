"""Sessions on several Asterisk nodes (ConfBridge is per node): the first caller in decides the
conference's node; a caller on another node is told so (outcome ``elsewhere``) instead of
opening a second, empty conference (the hotline's way on: tests/unit/ivr/test_ivr_hotline.py).
The real sessions service, in memory (no database or Asterisk needed to join)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from switchboard.config import SessionSettings
from switchboard.sessions.model import Session
from switchboard.sessions.service import SessionService
from switchboard.store.sessions import SessionRow

T0 = datetime(2026, 3, 3, 3, 0, tzinfo=UTC)


class Leg:
    """An AGI session as the service sees it: its call, its node, the commands sent to it."""

    def __init__(self, linkedid: str, node: str) -> None:
        self.linkedid, self.uniqueid, self.node, self.channel = linkedid, linkedid, node, f"PJSIP/trunk-{linkedid}"
        self.env: dict[str, str] = {"agi_context": "hotline"}
        self.commands: list[str] = []

    async def execute(self, command: str, *, timeout: float | None = None) -> Any:
        self.commands.append(command)
        return None


def _service() -> SessionService:
    svc = SessionService(pool=None, ami=None, settings=SessionSettings(), clock=lambda: T0 + timedelta(minutes=5))
    s = Session(session_id="pension-law", title="t", starts=T0, ends=T0 + timedelta(hours=1), moderator="agent1001")
    svc._adopt(SessionRow(s, "test", None, None, None))
    return svc


def test_a_caller_on_another_node_is_not_sent_into_a_second_conference() -> None:
    svc = _service()
    first, other, same = Leg("a-1", "asterisk-a"), Leg("b-1", "asterisk-b"), Leg("a-2", "asterisk-a")
    assert asyncio.run(svc.join(first, "pension-law")) == "joined"
    assert any("SB_CONF" in c for c in first.commands) and first.commands[-1] == "ASYNCAGI BREAK"
    assert svc.sessions["pension-law"].node == "asterisk-a"
    assert asyncio.run(svc.join(other, "pension-law")) == "elsewhere"
    assert other.commands == []                               # nothing set, still in the flow
    assert "b-1" not in svc.sessions["pension-law"].room.reserved
    assert asyncio.run(svc.join(same, "pension-law")) == "joined"

