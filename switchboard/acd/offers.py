"""Offers: the lifecycle of one call offered to one agent, over AMI Originate.

Owns: the ringing offers and the answered (talking) agent legs, by the leg's Uniqueid;
turning a router assignment into an offer (``Originate`` into our ``agent-leg`` dialplan
context with ``ChannelId`` set), its end without an answer (timeout, reject, caller gone,
failure: ``Hangup`` of the leg), its answer (bridged, recording started) and the agent's
hang-up (talk time, wrap-up). Also the agent legs re-adopted after a restart.

Must not touch: the callback line (a callback's offer is dialled by the hook
``dial_callback`` it is given), AMI events (``events`` calls in here), agent states except
through the desk, and the line except to drop a caller who reached an agent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from switchboard.acd import agent_state as st
from switchboard.acd.desk import AgentDesk
from switchboard.acd.line import CallerLine
from switchboard.acd.model import Emit, IllegalAgentAction, LegsByAgent, Offer, Waiter
from switchboard.acd.router import Assignment
from switchboard.ami.client import AmiError
from switchboard.config import RoutingSettings
from switchboard.events import EventKind
from switchboard.telephony.numbers import presentable

log = logging.getLogger("switchboard.acd")

#: Dials a callback's offer: (leg, waiter, assignment, agent's SIP endpoint).
DialCallback = Callable[[str, Waiter, Assignment, str], None]


def _caller_id(caller: str) -> str:
    """The CallerID of a leg that shows the caller: the untrusted caller id reduced to digits."""
    shown = presentable(caller)
    return f'"{shown}" <{shown}>' if shown else "Hotline"


class OfferLifecycle:
    """Offers ringing at agents and agent legs talking, one per leg Uniqueid."""

    def __init__(self, *, ami: Any, routing: RoutingSettings, desk: AgentDesk, line: CallerLine, emit: Emit,
                 clock: Callable[[], float], wall: Callable[[], float], schedule_route: Callable[[], None],
                 recordings_dir: str, survey_context: str, agent_context: str) -> None:
        self.ami = ami
        self.settings = routing
        self.desk = desk
        self.line = line
        self._emit = emit
        self.clock = clock
        self.wall = wall
        self._schedule_route = schedule_route
        self.recordings_dir = recordings_dir.rstrip("/")
        self.survey_context = survey_context
        self.agent_context = agent_context           # where an agent leg bridges to its caller (and records)
        self.dial_callback: DialCallback | None = None
        self.offers: dict[str, Offer] = {}            # leg uniqueid -> offer
        self.talking = LegsByAgent()                  # leg uniqueid -> answered offer
        self._tasks: set[asyncio.Task[Any]] = set()
        # counters for metrics
        self.offers_total = 0
        self.originate_failures = 0

    def current_call(self, agent_id: str) -> str | None:
        offer = self.talking.first_of(agent_id)
        return offer.call_id if offer is not None else None

    def current_agent(self, call_id: str) -> str | None:
        """The agent who answered ``call_id`` last and still talks on it."""
        talking = [o for o in self.talking.values() if o.call_id == call_id]
        return max(talking, key=lambda o: o.answered or 0.0).agent_id if talking else None

    def adopt_talking(self, leg: str, *, call_id: str, agent_id: str, talked_s: float,
                      caller: Waiter | None = None) -> None:
        """An agent leg found bridged after a restart: its hang-up ends the agent's call as usual
        (``agent.ended`` with the talk time, then wrap-up). ``talked_s``: the leg's age (ring included).
        ``caller``: the caller's place in line as its channel holds it (a transfer or consult
        of the call starts from it); None: the call cannot be passed on."""
        if not leg or leg in self.talking:
            return
        now = self.clock()
        self.talking[leg] = Offer(leg=leg, call_id=call_id, agent_id=agent_id, started=now - talked_s,
                                  answered=now - talked_s, caller=caller)
        log.info("agent %s is talking on call %s (leg %s, re-adopted)", agent_id, call_id, leg)

    # ------------------------------------------------------------------ ringing

    def offer(self, a: Assignment) -> None:
        """Ring ``a``'s agent for its caller. The agent's ``Originate`` leaves first; the offer's
        event, the pages' news and the log lines follow in the same turn of the loop (the
        agent's phone waits for none of them: docs/capacity.md, dispatch latency)."""
        w = self.line.waiting.get(a.call_id)
        if w is None or w.offer is not None:
            return
        with self.desk.news_held():
            try:
                self.desk.apply(a.agent_id, st.Offer(a.call_id))
            except IllegalAgentAction as exc:
                log.warning("cannot offer %s to %s: %s", a.call_id, a.agent_id, exc)
                return
            leg = self.new_leg(a.call_id, callback=w.callback is not None)
            offer = Offer(leg=leg, call_id=a.call_id, agent_id=a.agent_id, started=self.clock(),
                          callback_id=w.callback.callback_id if w.callback is not None else None,
                          recording=self.recording_path(a.call_id, a.agent_id))
            self.offers[leg] = offer
            w.offer = offer
            w.offers += 1
            self.offers_total += 1
            rec = self.desk.records[a.agent_id]
            if w.callback is None:
                self.originate(leg, self._agent_leg(a, w, offer, rec.sip_endpoint))
            self._emit(a.call_id, EventKind.OFFER, {"agent_id": a.agent_id, "leg_uniqueid": leg,
                                                     "tier": a.tier.name.lower(), "proficiency": a.proficiency,
                                                     "sticky": a.sticky, "callback_id": offer.callback_id})
            self.desk.notify("agent.offer", {"agent_id": a.agent_id, "call_id": a.call_id, "caller": w.caller,
                                             "topic": w.call.topic, "province": w.call.province,
                                             "language": w.call.language, "variables": dict(w.variables)})
            log.info("offer %scall %s to %s (%s, tier %s, leg %s)", "callback of " if offer.callback_id else "",
                     a.call_id, a.agent_id, rec.sip_endpoint, a.tier.name.lower(), leg)
            if w.callback is not None:
                assert self.dial_callback is not None
                self.dial_callback(leg, w, a, rec.sip_endpoint)

    def _agent_leg(self, a: Assignment, w: Waiter, offer: Offer, endpoint: str) -> dict[str, Any]:
        """The ``Originate`` of the agent's leg for a caller on the line. Into our own dialplan
        (agent_context), never an application: there the leg starts MixMonitor (b: only while
        bridged) and bridges to the caller, who goes on to the survey when the agent hangs up.
        No AMI MixMonitor: that action needs the system class."""
        return {
            "Action": "Originate",
            "Channel": f"PJSIP/{endpoint}",
            "ChannelId": offer.leg,
            "OtherChannelId": f"{offer.leg}-o",
            "Context": self.agent_context,
            "Exten": "bridge",
            "Priority": "1",
            "Timeout": str(int(self.settings.ring_timeout_s * 1000)),
            "CallerID": _caller_id(w.caller),
            # SB_OFFERED: when the service sent the offer (wall clock), so dispatch latency splits
            # into the service's share and Asterisk's (bench/appqueue.py; docs/capacity.md)
            "Variable": [f"SB_CALL_ID={a.call_id}", f"SB_AGENT={a.agent_id}", f"SB_PEER={w.channel}",
                         f"SB_AFTER={self.survey_context}^survey^1", f"SB_REC_FILE={offer.recording}",
                         f"SB_OFFERED={self.wall():.6f}"],
            "Async": "true",
        }

    def new_leg(self, call_id: str, *, callback: bool) -> str:
        """The uniqueid the agent's leg gets (``ChannelId``). With several Asterisk nodes
        (``AmiNodes``) it starts with its node, like Asterisk's own ids: the caller's node (the
        bridge is local), or for a callback (no caller channel) the node that places it."""
        tail = uuid.uuid4().hex[:20]
        node = None
        if hasattr(self.ami, "place"):
            try:
                node = self.ami.place() if callback else self.ami.node_for(call_id)
            except AmiError:
                node = None   # no node up: the Originate fails and the offer with it
        return f"{node}-{int(self.wall())}.{tail}" if node else f"sb-{tail}"

    def originate(self, leg: str, action: dict[str, Any]) -> None:
        """Send the leg's ``Originate`` now, within this routing pass (``send_nowait``: a task would
        write it only after every callback already queued on the event loop), and follow its answer."""
        try:
            answer: Awaitable[Any] | None = self.ami.send_nowait(action, timeout=10)
            why = ""
        except (AmiError, TimeoutError) as exc:
            answer, why = None, str(exc)
        self.spawn(self._originated(leg, answer, why))

    async def _originated(self, leg: str, answer: Awaitable[Any] | None, why: str) -> None:
        ok = False
        if answer is not None:
            try:
                resp = await answer
                ok = resp.success
                why = resp.message
            except (AmiError, TimeoutError) as exc:
                ok, why = False, str(exc)
        if not ok:
            self.originate_failures += 1
            log.warning("originate for %s failed: %s", leg, why)
            if leg in self.offers:
                self.end_offer(leg, "failed", cancel=True)

    def spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def stop(self) -> None:
        for t in list(self._tasks):
            t.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def end_offer(self, leg: str, result: str, *, cancel: bool = False) -> None:
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
            self.desk.apply(offer.agent_id, event, reason=result)
        except IllegalAgentAction as exc:
            log.warning("offer end for %s: %s", offer.agent_id, exc)
        w = self.line.waiting.get(offer.call_id)
        if w is not None and w.offer is offer:
            w.offer = None
        self._emit(offer.call_id, EventKind.OFFER_RESULT, {"agent_id": offer.agent_id, "result": result,
                                                           "ring_s": round(self.clock() - offer.started, 3)})
        self.desk.notify("agent.offer_ended", {"agent_id": offer.agent_id, "call_id": offer.call_id,
                                               "result": result})
        log.info("offer of %s to %s ended: %s", offer.call_id, offer.agent_id, result)
        if cancel:
            self.spawn(self._hangup_leg(leg))
        self._schedule_route()

    async def _hangup_leg(self, leg: str) -> None:
        with contextlib.suppress(AmiError, TimeoutError):
            await self.ami.send({"Action": "Hangup", "Channel": leg, "Cause": "16"}, timeout=5)

    # ------------------------------------------------------------------ answered and after

    def answered(self, leg: str) -> None:
        offer = self.offers.pop(leg)
        offer.answered = self.clock()
        self.talking[leg] = offer
        try:
            self.desk.apply(offer.agent_id, st.Answer())
        except IllegalAgentAction as exc:
            log.warning("answer by %s: %s", offer.agent_id, exc)
        w = self.line.waiting.get(offer.call_id)
        wait_s = (offer.answered - w.call.joined_at) if w else 0.0
        if w is not None:
            offer.caller = w
            if w.caller:
                self.line.last_agent[w.caller] = (offer.agent_id, self.wall())
            self.line.drop_waiter(offer.call_id, "bridged")
        self._emit(offer.call_id, EventKind.OFFER_RESULT, {"agent_id": offer.agent_id, "result": "answered",
                                                           "ring_s": round(offer.answered - offer.started, 3)})
        self._emit(offer.call_id, EventKind.ANSWERED, {"agent_id": offer.agent_id, "wait_s": round(wait_s, 3),
                                                       "leg_uniqueid": leg})
        self.desk.notify("agent.answered", {"agent_id": offer.agent_id, "call_id": offer.call_id})
        log.info("call %s answered by %s after %.1fs", offer.call_id, offer.agent_id, wait_s)
        self.recording_started(offer)

    def recording_path(self, call_id: str, agent_id: str) -> str:
        """Where the agent leg's MixMonitor writes (as Asterisk sees it); given to the dialplan."""
        day = datetime.now(UTC).strftime("%Y/%m/%d")
        return f"{self.recordings_dir}/calls/{day}/{call_id}-{agent_id}.wav"

    def recording_started(self, offer: Offer) -> None:
        """The leg is bridged: the dialplan's MixMonitor (option b) records from now on."""
        if offer.recording:
            self._emit(offer.call_id, EventKind.RECORDING, {"path": offer.recording, "agent_id": offer.agent_id})

    def agent_hung_up(self, leg: str, offer: Offer, *, cause: str = "") -> None:
        talk = self.clock() - (offer.answered or self.clock())
        self.line.handle_times.append(talk + self.settings.wrap_up_s)
        try:
            self.desk.apply(offer.agent_id, st.Hangup())
        except IllegalAgentAction as exc:
            log.warning("hang-up of %s: %s", offer.agent_id, exc)
        self.desk.last_call[offer.agent_id] = offer.call_id
        self._emit(offer.call_id, EventKind.AGENT_ENDED, {"agent_id": offer.agent_id, "talk_s": round(talk, 3),
                                                          "cause": cause})
