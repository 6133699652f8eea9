"""The calling window (telephony.windows), the IVR clock's demo jump (ivr.clock) and the
callback notice (ivr.callback_notice): pure, with the clock passed in."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as hs

from switchboard.config import ConfigError, load_settings
from switchboard.ivr.calendar import BusinessHours
from switchboard.ivr.callback_notice import NOTICE_PROMPTS, notice_prompts
from switchboard.ivr.clock import IvrClock, demo_shift
from switchboard.telephony.windows import CallingWindow

ICT = ZoneInfo("Asia/Ho_Chi_Minh")


def at(y: int, mo: int, d: int, h: int, mi: int = 0, s: int = 0) -> datetime:
    """A moment given in Vietnamese local time, as UTC."""
    return datetime(y, mo, d, h, mi, s, tzinfo=ICT).astimezone(UTC)


W = CallingWindow.build()


def test_default_window_is_0730_to_2000_local() -> None:
    assert not W.is_open(at(2026, 3, 4, 7, 29, 59))
    assert W.is_open(at(2026, 3, 4, 7, 30))
    assert W.is_open(at(2026, 3, 4, 19, 59, 59))
    assert not W.is_open(at(2026, 3, 4, 20, 0))
    assert not W.is_open(at(2026, 3, 4, 1, 27))       # the 01:27 callback
    assert W.is_open(at(2026, 3, 7, 10, 0))           # a Saturday: citizens may be called
    assert W.describe() == "07:30-20:00 Asia/Ho_Chi_Minh, not on public holidays"


def test_next_open_today_tomorrow_and_after_a_holiday() -> None:
    assert W.next_open(at(2026, 3, 4, 1, 30)) == datetime(2026, 3, 4, 7, 30, tzinfo=ICT)
    assert W.next_open(at(2026, 3, 4, 21, 0)) == datetime(2026, 3, 5, 7, 30, tzinfo=ICT)
    assert W.next_open(at(2026, 3, 4, 9, 15)) == datetime(2026, 3, 4, 9, 15, tzinfo=ICT)   # open: now
    # 30 April and 1 May are public holidays: an evening request on 29 April waits until 2 May
    assert not W.is_open(at(2026, 4, 30, 10, 0)) and not W.is_open(at(2026, 5, 1, 10, 0))
    assert W.next_open(at(2026, 4, 29, 20, 30)) == datetime(2026, 5, 2, 7, 30, tzinfo=ICT)
    # holidays may be ignored, and the IVR calendar's extra closed / make-up open dates apply
    assert CallingWindow.build(public_holidays=False).is_open(at(2026, 5, 1, 10, 0))
    extra = CallingWindow.build(closed=[date(2026, 3, 5)], open=[date(2026, 5, 1)])
    assert not extra.is_open(at(2026, 3, 5, 10, 0)) and extra.is_open(at(2026, 5, 1, 10, 0))


def test_split_window_and_never() -> None:
    w = CallingWindow.build("08:00-11:30, 13:30-20:00")
    assert not w.is_open(at(2026, 3, 4, 12, 0))
    assert w.next_open(at(2026, 3, 4, 12, 0)) == datetime(2026, 3, 4, 13, 30, tzinfo=ICT)
    never = CallingWindow.build("closed")
    assert not never.is_open(at(2026, 3, 4, 12, 0)) and never.next_open(at(2026, 3, 4, 12, 0)) is None
    with pytest.raises(ValueError):
        CallingWindow.build("20:00-07:30")
    with pytest.raises(ValueError):
        W.is_open(datetime(2026, 3, 4, 12, 0))   # naive


@given(hs.datetimes(min_value=datetime(2025, 1, 1), max_value=datetime(2030, 12, 31)))
def test_next_open_is_open_and_nothing_earlier_is(naive: datetime) -> None:
    """Restated: the next opening is inside the window, not before now, and every minute
    between now and it is outside the window."""
    now = naive.replace(tzinfo=UTC)
    nxt = W.next_open(now)
    assert nxt is not None and nxt >= now and W.is_open(nxt)
    if nxt > now:
        step = now + timedelta(minutes=1)
        while step < nxt and step - now < timedelta(days=2):
            assert not W.is_open(step)
            step += timedelta(minutes=37)


def test_settings_of_the_window() -> None:
    s = load_settings(environ={"SWITCHBOARD_NUMBERS_CALL_WINDOW": "08:00-19:00"})
    assert s.numbers.call_window == "08:00-19:00" and s.numbers.call_window_holidays
    with pytest.raises(ConfigError, match="SWITCHBOARD_NUMBERS_CALL_WINDOW"):
        load_settings(environ={"SWITCHBOARD_NUMBERS_CALL_WINDOW": "8 to 7"})
    with pytest.raises(ConfigError, match="SWITCHBOARD_IVR_DEMO_CLOCK"):
        load_settings(environ={"SWITCHBOARD_IVR_DEMO_CLOCK": "fast"})


HOURS = BusinessHours.build(weekly={"mon-fri": "07:30-11:30, 13:00-17:00"})


def test_demo_clock_jumps_to_the_next_opening_only_when_closed() -> None:
    assert demo_shift(HOURS, at(2026, 3, 4, 1, 30)) == timedelta(hours=6)            # 01:30 -> 07:30
    assert demo_shift(HOURS, at(2026, 3, 4, 10, 0)) == timedelta(0)                  # open: unchanged
    assert demo_shift(HOURS, at(2026, 3, 4, 12, 0)) == timedelta(hours=1)            # lunch -> 13:00
    assert demo_shift(HOURS, at(2026, 3, 6, 18, 0)) == timedelta(days=2, hours=13, minutes=30)  # Fri -> Mon
    base = at(2026, 3, 4, 1, 30)
    clock = IvrClock.build(base=lambda: base, offset_s=0, demo_clock="open", hours=HOURS)
    assert HOURS.is_open(clock()) and clock().astimezone(ICT).time() == time(7, 30)
    assert "6h00 ahead of the real clock" in clock.describe("Asia/Ho_Chi_Minh")
    real = IvrClock.build(base=lambda: base, offset_s=60, demo_clock="real", hours=HOURS)
    assert real() == base + timedelta(seconds=60) and not HOURS.is_open(real())
    assert "ivr.demo_clock=real" in real.describe("Asia/Ho_Chi_Minh")


def test_callback_notice_says_when() -> None:
    now = datetime(2026, 3, 4, 1, 30, tzinfo=ICT)
    assert notice_prompts(None, now, "vi") == ["callback_expect_soon"]
    assert notice_prompts(datetime(2026, 3, 4, 7, 30, tzinfo=ICT), now, "vi") == [
        "callback_expect_from", "num_7", "time_hours", "num_3", "num_muoi_ngang", "day_today"]
    assert notice_prompts(datetime(2026, 3, 5, 7, 30, tzinfo=ICT), now, "en") == [
        "callback_expect_from", "num_7", "num_30", "day_tomorrow"]
    assert notice_prompts(datetime(2026, 3, 5, 8, 0, tzinfo=ICT), now, "en")[1:3] == ["num_8", "time_oclock"]
    assert notice_prompts(datetime(2026, 5, 2, 7, 30, tzinfo=ICT), now, "en")[-4:] == [
        "date_day", "num_2", "date_month", "num_5"]
    for lang in ("vi", "en"):
        used = {n for n in notice_prompts(datetime(2026, 5, 2, 8, 0, tzinfo=ICT), now, lang)
                + notice_prompts(datetime(2026, 3, 5, 8, 0, tzinfo=ICT), now, lang)
                + notice_prompts(datetime(2026, 3, 4, 8, 0, tzinfo=ICT), now, lang) if not n.startswith("num_")}
        assert used <= set(NOTICE_PROMPTS[lang]) | {"callback_expect_soon"}
