"""A Q&A session's definition, read from YAML (``sessions/*.yaml``) or an API body, validated.

Pure: no I/O but reading the file given. Every problem is reported with its place
(``file:line:column``, like the flows and the campaigns), all at once.

Format (docs/sessions.md)::

    session: pension-law-2026          # id: lower case, digits, - _ (at most 48)
    title: "The new pension law"
    topic: social.pension
    starts: 2026-03-03T09:00:00+07:00  # ISO date-time with its offset
    ends: 2026-03-03T10:00:00+07:00
    moderator: a001                    # an agent id (the expert)
    capacity: 100                      # callers at once (the moderator not counted)
    languages: [vi]                    # the menu offers it to callers of these languages
    title_prompt: session_title_pension_law   # prompt read after "press 5 to join the live session on"
    call_moderator: true               # ring the moderator's phone into the conference at the start
    invite:                            # registered participants called in at the start (optional)
      participants: ["0123456789"]     # insurance codes of ``participants`` (their phone is called)
      numbers: ["0912345678"]          # or numbers (each through the number policy)
      attempts: 2                      # calls per participant at most (no answer, busy: again)
      retry_s: 120                     # seconds between two calls to one participant
      ring_s: 30
      window: "07:30-20:00"            # calling window (local time; public holidays closed)
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from yaml.nodes import ScalarNode

from switchboard.ivr.calendar import parse_ranges
from switchboard.ivr.yaml_marks import (
    NAME,
    Bad,
    Ctx,
    FlowError,
    FlowLoadError,
    YNode,
    compose,
    flag,
    integer,
    mapping,
    string,
    strings,
    top_level,
)

__all__ = [
    "SESSION_ID",
    "Invite",
    "Session",
    "SessionError",
    "conference_name",
    "load_session",
    "load_session_text",
    "load_sessions",
    "with_registered",
]

SESSION_ID = r"[a-z][a-z0-9_-]{0,47}"
SessionError = FlowLoadError
_TOP = {"session", "title", "topic", "starts", "ends", "moderator", "capacity", "languages", "title_prompt",
        "call_moderator", "description", "invite"}
_LANGS = ("vi", "en")
_INVITE_KEYS = {"participants", "numbers", "attempts", "retry_s", "ring_s", "window", "public_holidays"}
#: Registered participants of one session, at most.
MAX_INVITED = 2000
INSURANCE_CODE = re.compile(r"[0-9]{10}")
#: A number as registered (the number policy decides at import whether it may be dialled).
REGISTERED_NUMBER = re.compile(r"\+?[0-9 .()-]{3,24}")
#: The sessions' times are read on the hotline's clock in Vietnam's zone (calling windows).
LOCAL_ZONE = "Asia/Ho_Chi_Minh"


@dataclass(frozen=True, slots=True)
class Invite:
    """Registered participants called into the session at its start (an outbound campaign whose
    flow joins the session, docs/sessions.md)."""

    participants: tuple[str, ...] = ()     # insurance codes (``participants``): their phone is called
    numbers: tuple[str, ...] = ()          # numbers as registered (the number policy decides at import)
    attempts: int = 2                      # calls per participant at most
    retry_s: int = 120                     # spacing after no answer / busy / failed
    ring_s: int = 30
    window: str = "07:30-20:00"            # calling window, local time
    public_holidays: bool = True           # no calls on a public holiday

    def __bool__(self) -> bool:
        return bool(self.participants or self.numbers)

    def to_json(self) -> dict[str, Any]:
        return {"participants": list(self.participants), "numbers": list(self.numbers), "attempts": self.attempts,
                "retry_s": self.retry_s, "ring_s": self.ring_s, "window": self.window,
                "public_holidays": self.public_holidays}

    @classmethod
    def from_json(cls, d: Mapping[str, Any] | None) -> Invite:
        if not d:
            return cls()
        return cls(participants=tuple(d.get("participants", ())), numbers=tuple(d.get("numbers", ())),
                   attempts=int(d.get("attempts", 2)), retry_s=int(d.get("retry_s", 120)),
                   ring_s=int(d.get("ring_s", 30)), window=str(d.get("window", "07:30-20:00")),
                   public_holidays=bool(d.get("public_holidays", True)))


@dataclass(frozen=True, slots=True)
class Session:
    session_id: str
    title: str
    starts: datetime
    ends: datetime
    moderator: str
    capacity: int = 100
    topic: str = "general"
    languages: tuple[str, ...] = ("vi",)
    title_prompt: str = ""
    call_moderator: bool = True
    description: str = ""
    invite: Invite = Invite()

    def running(self, now: datetime, ended_at: datetime | None = None) -> bool:
        """Between its start and its end, and not ended early."""
        if ended_at is not None and ended_at <= now:
            return False
        return self.starts <= now < self.ends

    def to_json(self) -> dict[str, Any]:
        return {"session": self.session_id, "title": self.title, "topic": self.topic,
                "starts": self.starts.isoformat(), "ends": self.ends.isoformat(), "moderator": self.moderator,
                "capacity": self.capacity, "languages": list(self.languages), "title_prompt": self.title_prompt,
                "call_moderator": self.call_moderator, "description": self.description,
                "invite": self.invite.to_json() if self.invite else None}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Session:
        return cls(session_id=d["session"], title=d["title"], topic=d.get("topic", "general"),
                   starts=datetime.fromisoformat(d["starts"]), ends=datetime.fromisoformat(d["ends"]),
                   moderator=d["moderator"], capacity=int(d.get("capacity", 100)),
                   languages=tuple(d.get("languages", ("vi",))), title_prompt=d.get("title_prompt", ""),
                   call_moderator=bool(d.get("call_moderator", True)), description=d.get("description", ""),
                   invite=Invite.from_json(d.get("invite")))


def with_registered(invite: Invite, participants: Iterable[str], numbers: Iterable[str]) -> tuple[Invite, list[str]]:
    """``invite`` with more registered participants (insurance codes) and numbers, each once;
    the problems (a bad code or number, too many) when there are any (then nothing is added)."""
    codes, nums = list(participants), list(numbers)
    problems = [f"participants: {c!r} is not an insurance code (10 digits)" for c in codes
                if not INSURANCE_CODE.fullmatch(c)]
    problems += [f"numbers: {n!r} is not a phone number" for n in nums if not REGISTERED_NUMBER.fullmatch(n)]
    merged = replace(invite, participants=tuple(dict.fromkeys((*invite.participants, *codes))),
                     numbers=tuple(dict.fromkeys((*invite.numbers, *nums))))
    if len(merged.participants) + len(merged.numbers) > MAX_INVITED:
        problems.append(f"at most {MAX_INVITED} registered participants")
    return (invite, problems) if problems else (merged, [])


def conference_name(session_id: str) -> str:
    """The ConfBridge conference of a session (only [a-z0-9_-]: safe in a dialplan argument)."""
    return f"sb-qa-{session_id}"


def load_session(path: str | Path) -> Session:
    p = Path(path)
    return load_session_text(p.read_text(encoding="utf-8"), str(p))


def load_sessions(folder: str | Path) -> list[Session]:
    """Every ``*.yaml`` of ``folder``; ``SessionError`` with every problem of every file."""
    out: list[Session] = []
    errors: list[FlowError] = []
    seen: dict[str, str] = {}
    for p in sorted(Path(folder).glob("*.yaml")):
        try:
            s = load_session(p)
        except FlowLoadError as exc:
            errors.extend(exc.errors)
            continue
        if s.session_id in seen:
            errors.append(FlowError(str(p), 1, 1, f"session {s.session_id!r} is also defined in {seen[s.session_id]}"))
            continue
        seen[s.session_id] = str(p)
        out.append(s)
    if errors:
        raise FlowLoadError(errors)
    return out


def load_session_text(text: str, file: str) -> Session:
    """``SessionError`` listing every problem."""
    ctx = Ctx(file)
    root = compose(ctx, text)
    session = _session(ctx, root) if root is not None else None
    if root is None and not ctx.errors:
        ctx.errors.append(FlowError(file, 1, 1, "empty session file"))
    if ctx.errors or session is None:
        raise FlowLoadError(ctx.errors or [FlowError(file, 1, 1, "not a session")])
    return session


def _when(ctx: Ctx, node: YNode, what: str) -> datetime:
    value = ctx.value(node) if isinstance(node, ScalarNode) else None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise Bad(node, f"{what}: an ISO date-time with its offset, e.g. 2026-03-03T09:00:00+07:00") from None
    if not isinstance(value, datetime):
        raise Bad(node, f"{what}: an ISO date-time with its offset, e.g. 2026-03-03T09:00:00+07:00")
    if value.tzinfo is None:
        raise Bad(node, f"{what}: give the offset (e.g. +07:00)")
    return value


def _session(ctx: Ctx, root: YNode) -> Session | None:
    read = top_level(ctx, root, what="session file", allowed=_TOP,
                     required=("session", "title", "starts", "ends", "moderator"))
    if read is None:
        return None
    top, get = read
    sid = get("session", lambda n: string(ctx, n, "session"), "")
    if sid and not re.fullmatch(SESSION_ID, sid):
        ctx.error(top["session"][1], f"session id {sid!r}: lower-case letters, digits, - and _ (at most 48)")
    title = get("title", lambda n: string(ctx, n, "title"), "")
    if "title" in top and not 1 <= len(title) <= 200:
        ctx.error(top["title"][1], "title: 1 to 200 characters")
    topic = get("topic", lambda n: string(ctx, n, "topic"), "general")
    if not re.fullmatch(r"[a-z0-9_/.-]{1,48}", topic):
        ctx.error(top["topic"][1], f"topic {topic!r}: lower-case skill name (e.g. social.pension)")
    starts = get("starts", lambda n: _when(ctx, n, "starts"), None)
    ends = get("ends", lambda n: _when(ctx, n, "ends"), None)
    if starts is not None and ends is not None and ends <= starts:
        ctx.error(top["ends"][1], "ends must be after starts")
    moderator = get("moderator", lambda n: string(ctx, n, "moderator"), "")
    if moderator and not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", moderator):
        ctx.error(top["moderator"][1], f"moderator {moderator!r}: an agent id")
    capacity = get("capacity", lambda n: integer(ctx, n, "capacity", 1, 1000), 100)
    languages = get("languages", lambda n: strings(ctx, n, "languages"), ("vi",))
    for lang in languages:
        if lang not in _LANGS:
            ctx.error(top["languages"][1], f"languages: {lang!r} is not one of {', '.join(_LANGS)}")
    title_prompt = get("title_prompt", lambda n: string(ctx, n, "title_prompt"), "")
    if title_prompt and not NAME.fullmatch(title_prompt):
        ctx.error(top["title_prompt"][1], f"title_prompt: bad prompt name {title_prompt!r}")
    call_moderator = get("call_moderator", lambda n: flag(ctx, n, "call_moderator"), True)
    description = get("description", lambda n: string(ctx, n, "description"), "")
    invite = get("invite", lambda n: _invite(ctx, n), Invite())
    if invite and starts is not None and "invite" in top:
        _invite_at_start(ctx, top["invite"][1], invite, starts)
    if not sid or not title or starts is None or ends is None or not moderator or ends <= starts:
        return None
    return Session(session_id=sid, title=title, starts=starts, ends=ends, moderator=moderator, capacity=capacity,
                   topic=topic, languages=tuple(languages), title_prompt=title_prompt,
                   call_moderator=call_moderator, description=description, invite=invite)


def _invite(ctx: Ctx, node: YNode) -> Invite:
    f = mapping(ctx, node, "invite")
    for key in sorted(set(f) - _INVITE_KEYS):
        ctx.error(f[key][0], f"invite: unknown key {key!r} (allowed: {', '.join(sorted(_INVITE_KEYS))})")

    def read(key: str, reader: Any, default: Any) -> Any:
        if key not in f:
            return default
        try:
            return reader(f[key][1])
        except Bad as exc:
            ctx.error(exc.node, exc.message)
            return default

    participants = read("participants", lambda n: strings(ctx, n, "invite.participants"), ())
    for code in participants:
        if not INSURANCE_CODE.fullmatch(code):
            ctx.error(f["participants"][1], f"invite.participants: {code!r} is not an insurance code (10 digits)")
    numbers = read("numbers", lambda n: strings(ctx, n, "invite.numbers"), ())
    for number in numbers:
        if not REGISTERED_NUMBER.fullmatch(number):
            ctx.error(f["numbers"][1], f"invite.numbers: {number!r} is not a phone number")
    if len(participants) + len(numbers) > MAX_INVITED:
        ctx.error(node, f"invite: at most {MAX_INVITED} registered participants")
    window = read("window", lambda n: string(ctx, n, "invite.window"), "07:30-20:00")
    try:
        if not parse_ranges(window):
            ctx.error(f["window"][1], 'invite.window: at least one range (e.g. "07:30-20:00")')
    except ValueError as exc:
        ctx.error(f["window"][1], f"invite.window: {exc}")
    return Invite(participants=tuple(participants), numbers=tuple(numbers),
                  attempts=read("attempts", lambda n: integer(ctx, n, "invite.attempts", 1, 5), 2),
                  retry_s=read("retry_s", lambda n: integer(ctx, n, "invite.retry_s", 10, 3600), 120),
                  ring_s=read("ring_s", lambda n: integer(ctx, n, "invite.ring_s", 10, 90), 30),
                  window=window, public_holidays=read("public_holidays",
                                                      lambda n: flag(ctx, n, "invite.public_holidays"), True))


def _invite_at_start(ctx: Ctx, node: YNode, invite: Invite, starts: datetime) -> None:
    """Nobody would be called when the session starts outside the invitations' calling window."""
    try:
        ranges = parse_ranges(invite.window)
    except ValueError:
        return   # reported by _invite
    local = starts.astimezone(ZoneInfo(LOCAL_ZONE)).time().replace(tzinfo=None)
    if not any(a <= local < b for a, b in ranges):
        ctx.error(node, f"invite: the session starts at {local:%H:%M} ({LOCAL_ZONE}), outside the calling window "
                  f"{invite.window}: nobody would be called")
