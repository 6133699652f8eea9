"""Drive the pure flow machine over one AsyncAGI session.

The runner turns machine commands into AGI commands and AGI results into
machine inputs:

==================  =======================================================
command             AGI
==================  =======================================================
Play (barge-in)     ``STREAM FILE <prefix>/<lang>/<name> "0123456789*#"`` per prompt
Play                ``EXEC Playback <file>&<file>...``
Collect             ``GET DATA <file> <timeout ms> <max digits>``; after a
                    barge-in digit, ``WAIT FOR DIGIT`` for the rest
Record              ``RECORD FILE <voicemail_dir>/<call>-<uniqueid> wav "#" <ms> BEEP s=<silence>``
Transfer (number)   ``EXEC Dial <transfer_dial>,60`` then ``HANGUP``
Transfer (flow)     the other flow starts with the call's variables
HangUp              ``HANGUP``
Lookup / Enqueue /  the ``lookup`` / ``on_enqueue`` / ``on_callback`` /
callback / survey   ``on_survey`` callbacks
JoinConference      ``on_conference`` (a Q&A session's seat; it leaves AGI itself)
==================  =======================================================

A collect with a terminator ends as soon as it has ``max_digits``; the
terminator the caller presses next (within ``TRAILING_S``) belongs to that
input: it does not barge into the next prompt (the prompt plays on from where
it stopped) nor end the next ``GET DATA`` (asked again).

A hang-up (``AgiHangup`` from the session, or ``result=-1``) at any point
becomes ``HangUp`` for the machine, which closes the path where the caller
left. Every closed path step is emitted as ``ivr.step``.

Each time the flow waits at a new node the runner hands ``remember`` the flow's
memo (``ivr/memo.py``: flow, node, variables) to keep on the channel; a flow
taken over (``run(..., resume=Memo)``) starts at the memo's node with its
variables, and with the caller's answer there when the previous owner's
``GET DATA`` finished after it stopped (``Memo.digits``). ``GET DATA`` commands
are tagged ``getdata-<node>`` so that answer can be recognised.

Why one long file: each node kind's AGI commands sit beside the failure each one maps to,
so the whole contract between the pure machine and Asterisk reads in one place.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from switchboard.ami.agi import AgiCommandError, AgiHangup, AgiResult, agi_quote
from switchboard.ami.client import AmiDisconnected, AmiTimeout
from switchboard.events import EventKind
from switchboard.ivr import machine as mc
from switchboard.ivr import memo as memo_mod
from switchboard.ivr.callback_notice import notice_prompts
from switchboard.ivr.registry import FlowRegistry, Route
from switchboard.telephony.numbers import NumberPolicy, NumberRefused, default_callback_numbers, log_safe

__all__ = ["AgiSessionLike", "IvrRunner", "RunResult", "StepFailed", "failure_reason"]

log = logging.getLogger("switchboard.ivr")

ESCAPE_DIGITS = "0123456789*#"
#: The lookup the runner answers itself (``live_session``: the Q&A session the menu offers).
LIVE_SESSION = "live_session"
#: How long after a collect filled up its digits its terminator still counts as part of it (seconds).
TRAILING_S = 3.0


def _after_full_input(keys: str, cmd: mc.CollectCmd) -> str:
    """Keys that follow a full input, without its terminator when that comes first (it belongs
    to the input, as ``TRAILING_S`` says for a live collect)."""
    return keys[1:] if cmd.terminator and keys.startswith(cmd.terminator) else keys


def _split_input(keys: str, cmd: mc.CollectCmd) -> tuple[str, str]:
    """Keys typed ahead split into one input's (as ``GET DATA`` would end it: at ``max_digits``,
    or at the terminator, which it takes) and the rest, for the inputs after it."""
    if cmd.terminator:
        end = keys.find(cmd.terminator)
        if 0 <= end < cmd.max_digits:
            return keys[:end + 1], keys[end + 1:]
    return keys[:cmd.max_digits], _after_full_input(keys[cmd.max_digits:], cmd)


class AgiSessionLike(Protocol):
    channel: str
    uniqueid: str
    linkedid: str
    env: dict[str, str]

    async def execute(self, command: str, *, timeout: float | None = None, tag: str = "") -> AgiResult: ...


Emit = Callable[[EventKind, dict[str, Any]], None]
EnqueueHandler = Callable[[Any, mc.Enqueue], Awaitable[str]]
LookupHandler = Callable[[str, str], Awaitable[Mapping[str, str] | None]]
SurveyHandler = Callable[[Any, int], Awaitable[None]]
CallbackHandler = Callable[[Any, mc.RequestCallback], Awaitable[str | None]]
RememberHandler = Callable[[Any, str], Awaitable[None]]
ConferenceHandler = Callable[[Any, str], Awaitable[str]]
LiveSessionHandler = Callable[[str], Mapping[str, str] | None]


@dataclass(frozen=True, slots=True)
class RunResult:
    flow: str
    version: str
    end: mc.End
    path: tuple[mc.PathStep, ...]
    variables: Mapping[str, str]


class _Hangup(Exception):
    """The channel is gone (result=-1)."""


class StepFailed(Exception):
    """A flow step failed for a reason other than the caller hanging up (an AGI command that gave
    no result in time, the AMI link lost during a command, Asterisk refusing the command, a bug).
    The channel may still be up in AGI: whoever runs the flow must hand it on (never leave it)."""

    def __init__(self, *, reason: str, node: str, detail: str) -> None:
        super().__init__(f"{reason} at {node or '-'}: {detail}")
        self.reason = reason
        self.node = node
        self.detail = detail


def failure_reason(exc: BaseException) -> str:
    """A short, stable name for why a step failed (a metric label and the record's ``reason``)."""
    if isinstance(exc, AmiTimeout):
        return "agi_timeout"
    if isinstance(exc, AmiDisconnected):
        return "ami_disconnected"
    if isinstance(exc, AgiCommandError):
        return "agi_refused"
    return "error"


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _clean_number(value: str) -> str:
    value = value.strip()
    return "" if value.lower() in ("", "unknown", "anonymous", "<unknown>") else value


class IvrRunner:
    """Runs flows on AsyncAGI sessions. One instance serves every call.

    ``on_enqueue(session, Enqueue)`` is the ACD's: it returns when the call
    comes back to the IVR, with the outcome (``served`` once the agent hung
    up, ``callback``, ``closed``, ...); it raises ``AgiHangup`` if the caller
    hangs up while waiting. ``lookup(by, value)`` returns the participant's
    columns (strings) or None when not found; any exception counts as a
    lookup error. ``province_for_caller(number)`` maps a caller id to a
    province id (None when unknown); default:
    ``switchboard.geo.load_provinces().lookup_caller`` (landline area code).
    """

    def __init__(
        self,
        registry: FlowRegistry,
        *,
        emit: Emit,
        on_enqueue: EnqueueHandler,
        lookup: LookupHandler | None = None,
        on_survey: SurveyHandler | None = None,
        on_callback: CallbackHandler | None = None,
        province_for_caller: Callable[[str], str | None] | None = None,
        sound_prefix: str = "/var/lib/switchboard/prompts",
        voicemail_dir: str = "/var/spool/switchboard/voicemail",
        transfer_dial: str = "PJSIP/{number}@trunk",
        transfer_policy: NumberPolicy | None = None,
        clock: Callable[[], datetime] = _utc_now,
        callback_expected: Callable[[], datetime | None] | None = None,
        lookup_timeout: float = 5.0,
        command_timeout: float = 120.0,
        answer: bool = True,
        remember: RememberHandler | None = None,
        on_conference: ConferenceHandler | None = None,
        live_session: LiveSessionHandler | None = None,
    ) -> None:
        self.on_conference = on_conference
        # the lookup `by: live_session` (is a Q&A session running for this language?), answered in
        # process: no data dip, no event, nothing to resume
        self.live_session = live_session
        self.answer = answer
        self._remember = remember
        self._remembered: dict[str, tuple[str, str]] = {}   # uniqueid -> (flow, node) last kept
        self.registry = registry
        self._emit = emit
        self._on_enqueue = on_enqueue
        self._lookup = lookup
        self._on_survey = on_survey
        self._on_callback = on_callback
        self._province_for_caller = province_for_caller
        self.sound_prefix = sound_prefix.rstrip("/")
        self.voicemail_dir = voicemail_dir.rstrip("/")
        self.transfer_dial = transfer_dial
        # every number a transfer node dials goes through the one number policy (a node's `to`
        # may name a variable the caller typed): the default policy when none is given
        self._transfer_policy = transfer_policy or default_callback_numbers().policy
        self._clock = clock
        # when a callback asked now will come (None: soon); the caller hears it (ivr.callback_notice)
        self._callback_expected = callback_expected
        self._lookup_timeout = lookup_timeout
        self._timeout = command_timeout
        # uniqueid -> (terminator, until): a collect that filled up to max_digits, whose
        # terminator the caller is still about to press (it must not barge into what follows)
        self._trailing: dict[str, tuple[str, float]] = {}
        # uniqueid -> keys a flow taken over starts with (typed while nobody served the call):
        # they answer the next inputs as keys pressed into their prompts would
        self._typed_ahead: dict[str, str] = {}
        #: uniqueid -> the node each running flow is at (the record's node when a step fails)
        self.nodes: dict[str, str] = {}

    # ------------------------------------------------------------ public

    async def run(self, session: AgiSessionLike, *, start_at: str = "",
                  variables: Mapping[str, str] | None = None, resume: memo_mod.Memo | None = None,
                  flow_name: str = "") -> RunResult:
        """Run the flow for the session's dialed number until it ends or the caller hangs up.

        ``start_at`` enters the flow at that node (e.g. ``survey`` when the
        caller comes back after the agent hung up; a call to extension
        ``survey`` does this by itself) with extra ``variables`` (language,
        topic, province...). Never raises for a hang-up; any other failure
        of a step raises :class:`StepFailed` with the node the caller was at.
        ``flow_name`` runs that flow instead of the dialed number's (an outbound campaign's).
        """
        env = session.env
        caller = _clean_number(env.get("agi_callerid", ""))
        dialed = _clean_number(env.get("agi_dnid", "")) or _clean_number(env.get("agi_extension", ""))
        route = Route(self.registry.flow(flow_name)) if flow_name else self.registry.route(dialed)
        extra = dict(variables or {})
        variables = {
            "call_id": session.linkedid,
            "caller_province": self._caller_province(caller),
        }
        if not start_at and env.get("agi_extension") == "survey" and "survey" in route.flow.nodes:
            start_at = "survey"
        if route.province:
            variables["province"] = route.province
            variables["province_source"] = "did"
        if route.language:
            variables["language"] = route.language
        variables.update(extra)
        flow = route.flow
        if resume is not None:
            try:
                flow = self.registry.flow(resume.flow)
            except KeyError:
                log.warning("call %s: flow %s of the memo is gone; %s from its start", session.linkedid,
                            resume.flow, flow.name)
                resume = None
            else:
                variables.update(resume.variables)
                start_at = resume.node if resume.node in flow.nodes else ""
        log.info("call %s: flow %s@%s for dialed %s caller %s%s", session.linkedid, flow.name, flow.version,
                 dialed or "?", log_safe(caller) if caller else "?",
                 f" (resumed at {start_at or flow.start})" if resume is not None else "")
        state, cmds = mc.step(mc.initial_state(flow),
                              mc.Started(caller, dialed, self._clock(), variables, start=start_at))
        asks = [c for c in cmds if isinstance(c, mc.CollectCmd)]
        one_key = bool(asks) and asks[-1].max_digits == 1
        typed = resume.typed if resume is not None else ""
        if resume is not None and resume.digits is not None and state.waiting is mc.Waiting.DIGITS:
            if not resume.partial or one_key:
                # the caller answered this node while nobody served the call: take the answer as it is
                given: mc.Input = (mc.Digits(resume.digits, self._clock()) if resume.digits
                                   else mc.Timeout(self._clock()))
                if asks and len(resume.digits) >= asks[-1].max_digits:
                    typed = _after_full_input(typed, asks[-1])
                state, cmds = mc.step(state, given)
            else:   # the first key of a longer input, pressed into its prompt: the rest follows it
                typed = resume.digits + typed
        if typed:
            self._typed_ahead[session.uniqueid] = typed
        self.nodes[session.uniqueid] = state.node
        try:
            if self.answer and resume is None:
                try:
                    await self._agi(session, "ANSWER", limit=10)
                except AgiHangup:
                    state, cmds = mc.step(state, mc.HangUp(self._clock()))
            return await self._loop(session, state, cmds)
        except (asyncio.CancelledError, StepFailed):
            raise
        except Exception as exc:
            node = self.nodes.get(session.uniqueid, "")
            log.error("call %s: flow step failed at %s: %r", session.linkedid, node or "-", exc)
            raise StepFailed(reason=failure_reason(exc), node=node, detail=str(exc)) from exc
        finally:
            self._trailing.pop(session.uniqueid, None)
            self._typed_ahead.pop(session.uniqueid, None)
            self.nodes.pop(session.uniqueid, None)
            self._remembered.pop(session.uniqueid, None)

    def node_of(self, uniqueid: str) -> str:
        """The node the flow on this channel is at ("" when no flow runs there)."""
        return self.nodes.get(uniqueid, "")

    async def _loop(self, session: AgiSessionLike, state: mc.FlowState, cmds: list[mc.Command]) -> RunResult:
        emitted = 0
        while True:
            emitted = self._emit_steps(state, emitted)
            await self._keep_memo(session, state)
            try:
                inp = await self._execute(session, state, cmds)
            except (AgiHangup, _Hangup):
                inp = mc.HangUp(self._clock()) if not state.ended else None
            if isinstance(inp, _FlowJump):
                self._emit_steps(state, emitted)
                flow = self.registry.flow(inp.flow)
                carried = dict(state.variables)
                log.info("call %s: transfer to flow %s@%s", session.linkedid, flow.name, flow.version)
                state, cmds = mc.step(mc.initial_state(flow),
                                      mc.Started(carried.get("caller", ""), carried.get("dialed", ""),
                                                 self._clock(), carried))
                emitted = 0
                self.nodes[session.uniqueid] = state.node
                continue
            if inp is None:
                break
            state, cmds = mc.step(state, inp)
            self.nodes[session.uniqueid] = state.node
        end = state.end or mc.End("unknown", state.node)
        log.info("call %s: flow %s ended (%s) at %s", session.linkedid, state.flow.name, end.reason, end.node or "-")
        return RunResult(state.flow.name, state.flow.version, end, state.path, dict(state.variables))

    # ------------------------------------------------------------ internals

    async def _keep_memo(self, session: AgiSessionLike, state: mc.FlowState) -> None:
        """Keep where the flow waits on the channel (once per node), for a take-over; and that it
        ended at a hang-up node (its goodbye about to play), so that a new owner records that end
        instead of asking the last question again."""
        if self._remember is None:
            return
        end = state.end.reason if state.ended and state.end is not None else ""
        if end != "hangup" and state.waiting not in (mc.Waiting.DIGITS, mc.Waiting.LOOKUP):
            return
        node = state.flow.nodes.get(state.node)
        if not end and getattr(node, "by", "") == LIVE_SESSION:   # answered at once, in process
            return
        key = (state.flow.name, state.node + (":end" if end else ""))
        if self._remembered.get(session.uniqueid) == key:
            return
        self._remembered[session.uniqueid] = key
        try:
            await self._remember(session, memo_mod.encode(state.flow.name, state.node,
                                                          {} if end else state.variables, end=end))
        except Exception as exc:   # the memo helps a take-over; the call itself goes on without it
            log.debug("call %s: flow memo not kept: %r", session.linkedid, exc)

    def _caller_province(self, caller: str) -> str:
        if not caller:
            return ""
        resolver = self._province_for_caller
        if resolver is None:
            from switchboard.geo import load_provinces

            resolver = self._province_for_caller = load_provinces().lookup_caller
        return resolver(caller) or ""

    def _emit_steps(self, state: mc.FlowState, emitted: int) -> int:
        flow = state.flow
        for step in state.path[emitted:]:
            if step.left is None:
                break
            self._emit(EventKind.IVR_STEP, {
                "flow": flow.name, "flow_version": flow.version, "node": step.node, "kind": step.kind,
                "entered": step.entered.isoformat(), "left": step.left.isoformat(), "input": step.input,
            })
            emitted += 1
        return emitted

    async def _callback_notice(self, session: AgiSessionLike, language: str) -> None:
        """Tell the caller when to expect the callback (the calling window's next opening)."""
        if self._callback_expected is None:
            return
        when = self._callback_expected()
        names = notice_prompts(when, self._clock(), language)
        if when is not None:
            log.info("call %s: callback expected from %s", session.linkedid, f"{when:%Y-%m-%d %H:%M %Z}")
        await self._play(session, mc.PlayCmd(tuple(mc.Prompt(n, language) for n in names), False))

    def _file(self, prompt: mc.Prompt) -> str:
        return f"{self.sound_prefix}/{prompt.language}/{prompt.name}"

    async def _agi(self, session: AgiSessionLike, command: str, limit: float | None = None,
                   tag: str = "") -> AgiResult:
        if tag:
            return await session.execute(command, timeout=limit or self._timeout, tag=tag)
        return await session.execute(command, timeout=limit or self._timeout)

    async def _execute(self, session: AgiSessionLike, state: mc.FlowState,
                       cmds: list[mc.Command]) -> mc.Input | _FlowJump | None:
        """Carry out one batch of commands; the input they produced for the machine (None: flow over)."""
        pending = ""  # digits pressed during an interruptible prompt
        refused = False  # a callback the number policy refused: its confirmation is not played
        ahead = self._typed_ahead.pop(session.uniqueid, "")   # typed while nobody served (a take-over)
        for cmd in cmds:
            if isinstance(cmd, mc.PlayCmd):
                if ahead and not cmd.barge_in:
                    # a message that cannot be interrupted: keys typed before it are not its
                    # answer (Asterisk drops keys pressed during it too); it plays
                    log.info("call %s: %d key(s) typed ahead dropped before a message", session.linkedid,
                             len(ahead))
                    ahead = ""
                if ahead:
                    pending, ahead = ahead, ""   # as if pressed into this prompt: it is skipped
                    continue
                if pending or refused:
                    continue
                pending = await self._play(session, cmd)
            elif isinstance(cmd, mc.CollectCmd):
                if ahead:
                    pending, ahead = ahead, ""
                if len(pending) > 1:   # typed ahead: this input's share; the rest answers the next
                    pending, rest = _split_input(pending, cmd)
                    if rest:
                        self._typed_ahead[session.uniqueid] = rest
                return await self._collect(session, cmd, pending)
            elif isinstance(cmd, mc.LookupCmd):
                if ahead:   # a look-up says nothing to the caller: the keys answer what it leads to
                    self._typed_ahead[session.uniqueid] = ahead
                return await self._do_lookup(cmd)
            elif isinstance(cmd, mc.Enqueue):
                log.info("call %s: enqueue topic=%s province=%s (%s) lang=%s", session.linkedid, cmd.topic,
                         cmd.province or "-", cmd.province_source, cmd.language)
                outcome = await self._on_enqueue(session, cmd)
                if outcome == "callback":
                    await self._callback_notice(session, cmd.language)
                return mc.QueueResult(outcome, self._clock())
            elif isinstance(cmd, mc.JoinConference):
                # the session's seat: "joined" (the caller has left AGI for the conference), "full", "over"
                outcome = await self.on_conference(session, cmd.session) if self.on_conference else "over"
                self._emit(EventKind.SESSION_SEAT, {"session": cmd.session, "outcome": outcome})
                return mc.ConferenceResult(outcome, self._clock())
            elif isinstance(cmd, mc.SaveSurvey):
                self._emit(EventKind.SURVEY, {"score": cmd.score})
                if self._on_survey is not None:
                    await self._on_survey(session, cmd.score)
            elif isinstance(cmd, mc.RequestCallback):
                try:
                    callback_id = await self._on_callback(session, cmd) if self._on_callback is not None else None
                except NumberRefused as exc:
                    d = exc.decision
                    self._emit(EventKind.CALLBACK_REFUSED, {"reason": d.reason, "number": d.number, "detail": d.detail})
                    log.info("call %s: callback to %s refused (%s)", session.linkedid, log_safe(cmd.number), d.reason)
                    refused = True
                    await self._play(session, mc.PlayCmd((mc.Prompt("callback_refused", cmd.language),), False))
                    continue
                self._emit(EventKind.CALLBACK_REQUESTED, {"number": cmd.number, "callback_id": callback_id,
                                                           "topic": cmd.topic, "province": cmd.province,
                                                           "language": cmd.language})
                await self._callback_notice(session, cmd.language)
            elif isinstance(cmd, mc.RecordCmd):
                await self._record(session, cmd)
            elif isinstance(cmd, mc.TransferCmd):
                if cmd.flow:
                    return _FlowJump(cmd.flow)
                decision = self._transfer_policy.check(cmd.number)
                if not decision.ok:
                    self._emit(EventKind.TRANSFER_REFUSED, {"number": decision.number, "reason": decision.reason,
                                                            "detail": decision.detail})
                    log.warning("call %s: transfer to %s refused (%s)", session.linkedid,
                                log_safe(cmd.number), decision.reason)
                    # never strand the caller: whoever runs the flow hands the channel to a person
                    raise StepFailed(reason="transfer_refused", node=self.nodes.get(session.uniqueid, ""),
                                     detail=f"number policy: {decision.reason}")
                number = self._transfer_policy.dial_string(decision)
                self._emit(EventKind.TRANSFER, {"target": number})
                dial = self.transfer_dial.format(number=number)
                await self._agi(session, f"EXEC Dial {agi_quote(f'{dial},60')}", limit=4 * 3600)
                await self._agi(session, "HANGUP")
            elif isinstance(cmd, mc.HangUpCmd):
                try:
                    await self._agi(session, "HANGUP")
                except AgiHangup:
                    pass
        return None

    async def _play(self, session: AgiSessionLike, cmd: mc.PlayCmd) -> str:
        if not cmd.barge_in:
            files = "&".join(self._file(p) for p in cmd.prompts)
            result = await self._agi(session, f"EXEC Playback {agi_quote(files)}")
            if result.result == "-1":
                raise _Hangup
            return ""
        tag = f"play-{self.nodes.get(session.uniqueid, '')}"
        for prompt in cmd.prompts:
            command = f"STREAM FILE {agi_quote(self._file(prompt))} {agi_quote(ESCAPE_DIGITS)}"
            result = await self._agi(session, command, tag=tag)
            if result.digit and self._is_trailing(session, result.digit):
                # the terminator of the input just taken: play the rest of this prompt
                result = await self._agi(session, f"{command} {result.endpos or 0}")
            if result.result == "-1":
                # -1 is also "file not found"; a real hang-up shows as AgiHangup on the next command
                log.warning("call %s: STREAM FILE %s failed", session.linkedid, self._file(prompt))
                continue
            if result.digit:
                return result.digit
        return ""

    def _is_trailing(self, session: AgiSessionLike, key: str) -> bool:
        """Is ``key`` the terminator the caller pressed after a collect had all its digits?"""
        pending = self._trailing.pop(session.uniqueid, None)
        return pending is not None and key == pending[0] and time.monotonic() < pending[1]

    def _expect_trailing(self, session: AgiSessionLike, cmd: mc.CollectCmd, digits: str) -> None:
        if cmd.terminator and len(digits) >= cmd.max_digits and not digits.endswith(cmd.terminator):
            self._trailing[session.uniqueid] = (cmd.terminator, time.monotonic() + TRAILING_S)

    async def _collect(self, session: AgiSessionLike, cmd: mc.CollectCmd, pending: str) -> mc.Input:
        timeout_ms = int(cmd.timeout * 1000)
        if pending:
            digits = pending
            while len(digits) < cmd.max_digits and not (cmd.terminator and digits.endswith(cmd.terminator)):
                result = await self._agi(session, f"WAIT FOR DIGIT {timeout_ms}")
                if result.result == "-1":
                    raise _Hangup
                if not result.digit:
                    break
                digits += result.digit
            self._expect_trailing(session, cmd, digits)
            return mc.Digits(digits, self._clock())
        file = self._file(cmd.prompt) if cmd.prompt else "silence/1"
        command = f"GET DATA {agi_quote(file)} {timeout_ms} {cmd.max_digits}"
        limit = self._timeout + cmd.timeout * (cmd.max_digits + 1)
        tag = f"getdata-{self.nodes.get(session.uniqueid, '')}"
        result = await self._agi(session, command, limit=limit, tag=tag)
        if not result.result and result.data != "timeout" and self._is_trailing(session, "#"):
            # GET DATA ended at once on the previous input's '#': ask again
            result = await self._agi(session, command, limit=limit, tag=tag)
        else:
            self._trailing.pop(session.uniqueid, None)
        if result.result == "-1":
            raise _Hangup
        if not result.result:
            return mc.Timeout(self._clock())
        self._expect_trailing(session, cmd, result.result)
        return mc.Digits(result.result, self._clock())

    async def _do_lookup(self, cmd: mc.LookupCmd) -> mc.LookupResult:
        if cmd.by == LIVE_SESSION:
            live = self.live_session(cmd.value) if self.live_session is not None else None
            return mc.LookupResult(live is not None, self._clock(), dict(live or {}))
        if self._lookup is None or not cmd.value:
            found: Mapping[str, str] | None = None
            error = self._lookup is None
        else:
            try:
                async with asyncio.timeout(self._lookup_timeout):
                    found = await self._lookup(cmd.by, cmd.value)
                error = False
            except Exception as exc:  # a data dip must never kill the call
                log.warning("lookup by %s failed: %r", cmd.by, exc)
                found, error = None, True
        values = {k: "" if v is None else str(v) for k, v in (found or {}).items()}
        self._emit(EventKind.IVR_LOOKUP, {"by": cmd.by, "found": found is not None,
                                          "participant_id": values.get("id"), "error": error})
        return mc.LookupResult(found is not None, self._clock(), values, error=error)

    async def _record(self, session: AgiSessionLike, cmd: mc.RecordCmd) -> None:
        path = f"{self.voicemail_dir}/{session.linkedid}-{session.uniqueid}"
        self._emit(EventKind.RECORDING, {"path": f"{path}.wav", "kind": "voicemail"})
        beep = " BEEP" if cmd.beep else ""
        silence = f" s={cmd.silence_seconds}" if cmd.silence_seconds else ""
        term = cmd.terminator or "#"
        await self._agi(session, f"RECORD FILE {agi_quote(path)} wav {agi_quote(term)} {cmd.max_seconds * 1000}{beep}{silence}",
                        limit=cmd.max_seconds + 30)


@dataclass(frozen=True, slots=True)
class _FlowJump:
    flow: str
