"""The service's local clock: opening hours, holidays and calling windows are judged on it.

It is the real clock plus ``ivr.clock_offset_s`` (drills, tests), plus, with the demo
setting ``ivr.demo_clock = "open"``, the jump to the hotline's next opening when the
service starts while the hotline is closed: a demo started at 01:30 in Vietnam routes
calls at once instead of playing "closed" to everyone. Pure except ``IvrClock.__call__``,
which reads the base clock it is given.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from switchboard.ivr.calendar import BusinessHours
from switchboard.telephony.windows import next_opening

__all__ = ["IvrClock", "demo_shift", "read_clock_note"]

#: Where the running service notes its clock (in ``paths.run_dir``), for ``switchboard doctor``.
NOTE_FILE = "ivr-clock.json"


def demo_shift(hours: BusinessHours, now: datetime) -> timedelta:
    """How far ahead to move a clock reading ``now`` so the hotline is open: zero when it is
    open already, else up to the start of its next opening (zero if it never opens)."""
    local = hours.local(now)
    if hours.is_open(now):
        return timedelta(0)
    nxt = next_opening(hours.ranges_on, local)
    return (nxt - local) if nxt is not None else timedelta(0)


@dataclass(frozen=True, slots=True)
class IvrClock:
    """``base() + offset + demo``: the one clock of opening hours and calling windows."""

    base: Callable[[], datetime]
    offset: timedelta = timedelta(0)     # ivr.clock_offset_s
    demo: timedelta = timedelta(0)       # the demo setting's jump (ivr.demo_clock = open)
    setting: str = "real"

    def __call__(self) -> datetime:
        return self.base() + self.offset + self.demo

    @classmethod
    def build(cls, *, base: Callable[[], datetime] | None, offset_s: float, demo_clock: str,
              hours: BusinessHours | None) -> IvrClock:
        clock = cls(base or (lambda: datetime.now(UTC)), timedelta(seconds=offset_s), setting=demo_clock)
        if demo_clock == "open" and hours is not None:
            return cls(clock.base, clock.offset, demo_shift(hours, clock()), demo_clock)
        return clock

    def describe(self, timezone: str) -> str:
        """One line for the log and ``doctor``: the setting, the local time, the shift."""
        from zoneinfo import ZoneInfo

        local = self().astimezone(ZoneInfo(timezone))
        shift = self.offset + self.demo
        text = f"ivr.demo_clock={self.setting}: local time {local:%a %Y-%m-%d %H:%M} {timezone}"
        if self.demo:
            text += (f", {_hm(self.demo)} ahead of the real clock to the hotline's opening (demo setting;"
                     " DEMO_CLOCK=real keeps the real clock)")
        elif shift:
            text += f", shifted {_hm(shift)} by ivr.clock_offset_s"
        else:
            text += ", the real clock"
        return text

    def note(self, run_dir: str, timezone: str) -> None:
        """Write the note ``switchboard doctor`` shows (best effort)."""
        data = {"setting": self.setting, "describe": self.describe(timezone),
                "shift_s": (self.offset + self.demo).total_seconds(), "written_at": datetime.now(UTC).isoformat()}
        try:
            path = Path(run_dir)
            path.mkdir(parents=True, exist_ok=True)
            (path / NOTE_FILE).write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
        except OSError:
            pass


def read_clock_note(run_dir: str) -> dict[str, Any] | None:
    """The running service's clock note, None if there is none."""
    try:
        data = json.loads((Path(run_dir) / NOTE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _hm(delta: timedelta) -> str:
    minutes = round(abs(delta.total_seconds()) / 60)
    return f"{'-' if delta < timedelta(0) else ''}{minutes // 60}h{minutes % 60:02d}"
