"""The ACD at run time: waiting callers, agents, offers, over AMI.

The pure parts decide (``router.route`` picks agents, ``agent_state`` says
what each agent may do); this shell only moves events and timers:

* the IVR's ``queue`` node calls :meth:`AcdService.enqueue` with the caller's
  AGI session; the caller hears music on hold with periodic announcements
  (:mod:`switchboard.acd.hold`) until an agent answers, the caller hangs up or
  presses 1 for a callback;
* on every change (a call joins, an agent becomes ready, an offer ends) the router
  looks at what changed (``router.route_changes`` over the indexes the routing book
  keeps, ``routing_book``), which gives what a full pass would; on a timer, the full
  pass (``router.route``) runs over **all** waiting calls and **all** agents;
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

This module is the facade: :class:`AcdService` wires the parts, owns routing (when the
router runs and the timer) and keeps the ACD's public API. Each part answers one question:
``desk`` (agents and their commands), ``line`` (waiting callers), ``offers`` (one call
offered to one agent), ``callbacks`` (the callback line and its dialer), ``events`` (what
AMI events mean for them), ``routing_book`` (what the router reads, kept up to date);
``model`` holds the records they share. It must not grow logic
of its own beyond routing: a new rule belongs in the part whose question it answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from switchboard.acd import agent_state as st
from switchboard.acd.agents import AgentRecord, SupervisorRecord
from switchboard.acd.callbacks import CallbackLine
from switchboard.acd.consults import CONSULT_EVENTS, ConsultDesk
from switchboard.acd.desk import AgentDesk
from switchboard.acd.directory import Directory
from switchboard.acd.events import EVENT_NAMES, AmiEvents
from switchboard.acd.line import CallerLine
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
    LegsByAgent,
    Offer,
    UnknownAgent,
    Waiter,
    WaitingSnapshot,
    new_callback_id,
)
from switchboard.acd.offers import OfferLifecycle
from switchboard.acd.router import RoutingPolicy, route
from switchboard.acd.router import WaitingCall as RouterCall
from switchboard.acd.routing_book import RoutingBook
from switchboard.acd.transfers import TransferDesk
from switchboard.ami.protocol import Event
from switchboard.config import RoutingSettings
from switchboard.periodic import run_every
from switchboard.telephony.numbers import CallbackNumbers, default_callback_numbers

__all__ = [
    "REASON_ANSWERED", "REASON_BUSY", "REASON_CONGESTION", "REASON_NO_ANSWER", "VAR_CALLER", "VAR_CALL_ID",
    "VAR_JOINED", "VAR_LANGUAGE", "VAR_PRIORITY", "VAR_PROVINCE", "VAR_TOPIC", "AcdError", "AcdService",
    "AgentSnapshot", "Callback", "Emit", "IllegalAgentAction", "Offer", "UnknownAgent", "Waiter",
    "WaitingSnapshot", "new_callback_id",
]

log = logging.getLogger("switchboard.acd")


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
        directory: Directory | None = None,
        sound_prefix: str = "",
        supervisors: tuple[SupervisorRecord, ...] = (),
    ) -> None:
        self.ami = ami
        self.settings = routing
        self.policy = RoutingPolicy.from_settings(routing, region_of)
        self.region_of = dict(region_of)
        self.hold = hold
        self.clock = clock
        self.wall = wall
        self._route_pending = False
        self._routing = False          # inside a routing step (schedule_route(at_once) waits its turn)
        self._timer: asyncio.Task[None] | None = None
        self._unsubscribe: Callable[[], None] | None = None
        self.routing_missed = 0   # assignments the timer's full pass found that the event steps had not
        self.desk = AgentDesk(routing=routing, emit=emit, clock=clock, wall=wall,
                              schedule_route=self._route_soon, current_call=self._current_call,
                              agent_changed=self._agent_changed)
        self.line = CallerLine(desk=self.desk, policy=self.policy, emit=emit, clock=clock, wall=wall, hold=hold,
                               hold_host=self, schedule_route=self.schedule_route, cancel_offer=self._cancel_offer,
                               ami=ami)
        self.book = RoutingBook(policy=self.policy, region_of=self.region_of, states=self.desk.states,
                                records=self.desk.records, waiting=self.line.waiting,
                                held=lambda w, now: self._held(w, now))
        self.desk.set_agents(agents)
        self.offer_lifecycle = OfferLifecycle(
            ami=ami, routing=routing, desk=self.desk, line=self.line, emit=emit, clock=clock, wall=wall,
            schedule_route=self.schedule_route, recordings_dir=recordings_dir, survey_context=survey_context,
            agent_context=agent_context)
        self.callbacks = CallbackLine(
            routing=routing, desk=self.desk, line=self.line, offers=self.offer_lifecycle,
            numbers=numbers if numbers is not None else default_callback_numbers(), emit=emit, clock=clock,
            wall=wall, schedule_route=self.schedule_route, callback_context=callback_context,
            retry_s=callback_retry_s, ring_s=callback_ring_s, cli=callback_cli)
        self.offer_lifecycle.dial_callback = self.callbacks.dial
        self.transfers = TransferDesk(
            ami=ami, desk=self.desk, line=self.line, offers=self.offer_lifecycle, emit=emit,
            directory=directory if directory is not None else Directory(), clock=clock, wall=wall,
            schedule_route=self.schedule_route, ring_s=routing.transfer_ring_s, sound_prefix=sound_prefix,
            supervisors=supervisors)
        self.consults = ConsultDesk(
            ami=ami, desk=self.desk, offers=self.offer_lifecycle, emit=emit, clock=clock, pick=self.pick_colleague,
            ring_s=routing.ring_timeout_s, survey_after=f"{survey_context}^survey^1",
            max_wait_s=routing.consult_max_wait_s,
            supervisors=lambda: self.transfers.supervisors)
        self._unsubscribe_transfers: list[Callable[[], None]] = []
        self.events = AmiEvents(ami=ami, desk=self.desk, line=self.line, offers=self.offer_lifecycle,
                                callbacks=self.callbacks, clock=clock, schedule_route=self.schedule_route)

    def _current_call(self, agent_id: str) -> str | None:
        return self.offer_lifecycle.current_call(agent_id)

    def _cancel_offer(self, leg: str, result: str) -> None:
        self.offer_lifecycle.end_offer(leg, result, cancel=True)

    # ------------------------------------------------------------------ the parts' state, by its old names

    @property
    def rules(self) -> st.AgentRules:
        return self.desk.rules

    @property
    def records(self) -> dict[str, AgentRecord]:
        return self.desk.records

    @property
    def states(self) -> dict[str, st.AgentState]:
        return self.desk.states

    @property
    def listeners(self) -> list[Callable[[str, Any], None]]:
        return self.desk.listeners

    @property
    def waiting(self) -> dict[str, Waiter]:
        return self.line.waiting

    @property
    def call_vars(self) -> dict[str, dict[str, str]]:
        return self.line.call_vars

    @property
    def last_agent(self) -> dict[str, tuple[str, float]]:
        return self.line.last_agent

    @property
    def handle_times(self) -> deque[float]:
        return self.line.handle_times

    @property
    def offers(self) -> dict[str, Offer]:
        return self.offer_lifecycle.offers

    @property
    def talking(self) -> LegsByAgent:
        return self.offer_lifecycle.talking

    @property
    def offers_total(self) -> int:
        return self.offer_lifecycle.offers_total

    @property
    def originate_failures(self) -> int:
        return self.offer_lifecycle.originate_failures

    @property
    def recordings_dir(self) -> str:
        return self.offer_lifecycle.recordings_dir

    @property
    def survey_context(self) -> str:
        return self.offer_lifecycle.survey_context

    @property
    def agent_context(self) -> str:
        return self.offer_lifecycle.agent_context

    @property
    def numbers(self) -> CallbackNumbers:
        return self.callbacks.numbers

    @property
    def callback_context(self) -> str:
        return self.callbacks.callback_context

    @property
    def callback_retry_s(self) -> float:
        return self.callbacks.retry_s

    @callback_retry_s.setter
    def callback_retry_s(self, value: float) -> None:
        self.callbacks.retry_s = value

    @property
    def callback_ring_s(self) -> float:
        return self.callbacks.ring_s

    @callback_ring_s.setter
    def callback_ring_s(self, value: float) -> None:
        self.callbacks.ring_s = value

    @property
    def callback_cli(self) -> str:
        return self.callbacks.cli

    # ------------------------------------------------------------------ set-up

    def set_agents(self, agents: Iterable[AgentRecord]) -> None:
        self.desk.set_agents(agents)

    async def start(self) -> None:
        self._unsubscribe = self.ami.subscribe(self.events.handle_event, names=EVENT_NAMES)
        self._unsubscribe_transfers = [
            self.ami.subscribe(self.transfers.handle_event, names=("DialEnd", "Hangup")),
            self.ami.subscribe(self.consults.handle_event, names=CONSULT_EVENTS)]
        on_resync = getattr(self.ami, "on_resync", None)
        if on_resync is not None:
            on_resync(self.events.on_resync)
        if getattr(self.ami, "connected", False):
            await self.events.refresh_devices()
        # the timer must outlive one bad step, or routing stops for good: run_every logs and goes on
        self._timer = asyncio.create_task(
            run_every(max(0.2, self.settings.reevaluate_interval_s), self._tick, name="ACD timer step"),
            name="acd-timer")

    async def stop(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
        for unsubscribe in self._unsubscribe_transfers:
            unsubscribe()
        self.desk.cancel_timers()
        if self._timer is not None:
            self._timer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._timer
        for w in list(self.waiting.values()):
            if w.hold_task is not None:
                w.hold_task.cancel()
        await self.offer_lifecycle.stop()

    async def refresh_devices(self) -> None:
        """Read every endpoint's device state (DeviceStateList) and reconcile."""
        await self.events.refresh_devices()

    def handle_event(self, ev: Event) -> None:
        self.events.handle_event(ev)

    # ------------------------------------------------------------------ views

    def snapshot(self, agent_id: str) -> AgentSnapshot:
        return self.desk.snapshot(agent_id)

    def agents(self) -> list[AgentSnapshot]:
        return self.desk.agents()

    def waiting_calls(self) -> list[WaitingSnapshot]:
        return self.line.waiting_calls()

    def position(self, call_id: str) -> tuple[int, float | None]:
        """(position in line among calls of the same topic, estimated wait in seconds)."""
        return self.line.position(call_id)

    def callbacks_pending(self) -> int:
        """Callbacks owed and in line (asked while waiting, after hours, or read back at start)."""
        return self.callbacks.pending()

    def recording_path(self, call_id: str, agent_id: str) -> str:
        """Where the agent leg's MixMonitor writes (as Asterisk sees it); given to the dialplan."""
        return self.offer_lifecycle.recording_path(call_id, agent_id)

    # ------------------------------------------------------------------ agents

    def login(self, agent_id: str) -> AgentSnapshot:
        return self.desk.login(agent_id)

    def logout(self, agent_id: str) -> AgentSnapshot:
        return self.desk.logout(agent_id)

    def ready(self, agent_id: str) -> AgentSnapshot:
        return self.desk.ready(agent_id)

    def pause(self, agent_id: str, reason: str) -> AgentSnapshot:
        return self.desk.pause(agent_id, reason)

    def end_wrap_up(self, agent_id: str, *, disposition: str) -> AgentSnapshot:
        return self.desk.end_wrap_up(agent_id, disposition=disposition)

    def restore_states(self, last: Mapping[str, tuple[str, str | None]]) -> list[str]:
        """After a restart, put logged-out agents back in their last logged state (see ``AgentDesk``)."""
        return self.desk.restore_states(last)

    def adopt_talking(self, leg: str, *, call_id: str, agent_id: str, talked_s: float,
                      caller: Waiter | None = None) -> None:
        """An agent leg found bridged after a restart (see ``OfferLifecycle.adopt_talking``)."""
        self.offer_lifecycle.adopt_talking(leg, call_id=call_id, agent_id=agent_id, talked_s=talked_s,
                                           caller=caller)

    def place_of_bridged(self, call_id: str, *, channel: str, uniqueid: str, values: Mapping[str, str],
                         variables: Mapping[str, str] | None = None) -> Waiter | None:
        """A bridged caller's place in line from its channel variables (see ``CallerLine.place_of_bridged``)."""
        return self.line.place_of_bridged(call_id, channel=channel, uniqueid=uniqueid, values=values,
                                          variables=variables)

    def agent_for_device(self, device: str) -> str | None:
        """The agent whose endpoint is ``device`` (``PJSIP/agent1001``), None if none."""
        return self.desk.agent_for_device(device)

    # ------------------------------------------------------------------ callers and callbacks

    async def enqueue(self, session: Any, request: Any) -> str:
        """Hold the caller until an agent answers (``bridged``), they ask for a
        callback (``callback``), or they hang up (raises ``AgiHangup``)."""
        return await self.line.enqueue(session, request)

    def caller_pressed_callback(self, call_id: str) -> str:
        """The caller asked to be called back (see ``CallbackLine.caller_pressed_callback``)."""
        return self.callbacks.caller_pressed_callback(call_id)

    def caller_gone(self, call_id: str) -> None:
        """The caller hung up while waiting (seen by the hold loop or a Hangup event)."""
        self.line.caller_gone(call_id)

    def restore_callbacks(self, owed: Iterable[Any], *, max_age_s: float) -> list[str]:
        """Put callbacks owed from the database back in line (see ``CallbackLine.restore``)."""
        return self.callbacks.restore(owed, max_age_s=max_age_s)

    # ------------------------------------------------------------------ routing

    def schedule_route(self, call_id: str | None = None, *, at_once: bool = False) -> None:
        """A change may allow an assignment: route soon (once per turn of the loop).

        ``call_id``: the call that joined or left, when that is the change; without it the
        next step compares the routing book with the desk and the line (a few microseconds
        per agent and call), so a part that changes state its own way is still seen.

        ``at_once``: run the step now, inside the caller's turn of the loop, rather than after
        every callback already queued (a caller joining the line: with a free agent the
        ``Originate`` leaves before the loop reads the next burst of AMI events; ``docs/capacity.md``,
        dispatch latency). Never inside a step: there it is the usual "soon"."""
        if call_id is None:
            self.book.unknown_change()
        else:
            self.book.call_changed(call_id)
        if at_once and not self._routing:
            self._route_now()
            return
        self._route_soon()

    def _agent_changed(self, agent_id: str) -> None:
        self.book.agent_changed(agent_id)

    def _route_soon(self) -> None:
        if self._route_pending:
            return
        self._route_pending = True
        try:
            asyncio.get_running_loop().call_soon(self._route_now)
        except RuntimeError:
            self._route_pending = False

    def _route_now(self) -> None:
        """One routing step: the assignments of what changed since the last one."""
        self._route_pending = False
        self._routing = True
        try:
            now = self.clock()
            for call_id in self.book.due(now):
                self.line.note_overflow(call_id, now)
            for a in self.book.step(now):
                self.offer_lifecycle.offer(a)
        finally:
            self._routing = False

    def _reevaluate(self) -> None:
        """The timer's pass: every change not seen yet, then the full pass over everything,
        which finds nothing more unless a change escaped the steps (logged and counted)."""
        now = self.clock()
        self.line.note_overflows(now)
        self.book.due(now)
        self.book.unknown_change()
        for a in self.book.step(now):
            self.offer_lifecycle.offer(a)
        missed = self.book.full(now)
        if missed:
            self.routing_missed += len(missed)
            log.warning("routing: the full pass found %d assignment(s) the steps had missed: %s", len(missed),
                        ", ".join(f"{a.call_id}->{a.agent_id}" for a in missed))
        for a in missed:
            self.offer_lifecycle.offer(a)

    def pick_colleague(self, call_id: str, topic: str, asking: str) -> str | None:
        """The colleague the router would give this call for ``topic`` now (a consult): nationwide
        (the caller has waited already), best proficiency, then longest idle; never ``asking``."""
        offer = next((o for o in self.talking.values() if o.call_id == call_id and o.caller is not None), None)
        if offer is None or offer.caller is None:
            return None
        now = self.clock()
        w = offer.caller.call
        call = RouterCall(call_id=call_id, topic=topic, province=w.province, priority=w.priority,
                          language=w.language, joined_at=now - self.policy.nation_after_s - 1)
        agents = [a for a in self.book.agents() if a.agent_id != asking]
        return next((a.agent_id for a in route([call], agents, now, self.policy)), None)

    def _held(self, w: Waiter, now: float) -> bool:
        """A waiting call the router must not place now: an owed callback outside the calling
        window, or a transferred caller whose named agent still has its turn."""
        return (w.session is None and w.callback is not None and not self.callbacks.may_dial()) \
            or self.transfers.holds(w, now)

    async def _tick(self) -> None:
        self._on_tick()

    def _on_tick(self) -> None:
        now = self.clock()
        for agent_id, s in list(self.states.items()):
            if st.due_event(s, now) is not None:
                self.desk.finish_wrap_up(agent_id, "")
        for leg, offer in list(self.offers.items()):
            if offer.failed_at is not None and now - offer.failed_at > 2.0:
                self.offer_lifecycle.end_offer(leg, "failed", cancel=True)   # no leg ever hung up: never rang
            elif offer.answered is None and now - offer.started > self.settings.ring_timeout_s + 10:
                # a lost OriginateResponse
                log.warning("offer %s to %s: no answer event, ending it", leg, offer.agent_id)
                self.offer_lifecycle.end_offer(leg, "timeout", cancel=True)
        self._reevaluate()
