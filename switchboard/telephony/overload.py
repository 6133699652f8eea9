"""Refuse new callers cleanly past capacity: the decision, and the figures it rests on.

Pure, no asyncio. :class:`OverloadGuard` takes the service's load now
(:class:`Load`: callers it holds, AGI acknowledgement p99, event-loop lag p99)
and says whether a NEW hotline caller is refused (:class:`Verdict`) and why.
Callers already in the flow, surveys and agents' feature codes never ask it
(``switchboard.telephony.entry`` asks only at the start of a new hotline call).

Hysteresis, so it does not flap: the guard turns on as soon as one figure
reaches its limit, and turns off only when every figure has stayed below
``resume_ratio`` x its limit for ``hold_s`` seconds. A limit of 0 is not checked.

:class:`RecentWindow` keeps the last ``window_s`` seconds of one figure (the
AGI acknowledgement times) and answers a quantile of them.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable
from dataclasses import dataclass

from switchboard.config import OverloadSettings
from switchboard.loop_lag import RecentWindow

__all__ = ["Load", "OverloadGuard", "Reason", "RecentWindow", "Verdict", "rtp_ports_needed"]

#: Asterisk binds two UDP ports per channel with media: RTP on an even port, RTCP on the next.
PORTS_PER_CHANNEL = 2
#: Room over the count below for what the gate does not count (callbacks dialled out, spies,
#: agents' feature-code calls, the fallback queue's own channels).
RTP_MARGIN = 1.25


def rtp_ports_needed(*, max_calls: int, agents: int, refusing: int | None = None) -> int:
    """The RTP range (``rtpend - rtpstart + 1``) that keeps Asterisk from running out of ports
    before this gate refuses anyone.

    A full range makes Asterisk answer a new INVITE ``488 Not Acceptable Here`` before any
    dialplan runs (issue 12's level 600: "couldn't allocate a port for RTP instance"), so the
    caller never reaches the gate and hears no busy message. At the gate's limit Asterisk holds
    ``max_calls`` callers, one leg per agent (ringing or talking) and the ``refusing`` callers
    still hearing the busy message (about 14 s for vi + en; by default as many as ``max_calls``:
    a burst of 29 new callers a second for that long, above anything this box carried)."""
    if max_calls <= 0:
        raise ValueError("max_calls = 0 (no limit): no RTP range is ever enough; size it from the trunk")
    channels = max_calls + agents + (max_calls if refusing is None else refusing)
    return int(PORTS_PER_CHANNEL * channels * RTP_MARGIN + 0.5)


class Reason(enum.StrEnum):
    CALLS = "calls"          # the service holds max_calls callers already
    LOOP_LAG = "loop_lag"    # the event loop runs late
    AGI_ACK = "agi_ack"      # Asterisk is slow to accept AGI commands


@dataclass(frozen=True, slots=True)
class Load:
    calls: int               # callers the service holds now (not counting the new one, nor refused ones)
    agi_ack_p99_s: float
    loop_lag_p99_s: float

    def as_dict(self) -> dict[str, float | int]:
        return {"calls": self.calls, "agi_ack_p99_s": round(self.agi_ack_p99_s, 4),
                "loop_lag_p99_s": round(self.loop_lag_p99_s, 4)}


@dataclass(frozen=True, slots=True)
class Verdict:
    refuse: bool
    reasons: tuple[Reason, ...]   # figures at or over their limit now; when only the hysteresis
                                  # keeps the guard on, the reasons that turned it on
    load: Load

    @property
    def reason(self) -> str:
        """The first reason (one label per refused call), "" when accepted."""
        return str(self.reasons[0]) if self.reasons else ""


class OverloadGuard:
    """The decision with its hysteresis state. ``clock`` is monotonic seconds."""

    def __init__(self, settings: OverloadSettings, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self.clock = clock
        self.active = False
        self._cause: tuple[Reason, ...] = ()
        self._quiet_since: float | None = None

    def _limits(self) -> list[tuple[Reason, float]]:
        s = self.settings
        return [(Reason.CALLS, float(s.max_calls)), (Reason.LOOP_LAG, s.max_loop_lag_s),
                (Reason.AGI_ACK, s.max_agi_ack_s)]

    @staticmethod
    def _value(reason: Reason, load: Load) -> float:
        if reason is Reason.CALLS:
            return float(load.calls)
        if reason is Reason.LOOP_LAG:
            return load.loop_lag_p99_s
        return load.agi_ack_p99_s

    def decide(self, load: Load) -> Verdict:
        """Whether a new caller is refused now, updating the hysteresis state."""
        if not self.settings.enabled:
            self.active = False
            return Verdict(False, (), load)
        limits = [(r, lim) for r, lim in self._limits() if lim > 0]
        over = tuple(r for r, lim in limits if self._value(r, load) >= lim)
        now = self.clock()
        if over:
            self.active = True
            self._cause = over
            self._quiet_since = None
            return Verdict(True, over, load)
        if not self.active:
            return Verdict(False, (), load)
        calm = all(self._value(r, load) < lim * self.settings.resume_ratio for r, lim in limits)
        if not calm:
            self._quiet_since = None
        elif self._quiet_since is None:
            self._quiet_since = now
        if calm and self._quiet_since is not None and now - self._quiet_since >= self.settings.hold_s:
            self.active = False
            self._cause = ()
            self._quiet_since = None
            return Verdict(False, (), load)
        return Verdict(True, self._cause, load)


class OverloadCheck:
    """The guard fed with the live figures; what the call entry asks for each new hotline caller.

    ``calls()`` counts the callers the service holds; ``loop_lag_p99()`` is the event loop's
    recent p99 (``LoopLag.recent``); AGI acknowledgement times arrive through
    :meth:`observe_agi` (the ``AgiManager`` observe hook). Quantiles are recomputed at most
    every ``cache_s`` seconds (a burst of new callers does not sort the windows each time).
    ``on_refused(reason)`` counts a refused caller; ``on_state(active)`` follows the guard.
    """

    def __init__(self, settings: OverloadSettings, *, calls: Callable[[], int],
                 loop_lag_p99: Callable[[], float], window_s: float = 60.0, cache_s: float = 0.5,
                 clock: Callable[[], float] = time.monotonic,
                 on_refused: Callable[[str], None] = lambda reason: None) -> None:
        self.settings = settings
        self.guard = OverloadGuard(settings, clock=clock)
        self.agi_ack = RecentWindow(window_s=window_s, clock=clock)
        self._calls = calls
        self._loop_lag_p99 = loop_lag_p99
        self._clock = clock
        self.cache_s = cache_s
        self._cached: tuple[float, float, float] | None = None   # (at, agi ack p99, loop lag p99)
        self.on_refused = on_refused
        self.refused_total = 0

    @property
    def action(self) -> str:
        return self.settings.action

    def observe_agi(self, ack_s: float) -> None:
        self.agi_ack.add(ack_s)

    def load(self) -> Load:
        now = self._clock()
        if self._cached is None or now - self._cached[0] >= self.cache_s:
            self._cached = (now, self.agi_ack.quantile(0.99), self._loop_lag_p99())
        return Load(calls=self._calls(), agi_ack_p99_s=self._cached[1], loop_lag_p99_s=self._cached[2])

    def check(self) -> Verdict:
        """The verdict for a new caller now (updates the hysteresis; does not count a refusal)."""
        return self.guard.decide(self.load())

    def refused(self, verdict: Verdict) -> None:
        self.refused_total += 1
        self.on_refused(verdict.reason)
