"""Where each AsyncAGI session goes, and re-adoption of calls after a restart.

* context ``hotline``: a new call: the call record opens, the IVR flow runs
  (its ``queue`` node hands the caller to the ACD). Past capacity (the
  :class:`~switchboard.telephony.overload.OverloadCheck` says so) the new
  caller is refused instead: "all lines are busy" then a clean hang-up, or
  straight to the fallback queue (``overload.action``); the record says
  ``call.refused_overload`` and ends with outcome ``overload``. Only new
  hotline calls are ever refused (not re-adopted callers, surveys or agents);
* context ``hotline-after``, extension ``survey``: the caller is back after
  the agent hung up: the flow resumes at its survey node;
* context ``agents``: an agent's feature code;
* context ``transfer-line``: a caller an agent transferred (``acd.transfers``) back
  into our line, with its original join time and priority;
* contexts ``agent-leg``, ``consult-agent``, ``consult-leg``: an agent's feature code
  pressed during a call (``call_codes``); a failure there only ends the AGI, never the call.

After a service restart, :meth:`AgiEntry.readopt` lists the channels still
sitting in ``AGI(agi:async)``: callers that had joined the line (their
``SB_*`` channel variables say when, for which topic and province) go back
to the router with their original join time; callers still in the IVR resume
at the node their flow waited at (the runner keeps its memo in ``SB_IVR``; see
``ivr/memo.py`` and ``telephony/resume.py``): a ``GET DATA`` the caller was
answering when the previous owner stopped still counts. A caller that never
reached a node (it arrived while nobody served the hotline) starts the flow.
Whatever the case, a record whose ``call.started`` the database does not hold
gets one, dated when the channel appeared, with its caller and dialed number.
A caller the dialplan sent to the fallback queue while no service beat gets a
record too (``call.handed_to_fallback``, reason ``no_service``).

A session whose flow step fails (not a hang-up: an AGI command without a
result in time, the AMI link lost, a refused command) is never left in AGI:
the caller is handed to the fallback queue (survey and feature-code sessions
are hung up) by the :class:`~switchboard.telephony.rescue.Rescuer`.

Why one long file: it is the one dispatch from a new AGI session to what serves it
(flows, surveys, feature codes, transfers, other parts' contexts) with one rescue path
for all of them; split, the "never strand a caller" rule would live in several places.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import dataclasses
import logging
import urllib.parse
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from switchboard.acd import service as acd_mod
from switchboard.acd.service import AcdService
from switchboard.ami.agi import AgiCommandError, AgiHangup, AgiManager, agi_quote
from switchboard.ami.client import AmiDisconnected, AmiError, AmiTimeout, ListResponse, node_hint
from switchboard.ami.protocol import Event
from switchboard.calls import CallBook
from switchboard.events import EventKind
from switchboard.ivr import memo as memo_mod
from switchboard.ivr import model as ivr_model
from switchboard.ivr.runner import StepFailed, failure_reason
from switchboard.telephony.call_codes import CallCodes
from switchboard.telephony.features import FeatureCodes
from switchboard.telephony.overload import OverloadCheck
from switchboard.telephony.rescue import CAUSE_NORMAL_CLEARING, NOT_IN_AGI, Rescuer, duration_s
from switchboard.telephony.resume import answer_in_flight

log = logging.getLogger("switchboard.entry")

#: The call id of the AGI session a task is serving (the IVR runner's emit has no call id).
current_call: contextvars.ContextVar[str] = contextvars.ContextVar("current_call", default="")

ADOPT_VARS = (acd_mod.VAR_CALL_ID, acd_mod.VAR_TOPIC, acd_mod.VAR_PROVINCE, acd_mod.VAR_PRIORITY,
              acd_mod.VAR_LANGUAGE, acd_mod.VAR_JOINED, acd_mod.VAR_CALLER, "SB_DID", memo_mod.VARIABLE)


class AgiEntry:
    def __init__(self, *, book: CallBook, runner: Any, acd: AcdService, features: FeatureCodes,
                 ami: Any, hotline_context: str = "hotline", survey_context: str = "hotline-after",
                 agents_context: str = "agents", transfer_context: str = "transfer-line", overload: OverloadCheck | None = None,
                 busy_files: tuple[str, ...] = ()) -> None:
        self.book = book
        self.runner = runner
        self.acd = acd
        self.features = features
        self.ami = ami
        self.hotline_context = hotline_context
        self.survey_context = survey_context
        self.agents_context = agents_context
        self.transfer_context = transfer_context
        self.call_codes = CallCodes(acd)
        self.call_code_contexts = ("agent-leg", "consult-agent", "consult-leg")
        self.manager: AgiManager | None = None
        self.rescuer: Rescuer | None = None
        self.overload = overload
        self.busy_files = busy_files   # the "all lines are busy" prompts, as Asterisk finds them
        self._adopting = asyncio.Lock()   # start-up and AMI resync both ask: one pass at a time
        self.sessions_total = 0
        self.adopted_total = 0
        self.served: set[str] = set()   # uniqueids whose session a task is serving now
        # a transferred caller waits in line like a new one (re-adopted, or handed to the fallback queue)
        self.hotline_contexts = (hotline_context, transfer_context)
        self.other_contexts: tuple[str, ...] = (survey_context, agents_context)
        #: (call id) -> is its call.started stored? (None: cannot tell); None: not asked
        self.started_check: Any = None
        self.resumed_total = 0
        # other parts' contexts (e.g. ``campaign-answered``: the campaign dialer's answered contacts)
        self.handlers: dict[str, Callable[[Any], Awaitable[None]]] = {}

    def flow_over(self) -> set[str]:
        """Caller channels whose flow has ended (normally: nothing more to do for them in AGI)."""
        return {f.uniqueid for f in self.book.calls.values() if f.flow_end and not f.fallback}

    def emit_current(self, kind: EventKind, data: dict[str, Any]) -> None:
        call_id = current_call.get()
        if call_id:
            self.book.emit(call_id, kind, data)   # the IVR's last step can follow call.ended too

    async def on_start(self, session: Any) -> None:
        self.sessions_total += 1
        current_call.set(session.linkedid)
        self.served.add(session.uniqueid)
        try:
            await self._dispatch(session)
        except StepFailed as exc:
            await self._rescue(session, exc.reason, exc.node, exc.detail)
        except (AmiTimeout, AmiDisconnected, AgiCommandError) as exc:
            await self._rescue(session, failure_reason(exc), self.book.node_of(session.linkedid), str(exc))
        finally:
            self.served.discard(session.uniqueid)

    async def _rescue(self, session: Any, reason: str, node: str, detail: str) -> None:
        """The session's step failed and the channel may still sit in AGI: never leave it there."""
        if self.rescuer is None:
            return
        call_id = session.linkedid if session.linkedid in self.book.calls else ""
        context = session.env.get("agi_context", "")
        if context in self.call_code_contexts:     # an agent's code in a call: leave AGI, keep the call
            log.warning("in-call code on %s failed (%s: %s): back to the call", session.channel, reason, detail)
            with contextlib.suppress(AgiHangup, AmiTimeout, AmiDisconnected, AgiCommandError):
                await session.break_(timeout=5)
            return
        if context in (self.hotline_context, self.transfer_context):
            result = await self.rescuer.hand_to_fallback(channel=session.channel, uniqueid=session.uniqueid,
                                                         call_id=call_id, reason=reason, node=node, detail=detail,
                                                         session=session)
        else:   # a survey or a feature code: nothing to hand on; end it cleanly
            result = await self.rescuer.hang_up(channel=session.channel, call_id=call_id, reason=reason, node=node,
                                                cause=CAUSE_NORMAL_CLEARING, detail=detail)
        if call_id and result != "failed":
            self.book.flow_ended(call_id, reason="caller_hangup" if result == "gone" else result, node=node)

    async def _dispatch(self, session: Any) -> None:
        env = session.env
        context = env.get("agi_context", "")
        if env.get("agi_adopted") == "1":
            await self._resume_adopted(session)
        elif context == self.hotline_context:
            if not await self._refused(session):
                await self._new_call(session)
        elif context == self.survey_context:
            variables = dict(self.acd.call_vars.get(session.linkedid, {}))
            facts = self.book.calls.get(session.linkedid)
            if facts is not None:
                facts.in_survey = True
            await self.runner.run(session, start_at="survey", variables=variables)
        elif context == self.agents_context:
            await self.features.handle(session)
        elif context in self.call_code_contexts:
            await self.call_codes.handle(session)
        elif context == self.transfer_context:
            if not self.acd.transfers.knows(session.linkedid):
                raise StepFailed(reason="transfer_unknown", node="transfer",
                                 detail="a caller in transfer-line with no transfer under way")
            await self.acd.transfers.requeue(session)
        elif context in self.handlers:
            await self.handlers[context](session)
        else:
            log.warning("AGI session from unexpected context %r on %s: handing it back", context, session.channel)
            try:
                await session.execute("HANGUP", timeout=5)
            except AgiHangup:
                pass

    def _open_record(self, session: Any) -> None:
        env = session.env
        caller = env.get("agi_callerid", "")
        caller = "" if caller in ("unknown", "anonymous") else caller
        dialed = env.get("agi_dnid", "") or env.get("agi_extension", "")
        self.book.started(call_id=session.linkedid, uniqueid=session.uniqueid, caller=caller, dialed=dialed,
                          channel=session.channel, language=env.get("agi_language", ""))

    async def _refused(self, session: Any) -> bool:
        """Past capacity, refuse the new caller cleanly (busy message or the fallback queue); True if refused."""
        if self.overload is None:
            return False
        verdict = self.overload.check()
        if not verdict.refuse:
            return False
        call_id, action = session.linkedid, self.overload.action
        self._open_record(session)
        self.book.refused_overload(call_id, reason=verdict.reason, action=action,
                                   figures={"reasons": [str(r) for r in verdict.reasons], **verdict.load.as_dict()})
        self.overload.refused(verdict)
        log.warning("call %s: refused past capacity (%s: %s): %s", call_id, ", ".join(verdict.reasons),
                    verdict.load.as_dict(), "to the fallback queue" if action == "fallback" else "lines busy")
        if action == "fallback" and self.rescuer is not None:
            result = await self.rescuer.hand_to_fallback(
                channel=session.channel, uniqueid=session.uniqueid, call_id=call_id, reason="overload", node="",
                detail=f"past capacity: {verdict.reason}", session=session)
            if result != "failed":
                self.book.flow_ended(call_id, reason="caller_hangup" if result == "gone" else result, node="")
            return True
        try:
            await session.execute("ANSWER", timeout=10)
            for file in self.busy_files:
                await session.execute(f"STREAM FILE {agi_quote(file)} \"\"", timeout=60)
            self.book.flow_ended(call_id, reason="overload", node="")
            await session.execute("HANGUP", timeout=5)
        except AgiHangup:
            self.book.flow_ended(call_id, reason="caller_hangup", node="")
        return True

    async def _new_call(self, session: Any, variables: dict[str, str] | None = None,
                        resume: memo_mod.Memo | None = None) -> None:
        self._open_record(session)
        try:
            result = await self.runner.run(session, variables=variables, resume=resume)
        except LookupError as exc:   # no flow for this number
            log.error("call %s: %s", session.linkedid, exc)
            self.book.flow_ended(session.linkedid, reason="failed", node="")
            try:
                await session.execute("HANGUP", timeout=5)
            except AgiHangup:
                pass
            return
        node = result.end.node
        hangup_reason = (self.hangup_reason_of(result.flow, node) or "") if node else ""
        self.book.flow_ended(session.linkedid, reason=result.end.reason, node=node, hangup_reason=hangup_reason)

    # ------------------------------------------------------------------ re-adoption

    async def readopt(self) -> int:
        """Take over callers still in AsyncAGI (after a service restart). Returns how many."""
        if self.manager is None:
            return 0
        async with self._adopting:
            return await self._readopt()

    async def _readopt(self) -> int:
        assert self.manager is not None
        try:
            listing = await self.ami.send({"Action": "CoreShowChannels"}, timeout=10)
        except (AmiError, TimeoutError) as exc:
            log.warning("re-adoption: cannot list channels: %s", exc)
            return 0
        if not isinstance(listing, ListResponse):
            return 0
        channels = [ch for ch in listing.events if ch.name == "CoreShowChannel"]
        await self._adopt_bridged(channels)
        count = 0
        for ch in channels:
            if (ch.get("Application") or "") == "Queue" and (ch.get("Context") or "") in self.hotline_contexts:
                await self._adopt_fallback(ch)
                continue
            if (ch.get("Application") or "") in NOT_IN_AGI or ch.get("BridgeId"):
                continue
            count += await self._adopt(ch)
        self.adopted_total += count
        return count

    async def adopt_channel(self, ch: Any) -> int:
        """Adopt one channel found in AGI (a ``CoreShowChannel`` event) the service holds no session of."""
        if self.manager is None or ch is None:
            return 0
        async with self._adopting:
            count = await self._adopt(ch)
        self.adopted_total += count
        return count

    async def _adopt(self, ch: Any) -> int:
        assert self.manager is not None
        uniqueid = ch.get("Uniqueid") or ""
        if not uniqueid or uniqueid in self.manager.sessions:
            return 0
        context = ch.get("Context") or ""
        if context not in (self.hotline_context, self.survey_context, self.transfer_context):
            return 0
        channel = ch.get("Channel") or ""
        values = await self._getvars(channel, ADOPT_VARS, uniqueid)
        env = {
            "agi_request": "async", "agi_channel": channel, "agi_uniqueid": uniqueid,
            "agi_callerid": values.get(acd_mod.VAR_CALLER) or ch.get("CallerIDNum") or "",
            "agi_context": context, "agi_extension": values.get("SB_DID") or ch.get("Exten") or "",
            "agi_dnid": values.get("SB_DID") or "", "agi_adopted": "1",
            "sb_age_s": str(duration_s(ch.get("Duration") or "")),
        }
        env.update({f"sb_{k.lower()}": v for k, v in values.items()})
        encoded = urllib.parse.quote("".join(f"{k}: {v}\n" for k, v in env.items()))
        start = Event("AsyncAGIStart", {"Channel": channel, "Uniqueid": uniqueid,
                                        "Linkedid": ch.get("Linkedid") or uniqueid, "Env": encoded})
        log.info("re-adopting %s (call %s, %s)", channel, ch.get("Linkedid"),
                 "waiting" if values.get(acd_mod.VAR_JOINED) else "in the IVR")
        self.manager.handle_event(start)
        return 1

    async def _getvars(self, channel: str, names: tuple[str, ...], uniqueid: str = "") -> dict[str, str]:
        """Channel variables by name ("" for one unset or unreadable), asked all at once
        (of the channel's node, with several: its uniqueid says which)."""
        hint = node_hint(self.ami, uniqueid)

        async def one(name: str) -> str:
            try:
                resp = await self.ami.send({"Action": "Getvar", "Channel": channel, "Variable": name}, timeout=5,
                                           **hint)
                return (resp.headers.get("Value") or "") if resp.success else ""
            except (AmiError, TimeoutError):
                return ""

        return dict(zip(names, await asyncio.gather(*(one(n) for n in names)), strict=True))

    async def _adopt_bridged(self, channels: list[Any]) -> int:
        """Calls an agent was talking on when the service stopped: Asterisk kept the bridge; take
        their records back so the hang-ups still close them (``call.ended``, the agent's talk time)."""
        by_bridge: dict[str, list[Any]] = {}
        for ch in channels:
            if ch.get("BridgeId"):
                by_bridge.setdefault(ch.get("BridgeId") or "", []).append(ch)
        count = 0
        for members in by_bridge.values():
            legs = {id(ch): self.features.agent_for(ch.get("Channel") or "") for ch in members}
            others = [ch for ch in members if legs[id(ch)] is None]
            if len(others) != 1 or len(members) < 2:
                continue   # not one caller with agents (a conference, a transfer in progress)
            caller = others[0]
            uniqueid, channel = caller.get("Uniqueid") or "", caller.get("Channel") or ""
            if not uniqueid or self.book.knows_channel(uniqueid):
                continue
            values = await self._getvars(channel, ADOPT_VARS, uniqueid)
            call_id = values[acd_mod.VAR_CALL_ID]
            if not call_id:    # never reached an agent through us (e.g. the fallback queue)
                continue
            age = duration_s(caller.get("Duration") or "")
            self.book.adopt(call_id=call_id, uniqueid=uniqueid, answered=True, age_s=age,
                            caller=values[acd_mod.VAR_CALLER] or caller.get("CallerIDNum") or "",
                            dialed=values["SB_DID"] or caller.get("Exten") or "")
            await self._ensure_started(call_id, uniqueid=uniqueid, channel=channel, age_s=age, reached_flow=True)
            # its place in line (topic, province, join time, priority), so it can be passed on again
            memo = memo_mod.decode(values[memo_mod.VARIABLE])
            place = self.acd.place_of_bridged(call_id, channel=channel, uniqueid=uniqueid, values=values,
                                              variables=memo.variables if memo is not None else None)
            for leg in members:
                agent_id = legs[id(leg)]
                if agent_id is not None:
                    self.acd.adopt_talking(leg.get("Uniqueid") or "", call_id=call_id, agent_id=agent_id,
                                           talked_s=duration_s(leg.get("Duration") or ""), caller=place)
            log.info("re-adopted call %s bridged with %s", call_id,
                     ", ".join(ch.get("Channel") or "" for ch in members if ch is not caller))
            count += 1
        return count

    async def _adopt_fallback(self, ch: Any) -> None:
        """A caller the dialplan sent to the fallback queue while no service beat (no record of
        ours): recorded now, ``call.handed_to_fallback`` (reason ``no_service``); its hang-up
        closes the record (outcome ``fallback``)."""
        uniqueid, channel = ch.get("Uniqueid") or "", ch.get("Channel") or ""
        if not uniqueid or self.book.knows_channel(uniqueid):
            return
        values = await self._getvars(channel, (acd_mod.VAR_CALL_ID, "SB_DID"), uniqueid)
        if values[acd_mod.VAR_CALL_ID]:   # the service handed it there itself: its record says so
            return
        call_id = ch.get("Linkedid") or uniqueid
        caller = ch.get("CallerIDNum") or ""
        facts = self.book.adopt(call_id=call_id, uniqueid=uniqueid, age_s=duration_s(ch.get("Duration") or ""),
                                caller="" if caller in ("unknown", "anonymous", "<unknown>") else caller,
                                dialed=values["SB_DID"] or "")
        facts.queued = False
        first = await self._ensure_started(call_id, uniqueid=uniqueid, channel=channel,
                                           age_s=duration_s(ch.get("Duration") or ""), reached_flow=False)
        if first:
            self.book.handed_to_fallback(call_id, reason="no_service", node="",
                                         detail="the dialplan's fallback queue: no service heartbeat")
        else:   # adopted before (an earlier take-over): its record already says so
            facts.fallback, facts.flow_end = "no_service", "fallback"
        log.info("call %s: in the fallback queue since before this service led: recorded", call_id)

    async def _ensure_started(self, call_id: str, *, uniqueid: str, channel: str, age_s: float,
                              reached_flow: bool) -> bool:
        """Give an adopted call its ``call.started`` when the database holds none (the call came
        while nobody served the hotline, or the previous owner died before writing it). True
        when it did."""
        facts = self.book.calls.get(call_id)
        if facts is None:
            return False
        stored: bool | None = None
        if self.started_check is not None:
            stored, floor = await self.started_check.with_floor(call_id)
            self.book.bus.seed(call_id, floor)   # above what an earlier adopter stored, however fast it was
        if stored or (stored is None and reached_flow):
            return False
        at = datetime.now(UTC) - timedelta(seconds=max(0.0, age_s))
        self.book.emit(call_id, EventKind.CALL_STARTED, {
            "caller": facts.caller, "dialed": facts.dialed, "channel": channel, "language": "",
            "uniqueid": uniqueid, "adopted": True}, ts=at)
        log.info("call %s: adopted without a started record: started %s, caller %s, dialed %s", call_id,
                 at.isoformat(timespec="seconds"), "yes" if facts.caller else "unknown", facts.dialed or "?")
        return True

    async def _resume_adopted(self, session: Any) -> None:
        env = session.env
        call_id = env.get("sb_sb_call_id") or session.linkedid
        joined = env.get("sb_sb_joined", "")
        caller = env.get("agi_callerid", "")
        caller = "" if caller in ("unknown", "anonymous") else caller
        dialed = env.get("agi_dnid", "")
        try:
            age = float(env.get("sb_age_s") or 0)
        except ValueError:
            age = 0.0
        memo = memo_mod.decode(env.get("sb_sb_ivr", ""))
        if not joined:
            # It never reached the line: the flow resumes where it waited (or starts, if it never did).
            facts = self.book.adopt(call_id=call_id, uniqueid=session.uniqueid, caller=caller, dialed=dialed,
                                    age_s=age)
            facts.queued = False
            await self._ensure_started(call_id, uniqueid=session.uniqueid, channel=session.channel, age_s=age,
                                       reached_flow=memo is not None)
            if memo is not None and memo.end:
                await self._end_adopted(session, call_id, memo)
                return
            if memo is not None:
                digits, whole, typed = await answer_in_flight(session, memo.node)
                memo = dataclasses.replace(memo, digits=digits, partial=not whole, typed=typed)
                self.resumed_total += 1
                log.info("call %s: resumes at %s%s%s", call_id, memo.node,
                         " with the answer given meanwhile" if digits is not None else "",
                         f" and {len(typed)} key(s) typed while nobody served the call" if typed else "")
            await self._new_call(session, resume=memo)
            return
        self.book.adopt(call_id=call_id, uniqueid=session.uniqueid, caller=caller, dialed=dialed, age_s=age)
        await self._ensure_started(call_id, uniqueid=session.uniqueid, channel=session.channel, age_s=age,
                                   reached_flow=True)
        # its record says it joined (the previous owner wrote queue.joined): taken back as
        # queue.resumed, so the record keeps one join; not stored (or unknown): joins now
        joined_stored = (await self.started_check(call_id, "queue.joined")
                         if self.started_check is not None else None)
        request = _AdoptedRequest(
            topic=env.get("sb_sb_topic") or "general", province=env.get("sb_sb_province") or "",
            priority=int(env.get("sb_sb_priority") or 0), language=env.get("sb_sb_language") or "vi",
            province_source="adopted", variables={"joined_wall": joined}, resumed=bool(joined_stored))
        try:
            outcome = await self.acd.enqueue(session, request)
        except AgiHangup:
            self.book.flow_ended(call_id, reason="caller_hangup", node="")   # closes the record now
            return
        if outcome == "callback":
            try:
                await session.execute("HANGUP", timeout=5)
            except AgiHangup:
                pass

    def hangup_reason_of(self, flow: str, node: str) -> str | None:
        """The reason of hang-up node ``node`` of ``flow`` ("" for none); None when it is none."""
        try:
            found = self.runner.registry.flow(flow).nodes.get(node)
        except KeyError:
            return None
        return found.reason if isinstance(found, ivr_model.Hangup) else None

    async def _end_adopted(self, session: Any, call_id: str, memo: memo_mod.Memo) -> None:
        """The previous owner's flow had ended at a hang-up node (its goodbye under way): the record
        gets that end; what it left running plays out, then the channel is hung up."""
        hangup_reason = self.hangup_reason_of(memo.flow, memo.node) or ""
        self.book.flow_ended(call_id, reason=memo.end, node=memo.node, hangup_reason=hangup_reason)
        log.info("call %s: its flow had ended at %s (%s): hung up once what runs there ends", call_id,
                 memo.node, memo.end)
        try:
            await session.execute("NOOP", timeout=120)   # the goodbye the previous owner started
            await session.execute("HANGUP", timeout=5)
        except AgiHangup:
            pass


class _AdoptedRequest:
    """The same fields as the IVR's Enqueue command, rebuilt from channel variables."""

    def __init__(self, *, topic: str, province: str, priority: int, language: str, province_source: str,
                 variables: dict[str, str], resumed: bool = False) -> None:
        self.resumed = resumed   # the record already holds its queue.joined
        self.topic = topic
        self.province = province
        self.priority = priority
        self.language = language
        self.province_source = province_source
        self.variables = variables

