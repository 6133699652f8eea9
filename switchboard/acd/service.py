"""The ACD at run time: waiting callers, agents, offers, over AMI.

The pure parts decide (``router.route`` picks agents, ``agent_state`` says
what each agent may do); this shell only moves events and timers:

* the IVR's ``queue`` node calls :meth:`AcdService.enqueue` with the caller's
  AGI session; the caller hears music on hold with periodic announcements
  (:mod:`switchboard.acd.hold`) until an agent answers, the caller hangs up or
  presses 1 for a callback;
* on every change (a call joins, an agent becomes ready, an offer ends) and on
  a timer, the router runs over **all** waiting calls and **all** agents;
* an assignment becomes an offer: AMI ``Originate`` to the agent's endpoint
  with ``ChannelId`` (the agent leg's Uniqueid is known before it exists),
  into our dialplan context ``agent-leg`` (``Async: true``), which bridges the
  agent to the caller's channel when the agent answers; ring timeout, reject and caller
  hang-up end the agent leg (``Hangup`` by that Uniqueid) and put both sides
  back in a correct state;
* once bridged, the dialplan's MixMonitor (started by ``agent-leg`` with option
  ``b``) records the agent leg (both directions) under the recordings folder by
  date; the agent's hang-up starts wrap-up, the caller
  goes on to the post-call survey (Bridge option ``F``).

Every step is emitted as a call-timeline event (``emit(call_id, kind, data)``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from switchboard.acd import agent_state as st
from switchboard.acd.agents import AgentRecord
from switchboard.acd.model import (
    REASON_ANSWERED,
    REASON_BUSY,
    REASON_CONGESTION,
    REASON_NO_ANSWER,
    VAR_CALL_ID,
    VAR_CALLER,
    VAR_JOINED,
    VAR_LANGUAGE,
    VAR_PRIORITY,
    VAR_PROVINCE,
    VAR_TOPIC,
    AcdError,
    AgentSnapshot,
    Callback,
    Emit,
    IllegalAgentAction,
    Offer,
    UnknownAgent,
    Waiter,
    WaitingSnapshot,
    new_callback_id,
    result_of_cause,
)
from switchboard.acd.router import AgentView as RouterAgent
from switchboard.acd.router import Assignment, RoutingPolicy, WaitingCall, estimate_wait, route, tier_of
from switchboard.ami.agi import AgiHangup, agi_quote
from switchboard.ami.client import AmiError
from switchboard.ami.protocol import Event
from switchboard.config import RoutingSettings
from switchboard.events import EventKind
from switchboard.telephony.numbers import CallbackNumbers, default_callback_numbers, log_safe, presentable

__all__ = [
    "REASON_ANSWERED", "REASON_BUSY", "REASON_CONGESTION", "REASON_NO_ANSWER", "VAR_CALLER", "VAR_CALL_ID",
    "VAR_JOINED", "VAR_LANGUAGE", "VAR_PRIORITY", "VAR_PROVINCE", "VAR_TOPIC", "AcdError", "AcdService",
    "AgentSnapshot", "Callback", "Emit", "IllegalAgentAction", "Offer", "UnknownAgent", "Waiter",
    "WaitingSnapshot", "new_callback_id",
]

log = logging.getLogger("switchboard.acd")

def _caller_id(caller: str) -> str:
    """The CallerID of a leg that shows the caller: the untrusted caller id reduced to digits."""
    shown = presentable(caller)
    return f'"{shown}" <{shown}>' if shown else "Hotline"


class AcdService:
    """Agents and waiting callers of one care center, driven over one AMI client."""

    name = "acd"

    def __init__(
        self,
        *,
        ami: Any,
        routing: RoutingSettings,
        agents: Iterable[AgentRecord],
        region_of: Mapping[str, str],
        emit: Emit,
        recordings_dir: str = "/var/lib/switchboard/recordings",
        survey_context: str = "hotline-after",
        hold: Any = None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        callback_context: str = "callback-out",
        agent_context: str = "agent-leg",
        callback_retry_s: float = 120.0,
        callback_ring_s: float = 30.0,
        callback_cli: str = "",
        numbers: CallbackNumbers | None = None,
    ) -> None:
        self.ami = ami
        self.settings = routing
        self.policy = RoutingPolicy.from_settings(routing, region_of)
        self.rules = st.AgentRules(wrap_up_s=routing.wrap_up_s, no_answer_limit=routing.no_answer_limit)
        self.region_of = dict(region_of)
        self._emit = emit
        self.recordings_dir = recordings_dir.rstrip("/")
        self.survey_context = survey_context
        self.hold = hold
        self.clock = clock
        self.wall = wall
        self.callback_context = callback_context
        self.agent_context = agent_context           # where an agent leg bridges to its caller (and records)
        self.callback_retry_s = callback_retry_s     # between two calls to a number that did not answer
        self.callback_ring_s = callback_ring_s       # how long the caller's number rings
        self.callback_cli = callback_cli             # the number the called-back caller sees ("" = unchanged)
        self.numbers = numbers if numbers is not None else default_callback_numbers()
        self.records: dict[str, AgentRecord] = {}
        self.states: dict[str, st.AgentState] = {}
        self._by_device: dict[str, str] = {}
        self._since_wall: dict[str, float] = {}
        self.set_agents(agents)
        self.waiting: dict[str, Waiter] = {}          # call_id -> waiter
        self.offers: dict[str, Offer] = {}            # leg uniqueid -> offer
        self.talking: dict[str, Offer] = {}           # leg uniqueid -> answered offer
        self.last_agent: dict[str, tuple[str, float]] = {}   # caller number -> (agent, wall time)
        self.handle_times: deque[float] = deque(maxlen=200)
        self.listeners: list[Callable[[str, Any], None]] = []
        self.call_vars: dict[str, dict[str, str]] = {}   # call_id -> variables for the survey
        self._last_call: dict[str, str] = {}             # agent -> call in wrap-up
        self._route_pending = False
        self._timer: asyncio.Task[None] | None = None
        self._unsubscribe: Callable[[], None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        # callbacks this process closed: their closing events may not be in the database yet,
        # so a sweep of owed callbacks must not put them back in line (bounded, oldest dropped)
        self._closed_callbacks: dict[str, None] = {}
        # counters for metrics
        self.offers_total = 0
        self.originate_failures = 0

    # ------------------------------------------------------------------ set-up

    def set_agents(self, agents: Iterable[AgentRecord]) -> None:
        now = self.clock()
        for rec in agents:
            if not rec.active:
                continue
            self.records[rec.id] = rec
            self._by_device[f"PJSIP/{rec.sip_endpoint}".lower()] = rec.id
            if rec.id not in self.states:
                self.states[rec.id] = st.logged_out(rec.id, now)
                self._since_wall[rec.id] = self.wall()

    async def start(self) -> None:
        self._unsubscribe = self.ami.subscribe(self.handle_event, names=(
            "DeviceStateChange", "OriginateResponse", "BridgeEnter", "Hangup", "HangupRequest", "DialEnd"))
        on_resync = getattr(self.ami, "on_resync", None)
        if on_resync is not None:
            on_resync(self._on_resync)
        if getattr(self.ami, "connected", False):
            await self.refresh_devices()
        self._timer = asyncio.create_task(self._tick(), name="acd-timer")

    async def stop(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
        if self._timer is not None:
            self._timer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._timer
        for w in list(self.waiting.values()):
            if w.hold_task is not None:
                w.hold_task.cancel()
        for t in list(self._tasks):
            t.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _on_resync(self, restarted: bool) -> None:
        if restarted:
            # Every channel is gone: offers and calls with them.
            for leg in list(self.offers):
                self._end_offer(leg, "failed", cancel=True)
            for leg, offer in list(self.talking.items()):
                self._agent_hung_up(leg, offer)
            for call_id, w in list(self.waiting.items()):
                if w.callback is None:     # a callback has no channel to lose: it keeps its place
                    self._drop_waiter(call_id, "gone")
        await self.refresh_devices()
        self.schedule_route()

    async def refresh_devices(self) -> None:
        """Read every endpoint's device state (DeviceStateList) and reconcile."""
        try:
            resp = await self.ami.send({"Action": "DeviceStateList"}, timeout=5)
        except (AmiError, TimeoutError) as exc:
            log.warning("device state list failed: %s", exc)
            return
        for ev in getattr(resp, "events", ()):
            self._device_changed(ev.get("Device") or "", ev.get("State") or "")

    # ------------------------------------------------------------------ views

    def snapshot(self, agent_id: str) -> AgentSnapshot:
        rec = self._record(agent_id)
        s = self.states[agent_id]
        return AgentSnapshot(
            agent_id=agent_id, name=rec.name, endpoint=rec.sip_endpoint, status=s.status.value,
            since_wall=self._since_wall.get(agent_id, self.wall()), device=s.device.value,
            pause_reason=s.pause_reason or (s.pending_pause if s.status is st.AgentStatus.ON_CALL else None),
            call_id=s.call_id or self._current_call(agent_id), skills=dict(rec.skills),
            home_province=rec.home_province or "", languages=tuple(rec.languages),
        )

    def agents(self) -> list[AgentSnapshot]:
        return [self.snapshot(a) for a in sorted(self.records)]

    def waiting_calls(self) -> list[WaitingSnapshot]:
        now = self.clock()
        out = []
        for w in sorted(self.waiting.values(), key=lambda w: (-w.call.priority, w.call.joined_at)):
            wait = now - w.call.joined_at
            tier = "province"
            if w.call.province is None or wait >= self.policy.nation_after_s:
                tier = "nation"
            elif wait >= self.policy.region_after_s:
                tier = "region"
            out.append(WaitingSnapshot(
                call_id=w.call.call_id, caller=w.caller, topic=w.call.topic, province=w.call.province,
                priority=w.call.priority, language=w.call.language, joined_wall=w.joined_wall, wait_s=wait,
                tier=tier, offered_to=w.offer.agent_id if w.offer else None))
        return out

    def position(self, call_id: str) -> tuple[int, float | None]:
        """(position in line among calls of the same topic, estimated wait in seconds)."""
        w = self.waiting.get(call_id)
        if w is None:
            return (0, None)
        ahead = sum(1 for o in self.waiting.values()
                    if o.call.topic == w.call.topic and (-o.call.priority, o.call.joined_at)
                    < (-w.call.priority, w.call.joined_at))
        eligible = sum(1 for a, s in self.states.items()
                       if s.status is not st.AgentStatus.LOGGED_OUT
                       and self.records[a].skills.get(w.call.topic, 0) > 0)
        return ahead + 1, estimate_wait(ahead, eligible, list(self.handle_times))

    def _current_call(self, agent_id: str) -> str | None:
        for offer in self.talking.values():
            if offer.agent_id == agent_id:
                return offer.call_id
        return None

    # ------------------------------------------------------------------ agents

    def _record(self, agent_id: str) -> AgentRecord:
        rec = self.records.get(agent_id)
        if rec is None:
            raise UnknownAgent(agent_id)
        return rec

    def _apply(self, agent_id: str, event: st.Event, *, reason: str | None = None) -> st.AgentState:
        self._record(agent_id)
        before = self.states[agent_id]
        try:
            after = st.transition(before, event, self.clock(), self.rules)
        except st.AgentStateError as exc:
            raise IllegalAgentAction(f"{agent_id}: {exc}") from exc
        self.states[agent_id] = after
        if after.status is not before.status:
            now_wall = self.wall()
            duration = now_wall - self._since_wall.get(agent_id, now_wall)
            self._since_wall[agent_id] = now_wall
            log.info("agent %s: %s -> %s%s", agent_id, before.status.value, after.status.value,
                     f" ({after.pause_reason})" if after.pause_reason else "")
            self._notify("agent.state", {
                "agent_id": agent_id, "from": before.status.value, "to": after.status.value,
                "reason": after.pause_reason or reason, "call_id": after.call_id or before.call_id,
                "duration_s": duration, "at": now_wall})
        if after.status is st.AgentStatus.READY or isinstance(event, st.DeviceChanged):
            self.schedule_route()
        return after

    def login(self, agent_id: str) -> AgentSnapshot:
        self._apply(agent_id, st.Login())
        return self.snapshot(agent_id)

    def logout(self, agent_id: str) -> AgentSnapshot:
        s = self.states.get(agent_id)
        if s is not None and s.status in (st.AgentStatus.READY, st.AgentStatus.PAUSED, st.AgentStatus.WRAP_UP):
            self._apply(agent_id, st.Logout())
        else:
            self._record(agent_id)
            raise IllegalAgentAction(f"{agent_id}: cannot log out while {s.status.value if s else '?'}")
        return self.snapshot(agent_id)

    def ready(self, agent_id: str) -> AgentSnapshot:
        s = self.states.get(agent_id)
        self._record(agent_id)
        assert s is not None
        if s.status is st.AgentStatus.LOGGED_OUT:
            self._apply(agent_id, st.Login())
        elif s.status is st.AgentStatus.PAUSED:
            self._apply(agent_id, st.Resume())
        elif s.status is st.AgentStatus.WRAP_UP:
            self.end_wrap_up(agent_id, disposition="")
        elif s.status is not st.AgentStatus.READY:
            raise IllegalAgentAction(f"{agent_id}: cannot go ready while {s.status.value}")
        return self.snapshot(agent_id)

    def pause(self, agent_id: str, reason: str) -> AgentSnapshot:
        s = self.states.get(agent_id)
        self._record(agent_id)
        assert s is not None
        if s.status is st.AgentStatus.LOGGED_OUT:
            self._apply(agent_id, st.Login())
        self._apply(agent_id, st.Pause(reason or "break"))
        return self.snapshot(agent_id)

    def end_wrap_up(self, agent_id: str, *, disposition: str) -> AgentSnapshot:
        s = self.states.get(agent_id)
        self._record(agent_id)
        assert s is not None
        if s.status is not st.AgentStatus.WRAP_UP:
            raise IllegalAgentAction(f"{agent_id}: not in wrap-up ({s.status.value})")
        self._finish_wrap_up(agent_id, disposition)
        return self.snapshot(agent_id)

    def _finish_wrap_up(self, agent_id: str, disposition: str) -> None:
        call_id = self._last_call.pop(agent_id, None)
        wrap_s = self.wall() - self._since_wall.get(agent_id, self.wall())
        self._apply(agent_id, st.WrapUpDone())
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
            self.schedule_route()
        return restored

    def adopt_talking(self, leg: str, *, call_id: str, agent_id: str, talked_s: float) -> None:
        """An agent leg found bridged after a restart: its hang-up ends the agent's call as usual
        (``agent.ended`` with the talk time, then wrap-up). ``talked_s``: the leg's age (ring included)."""
        if not leg or leg in self.talking:
            return
        now = self.clock()
        self.talking[leg] = Offer(leg=leg, call_id=call_id, agent_id=agent_id, started=now - talked_s,
                                  answered=now - talked_s)
        log.info("agent %s is talking on call %s (leg %s, re-adopted)", agent_id, call_id, leg)

    def agent_for_device(self, device: str) -> str | None:
        """The agent whose endpoint is ``device`` (``PJSIP/agent1001``), None if none."""
        return self._by_device.get(device.lower())

    def _device_changed(self, device: str, state: str) -> None:
        agent_id = self.agent_for_device(device)
        if agent_id is None:
            return
        new = st.DeviceState.parse(state)
        if self.states[agent_id].device is not new:
            self._apply(agent_id, st.DeviceChanged(new))

    # ------------------------------------------------------------------ callers

    async def enqueue(self, session: Any, request: Any) -> str:
        """Hold the caller until an agent answers (``bridged``), they ask for a
        callback (``callback``), or they hang up (raises ``AgiHangup``)."""
        call_id = session.linkedid
        env = session.env
        caller = env.get("agi_callerid", "") or ""
        now = self.clock()
        wall = self.wall()
        joined_wall = float(request.variables.get("joined_wall", wall)) if hasattr(request, "variables") else wall
        sticky = self.last_agent.get(caller) if caller else None
        call = WaitingCall(
            call_id=call_id, topic=request.topic or "general", province=request.province or None,
            joined_at=now - (wall - joined_wall), priority=int(request.priority or 0),
            language=request.language or "vi",
            last_agent_id=sticky[0] if sticky else None,
            last_agent_at=(now - (wall - sticky[1])) if sticky else None,
        )
        loop = asyncio.get_running_loop()
        waiter = Waiter(call=call, caller=caller, channel=session.channel, uniqueid=session.uniqueid,
                        joined_wall=joined_wall, session=session, province_source=request.province_source,
                        variables=dict(getattr(request, "variables", {}) or {}), done=loop.create_future(),
                        tier_announced=int(tier_of(call, now, self.policy)))
        self.waiting[call_id] = waiter
        self.call_vars[call_id] = {"language": call.language, "topic": call.topic,
                                   "province": call.province or ""}
        self._emit(call_id, EventKind.QUEUE_JOINED, {
            "topic": call.topic, "province": call.province, "province_source": request.province_source,
            "priority": call.priority, "language": call.language, "caller": caller})
        log.info("call %s joined the line: topic=%s province=%s priority=%d", call_id, call.topic,
                 call.province or "-", call.priority)
        await self._mark_channel(session, waiter)
        if self.hold is not None:
            waiter.hold_task = asyncio.create_task(self.hold.run(self, waiter), name=f"hold-{call_id}")
        self.schedule_route()
        assert waiter.done is not None
        try:
            return await waiter.done
        finally:
            if waiter.hold_task is not None and not waiter.hold_task.done():
                waiter.hold_task.cancel()

    async def _mark_channel(self, session: Any, w: Waiter) -> None:
        values = {VAR_CALL_ID: w.call.call_id, VAR_TOPIC: w.call.topic, VAR_PROVINCE: w.call.province or "",
                  VAR_PRIORITY: str(w.call.priority), VAR_LANGUAGE: w.call.language,
                  VAR_JOINED: f"{w.joined_wall:.3f}", VAR_CALLER: w.caller}
        for name, value in values.items():
            try:
                await session.execute(f"SET VARIABLE {name} {agi_quote(value)}", timeout=5)
            except AgiHangup:
                raise
            except Exception as exc:  # a lost variable only weakens re-adoption
                log.warning("call %s: cannot set %s: %s", w.call.call_id, name, exc)

    def caller_pressed_callback(self, call_id: str) -> str:
        """The caller asked to be called back: keep the place, release the line.

        ``accepted``: the callback keeps the place and the caller may hang up.
        ``refused``: the number policy refused the number (``callback.refused`` with the
        reason is recorded); the caller stays in line and should hear why.
        ``unavailable``: nothing to do (the caller is not waiting any more).
        A second request for a number that already has a callback pending keeps the
        first one (and its place); this call just ends with outcome ``callback``.
        """
        w = self.waiting.get(call_id)
        if w is None or w.done is None or w.done.done() or w.session is None:
            return "unavailable"
        decision = self.numbers.decide(w.caller, datetime.now(UTC))
        if not decision.ok:
            w.callback_refused = decision.reason
            self._emit(call_id, EventKind.CALLBACK_REFUSED, {
                "reason": decision.reason, "number": decision.number, "detail": decision.detail})
            log.info("call %s: callback to %s refused (%s%s); the caller stays in line", call_id,
                     log_safe(w.caller), decision.reason, f" {decision.detail}" if decision.detail else "")
            return "refused"
        number = decision.number
        if w.offer is not None:
            self._end_offer(w.offer.leg, "caller_gone", cancel=True)
        pending = next((o for o in self.waiting.values() if o.callback is not None and o.callback.number == number),
                       None)
        data = {"number": number, "topic": w.call.topic, "province": w.call.province,
                "language": w.call.language, "priority": w.call.priority}
        if pending is not None and pending.callback is not None:
            self._emit(call_id, EventKind.CALLBACK_REQUESTED, {
                **data, "callback_id": pending.callback.callback_id, "duplicate": True})
            log.info("call %s: callback to %s already pending (%s, call %s): keeping that one", call_id,
                     number, pending.callback.callback_id, pending.call.call_id)
            w.done.set_result("callback")
            self._drop_waiter(call_id, None)
            return "accepted"
        self.numbers.grant(number, datetime.now(UTC))
        w.callback = Callback(callback_id=new_callback_id(), number=number)
        w.session = None
        self._emit(call_id, EventKind.CALLBACK_REQUESTED, {**data, "callback_id": w.callback.callback_id})
        log.info("call %s: callback %s to %s keeps its place in line", call_id, w.callback.callback_id, number)
        w.done.set_result("callback")
        if w.hold_task is not None and w.hold_task is not asyncio.current_task() and not w.hold_task.done():
            w.hold_task.cancel()
        self.schedule_route()
        return "accepted"

    def caller_gone(self, call_id: str) -> None:
        """The caller hung up while waiting (seen by the hold loop or a Hangup event)."""
        w = self.waiting.get(call_id)
        if w is None:
            return
        if w.offer is not None:
            self._end_offer(w.offer.leg, "caller_gone", cancel=True)
        if w.done is not None and not w.done.done():
            w.done.set_exception(AgiHangup(f"{w.channel}: caller hung up while waiting"))
            w.done.exception()  # retrieved by enqueue(); avoid "never retrieved" noise
        self._drop_waiter(call_id, None)
        self.schedule_route()

    def _drop_waiter(self, call_id: str, outcome: str | None) -> None:
        w = self.waiting.pop(call_id, None)
        if w is None:
            return
        if w.hold_task is not None and not w.hold_task.done():
            w.hold_task.cancel()
        if outcome and w.done is not None and not w.done.done():
            w.done.set_result(outcome)

    # ------------------------------------------------------------------ routing

    def schedule_route(self) -> None:
        if self._route_pending:
            return
        self._route_pending = True
        try:
            asyncio.get_running_loop().call_soon(self._route_now)
        except RuntimeError:
            self._route_pending = False

    def _route_now(self) -> None:
        self._route_pending = False
        now = self.clock()
        self._note_overflows(now)
        calls = [w.call for w in self.waiting.values() if w.offer is None and (
            w.session is not None or (w.callback is not None and w.callback.not_before <= now))]
        if not calls:
            return
        views: list[RouterAgent] = []
        for agent_id, s in self.states.items():
            if s.status is st.AgentStatus.LOGGED_OUT:
                continue
            rec = self.records[agent_id]
            views.append(RouterAgent(
                agent_id=agent_id, skills=rec.skills, province=rec.home_province or "",
                region=self.region_of.get(rec.home_province or "", ""),
                idle_since=s.since, languages=frozenset(rec.languages), offerable=st.offerable(s)))
        for a in route(calls, views, now, self.policy):
            self._offer(a)

    def _note_overflows(self, now: float) -> None:
        """``queue.overflow`` once per waiting call and tier, when its eligibility widens."""
        for w in self.waiting.values():
            tier = tier_of(w.call, now, self.policy)
            if tier > w.tier_announced:
                w.tier_announced = int(tier)
                self._emit(w.call.call_id, EventKind.QUEUE_OVERFLOW, {
                    "tier": tier.name.lower(), "wait_s": round(now - w.call.joined_at, 3)})
                log.info("call %s: eligibility widened to the %s tier", w.call.call_id, tier.name.lower())

    async def _tick(self) -> None:
        interval = max(0.2, self.settings.reevaluate_interval_s)
        while True:
            await asyncio.sleep(interval)
            try:
                self._on_tick()
            except Exception:   # the timer must outlive one bad step, or routing stops for good
                log.exception("ACD timer step failed")

    def _on_tick(self) -> None:
        now = self.clock()
        for agent_id, s in list(self.states.items()):
            if st.due_event(s, now) is not None:
                self._finish_wrap_up(agent_id, "")
        for leg, offer in list(self.offers.items()):
            if offer.failed_at is not None and now - offer.failed_at > 2.0:
                self._end_offer(leg, "failed", cancel=True)   # no leg ever hung up: never rang
            elif offer.answered is None and now - offer.started > self.settings.ring_timeout_s + 10:
                # a lost OriginateResponse
                log.warning("offer %s to %s: no answer event, ending it", leg, offer.agent_id)
                self._end_offer(leg, "timeout", cancel=True)
        self._route_now()

    def _offer(self, a: Assignment) -> None:
        w = self.waiting.get(a.call_id)
        if w is None or w.offer is not None:
            return
        try:
            self._apply(a.agent_id, st.Offer(a.call_id))
        except IllegalAgentAction as exc:
            log.warning("cannot offer %s to %s: %s", a.call_id, a.agent_id, exc)
            return
        leg = f"sb-{uuid.uuid4().hex[:20]}"
        offer = Offer(leg=leg, call_id=a.call_id, agent_id=a.agent_id, started=self.clock(),
                      callback_id=w.callback.callback_id if w.callback is not None else None,
                      recording=self.recording_path(a.call_id, a.agent_id))
        self.offers[leg] = offer
        w.offer = offer
        w.offers += 1
        self.offers_total += 1
        rec = self.records[a.agent_id]
        self._emit(a.call_id, EventKind.OFFER, {"agent_id": a.agent_id, "leg_uniqueid": leg,
                                                 "tier": a.tier.name.lower(), "proficiency": a.proficiency,
                                                 "sticky": a.sticky, "callback_id": offer.callback_id})
        self._notify("agent.offer", {"agent_id": a.agent_id, "call_id": a.call_id, "caller": w.caller,
                                     "topic": w.call.topic, "province": w.call.province,
                                     "language": w.call.language, "variables": dict(w.variables)})
        log.info("offer %scall %s to %s (%s, tier %s, leg %s)", "callback of " if offer.callback_id else "",
                 a.call_id, a.agent_id, rec.sip_endpoint, a.tier.name.lower(), leg)
        if w.callback is not None:
            try:
                action = self._callback_action(leg, w, a.agent_id, rec.sip_endpoint)
            except ValueError as exc:   # the policy changed since the request: never dialled
                cb = w.callback
                log.error("callback %s of call %s not dialled: %s", cb.callback_id, a.call_id, exc)
                self._end_offer(leg, "failed")
                self._callback_closed(cb.callback_id)
                self._emit(a.call_id, EventKind.CALLBACK_COMPLETED, {
                    "callback_id": cb.callback_id, "result": "refused", "attempt": cb.attempts, "final": True})
                self._drop_waiter(a.call_id, None)
                return
            self._spawn(self._originate(leg, action))
            return
        # Into our own dialplan (agent_context), never an application: there the leg starts
        # MixMonitor (b: only while bridged) and bridges to the caller, who goes on to the
        # survey when the agent hangs up. No AMI MixMonitor: that action needs the system class.
        action = {
            "Action": "Originate",
            "Channel": f"PJSIP/{rec.sip_endpoint}",
            "ChannelId": leg,
            "OtherChannelId": f"{leg}-o",
            "Context": self.agent_context,
            "Exten": "bridge",
            "Priority": "1",
            "Timeout": str(int(self.settings.ring_timeout_s * 1000)),
            "CallerID": _caller_id(w.caller),
            "Variable": [f"SB_CALL_ID={a.call_id}", f"SB_AGENT={a.agent_id}", f"SB_PEER={w.channel}",
                         f"SB_AFTER={self.survey_context}^survey^1", f"SB_REC_FILE={offer.recording}"],
            "Async": "true",
        }
        self._spawn(self._originate(leg, action))

    def _callback_action(self, leg: str, w: Waiter, agent_id: str, endpoint: str) -> dict[str, Any]:
        """The agent first: when the agent answers, the dialplan (``callback_context``) dials the number.

        The number is checked by the number policy once more (a callback read back from the
        database may predate the policy) and only its dial string (digits, a leading ``+``)
        becomes the extension; ``ValueError`` if the policy refuses it.
        """
        assert w.callback is not None
        dial = self.numbers.policy.dial_string(self.numbers.decide(w.callback.number, datetime.now(UTC), count=False))
        return {
            "Action": "Originate",
            "Channel": f"PJSIP/{endpoint}",
            "ChannelId": leg,
            "OtherChannelId": f"{leg}-o",
            "Context": self.callback_context,
            "Exten": dial,
            "Priority": "1",
            "Timeout": str(int(self.settings.ring_timeout_s * 1000)),
            "CallerID": f'"Callback {dial}" <{dial}>',
            "Variable": [f"SB_CALL_ID={w.call.call_id}", f"SB_AGENT={agent_id}",
                         f"SB_CALLBACK_ID={w.callback.callback_id}", f"SB_CB_RING={int(self.callback_ring_s)}",
                         f"SB_CB_CLI={self.callback_cli}", f"SB_REC_FILE={self.offers[leg].recording}"],
            "Async": "true",
        }

    async def _originate(self, leg: str, action: dict[str, Any]) -> None:
        try:
            resp = await self.ami.send(action, timeout=10)
            ok = resp.success
            why = resp.message
        except (AmiError, TimeoutError) as exc:
            ok, why = False, str(exc)
        if not ok:
            self.originate_failures += 1
            log.warning("originate for %s failed: %s", leg, why)
            if leg in self.offers:
                self._end_offer(leg, "failed", cancel=True)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _end_offer(self, leg: str, result: str, *, cancel: bool = False) -> None:
        """An offer ended without an answer: agent and caller back to a correct state."""
        offer = self.offers.pop(leg, None)
        if offer is None:
            return
        event: st.Event
        if result == "timeout":
            event = st.NoAnswer()
        elif result == "rejected":
            event = st.Reject()
        else:
            event = st.CancelOffer()
        try:
            self._apply(offer.agent_id, event, reason=result)
        except IllegalAgentAction as exc:
            log.warning("offer end for %s: %s", offer.agent_id, exc)
        w = self.waiting.get(offer.call_id)
        if w is not None and w.offer is offer:
            w.offer = None
        self._emit(offer.call_id, EventKind.OFFER_RESULT, {"agent_id": offer.agent_id, "result": result,
                                                           "ring_s": round(self.clock() - offer.started, 3)})
        self._notify("agent.offer_ended", {"agent_id": offer.agent_id, "call_id": offer.call_id,
                                           "result": result})
        log.info("offer of %s to %s ended: %s", offer.call_id, offer.agent_id, result)
        if cancel:
            self._spawn(self._hangup_leg(leg))
        self.schedule_route()

    async def _hangup_leg(self, leg: str) -> None:
        with contextlib.suppress(AmiError, TimeoutError):
            await self.ami.send({"Action": "Hangup", "Channel": leg, "Cause": "16"}, timeout=5)

    # ------------------------------------------------------------------ AMI events

    def handle_event(self, ev: Event) -> None:
        name = ev.name
        if name == "DeviceStateChange":
            self._device_changed(ev.get("Device") or "", ev.get("State") or "")
        elif name == "OriginateResponse":
            leg = ev.get("Uniqueid") or ""
            offer = self.offers.get(leg)
            if offer is not None and offer.callback_id and (ev.get("Response") or "") == "Success":
                self._callback_agent_answered(offer)
            elif offer is not None and (ev.get("Response") or "") != "Success":
                reason = ev.get("Reason") or ""
                result = {REASON_NO_ANSWER: "timeout", REASON_BUSY: "rejected",
                          REASON_CONGESTION: "rejected"}.get(reason) or result_of_cause(offer.cause)
                if result:
                    self._end_offer(leg, result)
                else:
                    # Asterisk 22 says Reason 0 for a 486 Busy too; the leg's Hangup (cause
                    # 17) follows at once and decides. The timer ends it if none comes.
                    offer.failed_at = self.clock()
        elif name == "DialEnd":
            offer = self.offers.get(ev.get("Uniqueid") or "")
            if offer is not None and offer.callback_id:
                offer.dial_status = ev.get("DialStatus") or ""
        elif name == "HangupRequest":
            offer = self.offers.get(ev.get("Uniqueid") or "")
            if offer is not None and (ev.get("Cause") or "") not in ("", "0"):
                offer.cause = ev.get("Cause") or ""
        elif name == "BridgeEnter":
            leg = ev.get("Uniqueid") or ""
            if leg in self.offers:
                if self.offers[leg].callback_id:
                    self._callback_answered(leg)
                else:
                    self._answered(leg, ev)
        elif name == "Hangup":
            uid = ev.get("Uniqueid") or ""
            if uid in self.offers and self.offers[uid].answered is not None:
                self._callback_not_reached(uid, self.offers.pop(uid))
            elif uid in self.offers:
                # Rejected or hung up before the bridge; OriginateResponse may follow.
                cause = ev.get("Cause") or ""
                self._end_offer(uid, result_of_cause(cause) or result_of_cause(self.offers[uid].cause)
                                or "failed")
            elif uid in self.talking:
                self._agent_hung_up(uid, self.talking.pop(uid), cause=ev.get("Cause-txt") or "")
            else:
                for w in list(self.waiting.values()):
                    if w.uniqueid == uid and w.session is not None:
                        self.caller_gone(w.call.call_id)

    def _answered(self, leg: str, ev: Event) -> None:
        offer = self.offers.pop(leg)
        offer.answered = self.clock()
        self.talking[leg] = offer
        try:
            self._apply(offer.agent_id, st.Answer())
        except IllegalAgentAction as exc:
            log.warning("answer by %s: %s", offer.agent_id, exc)
        w = self.waiting.get(offer.call_id)
        wait_s = (offer.answered - w.call.joined_at) if w else 0.0
        if w is not None:
            if w.caller:
                self.last_agent[w.caller] = (offer.agent_id, self.wall())
            self._drop_waiter(offer.call_id, "bridged")
        self._emit(offer.call_id, EventKind.OFFER_RESULT, {"agent_id": offer.agent_id, "result": "answered",
                                                           "ring_s": round(offer.answered - offer.started, 3)})
        self._emit(offer.call_id, EventKind.ANSWERED, {"agent_id": offer.agent_id, "wait_s": round(wait_s, 3),
                                                       "leg_uniqueid": leg})
        self._notify("agent.answered", {"agent_id": offer.agent_id, "call_id": offer.call_id})
        log.info("call %s answered by %s after %.1fs", offer.call_id, offer.agent_id, wait_s)
        self._recording_started(offer)

    # ------------------------------------------------------------------ callbacks

    def _callback_agent_answered(self, offer: Offer) -> None:
        """The agent took the callback: now the dialplan calls the caller's number."""
        if offer.answered is not None:
            return
        offer.answered = self.clock()
        try:
            self._apply(offer.agent_id, st.Answer())
        except IllegalAgentAction as exc:
            log.warning("callback answer by %s: %s", offer.agent_id, exc)
        self._emit(offer.call_id, EventKind.OFFER_RESULT, {"agent_id": offer.agent_id, "result": "answered",
                                                           "ring_s": round(offer.answered - offer.started, 3),
                                                           "callback_id": offer.callback_id})
        self._notify("agent.answered", {"agent_id": offer.agent_id, "call_id": offer.call_id})
        log.info("callback %s: %s answered, calling the number", offer.callback_id, offer.agent_id)

    def _callback_answered(self, leg: str) -> None:
        """The called-back caller answered: agent and caller are bridged."""
        offer = self.offers.pop(leg)
        if offer.answered is None:
            self.offers[leg] = offer
            self._callback_agent_answered(offer)
            self.offers.pop(leg)
        self.talking[leg] = offer
        w = self.waiting.get(offer.call_id)
        cb = w.callback if w is not None else None
        attempt = (cb.attempts + 1) if cb is not None else 1
        wait_s = (self.clock() - w.call.joined_at) if w is not None else 0.0
        if w is not None:
            if w.caller:
                self.last_agent[w.caller] = (offer.agent_id, self.wall())
            self._drop_waiter(offer.call_id, None)
        self._callback_closed(offer.callback_id)
        self._emit(offer.call_id, EventKind.CALLBACK_COMPLETED, {
            "callback_id": offer.callback_id, "result": "answered", "attempt": attempt, "agent_id": offer.agent_id})
        self._emit(offer.call_id, EventKind.ANSWERED, {"agent_id": offer.agent_id, "wait_s": round(wait_s, 3),
                                                       "leg_uniqueid": leg, "callback_id": offer.callback_id})
        log.info("callback %s of call %s answered (attempt %d), agent %s", offer.callback_id, offer.call_id,
                 attempt, offer.agent_id)
        self._recording_started(offer)

    def _callback_not_reached(self, leg: str, offer: Offer) -> None:
        """The agent answered but the number did not (or could not be dialled): retry later, or give up."""
        self._agent_hung_up(leg, offer, cause=f"callback {offer.dial_status or 'not reached'}")
        w = self.waiting.get(offer.call_id)
        if w is not None and w.offer is offer:
            w.offer = None
        cb = w.callback if w is not None else None
        if cb is None or w is None:
            return
        cb.attempts += 1
        result = "failed" if offer.dial_status in ("CHANUNAVAIL", "CONGESTION", "INVALIDARGS") else "no_answer"
        final = cb.attempts >= max(1, self.settings.callback_max_attempts)
        self._emit(offer.call_id, EventKind.CALLBACK_COMPLETED, {
            "callback_id": cb.callback_id, "result": result, "attempt": cb.attempts, "final": final,
            "agent_id": offer.agent_id, "dial_status": offer.dial_status or None})
        if final:
            log.info("callback %s to %s: %s after %d attempt(s), giving up", cb.callback_id, cb.number, result,
                     cb.attempts)
            self._callback_closed(cb.callback_id)
            self._drop_waiter(offer.call_id, None)
        else:
            cb.not_before = self.clock() + self.callback_retry_s
            log.info("callback %s to %s: %s (attempt %d), retry in %.0fs", cb.callback_id, cb.number, result,
                     cb.attempts, self.callback_retry_s)
        self.schedule_route()

    def callbacks_pending(self) -> int:
        """Callbacks owed and in line (asked while waiting, after hours, or read back at start)."""
        return sum(1 for w in self.waiting.values() if w.callback is not None)

    def _callback_closed(self, callback_id: str | None) -> None:
        if callback_id:
            self._closed_callbacks[callback_id] = None
            while len(self._closed_callbacks) > 50_000:
                del self._closed_callbacks[next(iter(self._closed_callbacks))]

    def restore_callbacks(self, owed: Iterable[Any], *, max_age_s: float) -> list[str]:
        """Put callbacks owed from the database back in line; returns their call ids.

        ``owed``: ``store.callbacks.OpenCallback`` records (after a restart of the service,
        or asked after hours), oldest first. Each keeps its place: the time its caller joined
        the line. Skipped: one already in line, or closed by this process (its closing event
        may not be written yet). Closed with a final ``callback.completed``: one requested
        more than ``max_age_s`` ago (``expired``), and a second one for a number that already
        has a callback in line (``duplicate``).
        """
        now, now_wall = self.clock(), self.wall()
        in_line = {w.callback.callback_id: w for w in self.waiting.values() if w.callback is not None}
        restored: list[str] = []
        for cb in owed:
            if cb.callback_id in in_line or cb.callback_id in self._closed_callbacks or cb.call_id in self.waiting:
                continue
            reason = ""
            decision = self.numbers.decide(cb.number, datetime.now(UTC), count=False)
            if not decision.ok:
                reason = "refused"
                self._emit(cb.call_id, EventKind.CALLBACK_REFUSED, {
                    "reason": decision.reason, "number": decision.number, "detail": decision.detail,
                    "callback_id": cb.callback_id})
            elif now_wall - cb.requested_at.timestamp() > max_age_s:
                reason = "expired"
            elif any(w.caller == decision.number for w in in_line.values()):
                reason = "duplicate"
            if reason:
                log.info("callback %s to %s (call %s) closed: %s", cb.callback_id, log_safe(cb.number), cb.call_id,
                         reason)
                self._callback_closed(cb.callback_id)
                self._emit(cb.call_id, EventKind.CALLBACK_COMPLETED, {
                    "callback_id": cb.callback_id, "result": reason, "attempt": cb.attempts, "final": True})
                continue
            joined_wall = cb.joined_at.timestamp()
            sticky = self.last_agent.get(decision.number)
            call = WaitingCall(
                call_id=cb.call_id, topic=cb.topic, province=cb.province, joined_at=now - (now_wall - joined_wall),
                priority=cb.priority, language=cb.language, last_agent_id=sticky[0] if sticky else None,
                last_agent_at=(now - (now_wall - sticky[1])) if sticky else None)
            w = Waiter(call=call, caller=decision.number, channel="", uniqueid="", joined_wall=joined_wall,
                       callback=Callback(callback_id=cb.callback_id, number=decision.number, attempts=cb.attempts))
            self.waiting[cb.call_id] = w
            self.call_vars[cb.call_id] = {"language": call.language, "topic": call.topic,
                                          "province": call.province or ""}
            in_line[cb.callback_id] = w
            restored.append(cb.call_id)
            log.info("callback %s to %s (call %s, %d attempt(s) so far) back in line, joined %.0fs ago",
                     cb.callback_id, decision.number, cb.call_id, cb.attempts, now_wall - joined_wall)
        if restored:
            self.schedule_route()
        return restored

    def recording_path(self, call_id: str, agent_id: str) -> str:
        """Where the agent leg's MixMonitor writes (as Asterisk sees it); given to the dialplan."""
        day = datetime.now(UTC).strftime("%Y/%m/%d")
        return f"{self.recordings_dir}/calls/{day}/{call_id}-{agent_id}.wav"

    def _recording_started(self, offer: Offer) -> None:
        """The leg is bridged: the dialplan's MixMonitor (option b) records from now on."""
        if offer.recording:
            self._emit(offer.call_id, EventKind.RECORDING, {"path": offer.recording, "agent_id": offer.agent_id})

    def _agent_hung_up(self, leg: str, offer: Offer, *, cause: str = "") -> None:
        talk = self.clock() - (offer.answered or self.clock())
        self.handle_times.append(talk + self.settings.wrap_up_s)
        try:
            self._apply(offer.agent_id, st.Hangup())
        except IllegalAgentAction as exc:
            log.warning("hang-up of %s: %s", offer.agent_id, exc)
        self._last_call[offer.agent_id] = offer.call_id
        self._emit(offer.call_id, EventKind.AGENT_ENDED, {"agent_id": offer.agent_id, "talk_s": round(talk, 3),
                                                          "cause": cause})

    # ------------------------------------------------------------------ live listeners

    def _notify(self, kind: str, payload: Any) -> None:
        for listener in list(self.listeners):
            try:
                listener(kind, payload)
            except Exception:
                log.exception("ACD listener failed on %s", kind)
