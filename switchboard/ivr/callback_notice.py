"""What a caller hears after asking for a callback: when to expect the call (pure).

"An agent will call you back as soon as one is free" inside the calling window; outside
it, "... from seven thirty tomorrow" (the window's next opening, ``telephony.windows``),
said with the number word prompts of ``audio.numbers``. Vietnamese reads the time as
``bảy giờ ba mươi``, English as ``seven thirty`` / ``seven o'clock``; a day further than
tomorrow (after Tết, a long weekend) is said as its date.
"""

from __future__ import annotations

from datetime import datetime

from switchboard.audio.numbers import say_number

__all__ = ["NOTICE_PROMPTS", "notice_prompts"]

#: The fixed prompts of the notice, per language (numbers come from audio.numbers).
NOTICE_PROMPTS: dict[str, tuple[str, ...]] = {
    "vi": ("callback_expect_soon", "callback_expect_from", "time_hours", "day_today", "day_tomorrow",
           "date_day", "date_month"),
    "en": ("callback_expect_soon", "callback_expect_from", "time_oclock", "day_today", "day_tomorrow",
           "date_day", "date_month"),
}


def say_time(hour: int, minute: int, lang: str) -> list[str]:
    """``07:30`` -> bảy giờ ba mươi / seven thirty; ``13:00`` -> mười ba giờ / thirteen o'clock."""
    if lang == "vi":
        return [*say_number(hour, lang), "time_hours", *(say_number(minute, lang) if minute else [])]
    return [*say_number(hour, lang), *(say_number(minute, lang) if minute else ["time_oclock"])]


def notice_prompts(when: datetime | None, now: datetime, lang: str) -> list[str]:
    """Prompt names telling when to expect the callback: ``when`` None means the window is
    open (soon); else the local moment it opens, ``now`` in the same zone."""
    if when is None:
        return ["callback_expect_soon"]
    lang = lang if lang in NOTICE_PROMPTS else "vi"
    names = ["callback_expect_from", *say_time(when.hour, when.minute, lang)]
    days = (when.date() - now.astimezone(when.tzinfo).date()).days
    if days <= 0:
        names.append("day_today")
    elif days == 1:
        names.append("day_tomorrow")
    else:
        names += ["date_day", *say_number(when.day, lang), "date_month", *say_number(when.month, lang)]
    return names
