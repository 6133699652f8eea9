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
from datetime import datetime, time
from typing import Any
from zoneinfo import ZoneInfo

from switchboard.acd.model import REASON_BUSY, REASON_CONGESTION, REASON_NO_ANSWER
from switchboard.ami.agi import AgiHangup
from switchboard.ami.client import AmiError, ListResponse
from switchboard.campaigns.model import Campaign, Result
from switchboard.campaigns.rules import AbandonBudget, Window, after_attempt, dial_allowance
from switchboard.config import CampaignSettings
from switchboard.store import campaigns as sc
from switchboard.store.errors import TRANSIENT_DB_ERRORS
from switchboard.store.pool import Db, acquire
from switchboard.telephony.numbers import NumberPolicy

__all__ = ["CampaignDialer", "Live", "result_of_failure"]

log = logging.getLogger("switchboard.campaigns")

#: Hang-up causes (Q.850) of a contact's leg that never answered.
_BUSY_CAUSES = frozenset({"17"})
_NO_ANSWER_CAUSES = frozenset({"18", "19", "16", "31"})

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
        self._unsubscribe = self.ami.subscribe(self.handle_event, names=("OriginateResponse", "Hangup"))
        self._task = asyncio.create_task(self._run(), name="campaign-dialer")

    async def stop(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
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
        pending = sum(1 for v in self.live.values()
                      if v.campaign.campaign_id == c.campaign_id and not v.connected and not v.done)
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
            claim = await self._claim(c, now)
            if claim is None:
                async with acquire(self._pool, timeout=self.timeout) as conn:
                    if in_flight + dialled == 0 and await sc.finish_if_done(conn, c.campaign_id, timeout=self.timeout):
                        log.info("campaign %s finished: every contact done", c.campaign_id)
                break
            await self._originate(c, claim, now)
            dialled += 1
        return dialled

    async def _claim(self, c: Campaign, now: datetime) -> sc.Claimed | None:
        attempt_id = f"cmp-{uuid.uuid4().hex[:20]}"
        async with acquire(self._pool, timeout=self.timeout) as conn:
            return await sc.claim(conn, c.campaign_id, attempt_id=attempt_id, now=now, timeout=self.timeout)

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
        self.dials_total[c.campaign_id] = self.dials_total.get(c.campaign_id, 0) + 1
        try:
            resp = await self.ami.send(action, timeout=10)
            ok, why = bool(resp.success), str(getattr(resp, "message", ""))
        except (AmiError, TimeoutError) as exc:
            ok, why = False, str(exc)
        if not ok:
            log.warning("campaign %s: Originate to %s refused: %s", c.campaign_id, claim.number, why)
            await self._finish(live, Result.NOT_DIALLED, detail=f"originate refused: {why}"[:200])
            return
        log.info("campaign %s: dialling %s (attempt %d, %s)", c.campaign_id, claim.number, claim.attempt_no,
                 claim.attempt_id)
        async with acquire(self._pool, timeout=self.timeout) as conn:
            await sc.mark_originated(conn, claim.attempt_id, now=self.wall(), timeout=self.timeout)

    # ------------------------------------------------------------------ Asterisk's answers

    def handle_event(self, ev: Any) -> None:
        uid = ev.get("Uniqueid") or ""
        live = self.live.get(uid)
        if live is None or live.done:
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

