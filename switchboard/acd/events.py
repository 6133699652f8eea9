"""What Asterisk tells the ACD: AMI events turned into calls on the ACD's parts.

Owns: the meaning of each AMI event for the ACD (``DeviceStateChange``,
``OriginateResponse``, ``DialEnd``, ``HangupRequest``, ``BridgeEnter``, ``Hangup``), the
reading of every device state (``DeviceStateList``) and what a reconnect or an Asterisk
restart means (offers failed, talking legs ended, callers gone; callbacks keep their place).

Must not touch: the state it dispatches to. It keeps none of its own and decides only which
part's method an event calls; the offer lifecycle, callback line, line and desk change state.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from switchboard.acd.callbacks import CallbackLine
from switchboard.acd.desk import AgentDesk
from switchboard.acd.line import CallerLine
from switchboard.acd.model import REASON_BUSY, REASON_CONGESTION, REASON_NO_ANSWER, result_of_cause
from switchboard.acd.offers import OfferLifecycle
from switchboard.ami.client import AmiError, current_node
from switchboard.ami.protocol import Event

log = logging.getLogger("switchboard.acd")

#: The AMI events the ACD subscribes to.
EVENT_NAMES = ("DeviceStateChange", "OriginateResponse", "BridgeEnter", "Hangup", "HangupRequest", "DialEnd")


class AmiEvents:
    """Feeds the ACD's parts from one AMI client's events."""

    def __init__(self, *, ami: Any, desk: AgentDesk, line: CallerLine, offers: OfferLifecycle,
                 callbacks: CallbackLine, clock: Callable[[], float], schedule_route: Callable[[], None]) -> None:
        self.ami = ami
        self.desk = desk
        self.line = line
        self.offers = offers
        self.callbacks = callbacks
        self.clock = clock
        self._schedule_route = schedule_route

    async def on_resync(self, restarted: bool) -> None:
        if restarted:
            # Every channel is gone (of that node, with several: ``current_node()``): offers and calls.
            self.channels_gone(current_node(), cancel=True)
        await self.refresh_devices()
        self._schedule_route()

    def node_lost(self, node: str) -> None:
        """An Asterisk node is lost (``AmiNodes``): its channels are gone, as after a restart.
        Agents offered from it are free again; those talking on it go to wrap-up."""
        n = self.channels_gone(node, cancel=False)
        log.warning("node %s lost: %d offer(s), %d talking leg(s), %d caller(s) in line ended", node, *n)
        self._schedule_route()

    def channels_gone(self, node: str, *, cancel: bool) -> tuple[int, int, int]:
        """End the offers, talking legs and waiting callers whose channels were on ``node``
        (every one when ``node`` is "": one Asterisk). Callbacks in line have no channel to
        lose: they keep their place (an offer of one on that node ends)."""
        node_for = getattr(self.ami, "node_for", None)

        def on_node(ident: str) -> bool:
            return not node or node_for is None or node_for(ident) == node

        offers = [leg for leg in self.offers.offers if on_node(leg)]
        for leg in offers:
            self.offers.end_offer(leg, "failed", cancel=cancel)
        talking = [(leg, o) for leg, o in self.offers.talking.items() if on_node(leg)]
        for leg, offer in talking:
            self.offers.talking.pop(leg, None)
            self.offers.agent_hung_up(leg, offer, cause="node lost" if not cancel else "")
        callers = [cid for cid, w in self.line.waiting.items() if w.callback is None and on_node(cid)]
        for call_id in callers:
            self.line.drop_waiter(call_id, "gone")
        return len(offers), len(talking), len(callers)

    async def refresh_devices(self) -> None:
        """Read every endpoint's device state (DeviceStateList) and reconcile."""
        try:
            resp = await self.ami.send({"Action": "DeviceStateList"}, timeout=5)
        except (AmiError, TimeoutError) as exc:
            log.warning("device state list failed: %s", exc)
            return
        for ev in getattr(resp, "events", ()):
            self.desk.device_changed(ev.get("Device") or "", ev.get("State") or "")

    def handle_event(self, ev: Event) -> None:
        name = ev.name
        offers = self.offers.offers
        if name == "DeviceStateChange":
            self.desk.device_changed(ev.get("Device") or "", ev.get("State") or "")
        elif name == "OriginateResponse":
            leg = ev.get("Uniqueid") or ""
            offer = offers.get(leg)
            if offer is not None and offer.callback_id and (ev.get("Response") or "") == "Success":
                self.callbacks.agent_answered(offer)
            elif offer is not None and (ev.get("Response") or "") != "Success":
                reason = ev.get("Reason") or ""
                result = {REASON_NO_ANSWER: "timeout", REASON_BUSY: "rejected",
                          REASON_CONGESTION: "rejected"}.get(reason) or result_of_cause(offer.cause)
                if result:
                    self.offers.end_offer(leg, result)
                else:
                    # Asterisk 22 says Reason 0 for a 486 Busy too; the leg's Hangup (cause
                    # 17) follows at once and decides. The timer ends it if none comes.
                    offer.failed_at = self.clock()
        elif name == "DialEnd":
            offer = offers.get(ev.get("Uniqueid") or "")
            if offer is not None and offer.callback_id:
                offer.dial_status = ev.get("DialStatus") or ""
        elif name == "HangupRequest":
            offer = offers.get(ev.get("Uniqueid") or "")
            if offer is not None and (ev.get("Cause") or "") not in ("", "0"):
                offer.cause = ev.get("Cause") or ""
        elif name == "BridgeEnter":
            leg = ev.get("Uniqueid") or ""
            if leg in offers:
                if offers[leg].callback_id:
                    self.callbacks.answered(leg)
                else:
                    self.offers.answered(leg)
        elif name == "Hangup":
            uid = ev.get("Uniqueid") or ""
            talking = self.offers.talking
            if uid in offers and offers[uid].answered is not None:
                self.callbacks.not_reached(uid, offers.pop(uid))
            elif uid in offers:
                # Rejected or hung up before the bridge; OriginateResponse may follow.
                cause = ev.get("Cause") or ""
                self.offers.end_offer(uid, result_of_cause(cause) or result_of_cause(offers[uid].cause)
                                      or "failed")
            elif uid in talking:
                self.offers.agent_hung_up(uid, talking.pop(uid), cause=ev.get("Cause-txt") or "")
            else:
                for w in list(self.line.waiting.values()):
                    if w.uniqueid == uid and w.session is not None:
                        self.line.caller_gone(w.call.call_id)
