"""The API's agent, queue and supervisor services over the running ACD and AMI."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from switchboard.acd.codes import DISPOSITIONS, PAUSE_REASONS, is_disposition, is_pause_reason
from switchboard.acd.service import AcdService, AgentSnapshot, IllegalAgentAction, UnknownAgent
from switchboard.acd.spy import chanspy_originate
from switchboard.ami.client import AmiError, node_hint
from switchboard.api.services import (
    AgentView,
    Code,
    ConflictError,
    GroupFigure,
    NotFoundError,
    PreviousCall,
    QueueFigures,
    ScreenPop,
    SpyMode,
    SpyResult,
    UnavailableError,
    WaitingCall,
)
from switchboard.metrics import Metrics

log = logging.getLogger("switchboard.api")

_STATE_NAMES = {"on_call": "talking"}


def state_name(status: str) -> str:
    """The ACD's status as the API, the pages and the metrics call it (``on_call`` is ``talking``)."""
    return _STATE_NAMES.get(status, status)


def agent_view(s: AgentSnapshot) -> AgentView:
    return AgentView(
        id=s.agent_id, name=s.name, state=state_name(s.status),
        since=datetime.fromtimestamp(s.since_wall, UTC), pause_reason=s.pause_reason, endpoint=s.endpoint,
        skills=dict(s.skills), home_province=s.home_province or None, languages=list(s.languages),
        current_call_id=s.call_id)


PreviousCalls = Callable[[str], Any]   # async (caller number) -> list[PreviousCall]


class AcdAgentService:
    def __init__(self, acd: AcdService, *, previous_calls: PreviousCalls | None = None,
                 call_info: Callable[[str], dict[str, Any]] | None = None) -> None:
        self.acd = acd
        self._previous = previous_calls
        self._call_info = call_info or (lambda call_id: {})

    def pause_reasons(self) -> Sequence[Code]:
        return [Code(r.code, r.label_vi, r.label_en) for r in PAUSE_REASONS]

    def dispositions(self) -> Sequence[Code]:
        return [Code(r.code, r.label_vi, r.label_en) for r in DISPOSITIONS]

    def _do(self, fn: Callable[[], AgentSnapshot]) -> AgentView:
        try:
            return agent_view(fn())
        except UnknownAgent as exc:
            raise NotFoundError(f"unknown agent {exc}", details={"agent_id": str(exc)}) from None
        except IllegalAgentAction as exc:
            raise ConflictError(str(exc)) from None

    async def list_agents(self) -> Sequence[AgentView]:
        return [agent_view(s) for s in self.acd.agents()]

    async def get_agent(self, agent_id: str) -> AgentView:
        return self._do(lambda: self.acd.snapshot(agent_id))

    async def login(self, agent_id: str) -> AgentView:
        return self._do(lambda: self.acd.login(agent_id))

    async def logout(self, agent_id: str) -> AgentView:
        return self._do(lambda: self.acd.logout(agent_id))

    async def ready(self, agent_id: str) -> AgentView:
        return self._do(lambda: self.acd.ready(agent_id))

    async def pause(self, agent_id: str, *, reason: str) -> AgentView:
        if not is_pause_reason(reason):
            raise ConflictError(f"unknown pause reason {reason!r}", details={"reason": reason})
        return self._do(lambda: self.acd.pause(agent_id, reason))

    async def end_wrap_up(self, agent_id: str, *, disposition: str) -> AgentView:
        if disposition and not is_disposition(disposition):
            raise ConflictError(f"unknown disposition {disposition!r}", details={"disposition": disposition})
        return self._do(lambda: self.acd.end_wrap_up(agent_id, disposition=disposition))

    async def force_pause(self, agent_id: str, *, reason: str, by: str) -> AgentView:
        return await self.pause(agent_id, reason=reason)

    async def force_logout(self, agent_id: str, *, by: str) -> AgentView:
        return self._do(lambda: self.acd.logout(agent_id))

    async def current_call(self, agent_id: str) -> ScreenPop | None:
        snap = self._do(lambda: self.acd.snapshot(agent_id))
        call_id = snap.current_call_id
        if call_id is None:
            return None
        info = self._call_info(call_id)
        caller = str(info.get("caller", ""))
        previous: list[PreviousCall] = []
        if self._previous is not None and caller:
            previous = [p for p in await self._previous(caller) if p.call_id != call_id]
        state = {"offered": "offered", "talking": "talking", "wrap_up": "wrap_up"}.get(snap.state, "talking")
        return ScreenPop(
            call_id=call_id, state=state, caller=caller, topic=info.get("topic"), province=info.get("province"),
            language=info.get("language"), si_code=info.get("si_code"), ivr_path=list(info.get("ivr_path", ())),
            previous_calls=previous[:5], offered_at=info.get("offered_at"), answered_at=info.get("answered_at"))


class AcdQueueService:
    def __init__(self, acd: AcdService, metrics: Metrics, *, service_level_s: float) -> None:
        self.acd = acd
        self.metrics = metrics
        self.service_level_s = service_level_s

    async def waiting(self, *, topic: str | None = None, province: str | None = None) -> Sequence[WaitingCall]:
        out = []
        for w in self.acd.waiting_calls():
            if topic and w.topic != topic:
                continue
            if province and w.province != province:
                continue
            out.append(WaitingCall(
                call_id=w.call_id, caller=w.caller, topic=w.topic, province=w.province, priority=w.priority,
                language=w.language, joined_at=datetime.fromtimestamp(w.joined_wall, UTC), wait_s=w.wait_s,
                tier=w.tier))
        return out

    async def figures(self) -> QueueFigures:
        waiting = self.acd.waiting_calls()
        by_topic: dict[str, list[float]] = {}
        by_province: dict[str, list[float]] = {}
        for w in waiting:
            by_topic.setdefault(w.topic, []).append(w.wait_s)
            by_province.setdefault(w.province or "unknown", []).append(w.wait_s)
        agents: dict[str, int] = {}
        for s in self.acd.agents():
            name = state_name(s.status)
            agents[name] = agents.get(name, 0) + 1
        ratios = self.metrics.ratios()
        answered_today, abandoned_today = self.metrics.answered_abandoned_today()
        return QueueFigures(
            generated_at=datetime.now(UTC), waiting=len(waiting),
            longest_wait_s=max((w.wait_s for w in waiting), default=0.0),
            by_topic=[GroupFigure(k, len(v), max(v)) for k, v in sorted(by_topic.items())],
            by_province=[GroupFigure(k, len(v), max(v)) for k, v in sorted(by_province.items())],
            agents_by_state=agents, service_level_target_s=self.service_level_s,
            service_level_now=ratios["window"][0], service_level_today=ratios["today"][0],
            abandon_rate_now=ratios["window"][1], abandon_rate_today=ratios["today"][1],
            answered_today=answered_today, abandoned_today=abandoned_today,
            callbacks_pending=self.acd.callbacks_pending(), transfers_today=self.metrics.transfers_today())


class AmiSupervisorService:
    """Listen / whisper / barge: ChanSpy originated over AMI, ringing the supervisor's own phone.

    Who: the endpoint bound to the supervisor's token. On what: the Uniqueid of the
    agent's bridged leg, as the ACD knows it. Neither comes from the request."""

    def __init__(self, acd: AcdService, ami: Any) -> None:
        self.acd = acd
        self.ami = ami

    def _talking_leg(self, agent_id: str) -> str | None:
        return next((o.leg for o in self.acd.talking.values() if o.agent_id == agent_id), None)

    async def spy(self, *, agent_id: str, mode: SpyMode, supervisor_endpoint: str | None) -> SpyResult:
        if not supervisor_endpoint:
            raise ConflictError("your token has no SIP endpoint of your own to ring: ask an admin for one "
                                "(switchboard tokens create --role supervisor --sip-endpoint ...)",
                                error_id="supervisor-no-endpoint")
        try:
            snap = self.acd.snapshot(agent_id)
        except UnknownAgent:
            raise NotFoundError(f"unknown agent {agent_id}", details={"agent_id": agent_id}) from None
        leg = self._talking_leg(agent_id)
        if leg is None:
            raise ConflictError(f"agent {agent_id} is not on a call", error_id="agent-not-on-call",
                                details={"state": state_name(snap.status)})
        mode = SpyMode(mode)
        channel_id = f"spy-{uuid.uuid4().hex[:16]}"
        action = chanspy_originate(supervisor_endpoint=supervisor_endpoint, target_uniqueid=leg, mode=mode.value,
                                   channel_id=channel_id, agent_id=agent_id)
        try:
            # ChanSpy runs where the agent's leg is (its node, with several)
            resp = await self.ami.send(action, timeout=10, **node_hint(self.ami, leg))
        except (AmiError, TimeoutError) as exc:
            raise UnavailableError(f"AMI unavailable: {exc}") from None
        if not resp.success:
            raise ConflictError(f"cannot start {mode}: {resp.message}")
        log.info("%s on agent %s (leg %s) from PJSIP/%s (leg %s)", mode, agent_id, leg, supervisor_endpoint,
                 channel_id)
        return SpyResult(agent_id=agent_id, mode=mode, supervisor_endpoint=supervisor_endpoint,
                         channel_id=channel_id, spied_channel_id=leg)
