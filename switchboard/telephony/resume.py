"""Taking a caller over where the previous owner left it (a standby that takes the lead,
or the service restarted): the flow's memo on the channel, the answer to a ``GET DATA``
still running when the owner stopped, and whether the call's record was ever started.

* :class:`MemoKeeper` writes the IVR runner's memo (``ivr/memo.py``) into the channel
  variable ``SB_IVR`` (AMI ``Setvar`` on the channel; the ``call`` write class).
* :func:`answer_in_flight` waits for what the previous owner left running on the channel
  to finish (an AGI ``NOOP`` queues behind it) and returns the caller's answer when that
  was the ``GET DATA`` of the node the flow resumes at, and the keys typed after it while
  no command read them (``DTMFEnd`` events on AMI: ``ami/agi.py``).
* :class:`StartedCheck` asks the database whether the call's ``call.started`` is stored
  (None when it cannot tell).
* :class:`GoneRecords` closes, after a take-over, the records the previous owner left open
  whose channel Asterisk no longer has (the caller hung up while nobody could write it:
  ``call.ended`` with cause ``gone_during_takeover`` and the outcome the record shows).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from switchboard.ami.agi import KEEP_KEYS_TAG
from switchboard.ami.client import node_hint
from switchboard.calls import UNSERVED_HANGUPS, adopted_seq_base
from switchboard.events import EventKind
from switchboard.ivr import memo
from switchboard.store.leader import calls_started, open_records, stored_marks

log = logging.getLogger("switchboard.entry")


class MemoKeeper:
    def __init__(self, ami: Any, *, timeout: float = 2.0) -> None:
        self.ami = ami
        self.timeout = timeout

    async def __call__(self, session: Any, value: str) -> None:
        await self.ami.send({"Action": "Setvar", "Channel": session.channel, "Variable": memo.VARIABLE,
                             "Value": value}, timeout=self.timeout, **node_hint(self.ami, session.uniqueid))


async def answer_in_flight(session: Any, node: str, *, timeout: float = 120.0) -> tuple[str | None, bool, str]:
    """What the caller answered the previous owner at ``node``: (the digits of its ``GET DATA``,
    "" for a timeout, True) or (the key pressed into one of the node's prompts, False: the
    first key only) or (None, True) when nothing of the kind finished on the channel; and
    third, the keys pressed after that while no command read them (``AgiSession.typed_ahead``)."""
    # runs once what was running has finished; tagged so that its result keeps the keys typed
    await session.execute("NOOP", timeout=timeout, tag=KEEP_KEYS_TAG)
    typed_ahead = getattr(session, "typed_ahead", None)
    typed = typed_ahead() if typed_ahead is not None else ""
    for command_id, result in reversed(getattr(session, "orphans", ())):
        if result.result == "-1":
            continue
        if command_id.endswith(f"-getdata-{node}"):
            return str(result.result), True, typed
        if command_id.endswith(f"-play-{node}") and result.digit:
            return result.digit, False, typed
    return None, True, typed


class StartedCheck:
    """``await check(call_id)``: is the call's ``call.started`` (or ``kind``) stored? None when unknown.
    ``with_floor`` also says the call's highest stored event number."""

    def __init__(self, pool: Any, *, timeout: float = 2.0) -> None:
        self.pool = pool
        self.timeout = timeout

    async def __call__(self, call_id: str, kind: str = "call.started") -> bool | None:
        try:
            async with self.pool.acquire(timeout=self.timeout) as conn:
                return call_id in await calls_started(conn, [call_id], timeout=self.timeout, kind=kind)
        except Exception as exc:
            log.warning("call %s: cannot tell whether its record holds %s: %r", call_id, kind, exc)
            return None

    async def with_floor(self, call_id: str, kind: str = "call.started") -> tuple[bool | None, int]:
        """As the call itself, plus the call's highest stored event number (0: none, or the
        database cannot say), from the same query. An adopted call numbers its events above it
        as well as above ``adopted_seq_base``: a call adopted twice within a short time (two
        take-overs) may have had more events from its previous adopter than the time base grew
        meanwhile."""
        try:
            async with self.pool.acquire(timeout=self.timeout) as conn:
                return await stored_marks(conn, call_id, kind=kind, timeout=self.timeout)
        except Exception as exc:
            log.warning("call %s: cannot tell whether its record holds %s: %r", call_id, kind, exc)
            return None, 0


async def live_call_ids(ami: Any, *, timeout: float = 10.0) -> set[str] | None:
    """The call ids (Linkedid, and Uniqueid) of every channel Asterisk has; None when it cannot say."""
    from switchboard.ami.client import ListResponse

    try:
        listing = await ami.send({"Action": "CoreShowChannels"}, timeout=timeout)
    except Exception as exc:
        log.warning("channels not listed: %r", exc)
        return None
    if not isinstance(listing, ListResponse) or not listing.success:
        return None
    return {v for ev in listing.events if ev.name == "CoreShowChannel"
            for v in (ev.get("Linkedid"), ev.get("Uniqueid")) if v}


class GoneRecords:
    """``await close(live_call_ids)``: close the open records whose call is gone from Asterisk."""

    def __init__(self, pool: Any, book: Any, *, max_age_s: float = 6 * 3600, timeout: float = 5.0,
                 hangup_reason: Callable[[str, str], str | None] | None = None) -> None:
        self.pool = pool
        self.book = book
        #: (flow, node) -> the reason of that hang-up node ("" for none), None when it is no
        #: hang-up node: a flow whose last step was one had ended there (its goodbye played)
        self.hangup_reason = hangup_reason
        self.max_age_s = max_age_s
        self.timeout = timeout
        self.closed_total = 0

    async def close(self, live: set[str] | None) -> list[str]:
        if live is None:   # Asterisk could not say which calls live: close nothing
            return []
        try:
            async with self.pool.acquire(timeout=self.timeout) as conn:
                found = await open_records(conn, max_age_s=self.max_age_s, timeout=self.timeout)
        except Exception as exc:
            log.warning("records left open by the previous owner not checked: %r", exc)
            return []
        closed: list[str] = []
        for rec in found:
            if rec.call_id in live or rec.call_id in self.book.calls:
                continue
            outcome = ("answered" if rec.answered else "callback" if rec.callback
                       else "abandoned_queue" if rec.queued else "abandoned_ivr")
            node = None
            flow, last, kind = rec.last_step
            reason = self.hangup_reason(flow, last) if self.hangup_reason is not None and kind == "hangup" else None
            if outcome == "abandoned_ivr" and reason is not None:
                # the flow had ended at a hang-up node (the caller heard its goodbye): as the
                # previous owner would have closed it (CallFacts.outcome)
                node = last
                outcome = "callback" if reason == "callback" else \
                    "abandoned_ivr" if reason in UNSERVED_HANGUPS else "self_service"
            self.book.bus.seed(rec.call_id, adopted_seq_base())
            self.book.emit(rec.call_id, EventKind.CALL_ENDED, {"outcome": outcome, "node": node,
                                                               "cause": "gone_during_takeover", "duration_s": None})
            closed.append(rec.call_id)
        if closed:
            self.closed_total += len(closed)
            log.warning("closed %d record(s) whose caller hung up while nobody served the hotline: %s",
                        len(closed), ", ".join(closed))
        return closed
