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
``failed``          anything else (no flow for the number, an internal error)
"""

from __future__ import annotations

import logging
import time
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


def adopted_seq_base(now: float | None = None) -> int:
    return max(1, int(((now or time.time()) - SEQ_EPOCH) * 4))


class CallEventBus:
    def __init__(self, sinks: Iterable[Sink] = ()) -> None:
        self.sinks: list[Sink] = list(sinks)
        self._seq: dict[str, int] = {}
        self.emitted_total = 0
        self.sink_errors = 0

    def seed(self, call_id: str, base: int) -> None:
        """Continue a call's numbering above ``base`` (re-adopted calls)."""
        self._seq[call_id] = max(self._seq.get(call_id, 0), base)

    def forget(self, call_id: str) -> None:
        self._seq.pop(call_id, None)

    def emit(self, call_id: str, kind: EventKind | str, data: dict[str, Any]) -> CallEvent:
        seq = self._seq.get(call_id, 0) + 1
        self._seq[call_id] = seq
        event = CallEvent(call_id=call_id, seq=seq, ts=datetime.now(UTC), kind=str(kind), data=dict(data))
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
    agents: list[str] = field(default_factory=list)

    def outcome(self) -> tuple[str, str]:
        """(outcome, node)."""
        if self.answered:
            return "answered", ""
        if self.callback:
            return "callback", ""
        if self.queued:
            return "abandoned_queue", ""
        if self.after_hours:
            return "after_hours", self.flow_node
        if self.transferred:
            return "transferred", ""
        if self.flow_end == "hangup" and self.hangup_reason not in ("no_input", "error"):
            return "self_service", self.flow_node
        if self.flow_end in ("caller_hangup", "hangup", ""):
            return "abandoned_ivr", self.flow_node
        return "failed", self.flow_node


AFTER_HOURS_NODES = ("after_hours", "holiday_closed")


class CallBook:
    """Live calls by id; closes each with ``call.ended`` when its caller hangs up."""

    def __init__(self, bus: CallEventBus) -> None:
        self.bus = bus
        self.calls: dict[str, CallFacts] = {}
        self._by_uniqueid: dict[str, str] = {}

    def emit(self, call_id: str, kind: EventKind | str, data: dict[str, Any]) -> None:
        facts = self.calls.get(call_id)
        if facts is not None:
            if kind == EventKind.QUEUE_JOINED:
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
        self.bus.emit(call_id, kind, data)

    def started(self, *, call_id: str, uniqueid: str, caller: str, dialed: str, channel: str,
                language: str = "") -> CallFacts:
        facts = self.calls.get(call_id)
        if facts is None:
            facts = CallFacts(call_id=call_id, uniqueid=uniqueid, caller=caller, dialed=dialed,
                              started=time.monotonic())
            self.calls[call_id] = facts
            self._by_uniqueid[uniqueid] = call_id
            self.emit(call_id, EventKind.CALL_STARTED, {"caller": caller, "dialed": dialed, "channel": channel,
                                                        "language": language, "uniqueid": uniqueid})
        return facts

    def adopt(self, *, call_id: str, uniqueid: str, caller: str, dialed: str) -> CallFacts:
        """A call found waiting after a restart: continue its record."""
        facts = CallFacts(call_id=call_id, uniqueid=uniqueid, caller=caller, dialed=dialed,
                          started=time.monotonic(), queued=True)
        self.calls[call_id] = facts
        self._by_uniqueid[uniqueid] = call_id
        self.bus.seed(call_id, adopted_seq_base())
        return facts

    def flow_ended(self, call_id: str, *, reason: str, node: str, hangup_reason: str = "") -> None:
        facts = self.calls.get(call_id)
        if facts is None:
            return
        if facts.in_survey:
            return
        facts.flow_end, facts.flow_node, facts.hangup_reason = reason, node, hangup_reason
        if hangup_reason == "callback":
            facts.callback = True

    def channel_hung_up(self, uniqueid: str, *, cause: str = "", cause_txt: str = "") -> CallFacts | None:
        call_id = self._by_uniqueid.pop(uniqueid, None)
        if call_id is None:
            return None
        facts = self.calls.pop(call_id, None)
        if facts is None:
            return None
        outcome, node = facts.outcome()
        self.emit(call_id, EventKind.CALL_ENDED, {
            "outcome": outcome, "node": node or None, "cause": cause_txt or cause or None,
            "duration_s": round(time.monotonic() - facts.started, 3)})
        log.info("call %s ended: %s%s", call_id, outcome, f" at {node}" if node else "")
        self.bus.forget(call_id)
        return facts
