"""The campaign model: what a campaign is, the results of an attempt, the dialling modes.

Owns the frozen definition of a campaign (as validated by ``campaigns.loader``), its
JSON form (stored in ``campaigns.definition``) and the vocabulary shared by the store,
the dialer, the API and the reports. Pure: no I/O.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["CAMPAIGN_ID", "Campaign", "Connect", "Mode", "Result", "RetryRules", "State", "Targets"]

#: A campaign id: lower-case letters, digits, - and _ (also checked by the database).
CAMPAIGN_ID = r"[a-z][a-z0-9_-]{0,47}"


class Mode(enum.StrEnum):
    """How a campaign dials.

    ``message``: the answered contact hears the flow (no agent reserved; "press 1" queues
    the contact like an inbound caller). ``progressive``: a number is dialled only when an
    agent of the campaign's topic (and province) is ready and reserved for it; the answered
    contact is bridged to that agent (caller first, or agent first: see :class:`Connect`).
    ``preview``: the agent sees the contact first and starts the call (the agent's phone
    rings first, then the contact's number).
    """

    MESSAGE = "message"
    PROGRESSIVE = "progressive"
    PREVIEW = "preview"


class Connect(enum.StrEnum):
    """Who a progressive campaign rings first.

    ``caller_first``: the contact's number; the answered contact hears the flow and an agent
    counted for it (an answer with no agent left is *abandoned*). ``agent_first``: a ready
    agent of the topic is reserved and rung; only once the agent answers is the contact's
    number dialled and bridged to that agent (no flow; an answer is never abandoned).
    """

    CALLER_FIRST = "caller_first"
    AGENT_FIRST = "agent_first"


class State(enum.StrEnum):
    RUNNING = "running"
    PAUSED = "paused"
    STOPPED = "stopped"       # by a supervisor: nothing more is dialled; may not be resumed
    FINISHED = "finished"     # every contact done


class Result(enum.StrEnum):
    """The result of one attempt (stable: stored, reported, a metric label)."""

    ANSWERED = "answered"                          # answered; the flow ended otherwise (hung up mid-way)
    NO_ANSWER = "no_answer"
    BUSY = "busy"
    FAILED = "failed"                              # congestion, unreachable, refused by the trunk
    OPTED_OUT = "opted_out"                        # key 9: the number is on the do-not-call list
    TRANSFERRED_TO_AGENT = "transferred_to_agent"
    MESSAGE_HEARD_TO_END = "message_heard_to_end"
    NOT_DIALLED = "not_dialled"                    # claimed, but the Originate never went out
    INTERRUPTED = "interrupted"                    # dialled, then the service died: result unknown


#: Results that end the contact whatever the attempts left.
FINAL_RESULTS = frozenset({Result.ANSWERED, Result.OPTED_OUT, Result.TRANSFERRED_TO_AGENT,
                           Result.MESSAGE_HEARD_TO_END, Result.INTERRUPTED})
#: Results that may be retried (with the spacing of ``RetryRules``).
RETRY_RESULTS = (Result.NO_ANSWER, Result.BUSY, Result.FAILED)


@dataclass(frozen=True, slots=True)
class RetryRules:
    """Spacing in seconds before the next attempt after each retryable result; 0 = no retry."""

    no_answer_s: float = 7200.0
    busy_s: float = 900.0
    failed_s: float = 3600.0

    def spacing(self, result: Result) -> float:
        return {Result.NO_ANSWER: self.no_answer_s, Result.BUSY: self.busy_s,
                Result.FAILED: self.failed_s}.get(result, 0.0)


@dataclass(frozen=True, slots=True)
class Targets:
    """Where the contacts come from: a CSV file, or a named selection over ``participants``."""

    csv: str = ""                                   # path, relative to the campaign file's folder
    selection: str = ""                             # a name of store.campaigns.SELECTIONS
    params: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Campaign:
    campaign_id: str
    flow: str                                       # a flow of ivr_flows/ played when answered
    mode: Mode = Mode.MESSAGE
    connect: Connect = Connect.CALLER_FIRST         # progressive only (preview is always agent first)
    description: str = ""
    topic: str = "general"                          # agents' skill (progressive, preview, "press 1")
    province: str = ""                              # agents' province ("" = any)
    window: str = "07:30-20:00"                     # calling window, callee's local time
    timezone: str = "Asia/Ho_Chi_Minh"
    public_holidays: bool = True                    # no calls on Vietnamese public holidays
    max_attempts: int = 3
    retry: RetryRules = RetryRules()
    abandon_limit: float = 0.03                     # abandoned / answered, per campaign and local day
    ring_s: float = 30.0
    caller_id: str = ""                             # the number the contact sees ("" = trunk default)
    targets: Targets = Targets()

    @property
    def agent_first(self) -> bool:
        """The agent's phone rings first and the contact is dialled once the agent answered."""
        return self.mode is Mode.PREVIEW or (self.mode is Mode.PROGRESSIVE and self.connect is Connect.AGENT_FIRST)

    def to_json(self) -> dict[str, Any]:
        return {
            "campaign_id": self.campaign_id, "flow": self.flow, "mode": self.mode.value,
            "connect": self.connect.value,
            "description": self.description, "topic": self.topic, "province": self.province,
            "window": self.window, "timezone": self.timezone, "public_holidays": self.public_holidays,
            "max_attempts": self.max_attempts,
            "retry": {"no_answer": self.retry.no_answer_s, "busy": self.retry.busy_s, "failed": self.retry.failed_s},
            "abandon_limit": self.abandon_limit, "ring_s": self.ring_s, "caller_id": self.caller_id,
            "targets": {"csv": self.targets.csv, "selection": self.targets.selection,
                        "params": dict(self.targets.params)},
        }

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Campaign:
        """Back from ``to_json`` (the stored definition, already validated)."""
        r = d.get("retry") or {}
        t = d.get("targets") or {}
        return cls(
            campaign_id=str(d["campaign_id"]), flow=str(d["flow"]), mode=Mode(d.get("mode", "message")),
            connect=Connect(d.get("connect", "caller_first")),
            description=str(d.get("description", "")), topic=str(d.get("topic", "general")),
            province=str(d.get("province", "")), window=str(d.get("window", "07:30-20:00")),
            timezone=str(d.get("timezone", "Asia/Ho_Chi_Minh")), public_holidays=bool(d.get("public_holidays", True)),
            max_attempts=int(d.get("max_attempts", 3)),
            retry=RetryRules(float(r.get("no_answer", 7200)), float(r.get("busy", 900)), float(r.get("failed", 3600))),
            abandon_limit=float(d.get("abandon_limit", 0.03)), ring_s=float(d.get("ring_s", 30)),
            caller_id=str(d.get("caller_id", "")),
            targets=Targets(str(t.get("csv", "")), str(t.get("selection", "")), dict(t.get("params") or {})))


@dataclass(frozen=True, slots=True)
class SelectionParam:
    lo: int
    hi: int
    default: int


#: The named selections over ``participants`` a campaign may target, with their integer
#: parameters (the SQL of each is in ``store.campaigns.SELECTION_SQL``, same names). Never
#: free SQL: a campaign names one of these.
SELECTIONS: Mapping[str, Mapping[str, SelectionParam]] = {
    # health cards whose validity ends within `days` days (and not already expired)
    "cards_expiring": {"days": SelectionParam(1, 365, 30)},
    # contributions stopped or paused for at least `months` months
    "contribution_stopped": {"months": SelectionParam(1, 120, 3)},
}
