"""Call tracker: channels and calls from AMI events. Pure: no asyncio, no I/O.

Keys are Asterisk ids, never channel names: a channel is its ``Uniqueid``, a
call is its ``Linkedid`` (the Uniqueid of the first channel of the call; every
channel created for it, such as the agent leg of an Originate, carries it).

It may start in the middle of calls (service restart, reconnect): an event
for an unknown Uniqueid creates the channel from the event's snapshot headers
and counts a warning, never raises. ``resync`` rebuilds everything from the
``CoreShowChannel`` events of a ``CoreShowChannels`` list action.

Outputs are immutable snapshots (``ChannelSnapshot``, ``CallSnapshot``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType

from .protocol import Event

__all__ = ["TRACKED_EVENTS", "CallSnapshot", "CallTracker", "ChannelSnapshot"]

log = logging.getLogger("switchboard.ami.tracker")

TRACKED_EVENTS = frozenset({
    "Newchannel", "Newstate", "Hangup", "DialBegin", "DialEnd", "BridgeEnter", "BridgeLeave", "VarSet",
    "NewCallerid", "NewConnectedLine",
})


@dataclass(frozen=True, slots=True)
class ChannelSnapshot:
    uniqueid: str
    linkedid: str
    channel: str
    state: int = 0  # ChannelState: 0 Down, 4 Ring, 5 Ringing, 6 Up
    state_desc: str = ""
    caller_num: str = ""
    caller_name: str = ""
    context: str = ""
    exten: str = ""
    bridge: str | None = None
    dial_status: str | None = None  # DialEnd DialStatus of the dial that created this leg
    dialed_by: str | None = None  # Uniqueid of the channel that dialed this one
    variables: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    hangup_cause: str | None = None

    @property
    def up(self) -> bool:
        return self.state == 6


@dataclass(frozen=True, slots=True)
class CallSnapshot:
    linkedid: str
    channels: tuple[ChannelSnapshot, ...]

    @property
    def bridged(self) -> bool:
        bridges = [c.bridge for c in self.channels if c.bridge]
        return len(bridges) >= 2 and len(set(bridges)) < len(bridges)


def _int(value: str | None) -> int:
    return int(value) if value is not None and value.isdigit() else 0


class CallTracker:
    """Feed it events (``handle``) or a resync list; read snapshots out."""

    def __init__(self, *, variables: Iterable[str] = ("SB_",)) -> None:
        self._var_prefixes = tuple(variables)
        self._channels: dict[str, ChannelSnapshot] = {}
        self.warnings = 0
        self.ended: list[ChannelSnapshot] = []  # hung-up channels since the last drain_ended()

    # ---- input ----
    def handle(self, ev: Event) -> None:
        handler = getattr(self, "_on_" + ev.name, None)
        if handler is not None:
            handler(ev)

    def resync(self, core_show_channels: Iterable[Event]) -> None:
        """Replace all state with what ``CoreShowChannels`` listed (``CoreShowChannel`` events)."""
        self._channels.clear()
        for ev in core_show_channels:
            if ev.name != "CoreShowChannel":
                continue
            snap = self._from_snapshot(ev)
            bridge = ev.get("BridgeId") or ev.get("BridgeID") or None
            variables = dict(self._chan_variables(ev))
            self._channels[snap.uniqueid] = replace(snap, bridge=bridge,
                                                    variables=MappingProxyType(variables))

    # ---- output ----
    def channel(self, uniqueid: str) -> ChannelSnapshot | None:
        return self._channels.get(uniqueid)

    def channels(self) -> tuple[ChannelSnapshot, ...]:
        return tuple(self._channels.values())

    def call(self, linkedid: str) -> CallSnapshot | None:
        chans = tuple(c for c in self._channels.values() if c.linkedid == linkedid)
        return CallSnapshot(linkedid, chans) if chans else None

    def calls(self) -> Mapping[str, CallSnapshot]:
        by: dict[str, list[ChannelSnapshot]] = {}
        for c in self._channels.values():
            by.setdefault(c.linkedid, []).append(c)
        return MappingProxyType({k: CallSnapshot(k, tuple(v)) for k, v in by.items()})

    def drain_ended(self) -> list[ChannelSnapshot]:
        ended, self.ended = self.ended, []
        return ended

    # ---- helpers ----
    def _chan_variables(self, ev: Event) -> Iterable[tuple[str, str]]:
        for item in ev.headers.get_all("ChanVariable"):
            name, _, value = item.partition("=")
            if name.startswith(self._var_prefixes):
                yield name, value

    @staticmethod
    def _from_snapshot(ev: Event, prefix: str = "") -> ChannelSnapshot:
        uid = ev.get(prefix + "Uniqueid") or ""
        return ChannelSnapshot(
            uniqueid=uid,
            linkedid=ev.get(prefix + "Linkedid") or uid,
            channel=ev.get(prefix + "Channel") or "",
            state=_int(ev.get(prefix + "ChannelState")),
            state_desc=ev.get(prefix + "ChannelStateDesc") or "",
            caller_num=ev.get(prefix + "CallerIDNum") or "",
            caller_name=ev.get(prefix + "CallerIDName") or "",
            context=ev.get(prefix + "Context") or "",
            exten=ev.get(prefix + "Exten") or "",
        )

    def _known(self, ev: Event, prefix: str = "") -> ChannelSnapshot | None:
        uid = ev.get(prefix + "Uniqueid")
        if not uid:
            return None
        chan = self._channels.get(uid)
        if chan is None:
            self.warnings += 1
            log.warning("%s for unknown channel %s (joined mid-call?): adopting it", ev.name, uid,
                        extra={"call_id": ev.get(prefix + "Linkedid") or uid})
            chan = self._from_snapshot(ev, prefix)
            self._channels[uid] = chan
        return chan

    def _update_state(self, ev: Event, chan: ChannelSnapshot, prefix: str = "") -> ChannelSnapshot:
        new = replace(chan, state=_int(ev.get(prefix + "ChannelState")),
                      state_desc=ev.get(prefix + "ChannelStateDesc") or chan.state_desc,
                      caller_num=ev.get(prefix + "CallerIDNum") or chan.caller_num)
        self._channels[chan.uniqueid] = new
        return new

    # ---- handlers ----
    def _on_Newchannel(self, ev: Event) -> None:
        snap = self._from_snapshot(ev)
        if snap.uniqueid:
            self._channels[snap.uniqueid] = snap

    def _on_Newstate(self, ev: Event) -> None:
        chan = self._known(ev)
        if chan is not None:
            self._update_state(ev, chan)

    _on_NewCallerid = _on_Newstate
    _on_NewConnectedLine = _on_Newstate

    def _on_Hangup(self, ev: Event) -> None:
        uid = ev.get("Uniqueid")
        if not uid:
            return
        chan = self._channels.pop(uid, None)
        if chan is None:
            self.warnings += 1
            log.warning("Hangup for unknown channel %s", uid, extra={"call_id": ev.get("Linkedid") or uid})
            chan = self._from_snapshot(ev)
        self.ended.append(replace(chan, hangup_cause=ev.get("Cause"), bridge=None))

    def _on_DialBegin(self, ev: Event) -> None:
        dest = self._known(ev, "Dest")
        if dest is not None:
            self._channels[dest.uniqueid] = replace(dest, dialed_by=ev.get("Uniqueid"))

    def _on_DialEnd(self, ev: Event) -> None:
        dest = self._known(ev, "Dest")
        if dest is not None:
            dest = self._update_state(ev, dest, "Dest")  # every event carries a fresh snapshot
            self._channels[dest.uniqueid] = replace(dest, dial_status=ev.get("DialStatus"))

    def _on_BridgeEnter(self, ev: Event) -> None:
        chan = self._known(ev)
        if chan is not None:
            chan = self._update_state(ev, chan)
            self._channels[chan.uniqueid] = replace(chan, bridge=ev.get("BridgeUniqueid"))

    def _on_BridgeLeave(self, ev: Event) -> None:
        chan = self._known(ev)
        if chan is not None:
            self._channels[chan.uniqueid] = replace(chan, bridge=None)

    def _on_VarSet(self, ev: Event) -> None:
        name = (ev.get("Variable") or "").lstrip("_")  # __SB_X is inherited SB_X
        if not name.startswith(self._var_prefixes):
            return
        chan = self._known(ev)
        if chan is not None:
            variables = dict(chan.variables)
            variables[name] = ev.get("Value") or ""
            self._channels[chan.uniqueid] = replace(chan, variables=MappingProxyType(variables))
