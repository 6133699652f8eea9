"""Calling windows: when the switchboard may dial a citizen (pure; the clock comes in).

Everything that rings a citizen's phone (callbacks today, an outbound campaign later)
asks one ``CallingWindow``: ``is_open(now)`` before it dials, and ``next_open(now)`` to
tell the citizen when to expect the call. The window is a few local-time ranges a day
(default 07:30-20:00, Asia/Ho_Chi_Minh: Vietnam is one time zone), closed on Vietnamese
public holidays and on the extra ``closed`` dates of the IVR calendar, open on its make-up
``open`` dates; the same holiday rules as the flows' opening hours (``ivr.calendar``).

``next_opening`` finds the next moment inside any per-day ranges (a calling window or a
flow's opening hours), a day at a time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from switchboard.ivr.calendar import parse_ranges, vn_holiday

__all__ = ["CallingWindow", "next_opening"]

Ranges = tuple[tuple[time, time], ...]

#: How far ahead ``next_opening`` looks (Tết is at most nine days off in a row).
HORIZON_DAYS = 60


def next_opening(ranges_on: Callable[[date], Ranges], local_now: datetime, *,
                 horizon_days: int = HORIZON_DAYS) -> datetime | None:
    """The first local moment at or after ``local_now`` inside ``ranges_on(day)``; None if none
    within ``horizon_days``. ``local_now`` is aware, in the zone the ranges are in."""
    tz = local_now.tzinfo
    for i in range(horizon_days + 1):
        day = local_now.date() + timedelta(days=i)
        for start, end in sorted(ranges_on(day)):
            begin = datetime.combine(day, start, tz)
            if i == 0 and local_now >= datetime.combine(day, end, tz):
                continue
            return max(begin, local_now)
    return None


@dataclass(frozen=True, slots=True)
class CallingWindow:
    """Local-time ranges a day in which a citizen may be called (see the module's doc)."""

    ranges: Ranges = ((time(7, 30), time(20, 0)),)
    timezone: str = "Asia/Ho_Chi_Minh"
    public_holidays: bool = True
    closed: frozenset[date] = frozenset()
    open: frozenset[date] = frozenset()

    @classmethod
    def build(cls, text: str = "07:30-20:00", *, timezone: str = "Asia/Ho_Chi_Minh", public_holidays: bool = True,
              closed: Iterable[date] = (), open: Iterable[date] = ()) -> CallingWindow:
        """From ``"07:30-20:00"`` (or ``"08:00-11:30, 13:30-20:00"``); ``ValueError`` on a bad text or zone.
        An empty text or ``"closed"`` is a window that never opens (nothing is dialled)."""
        ZoneInfo(timezone)  # raises for an unknown zone
        return cls(parse_ranges(text), timezone, public_holidays, frozenset(closed), frozenset(open))

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def local(self, now: datetime) -> datetime:
        if now.tzinfo is None:
            raise ValueError("naive datetime: pass an aware one (UTC)")
        return now.astimezone(self.tz)

    def ranges_on(self, day: date) -> Ranges:
        """The window on a local date: none on a public holiday or a closed date."""
        if day in self.open:
            return self.ranges
        if day in self.closed or (self.public_holidays and vn_holiday(day) is not None):
            return ()
        return self.ranges

    def is_open(self, now: datetime) -> bool:
        """May a citizen be called at ``now`` (aware)?"""
        local = self.local(now)
        t = local.time().replace(tzinfo=None)
        return any(start <= t < end for start, end in self.ranges_on(local.date()))

    def next_open(self, now: datetime) -> datetime | None:
        """``now`` (local) if the window is open, else when it next opens (local); None if never."""
        return next_opening(self.ranges_on, self.local(now))

    def describe(self) -> str:
        """``07:30-20:00 Asia/Ho_Chi_Minh, not on public holidays`` (for logs and ``doctor``)."""
        text = ", ".join(f"{a:%H:%M}-{b:%H:%M}" for a, b in self.ranges) or "closed"
        return f"{text} {self.timezone}" + (", not on public holidays" if self.public_holidays else "")
