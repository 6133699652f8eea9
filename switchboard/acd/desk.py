"""The agents' desk: who the agents are, what state each is in, and the commands they give.

Owns: the agent records and their ``agent_state`` states (every transition goes through
:meth:`AgentDesk.apply`), the agents' commands (log in/out, ready, pause, end wrap-up), the
restore of their last states after a restart, device states mapped to agents, and the live
listeners told of every change.

Must not touch: callers, offers, callbacks or AMI. It learns an agent's current call, asks
for a routing pass and names every agent whose state or record changed (for the routing
book) only through the callables it is given.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from switchboard.acd import agent_state as st
from switchboard.acd.agents import AgentRecord
from switchboard.acd.model import AgentSnapshot, Emit, IllegalAgentAction, UnknownAgent
from switchboard.config import RoutingSettings
from switchboard.events import EventKind

log = logging.getLogger("switchboard.acd")


class AgentDesk:
    """Agent records, states and commands of one care center."""

    def __init__(self, *, routing: RoutingSettings, emit: Emit, clock: Callable[[], float],
                 wall: Callable[[], float], schedule_route: Callable[[], None],
                 current_call: Callable[[str], str | None],
                 agent_changed: Callable[[str], None] | None = None) -> None:
        self.rules = st.AgentRules(wrap_up_s=routing.wrap_up_s, no_answer_limit=routing.no_answer_limit)
        self._emit = emit
        self.clock = clock
        self.wall = wall
        self._schedule_route = schedule_route
        self._current_call = current_call
        self._agent_changed = agent_changed or (lambda agent_id: None)   # the routing book's view is stale
        self.records: dict[str, AgentRecord] = {}
        self.states: dict[str, st.AgentState] = {}
        self._by_device: dict[str, str] = {}
        self.listeners: list[Callable[[str, Any], None]] = []
        self._held: list[Callable[[], None]] | None = None   # news told when the hold ends
        self.last_call: dict[str, str] = {}             # agent -> call in wrap-up
        self._wrap_up_timers: dict[str, asyncio.TimerHandle] = {}   # agent -> its wrap-up's end

    def set_agents(self, agents: Iterable[AgentRecord]) -> None:
        now = self.clock()
        for rec in agents:
            if not rec.active:
                continue
            if self.records.get(rec.id) != rec:     # an unchanged record stays the same object
                self.records[rec.id] = rec
                self._agent_changed(rec.id)
            self._by_device[f"PJSIP/{rec.sip_endpoint}".lower()] = rec.id
            if rec.id not in self.states:
                self.states[rec.id] = st.logged_out(rec.id, now)

    # ------------------------------------------------------------------ views

    def since_wall(self, agent_id: str) -> float:
        """Wall-clock time the agent entered its current state (from ``AgentState.since``)."""
        return self.wall() - (self.clock() - self.states[agent_id].since)

    def snapshot(self, agent_id: str) -> AgentSnapshot:
        rec = self.record(agent_id)
        s = self.states[agent_id]
        return AgentSnapshot(
            agent_id=agent_id, name=rec.name, endpoint=rec.sip_endpoint, status=s.status.value,
            since_wall=self.since_wall(agent_id), device=s.device.value,
            pause_reason=s.pause_reason or (s.pending_pause if s.status is st.AgentStatus.ON_CALL else None),
            call_id=s.call_id or self._current_call(agent_id), skills=dict(rec.skills),
            home_province=rec.home_province or "", languages=tuple(rec.languages),
        )

    def agents(self) -> list[AgentSnapshot]:
        return [self.snapshot(a) for a in sorted(self.records)]

    # ------------------------------------------------------------------ agents

    def record(self, agent_id: str) -> AgentRecord:
        rec = self.records.get(agent_id)
        if rec is None:
            raise UnknownAgent(agent_id)
        return rec

    def apply(self, agent_id: str, event: st.Event, *, reason: str | None = None) -> st.AgentState:
        self.record(agent_id)
        before = self.states[agent_id]
        try:
            after = st.transition(before, event, self.clock(), self.rules)
        except st.AgentStateError as exc:
            raise IllegalAgentAction(f"{agent_id}: {exc}") from exc
        self.states[agent_id] = after
        self._agent_changed(agent_id)
        if after.status is st.AgentStatus.WRAP_UP and after.wrap_up_until is not None:
            if before.status is not after.status or before.wrap_up_until != after.wrap_up_until:
                self._end_wrap_up_at(agent_id, after.wrap_up_until)
        elif before.status is st.AgentStatus.WRAP_UP and (timer := self._wrap_up_timers.pop(agent_id, None)):
            timer.cancel()
        if after.status is not before.status:
            now_wall = self.wall()
            duration = after.since - before.since
            self._tell(lambda: log.info("agent %s: %s -> %s%s", agent_id, before.status.value, after.status.value,
                                        f" ({after.pause_reason})" if after.pause_reason else ""))
            self.notify("agent.state", {
                "agent_id": agent_id, "from": before.status.value, "to": after.status.value,
                "reason": after.pause_reason or reason, "call_id": after.call_id or before.call_id,
                "duration_s": duration, "at": now_wall})
        if after.status is st.AgentStatus.READY or isinstance(event, st.DeviceChanged):
            self._schedule_route()
        return after

    def login(self, agent_id: str) -> AgentSnapshot:
        self.apply(agent_id, st.Login())
        return self.snapshot(agent_id)

    def logout(self, agent_id: str) -> AgentSnapshot:
        s = self.states.get(agent_id)
        if s is not None and s.status in (st.AgentStatus.READY, st.AgentStatus.PAUSED, st.AgentStatus.WRAP_UP):
            self.apply(agent_id, st.Logout())
        else:
            self.record(agent_id)
            raise IllegalAgentAction(f"{agent_id}: cannot log out while {s.status.value if s else '?'}")
        return self.snapshot(agent_id)

    def ready(self, agent_id: str) -> AgentSnapshot:
        s = self.states.get(agent_id)
        self.record(agent_id)
        assert s is not None
        if s.status is st.AgentStatus.LOGGED_OUT:
            self.apply(agent_id, st.Login())
        elif s.status is st.AgentStatus.PAUSED:
            self.apply(agent_id, st.Resume())
        elif s.status is st.AgentStatus.WRAP_UP:
            self.end_wrap_up(agent_id, disposition="")
        elif s.status is not st.AgentStatus.READY:
            raise IllegalAgentAction(f"{agent_id}: cannot go ready while {s.status.value}")
        return self.snapshot(agent_id)

    def pause(self, agent_id: str, reason: str) -> AgentSnapshot:
        s = self.states.get(agent_id)
        self.record(agent_id)
        assert s is not None
        if s.status is st.AgentStatus.LOGGED_OUT:
            self.apply(agent_id, st.Login())
        self.apply(agent_id, st.Pause(reason or "break"))
        return self.snapshot(agent_id)

    def end_wrap_up(self, agent_id: str, *, disposition: str) -> AgentSnapshot:
        s = self.states.get(agent_id)
        self.record(agent_id)
        assert s is not None
        if s.status is not st.AgentStatus.WRAP_UP:
            raise IllegalAgentAction(f"{agent_id}: not in wrap-up ({s.status.value})")
        self.finish_wrap_up(agent_id, disposition)
        return self.snapshot(agent_id)

    def _end_wrap_up_at(self, agent_id: str, until: float) -> None:
        """End the agent's wrap-up when it is due, not at the ACD timer's next tick (up to
        ``reevaluate_interval_s`` later): a caller waiting for that agent is offered at once."""
        old = self._wrap_up_timers.pop(agent_id, None)
        if old is not None:
            old.cancel()
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return          # no loop (the desk driven by hand): the ACD's timer ends it
        self._wrap_up_timers[agent_id] = loop.call_later(
            max(0.0, until - self.clock()) + 0.001, self._wrap_up_due, agent_id)

    def cancel_timers(self) -> None:
        for handle in self._wrap_up_timers.values():
            handle.cancel()
        self._wrap_up_timers.clear()

    def _wrap_up_due(self, agent_id: str) -> None:
        self._wrap_up_timers.pop(agent_id, None)
        s = self.states.get(agent_id)
        if s is None or st.due_event(s, self.clock()) is None:
            return          # ended otherwise meanwhile (or a clock of its own): the timer's tick decides
        try:
            self.finish_wrap_up(agent_id, "")
        except Exception:   # a loop callback must not raise; the ACD timer tries again
            log.exception("agent %s: ending wrap-up failed", agent_id)

    def finish_wrap_up(self, agent_id: str, disposition: str) -> None:
        call_id = self.last_call.pop(agent_id, None)
        wrap_s = self.clock() - self.states[agent_id].since
        self.apply(agent_id, st.WrapUpDone())
        if call_id:
            self._emit(call_id, EventKind.WRAP_UP_ENDED, {
                "agent_id": agent_id, "wrap_up_s": round(wrap_s, 3), "disposition": disposition or None})

    def restore_states(self, last: Mapping[str, tuple[str, str | None]]) -> list[str]:
        """After a restart, put logged-out agents back in their last logged state: ``ready``
        (also for one that was ringing, talking or in wrap-up: its phone's state still decides
        whether it is offered) or ``paused`` with its reason. Returns the agents restored."""
        restored: list[str] = []
        for agent_id, (state, reason) in sorted(last.items()):
            s = self.states.get(agent_id)
            if s is None or s.status is not st.AgentStatus.LOGGED_OUT or state == st.AgentStatus.LOGGED_OUT:
                continue
            try:
                if state == st.AgentStatus.PAUSED:
                    self.pause(agent_id, reason or "break")
                else:
                    self.ready(agent_id)
            except IllegalAgentAction as exc:
                log.warning("agent %s not restored to %s: %s", agent_id, state, exc)
                continue
            restored.append(agent_id)
        if restored:
            log.info("agent states restored after a restart: %s", ", ".join(
                f"{a} {self.states[a].status.value}" for a in restored))
            self._schedule_route()
        return restored

    def agent_for_device(self, device: str) -> str | None:
        """The agent whose endpoint is ``device`` (``PJSIP/agent1001``), None if none."""
        return self._by_device.get(device.lower())

    def device_changed(self, device: str, state: str) -> None:
        agent_id = self.agent_for_device(device)
        if agent_id is None:
            return
        new = st.DeviceState.parse(state)
        if self.states[agent_id].device is not new:
            self.apply(agent_id, st.DeviceChanged(new))

    # ------------------------------------------------------------------ live listeners

    @contextlib.contextmanager
    def news_held(self) -> Iterator[None]:
        """Hold the listeners' news and the state-change log lines until the block ends, then
        tell them in order. An offer sends the agent's ``Originate`` first and tells the agents'
        pages, the agent log and the log file after (docs/capacity.md, dispatch latency): the
        state has changed either way, only the telling waits, and only within this turn of the loop."""
        if self._held is not None:       # nested: the outer hold tells
            yield
            return
        self._held = []
        try:
            yield
        finally:
            held, self._held = self._held, None
            for tell in held:
                tell()

    def _tell(self, tell: Callable[[], None]) -> None:
        if self._held is not None:
            self._held.append(tell)
        else:
            tell()

    def notify(self, kind: str, payload: Any) -> None:
        self._tell(lambda: self._notify_now(kind, payload))

    def _notify_now(self, kind: str, payload: Any) -> None:
        for listener in list(self.listeners):
            try:
                listener(kind, payload)
            except Exception:
                log.exception("ACD listener failed on %s", kind)
