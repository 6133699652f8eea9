"""Transfers: an agent passes its answered caller on, blind, without leaving anyone stranded.

Owns: the transfers under way (by call id) and their records (``transfer.requested``,
``transfer.completed``, ``transfer.failed``, ``transfer.refused``), for three kinds:

* ``topic``: the caller goes back into **our** line for another topic, same province,
  **keeping the original join time and priority** (so it is served before callers who
  joined later); it hears the ``connecting`` prompt, then the hold loop (music,
  announcements) as any waiting caller;
* ``agent``: the same, but the call is first offered to the named agent only, once and
  for at most ``transfer_ring_s``; unanswered, rejected, or that agent not ready: the
  reservation ends and the caller is in the line of its topic like any other;
* ``supervisor``: a supervisor's own phone (``supervisors:`` of the agent file: configured
  endpoints only, never free-form); the dialplan rings it for at most ``transfer_ring_s``,
  and a supervisor who does not answer (or whose phone is busy or away) sends the caller
  back into our line for its topic, as for a named agent;
* ``number``: an entry of the transfer directory (``deploy/directory.yaml``, every number
  checked by the number policy at load); the dialplan dials it on the trunk, and a number
  that does not answer sends the caller back into our line for its topic.

How, over AMI: ``Redirect`` of the caller's channel out of the bridge into the dialplan
context ``transfer-line`` (``AGI(agi:async)``: :meth:`TransferDesk.requeue` runs there)
, ``transfer-out`` (the number) or ``transfer-supervisor`` (the supervisor's phone, named in
the channel variable ``SB_XFER_SUP`` set just before). The first agent's leg, left alone, ends its ``Bridge``
and hangs up: its talk time and wrap-up are its own (``agent.ended``,
``agent.wrap_up_ended``). The next agent's answer is a normal ``call.answered`` on the
same call record, and the survey after it is that agent's.

Must not touch: routing (the facade asks :meth:`holds` whether a waiting call is kept out
of the router's pass), agent states except through the desk and the offer lifecycle.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from switchboard.acd import agent_state as st
from switchboard.acd.agents import SupervisorRecord
from switchboard.acd.desk import AgentDesk
from switchboard.acd.directory import Directory, DirectoryEntry
from switchboard.acd.line import CallerLine
from switchboard.acd.model import AcdError, Emit, Offer, Waiter
from switchboard.acd.offers import OfferLifecycle
from switchboard.acd.router import Assignment, Tier
from switchboard.acd.spy import ENDPOINT_RE
from switchboard.ami.agi import AgiHangup, agi_quote
from switchboard.ami.client import AmiError, node_hint
from switchboard.ami.protocol import Event
from switchboard.events import EventKind

log = logging.getLogger("switchboard.acd.transfers")

KINDS = ("topic", "agent", "number", "supervisor")
#: the kinds the dialplan dials itself (DialEnd says whether it was answered)
DIALLED = ("number", "supervisor")
#: the prompt a transferred caller hears before the hold music
TRANSFER_PROMPT = "connecting"


class TransferError(AcdError):
    """A transfer that cannot be made; ``error_id`` is the API's stable id."""

    error_id = "transfer-refused"

    def __init__(self, message: str, *, error_id: str | None = None, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        if error_id is not None:
            self.error_id = error_id
        self.details = details or {}


class NotOnCall(TransferError):
    error_id = "agent-not-on-call"


class UnknownTarget(TransferError):
    error_id = "unknown-transfer-target"


@dataclass
class PendingTransfer:
    """One caller on its way from one agent to the next."""

    transfer_id: str
    call_id: str
    kind: str                 # topic | agent | number | supervisor
    target: str               # the topic, the agent id, the directory code or the supervisor id
    from_agent: str
    by: str                   # who asked (the agent, or a supervisor's name)
    topic: str                # the line the caller (re-)enters: the new topic, or its own
    province: str | None
    priority: int
    language: str
    joined_wall: float        # when the caller first joined our line (kept across transfers)
    caller: str
    channel: str
    uniqueid: str
    variables: dict[str, str] = field(default_factory=dict)
    entry: DirectoryEntry | None = None
    supervisor: SupervisorRecord | None = None
    requested: float = 0.0    # monotonic
    fell_back: bool = False   # the number or supervisor did not answer: the caller went back into the line

    def record(self) -> dict[str, Any]:
        return {"transfer_id": self.transfer_id, "kind": self.kind, "target": self.target,
                "from_agent": self.from_agent, "by": self.by}


@dataclass(frozen=True, slots=True)
class _LineRequest:
    """What :meth:`CallerLine.enqueue` reads of a caller entering the line (the IVR's Enqueue fields)."""

    topic: str
    province: str
    priority: int
    language: str
    province_source: str
    variables: dict[str, str]
    reserved_for: str | None = None
    reserved_s: float = 0.0


class TransferDesk:
    """Blind transfers of answered calls: to a topic's line, a named agent, a directory number."""

    def __init__(self, *, ami: Any, desk: AgentDesk, line: CallerLine, offers: OfferLifecycle, emit: Emit,
                 directory: Directory, clock: Callable[[], float], wall: Callable[[], float],
                 schedule_route: Callable[[], None], ring_s: float, sound_prefix: str = "",
                 line_context: str = "transfer-line", out_context: str = "transfer-out",
                 supervisor_context: str = "transfer-supervisor",
                 supervisors: tuple[SupervisorRecord, ...] = ()) -> None:
        self.ami = ami
        self.desk = desk
        self.line = line
        self.offers = offers
        self._emit = emit
        self.directory = directory
        self.clock = clock
        self.wall = wall
        self._schedule_route = schedule_route
        self.ring_s = ring_s
        self.sound_prefix = sound_prefix.rstrip("/")
        self.line_context = line_context
        self.out_context = out_context
        self.supervisor_context = supervisor_context
        # only configured endpoints are ever rung (the agent file's supervisors: list)
        self.supervisors = {sup.id: sup for sup in supervisors if sup.active and ENDPOINT_RE.fullmatch(sup.sip_endpoint)}
        self.pending: dict[str, PendingTransfer] = {}
        # a caller put through to a supervisor's phone: either leg's uniqueid -> (call, supervisor, answered at)
        self.supervised: dict[str, tuple[str, str, float]] = {}

    # ------------------------------------------------------------------ views

    def topics(self) -> list[str]:
        """Every topic some agent has a skill for (where a caller can be transferred)."""
        return sorted({t for rec in self.desk.records.values() for t, p in rec.skills.items() if p > 0})

    def ready_colleagues(self, agent_id: str) -> list[str]:
        return [a for a, s in sorted(self.desk.states.items())
                if a != agent_id and s.status is st.AgentStatus.READY]

    def talking_offer(self, agent_id: str) -> Offer | None:
        return next((o for o in self.offers.talking.values() if o.agent_id == agent_id and not o.callback_id), None)

    # ------------------------------------------------------------------ asking

    def _refuse(self, call_id: str | None, kind: str, target: str, agent_id: str, by: str, exc: TransferError) -> None:
        if call_id:
            self._emit(call_id, EventKind.TRANSFER_REFUSED, {
                "kind": kind, "target": target, "from_agent": agent_id, "by": by, "reason": exc.error_id,
                "detail": str(exc)})
        log.info("transfer of %s's call (%s %s) refused: %s", agent_id, kind, target, exc)

    async def blind(self, agent_id: str, *, kind: str, target: str, by: str = "") -> PendingTransfer:
        """Pass ``agent_id``'s answered call on; raises :class:`TransferError` (nothing changed then)."""
        by = by or agent_id
        self.desk.record(agent_id)                     # UnknownAgent for a stranger
        offer = self.talking_offer(agent_id)
        call_id = offer.call_id if offer is not None else None
        try:
            p = self._plan(agent_id, offer, kind=kind, target=target, by=by)
        except TransferError as exc:
            self._refuse(call_id, kind, target, agent_id, by, exc)
            raise
        self.pending[p.call_id] = p
        self._emit(p.call_id, EventKind.TRANSFER_REQUESTED, {
            **p.record(), "topic": p.topic, "number": p.entry.number if p.entry else None})
        log.info("call %s: %s transfers it to %s %s", p.call_id, agent_id, kind, target)
        if p.kind == "number":
            assert p.entry is not None
            where = {"Context": self.out_context, "Exten": p.entry.dial}
        elif p.kind == "supervisor":
            assert p.supervisor is not None
            where = {"Context": self.supervisor_context, "Exten": "ring"}
            for name, value in (("SB_XFER_SUP", p.supervisor.sip_endpoint), ("SB_XFER_RING", str(int(self.ring_s)))):
                try:
                    await self.ami.send({"Action": "Setvar", "Channel": p.channel, "Variable": name, "Value": value},
                                        **node_hint(self.ami, p.call_id), timeout=5)
                except (AmiError, TimeoutError) as exc:   # the dialplan then sends the caller back to the line
                    log.warning("call %s: cannot set %s: %s", p.call_id, name, exc)
        else:
            where = {"Context": self.line_context, "Exten": "requeue"}
        try:
            resp = await self.ami.send({"Action": "Redirect", "Channel": p.channel, **where, "Priority": "1"},
                                       **node_hint(self.ami, p.call_id),
                                       timeout=5)
            ok, why = resp.success, resp.message
        except (AmiError, TimeoutError) as exc:
            ok, why = False, str(exc)
        if not ok:
            self.pending.pop(p.call_id, None)
            self._failed(p, "redirect_failed", detail=why)
            raise TransferError(f"Asterisk did not move the caller: {why}", error_id="transfer-failed")
        return p

    def _plan(self, agent_id: str, offer: Offer | None, *, kind: str, target: str, by: str) -> PendingTransfer:
        if offer is None:
            raise NotOnCall(f"agent {agent_id} is not talking to a caller")
        w: Waiter | None = offer.caller
        if w is None:
            raise TransferError("the caller's place in line is not known (a call taken over after a restart "
                                "whose channel does not hold it); it cannot be transferred",
                                error_id="call-not-transferable")
        if offer.call_id in self.pending:
            raise TransferError("a transfer of this call is already under way", error_id="transfer-in-progress")
        topic, entry, supervisor = w.call.topic, None, None
        if kind == "topic":
            if target not in self.topics():
                raise UnknownTarget(f"no agent serves topic {target!r}", details={"topics": self.topics()})
            topic = target
        elif kind == "agent":
            if target == agent_id or target not in self.desk.records:
                raise UnknownTarget(f"no colleague {target!r} to transfer to")
        elif kind == "supervisor":
            supervisor = self.supervisors.get(target)
            if supervisor is None:
                raise UnknownTarget(f"no supervisor {target!r} to transfer to",
                                    details={"supervisors": sorted(self.supervisors)})
        elif kind == "number":
            entry = self.directory.find(target)
            if entry is None:
                raise UnknownTarget(f"{target!r} is not in the transfer directory", error_id="not-in-directory",
                                    details={"directory": [e.code for e in self.directory.entries]})
        else:
            raise UnknownTarget(f"unknown transfer kind {kind!r}", details={"kinds": list(KINDS)})
        return PendingTransfer(
            transfer_id=f"tr-{uuid.uuid4().hex[:12]}", call_id=offer.call_id, kind=kind, target=target,
            from_agent=agent_id, by=by, topic=topic, province=w.call.province, priority=w.call.priority,
            language=w.call.language, joined_wall=w.joined_wall, caller=w.caller, channel=w.channel,
            uniqueid=w.uniqueid, variables=dict(w.variables), entry=entry, supervisor=supervisor,
            requested=self.clock())

    # ------------------------------------------------------------------ outcomes

    def _failed(self, p: PendingTransfer, reason: str, *, detail: str = "", then: str = "") -> None:
        self._emit(p.call_id, EventKind.TRANSFER_FAILED, {**p.record(), "reason": reason, "detail": detail or None,
                                                          "then": then or None})
        log.info("call %s: transfer to %s %s failed (%s)%s", p.call_id, p.kind, p.target, reason,
                 f", then {then}" if then else "")

    def _completed(self, p: PendingTransfer, *, to_agent: str | None = None, fell_back: bool = False) -> None:
        self._emit(p.call_id, EventKind.TRANSFER_COMPLETED, {
            **p.record(), "to_agent": to_agent, "number": p.entry.number if p.entry else None,
            "to_supervisor": p.supervisor.id if p.supervisor and not fell_back else None,
            "fell_back": fell_back, "took_s": round(self.clock() - p.requested, 3)})
        log.info("call %s: transfer to %s %s completed%s", p.call_id, p.kind, p.target,
                 f" (answered by {to_agent})" if to_agent else "")

    def handle_event(self, ev: Event) -> None:
        """``DialEnd`` of a caller transferred to a number or a supervisor: answered, or not (the dialplan then
        sends the caller back to our line, where :meth:`requeue` takes it). ``Hangup`` of a caller
        on its way (not yet in our line): the transfer failed, ``caller_gone``."""
        uid = ev.get("Uniqueid") or ""
        if ev.name == "Hangup":
            talked = self.supervised.pop(uid, None)
            if talked is not None:      # the caller or the supervisor hung up: the supervisor's talk ends
                call_id, sup_id, since = talked
                self.supervised = {k: v for k, v in self.supervised.items() if v[0] != call_id}
                self._emit(call_id, EventKind.SUPERVISOR_ENDED, {
                    "supervisor_id": sup_id, "talk_s": round(max(0.0, self.clock() - since), 3)})
                return
            gone = next((p for p in self.pending.values() if p.uniqueid == uid), None)
            if gone is not None and gone.call_id not in self.line.waiting:
                self.pending.pop(gone.call_id, None)
                self._failed(gone, "caller_gone")
            return
        if ev.name != "DialEnd":
            return
        p = next((p for p in self.pending.values() if p.kind in DIALLED and p.uniqueid == uid), None)
        if p is None:
            return
        status = ev.get("DialStatus") or ""
        if status == "ANSWER":
            self.pending.pop(p.call_id, None)
            self._completed(p)
            if p.kind == "supervisor" and p.supervisor is not None:
                answered = (p.call_id, p.supervisor.id, self.clock())
                for leg in (uid, ev.get("DestUniqueid") or ""):
                    if leg:
                        self.supervised[leg] = answered
        else:
            p.variables["dial_status"] = status.lower() or "failed"

    # ------------------------------------------------------------------ the caller back in line

    def knows(self, call_id: str) -> bool:
        return call_id in self.pending

    async def requeue(self, session: Any) -> None:
        """The caller arrived in ``transfer-line`` (AGI): the prompt, then our line again with
        its original join time and priority. Returns when it is bridged, leaves, or hangs up."""
        call_id = session.linkedid
        p = self.pending.get(call_id)
        if p is None:
            raise TransferError(f"call {call_id}: no transfer under way for this caller")
        exten = session.env.get("agi_extension", "")
        reserved: str | None = None
        if exten == "back":      # the number or supervisor did not answer: back to the line of its topic
            p.fell_back = True
            self._failed(p, p.variables.pop("dial_status", "") or "no_answer",
                         detail=f"supervisor {p.target}" if p.kind == "supervisor" else "", then="line")
        elif p.kind == "agent":
            reserved = p.target
        try:
            await session.execute(
                f"STREAM FILE {agi_quote(f'{self.sound_prefix}/{p.language}/{TRANSFER_PROMPT}')} \"\"", timeout=30)
        except AgiHangup:
            if self.pending.pop(call_id, None) is not None:
                self._failed(p, "caller_gone")
            return
        variables = {k: v for k, v in p.variables.items() if k != "dial_status"}
        request = _LineRequest(topic=p.topic, province=p.province or "", priority=p.priority, language=p.language,
                               province_source="transfer", variables={**variables, "joined_wall": f"{p.joined_wall:.3f}"},
                               reserved_for=reserved, reserved_s=self.ring_s)
        try:
            outcome = await self.line.enqueue(session, request)
        except AgiHangup:
            if self.pending.pop(call_id, None) is not None:
                self._failed(p, "caller_gone")
            return
        self.pending.pop(call_id, None)
        if outcome == "bridged":
            to_agent = self.offers.current_agent(call_id)
            self._completed(p, to_agent=to_agent, fell_back=p.fell_back or (p.kind == "agent" and to_agent != p.target))
            return
        self._failed(p, outcome or "left")
        if outcome == "callback":
            try:
                await session.execute("HANGUP", timeout=5)
            except AgiHangup:
                pass

    # ------------------------------------------------------------------ the named agent's turn

    def holds(self, w: Waiter, now: float) -> bool:
        """Is this waiting call kept out of the router's pass (its named agent's turn)? Makes the
        one offer to the named agent; ends the reservation when that offer ended unanswered, the
        agent cannot take it, or the time is up (the call is then in its topic's line)."""
        agent_id = w.reserved_for
        if agent_id is None:
            return False
        state = self.desk.states.get(agent_id)
        reason = ""
        if w.reserved_offered:
            reason = "not_answered"
        elif now >= w.reserved_until:
            reason = "timeout"
        elif state is None or not st.offerable(state):
            reason = "agent_unavailable"
        if reason:
            w.reserved_for = None
            p = self.pending.get(w.call.call_id)
            if p is not None:
                self._failed(p, reason, detail=f"agent {agent_id}", then="line")
            return False
        rec = self.desk.records[agent_id]
        self.offers.offer(Assignment(call_id=w.call.call_id, agent_id=agent_id, tier=Tier.NATION,
                                     proficiency=rec.skills.get(w.call.topic, 0)))
        w.reserved_offered = True
        return True
