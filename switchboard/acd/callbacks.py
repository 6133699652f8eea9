"""The callback line: callers called back instead of waiting, keeping their place in line.

Owns: a waiting caller's request for a callback (checked by the number policy), the
calling window it waits for (``telephony.windows``: a callback owed outside it keeps its
place and is not dialled until the window opens), the
callbacks read back from the database (:meth:`CallbackLine.restore`), the dialer of one
callback (the agent first, then the dialplan ``callback_context`` dials the number), its
answer, its retries and its end (``callback.completed``), and the callbacks this process
closed (so a sweep does not put them back in line).

Must not touch: SQL (owed callbacks are handed in), AMI events (``events`` calls in here),
agent states except through the desk. Ringing and talking legs stay the offers' records;
this module only reads and ends them through the offer lifecycle.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from switchboard.acd import agent_state as st
from switchboard.acd.desk import AgentDesk
from switchboard.acd.line import CallerLine
from switchboard.acd.model import Callback, Emit, IllegalAgentAction, Offer, Waiter, new_callback_id
from switchboard.acd.offers import OfferLifecycle
from switchboard.acd.router import Assignment, WaitingCall
from switchboard.config import RoutingSettings
from switchboard.events import EventKind
from switchboard.telephony.numbers import CallbackNumbers, log_safe
from switchboard.telephony.windows import CallingWindow

log = logging.getLogger("switchboard.acd")


class CallbackLine:
    """Callbacks owed to callers, and the dialer that makes them."""

    def __init__(self, *, routing: RoutingSettings, desk: AgentDesk, line: CallerLine, offers: OfferLifecycle,
                 numbers: CallbackNumbers, emit: Emit, clock: Callable[[], float], wall: Callable[[], float],
                 schedule_route: Callable[[], None], callback_context: str, retry_s: float, ring_s: float,
                 cli: str) -> None:
        self.settings = routing
        self.desk = desk
        self.line = line
        self.offers = offers
        self.numbers = numbers
        self._emit = emit
        self.clock = clock
        self.wall = wall
        self._schedule_route = schedule_route
        self.callback_context = callback_context
        self.retry_s = retry_s     # between two calls to a number that did not answer
        self.ring_s = ring_s       # how long the caller's number rings
        self.cli = cli             # the number the called-back caller sees ("" = unchanged)
        # callbacks this process closed: their closing events may not be in the database yet,
        # so a sweep of owed callbacks must not put them back in line (bounded, oldest dropped)
        self._closed_callbacks: dict[str, None] = {}
        # when citizens may be called, on the service's local clock (the IVR's); None: any time
        self.window: CallingWindow | None = None
        self.local_clock: Callable[[], datetime] = lambda: datetime.now(UTC)
        self._window_was_open: bool | None = None

    # ------------------------------------------------------------------ the calling window

    def may_dial(self) -> bool:
        """Is the calling window open now? Logs each opening and closing once."""
        if self.window is None:
            return True
        now = self.local_clock()
        is_open = self.window.is_open(now)
        if is_open != self._window_was_open:
            self._window_was_open = is_open
            if is_open:
                log.info("calling window open (%s): owed callbacks are dialled", self.window.describe())
            else:
                nxt = self.window.next_open(now)
                log.info("calling window closed (%s): owed callbacks keep their place until %s",
                         self.window.describe(), f"{nxt:%Y-%m-%d %H:%M %Z}" if nxt else "never")
        return is_open

    def expected_at(self) -> datetime | None:
        """When a callback asked now can be expected: None if the window is open now, else when
        it opens (local time; the window's zone)."""
        if self.window is None:
            return None
        now = self.local_clock()
        return None if self.window.is_open(now) else self.window.next_open(now)

    # ------------------------------------------------------------------ requests

    def caller_pressed_callback(self, call_id: str) -> str:
        """The caller asked to be called back: keep the place, release the line.

        ``accepted``: the callback keeps the place and the caller may hang up.
        ``refused``: the number policy refused the number (``callback.refused`` with the
        reason is recorded); the caller stays in line and should hear why.
        ``unavailable``: nothing to do (the caller is not waiting any more).
        A second request for a number that already has a callback pending keeps the
        first one (and its place); this call just ends with outcome ``callback``.
        """
        w = self.line.waiting.get(call_id)
        if w is None or w.done is None or w.done.done() or w.session is None:
            return "unavailable"
        decision = self.numbers.decide(w.caller, datetime.now(UTC))
        if not decision.ok:
            w.callback_refused = decision.reason
            self._emit(call_id, EventKind.CALLBACK_REFUSED, {
                "reason": decision.reason, "number": decision.number, "detail": decision.detail})
            log.info("call %s: callback to %s refused (%s%s); the caller stays in line", call_id,
                     log_safe(w.caller), decision.reason, f" {decision.detail}" if decision.detail else "")
            return "refused"
        number = decision.number
        if w.offer is not None:
            self.offers.end_offer(w.offer.leg, "caller_gone", cancel=True)
        pending = next((o for o in self.line.waiting.values()
                        if o.callback is not None and o.callback.number == number), None)
        data = {"number": number, "topic": w.call.topic, "province": w.call.province,
                "language": w.call.language, "priority": w.call.priority}
        if pending is not None and pending.callback is not None:
            self._emit(call_id, EventKind.CALLBACK_REQUESTED, {
                **data, "callback_id": pending.callback.callback_id, "duplicate": True})
            log.info("call %s: callback to %s already pending (%s, call %s): keeping that one", call_id,
                     number, pending.callback.callback_id, pending.call.call_id)
            w.done.set_result("callback")
            self.line.drop_waiter(call_id, None)
            return "accepted"
        self.numbers.grant(number, datetime.now(UTC))
        w.callback = Callback(callback_id=new_callback_id(), number=number)
        w.session = None
        self._emit(call_id, EventKind.CALLBACK_REQUESTED, {**data, "callback_id": w.callback.callback_id})
        log.info("call %s: callback %s to %s keeps its place in line", call_id, w.callback.callback_id, number)
        w.done.set_result("callback")
        if w.hold_task is not None and w.hold_task is not asyncio.current_task() and not w.hold_task.done():
            w.hold_task.cancel()
        self._schedule_route()
        return "accepted"

    def pending(self) -> int:
        """Callbacks owed and in line (asked while waiting, after hours, or read back at start)."""
        return sum(1 for w in self.line.waiting.values() if w.callback is not None)

    def closed(self, callback_id: str | None) -> None:
        if callback_id:
            self._closed_callbacks[callback_id] = None
            while len(self._closed_callbacks) > 50_000:
                del self._closed_callbacks[next(iter(self._closed_callbacks))]

    def restore(self, owed: Iterable[Any], *, max_age_s: float) -> list[str]:
        """Put callbacks owed from the database back in line; returns their call ids.

        ``owed``: ``store.callbacks.OpenCallback`` records (after a restart of the service,
        or asked after hours), oldest first. Each keeps its place: the time its caller joined
        the line. Skipped: one already in line, or closed by this process (its closing event
        may not be written yet). Closed with a final ``callback.completed``: one requested
        more than ``max_age_s`` ago (``expired``), and a second one for a number that already
        has a callback in line (``duplicate``).
        """
        now, now_wall = self.clock(), self.wall()
        waiting = self.line.waiting
        in_line = {w.callback.callback_id: w for w in waiting.values() if w.callback is not None}
        restored: list[str] = []
        for cb in owed:
            if cb.callback_id in in_line or cb.callback_id in self._closed_callbacks or cb.call_id in waiting:
                continue
            reason = ""
            decision = self.numbers.decide(cb.number, datetime.now(UTC), count=False)
            if not decision.ok:
                reason = "refused"
                self._emit(cb.call_id, EventKind.CALLBACK_REFUSED, {
                    "reason": decision.reason, "number": decision.number, "detail": decision.detail,
                    "callback_id": cb.callback_id})
            elif now_wall - cb.requested_at.timestamp() > max_age_s:
                reason = "expired"
            elif any(w.caller == decision.number for w in in_line.values()):
                reason = "duplicate"
            if reason:
                log.info("callback %s to %s (call %s) closed: %s", cb.callback_id, log_safe(cb.number), cb.call_id,
                         reason)
                self.closed(cb.callback_id)
                self._emit(cb.call_id, EventKind.CALLBACK_COMPLETED, {
                    "callback_id": cb.callback_id, "result": reason, "attempt": cb.attempts, "final": True})
                continue
            joined_wall = cb.joined_at.timestamp()
            sticky = self.line.last_agent.get(decision.number)
            call = WaitingCall(
                call_id=cb.call_id, topic=cb.topic, province=cb.province, joined_at=now - (now_wall - joined_wall),
                priority=cb.priority, language=cb.language, last_agent_id=sticky[0] if sticky else None,
                last_agent_at=(now - (now_wall - sticky[1])) if sticky else None)
            w = Waiter(call=call, caller=decision.number, channel="", uniqueid="", joined_wall=joined_wall,
                       callback=Callback(callback_id=cb.callback_id, number=decision.number, attempts=cb.attempts))
            waiting[cb.call_id] = w
            self.line.call_vars[cb.call_id] = {"language": call.language, "topic": call.topic,
                                               "province": call.province or ""}
            in_line[cb.callback_id] = w
            restored.append(cb.call_id)
            log.info("callback %s to %s (call %s, %d attempt(s) so far) back in line, joined %.0fs ago",
                     cb.callback_id, decision.number, cb.call_id, cb.attempts, now_wall - joined_wall)
        if restored:
            self._schedule_route()
        return restored

    # ------------------------------------------------------------------ the dialer

    def dial(self, leg: str, w: Waiter, a: Assignment, endpoint: str) -> None:
        """Originate a callback's offer (hook of the offer lifecycle), or close it if refused."""
        try:
            action = self._action(leg, w, a.agent_id, endpoint)
        except ValueError as exc:   # the policy changed since the request: never dialled
            cb = w.callback
            assert cb is not None
            log.error("callback %s of call %s not dialled: %s", cb.callback_id, a.call_id, exc)
            self.offers.end_offer(leg, "failed")
            self.closed(cb.callback_id)
            self._emit(a.call_id, EventKind.CALLBACK_COMPLETED, {
                "callback_id": cb.callback_id, "result": "refused", "attempt": cb.attempts, "final": True})
            self.line.drop_waiter(a.call_id, None)
            return
        self.offers.originate(leg, action)

    def _action(self, leg: str, w: Waiter, agent_id: str, endpoint: str) -> dict[str, Any]:
        """The agent first: when the agent answers, the dialplan (``callback_context``) dials the number.

        The number is checked by the number policy once more (a callback read back from the
        database may predate the policy) and only its dial string (digits, a leading ``+``)
        becomes the extension; ``ValueError`` if the policy refuses it.
        """
        assert w.callback is not None
        dial = self.numbers.policy.dial_string(self.numbers.decide(w.callback.number, datetime.now(UTC), count=False))
        return {
            "Action": "Originate",
            "Channel": f"PJSIP/{endpoint}",
            "ChannelId": leg,
            "OtherChannelId": f"{leg}-o",
            "Context": self.callback_context,
            "Exten": dial,
            "Priority": "1",
            "Timeout": str(int(self.settings.ring_timeout_s * 1000)),
            "CallerID": f'"Callback {dial}" <{dial}>',
            "Variable": [f"SB_CALL_ID={w.call.call_id}", f"SB_AGENT={agent_id}",
                         f"SB_CALLBACK_ID={w.callback.callback_id}", f"SB_CB_RING={int(self.ring_s)}",
                         f"SB_CB_CLI={self.cli}", f"SB_REC_FILE={self.offers.offers[leg].recording}"],
            "Async": "true",
        }

    def agent_answered(self, offer: Offer) -> None:
        """The agent took the callback: now the dialplan calls the caller's number."""
        if offer.answered is not None:
            return
        offer.answered = self.clock()
        try:
            self.desk.apply(offer.agent_id, st.Answer())
        except IllegalAgentAction as exc:
            log.warning("callback answer by %s: %s", offer.agent_id, exc)
        self._emit(offer.call_id, EventKind.OFFER_RESULT, {"agent_id": offer.agent_id, "result": "answered",
                                                           "ring_s": round(offer.answered - offer.started, 3),
                                                           "callback_id": offer.callback_id})
        self.desk.notify("agent.answered", {"agent_id": offer.agent_id, "call_id": offer.call_id})
        log.info("callback %s: %s answered, calling the number", offer.callback_id, offer.agent_id)

    def answered(self, leg: str) -> None:
        """The called-back caller answered: agent and caller are bridged."""
        offers = self.offers.offers
        offer = offers.pop(leg)
        if offer.answered is None:
            offers[leg] = offer
            self.agent_answered(offer)
            offers.pop(leg)
        self.offers.talking[leg] = offer
        w = self.line.waiting.get(offer.call_id)
        cb = w.callback if w is not None else None
        attempt = (cb.attempts + 1) if cb is not None else 1
        wait_s = (self.clock() - w.call.joined_at) if w is not None else 0.0
        if w is not None:
            if w.caller:
                self.line.last_agent[w.caller] = (offer.agent_id, self.wall())
            self.line.drop_waiter(offer.call_id, None)
        self.closed(offer.callback_id)
        self._emit(offer.call_id, EventKind.CALLBACK_COMPLETED, {
            "callback_id": offer.callback_id, "result": "answered", "attempt": attempt, "agent_id": offer.agent_id})
        self._emit(offer.call_id, EventKind.ANSWERED, {"agent_id": offer.agent_id, "wait_s": round(wait_s, 3),
                                                       "leg_uniqueid": leg, "callback_id": offer.callback_id})
        log.info("callback %s of call %s answered (attempt %d), agent %s", offer.callback_id, offer.call_id,
                 attempt, offer.agent_id)
        self.offers.recording_started(offer)

    def not_reached(self, leg: str, offer: Offer) -> None:
        """The agent answered but the number did not (or could not be dialled): retry later, or give up."""
        self.offers.agent_hung_up(leg, offer, cause=f"callback {offer.dial_status or 'not reached'}")
        w = self.line.waiting.get(offer.call_id)
        if w is not None and w.offer is offer:
            w.offer = None
        cb = w.callback if w is not None else None
        if cb is None or w is None:
            return
        cb.attempts += 1
        result = "failed" if offer.dial_status in ("CHANUNAVAIL", "CONGESTION", "INVALIDARGS") else "no_answer"
        final = cb.attempts >= max(1, self.settings.callback_max_attempts)
        self._emit(offer.call_id, EventKind.CALLBACK_COMPLETED, {
            "callback_id": cb.callback_id, "result": result, "attempt": cb.attempts, "final": final,
            "agent_id": offer.agent_id, "dial_status": offer.dial_status or None})
        if final:
            log.info("callback %s to %s: %s after %d attempt(s), giving up", cb.callback_id, cb.number, result,
                     cb.attempts)
            self.closed(cb.callback_id)
            self.line.drop_waiter(offer.call_id, None)
        else:
            cb.not_before = self.clock() + self.retry_s
            log.info("callback %s to %s: %s (attempt %d), retry in %.0fs", cb.callback_id, cb.number, result,
                     cb.attempts, self.retry_s)
        self._schedule_route()
