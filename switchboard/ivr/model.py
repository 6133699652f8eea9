"""Flow model: immutable nodes as loaded from ``ivr_flows/*.yaml``.

The loader builds these; the machine only reads them. Every node remembers
where it was written (``Where``) so errors and logs can point at the file.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field

from switchboard.ivr.calendar import BusinessHours

__all__ = [
    "INPUT_KINDS",
    "Branch",
    "CallbackOffer",
    "Case",
    "Collect",
    "Cond",
    "Conference",
    "Flow",
    "FlowDefaults",
    "Hangup",
    "Kind",
    "Lookup",
    "Menu",
    "MenuOption",
    "Node",
    "Play",
    "PromptItem",
    "PromptRef",
    "Queue",
    "Record",
    "SayDigits",
    "SayNumber",
    "Set",
    "Survey",
    "Transfer",
    "Where",
    "resolve",
]


class Kind(enum.StrEnum):
    PLAY = "play"
    MENU = "menu"
    COLLECT = "collect"
    BRANCH = "branch"
    SET = "set"
    LOOKUP = "lookup"
    QUEUE = "queue"
    CALLBACK_OFFER = "callback_offer"
    TRANSFER = "transfer"
    SURVEY = "survey"
    HANGUP = "hangup"
    RECORD = "record"
    CONFERENCE = "conference"


#: Node kinds that wait for something from outside (caller digits, a data
#: dip, the router). A cycle made only of other kinds would spin forever.
INPUT_KINDS = frozenset({Kind.MENU, Kind.COLLECT, Kind.SURVEY, Kind.CALLBACK_OFFER, Kind.QUEUE})


@dataclass(frozen=True, slots=True)
class Where:
    file: str
    line: int  # 1-based
    column: int  # 1-based

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


NOWHERE = Where("<memory>", 0, 0)


@dataclass(frozen=True, slots=True)
class PromptRef:
    """A recorded prompt ``<prompts_dir>/<lang>/<name>.wav``; ``lang`` pins a language."""

    name: str
    lang: str | None = None
    where: Where = field(default=NOWHERE, compare=False)


@dataclass(frozen=True, slots=True)
class SayNumber:
    """Say the integer held in variable ``var`` with the language's number grammar."""

    var: str
    where: Where = field(default=NOWHERE, compare=False)


@dataclass(frozen=True, slots=True)
class SayDigits:
    """Say the variable's digits one by one."""

    var: str
    where: Where = field(default=NOWHERE, compare=False)


PromptItem = PromptRef | SayNumber | SayDigits


@dataclass(frozen=True, slots=True)
class Node:
    name: str
    where: Where = field(compare=False)

    @property
    def kind(self) -> Kind:
        raise NotImplementedError

    def destinations(self) -> tuple[tuple[str, str], ...]:
        """(label, node name) for every edge out of this node."""
        return ()


@dataclass(frozen=True, slots=True)
class Play(Node):
    prompts: tuple[PromptItem, ...] = ()
    barge_in: bool = False
    next: str = ""

    @property
    def kind(self) -> Kind:
        return Kind.PLAY

    def destinations(self) -> tuple[tuple[str, str], ...]:
        return (("", self.next),)


@dataclass(frozen=True, slots=True)
class MenuOption:
    next: str
    set: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class Menu(Node):
    prompts: tuple[PromptItem, ...] = ()
    options: Mapping[str, MenuOption] = field(default_factory=dict)
    timeout: float = 5.0
    retries: int = 2
    invalid_prompt: tuple[PromptItem, ...] = ()
    timeout_prompt: tuple[PromptItem, ...] = ()
    on_invalid: str = ""
    on_timeout: str = ""

    @property
    def kind(self) -> Kind:
        return Kind.MENU

    def destinations(self) -> tuple[tuple[str, str], ...]:
        edges = [(digit, opt.next) for digit, opt in self.options.items()]
        edges.append(("invalid", self.on_invalid))
        edges.append(("timeout", self.on_timeout))
        return tuple(edges)


@dataclass(frozen=True, slots=True)
class Collect(Node):
    prompts: tuple[PromptItem, ...] = ()
    var: str = ""
    min_digits: int = 1
    max_digits: int = 1
    terminator: str = "#"
    pattern: str | None = None
    choices: Mapping[str, str] | None = None
    timeout: float = 5.0
    retries: int = 2
    invalid_prompt: tuple[PromptItem, ...] = ()
    timeout_prompt: tuple[PromptItem, ...] = ()
    next: str = ""
    on_fail: str = ""

    @property
    def kind(self) -> Kind:
        return Kind.COLLECT

    def destinations(self) -> tuple[tuple[str, str], ...]:
        return (("", self.next), ("fail", self.on_fail))


@dataclass(frozen=True, slots=True)
class Cond:
    """One test; a case matches when all its conds hold.

    ``what`` is one of: ``var`` (with ``op`` equals/in/set/unset/matches),
    ``caller_prefix``, ``dialed``, ``open`` (business hours), ``holiday``,
    ``weekday``, ``time`` (values = ("HH:MM", "HH:MM"), start inclusive).
    """

    what: str
    var: str = ""
    op: str = ""
    values: tuple[str, ...] = ()
    flag: bool = True


@dataclass(frozen=True, slots=True)
class Case:
    conds: tuple[Cond, ...]
    next: str


@dataclass(frozen=True, slots=True)
class Branch(Node):
    cases: tuple[Case, ...] = ()
    default: str = ""

    @property
    def kind(self) -> Kind:
        return Kind.BRANCH

    def destinations(self) -> tuple[tuple[str, str], ...]:
        edges = [(f"case {i + 1}", c.next) for i, c in enumerate(self.cases)]
        edges.append(("default", self.default))
        return tuple(edges)


@dataclass(frozen=True, slots=True)
class Set(Node):
    values: tuple[tuple[str, str], ...] = ()
    next: str = ""

    @property
    def kind(self) -> Kind:
        return Kind.SET

    def destinations(self) -> tuple[tuple[str, str], ...]:
        return (("", self.next),)


@dataclass(frozen=True, slots=True)
class Lookup(Node):
    by: str = "phone"  # phone | si_code
    value: str = "$caller"
    into: str = "participant"
    next: str = ""
    not_found: str = ""
    on_error: str = ""

    @property
    def kind(self) -> Kind:
        return Kind.LOOKUP

    def destinations(self) -> tuple[tuple[str, str], ...]:
        return (("found", self.next), ("not found", self.not_found), ("error", self.on_error))


@dataclass(frozen=True, slots=True)
class Queue(Node):
    topic: str = "general"
    province: str = "$province"
    province_source: str = "$province_source"
    priority: str = "0"
    language: str = "$language"
    next: str = ""
    outcomes: Mapping[str, str] = field(default_factory=dict)

    @property
    def kind(self) -> Kind:
        return Kind.QUEUE

    def destinations(self) -> tuple[tuple[str, str], ...]:
        return (("served", self.next), *self.outcomes.items())


@dataclass(frozen=True, slots=True)
class CallbackOffer(Node):
    prompts: tuple[PromptItem, ...] = ()
    number: str = "$caller"
    topic: str = "$topic"
    accept: str = "1"
    decline: str = "2"
    timeout: float = 5.0
    retries: int = 2
    invalid_prompt: tuple[PromptItem, ...] = ()
    next: str = ""
    on_declined: str = ""

    @property
    def kind(self) -> Kind:
        return Kind.CALLBACK_OFFER

    def destinations(self) -> tuple[tuple[str, str], ...]:
        return ((f"{self.accept} accept", self.next), ("declined", self.on_declined))


@dataclass(frozen=True, slots=True)
class Transfer(Node):
    to: str = ""  # an external number (or $var)
    flow: str = ""  # or another flow by name
    prompts: tuple[PromptItem, ...] = ()

    @property
    def kind(self) -> Kind:
        return Kind.TRANSFER


@dataclass(frozen=True, slots=True)
class Survey(Node):
    prompts: tuple[PromptItem, ...] = ()
    var: str = "csat"
    timeout: float = 5.0
    retries: int = 1
    invalid_prompt: tuple[PromptItem, ...] = ()
    thanks: tuple[PromptItem, ...] = ()
    next: str = ""
    on_fail: str = ""

    @property
    def kind(self) -> Kind:
        return Kind.SURVEY

    def destinations(self) -> tuple[tuple[str, str], ...]:
        return (("1-5", self.next), ("no answer", self.on_fail))


@dataclass(frozen=True, slots=True)
class Record(Node):
    prompts: tuple[PromptItem, ...] = ()
    max_seconds: int = 120
    silence_seconds: int = 5
    beep: bool = True
    terminator: str = "#"
    next: str = ""

    @property
    def kind(self) -> Kind:
        return Kind.RECORD

    def destinations(self) -> tuple[tuple[str, str], ...]:
        return (("", self.next),)


@dataclass(frozen=True, slots=True)
class Conference(Node):
    """Join the running Q&A session (docs/sessions.md): the caller leaves the flow for its
    conference; ``full`` when the session has no seat left or is over; ``elsewhere`` (when set,
    else ``full``) when the conference is on another Asterisk node than the caller's."""

    session: str = "$session.id"
    prompts: tuple[PromptItem, ...] = ()
    full: str = ""
    elsewhere: str = ""

    @property
    def kind(self) -> Kind:
        return Kind.CONFERENCE

    def destinations(self) -> tuple[tuple[str, str], ...]:
        return (("full", self.full), ("elsewhere", self.elsewhere)) if self.elsewhere else (("full", self.full),)


@dataclass(frozen=True, slots=True)
class Hangup(Node):
    prompts: tuple[PromptItem, ...] = ()
    reason: str = "normal"

    @property
    def kind(self) -> Kind:
        return Kind.HANGUP


@dataclass(frozen=True, slots=True)
class FlowDefaults:
    timeout: float = 5.0
    retries: int = 2
    on_fail: str = ""


@dataclass(frozen=True, slots=True)
class Flow:
    name: str
    file: str
    version: str  # content hash of the file
    start: str
    languages: tuple[str, ...]
    default_language: str
    nodes: Mapping[str, Node]
    hours: BusinessHours | None = None
    description: str = ""

    def node(self, name: str) -> Node:
        return self.nodes[name]


def resolve(value: str, variables: Mapping[str, str]) -> str:
    """``$name`` reads a variable (empty when unset); anything else is literal."""
    if value.startswith("$"):
        return variables.get(value[1:], "")
    return value
