"""Agents' feature codes during a call, pressed on the softphone (issue 16):

``*4<n>#``      blind transfer to the n-th topic (the panel's list: topics in alphabetical order)
``*5<agent>#``  consult that agent (``1010`` or ``agent1010``)
``*6``          complete the consult (the colleague takes the caller)
``*7``          cancel the consult (back to the caller)
``*8``          three-way call

Asterisk detects the code in the bridge (``features.conf`` applicationmap, enabled on agent
legs only by ``DYNAMIC_FEATURES`` in ``agent-leg``) and runs ``AGI(agi:async,<feature>)`` on
the agent's leg; here the rest of the code is read (``GET DATA`` after a beep, up to ``#``),
the AGI is left (``ASYNCAGI BREAK``: the agent is back in its call) and the transfer or
consult is made exactly as from the panel (``acd.transfers``, ``acd.consults``). An agent acts
only on its own call: the agent is the one whose endpoint pressed the code.
"""

from __future__ import annotations

import logging
from typing import Any

from switchboard.acd.model import AcdError
from switchboard.ami.agi import AgiHangup
from switchboard.telephony.features import ERROR_TONE, OK_TONE, endpoint_of

log = logging.getLogger("switchboard.features")

#: feature (the AGI argument of the applicationmap entry) -> does it read digits up to '#'
CALL_FEATURES = {"transfer": True, "consult": True, "complete": False, "cancel": False, "three_way": False}


class CallCodes:
    def __init__(self, acd: Any) -> None:
        self.acd = acd

    def target(self, feature: str, digits: str) -> str | None:
        """What the digits name: a topic (by its place in the list) or an agent id; None if nothing."""
        if not digits.isdigit():
            return None
        if feature == "transfer":
            topics = self.acd.transfers.topics()
            n = int(digits)
            return topics[n - 1] if 1 <= n <= len(topics) else None
        for candidate in (f"agent{digits}", digits):
            if candidate in self.acd.records:
                return candidate
        return None

    async def handle(self, session: Any) -> None:
        feature = session.env.get("agi_arg_1", "")
        agent_id = self.acd.agent_for_device(f"PJSIP/{endpoint_of(session.channel)}")
        target: str | None = ""
        try:
            if agent_id is None or feature not in CALL_FEATURES:
                log.warning("in-call code %s from %s: not an agent's code", feature, session.channel)
                target = None
            elif CALL_FEATURES[feature]:
                got = await session.execute(f"GET DATA {OK_TONE} 5000 8", timeout=30)
                target = self.target(feature, got.result.strip())
            await session.execute(f'STREAM FILE {OK_TONE if target is not None else ERROR_TONE} ""', timeout=10)
            await session.break_(timeout=5)     # back in the call before anything moves
        except AgiHangup:
            return
        if agent_id is None or target is None:
            log.info("agent %s: in-call code %s refused (no such target)", agent_id, feature)
            return
        try:
            if feature == "transfer":
                await self.acd.transfers.blind(agent_id, kind="topic", target=target, by=agent_id)
            elif feature == "consult":
                await self.acd.consults.start(agent_id, kind="agent", target=target, by=agent_id)
            else:
                await self.acd.consults.finish(agent_id, feature)
            log.info("agent %s: in-call code %s %s", agent_id, feature, target)
        except AcdError as exc:
            log.info("agent %s: in-call code %s %s refused: %s", agent_id, feature, target, exc)
