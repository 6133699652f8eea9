"""Business hours with Vietnamese public holidays (pure; the clock comes in).

Holidays come from the ``holidays`` package (Vietnam: Tết and the Hùng Kings'
day follow the lunar calendar, plus substituted days off), plus dates a flow
adds (``closed``) or removes (``open``, e.g. a make-up Saturday).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time
from zoneinfo import ZoneInfo

__all__ = ["WEEKDAYS", "BusinessHours", "parse_ranges", "vn_holiday"]

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@functools.lru_cache(maxsize=64)
def _vn_holidays(year: int) -> Mapping[date, str]:
    import holidays

    return dict(holidays.country_holidays("VN", years=year).items())


def vn_holiday(day: date) -> str | None:
    """The name of the Vietnamese public holiday on ``day``, or None."""
    return _vn_holidays(day.year).get(day)


def parse_ranges(text: str) -> tuple[tuple[time, time], ...]:
    """``"07:30-11:30, 13:00-17:00"`` -> ((07:30, 11:30), (13:00, 17:00)); ``"closed"`` -> ()."""
    text = text.strip()
    if text in ("", "closed"):
        return ()
    out: list[tuple[time, time]] = []
    for part in text.split(","):
        start_s, sep, end_s = part.strip().partition("-")
        if not sep:
            raise ValueError(f"expected HH:MM-HH:MM, got {part.strip()!r}")
        start, end = time.fromisoformat(start_s.strip()), time.fromisoformat(end_s.strip())
        if end <= start:
            raise ValueError(f"range ends before it starts: {part.strip()!r}")
        out.append((start, end))
    return tuple(out)


@dataclass(frozen=True, slots=True)
class BusinessHours:
    timezone: str = "Asia/Ho_Chi_Minh"
    weekly: Mapping[str, tuple[tuple[time, time], ...]] = field(default_factory=dict)
    public_holidays: bool = True  # closed on Vietnamese public holidays
    closed: frozenset[date] = frozenset()
    open: frozenset[date] = frozenset()

    @classmethod
    def build(
        cls,
        *,
        timezone: str = "Asia/Ho_Chi_Minh",
        weekly: Mapping[str, str],
        public_holidays: bool = True,
        closed: Iterable[date] = (),
        open: Iterable[date] = (),
    ) -> BusinessHours:
        days: dict[str, tuple[tuple[time, time], ...]] = {}
        for key, ranges in weekly.items():
            parsed = parse_ranges(ranges)
            for day in _expand_days(key):
                days[day] = parsed
        ZoneInfo(timezone)  # raises for an unknown zone
        return cls(timezone, days, public_holidays, frozenset(closed), frozenset(open))

    def local(self, now: datetime) -> datetime:
        if now.tzinfo is None:
            raise ValueError("naive datetime: pass an aware one (UTC)")
        return now.astimezone(ZoneInfo(self.timezone))

    def holiday_on(self, day: date) -> bool:
        """Closed all day on this local date (a public holiday or a ``closed`` date, not an ``open`` one)."""
        if day in self.open:
            return False
        if day in self.closed:
            return True
        return self.public_holidays and vn_holiday(day) is not None

    def ranges_on(self, day: date) -> tuple[tuple[time, time], ...]:
        """The opening ranges of a local date (none on a holiday)."""
        if self.holiday_on(day):
            return ()
        ranges = self.weekly.get(WEEKDAYS[day.weekday()], ())
        if day in self.open:
            ranges = self.weekly.get("mon", ranges)  # a make-up working day keeps Monday's hours
        return ranges

    def is_holiday(self, now: datetime) -> bool:
        return self.holiday_on(self.local(now).date())

    def is_open(self, now: datetime) -> bool:
        local = self.local(now)
        t = local.time().replace(tzinfo=None)
        return any(start <= t < end for start, end in self.ranges_on(local.date()))


def _expand_days(key: str) -> list[str]:
    """``"mon-fri"`` -> [mon..fri]; ``"sat"`` -> [sat]; ``"mon,wed"`` -> [mon, wed]."""
    out: list[str] = []
    for part in key.split(","):
        part = part.strip().lower()
        first, sep, last = part.partition("-")
        if first not in WEEKDAYS or (sep and last not in WEEKDAYS):
            raise ValueError(f"unknown day {part!r} (use mon..sun, ranges like mon-fri)")
        if not sep:
            out.append(first)
            continue
        i, j = WEEKDAYS.index(first), WEEKDAYS.index(last)
        if j < i:
            raise ValueError(f"day range goes backwards: {part!r}")
        out.extend(WEEKDAYS[i : j + 1])
    return out
