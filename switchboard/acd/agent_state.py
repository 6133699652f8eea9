"""Agent state: one pure state machine, one transition table.

::

    logged_out --Login--> ready --Offer--> offered --Answer--> on_call --Hangup--> wrap_up
                            ^                 |                                      |
                            +--NoAnswer/------+                                      |
                            |  Reject/Cancel                                         |
                            +---------------------------WrapUpDone-------------------+
    ready --Pause(reason)--> paused --Resume--> ready
    on_call / wrap_up --Pause(reason)--> (pause pending) --WrapUpDone--> paused

Rules that are not a plain table lookup, all applied in :func:`transition`:

* ``NoAnswer`` and ``Reject`` count as unanswered offers. The ``no_answer_limit``-th
  in a row pauses the agent with reason ``no-answer`` instead of returning to
  ready. ``Answer`` resets the count; ``CancelOffer`` (the caller hung up while
  the agent's phone rang, or the originate failed for a reason that is not the
  agent's) does not count.
* ``Pause`` during a call or wrap-up does not interrupt it: the reason is kept
  and the agent goes to paused, not ready, when wrap-up ends.
* Wrap-up holds the agent across all skills for ``wrap_up_s``; the shell asks
  :func:`due_event` on its timer and feeds back ``WrapUpDone``.
* The device state from Asterisk (``DeviceStateChange``) is orthogonal to the
  status: any status accepts ``DeviceChanged``. An agent is offerable only when
  ready *and* its device is ``NOT_INUSE`` (:func:`offerable`), so an unreachable
  or busy softphone is never offered a call.

Time is passed in (``now``, seconds on any monotonic scale); nothing here reads
a clock. States and events are frozen dataclasses.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

__all__ = [
    "TRANSITIONS",
    "AgentRules",
    "AgentState",
    "AgentStateError",
    "AgentStatus",
    "Answer",
    "CancelOffer",
    "DeviceChanged",
    "DeviceState",
    "Event",
    "Hangup",
    "IllegalTransition",
    "Login",
    "Logout",
    "NoAnswer",
    "NotOfferable",
    "Offer",
    "Pause",
    "Reject",
    "Resume",
    "WrapUpDone",
    "due_event",
    "logged_out",
    "offerable",
    "transition",
]

NO_ANSWER_REASON: Final = "no-answer"


class AgentStatus(enum.StrEnum):
    LOGGED_OUT = "logged_out"
    READY = "ready"
    OFFERED = "offered"
    ON_CALL = "on_call"
    WRAP_UP = "wrap_up"
    PAUSED = "paused"


class DeviceState(enum.StrEnum):
    """Asterisk device states (``DeviceStateChange`` ``State:`` values)."""

    UNKNOWN = "UNKNOWN"
    NOT_INUSE = "NOT_INUSE"
    INUSE = "INUSE"
    BUSY = "BUSY"
    INVALID = "INVALID"
    UNAVAILABLE = "UNAVAILABLE"
    RINGING = "RINGING"
    RINGINUSE = "RINGINUSE"
    ONHOLD = "ONHOLD"

    @classmethod
    def parse(cls, value: str) -> DeviceState:
        """Asterisk's spelling (``NOT_INUSE``, ``Not in use``...) to the enum; unknown -> UNKNOWN."""
        key = value.strip().upper().replace(" ", "_")
        aliases = {"NOT_IN_USE": "NOT_INUSE", "IN_USE": "INUSE", "RING_IN_USE": "RINGINUSE", "ON_HOLD": "ONHOLD"}
        key = aliases.get(key, key)
        try:
            return cls(key)
        except ValueError:
            return cls.UNKNOWN


#: Only an idle, reachable softphone is offered a call.
OFFERABLE_DEVICE_STATES: Final = frozenset({DeviceState.NOT_INUSE})
#: Device states that mean the endpoint cannot be reached at all.
UNREACHABLE_DEVICE_STATES: Final = frozenset({DeviceState.UNAVAILABLE, DeviceState.INVALID})


# ----------------------------------------------------------------- events


@dataclass(frozen=True, slots=True)
class Login:
    pass


@dataclass(frozen=True, slots=True)
class Logout:
    pass


@dataclass(frozen=True, slots=True)
class Offer:
    call_id: str


@dataclass(frozen=True, slots=True)
class Answer:
    pass


@dataclass(frozen=True, slots=True)
class NoAnswer:
    """Ring timeout (counted as unanswered)."""


@dataclass(frozen=True, slots=True)
class Reject:
    """The agent declined or was busy (counted as unanswered)."""


@dataclass(frozen=True, slots=True)
class CancelOffer:
    """The offer ended for a reason that is not the agent's (caller gone, originate failed)."""


@dataclass(frozen=True, slots=True)
class Hangup:
    pass


@dataclass(frozen=True, slots=True)
class WrapUpDone:
    pass


@dataclass(frozen=True, slots=True)
class Pause:
    reason: str


@dataclass(frozen=True, slots=True)
class Resume:
    pass


@dataclass(frozen=True, slots=True)
class DeviceChanged:
    device: DeviceState


Event = (
    Login | Logout | Offer | Answer | NoAnswer | Reject | CancelOffer | Hangup | WrapUpDone | Pause
    | Resume | DeviceChanged
)


# ----------------------------------------------------------------- errors


class AgentStateError(Exception):
    """The caller misused the agent state machine (a bug in the shell, not the peer)."""


class IllegalTransition(AgentStateError):
    def __init__(self, status: AgentStatus, event: Event) -> None:
        super().__init__(f"{type(event).__name__} is not allowed in state {status.value}")
        self.status = status
        self.event = event


class NotOfferable(AgentStateError):
    def __init__(self, state: AgentState) -> None:
        super().__init__(
            f"agent {state.agent_id} cannot be offered a call (status {state.status.value}, "
            f"device {state.device.value})"
        )
        self.state = state


# ----------------------------------------------------------------- the table

S = AgentStatus
_ANY: Final = tuple(AgentStatus)

#: (status, event type) -> next status. Everything not listed is illegal.
TRANSITIONS: Final[Mapping[tuple[AgentStatus, type[Event]], AgentStatus]] = {
    (S.LOGGED_OUT, Login): S.READY,
    (S.READY, Offer): S.OFFERED,
    (S.READY, Pause): S.PAUSED,
    (S.READY, Logout): S.LOGGED_OUT,
    (S.OFFERED, Answer): S.ON_CALL,
    (S.OFFERED, NoAnswer): S.READY,        # or PAUSED('no-answer') at the limit
    (S.OFFERED, Reject): S.READY,          # or PAUSED('no-answer') at the limit
    (S.OFFERED, CancelOffer): S.READY,
    (S.ON_CALL, Hangup): S.WRAP_UP,
    (S.ON_CALL, Pause): S.ON_CALL,         # pause pending, taken after wrap-up
    (S.WRAP_UP, WrapUpDone): S.READY,      # or PAUSED when a pause is pending
    (S.WRAP_UP, Pause): S.WRAP_UP,         # pause pending
    (S.WRAP_UP, Logout): S.LOGGED_OUT,
    (S.PAUSED, Resume): S.READY,
    (S.PAUSED, Pause): S.PAUSED,           # change of reason
    (S.PAUSED, Logout): S.LOGGED_OUT,
    **{(s, DeviceChanged): s for s in _ANY},
}


@dataclass(frozen=True, slots=True)
class AgentRules:
    wrap_up_s: float = 15.0
    no_answer_limit: int = 3

    def __post_init__(self) -> None:
        if self.wrap_up_s < 0:
            raise ValueError("wrap_up_s must not be negative")
        if self.no_answer_limit < 1:
            raise ValueError("no_answer_limit must be at least 1")


@dataclass(frozen=True, slots=True)
class AgentState:
    agent_id: str
    status: AgentStatus
    since: float                         # when the status was entered
    device: DeviceState = DeviceState.UNKNOWN
    pause_reason: str | None = None      # set in PAUSED
    pending_pause: str | None = None     # asked for during a call or wrap-up
    no_answer_streak: int = 0
    call_id: str | None = None           # offered or current call
    wrap_up_until: float | None = None

    @property
    def reachable(self) -> bool:
        return self.device not in UNREACHABLE_DEVICE_STATES

    @property
    def ready_since(self) -> float | None:
        """When the agent became ready (for longest-idle ordering), None when not ready."""
        return self.since if self.status is AgentStatus.READY else None


def logged_out(agent_id: str, now: float, device: DeviceState = DeviceState.UNKNOWN) -> AgentState:
    return AgentState(agent_id=agent_id, status=AgentStatus.LOGGED_OUT, since=now, device=device)


def offerable(state: AgentState) -> bool:
    """Ready, with an idle reachable device."""
    return state.status is AgentStatus.READY and state.device in OFFERABLE_DEVICE_STATES


def transition(state: AgentState, event: Event, now: float, rules: AgentRules | None = None) -> AgentState:
    """The state after ``event`` at ``now``; raises :class:`IllegalTransition` / :class:`NotOfferable`."""
    rules = rules or AgentRules()
    target = TRANSITIONS.get((state.status, type(event)))
    if target is None:
        raise IllegalTransition(state.status, event)
    if isinstance(event, DeviceChanged):
        return dataclasses.replace(state, device=event.device)
    if isinstance(event, Offer) and not offerable(state):
        raise NotOfferable(state)

    fields: dict[str, object] = {}
    if isinstance(event, Offer):
        fields["call_id"] = event.call_id
    elif isinstance(event, Answer):
        fields["no_answer_streak"] = 0
    elif isinstance(event, (NoAnswer, Reject)):
        streak = state.no_answer_streak + 1
        fields.update(call_id=None, no_answer_streak=streak)
        if streak >= rules.no_answer_limit:
            target = S.PAUSED
            fields.update(pause_reason=NO_ANSWER_REASON, no_answer_streak=0)
    elif isinstance(event, CancelOffer):
        fields["call_id"] = None
    elif isinstance(event, Hangup):
        fields.update(call_id=None, wrap_up_until=now + rules.wrap_up_s)
    elif isinstance(event, WrapUpDone):
        fields["wrap_up_until"] = None
        if state.pending_pause is not None:
            target = S.PAUSED
            fields.update(pause_reason=state.pending_pause, pending_pause=None)
    elif isinstance(event, Pause):
        if target is S.PAUSED:
            fields["pause_reason"] = event.reason
        else:
            fields["pending_pause"] = event.reason
    elif isinstance(event, Resume):
        fields.update(pause_reason=None, no_answer_streak=0)
    elif isinstance(event, Logout):
        fields.update(pause_reason=None, pending_pause=None, wrap_up_until=None, no_answer_streak=0)

    if target is not S.PAUSED and target is not state.status:
        fields.setdefault("pause_reason", None)
    if target is not state.status:
        fields["since"] = now
    return dataclasses.replace(state, status=target, **fields)  # type: ignore[arg-type]


def due_event(state: AgentState, now: float) -> Event | None:
    """The timed event that is due at ``now`` (wrap-up over), for the shell's timer."""
    if state.status is AgentStatus.WRAP_UP and state.wrap_up_until is not None and now >= state.wrap_up_until:
        return WrapUpDone()
    return None
