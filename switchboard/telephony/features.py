"""Agents' feature codes, dialed from their softphones into the ``agents`` context:

``*20``        ready (log in if logged out, resume from pause, end wrap-up)
``*21<d>``     pause with reason digit ``d`` (1 break, 2 lunch, 3 meeting, 4 training, 5 back-office)
``*22``        log out
``*23<d>``     end wrap-up with disposition digit ``d``

The service answers with a beep (done) or an error tone, and hangs up. An
agent acts only on itself: the agent is the one whose endpoint placed the call.
"""

from __future__ import annotations

import logging
from typing import Any

from switchboard.acd.codes import DISPOSITIONS, pause_reason_for_digit
from switchboard.acd.service import AcdError, AcdService
from switchboard.ami.agi import AgiHangup

log = logging.getLogger("switchboard.features")

OK_TONE = "/usr/share/asterisk/sounds/en_US_f_Allison/beep"
ERROR_TONE = "/usr/share/asterisk/sounds/en_US_f_Allison/beeperr"


def endpoint_of(channel: str) -> str:
    """``PJSIP/agent1001-0000002a`` -> ``agent1001``."""
    name = channel.split("/", 1)[-1]
    return name.rsplit("-", 1)[0] if "-" in name else name


class FeatureCodes:
    def __init__(self, acd: AcdService) -> None:
        self.acd = acd

    def agent_for(self, channel: str) -> str | None:
        return self.acd.agent_for_device(f"PJSIP/{endpoint_of(channel)}")

    def apply(self, agent_id: str, code: str) -> str:
        """Carry out a feature code for an agent; returns the new state (raises AcdError)."""
        if code == "*20":
            return self.acd.ready(agent_id).status
        if code.startswith("*21"):
            reason = pause_reason_for_digit(code[3:4]) or "break"
            return self.acd.pause(agent_id, reason).status
        if code == "*22":
            return self.acd.logout(agent_id).status
        if code.startswith("*23"):
            digit = code[3:4]
            disposition = next((d.code for d in DISPOSITIONS if d.digit == digit), "")
            return self.acd.end_wrap_up(agent_id, disposition=disposition).status
        raise AcdError(f"unknown feature code {code}")

    async def handle(self, session: Any) -> None:
        code = session.env.get("agi_extension", "")
        agent_id = self.agent_for(session.channel)
        ok = False
        try:
            if agent_id is None:
                log.warning("feature code %s from unknown endpoint %s", code, session.channel)
            else:
                state = self.apply(agent_id, code)
                ok = True
                log.info("agent %s: feature code %s -> %s", agent_id, code, state)
        except AcdError as exc:
            log.info("agent %s: feature code %s refused: %s", agent_id, code, exc)
        try:
            await session.execute("ANSWER", timeout=5)
            await session.execute(f'STREAM FILE {OK_TONE if ok else ERROR_TONE} ""', timeout=10)
            await session.execute("HANGUP", timeout=5)
        except AgiHangup:
            pass
