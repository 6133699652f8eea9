"""What a waiting caller hears: music on hold, and every ``interval`` seconds
their place in line and the estimated wait in their language, with the offer
to press 1 for a callback that keeps their place. A caller whose number the
number policy refuses hears ``queue_callback_refused`` and keeps waiting; the
offer is not repeated to them.

The loop runs on the caller's AGI session while the router looks for an
agent. When an agent answers, Asterisk pulls the caller into the bridge and
the ACD cancels this loop; a hang-up ends it through ``AgiHangup``.
"""

from __future__ import annotations

import asyncio
import logging
import math
from typing import Any

from switchboard.ami.agi import AgiHangup, agi_quote
from switchboard.audio.numbers import say_number

log = logging.getLogger("switchboard.acd.hold")

CALLBACK_KEY = "1"
#: The fixed prompts of the announcements (numbers come from switchboard.audio.numbers).
HOLD_PROMPTS = ("queue_position", "queue_wait_about", "queue_minutes", "queue_callback_offer",
                "queue_callback_refused")


class HoldLoop:
    def __init__(self, *, sound_prefix: str, interval_s: float = 45.0, first_after_s: float = 8.0,
                 moh_class: str = "default", callbacks: bool = True) -> None:
        self.prefix = sound_prefix.rstrip("/")
        self.interval_s = interval_s
        self.first_after_s = first_after_s
        self.moh_class = moh_class
        self.callbacks = callbacks

    def announcement(self, position: int, estimate_s: float | None, lang: str, *, offer: bool = True) -> list[str]:
        """Prompt names: "you are number N in line[, the wait is about M minutes][, press 1 ...]"."""
        names = ["queue_position", *say_number(position, lang)]
        if estimate_s is not None and estimate_s > 0:
            minutes = max(1, math.ceil(estimate_s / 60))
            names += ["queue_wait_about", *say_number(minutes, lang), "queue_minutes"]
        if self.callbacks and offer:
            names.append("queue_callback_offer")
        return names

    async def run(self, acd: Any, waiter: Any) -> None:
        session = waiter.session
        call_id = waiter.call.call_id
        lang = waiter.call.language or "vi"
        keys = agi_quote(CALLBACK_KEY if self.callbacks else "")
        try:
            await session.execute(f"EXEC StartMusicOnHold {agi_quote(self.moh_class)}", timeout=10)
            wait_s = self.first_after_s
            while True:
                result = await session.execute(f"WAIT FOR DIGIT {int(wait_s * 1000)}", timeout=wait_s + 15)
                if result.result == "-1":
                    acd.caller_gone(call_id)
                    return
                pressed = result.digit
                if not pressed:
                    position, estimate = acd.position(call_id)
                    if position == 0:
                        return
                    await session.execute("EXEC StopMusicOnHold", timeout=10)
                    for name in self.announcement(position, estimate, lang, offer=not waiter.callback_refused):
                        played = await session.execute(f"STREAM FILE {agi_quote(f'{self.prefix}/{lang}/{name}')} {keys}", timeout=30)
                        if played.digit:
                            pressed = played.digit
                            break
                    if not pressed:
                        await session.execute(f"EXEC StartMusicOnHold {agi_quote(self.moh_class)}", timeout=10)
                if pressed == CALLBACK_KEY and self.callbacks:
                    await session.execute("EXEC StopMusicOnHold", timeout=10)
                    log.info("call %s: caller asked for a callback", call_id)
                    answer = acd.caller_pressed_callback(call_id)
                    if answer != "refused":     # accepted (the flow says goodbye), or no longer waiting
                        return
                    # the number cannot be called back: say so, and keep the caller in line
                    await session.execute(f"STREAM FILE {agi_quote(f'{self.prefix}/{lang}/queue_callback_refused')} "
                                          f'""', timeout=30)
                    await session.execute(f"EXEC StartMusicOnHold {agi_quote(self.moh_class)}", timeout=10)
                wait_s = self.interval_s
        except AgiHangup:
            acd.caller_gone(call_id)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("call %s: hold loop failed; the caller keeps waiting in silence", call_id)
