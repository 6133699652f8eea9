"""The one number policy: every number the switchboard may dial goes through here.

A caller id (or a number typed by a caller, or read from a directory or a campaign
list) is untrusted text. ``NumberPolicy.check`` turns it into a ``NumberDecision``:
either a normalised Vietnamese subscriber number that is safe to put in a Dial
string, or a refusal with a stable ``reason``. Nothing else reaches a Dial.

Rules, in order (pure, no I/O):

1. Only digits, one leading ``+`` and the visual separators space, ``-``, ``.`` are
   accepted; anything else (``&``, ``,``, ``/``, ``(``, letters, control characters)
   is ``malformed``: such a string could add channels or Dial options.
2. Normalise to the national form: ``+84…``, ``0084…`` and ``84…`` (10-12 digits)
   become ``0…``. Another country code (``+…``, ``00…``) is ``international``.
3. The deny-list (prefixes of the normalised form, e.g. ``1900`` premium) refuses
   with ``denied_prefix``; it wins over everything else.
4. The allow-list (prefixes, e.g. ``1800`` or ``+855``) accepts what would
   otherwise be refused as not a subscriber number or international.
5. By default only subscriber numbers pass: mobile (``0`` + a mobile prefix, 10
   digits) and landline (``0`` + a landline area code + subscriber, 11 digits).
   Up to 6 digits without the trunk ``0`` is a ``short_code`` (113, 1080...).

``DailyCap`` counts the callbacks granted per number and local day; the service
seeds it from the database at start, so a restart does not reset it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from enum import StrEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from switchboard.config import NumberSettings

__all__ = ["CallbackNumbers", "DailyCap", "NumberDecision", "NumberPolicy", "NumberRefused", "Refusal",
           "default_callback_numbers",
           "log_safe", "masked", "presentable"]

#: The longest number (with separators) worth looking at; longer is ``malformed``.
MAX_RAW_LENGTH = 24
_ALLOWED = re.compile(r"\+?[0-9][0-9 .\-]*")
_SEPARATORS = re.compile(r"[ .\-]")


class Refusal(StrEnum):
    """Why a number may not be dialled (stable: stored in ``callback.refused`` events)."""

    EMPTY = "empty"
    MALFORMED = "malformed"
    INTERNATIONAL = "international"
    DENIED_PREFIX = "denied_prefix"
    SHORT_CODE = "short_code"
    NOT_SUBSCRIBER = "not_subscriber"
    DAILY_CAP = "daily_cap"


@dataclass(frozen=True, slots=True)
class NumberDecision:
    """The verdict on one number. ``number`` is the normalised form ("" when malformed)."""

    number: str
    kind: str = ""                  # mobile | landline | allowed (when accepted)
    refusal: Refusal | None = None
    detail: str = ""                # e.g. the deny-list prefix that matched

    @property
    def ok(self) -> bool:
        return self.refusal is None

    @property
    def reason(self) -> str:
        return self.refusal.value if self.refusal is not None else ""


@dataclass(frozen=True, slots=True)
class NumberPolicy:
    """Which numbers may be dialled. Build it with ``NumberPolicy.create`` (or from settings)."""

    landline_codes: frozenset[str]
    mobile_prefixes: tuple[str, ...] = ("03", "05", "07", "08", "09")
    allow_prefixes: tuple[str, ...] = ()
    deny_prefixes: tuple[str, ...] = ("1900",)
    dial_format: str = "national"    # national (0912345678) | e164 (+84912345678)
    _code_lengths: tuple[int, ...] = field(default=(), repr=False)

    @classmethod
    def create(cls, *, landline_codes: Iterable[str], mobile_prefixes: Iterable[str] = ("03", "05", "07", "08", "09"),
               allow_prefixes: Iterable[str] = (), deny_prefixes: Iterable[str] = ("1900",),
               dial_format: str = "national") -> NumberPolicy:
        codes = frozenset(c.strip() for c in landline_codes if c.strip())
        for c in codes:
            if not c.isdigit():
                raise ValueError(f"landline area code {c!r} is not digits")
        if dial_format not in ("national", "e164"):
            raise ValueError(f"dial_format must be national or e164, got {dial_format!r}")
        allow = tuple(_prefix(p, "allow") for p in allow_prefixes)
        deny = tuple(_prefix(p, "deny") for p in deny_prefixes)
        mobile = tuple(_prefix(p, "mobile") for p in mobile_prefixes)
        return cls(codes, mobile, allow, deny, dial_format, tuple(sorted({len(c) for c in codes}, reverse=True)))

    @classmethod
    def from_settings(cls, settings: NumberSettings, *, landline_codes: Iterable[str]) -> NumberPolicy:
        """From the ``[numbers]`` settings; landline codes from ``geo.load_provinces().area_codes``."""
        return cls.create(landline_codes=landline_codes, mobile_prefixes=settings.mobile_prefixes,
                          allow_prefixes=settings.allow_prefixes, deny_prefixes=settings.deny_prefixes,
                          dial_format=settings.dial_format)

    # ------------------------------------------------------------------ the rules

    def check(self, raw: str | None) -> NumberDecision:
        """The verdict on ``raw`` (any text: a caller id, typed digits, a list entry)."""
        text = (raw or "").strip()
        if not text or text.lower() in ("unknown", "anonymous", "<unknown>", "restricted"):
            return NumberDecision("", refusal=Refusal.EMPTY)
        if len(text) > MAX_RAW_LENGTH or _ALLOWED.fullmatch(text) is None:
            return NumberDecision("", refusal=Refusal.MALFORMED)
        number = normalise(_SEPARATORS.sub("", text))
        for p in self.deny_prefixes:
            if number.startswith(p):
                return NumberDecision(number, refusal=Refusal.DENIED_PREFIX, detail=p)
        for p in self.allow_prefixes:
            if number.startswith(p):
                return NumberDecision(number, kind="allowed")
        if number.startswith("+"):
            return NumberDecision(number, refusal=Refusal.INTERNATIONAL)
        if not number.startswith("0"):
            if len(number) <= 6:
                return NumberDecision(number, refusal=Refusal.SHORT_CODE)
            return NumberDecision(number, refusal=Refusal.NOT_SUBSCRIBER)
        if len(number) == 10 and number[1] != "0" and any(number.startswith(p) for p in self.mobile_prefixes):
            return NumberDecision(number, kind="mobile")
        if len(number) == 11:
            rest = number[1:]
            if any(rest[:n] in self.landline_codes for n in self._code_lengths):
                return NumberDecision(number, kind="landline")
        return NumberDecision(number, refusal=Refusal.NOT_SUBSCRIBER)

    def dial_string(self, decision: NumberDecision) -> str:
        """What goes on the trunk for an accepted number: digits (and a leading ``+``) only."""
        if not decision.ok:
            raise ValueError(f"refused number {decision.number!r} ({decision.reason}) must not be dialled")
        n = decision.number
        if self.dial_format == "e164" and n.startswith("0"):
            n = "+84" + n[1:]
        if re.fullmatch(r"\+?[0-9]{3,20}", n) is None:  # pragma: no cover - check() guarantees it
            raise ValueError(f"not a dialable number: {n!r}")
        return n


def normalise(digits: str) -> str:
    """``+84…``/``0084…``/``84…`` -> ``0…``; another ``+cc``/``00cc`` -> ``+cc…``; the rest unchanged.

    ``digits`` holds digits and at most one leading ``+`` (separators removed).
    """
    if digits.startswith("+"):
        rest = digits[1:]
        return "0" + rest[2:] if rest.startswith("84") else "+" + rest
    if digits.startswith("00"):
        rest = digits[2:]
        return "0" + rest[2:] if rest.startswith("84") else "+" + rest
    if digits.startswith("84") and 10 <= len(digits) <= 12:
        return "0" + digits[2:]
    return digits


def _prefix(p: str, what: str) -> str:
    p = _SEPARATORS.sub("", p.strip())
    if re.fullmatch(r"\+?[0-9]+", p) is None:
        raise ValueError(f"{what} prefix {p!r}: digits with an optional leading + only")
    # written as +84… it means the national 0…; another +cc stays international
    return normalise(p) if p.startswith("+84") else p


class DailyCap:
    """Callbacks granted per number and local day, at most ``limit`` (0 = no cap).

    Pure: the caller passes the time. ``seed`` loads what the database already
    holds for today (``store.callbacks.callbacks_today``), so a restart keeps the count.
    """

    def __init__(self, limit: int, tz: tzinfo) -> None:
        self.limit = limit
        self.tz = tz
        self._day = ""
        self._counts: dict[str, int] = {}

    def day_of(self, now: datetime) -> str:
        return now.astimezone(self.tz).date().isoformat()

    def _roll(self, now: datetime) -> None:
        day = self.day_of(now)
        if day != self._day:
            self._day, self._counts = day, {}

    def seed(self, counts: Mapping[str, int], now: datetime) -> None:
        """Counts of today's callbacks per normalised number, read from the database."""
        self._roll(now)
        for number, n in counts.items():
            self._counts[number] = max(self._counts.get(number, 0), int(n))

    def used(self, number: str, now: datetime) -> int:
        self._roll(now)
        return self._counts.get(number, 0)

    def allows(self, number: str, now: datetime) -> bool:
        return self.limit <= 0 or self.used(number, now) < self.limit

    def take(self, number: str, now: datetime) -> None:
        self._roll(now)
        self._counts[number] = self._counts.get(number, 0) + 1


def log_safe(value: object, limit: int = 40) -> str:
    """Untrusted text for a log line: printable ASCII only (others as ``?``), bounded."""
    text = str(value)
    out = "".join(c if " " <= c <= "~" else "?" for c in text[:limit])
    return out + ("…" if len(text) > limit else "")


class CallbackNumbers:
    """The policy and the daily cap together: the one question a callback asks.

    ``decide`` is the verdict (policy first, then the cap); ``grant`` counts a callback
    once it is really taken. Used for callbacks asked while waiting, after hours, and
    again for callbacks read back from the database before they are dialled.
    """

    def __init__(self, policy: NumberPolicy, cap: DailyCap) -> None:
        self.policy = policy
        self.cap = cap

    def decide(self, raw: str | None, now: datetime, *, count: bool = True) -> NumberDecision:
        d = self.policy.check(raw)
        if d.ok and count and not self.cap.allows(d.number, now):
            return NumberDecision(d.number, kind=d.kind, refusal=Refusal.DAILY_CAP, detail=str(self.cap.limit))
        return d

    def grant(self, number: str, now: datetime) -> None:
        self.cap.take(number, now)


def default_callback_numbers(settings: NumberSettings | None = None) -> CallbackNumbers:
    """The policy and cap of the ``[numbers]`` settings (defaults when None), landlines from geo."""
    from zoneinfo import ZoneInfo

    from switchboard.config import NumberSettings
    from switchboard.geo import load_provinces

    s = settings if settings is not None else NumberSettings()
    policy = NumberPolicy.from_settings(s, landline_codes=load_provinces().area_codes)
    return CallbackNumbers(policy, DailyCap(s.callbacks_per_day, ZoneInfo(s.timezone)))


def masked(number: str) -> str:
    """A number as a page shows it to an agent who needs to recognise it, not to dial it: the
    first three and last three digits, the rest as ``*`` (``0912345678`` -> ``091****678``).
    Short numbers keep only their last two digits."""
    digits = re.sub(r"[^0-9]", "", number or "")
    plus = "+" if (number or "").strip().startswith("+") else ""
    if len(digits) <= 6:
        return plus + "*" * max(0, len(digits) - 2) + digits[-2:]
    return plus + digits[:3] + "*" * (len(digits) - 6) + digits[-3:]


def presentable(raw: str | None) -> str:
    """A caller id for a CallerID header or a display: digits and a leading ``+`` only."""
    text = (raw or "").strip()
    digits = re.sub(r"[^0-9]", "", text)[:20]
    return ("+" + digits) if text.startswith("+") and digits else digits


class NumberRefused(Exception):
    """A number the policy refused, where an answer cannot carry it (e.g. the IVR's callback hook)."""

    def __init__(self, decision: NumberDecision) -> None:
        super().__init__(f"number refused: {decision.reason}")
        self.decision = decision
