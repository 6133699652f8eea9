"""The ACD's shared vocabulary: the records its run-time parts pass to each other.

Owns: the dataclasses of a waiting caller (``Waiter``), an offer to an agent (``Offer``),
a callback keeping its place (``Callback``), the read-only snapshots handed to the API,
the ACD's errors, Asterisk's Originate reason and hang-up cause codes, and the channel
variable names a waiting caller carries for re-adoption.

Must not touch: anything with I/O or timers, and nothing of ``switchboard.acd`` but the
pure modules (``router``). Every other ACD module imports this one, never the reverse.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import Any

from switchboard.acd.router import WaitingCall
from switchboard.events import EventKind

#: Originate ``Reason`` codes (Asterisk's AST_CONTROL_* of the outbound leg).
REASON_NO_ANSWER = "3"
REASON_ANSWERED = "4"
REASON_BUSY = "5"
REASON_CONGESTION = "8"

#: Channel variables set on a waiting caller, so a restarted service can re-adopt it.
VAR_CALL_ID = "SB_CALL_ID"
VAR_TOPIC = "SB_TOPIC"
VAR_PROVINCE = "SB_PROVINCE"
VAR_PRIORITY = "SB_PRIORITY"
VAR_LANGUAGE = "SB_LANGUAGE"
VAR_JOINED = "SB_JOINED"         # wall-clock epoch seconds when the caller joined the line
VAR_CALLER = "SB_CALLER"

Emit = Callable[[str, EventKind, dict[str, Any]], None]


#: Hang-up causes (Q.850) of an agent leg that never answered, and what they mean for the offer.
_CAUSE_RESULTS = {"17": "rejected", "21": "rejected", "18": "timeout", "19": "timeout"}


def result_of_cause(cause: str) -> str:
    return _CAUSE_RESULTS.get(cause, "")


class AcdError(Exception):
    """An ACD request that cannot be carried out (unknown agent, illegal state)."""


class UnknownAgent(AcdError):
    pass


class IllegalAgentAction(AcdError):
    pass


@dataclass
class Offer:
    leg: str                  # Uniqueid of the agent leg (ChannelId of the Originate)
    call_id: str
    agent_id: str
    started: float            # monotonic
    answered: float | None = None   # the agent answered (a callback: before the number is dialled)
    callback_id: str | None = None   # an offer of a callback: agent first, then the caller's number
    dial_status: str = ""     # a callback: DialEnd status of the call to the number
    cause: str = ""           # hang-up cause of the leg, once Asterisk reports one
    failed_at: float | None = None   # OriginateResponse said failure without saying why
    recording: str = ""       # the file the dialplan's MixMonitor writes (Asterisk's path)
    caller: Waiter | None = None   # once answered: the caller as it waited (a transfer puts it back in line)


class LegsByAgent(MutableMapping[str, Offer]):
    """Offers by the leg's Uniqueid that also know each agent's legs, so the call an agent
    is on is found without a scan of every leg (an offer's agent never changes)."""

    def __init__(self) -> None:
        self._legs: dict[str, Offer] = {}
        self._by_agent: dict[str, dict[str, Offer]] = {}

    def __getitem__(self, leg: str) -> Offer:
        return self._legs[leg]

    def __setitem__(self, leg: str, offer: Offer) -> None:
        if leg in self._legs:
            del self[leg]
        self._legs[leg] = offer
        self._by_agent.setdefault(offer.agent_id, {})[leg] = offer

    def __delitem__(self, leg: str) -> None:
        offer = self._legs.pop(leg)
        legs = self._by_agent.get(offer.agent_id)
        if legs is not None:
            legs.pop(leg, None)
            if not legs:
                del self._by_agent[offer.agent_id]

    def __iter__(self) -> Iterator[str]:
        return iter(self._legs)

    def __len__(self) -> int:
        return len(self._legs)

    def __contains__(self, leg: object) -> bool:
        return leg in self._legs

    def first_of(self, agent_id: str) -> Offer | None:
        """The agent's oldest leg still here, if any."""
        legs = self._by_agent.get(agent_id)
        return next(iter(legs.values())) if legs else None


def new_callback_id() -> str:
    return f"cb-{uuid.uuid4().hex[:16]}"


@dataclass
class Callback:
    """A caller's request to be called back, keeping its place in line."""

    callback_id: str
    number: str
    attempts: int = 0         # calls to the number made so far
    not_before: float = 0.0   # monotonic: no new attempt before (retry delay)


@dataclass
class Waiter:
    """One caller waiting for an agent (or a callback keeping its place)."""

    call: WaitingCall
    caller: str
    channel: str              # the caller's channel name (Bridge target)
    uniqueid: str             # the caller's channel Uniqueid
    joined_wall: float
    session: Any = None       # the AGI session (None for a callback)
    province_source: str = ""
    variables: dict[str, str] = field(default_factory=dict)
    offer: Offer | None = None
    offers: int = 0
    tier_announced: int = 0
    done: asyncio.Future[str] | None = None
    hold_task: asyncio.Task[None] | None = None
    callback: Callback | None = None   # set once the caller asked for a callback and left the line
    callback_refused: str = ""         # why the number cannot be called back (no more offers to press 1)
    reserved_for: str | None = None    # a transfer to a named agent: offered to that agent only, first
    reserved_until: float = 0.0        # monotonic: the reservation ends then, whatever happened
    reserved_offered: bool = False     # the named agent's one offer was made


@dataclass(frozen=True, slots=True)
class AgentSnapshot:
    agent_id: str
    name: str
    endpoint: str
    status: str
    since_wall: float
    device: str
    pause_reason: str | None
    call_id: str | None
    skills: Mapping[str, int]
    home_province: str
    languages: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class WaitingSnapshot:
    call_id: str
    caller: str
    topic: str
    province: str | None
    priority: int
    language: str
    joined_wall: float
    wait_s: float
    tier: str
    offered_to: str | None
