"""Consults (attended transfers): the agent puts its caller on hold, talks to a colleague, then
completes, cancels or makes a three-way call.

Owns: the consults under way (one per call, by call id) and the colleague's leg (its own
Uniqueid, set as ``ChannelId`` of the ``Originate``), with their records:
``transfer.requested`` (kind ``consult``), ``consult.offer`` / ``consult.answered`` /
``consult.ended`` (the colleague's leg: agent, ring and talk times), then
``transfer.completed`` (completed or three-way) or ``transfer.failed`` (cancelled, the
colleague did not answer or rejected, the caller hung up).

How, over AMI (dialplan in ``deploy/asterisk/extensions.conf``):

* start: one ``Redirect`` moves the caller to ``consult-hold`` (music on hold) and the
  agent's leg (``ExtraChannel``) to ``consult-agent`` (it waits, bounded); the colleague is
  originated into ``consult-leg``, which bridges it to the agent's leg when it answers;
* complete: the colleague's leg goes to ``agent-leg`` (recording, ``Bridge`` with the
  caller, survey after) and the agent's leg is hung up (its wrap-up); from then on the
  colleague's leg is an ordinary talking leg of the call (``call.answered`` by it);
* cancel, no answer, reject, the colleague hanging up: the agent's leg goes back to
  ``agent-leg`` and bridges to the caller again (the colleague's leg is hung up);
* three-way: the caller goes to ``consult-three`` (``BridgeAdd`` to the agent's bridge);
* a supervisor (``kind`` supervisor: a configured supervisor's own phone, never free-form)
  is consulted the same way, but it is no ACD agent: no agent state, no ``agent.ended``
  (its ring and talk times are in ``consult.ended``); complete hands the caller to its
  phone (state ``handed``, followed until it hangs up), not to the ACD's legs;
* the caller hanging up during the consult: both agents' legs are hung up.

Whatever fails, the agent's leg in ``consult-agent`` goes back to its caller after
``SB_CONSULT_WAIT`` seconds, so nobody stays on hold for ever.

Must not touch: the line and routing (the colleague for a topic is chosen by the router,
through the ``pick`` callable), agent states except through the desk.
"""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from switchboard.acd import agent_state as st
from switchboard.acd.agents import SupervisorRecord
from switchboard.acd.desk import AgentDesk
from switchboard.acd.model import Emit, IllegalAgentAction, Offer, result_of_cause
from switchboard.acd.offers import OfferLifecycle
from switchboard.acd.transfers import NotOnCall, TransferError, UnknownTarget
from switchboard.ami.client import AmiError, node_hint
from switchboard.ami.protocol import Event
from switchboard.events import EventKind

log = logging.getLogger("switchboard.acd.consults")

#: what an agent may do with a consult under way
ACTIONS = ("complete", "cancel", "three_way")
#: the AMI events the consults follow
CONSULT_EVENTS = ("BridgeEnter", "Hangup", "OriginateResponse")

#: A colleague for a topic: (call id, topic, the asking agent) -> agent id or None (the router's choice).
PickColleague = Callable[[str, str, str], str | None]


@dataclass
class Consult:
    consult_id: str
    call_id: str
    agent_id: str             # the agent who consults (its call)
    agent_leg: str            # that agent's leg (Uniqueid)
    caller_channel: str
    caller_uniqueid: str
    kind: str                 # agent | topic
    target: str
    colleague: str            # the colleague's agent id
    leg: str                  # the colleague's leg (Uniqueid)
    started: float
    answered: float | None = None
    state: str = "ringing"    # ringing | talking | three_way | handed (to a supervisor) | done
    colleague_done: bool = False   # the colleague's state, consult.ended and talk time are recorded
    by: str = ""
    supervisor: bool = False  # the colleague is a supervisor (no ACD agent)
    joining: bool = False     # complete or three-way under way: the caller is bridged again on purpose

    def record(self) -> dict[str, Any]:
        return {"transfer_id": self.consult_id, "kind": "consult", "target": self.target,
                "target_kind": self.kind, "from_agent": self.agent_id,
                "to_agent": None if self.supervisor else self.colleague,
                "to_supervisor": self.colleague if self.supervisor else None, "by": self.by}


class ConsultDesk:
    """Consults of answered calls, one per call."""

    def __init__(self, *, ami: Any, desk: AgentDesk, offers: OfferLifecycle, emit: Emit,
                 clock: Callable[[], float], pick: PickColleague, ring_s: float, survey_after: str,
                 max_wait_s: float = 300.0,
                 supervisors: Callable[[], Mapping[str, SupervisorRecord]] = dict) -> None:
        self.ami = ami
        self.desk = desk
        self.offers = offers
        self._emit = emit
        self.clock = clock
        self.pick = pick
        self.ring_s = ring_s
        self.survey_after = survey_after
        self.max_wait_s = max_wait_s
        self.supervisors = supervisors                # the configured supervisors' phones, by id
        self.consults: dict[str, Consult] = {}        # call id -> consult

    def of_agent(self, agent_id: str) -> Consult | None:
        return next((c for c in self.consults.values()
                     if c.agent_id == agent_id and c.state not in ("done", "handed")), None)

    # ------------------------------------------------------------------ start

    async def start(self, agent_id: str, *, kind: str, target: str, by: str = "") -> Consult:
        """Put ``agent_id``'s caller on hold and ring a colleague (``kind`` agent: that one;
        ``topic``: the one the router picks). Raises :class:`TransferError`; nothing moved then."""
        self.desk.record(agent_id)
        offer = next((o for o in self.offers.talking.values()
                      if o.agent_id == agent_id and not o.callback_id), None)
        if offer is None:
            raise NotOnCall(f"agent {agent_id} is not talking to a caller")
        if offer.caller is None:
            raise TransferError("the caller's place in line is not known (a call taken over after a restart "
                                "whose channel does not hold it); it cannot be passed on",
                                error_id="call-not-transferable")
        if offer.call_id in self.consults:
            raise TransferError("a consult of this call is already under way", error_id="transfer-in-progress")
        if kind == "agent":
            colleague = target
            if colleague == agent_id or colleague not in self.desk.records:
                raise UnknownTarget(f"no colleague {target!r} to consult")
            if not st.offerable(self.desk.states[colleague]):
                raise TransferError(f"{colleague} is not ready", error_id="colleague-not-ready")
        elif kind == "supervisor":
            sup = self.supervisors().get(target)
            if sup is None:
                raise UnknownTarget(f"no supervisor {target!r} to consult",
                                    details={"supervisors": sorted(self.supervisors())})
            colleague, endpoint = sup.id, sup.sip_endpoint
        elif kind == "topic":
            picked = self.pick(offer.call_id, target, agent_id)
            if picked is None:
                raise TransferError(f"no colleague for {target!r} is ready", error_id="colleague-not-ready")
            colleague = picked
        else:
            raise UnknownTarget(f"a consult is with an agent, a supervisor or a topic, not {kind!r}")
        if kind != "supervisor":
            endpoint = self.desk.records[colleague].sip_endpoint
        w = offer.caller
        c = Consult(consult_id=f"cs-{uuid.uuid4().hex[:12]}", call_id=offer.call_id, agent_id=agent_id,
                    agent_leg=offer.leg, caller_channel=w.channel, caller_uniqueid=w.uniqueid, kind=kind,
                    target=target, colleague=colleague, leg=self._leg_id(offer.call_id), started=self.clock(),
                    by=by or agent_id, supervisor=kind == "supervisor")
        # the agent's leg must not start a second recording when it goes back to its caller
        await self._setvars(c, c.agent_leg, {"SB_REC_FILE": "", "SB_CONSULT_END": "", "SB_CONSULT_WAIT":
                                          str(int(self.max_wait_s))})
        resp = await self._send(c, {"Action": "Redirect", "Channel": c.caller_channel, "Context": "consult-hold",
                                 "Exten": "hold", "Priority": "1", "ExtraChannel": c.agent_leg,
                                 "ExtraContext": "consult-agent", "ExtraExten": "wait", "ExtraPriority": "1"})
        if resp is not None:
            raise TransferError(f"Asterisk did not put the caller on hold: {resp}", error_id="transfer-failed")
        try:
            if not c.supervisor:
                self.desk.apply(colleague, st.Offer(c.call_id))
        except IllegalAgentAction as exc:     # it became busy meanwhile: back to the caller
            self.consults[c.call_id] = c
            self._emit(c.call_id, EventKind.TRANSFER_REQUESTED, c.record())
            await self._back_to_caller(c, "colleague_busy", detail=str(exc))
            raise TransferError(f"{colleague} cannot take a consult now", error_id="colleague-not-ready") from None
        self.consults[c.call_id] = c
        self._emit(c.call_id, EventKind.TRANSFER_REQUESTED, c.record())
        self._emit(c.call_id, EventKind.CONSULT_OFFER, {"consult_id": c.consult_id, "agent_id": colleague,
                                                        "leg_uniqueid": c.leg, "from_agent": agent_id})
        if not c.supervisor:
            self.desk.notify("agent.offer", {"agent_id": colleague, "call_id": c.call_id, "caller": w.caller,
                                             "topic": w.call.topic, "province": w.call.province,
                                             "language": w.call.language, "variables": dict(w.variables),
                                             "consult_from": agent_id})
        log.info("call %s: %s consults %s (leg %s)", c.call_id, agent_id, colleague, c.leg)
        failed = await self._send(c, {
            "Action": "Originate", "Channel": f"PJSIP/{endpoint}", "ChannelId": c.leg,
            "OtherChannelId": f"{c.leg}-o", "Context": "consult-leg", "Exten": "bridge", "Priority": "1",
            "Timeout": str(int(self.ring_s * 1000)), "CallerID": f'"consult {agent_id}" <consult>',
            "Variable": [f"SB_CALL_ID={c.call_id}", f"SB_AGENT={colleague}", f"SB_PEER={c.agent_leg}"],
            "Async": "true"})
        if failed is not None:
            await self._not_reached(c, "failed", detail=failed)
        return c

    # ------------------------------------------------------------------ the agent decides

    async def finish(self, agent_id: str, action: str) -> Consult:
        c = self.of_agent(agent_id)
        if c is None:
            raise TransferError(f"agent {agent_id} has no consult under way", error_id="no-consult")
        if action == "cancel":
            if c.state == "ringing":
                await self._not_reached(c, "cancelled")
                return c
            # the agent's leg goes back to its caller by itself (consult-agent) once the colleague's leg is gone
            self._colleague_done(c, "cancelled")
            await self._back_to_caller(c, "cancelled", redirect=False)
            await self._hangup(c, c.leg)
            return c
        if c.state != "talking":
            raise TransferError(f"the colleague has not answered yet ({c.state})", error_id="consult-not-answered")
        if action == "complete":
            await self._complete(c)
        elif action == "three_way":
            await self._three_way(c)
        else:
            raise TransferError(f"unknown consult action {action!r}", error_id="unknown-transfer-target",
                                details={"actions": list(ACTIONS)})
        return c

    async def _complete(self, c: Consult) -> None:
        c.joining = True
        # the first agent's leg must not go back to the caller when the colleague leaves it
        await self._setvars(c, c.agent_leg, {"SB_CONSULT_END": "hangup"})
        first = self.offers.talking.get(c.agent_leg)
        # a supervisor's talk with the caller is not an ACD leg: not recorded as an agent's
        recording = "" if c.supervisor else self.offers.recording_path(c.call_id, c.colleague)
        await self._setvars(c, c.leg, {"SB_PEER": c.caller_channel, "SB_AFTER": self.survey_after,
                                    "SB_REC_FILE": recording})
        why = await self._send(c, {"Action": "Redirect", "Channel": c.leg, "Context": "agent-leg", "Exten": "bridge",
                                "Priority": "1"})
        if why is not None:
            raise TransferError(f"Asterisk did not join the colleague to the caller: {why}",
                                error_id="transfer-failed")
        if c.supervisor:     # followed here until the supervisor's phone hangs up (consult.ended)
            c.state = "handed"
        else:
            c.state = "done"
            self.consults.pop(c.call_id, None)
            self._adopt_leg(c, first, recording=recording)
            self._emit(c.call_id, EventKind.ANSWERED, {"agent_id": c.colleague, "wait_s": 0.0,
                                                       "leg_uniqueid": c.leg, "consult_id": c.consult_id})
        self._emit(c.call_id, EventKind.TRANSFER_COMPLETED, {**c.record(), "result": "completed",
                                                             "took_s": round(self.clock() - c.started, 3)})
        log.info("call %s: consult completed, %s takes over from %s", c.call_id, c.colleague, c.agent_id)
        await self._hangup(c, c.agent_leg)

    async def _three_way(self, c: Consult) -> None:
        c.joining = True
        await self._setvars(c, c.caller_channel, {"SB_XFER_PEER": c.agent_leg})
        why = await self._send(c, {"Action": "Redirect", "Channel": c.caller_channel, "Context": "consult-three",
                                "Exten": "join", "Priority": "1"})
        if why is not None:
            raise TransferError(f"Asterisk did not join the caller: {why}", error_id="transfer-failed")
        c.state = "three_way"
        if not c.supervisor:
            self._adopt_leg(c, self.offers.talking.get(c.agent_leg), recording="")
        self._emit(c.call_id, EventKind.TRANSFER_COMPLETED, {**c.record(), "result": "three_way",
                                                             "took_s": round(self.clock() - c.started, 3)})
        log.info("call %s: three-way call of the caller, %s and %s", c.call_id, c.agent_id, c.colleague)

    def _adopt_leg(self, c: Consult, first: Offer | None, *, recording: str) -> None:
        """The colleague's leg becomes a talking leg of the call: its hang-up is an ordinary
        ``agent.ended`` and wrap-up, and a later transfer of the call starts from it."""
        assert c.answered is not None
        self.offers.talking[c.leg] = Offer(leg=c.leg, call_id=c.call_id, agent_id=c.colleague, started=c.started,
                                           answered=c.answered, recording=recording,
                                           caller=first.caller if first is not None else None)
        if recording:
            self._emit(c.call_id, EventKind.RECORDING, {"path": recording, "agent_id": c.colleague})

    async def _back_to_caller(self, c: Consult, reason: str, *, detail: str = "", redirect: bool = True) -> None:
        """The consult ends without a transfer: the agent's leg bridges to its caller again. Once
        the two agents were bridged, the dialplan does it (the agent's leg goes on in
        ``consult-agent`` when the colleague's leg leaves); before, ``redirect`` it."""
        c.state = "done"
        self.consults.pop(c.call_id, None)
        self._emit(c.call_id, EventKind.TRANSFER_FAILED, {**c.record(), "reason": reason, "detail": detail or None,
                                                          "then": "back_to_agent"})
        log.info("call %s: consult of %s ended (%s): %s back to the caller", c.call_id, c.colleague, reason,
                 c.agent_id)
        if redirect and c.agent_leg in self.offers.talking:
            why = await self._send(c, {"Action": "Redirect", "Channel": c.agent_leg, "Context": "agent-leg",
                                    "Exten": "bridge", "Priority": "1"})
            if why is not None:
                log.warning("call %s: cannot take %s back to the caller: %s", c.call_id, c.agent_id, why)

    # ------------------------------------------------------------------ what Asterisk says

    def handle_event(self, ev: Event) -> None:
        uid = ev.get("Uniqueid") or ""
        if not self.consults:
            return
        if ev.name == "BridgeEnter":
            back = next((c for c in self.consults.values() if c.caller_uniqueid == uid), None)
            if back is not None and back.state in ("ringing", "talking") and not back.joining:
                # the caller bridged again during the consult, not by us: the agent's leg came
                # back by itself (consult-agent's SB_CONSULT_WAIT ran out)
                self._spawn(self._wait_over(back))
                return
            c = self._by_leg(uid)
            if c is not None and c.state == "ringing":
                c.state, c.answered = "talking", self.clock()
                if not c.supervisor:
                    with contextlib.suppress(IllegalAgentAction):
                        self.desk.apply(c.colleague, st.Answer())
                self._emit(c.call_id, EventKind.CONSULT_ANSWERED, {
                    "consult_id": c.consult_id, "agent_id": c.colleague, "ring_s": round(c.answered - c.started, 3)})
                if not c.supervisor:
                    self.desk.notify("agent.answered", {"agent_id": c.colleague, "call_id": c.call_id})
        elif ev.name == "OriginateResponse":
            c = self._by_leg(uid)
            if c is not None and c.state == "ringing" and (ev.get("Response") or "") != "Success":
                result = {"3": "timeout", "5": "rejected", "8": "rejected"}.get(ev.get("Reason") or "", "")
                if result:
                    self._spawn(self._not_reached(c, result))
        elif ev.name == "Hangup":
            c = self._by_leg(uid)
            if c is not None:
                self._spawn(self._leg_gone(c, ev.get("Cause") or ""))
                return
            for c in list(self.consults.values()):
                if uid == c.caller_uniqueid:
                    self._spawn(self._caller_gone(c))

    def _by_leg(self, uid: str) -> Consult | None:
        return next((c for c in self.consults.values() if c.leg == uid), None)

    async def _not_reached(self, c: Consult, result: str, *, detail: str = "") -> None:
        if c.state != "ringing":
            return
        self._colleague_done(c, result)
        await self._back_to_caller(c, result, detail=detail)
        await self._hangup(c, c.leg)

    async def _wait_over(self, c: Consult) -> None:
        """The agent's leg waited ``max_wait_s`` and went back to its caller by itself: the
        colleague's leg is ended and the record says why."""
        if c.state not in ("ringing", "talking"):
            return
        self._colleague_done(c, "wait_over")
        await self._back_to_caller(c, "wait_over", detail=f"no outcome within {int(self.max_wait_s)} s",
                                   redirect=False)
        await self._hangup(c, c.leg)

    def _colleague_done(self, c: Consult, result: str) -> None:
        """The colleague's part ends (once): its state, ``consult.ended``, its talk time."""
        if c.colleague_done:
            return
        c.colleague_done = True
        now = self.clock()
        if c.answered is None:
            event: st.Event = st.NoAnswer() if result == "timeout" else st.Reject() if result == "rejected" \
                else st.CancelOffer()
            if not c.supervisor:
                with contextlib.suppress(IllegalAgentAction):
                    self.desk.apply(c.colleague, event, reason=result)
            self._emit(c.call_id, EventKind.CONSULT_ENDED, {"consult_id": c.consult_id, "agent_id": c.colleague,
                                                            "result": result, "ring_s": round(now - c.started, 3),
                                                            "talk_s": 0.0})
            return
        talk = now - c.answered
        self._emit(c.call_id, EventKind.CONSULT_ENDED, {"consult_id": c.consult_id, "agent_id": c.colleague,
                                                        "result": result, "talk_s": round(talk, 3)})
        if c.supervisor:     # no ACD agent: no state, no agent.ended (its time is in consult.ended)
            return
        with contextlib.suppress(IllegalAgentAction):
            self.desk.apply(c.colleague, st.Hangup())
        self.desk.last_call[c.colleague] = c.call_id
        self._emit(c.call_id, EventKind.AGENT_ENDED, {"agent_id": c.colleague, "talk_s": round(talk, 3),
                                                      "cause": "consult"})

    async def _leg_gone(self, c: Consult, cause: str) -> None:
        if c.state == "ringing":
            await self._not_reached(c, result_of_cause(cause) or "failed")
            return
        if c.state == "handed":              # the supervisor who took the caller hung up
            self.consults.pop(c.call_id, None)
            self._colleague_done(c, "completed")
            return
        if c.leg in self.offers.talking:     # completed or three-way: an ordinary leg now (offers ends it)
            if c.state != "three_way":       # a three-way call is followed until the caller leaves
                self.consults.pop(c.call_id, None)
            return
        self._colleague_done(c, "colleague_hung_up")
        if c.state == "talking":             # the agent's leg goes back to its caller by itself
            await self._back_to_caller(c, "colleague_hung_up", redirect=False)

    async def _caller_gone(self, c: Consult) -> None:
        """The caller hung up while on hold (or in the three-way call): both agents' legs end."""
        state = c.state
        c.state = "done"
        self.consults.pop(c.call_id, None)     # the colleague's Hangup that follows matches nothing
        if state in ("ringing", "talking"):
            self._emit(c.call_id, EventKind.TRANSFER_FAILED, {**c.record(), "reason": "caller_gone", "then": None})
            log.info("call %s: the caller hung up during the consult with %s", c.call_id, c.colleague)
        if c.leg not in self.offers.talking:   # not yet an ordinary leg of the call (three-way: it is)
            self._colleague_done(c, "caller_gone")
        await self._hangup(c, c.leg)
        await self._hangup(c, c.agent_leg)

    # ------------------------------------------------------------------ AMI

    def _leg_id(self, call_id: str) -> str:
        """The colleague's leg uniqueid: on the caller's node, named like Asterisk's (``<node>-``)
        with several nodes, so every action on it finds its node."""
        tail = uuid.uuid4().hex[:20]
        node = node_hint(self.ami, call_id).get("node")
        return f"{node}-{int(time.time())}.c{tail}" if node else f"sbc-{tail}"

    async def _send(self, c: Consult, action: dict[str, Any]) -> str | None:
        """None when Asterisk did it, else why not (on the call's node, with several)."""
        try:
            resp = await self.ami.send(action, timeout=5, **node_hint(self.ami, c.call_id))
        except (AmiError, TimeoutError) as exc:
            return str(exc) or type(exc).__name__
        return None if resp.success else (resp.message or "refused")

    async def _setvars(self, c: Consult, channel: str, values: dict[str, str]) -> None:
        for name, value in values.items():
            why = await self._send(c, {"Action": "Setvar", "Channel": channel, "Variable": name, "Value": value})
            if why is not None:
                log.warning("cannot set %s on %s: %s", name, channel, why)

    async def _hangup(self, c: Consult, channel: str) -> None:
        await self._send(c, {"Action": "Hangup", "Channel": channel, "Cause": "16"})

    def _spawn(self, coro: Any) -> None:
        self.offers.spawn(coro)         # the offer lifecycle's tasks: cancelled when the ACD stops
