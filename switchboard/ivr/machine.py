"""The pure flow machine: ``step(state, input) -> (state, commands)``.

Why one long file: the flow's state machine is one table (STYLE.md: state machines are
tables, one file each); every node kind's step is listed here so a reader sees every
transition in one place.

No I/O and no clock: every input carries its time (``at``), the runner does
the talking to Asterisk. The machine walks automatic nodes (play, set, branch,
record, hangup, transfer) in one step and stops at a node that waits for
something from outside:

=============================  =====================================
waiting for                    node kinds
=============================  =====================================
``Digits`` / ``Timeout``       menu, collect, survey, callback_offer
``LookupResult``               lookup
``QueueResult``                queue
``ConferenceResult``           conference (a Q&A session's seat)
=============================  =====================================

``HangUp`` is accepted in any state but ENDED. Any other input in the wrong
state raises ``MachineError`` (a bug in the driver, not the caller's fault).
The state records the path: one ``PathStep`` (node, entered, left, input)
per node visited.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, time
from types import MappingProxyType

from switchboard.audio.numbers import say_digits, say_number
from switchboard.ivr.calendar import WEEKDAYS
from switchboard.ivr.model import (
    Branch,
    CallbackOffer,
    Collect,
    Cond,
    Conference,
    Flow,
    Hangup,
    Lookup,
    Menu,
    Node,
    Play,
    PromptItem,
    PromptRef,
    Queue,
    Record,
    SayDigits,
    SayNumber,
    Set,
    Survey,
    Transfer,
    resolve,
)

__all__ = [
    "MAX_AUTO_STEPS",
    "CollectCmd",
    "Command",
    "ConferenceResult",
    "Digits",
    "End",
    "Enqueue",
    "FlowState",
    "HangUp",
    "HangUpCmd",
    "Input",
    "JoinConference",
    "LookupCmd",
    "LookupResult",
    "MachineError",
    "PathStep",
    "PlayCmd",
    "Prompt",
    "QueueResult",
    "RecordCmd",
    "RequestCallback",
    "SaveSurvey",
    "Started",
    "Timeout",
    "TransferCmd",
    "Waiting",
    "initial_state",
    "step",
]

MAX_AUTO_STEPS = 200


class MachineError(RuntimeError):
    """The driver misused the machine (wrong input for the state) or the flow spun."""


# ---------------------------------------------------------------- inputs


@dataclass(frozen=True, slots=True)
class Started:
    caller: str
    dialed: str
    at: datetime
    variables: Mapping[str, str] = field(default_factory=dict)
    start: str = ""  # enter the flow here instead of its start node (e.g. "survey" after the agent leg)


@dataclass(frozen=True, slots=True)
class Digits:
    digits: str
    at: datetime


@dataclass(frozen=True, slots=True)
class Timeout:
    at: datetime


@dataclass(frozen=True, slots=True)
class HangUp:
    at: datetime


@dataclass(frozen=True, slots=True)
class LookupResult:
    found: bool
    at: datetime
    values: Mapping[str, str] = field(default_factory=dict)
    error: bool = False


@dataclass(frozen=True, slots=True)
class QueueResult:
    """The router gave the call back: ``served`` (agent hung up), ``callback``, ``closed``..."""

    outcome: str
    at: datetime


@dataclass(frozen=True, slots=True)
class ConferenceResult:
    """The session's answer to ``JoinConference``: ``joined`` (the caller left for the
    conference), ``full``, ``over`` or ``elsewhere`` (the conference is on another node)."""

    outcome: str
    at: datetime


Input = Started | Digits | Timeout | HangUp | LookupResult | QueueResult | ConferenceResult

# ---------------------------------------------------------------- commands


@dataclass(frozen=True, slots=True)
class Prompt:
    name: str
    language: str


@dataclass(frozen=True, slots=True)
class PlayCmd:
    prompts: tuple[Prompt, ...]
    barge_in: bool


@dataclass(frozen=True, slots=True)
class CollectCmd:
    prompt: Prompt | None
    min_digits: int
    max_digits: int
    timeout: float
    terminator: str


@dataclass(frozen=True, slots=True)
class Enqueue:
    topic: str
    province: str
    priority: int
    language: str
    province_source: str
    variables: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class TransferCmd:
    number: str = ""
    flow: str = ""


@dataclass(frozen=True, slots=True)
class LookupCmd:
    by: str
    value: str


@dataclass(frozen=True, slots=True)
class SaveSurvey:
    score: int
    var: str


@dataclass(frozen=True, slots=True)
class RecordCmd:
    max_seconds: int
    silence_seconds: int
    beep: bool
    terminator: str


@dataclass(frozen=True, slots=True)
class RequestCallback:
    number: str
    topic: str
    province: str
    language: str


@dataclass(frozen=True, slots=True)
class HangUpCmd:
    reason: str


@dataclass(frozen=True, slots=True)
class JoinConference:
    session: str
    language: str


Command = (PlayCmd | CollectCmd | Enqueue | TransferCmd | LookupCmd | SaveSurvey | RecordCmd | RequestCallback
           | HangUpCmd | JoinConference)

# ---------------------------------------------------------------- state


class Waiting(enum.Enum):
    START = "start"
    DIGITS = "digits"
    LOOKUP = "lookup"
    QUEUE = "queue"
    CONFERENCE = "conference"
    ENDED = "ended"


@dataclass(frozen=True, slots=True)
class PathStep:
    node: str
    kind: str
    entered: datetime
    left: datetime | None = None
    input: str | None = None


@dataclass(frozen=True, slots=True)
class End:
    reason: str  # hangup | caller_hangup | transfer | queue-handoff...
    node: str  # where the call left the flow


@dataclass(frozen=True, slots=True)
class FlowState:
    flow: Flow
    node: str = ""
    waiting: Waiting = Waiting.START
    variables: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    attempts: int = 0
    path: tuple[PathStep, ...] = ()
    end: End | None = None

    @property
    def language(self) -> str:
        lang = self.variables.get("language", "")
        return lang if lang in self.flow.languages else self.flow.default_language

    @property
    def ended(self) -> bool:
        return self.waiting is Waiting.ENDED


def initial_state(flow: Flow) -> FlowState:
    return FlowState(flow=flow)


# ---------------------------------------------------------------- step


def step(state: FlowState, inp: Input) -> tuple[FlowState, list[Command]]:
    """Feed one input; returns the new state and the commands to carry out, in order."""
    if state.waiting is Waiting.ENDED:
        raise MachineError(f"flow {state.flow.name} has ended; got {type(inp).__name__}")
    if isinstance(inp, HangUp):
        return _hang_up(state, inp.at), []
    if isinstance(inp, Started):
        if state.waiting is not Waiting.START:
            raise MachineError("Started twice")
        variables = {
            "language": state.flow.default_language,
            "province": "",
            "province_source": "",
            "topic": "general",
            "priority": "0",
            **inp.variables,
            "caller": inp.caller,
            "dialed": inp.dialed,
        }
        if variables["province"] and not variables["province_source"]:
            variables["province_source"] = "did"
        state = replace(state, variables=MappingProxyType(variables))
        first = inp.start or state.flow.start
        if first not in state.flow.nodes:
            raise MachineError(f"flow {state.flow.name} has no node {first!r}")
        return _run(state, first, inp.at, [])
    if state.waiting is Waiting.START:
        raise MachineError(f"{type(inp).__name__} before Started")
    node = state.flow.node(state.node)
    if state.waiting is Waiting.DIGITS and isinstance(inp, (Digits, Timeout)):
        return _on_digits(state, node, inp)
    if state.waiting is Waiting.LOOKUP and isinstance(inp, LookupResult) and isinstance(node, Lookup):
        return _on_lookup(state, node, inp)
    if state.waiting is Waiting.QUEUE and isinstance(inp, QueueResult) and isinstance(node, Queue):
        dest = node.next if inp.outcome == "served" else node.outcomes.get(inp.outcome, "")
        if not dest:
            return _finish(_leave(state, inp.at, f"queue:{inp.outcome}"), inp.at, f"queue:{inp.outcome}"), []
        return _run(_leave(state, inp.at, f"queue:{inp.outcome}"), dest, inp.at, [])
    if state.waiting is Waiting.CONFERENCE and isinstance(inp, ConferenceResult) and isinstance(node, Conference):
        if inp.outcome == "joined":
            return _finish(_leave(state, inp.at, "joined"), inp.at, "conference"), []
        dest = node.elsewhere if inp.outcome == "elsewhere" and node.elsewhere else node.full
        return _run(_leave(state, inp.at, inp.outcome), dest, inp.at, [])
    raise MachineError(f"{type(inp).__name__} not expected while waiting for {state.waiting.value} at {state.node}")


def _hang_up(state: FlowState, at: datetime) -> FlowState:
    if state.waiting is Waiting.START:
        return replace(state, waiting=Waiting.ENDED, end=End("caller_hangup", ""))
    return _finish(_leave(state, at, "hangup"), at, "caller_hangup")


def _finish(state: FlowState, at: datetime, reason: str) -> FlowState:
    return replace(state, waiting=Waiting.ENDED, end=End(reason, state.node))


def _leave(state: FlowState, at: datetime, given: str | None) -> FlowState:
    """Close the open path step of the current node."""
    if not state.path or state.path[-1].left is not None:
        return state
    last = replace(state.path[-1], left=at, input=given)
    return replace(state, path=(*state.path[:-1], last))


def _enter(state: FlowState, name: str, at: datetime) -> FlowState:
    node = state.flow.node(name)
    return replace(
        state,
        node=name,
        attempts=0,
        path=(*state.path, PathStep(name, node.kind.value, at)),
    )


def _set(state: FlowState, values: tuple[tuple[str, str], ...]) -> FlowState:
    if not values:
        return state
    variables = dict(state.variables)
    for key, value in values:
        variables[key] = resolve(value, state.variables)
    return replace(state, variables=MappingProxyType(variables))


def _prompts(state: FlowState, items: tuple[PromptItem, ...]) -> tuple[Prompt, ...]:
    lang = state.language
    out: list[Prompt] = []
    for item in items:
        if isinstance(item, PromptRef):
            name = resolve(item.name, state.variables) if item.name.startswith("$") else item.name
            if name:   # a prompt named by a variable (e.g. a session's title) plays only when set
                out.append(Prompt(name, item.lang or lang))
            continue
        raw = state.variables.get(item.var, "")
        if isinstance(item, SayNumber):
            try:
                names = say_number(int(raw), lang)
            except ValueError:
                names = say_digits(raw, lang)
        else:
            assert isinstance(item, SayDigits)
            names = say_digits(raw, lang)
        out.extend(Prompt(n, lang) for n in names)
    return tuple(out)


def _ask(state: FlowState, items: tuple[PromptItem, ...], *, min_digits: int, max_digits: int,
         timeout: float, terminator: str) -> list[Command]:
    """Play all but the last prompt (interruptible), then collect with the last one."""
    prompts = _prompts(state, items)
    commands: list[Command] = []
    if len(prompts) > 1:
        commands.append(PlayCmd(prompts[:-1], barge_in=True))
    commands.append(CollectCmd(prompts[-1] if prompts else None, min_digits, max_digits, timeout, terminator))
    return commands


def _ask_node(state: FlowState, node: Node, lead: tuple[PromptItem, ...] = ()) -> list[Command]:
    """The Collect (with optional lead-in prompts such as 'invalid choice') for an input node."""
    commands: list[Command] = []
    if lead:
        commands.append(PlayCmd(_prompts(state, lead), barge_in=True))
    if isinstance(node, Menu):
        width = max((len(k) for k in node.options), default=1)
        commands += _ask(state, node.prompts, min_digits=1, max_digits=width, timeout=node.timeout, terminator="")
    elif isinstance(node, Collect):
        commands += _ask(state, node.prompts, min_digits=node.min_digits, max_digits=node.max_digits,
                         timeout=node.timeout, terminator=node.terminator)
    elif isinstance(node, (Survey, CallbackOffer)):
        commands += _ask(state, node.prompts, min_digits=1, max_digits=1, timeout=node.timeout, terminator="")
    else:  # pragma: no cover - guarded by callers
        raise MachineError(f"{node.name} does not take digits")
    return commands


def _run(state: FlowState, dest: str, at: datetime, commands: list[Command]) -> tuple[FlowState, list[Command]]:
    """Enter ``dest`` and walk automatic nodes until one waits or the flow ends."""
    for _ in range(MAX_AUTO_STEPS):
        state = _enter(state, dest, at)
        node = state.flow.node(dest)
        if isinstance(node, Play):
            prompts = _prompts(state, node.prompts)
            if prompts:
                commands.append(PlayCmd(prompts, node.barge_in))
            state, dest = _leave(state, at, None), node.next
        elif isinstance(node, Set):
            state = _leave(_set(state, node.values), at, None)
            dest = node.next
        elif isinstance(node, Branch):
            dest = node.default
            label = "default"
            for i, case in enumerate(node.cases):
                if all(_holds(state, cond, at) for cond in case.conds):
                    dest, label = case.next, f"case {i + 1}"
                    break
            state = _leave(state, at, label)
        elif isinstance(node, Record):
            if node.prompts:
                commands.append(PlayCmd(_prompts(state, node.prompts), barge_in=False))
            commands.append(RecordCmd(node.max_seconds, node.silence_seconds, node.beep, node.terminator))
            state, dest = _leave(state, at, None), node.next
        elif isinstance(node, Hangup):
            if node.prompts:
                commands.append(PlayCmd(_prompts(state, node.prompts), barge_in=False))
            commands.append(HangUpCmd(node.reason))
            return _finish(_leave(state, at, None), at, "hangup"), commands
        elif isinstance(node, Transfer):
            if node.prompts:
                commands.append(PlayCmd(_prompts(state, node.prompts), barge_in=False))
            commands.append(TransferCmd(number=resolve(node.to, state.variables), flow=node.flow))
            return _finish(_leave(state, at, None), at, "transfer"), commands
        elif isinstance(node, Conference):
            if node.prompts:
                commands.append(PlayCmd(_prompts(state, node.prompts), barge_in=False))
            commands.append(JoinConference(resolve(node.session, state.variables), state.language))
            return replace(state, waiting=Waiting.CONFERENCE), commands
        elif isinstance(node, Lookup):
            commands.append(LookupCmd(node.by, resolve(node.value, state.variables)))
            return replace(state, waiting=Waiting.LOOKUP), commands
        elif isinstance(node, Queue):
            v = state.variables
            priority_s = resolve(node.priority, v)
            commands.append(
                Enqueue(
                    topic=resolve(node.topic, v) or "general",
                    province=resolve(node.province, v),
                    priority=int(priority_s) if priority_s.lstrip("-").isdigit() else 0,
                    language=resolve(node.language, v) or state.language,
                    province_source=resolve(node.province_source, v) or ("unknown"),
                    variables=MappingProxyType(dict(v)),
                )
            )
            return replace(state, waiting=Waiting.QUEUE), commands
        else:  # menu, collect, survey, callback_offer
            commands += _ask_node(state, node)
            return replace(state, waiting=Waiting.DIGITS), commands
    raise MachineError(f"flow {state.flow.name}: more than {MAX_AUTO_STEPS} nodes without input (at {dest})")


def _retry(state: FlowState, node: Menu | Collect | Survey | CallbackOffer, inp: Digits | Timeout,
           given: str, fail_dest: str) -> tuple[FlowState, list[Command]]:
    timed_out = isinstance(inp, Timeout)
    if state.attempts >= node.retries:
        return _run(_leave(state, inp.at, given), fail_dest, inp.at, [])
    lead = node.invalid_prompt
    if timed_out and isinstance(node, (Menu, Collect)):
        lead = node.timeout_prompt
    state = replace(state, attempts=state.attempts + 1)
    return state, _ask_node(state, node, lead)


def _on_digits(state: FlowState, node: Node, inp: Digits | Timeout) -> tuple[FlowState, list[Command]]:
    digits = inp.digits if isinstance(inp, Digits) else ""
    given = digits if digits else "timeout"
    if isinstance(node, Menu):
        if not digits:
            return _retry(state, node, Timeout(inp.at), given, node.on_timeout)
        opt = node.options.get(digits)
        if opt is None:
            return _retry(state, node, inp, given, node.on_invalid)
        return _run(_leave(_set(state, opt.set), inp.at, digits), opt.next, inp.at, [])
    if isinstance(node, Collect):
        if node.terminator and digits.endswith(node.terminator):
            digits = digits[: -len(node.terminator)]
        if not digits:
            return _retry(state, node, Timeout(inp.at), given, node.on_fail)
        value = _validate(node, digits)
        if value is None:
            return _retry(state, node, inp, given, node.on_fail)
        state = _set(state, ((node.var, value),))
        return _run(_leave(state, inp.at, digits), node.next, inp.at, [])
    if isinstance(node, Survey):
        if digits in ("1", "2", "3", "4", "5"):
            state = _leave(_set(state, ((node.var, digits),)), inp.at, digits)
            commands: list[Command] = [SaveSurvey(int(digits), node.var)]
            if node.thanks:
                commands.append(PlayCmd(_prompts(state, node.thanks), barge_in=False))
            return _run(state, node.next, inp.at, commands)
        return _retry(state, node, inp, given, node.on_fail)
    if isinstance(node, CallbackOffer):
        if digits == node.accept:
            v = state.variables
            cmd = RequestCallback(resolve(node.number, v), resolve(node.topic, v) or "general",
                                  v.get("province", ""), state.language)
            state = _leave(_set(state, (("callback_number", cmd.number),)), inp.at, digits)
            return _run(state, node.next, inp.at, [cmd])
        if digits == node.decline:
            return _run(_leave(state, inp.at, digits), node.on_declined, inp.at, [])
        return _retry(state, node, inp, given, node.on_declined)
    raise MachineError(f"node {node.name} ({node.kind}) does not take digits")  # pragma: no cover


def _validate(node: Collect, digits: str) -> str | None:
    if node.choices is not None:
        return node.choices.get(digits)
    if not node.min_digits <= len(digits) <= node.max_digits:
        return None
    if node.pattern and not re.fullmatch(node.pattern, digits):
        return None
    return digits


def _on_lookup(state: FlowState, node: Lookup, inp: LookupResult) -> tuple[FlowState, list[Command]]:
    if inp.error:
        given, dest = "error", node.on_error or node.not_found
    elif inp.found:
        given, dest = "found", node.next
        values = tuple((f"{node.into}.{k}", str(v)) for k, v in inp.values.items())
        state = _set(state, ((f"{node.into}.found", "1"), *values))
    else:
        given, dest = "not found", node.not_found
    return _run(_leave(state, inp.at, given), dest, inp.at, [])


def _holds(state: FlowState, cond: Cond, at: datetime) -> bool:
    v = state.variables
    what = cond.what
    result: bool
    if what == "var":
        value = v.get(cond.var, "")
        if cond.op == "set":
            result = bool(value)
        elif cond.op == "unset":
            result = not value
        elif cond.op == "matches":
            result = re.fullmatch(cond.values[0], value) is not None
        else:  # equals / in
            result = value in cond.values
    elif what == "caller_prefix":
        result = any(v.get("caller", "").startswith(p) for p in cond.values)
    elif what == "dialed":
        result = v.get("dialed", "") in cond.values
    elif what in ("open", "holiday"):
        hours = state.flow.hours
        if hours is None:
            result = what == "open"  # no calendar: always open, never a holiday
        else:
            result = hours.is_open(at) if what == "open" else hours.is_holiday(at)
        result = result == cond.flag
    elif what == "weekday":
        local = state.flow.hours.local(at) if state.flow.hours else at
        result = WEEKDAYS[local.weekday()] in cond.values
    elif what == "time":
        local = state.flow.hours.local(at) if state.flow.hours else at
        start, end = time.fromisoformat(cond.values[0]), time.fromisoformat(cond.values[1])
        result = start <= local.time().replace(tzinfo=None) < end
    else:  # pragma: no cover - the loader rejects unknown conditions
        raise MachineError(f"unknown condition {what!r}")
    return result
