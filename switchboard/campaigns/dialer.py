"""The campaign dialer: claims an attempt in PostgreSQL, then Originates through the trunk.

Owns: the dial loop (every ``tick_s``, for each running campaign: how many to dial now,
from ``rules.dial_allowance``), each attempt from its claim to its result, the answered
contact's session (context ``campaign-answered``: the campaign's flow runs there through
its own IVR runner), the abandon budget per campaign and day, and the recovery of attempts
left open by a previous process.

Order of one dial, the "never call anyone twice" rule:

1. ``store.campaigns.claim`` writes the attempt row (no result) and counts it, in one
   statement that also closes contacts on the do-not-call list: the last check before the dial;
2. the number goes through the number policy once more (``dial_string``: digits only);
3. ``Originate`` (``ChannelId`` = the attempt id) to ``PJSIP/<number>@trunk`` into the
   ``campaign-answered`` context. Refused by Asterisk: ``not_dialled`` (the contact is
   back at once, the attempt not counted).
4. The result comes from ``OriginateResponse`` / ``Hangup`` (no answer, busy, failed) or
   from the flow's end once answered (``opted_out``, ``message_heard_to_end``,
   ``transferred_to_agent``, ``answered``); ``store.campaigns.finish_attempt`` closes the
   attempt and moves the contact on (retry after the spacing, or done).

**Agent first** (a preview call, or a progressive campaign with ``connect: agent_first``):
the agent is reserved in the ACD (``Offer``: no inbound call is offered meanwhile) and its
phone is rung first (``ChannelId`` = the attempt id) into ``agent_context``, whose extension
is the contact's dial string; once the agent answers, the dialplan dials the contact on the
trunk and bridges them. The result comes from ``DialBegin``/``DialEnd`` of that leg and its
``Hangup``: ``transferred_to_agent`` when the contact answered, else the contact's dial
status (busy, no answer, failed); an agent who did not answer gives the attempt back
(``not_dialled``: the contact was never rung). No flow runs and no answer is abandoned.

**Preview**: :meth:`CampaignDialer.preview` holds the next due contact of the running preview
campaigns of the agent's topic (and province) for that agent (``store.campaigns.preview_hold``:
one agent, one contact; one contact, one agent; the hold expires after
``preview_hold_s``); :meth:`preview_call` claims it (the do-not-call check, the window) and
rings the agent first; :meth:`preview_skip` closes it with the agent's reason.

**A lost Asterisk node** (``AmiNodes``, several nodes): the attempt ids of calls placed on a
node start with that node's name (like Asterisk's own ids), so :meth:`node_lost` finds the
attempts of a lost node: they close ``failed`` (detail ``node_lost``) and follow the retry
rules; the open-attempt indexes keep a number out of a second call until then.

At start, an attempt still open (a previous process died) is never dialled again: its
result is unknown, so it closes as ``interrupted`` (final; listed in the report) once
Asterisk no longer has its channel. Pausing or stopping a campaign dials nothing new;
calls in flight finish.

Must not touch: SQL (``store.campaigns``), the ACD's state (it only reads the agents'
snapshots and the waiting callers; an answered contact who asks for an agent joins the
line through ``acd.enqueue`` like an inbound caller).

Why one long file: one attempt's whole life (claim, Originate, answer, flow, result,
retry) reads top to bottom; the pure rules are in ``rules.py``, the SQL in ``store``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from switchboard.acd import agent_state as st
from switchboard.acd.model import (
    REASON_BUSY,
    REASON_CONGESTION,
    REASON_NO_ANSWER,
    IllegalAgentAction,
    UnknownAgent,
)
from switchboard.ami.agi import AgiHangup
from switchboard.ami.client import AmiError, ListResponse
from switchboard.campaigns.model import Campaign, Mode, Result
from switchboard.campaigns.rules import AbandonBudget, Window, after_attempt, dial_allowance
from switchboard.config import CampaignSettings
from switchboard.store import campaigns as sc
from switchboard.store.errors import TRANSIENT_DB_ERRORS
from switchboard.store.pool import Db, acquire
from switchboard.telephony.numbers import NumberPolicy, masked

__all__ = ["CampaignDialer", "Live", "PreviewContact", "PreviewRefused", "result_of_dial_status",
           "result_of_failure"]

log = logging.getLogger("switchboard.campaigns")

#: Hang-up causes (Q.850) of a contact's leg that never answered.
_BUSY_CAUSES = frozenset({"17"})
_NO_ANSWER_CAUSES = frozenset({"18", "19", "16", "31"})
#: Hang-up causes of an agent's leg that declined the call (486 Busy Here, 603 Decline).
_REJECT_CAUSES = frozenset({"17", "21"})

VAR_CAMPAIGN = "SB_CAMPAIGN"
VAR_ATTEMPT = "SB_ATTEMPT"


def result_of_failure(reason: str, cause: str) -> Result:
    """The result of an Originate that was not answered: ``OriginateResponse``'s Reason first
    (3 no answer, 5 busy, 8 congestion), else the leg's hang-up cause (Asterisk 22 says
    Reason 0 for a 486 Busy: its Hangup says cause 17)."""
    if reason == REASON_NO_ANSWER:
        return Result.NO_ANSWER
    if reason == REASON_BUSY or cause in _BUSY_CAUSES:
        return Result.BUSY
    if reason == REASON_CONGESTION:
        return Result.FAILED
    if cause in _NO_ANSWER_CAUSES:
        return Result.NO_ANSWER
    return Result.FAILED


def result_of_dial_status(status: str) -> Result:
    """The result of an agent-first attempt whose contact did not answer, from ``DialEnd``'s
    DialStatus (``CANCEL``: the agent hung up while the contact's phone rang)."""
    if status == "BUSY":
        return Result.BUSY
    if status in ("NOANSWER", "CANCEL"):
        return Result.NO_ANSWER
    return Result.FAILED


class PreviewRefused(Exception):
    """A preview action that cannot be done now (``error_id``: stable, for the API)."""

    def __init__(self, message: str, error_id: str, **details: Any) -> None:
        super().__init__(message)
        self.error_id = error_id
        self.details = details


@dataclass(frozen=True, slots=True)
class PreviewContact:
    """What an agent sees of a contact before calling it: never the whole number."""

    campaign_id: str
    contact_id: int
    name: str
    number: str                      # masked (telephony.numbers.masked)
    participant_id: str
    province: str
    why: str                         # the campaign's description: why the contact is called
    topic: str
    data: Mapping[str, str]          # the contact's other columns (card_valid_to...)
    attempts: int                    # attempts made so far
    last_result: str
    held_until: datetime


@dataclass
class Live:
    """One attempt in flight."""

    campaign: Campaign
    claim: sc.Claimed
    started: datetime
    answered: datetime | None = None
    connected: bool = False          # bridged to an agent (or its flow is past the agent step)
    reason: str = ""                 # OriginateResponse Reason
    cause: str = ""                  # Hangup cause
    failed: bool = False             # OriginateResponse said Failure
    done: bool = False
    adopted: bool = False            # left open by a previous process
    agent_id: str = ""               # agent first: the agent reserved and rung first
    agent_answered: bool = False     # agent first: the agent's leg answered
    contact_rung: bool = False       # agent first: the contact's leg was dialled (DialBegin)
    dial_status: str = ""            # agent first: DialEnd's DialStatus of the contact's leg
    variables: dict[str, str] = field(default_factory=dict)


class CampaignDialer:
    """The outbound dialer of every running campaign (a part of the application)."""

    name = "campaign-dialer"

    def __init__(self, *, settings: CampaignSettings, pool: Db, ami: Any, policy: NumberPolicy, runner: Any,
                 acd: Any, window_for: Callable[[Campaign], Window], wall: Callable[[], datetime],
                 inbound_below_target: Callable[[], bool] = lambda: False,
                 observe: Callable[[str, str], None] = lambda campaign, result: None,
                 record: Any = None, trunk: str = "PJSIP/{number}@trunk", timeout: float = 10.0) -> None:
        self.settings = settings
        self._pool = pool
        self.ami = ami
        self.policy = policy
        self.runner = runner          # an IvrRunner whose on_enqueue is this dialer's ``enqueue``
        self.acd = acd
        self.window_for = window_for
        self.wall = wall
        self.inbound_below_target = inbound_below_target
        self.observe = observe
        self.observe_preview: Callable[[str, str], None] = lambda campaign, outcome: None
        self.record = record          # the CallBook: an answered contact's call record and timeline
        self.trunk = trunk
        self.timeout = timeout
        self.live: dict[str, Live] = {}                  # attempt id -> attempt in flight
        self.budgets: dict[str, AbandonBudget] = {}
        self.dials_total: dict[str, int] = {}            # campaign -> Originates sent (dial rate)
        self.last_reason: dict[str, str] = {}            # campaign -> why it dialled no more (logs)
        self._task: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._unsubscribe: Callable[[], None] | None = None
        self._wake = asyncio.Event()

    # ------------------------------------------------------------------ part

    async def start(self) -> None:
        self._unsubscribe = self.ami.subscribe(self.handle_event,
                                               names=("OriginateResponse", "Hangup", "DialBegin", "DialEnd"))
        if hasattr(self.ami, "on_lost"):
            self.ami.on_lost.append(self.node_lost)
        self._task = asyncio.create_task(self._run(), name="campaign-dialer")

    async def stop(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
        if hasattr(self.ami, "on_lost") and self.node_lost in self.ami.on_lost:
            self.ami.on_lost.remove(self.node_lost)
        tasks = [t for t in (self._task, *self._tasks) if t is not None]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def wake(self) -> None:
        self._wake.set()

    async def _run(self) -> None:
        recovered = False
        while True:
            try:
                if not recovered:
                    await self.recover()
                    recovered = True
                await self.tick()
            except asyncio.CancelledError:
                raise
            except TRANSIENT_DB_ERRORS as exc:
                log.warning("campaign dialer: database unavailable (%s): nothing dialled this round", exc)
            except Exception:
                log.exception("campaign dialer: round failed")
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.settings.tick_s)

    # ------------------------------------------------------------------ recovery

    async def recover(self) -> int:
        """Attempts a previous process left open: never dialled again; ``interrupted`` once their
        channel is gone (still up: followed until its hang-up). Returns how many were found."""
        async with acquire(self._pool, timeout=self.timeout) as conn:
            open_ = await sc.open_attempts(conn, timeout=self.timeout)
        if not open_:
            return 0
        alive = await self._channels()
        for a in open_:
            if a.attempt_id in self.live:
                continue
            row = await self._campaign(a.campaign_id)
            if row is None:
                continue
            claim = sc.Claimed(a.attempt_id, a.campaign_id, a.contact_id, a.number, a.attempt_no, "", "", "", {})
            live = Live(campaign=row, claim=claim, started=a.claimed_at, answered=a.answered_at, adopted=True)
            self.live[a.attempt_id] = live
            if a.attempt_id in alive:
                log.info("campaign %s: attempt %s to %s still up after a restart: closed as interrupted at its "
                         "hang-up", a.campaign_id, a.attempt_id, a.number)
            else:
                await self._finish(live, Result.INTERRUPTED, detail="service restarted during the call")
        return len(open_)

    async def _channels(self) -> set[str]:
        try:
            listing = await self.ami.send({"Action": "CoreShowChannels"}, timeout=10)
        except (AmiError, TimeoutError) as exc:
            log.warning("campaign recovery: cannot list channels: %s", exc)
            return set()
        if not isinstance(listing, ListResponse):
            return set()
        return {ev.get("Uniqueid") or "" for ev in listing.events if ev.name == "CoreShowChannel"}

    async def _campaign(self, campaign_id: str) -> Campaign | None:
        async with acquire(self._pool, timeout=self.timeout) as conn:
            found = await sc.get_campaign(conn, campaign_id, timeout=self.timeout)
        return found[0] if found is not None else None

    # ------------------------------------------------------------------ dialling

    async def tick(self) -> int:
        """One round over the running campaigns; returns how many numbers were dialled."""
        async with acquire(self._pool, timeout=self.timeout) as conn:
            campaigns = await sc.running_campaigns(conn, timeout=self.timeout)
        dialled = 0
        for c in campaigns:
            dialled += await self._dial_campaign(c)
        return dialled

    def _budget(self, c: Campaign) -> AbandonBudget:
        b = self.budgets.get(c.campaign_id)
        if b is None or b.limit != c.abandon_limit:
            b = self.budgets[c.campaign_id] = AbandonBudget(c.abandon_limit, ZoneInfo(c.timezone))
        return b

    async def _seed_budget(self, c: Campaign, now: datetime) -> AbandonBudget:
        b = self._budget(c)
        day = now.astimezone(b.tz).date().isoformat()
        if b.seeded_day != day:
            start = datetime.combine(now.astimezone(b.tz).date(), time(0), b.tz)
            async with acquire(self._pool, timeout=self.timeout) as conn:
                answered, abandoned = await sc.day_counts(conn, c.campaign_id, since=start, timeout=self.timeout)
            b.seed(answered=answered, abandoned=abandoned, now=now)
            b.seeded_day = day
        return b

    def ready_agents(self, c: Campaign) -> int:
        """Agents of the campaign's topic (and province) ready now, less the inbound callers
        waiting for that topic (inbound first) and the campaign's calls not yet connected."""
        ready = 0
        for snap in self.acd.agents():
            if snap.status != "ready" or int(snap.skills.get(c.topic, 0)) < 1:
                continue
            if c.province and snap.home_province != c.province:
                continue
            ready += 1
        waiting = sum(1 for w in self.acd.waiting_calls() if w.topic == c.topic)
        pending = sum(1 for v in self.live.values()     # agent first: its agent is already not ready
                      if v.campaign.campaign_id == c.campaign_id and not v.connected and not v.done
                      and not v.agent_id)
        return max(0, ready - waiting - pending)

    async def _dial_campaign(self, c: Campaign) -> int:
        now = self.wall()
        budget = await self._seed_budget(c, now)
        in_flight = sum(1 for v in self.live.values() if v.campaign.campaign_id == c.campaign_id and not v.done)
        allowance = dial_allowance(c, now=now, window=self.window_for(c), ready_agents=self.ready_agents(c),
                                   in_flight=in_flight, budget=budget,
                                   inbound_below_target=self.inbound_below_target(),
                                   max_lines=self.settings.max_lines)
        if allowance.reason != self.last_reason.get(c.campaign_id):
            self.last_reason[c.campaign_id] = allowance.reason
            log.info("campaign %s: %s (%d to dial)", c.campaign_id, allowance.reason, allowance.count)
        dialled = 0
        for _ in range(allowance.count):
            agent = self._free_agent(c) if c.agent_first else None
            if c.agent_first and agent is None:
                break
            claim = await self._claim(c, now, agent_id=agent.agent_id if agent is not None else None)
            if claim is None:
                async with acquire(self._pool, timeout=self.timeout) as conn:
                    if in_flight + dialled == 0 and await sc.finish_if_done(conn, c.campaign_id, timeout=self.timeout):
                        log.info("campaign %s finished: every contact done", c.campaign_id)
                break
            if agent is not None:
                await self._ring_agent(c, claim, agent.agent_id, agent.endpoint, now)
            else:
                await self._originate(c, claim, now)
            dialled += 1
        return dialled

    def _new_attempt_id(self) -> str:
        """The attempt id, also the ``ChannelId`` of the leg we originate. With several Asterisk
        nodes it starts with the node that places the call (``<node>-<seconds>.<hex>``, like
        Asterisk's own ids): the Originate goes there and a lost node names its attempts."""
        tail = uuid.uuid4().hex[:20]
        node = None
        if hasattr(self.ami, "place"):
            try:
                node = self.ami.place()
            except AmiError:
                node = None      # no node up: the Originate fails, the attempt is not_dialled
        return f"{node}-{int(self.wall().timestamp())}.cmp{tail}" if node else f"cmp-{tail}"

    async def _claim(self, c: Campaign, now: datetime, *, agent_id: str | None = None,
                     contact_id: int | None = None) -> sc.Claimed | None:
        attempt_id = self._new_attempt_id()
        async with acquire(self._pool, timeout=self.timeout) as conn:
            return await sc.claim(conn, c.campaign_id, attempt_id=attempt_id, now=now, agent_id=agent_id,
                                  contact_id=contact_id, timeout=self.timeout)

    def _free_agent(self, c: Campaign) -> Any:
        """A ready agent of the campaign's topic (and province) whose phone is idle, the longest
        ready first; None if none (agent first: the agent is reserved before the dial)."""
        best = None
        for snap in self.acd.agents():
            if snap.status != "ready" or snap.device not in ("NOT_INUSE",) or int(snap.skills.get(c.topic, 0)) < 1:
                continue
            if c.province and snap.home_province != c.province:
                continue
            if best is None or snap.since_wall < best.since_wall:
                best = snap
        return best

    async def _originate(self, c: Campaign, claim: sc.Claimed, now: datetime) -> None:
        live = Live(campaign=c, claim=claim, started=now, variables=_flow_vars(c, claim))
        self.live[claim.attempt_id] = live
        decision = self.policy.check(claim.number)
        if not decision.ok:      # the policy changed since the import: never dialled
            log.warning("campaign %s: %s refused by the number policy (%s): not dialled", c.campaign_id,
                        claim.number, decision.reason)
            await self._finish(live, Result.FAILED, detail=f"number refused: {decision.reason}", final=True)
            return
        dial = self.policy.dial_string(decision)
        cli = c.caller_id
        action = {
            "Action": "Originate",
            "Channel": self.trunk.format(number=dial),
            "ChannelId": claim.attempt_id,
            "Context": self.settings.context,
            "Exten": "s",
            "Priority": "1",
            "Timeout": str(int(c.ring_s * 1000)),
            "CallerID": f'"Hotline" <{cli}>' if cli else '"Hotline"',
            "Variable": [f"{VAR_CAMPAIGN}={c.campaign_id}", f"{VAR_ATTEMPT}={claim.attempt_id}"],
            "Async": "true",
        }
        await self._send_originate(live, action, f"dialling {claim.number}")

    async def _send_originate(self, live: Live, action: dict[str, Any], what: str) -> None:
        """Send the attempt's Originate. Refused: ``not_dialled`` (an agent reserved for it is
        free again); accepted: ``originated_at`` (a restart will not give the contact back)."""
        c, claim = live.campaign, live.claim
        self.dials_total[c.campaign_id] = self.dials_total.get(c.campaign_id, 0) + 1
        try:
            resp = await self.ami.send(action, timeout=10)
            ok, why = bool(resp.success), str(getattr(resp, "message", ""))
        except (AmiError, TimeoutError) as exc:
            ok, why = False, str(exc)
        if not ok:
            log.warning("campaign %s: Originate (%s) refused: %s", c.campaign_id, what, why)
            if live.agent_id:
                self._agent_event(live.agent_id, st.CancelOffer())
            await self._finish(live, Result.NOT_DIALLED, detail=f"originate refused: {why}"[:200])
            return
        log.info("campaign %s: %s (attempt %d, %s)", c.campaign_id, what, claim.attempt_no, claim.attempt_id)
        async with acquire(self._pool, timeout=self.timeout) as conn:
            await sc.mark_originated(conn, claim.attempt_id, now=self.wall(), timeout=self.timeout)

    # ------------------------------------------------------------------ Asterisk's answers

    def handle_event(self, ev: Any) -> None:
        uid = ev.get("Uniqueid") or ""
        live = self.live.get(uid)
        if live is None or live.done:
            return
        if live.agent_id:
            self._agent_first_event(live, ev)
            return
        if ev.name == "OriginateResponse":
            if (ev.get("Response") or "") != "Success":
                live.failed, live.reason = True, ev.get("Reason") or ""
                if live.reason in (REASON_NO_ANSWER, REASON_BUSY, REASON_CONGESTION):
                    self._spawn(self._finish(live, result_of_failure(live.reason, live.cause)))
        elif ev.name == "Hangup":
            live.cause = ev.get("Cause") or ""
            if live.adopted:
                self._spawn(self._finish(live, Result.INTERRUPTED, detail="service restarted during the call"))
            elif live.answered is None:
                self._spawn(self._finish(live, result_of_failure(live.reason, live.cause)))
            # answered: the session's end writes the result (it knows how the flow ended)

    # ------------------------------------------------------------------ agent first

    async def _ring_agent(self, c: Campaign, claim: sc.Claimed, agent_id: str, endpoint: str,
                          now: datetime) -> None:
        """Reserve the agent, ring it; its answer dials the contact (``agent_context``)."""
        live = Live(campaign=c, claim=claim, started=now, agent_id=agent_id)
        self.live[claim.attempt_id] = live
        decision = self.policy.check(claim.number)
        if not decision.ok:
            log.warning("campaign %s: %s refused by the number policy (%s): not dialled", c.campaign_id,
                        claim.number, decision.reason)
            live.agent_id = ""      # never reserved
            await self._finish(live, Result.FAILED, detail=f"number refused: {decision.reason}", final=True)
            return
        try:
            self._agent_event(agent_id, st.Offer(call_id=claim.attempt_id), strict=True)
        except IllegalAgentAction as exc:
            log.info("campaign %s: agent %s not free any more (%s): attempt given back", c.campaign_id, agent_id,
                     exc)
            live.agent_id = ""
            await self._finish(live, Result.NOT_DIALLED, detail="agent not free")
            return
        dial = self.policy.dial_string(decision)
        action = {
            "Action": "Originate",
            "Channel": f"PJSIP/{endpoint}",
            "ChannelId": claim.attempt_id,
            "Context": self.settings.agent_context,
            "Exten": dial,
            "Priority": "1",
            "Timeout": str(int(self.settings.agent_ring_s * 1000)),
            "CallerID": f'"Campaign {c.campaign_id}"',
            "Variable": [f"{VAR_CAMPAIGN}={c.campaign_id}", f"{VAR_ATTEMPT}={claim.attempt_id}",
                         f"SB_CMP_RING={int(c.ring_s)}", f"SB_CMP_CLI={c.caller_id}", f"SB_AGENT={agent_id}"],
            "Async": "true",
        }
        await self._send_originate(live, action, f"ringing agent {agent_id} for {claim.number}")

    def _agent_event(self, agent_id: str, event: st.Event, *, strict: bool = False) -> None:
        """An agent state change in the ACD's desk (the agent first reservation and its end)."""
        desk = getattr(self.acd, "desk", None)
        if desk is None:
            return
        try:
            desk.apply(agent_id, event)
        except IllegalAgentAction as exc:
            if strict:
                raise
            log.warning("campaign agent %s: %s", agent_id, exc)

    def _agent_first_event(self, live: Live, ev: Any) -> None:
        name = ev.name
        if name == "OriginateResponse":
            if (ev.get("Response") or "") == "Success":
                if not live.agent_answered:
                    live.agent_answered = True
                    self._agent_event(live.agent_id, st.Answer())
                    log.info("campaign %s: agent %s answered, dialling %s", live.campaign.campaign_id,
                             live.agent_id, live.claim.number)
            else:
                live.reason = ev.get("Reason") or ""
                if live.reason in (REASON_NO_ANSWER, REASON_BUSY, REASON_CONGESTION):
                    self._spawn(self._agent_first_end(live))
                else:   # Reason 0: the leg's Hangup (its cause) decides; no leg at all: none comes
                    self._spawn(self._agent_first_end(live, after_s=3.0))
        elif name == "DialBegin":
            live.contact_rung = True
        elif name == "DialEnd":
            live.dial_status = ev.get("DialStatus") or ""
            if live.dial_status == "ANSWER" and live.answered is None:
                live.answered, live.connected = self.wall(), True
                self._spawn(self._mark_answered(live))
        elif name == "Hangup":
            live.cause = ev.get("Cause") or ""
            self._spawn(self._agent_first_end(live))

    async def _mark_answered(self, live: Live) -> None:
        assert live.answered is not None
        async with acquire(self._pool, timeout=self.timeout) as conn:
            await sc.mark_answered(conn, live.claim.attempt_id, now=live.answered, timeout=self.timeout)
        log.info("campaign %s: %s answered, bridged to agent %s", live.campaign.campaign_id, live.claim.number,
                 live.agent_id)

    async def _agent_first_end(self, live: Live, *, detail: str = "", after_s: float = 0.0) -> None:
        """The agent's leg ended (or never came up): the result, and the agent to wrap-up or back.
        ``after_s``: only if nothing else ended it by then (an Originate that made no leg)."""
        if after_s:
            await asyncio.sleep(after_s)
        if live.done:
            return
        if live.adopted:
            result, detail = Result.INTERRUPTED, "service restarted during the call"
        elif live.answered is not None:
            result = Result.TRANSFERRED_TO_AGENT
        elif not live.agent_answered or not live.contact_rung:
            result = Result.NOT_DIALLED       # the contact's phone never rang: given back at once
            detail = detail or ("agent did not answer" if not live.agent_answered else "agent hung up first")
        else:
            result = result_of_dial_status(live.dial_status)
            detail = detail or f"dial status {live.dial_status or 'none'}"
        if live.agent_answered:
            self._agent_event(live.agent_id, st.Hangup())          # to wrap-up, as after any call
        elif live.reason == REASON_NO_ANSWER:
            self._agent_event(live.agent_id, st.NoAnswer())        # counted like an unanswered offer
        elif live.reason == REASON_BUSY or live.cause in _REJECT_CAUSES:
            self._agent_event(live.agent_id, st.Reject())          # declined (486/603): counted too
        else:
            self._agent_event(live.agent_id, st.CancelOffer())     # not the agent's doing (unreachable...)
        await self._finish(live, result, detail=detail)

    # ------------------------------------------------------------------ preview

    def _agent(self, agent_id: str) -> Any:
        try:
            return self.acd.snapshot(agent_id)
        except UnknownAgent:
            raise PreviewRefused(f"no agent {agent_id}", "not-found", agent_id=agent_id) from None

    async def _preview_campaigns(self, snap: Any, now: datetime) -> dict[str, Campaign]:
        async with acquire(self._pool, timeout=self.timeout) as conn:
            running = await sc.running_campaigns(conn, timeout=self.timeout)
        return {c.campaign_id: c for c in running
                if c.mode is Mode.PREVIEW and int(snap.skills.get(c.topic, 0)) >= 1
                and (not c.province or snap.home_province == c.province) and self.window_for(c).is_open(now)}

    def _preview_view(self, c: Campaign, h: sc.Held) -> PreviewContact:
        return PreviewContact(campaign_id=c.campaign_id, contact_id=h.contact_id, name=h.name,
                              number=masked(h.number), participant_id=h.participant_id, province=h.province,
                              why=c.description, topic=c.topic, data=dict(h.data), attempts=h.attempts,
                              last_result=h.last_result, held_until=h.until)

    async def preview(self, agent_id: str) -> PreviewContact | None:
        """The contact ``agent_id`` previews: the one it holds, else the next due contact of a
        running preview campaign of its topic (and province) whose window is open, held for it
        ``preview_hold_s``. None when there is none. The agent must be logged in."""
        snap = self._agent(agent_id)
        if snap.status == "logged_out":
            raise PreviewRefused(f"agent {agent_id} is logged out", "agent-state", state=snap.status)
        now = self.wall()
        campaigns = await self._preview_campaigns(snap, now)
        async with acquire(self._pool, timeout=self.timeout) as conn:
            held = await sc.preview_hold(conn, agent_id, sorted(campaigns), now=now,
                                         until=now + timedelta(seconds=self.settings.preview_hold_s),
                                         timeout=self.timeout)
        if held is None:
            return None
        return self._preview_view(campaigns[held.campaign_id], held)

    async def preview_call(self, agent_id: str, contact_id: int) -> PreviewContact:
        """Start the call to the contact the agent holds: the agent's phone rings first, then the
        contact's number from the campaign's list (never one from the client) is dialled."""
        snap = self._agent(agent_id)
        now = self.wall()
        async with acquire(self._pool, timeout=self.timeout) as conn:
            held = await sc.preview_held(conn, agent_id, contact_id, now=now, timeout=self.timeout)
        if held is None:
            raise PreviewRefused(f"contact {contact_id} is not held by {agent_id} (expired, skipped, called or on "
                                 "the do-not-call list)",
                                 "preview-not-held", contact_id=contact_id)
        c = (await self._preview_campaigns(snap, now)).get(held.campaign_id)
        if c is None:
            raise PreviewRefused(f"campaign {held.campaign_id} may not call now (paused, window closed or not "
                                 f"the agent's topic)", "campaign-state", campaign_id=held.campaign_id)
        if snap.status != "ready" or snap.device != "NOT_INUSE":
            raise PreviewRefused(f"agent {agent_id} is not ready with an idle phone ({snap.status}, {snap.device})",
                                 "agent-state", state=snap.status, device=snap.device)
        claim = await self._claim(c, now, agent_id=agent_id, contact_id=contact_id)
        if claim is None:     # on the do-not-call list now, or the number in another call
            raise PreviewRefused(f"contact {contact_id} may not be called now (do-not-call list, or in a call)",
                                 "contact-unavailable", contact_id=contact_id)
        self.observe_preview(c.campaign_id, "called")
        await self._ring_agent(c, claim, agent_id, snap.endpoint, now)
        return self._preview_view(c, held)

    async def preview_skip(self, agent_id: str, contact_id: int, reason: str) -> None:
        """The agent does not call the contact it holds: closed as ``skipped`` with the reason."""
        self._agent(agent_id)
        now = self.wall()
        async with acquire(self._pool, timeout=self.timeout) as conn:
            held = await sc.preview_held(conn, agent_id, contact_id, now=now, timeout=self.timeout)
            ok = held is not None and await sc.preview_skip(conn, agent_id, contact_id, reason, now=now,
                                                            timeout=self.timeout)
        if held is None or not ok:
            raise PreviewRefused(f"contact {contact_id} is not held by {agent_id}", "preview-not-held",
                                 contact_id=contact_id)
        log.info("campaign contact %d skipped by %s: %s", contact_id, agent_id, reason)
        self.observe_preview(held.campaign_id, "skipped")

    # ------------------------------------------------------------------ a lost Asterisk node

    async def node_lost(self, node: str) -> int:
        """Asterisk node ``node`` is lost (``AmiNodes.on_lost``): no event will come for its calls.
        Their attempts close ``failed`` (``node_lost``) and follow the retry rules; an agent
        reserved for one goes to wrap-up (it talked) or back. Returns how many closed."""
        node_for = getattr(self.ami, "node_for", None)
        lost = [v for aid, v in list(self.live.items()) if not v.done and node_for is not None
                and node_for(aid) == node]
        for v in lost:
            if v.adopted:
                await self._finish(v, Result.INTERRUPTED, detail="node_lost")
                continue
            if v.agent_id:
                if v.agent_answered:
                    self._agent_event(v.agent_id, st.Hangup())
                else:
                    self._agent_event(v.agent_id, st.CancelOffer())
            await self._finish(v, Result.FAILED, detail="node_lost")
        if lost:
            log.error("Asterisk node %s lost: %d campaign attempt(s) closed as failed (node_lost)", node, len(lost))
        return len(lost)

    # ------------------------------------------------------------------ the answered contact

    async def on_session(self, session: Any) -> None:
        """An answered contact entered ``campaign-answered``: run the campaign's flow."""
        attempt_id = session.uniqueid
        live = self.live.get(attempt_id)
        if live is None:
            log.warning("campaign session on %s: no attempt in flight (a previous process dialled it): hanging up",
                        session.channel)
            with contextlib.suppress(AgiHangup):
                await session.execute("HANGUP", timeout=5)
            return
        live.answered = self.wall()
        async with acquire(self._pool, timeout=self.timeout) as conn:
            await sc.mark_answered(conn, attempt_id, now=live.answered, timeout=self.timeout)
        if self.record is not None:
            self.record.started(call_id=session.linkedid, uniqueid=session.uniqueid, caller=live.claim.number,
                                dialed=f"campaign:{live.campaign.campaign_id}", channel=session.channel)
        result, abandoned = Result.ANSWERED, False
        try:
            run = await self.runner.run(session, variables=live.variables, flow_name=live.campaign.flow)
            reason = self._hangup_reason(run)
            if self.record is not None:
                self.record.flow_ended(session.linkedid, reason=run.end.reason, node=run.end.node,
                                       hangup_reason=reason)
            if reason == "opted_out":
                result = Result.OPTED_OUT
            elif reason == "message_heard":
                result = Result.MESSAGE_HEARD_TO_END
            elif reason == "no_agent":
                abandoned = True
            elif live.connected:
                result = Result.TRANSFERRED_TO_AGENT
        finally:
            if live.connected and result is Result.ANSWERED:
                result = Result.TRANSFERRED_TO_AGENT
            await self._finish(live, result, abandoned=abandoned)

    def _hangup_reason(self, run: Any) -> str:
        node = run.end.node
        if not node:
            return ""
        try:
            flow_node = self.runner.registry.flow(run.flow).nodes.get(node)
        except KeyError:
            return ""
        return str(getattr(flow_node, "reason", "") or "")

    async def enqueue(self, session: Any, request: Any) -> str:
        """The contact asked for an agent (the flow's queue node). With no agent of the topic
        ready, or none offered the call within ``no_agent_after_s``, the contact leaves the
        line at once (outcome ``no_agent``: the flow plays the sorry message) and the answer
        counts as abandoned. Otherwise the ACD serves it like an inbound caller."""
        live = self.live.get(session.uniqueid)
        c = live.campaign if live is not None else None
        topic = request.topic or (c.topic if c else "general")
        if not any(s.status == "ready" and int(s.skills.get(topic, 0)) >= 1 for s in self.acd.agents()):
            log.info("call %s: campaign contact asked for an agent, none ready: no_agent", session.linkedid)
            return "no_agent"
        task = asyncio.create_task(self.acd.enqueue(session, request))
        deadline = asyncio.get_running_loop().time() + self.settings.no_agent_after_s
        while not task.done() and asyncio.get_running_loop().time() < deadline:
            if self._offered(session.linkedid):
                break
            await asyncio.sleep(0.1)
        if not task.done() and not self._offered(session.linkedid):
            self.acd.line.drop_waiter(session.linkedid, "no_agent")
            log.info("call %s: no agent offered within %.1fs: no_agent", session.linkedid,
                     self.settings.no_agent_after_s)
        if live is not None and self._offered(session.linkedid):
            live.connected = True
        outcome = await task
        if live is not None and outcome in ("bridged", "served"):
            live.connected = True
        return str(outcome)

    def _offered(self, call_id: str) -> bool:
        w = self.acd.line.waiting.get(call_id)
        return w is None or w.offers > 0

    # ------------------------------------------------------------------ results

    async def _finish(self, live: Live, result: Result, *, abandoned: bool = False, detail: str = "",
                      final: bool = False) -> None:
        if live.done:
            return
        live.done = True
        now = self.wall()
        c = live.campaign
        nxt = after_attempt(c, result, attempts=live.claim.attempt_no, now=now)
        if final and not nxt.done:
            nxt = type(nxt)(done=True, final=result)
        try:
            async with acquire(self._pool, timeout=self.timeout) as conn:
                closed = await sc.finish_attempt(conn, live.claim.attempt_id, result, nxt, now=now,
                                                 answered_at=live.answered, abandoned=abandoned, detail=detail,
                                                 timeout=self.timeout)
                if result is Result.OPTED_OUT:
                    await sc.add_dnc(conn, live.claim.number, source="key9", campaign_id=c.campaign_id,
                                     attempt_id=live.claim.attempt_id, now=now, timeout=self.timeout)
        except TRANSIENT_DB_ERRORS as exc:
            # the attempt stays open in the database: a restart closes it as interrupted (never redialled)
            log.error("campaign %s: result %s of %s not stored (%s)", c.campaign_id, result.value,
                      live.claim.attempt_id, exc)
            closed = False
        self.live.pop(live.claim.attempt_id, None)
        if live.answered is not None and result is not Result.INTERRUPTED:
            self._budget(c).answer(now, abandoned=abandoned)
        if closed:
            self.observe(c.campaign_id, result.value)
            if abandoned:
                self.observe(c.campaign_id, "abandoned")
        log.info("campaign %s: %s -> %s%s%s", c.campaign_id, live.claim.number, result.value,
                 " (abandoned)" if abandoned else "",
                 "" if nxt.done else f", retry at {nxt.retry_at:%Y-%m-%d %H:%M:%S}" if nxt.retry_at else "")
        self.wake()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ------------------------------------------------------------------ figures

    def abandon_ratios(self) -> Mapping[str, float]:
        now = self.wall()
        return {cid: b.ratio(now) for cid, b in self.budgets.items()}

    def in_flight(self) -> Mapping[str, int]:
        out: dict[str, int] = {}
        for v in self.live.values():
            out[v.campaign.campaign_id] = out.get(v.campaign.campaign_id, 0) + 1
        return out


def _flow_vars(c: Campaign, claim: sc.Claimed) -> dict[str, str]:
    """Variables handed to the campaign's flow: the contact's data, the campaign's topic and
    province, the card's day and month when the contact has ``card_valid_to``."""
    out = {k: v for k, v in claim.data.items() if k.replace("_", "").isalnum()}
    out.update(topic=c.topic, province=c.province or claim.province or "", priority="1",
               campaign=c.campaign_id, contact_name=claim.name)
    valid_to = claim.data.get("card_valid_to", "")
    try:
        d = datetime.strptime(valid_to, "%Y-%m-%d")
        out.update(card_day=str(d.day), card_month=str(d.month), card_year=str(d.year))
    except ValueError:
        pass
    return out

