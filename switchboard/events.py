"""Call-timeline events: what the IVR, the ACD and the call tracker emit, and
what the store writer persists, metrics count and websockets forward.

One event = one step in one call's life. ``(call_id, seq)`` is its identity:
the producer numbers events per call from 1 upwards, so a replay of the same
event writes once (idempotent), and ``seq`` gives the order within a call.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


class EventKind(enum.StrEnum):
    CALL_STARTED = "call.started"          # data: caller, dialed, channel, language
    IVR_STEP = "ivr.step"                  # data: flow, flow_version, node, kind, entered, left, input
    IVR_LOOKUP = "ivr.lookup"              # data: by, found, participant_id
    QUEUE_JOINED = "queue.joined"          # data: topic, province, province_source, priority, language
    QUEUE_RESUMED = "queue.resumed"        # data: as queue.joined, joined_wall (a caller in line taken back)
    QUEUE_OVERFLOW = "queue.overflow"      # data: tier (province|region|nation)
    OFFER = "agent.offer"                  # data: agent_id, leg_uniqueid
    OFFER_RESULT = "agent.offer_result"    # data: agent_id, result (answered|timeout|rejected|caller_gone|failed)
    ANSWERED = "call.answered"             # data: agent_id, wait_s
    RECORDING = "call.recording"           # data: path
    TRANSFER = "call.transfer"             # data: target (the number as dialled)
    TRANSFER_REFUSED = "transfer.refused"  # data: number, reason, detail (the number policy said no)
    TRANSFER_REQUESTED = "transfer.requested"  # data: kind (topic|agent|number), from_agent, target, by
    TRANSFER_COMPLETED = "transfer.completed"  # data: kind, from_agent, target, to_agent | number, fell_back
    TRANSFER_FAILED = "transfer.failed"        # data: kind, from_agent, target, reason (then where the caller went)
    CONSULT_OFFER = "consult.offer"            # data: consult_id, agent_id (the colleague), leg_uniqueid, from_agent
    CONSULT_ANSWERED = "consult.answered"      # data: consult_id, agent_id, ring_s
    CONSULT_ENDED = "consult.ended"            # data: consult_id, agent_id, result, ring_s, talk_s
    SUPERVISOR_ENDED = "supervisor.ended"      # data: supervisor_id, talk_s (a caller put through to a supervisor's phone)
    CALLBACK_REQUESTED = "callback.requested"  # data: number, callback_id
    CALLBACK_COMPLETED = "callback.completed"  # data: callback_id, result
    CALLBACK_REFUSED = "callback.refused"      # data: reason (numbers.Refusal), number (normalised), detail
    SESSION_SEAT = "session.seat"          # data: session, outcome (joined|full|over): a Q&A session's seat
    SURVEY = "call.survey"                 # data: score
    AGENT_ENDED = "agent.ended"            # data: agent_id, talk_s
    WRAP_UP_ENDED = "agent.wrap_up_ended"  # data: agent_id, wrap_up_s, disposition
    HANDED_TO_FALLBACK = "call.handed_to_fallback"  # data: reason, node (where the caller was), detail
    HUNG_UP_BY_SERVICE = "call.hung_up_by_service"  # data: reason, node, cause (Q.850), detail
    REFUSED_OVERLOAD = "call.refused_overload"  # data: reason, reasons, action, calls, agi_ack_p99_s, loop_lag_p99_s
    CALL_ENDED = "call.ended"              # data: outcome, cause, node (where the caller left), ...


@dataclass(frozen=True, slots=True)
class CallEvent:
    call_id: str            # the Linkedid of the caller's channel (never a channel name)
    seq: int                # 1, 2, 3 ... per call
    ts: datetime            # timezone-aware UTC
    kind: str               # an EventKind value
    data: dict[str, Any] = field(default_factory=dict)

    def key(self) -> tuple[str, int]:
        return (self.call_id, self.seq)
