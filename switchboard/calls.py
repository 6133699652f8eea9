"""One call's record: numbering its timeline events and closing it with an outcome.

:class:`CallEventBus` stamps every event of a call with the next ``seq`` and
the time, and hands it to the sinks (the store writer, metrics, live
websocket). :class:`CallBook` keeps what is known about each live call (IVR
result, queue, answer, callback) and, when the caller's channel hangs up,
emits ``call.ended`` with the outcome as the reports define it
(``docs/reports.md``):

``answered``        an agent answered
``callback``        the caller asked to be called back (while waiting or after hours)
``abandoned_queue`` joined a queue, hung up before an agent answered
``after_hours``     reached the closed/holiday path and left without a callback
``abandoned_ivr``   hung up (or gave no input) in the menus; ``node`` says where
``self_service``    the IVR served the call (e.g. the contribution lookup) and said goodbye
``transferred``     the IVR transferred the call to another number
``fallback``        the service could not go on serving the call (an AGI step failed or
                    timed out, or the reconciliation found the caller stranded in AGI) and
                    handed it to the fallback queue (``call.handed_to_fallback``); ``node``
                    says where the caller was
``overload``        a new caller refused past capacity (``call.refused_overload``: the
                    reason and the figures): heard "all lines are busy" and was hung up,
                    or was handed straight to the fallback queue (``overload.action``)
``failed``          anything else (no flow for the number, an internal error, a caller hung
                    up by the service with a cause because even the hand-over failed)

The record closes only when Asterisk says the caller's channel is gone: its
``Hangup`` event, or the periodic reconciliation finding the channel no longer
listed by Asterisk (cause ``reconciled_gone``). Never on a timer while the
channel lives.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from switchboard.events import CallEvent, EventKind

log = logging.getLogger("switchboard.calls")

Sink = Callable[[CallEvent], None]

#: seq numbers of a call adopted after a service restart start above this base,
#: derived from the time, so they sort after everything the previous process wrote.
SEQ_EPOCH = 1_700_000_000

#: how many calls' screen-pop facts :class:`CallBook` keeps at most (the oldest go first)
SCREEN_MAX_CALLS = 5000


def adopted_seq_base(now: float | None = None) -> int:
    return max(1, int(((now or time.time()) - SEQ_EPOCH) * 4))


class CallEventBus:
    """Numbers each call's events 1, 2, 3... and hands them to the sinks.

    A call's counter outlives its record (events such as the agent's wrap-up
    or a callback attempt come after ``call.ended``): counters are kept for
    the ``max_calls`` most recently active calls.
    """

    def __init__(self, sinks: Iterable[Sink] = (), *, max_calls: int = 200_000) -> None:
        self.sinks: list[Sink] = list(sinks)
        self.max_calls = max_calls
        self._seq: OrderedDict[str, int] = OrderedDict()
        self.emitted_total = 0
        self.sink_errors = 0

    def seed(self, call_id: str, base: int) -> None:
        """Continue a call's numbering above ``base`` (re-adopted calls)."""
        self._seq[call_id] = max(self._seq.get(call_id, 0), base)

    def knows(self, call_id: str) -> bool:
        return call_id in self._seq

    def forget(self, call_id: str) -> None:
        self._seq.pop(call_id, None)

    def emit(self, call_id: str, kind: EventKind | str, data: dict[str, Any], *,
             ts: datetime | None = None) -> CallEvent:
        """Number and hand on one event; ``ts`` when it happened earlier than now (a call
        found in Asterisk by a take-over: when its channel appeared)."""
        seq = self._seq.pop(call_id, 0) + 1
        self._seq[call_id] = seq
        if len(self._seq) > self.max_calls:
            self._seq.popitem(last=False)
        event = CallEvent(call_id=call_id, seq=seq, ts=ts or datetime.now(UTC), kind=str(kind), data=dict(data))
        self.emitted_total += 1
        for sink in self.sinks:
            try:
                sink(event)
            except Exception:
                self.sink_errors += 1
                log.exception("call %s: event sink failed on %s", call_id, event.kind)
        return event


@dataclass
class CallFacts:
    call_id: str
    uniqueid: str             # the caller's channel
    caller: str
    dialed: str
    started: float
    queued: bool = False
    answered: bool = False
    callback: bool = False
    after_hours: bool = False
    transferred: bool = False
    flow_end: str = ""        # the IVR's end reason
    flow_node: str = ""       # where the flow ended
    hangup_reason: str = ""   # the reason of the flow's hangup node, if any
    in_survey: bool = False
    fallback: str = ""        # why the service handed the call to the fallback queue (if it did)
    hung_up_by_service: str = ""   # why the service hung the caller up with a cause (if it did)
    overload: str = ""        # why the caller was refused past capacity (if it was)
    node_lost: str = ""       # the Asterisk node the call was on, when that node was lost
    agents: list[str] = field(default_factory=list)

    def outcome(self) -> tuple[str, str]:
        """(outcome, node)."""
        if self.node_lost:        # the call died with its Asterisk node, whatever it was doing
            return "failed", self.flow_node
        if self.answered:
            return "answered", ""
        if self.callback:
            return "callback", ""
        if self.overload:
            return "overload", ""
        if self.fallback:
            return "fallback", self.flow_node
        if self.hung_up_by_service:
            return "failed", self.flow_node
        if self.queued:
            return "abandoned_queue", ""
        if self.after_hours:
            return "after_hours", self.flow_node
        if self.transferred:
            return "transferred", ""
        if self.flow_end == "hangup" and self.hangup_reason not in UNSERVED_HANGUPS:
            return "self_service", self.flow_node
        if self.flow_end == "conference":   # heard a Q&A session (docs/sessions.md): served, no agent
            return "self_service", self.flow_node
        if self.flow_end in ("caller_hangup", "hangup", ""):
            return "abandoned_ivr", self.flow_node
        return "failed", self.flow_node


AFTER_HOURS_NODES = ("after_hours", "holiday_closed")
#: reasons of hang-up nodes that end a flow without serving the caller (the rest: self-service)
UNSERVED_HANGUPS = ("no_input", "error")


class CallBook:
    """Live calls by id; closes each with ``call.ended`` when its caller hangs up.

    Asterisk's ``Hangup`` usually arrives before the IVR runner has noticed the
    hang-up and reported where its flow ended. So when the caller's channel
    hangs up while the flow is still running, ``call.ended`` waits for the
    flow's end (at most ``flow_grace_s`` after the hang-up), and carries the
    right node and outcome. Should the flow not report by then, the record
    still closes (the channel is gone) at the node ``current_node`` says the
    caller was at. Nothing closes a record while its channel lives.
    """

    def __init__(self, bus: CallEventBus, *, flow_grace_s: float = 5.0,
                 current_node: Callable[[str], str] | None = None) -> None:
        self.bus = bus
        self.flow_grace_s = flow_grace_s
        self.current_node = current_node   # the caller channel's uniqueid -> the flow node it is at
        #: call id -> the Asterisk node it is on (``AmiNodes.node_for``; None with one Asterisk)
        self.asterisk_node: Callable[[str], str | None] | None = None
        self.calls: dict[str, CallFacts] = {}
        self._by_uniqueid: dict[str, str] = {}
        self._refused_open = 0   # open records of callers refused past capacity (live_calls leaves them out)
        self._hung_up: dict[str, tuple[str, str, Any]] = {}   # call id -> (cause, cause text, timer)
        # what an agent's screen pop shows of a call, by call id: kept from the call's events (any call
        # id, callbacks dialed after their record closed too) until its ``call.ended``
        self._screen: dict[str, dict[str, Any]] = {}

    def emit(self, call_id: str, kind: EventKind | str, data: dict[str, Any], *,
             ts: datetime | None = None) -> None:
        facts = self.calls.get(call_id)
        if facts is not None:
            if kind in (EventKind.QUEUE_JOINED, EventKind.QUEUE_RESUMED):
                facts.queued = True
            elif kind == EventKind.ANSWERED:
                facts.answered = True
                facts.agents.append(str(data.get("agent_id", "")))
            elif kind == EventKind.CALLBACK_REQUESTED:
                facts.callback = True
            elif kind == EventKind.TRANSFER:
                facts.transferred = True
            elif kind == EventKind.IVR_STEP and str(data.get("node", "")).startswith(AFTER_HOURS_NODES):
                facts.after_hours = True
        self._track_screen(self.bus.emit(call_id, kind, data, ts=ts))

    def call_info(self, call_id: str) -> dict[str, Any]:
        """What the screen pop shows of a call: caller, IVR path, SI code, topic, province,
        language, offered and answered times (those known so far); {} when none."""
        return self._screen.get(call_id, {})

    def _track_screen(self, event: CallEvent) -> None:
        info = self._screen.setdefault(event.call_id, {})
        d = event.data
        if event.kind == "call.started":
            info["caller"] = d.get("caller", "")
        elif event.kind == "ivr.step":
            info.setdefault("ivr_path", []).append(d.get("node"))
        elif event.kind == "ivr.lookup" and d.get("found"):
            info["si_code"] = d.get("participant_id")
        elif event.kind in ("queue.joined", "queue.resumed"):
            info.update(topic=d.get("topic"), province=d.get("province"), language=d.get("language"))
        elif event.kind == "agent.offer":
            info["offered_at"] = event.ts
        elif event.kind == "call.answered":
            info["answered_at"] = event.ts
        elif event.kind == "call.ended":
            self._screen.pop(event.call_id, None)
        while len(self._screen) > SCREEN_MAX_CALLS:
            self._screen.pop(next(iter(self._screen)))

    def started(self, *, call_id: str, uniqueid: str, caller: str, dialed: str, channel: str,
                language: str = "") -> CallFacts:
        facts = self.calls.get(call_id)
        if facts is None:
            facts = CallFacts(call_id=call_id, uniqueid=uniqueid, caller=caller, dialed=dialed,
                              started=time.monotonic())
            self.calls[call_id] = facts
            self._by_uniqueid[uniqueid] = call_id
            data = {"caller": caller, "dialed": dialed, "channel": channel, "language": language,
                    "uniqueid": uniqueid}
            node = self.asterisk_node(call_id) if self.asterisk_node is not None else None
            if node:
                data["asterisk_node"] = node
            self.emit(call_id, EventKind.CALL_STARTED, data)
        return facts

    def adopt(self, *, call_id: str, uniqueid: str, caller: str, dialed: str, answered: bool = False,
              age_s: float = 0.0) -> CallFacts:
        """A call found after a restart, waiting (or ``answered``: bridged to an agent): continue its
        record. ``age_s``: how long its channel has existed, for the ``duration_s`` of ``call.ended``."""
        facts = CallFacts(call_id=call_id, uniqueid=uniqueid, caller=caller, dialed=dialed,
                          started=time.monotonic() - age_s, queued=True, answered=answered)
        old = self.calls.get(call_id)
        if old is not None and old.overload:
            self._refused_open -= 1
        self.calls[call_id] = facts
        self._by_uniqueid[uniqueid] = call_id
        self.bus.seed(call_id, adopted_seq_base())
        return facts

    def live_calls(self) -> int:
        """Callers the service holds now, not counting those refused past capacity. O(1): the
        overload gate asks it for every new caller (issue 12: a scan of every call was a hot spot)."""
        return len(self.calls) - self._refused_open

    def refused_overload(self, call_id: str, *, reason: str, action: str, figures: dict[str, Any]) -> None:
        """A new caller refused past capacity (outcome ``overload``); the record stays open until
        the channel hangs up."""
        facts = self.calls.get(call_id)
        if facts is not None:
            if not facts.overload:
                self._refused_open += 1
            facts.overload = reason
        self.emit(call_id, EventKind.REFUSED_OVERLOAD, {"reason": reason, "action": action, **figures})

    def knows_channel(self, uniqueid: str) -> bool:
        return uniqueid in self._by_uniqueid

    def open_calls(self, *, started_before: float | None = None) -> dict[str, str]:
        """Open records whose channel has not hung up yet: call id -> the caller channel's uniqueid
        (only those opened before ``started_before``, a ``time.monotonic()``, when given)."""
        return {cid: f.uniqueid for cid, f in self.calls.items()
                if cid not in self._hung_up and (started_before is None or f.started < started_before)}

    def node_of(self, call_id: str) -> str:
        """Where the caller is in the flow now (the flow's end node once it ended)."""
        facts = self.calls.get(call_id)
        if facts is None:
            return ""
        if facts.flow_end or self.current_node is None:
            return facts.flow_node
        return self.current_node(facts.uniqueid) or facts.flow_node

    def handed_to_fallback(self, call_id: str, *, reason: str, node: str, detail: str = "") -> None:
        """The service handed the caller to the fallback queue: recorded now; the record stays open
        until the channel hangs up (outcome ``fallback``)."""
        facts = self.calls.get(call_id)
        if facts is not None:
            facts.fallback = reason
            facts.flow_end = facts.flow_end or "fallback"
            facts.flow_node = node or facts.flow_node
        self.emit(call_id, EventKind.HANDED_TO_FALLBACK, {"reason": reason, "node": node or None,
                                                         "detail": detail or None})

    def hung_up_by_service(self, call_id: str, *, reason: str, node: str, cause: int, detail: str = "") -> None:
        """The service hung the caller up with ``cause`` (the hand-over was impossible)."""
        facts = self.calls.get(call_id)
        if facts is not None and cause != 16:   # 16 (normal clearing): after the flow ended, as it would
            facts.hung_up_by_service = reason
            facts.flow_end = facts.flow_end or "failed"
            facts.flow_node = node or facts.flow_node
        self.emit(call_id, EventKind.HUNG_UP_BY_SERVICE, {"reason": reason, "node": node or None, "cause": cause,
                                                         "detail": detail or None})

    def channel_gone(self, call_id: str, *, cause: str) -> CallFacts | None:
        """The reconciliation found the record's channel gone from Asterisk (its ``Hangup`` was
        never seen, e.g. during an AMI outage): close it now."""
        pending = self._hung_up.pop(call_id, None)
        if pending is not None and pending[2] is not None:
            pending[2].cancel()
        return self._close(call_id, cause, "")

    def node_lost(self, node: str) -> list[str]:
        """The Asterisk ``node`` is lost (``AmiNodes``): close every record of a call on it now,
        outcome ``failed``, cause ``node_lost`` (no ``Hangup`` will ever come). Their ids."""
        if self.asterisk_node is None:
            return []
        closed = []
        for call_id in [cid for cid in self.calls if self.asterisk_node(cid) == node]:
            facts = self.calls.get(call_id)
            if facts is None:
                continue
            facts.node_lost = node
            pending = self._hung_up.pop(call_id, None)
            if pending is not None and pending[2] is not None:
                pending[2].cancel()
            self._close(call_id, "node_lost", "")
            closed.append(call_id)
        if closed:
            log.error("Asterisk node %s lost: %d call record(s) closed as failed (node_lost)", node, len(closed))
        return closed

    def flow_ended(self, call_id: str, *, reason: str, node: str, hangup_reason: str = "") -> None:
        facts = self.calls.get(call_id)
        if facts is None:
            return
        if facts.in_survey:
            return
        facts.flow_end, facts.flow_node, facts.hangup_reason = reason, node, hangup_reason
        if hangup_reason == "callback":
            facts.callback = True
        pending = self._hung_up.pop(call_id, None)
        if pending is not None:
            cause, cause_txt, timer = pending
            if timer is not None:
                timer.cancel()
            self._close(call_id, cause, cause_txt)

    def channel_hung_up(self, uniqueid: str, *, cause: str = "", cause_txt: str = "") -> CallFacts | None:
        call_id = self._by_uniqueid.get(uniqueid)
        if call_id is None:
            return None
        facts = self.calls.get(call_id)
        if facts is None:
            self._by_uniqueid.pop(uniqueid, None)
            return None
        flow_running = not facts.flow_end and not facts.answered and not facts.in_survey
        if flow_running and self.flow_grace_s > 0:
            timer = None
            with contextlib.suppress(RuntimeError):   # no running loop: close at once
                timer = asyncio.get_running_loop().call_later(
                    self.flow_grace_s, self._close_pending, call_id)
            if timer is not None:
                self._hung_up[call_id] = (cause, cause_txt, timer)
                return facts
        return self._close(call_id, cause, cause_txt)

    def _close_pending(self, call_id: str) -> None:
        pending = self._hung_up.pop(call_id, None)
        if pending is not None:
            log.warning("call %s: the channel hung up %.0fs ago and the flow did not report its end; "
                        "closing the record at %s", call_id, self.flow_grace_s, self.node_of(call_id) or "-")
            self._close(call_id, pending[0], pending[1])

    def _close(self, call_id: str, cause: str, cause_txt: str) -> CallFacts | None:
        facts = self.calls.pop(call_id, None)
        if facts is None:
            return None
        if facts.overload:
            self._refused_open -= 1
        self._by_uniqueid.pop(facts.uniqueid, None)
        if not facts.flow_end and self.current_node is not None:
            facts.flow_node = self.current_node(facts.uniqueid) or facts.flow_node
        outcome, node = facts.outcome()
        self.emit(call_id, EventKind.CALL_ENDED, {
            "outcome": outcome, "node": node or None, "cause": cause_txt or cause or None,
            "duration_s": round(time.monotonic() - facts.started, 3)})
        log.info("call %s ended: %s%s", call_id, outcome, f" at {node}" if node else "")
        return facts
