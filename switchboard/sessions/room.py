"""Who is in a session's conference now: participants, the raised-hands queue, seats.

Pure (no I/O, no clock: every change carries its time). The service feeds it ConfBridge's
events (join, leave, mute, unmute), the ``*1`` hand raises and the seats it reserves for
callers on their way from the menu into the conference; it reads back the views, the
hands in order and, when someone leaves, their attendance figures.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

__all__ = ["Arrival", "Participant", "Room"]


@dataclass
class Participant:
    uniqueid: str
    channel: str
    call_id: str
    caller: str
    role: str                      # caller | moderator
    joined_at: datetime
    muted: bool = True
    hand_raised_at: datetime | None = None   # the first *1
    hand_up: bool = False          # in the raised-hands queue now
    hands: int = 0
    unmuted_at: datetime | None = None       # first given the floor
    floor_since: datetime | None = None
    unmuted_s: float = 0.0
    via: str = "menu"              # menu | invited | moderator: how they came in
    participant_id: str = ""       # an invited participant's insurance code, when known

    def view(self) -> dict[str, Any]:
        return {"uniqueid": self.uniqueid, "channel": self.channel, "call_id": self.call_id, "caller": self.caller,
                "role": self.role, "joined_at": self.joined_at.isoformat(), "muted": self.muted,
                "hand_up": self.hand_up, "hands": self.hands, "via": self.via,
                "unmuted_at": self.unmuted_at.isoformat() if self.unmuted_at else None}


@dataclass(frozen=True, slots=True)
class Arrival:
    """How a caller with a seat comes in: from the menu, or invited (the number the
    invitation called: the leg's own caller id is the hotline's)."""

    via: str = "menu"
    caller: str = ""
    participant_id: str = ""


@dataclass
class Room:
    session_id: str
    capacity: int
    participants: dict[str, Participant] = field(default_factory=dict)   # by uniqueid, in join order
    hands: list[str] = field(default_factory=list)                       # uniqueids, first raised first
    reserved: dict[str, datetime] = field(default_factory=dict)          # call_id -> when (on the way in)
    arriving: dict[str, Arrival] = field(default_factory=dict)           # call_id -> how (an invited leg)
    hands_total: int = 0

    # ------------------------------------------------------------ seats

    def callers(self) -> list[Participant]:
        return [p for p in self.participants.values() if p.role == "caller"]

    def seats_taken(self) -> int:
        return len(self.callers()) + len(self.reserved)

    def reserve(self, call_id: str, at: datetime, arrival: Arrival | None = None) -> bool:
        """A seat for a caller who pressed 5 (or an invited participant who answered); False
        when the session is full."""
        if call_id in self.reserved:
            return True
        if self.seats_taken() >= self.capacity:
            return False
        self.reserved[call_id] = at
        if arrival is not None:
            self.arriving[call_id] = arrival
        return True

    def release(self, call_id: str) -> None:
        self.reserved.pop(call_id, None)
        self.arriving.pop(call_id, None)

    def expire(self, before: datetime) -> list[str]:
        """Drop seats reserved before ``before`` whose caller never arrived."""
        gone = [c for c, at in self.reserved.items() if at < before]
        for c in gone:
            del self.reserved[c]
            self.arriving.pop(c, None)
        return gone

    # ------------------------------------------------------------ ConfBridge's events

    def joined(self, *, uniqueid: str, channel: str, call_id: str, caller: str, moderator: bool, muted: bool,
               at: datetime) -> Participant:
        self.reserved.pop(call_id, None)
        arrival = self.arriving.pop(call_id, None)
        p = self.participants.get(uniqueid)
        if p is None:
            via = "moderator" if moderator else arrival.via if arrival else "menu"
            p = self.participants[uniqueid] = Participant(
                uniqueid, channel, call_id, (arrival.caller if arrival and arrival.caller else caller),
                "moderator" if moderator else "caller", at, muted=muted, via=via,
                participant_id=arrival.participant_id if arrival else "")
        return p

    def restore_hands(self, raised: list[tuple[float, str]]) -> list[str]:
        """The raised-hands queue read back after a restart: ``(when raised, uniqueid)`` of the
        callers whose hand is up (their channel says so); first raised first. Returns the queue."""
        order = {u: i for i, u in enumerate(self.participants)}
        for _, uniqueid in sorted(raised, key=lambda r: (r[0], order.get(r[1], 0))):
            p = self.participants.get(uniqueid)
            if p is None or p.role != "caller" or not p.muted or uniqueid in self.hands:
                continue
            p.hand_up = True
            self.hands.append(uniqueid)
        return list(self.hands)

    def left(self, uniqueid: str, at: datetime) -> Participant | None:
        p = self.participants.pop(uniqueid, None)
        if p is None:
            return None
        self._close_floor(p, at)
        p.hand_up = False
        if uniqueid in self.hands:
            self.hands.remove(uniqueid)
        return p

    def raise_hand(self, uniqueid: str, at: datetime) -> bool:
        """A caller pressed *1: into the queue (once; again after being given the floor)."""
        p = self.participants.get(uniqueid)
        if p is None or p.role != "caller":
            return False
        p.hands += 1
        self.hands_total += 1
        if p.hand_raised_at is None:
            p.hand_raised_at = at
        if not p.hand_up and p.muted:
            p.hand_up = True
            self.hands.append(uniqueid)
        return True

    def unmuted(self, uniqueid: str, at: datetime) -> Participant | None:
        p = self.participants.get(uniqueid)
        if p is None:
            return None
        if p.muted and p.role == "caller":
            p.muted = False
            p.floor_since = at
            if p.unmuted_at is None:
                p.unmuted_at = at
        p.muted = False
        p.hand_up = False
        if uniqueid in self.hands:
            self.hands.remove(uniqueid)
        return p

    def muted(self, uniqueid: str, at: datetime) -> Participant | None:
        p = self.participants.get(uniqueid)
        if p is None:
            return None
        self._close_floor(p, at)
        p.muted = True
        return p

    def _close_floor(self, p: Participant, at: datetime) -> None:
        if p.floor_since is not None:
            p.unmuted_s += max(0.0, (at - p.floor_since).total_seconds())
            p.floor_since = None

    # ------------------------------------------------------------ views

    def find(self, key: str) -> Participant | None:
        """A participant by uniqueid, channel name or call id."""
        if key in self.participants:
            return self.participants[key]
        return next((p for p in self.participants.values() if key in (p.channel, p.call_id)), None)

    def hand_queue(self) -> list[Participant]:
        return [self.participants[u] for u in self.hands if u in self.participants]

    def view(self) -> dict[str, Any]:
        return {"participants": [p.view() for p in self.participants.values()],
                "hands": [p.view() for p in self.hand_queue()],
                "callers": len(self.callers()), "reserved": len(self.reserved), "capacity": self.capacity,
                "hands_total": self.hands_total}
