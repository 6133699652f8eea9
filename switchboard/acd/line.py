"""The line: callers waiting for an agent, in the order the router serves them.

Owns: the waiting callers (``Waiter`` by call id) and what the survey needs of them, a
caller joining the line from the IVR (:meth:`CallerLine.enqueue`: channel variables for
re-adoption, hold music task), a caller leaving it (hang-up, bridged), the views of the
line (snapshots, position and estimated wait) and the ``queue.overflow`` of each tier.

Must not touch: agents' states (read only, through the desk), offers and AMI. It cancels
a ringing offer and asks for a routing pass only through the callables it is given.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

from switchboard.acd import agent_state as st
from switchboard.acd.desk import AgentDesk
from switchboard.acd.model import (
    VAR_CALL_ID,
    VAR_CALLER,
    VAR_JOINED,
    VAR_LANGUAGE,
    VAR_PRIORITY,
    VAR_PROVINCE,
    VAR_TOPIC,
    Emit,
    Waiter,
    WaitingSnapshot,
)
from switchboard.acd.router import RoutingPolicy, WaitingCall, estimate_wait, tier_of
from switchboard.ami.agi import AgiHangup, agi_quote
from switchboard.ami.client import node_hint
from switchboard.events import EventKind

log = logging.getLogger("switchboard.acd")


class CallerLine:
    """Waiting callers and callbacks keeping their place."""

    def __init__(self, *, desk: AgentDesk, policy: RoutingPolicy, emit: Emit, clock: Callable[[], float],
                 wall: Callable[[], float], hold: Any, hold_host: Any, schedule_route: Callable[..., None],
                 cancel_offer: Callable[[str, str], None], ami: Any = None) -> None:
        self.desk = desk
        self._ami = ami                               # channel variables go over AMI Setvar when given
        self.policy = policy
        self._emit = emit
        self.clock = clock
        self.wall = wall
        self.hold = hold
        self._hold_host = hold_host                   # what the hold loop talks to (the ACD facade)
        self._schedule_route = schedule_route          # named the call that joined or left
        self._cancel_offer = cancel_offer             # end a ringing offer and hang its leg up
        self.waiting: dict[str, Waiter] = {}          # call_id -> waiter
        self.last_agent: dict[str, tuple[str, float]] = {}   # caller number -> (agent, wall time)
        self.handle_times: deque[float] = deque(maxlen=200)
        self.call_vars: dict[str, dict[str, str]] = {}   # call_id -> variables for the survey

    # ------------------------------------------------------------------ views

    def waiting_calls(self) -> list[WaitingSnapshot]:
        now = self.clock()
        out = []
        for w in sorted(self.waiting.values(), key=lambda w: (-w.call.priority, w.call.joined_at)):
            wait = now - w.call.joined_at
            tier = "province"
            if w.call.province is None or wait >= self.policy.nation_after_s:
                tier = "nation"
            elif wait >= self.policy.region_after_s:
                tier = "region"
            out.append(WaitingSnapshot(
                call_id=w.call.call_id, caller=w.caller, topic=w.call.topic, province=w.call.province,
                priority=w.call.priority, language=w.call.language, joined_wall=w.joined_wall, wait_s=wait,
                tier=tier, offered_to=w.offer.agent_id if w.offer else None))
        return out

    def position(self, call_id: str) -> tuple[int, float | None]:
        """(position in line among calls of the same topic, estimated wait in seconds)."""
        w = self.waiting.get(call_id)
        if w is None:
            return (0, None)
        ahead = sum(1 for o in self.waiting.values()
                    if o.call.topic == w.call.topic and (-o.call.priority, o.call.joined_at)
                    < (-w.call.priority, w.call.joined_at))
        eligible = sum(1 for a, s in self.desk.states.items()
                       if s.status is not st.AgentStatus.LOGGED_OUT
                       and self.desk.records[a].skills.get(w.call.topic, 0) > 0)
        return ahead + 1, estimate_wait(ahead, eligible, list(self.handle_times))

    # ------------------------------------------------------------------ callers

    async def enqueue(self, session: Any, request: Any) -> str:
        """Hold the caller until an agent answers (``bridged``), they ask for a
        callback (``callback``), or they hang up (raises ``AgiHangup``)."""
        call_id = session.linkedid
        env = session.env
        caller = env.get("agi_callerid", "") or ""
        now = self.clock()
        wall = self.wall()
        joined_wall = float(request.variables.get("joined_wall", wall)) if hasattr(request, "variables") else wall
        sticky = self.last_agent.get(caller) if caller else None
        call = WaitingCall(
            call_id=call_id, topic=request.topic or "general", province=request.province or None,
            joined_at=now - (wall - joined_wall), priority=int(request.priority or 0),
            language=request.language or "vi",
            last_agent_id=sticky[0] if sticky else None,
            last_agent_at=(now - (wall - sticky[1])) if sticky else None,
        )
        loop = asyncio.get_running_loop()
        waiter = Waiter(call=call, caller=caller, channel=session.channel, uniqueid=session.uniqueid,
                        joined_wall=joined_wall, session=session, province_source=request.province_source,
                        variables=dict(getattr(request, "variables", {}) or {}), done=loop.create_future(),
                        tier_announced=int(tier_of(call, now, self.policy)))
        reserved_for = getattr(request, "reserved_for", None)
        if reserved_for:     # a transfer to a named agent: that agent's turn first (acd.transfers)
            waiter.reserved_for = reserved_for
            waiter.reserved_until = now + float(getattr(request, "reserved_s", 0.0))
        self.waiting[call_id] = waiter
        self.call_vars[call_id] = {"language": call.language, "topic": call.topic,
                                   "province": call.province or ""}
        # a caller in line taken back by a new owner (re-adoption) whose record already says it
        # joined: queue.resumed, so the record keeps one queue.joined (its first join and source)
        resumed = bool(getattr(request, "resumed", False))
        self._emit(call_id, EventKind.QUEUE_RESUMED if resumed else EventKind.QUEUE_JOINED, {
            "topic": call.topic, "province": call.province, "province_source": request.province_source,
            "priority": call.priority, "language": call.language, "caller": caller,
            **({"joined_wall": joined_wall} if resumed else {})})
        # Route first, now: with a free agent this step writes the agent's Originate before the
        # channel variables below go out, before this join's log line and before the loop turns
        # to other work, so the agent's phone never waits for their round trip (Asterisk's
        # manager runs one session's actions in order) nor for the callbacks already queued on
        # the loop. The join's event is emitted first: it keeps its place before the offer's.
        self._schedule_route(call_id, at_once=True)
        log.info("call %s joined the line: topic=%s province=%s priority=%d", call_id, call.topic,
                 call.province or "-", call.priority)
        await self._mark_channel(session, waiter)
        if self.hold is not None and call_id in self.waiting:
            waiter.hold_task = asyncio.create_task(self.hold.run(self._hold_host, waiter), name=f"hold-{call_id}")
        assert waiter.done is not None
        try:
            return await waiter.done
        finally:
            if waiter.hold_task is not None and not waiter.hold_task.done():
                waiter.hold_task.cancel()

    def place_of_bridged(self, call_id: str, *, channel: str, uniqueid: str, values: Mapping[str, str],
                         variables: Mapping[str, str] | None = None) -> Waiter | None:
        """A caller found bridged with an agent after a restart: its place in line as its channel
        still holds it (the ``SB_*`` variables :meth:`_mark_channel` wrote when it joined), so a
        transfer or consult of the call starts from the same topic, province, join time and
        priority as before the restart. None when the channel does not say (it never joined our
        line through this service): such a call cannot be passed on. Not put back in the line."""
        topic, joined = values.get(VAR_TOPIC) or "", values.get(VAR_JOINED) or ""
        try:
            joined_wall = float(joined)
            priority = int(values.get(VAR_PRIORITY) or 0)
        except ValueError:
            return None
        if not topic:
            return None
        now, wall = self.clock(), self.wall()
        call = WaitingCall(call_id=call_id, topic=topic, province=values.get(VAR_PROVINCE) or None,
                           joined_at=now - (wall - joined_wall), priority=priority,
                           language=values.get(VAR_LANGUAGE) or "vi")
        self.call_vars.setdefault(call_id, {"language": call.language, "topic": call.topic,
                                            "province": call.province or ""})
        return Waiter(call=call, caller=values.get(VAR_CALLER) or "", channel=channel, uniqueid=uniqueid,
                      joined_wall=joined_wall, province_source="adopted", variables=dict(variables or {}))

    async def _mark_channel(self, session: Any, w: Waiter) -> None:
        """Write the caller's place in line on its channel (re-adoption after a restart reads it).

        Over AMI ``Setvar`` (class ``call``), all at once: an AsyncAGI ``SET VARIABLE`` waits
        for Asterisk's AGI loop to pick it up (up to 100 ms per command on a channel that
        receives no media), and seven of them in a row delayed every dispatch by 0.2-0.7 s
        (bench/RESULTS.md, load). AGI is the path when the line has no AMI link (tests)."""
        values = {VAR_CALL_ID: w.call.call_id, VAR_TOPIC: w.call.topic, VAR_PROVINCE: w.call.province or "",
                  VAR_PRIORITY: str(w.call.priority), VAR_LANGUAGE: w.call.language,
                  VAR_JOINED: f"{w.joined_wall:.6f}", VAR_CALLER: w.caller}
        if self._ami is not None:
            results = await asyncio.gather(*(
                self._ami.send({"Action": "Setvar", "Channel": w.channel, "Variable": name, "Value": value},
                               **node_hint(self._ami, w.call.call_id),
                               timeout=5) for name, value in values.items()), return_exceptions=True)
            for name, res in zip(values, results, strict=True):
                if isinstance(res, BaseException) or not getattr(res, "success", False):
                    # a lost variable only weakens re-adoption
                    log.warning("call %s: cannot set %s: %s", w.call.call_id, name,
                                res if isinstance(res, BaseException) else getattr(res, "message", res))
            return
        for name, value in values.items():
            try:
                await session.execute(f"SET VARIABLE {name} {agi_quote(value)}", timeout=5)
            except AgiHangup:
                raise
            except Exception as exc:  # a lost variable only weakens re-adoption
                log.warning("call %s: cannot set %s: %s", w.call.call_id, name, exc)

    def caller_gone(self, call_id: str) -> None:
        """The caller hung up while waiting (seen by the hold loop or a Hangup event)."""
        w = self.waiting.get(call_id)
        if w is None:
            return
        if w.offer is not None:
            self._cancel_offer(w.offer.leg, "caller_gone")
        if w.done is not None and not w.done.done():
            w.done.set_exception(AgiHangup(f"{w.channel}: caller hung up while waiting"))
            w.done.exception()  # retrieved by enqueue(); avoid "never retrieved" noise
        self.drop_waiter(call_id, None)
        self._schedule_route(call_id)

    def drop_waiter(self, call_id: str, outcome: str | None) -> None:
        w = self.waiting.pop(call_id, None)
        if w is None:
            return
        if w.hold_task is not None and not w.hold_task.done():
            w.hold_task.cancel()
        if outcome and w.done is not None and not w.done.done():
            w.done.set_result(outcome)

    def note_overflows(self, now: float) -> None:
        """``queue.overflow`` once per waiting call and tier, when its eligibility widens."""
        for call_id in list(self.waiting):
            self.note_overflow(call_id, now)

    def note_overflow(self, call_id: str, now: float) -> None:
        w = self.waiting.get(call_id)
        if w is None:
            return
        tier = tier_of(w.call, now, self.policy)
        if tier > w.tier_announced:
            w.tier_announced = int(tier)
            self._emit(w.call.call_id, EventKind.QUEUE_OVERFLOW, {
                "tier": tier.name.lower(), "wait_s": round(now - w.call.joined_at, 3)})
            log.info("call %s: eligibility widened to the %s tier", w.call.call_id, tier.name.lower())
