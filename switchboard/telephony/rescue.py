"""Never strand a caller: hand a channel the service cannot serve on, and reconcile with Asterisk.

Two parts:

* :class:`Rescuer` takes a caller whose flow step failed (an AGI command that
  gave no result in time, the AMI link lost during a command, a refused
  command) off ``AGI(agi:async)``: AMI ``Redirect`` to the dialplan's
  ``hotline-rescue,fallback,1`` (the fallback queue), retried while Asterisk
  does not answer; when that is impossible, AMI ``Hangup`` with a Q.850
  cause. Both are recorded on the call (``call.handed_to_fallback`` /
  ``call.hung_up_by_service``). The record stays open until the channel hangs
  up. ``Redirect`` works whatever AGI is doing (a stuck command included):
  Asterisk ends the AGI application and continues at the new place.
* :func:`reconcile` (pure) compares what Asterisk lists (``CoreShowChannels``)
  with what the service holds, and :class:`Reconciler` runs it every
  ``interval`` seconds: an open record whose channel is gone closes with
  cause ``reconciled_gone``; a channel sitting in AGI that no running session
  serves is adopted (the service never saw it) or handed to the fallback
  queue (the service saw it and lost it); one whose flow already ended is
  hung up.

Only actions of the AMI ``call`` write class are used (Redirect, Hangup); the
listing (``CoreShowChannels``) is the same one re-adoption uses.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("switchboard.rescue")

RESCUE_CONTEXT = "hotline-rescue"
RESCUE_EXTEN = "fallback"
#: Q.850 causes the service hangs up with.
CAUSE_NORMAL_CLEARING = 16      # the flow had ended: nothing more for the caller
CAUSE_TEMPORARY_FAILURE = 41    # the service could not serve the caller and could not hand it on

#: What a channel runs while it still sits in ``AGI(agi:async)`` can be another application
#: (``EXEC`` shows the executed one: Playback, StartMusicOnHold...). These are not AGI.
NOT_IN_AGI = frozenset({"Queue", "Dial", "Bridge", "AppDial", "Hangup", ""})


class Act(enum.StrEnum):
    CLOSE_GONE = "gone"          # an open record whose channel Asterisk no longer lists
    ADOPT = "adopted"            # a channel in AGI the service never saw: take it (re-adoption)
    FALLBACK = "fallback"        # a channel in AGI the service saw but no longer serves
    HANGUP = "hangup"            # a channel in AGI whose flow is over (or not a caller): hang up


@dataclass(frozen=True, slots=True)
class Channel:
    """One ``CoreShowChannel`` entry, the fields the decision needs."""

    uniqueid: str
    channel: str
    context: str
    application: str
    age_s: float
    bridged: bool = False
    raw: Any = field(default=None, compare=False, repr=False)   # the CoreShowChannel event

    @classmethod
    def from_event(cls, ev: Any) -> Channel:
        return cls(uniqueid=ev.get("Uniqueid") or "", channel=ev.get("Channel") or "",
                   context=ev.get("Context") or "", application=ev.get("Application") or "",
                   age_s=duration_s(ev.get("Duration") or ""), bridged=bool(ev.get("BridgeId")), raw=ev)


@dataclass(frozen=True, slots=True)
class Action:
    act: Act
    call_id: str = ""
    uniqueid: str = ""
    channel: str = ""
    context: str = ""
    raw: Any = field(default=None, compare=False, repr=False)


def reconcile(*, open_calls: Mapping[str, str], channels: Iterable[Channel], served: Iterable[str],
              sessions: Iterable[str], flow_over: Iterable[str], hotline_contexts: Iterable[str],
              other_contexts: Iterable[str] = (), min_age_s: float = 10.0) -> list[Action]:
    """What to do so that the service and Asterisk agree. Pure.

    ``open_calls``: call id -> caller channel uniqueid, for records opened before the listing
    was asked for. ``channels``: Asterisk's listing. ``served``: uniqueids a running AGI task
    serves (IVR flow, waiting in line, survey, feature code). ``sessions``: uniqueids of AGI
    sessions the service knows (served or not). ``flow_over``: uniqueids whose flow ended.
    ``hotline_contexts``: where callers sit in AGI (adopt or hand to the fallback queue);
    ``other_contexts``: AGI contexts whose stranded channels are hung up (survey, agents).
    A channel younger than ``min_age_s`` is left alone (its ``AsyncAGIStart`` may be on its way).
    """
    listed = list(channels)
    present = {ch.uniqueid for ch in listed}
    served_set, sessions_set, over = set(served), set(sessions), set(flow_over)
    hotline, other = set(hotline_contexts), set(other_contexts)
    known_uniqueids = set(open_calls.values())
    actions = [Action(Act.CLOSE_GONE, call_id=cid, uniqueid=uid)
               for cid, uid in sorted(open_calls.items()) if uid not in present]
    for ch in listed:
        if ch.context not in hotline and ch.context not in other:
            continue
        if ch.bridged or ch.application in NOT_IN_AGI or ch.age_s < min_age_s:
            continue
        if ch.uniqueid in served_set:
            continue
        call_id = next((cid for cid, uid in open_calls.items() if uid == ch.uniqueid), "")
        base = {"call_id": call_id, "uniqueid": ch.uniqueid, "channel": ch.channel, "context": ch.context,
                "raw": ch.raw}
        if ch.context in other or ch.uniqueid in over:
            actions.append(Action(Act.HANGUP, **base))
        elif ch.uniqueid not in sessions_set and ch.uniqueid not in known_uniqueids:
            actions.append(Action(Act.ADOPT, **base))
        else:
            actions.append(Action(Act.FALLBACK, **base))
    return actions


def duration_s(text: str) -> float:
    """A CoreShowChannel's ``Duration`` (``HH:MM:SS``) in seconds; 0 when absent or odd."""
    try:
        h, m, sec = (int(x) for x in text.split(":"))
    except ValueError:
        return 0.0
    return float(h * 3600 + m * 60 + sec)


class Rescuer:
    """Takes a caller off AGI: to the fallback queue, else hung up with a cause; records which.

    ``observe(kind, reason)`` counts (kind ``fallback`` / ``hangup`` / ``failed``).
    """

    def __init__(self, ami: Any, book: Any, *, observe: Callable[[str, str], None] = lambda k, r: None,
                 context: str = RESCUE_CONTEXT, exten: str = RESCUE_EXTEN, attempts: int = 4,
                 action_timeout: float = 5.0, retry_s: float = 2.0) -> None:
        self.ami = ami
        self.book = book
        self.observe = observe
        self.context = context
        self.exten = exten
        self.attempts = attempts
        self.action_timeout = action_timeout
        self.retry_s = retry_s
        self._busy: set[str] = set()   # uniqueids being rescued (the reconciliation must not double up)

    def busy(self, uniqueid: str) -> bool:
        return uniqueid in self._busy

    async def hand_to_fallback(self, *, channel: str, uniqueid: str, call_id: str, reason: str, node: str,
                               detail: str = "", session: Any = None) -> str:
        """Redirect ``channel`` to the fallback queue; returns ``fallback``, ``hung_up``, ``gone``
        or ``failed`` (left to the next reconciliation)."""
        if uniqueid in self._busy:
            return "busy"
        self._busy.add(uniqueid)
        try:
            return await self._rescue(channel=channel, uniqueid=uniqueid, call_id=call_id, reason=reason,
                                      node=node, detail=detail, session=session)
        finally:
            self._busy.discard(uniqueid)

    async def _rescue(self, *, channel: str, uniqueid: str, call_id: str, reason: str, node: str, detail: str,
                      session: Any) -> str:
        from switchboard.ami.client import AmiError, node_hint

        log.warning("call %s: %s at %s (%s): handing %s to the fallback queue", call_id or "-", reason,
                    node or "-", detail or "-", channel)
        for attempt in range(1, self.attempts + 1):
            state = _left_agi(session)
            if state == "hang-up":
                return "gone"
            if state == "left AGI" and attempt > 1:   # a Redirect that timed out landed after all
                self._handed(call_id, reason, node, detail, channel)
                return "fallback"
            try:
                if not getattr(self.ami, "connected", True):
                    await self.ami.wait_connected(timeout=self.action_timeout)
                resp = await self.ami.send({"Action": "Redirect", "Channel": channel, "Context": self.context,
                                            "Exten": self.exten, "Priority": "1"}, timeout=self.action_timeout,
                                           **node_hint(self.ami, uniqueid or call_id))
            except (AmiError, TimeoutError) as exc:
                log.warning("call %s: Redirect of %s to the fallback queue, attempt %d: %s", call_id or "-",
                            channel, attempt, exc)
                await _wait_left(session, self.retry_s)
                continue
            if resp.success:
                self._handed(call_id, reason, node, detail, channel)
                return "fallback"
            log.warning("call %s: Redirect of %s refused: %s", call_id or "-", channel, resp.message)
            if _left_agi(session) == "hang-up":
                return "gone"
            break
        return await self.hang_up(channel=channel, call_id=call_id, reason=reason, node=node,
                                  cause=CAUSE_TEMPORARY_FAILURE, detail=detail)

    async def hang_up(self, *, channel: str, call_id: str, reason: str, node: str, cause: int,
                      detail: str = "") -> str:
        from switchboard.ami.client import AmiError, node_hint

        try:
            resp = await self.ami.send({"Action": "Hangup", "Channel": channel, "Cause": str(cause)},
                                       timeout=self.action_timeout, **node_hint(self.ami, call_id))
        except (AmiError, TimeoutError) as exc:
            log.error("call %s: cannot hang up %s either (%s): left to the reconciliation", call_id or "-",
                      channel, exc)
            self.observe("failed", reason)
            return "failed"
        if not resp.success:   # no such channel: it is gone already
            return "gone"
        if call_id:
            self.book.hung_up_by_service(call_id, reason=reason, node=node, cause=cause, detail=detail)
        log.warning("call %s: hung up %s with cause %d (%s)", call_id or "-", channel, cause, reason)
        self.observe("hangup", reason)
        return "hung_up"

    def _handed(self, call_id: str, reason: str, node: str, detail: str, channel: str) -> None:
        if call_id:
            self.book.handed_to_fallback(call_id, reason=reason, node=node, detail=detail)
        log.warning("call %s: %s handed to the fallback queue (%s at %s)", call_id or "-", channel, reason,
                    node or "-")
        self.observe("fallback", reason)


def _left_agi(session: Any) -> str:
    """"" while the session is open (or unknown), else why it closed ("hang-up" / "left AGI")."""
    if session is None or not getattr(session, "closed", False):
        return ""
    return str(getattr(session, "close_reason", "") or "left AGI")


async def _wait_left(session: Any, seconds: float) -> None:
    """Up to ``seconds``, polled: the session closes on an AMI event (no waiter to wake)."""
    for _ in range(max(1, int(seconds * 10))):
        if _left_agi(session):
            return
        await asyncio.sleep(0.1)


class Reconciler:
    """The periodic pass: list Asterisk's channels, :func:`reconcile`, carry out the actions."""

    name = "reconciliation"

    def __init__(self, ami: Any, book: Any, entry: Any, rescuer: Rescuer, *, interval: float = 30.0,
                 min_age_s: float = 10.0, observe: Callable[[str], None] = lambda act: None,
                 observe_stranded: Callable[[int], None] = lambda n: None) -> None:
        self.ami = ami
        self.book = book
        self.entry = entry
        self.rescuer = rescuer
        self.interval = interval
        self.min_age_s = min_age_s
        self.observe = observe
        self.observe_stranded = observe_stranded
        self.passes = 0
        self.last: list[Action] = []
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        if self.interval > 0:
            self._task = asyncio.create_task(self._loop(), name=f"reconcile-every-{self.interval:g}s")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.once()
            except Exception:
                log.exception("reconciliation pass failed")

    async def once(self) -> list[Action]:
        """One pass; the actions taken (empty when Asterisk could not be asked)."""
        async with self._lock:
            return await self._once()

    async def _once(self) -> list[Action]:
        from switchboard.ami.client import AmiError, ListResponse

        if not getattr(self.ami, "connected", True):
            return []
        open_calls = self.book.open_calls(started_before=time.monotonic())
        up_nodes = getattr(self.ami, "up_nodes", None)
        if up_nodes is not None:
            # several Asterisk nodes: the list covers the nodes up now; a call on a node down
            # is not "gone" (its link may come back), the node watch decides when it is lost
            up = set(up_nodes())
            open_calls = {cid: u for cid, u in open_calls.items() if self.ami.node_for(cid) in up}
        try:
            listing = await self.ami.send({"Action": "CoreShowChannels"}, timeout=10)
        except (AmiError, TimeoutError) as exc:
            log.warning("reconciliation: cannot list channels: %s", exc)
            return []
        if not isinstance(listing, ListResponse) or not listing.success:
            return []
        channels = [Channel.from_event(ev) for ev in listing.events if ev.name == "CoreShowChannel"]
        manager = self.entry.manager
        sessions = set(manager.sessions) if manager is not None else set()
        served = set(self.entry.served) | {u for u in sessions if self.rescuer.busy(u)}
        actions = reconcile(open_calls=open_calls, channels=channels, served=served, sessions=sessions,
                            flow_over=self.entry.flow_over(), hotline_contexts=self.entry.hotline_contexts,
                            other_contexts=self.entry.other_contexts, min_age_s=self.min_age_s)
        self.passes += 1
        self.last = actions
        self.observe_stranded(sum(1 for a in actions if a.act is not Act.CLOSE_GONE))
        for action in actions:
            await self._apply(action, manager)
            self.observe(str(action.act))
        if actions:
            log.info("reconciliation: %s", ", ".join(f"{a.act}:{a.call_id or a.channel}" for a in actions))
        return actions

    async def _apply(self, action: Action, manager: Any) -> None:
        if action.act is Act.CLOSE_GONE:
            log.warning("call %s: its channel is gone from Asterisk (no Hangup seen): closing the record",
                        action.call_id)
            self.book.channel_gone(action.call_id, cause="reconciled_gone")
        elif action.act is Act.ADOPT:
            await self.entry.adopt_channel(action.raw)
        elif action.act is Act.FALLBACK:
            session = manager.sessions.get(action.uniqueid) if manager is not None else None
            await self.rescuer.hand_to_fallback(channel=action.channel, uniqueid=action.uniqueid,
                                                call_id=action.call_id, reason="stranded",
                                                node=self.book.node_of(action.call_id) if action.call_id else "",
                                                detail="in AGI with no command in flight", session=session)
        elif action.act is Act.HANGUP:
            await self.rescuer.hang_up(channel=action.channel, call_id=action.call_id, reason="stranded",
                                       node=self.book.node_of(action.call_id) if action.call_id else "",
                                       cause=CAUSE_NORMAL_CLEARING, detail=f"in AGI ({action.context}) after its flow")
