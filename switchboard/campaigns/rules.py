"""The dialer's decisions, pure: what follows an attempt's result, and whether to dial now.

* :func:`after_attempt`: retry (when, by the campaign's spacing for that result) or done;
* :class:`AbandonBudget`: live answers with no agent per campaign and local day, held at or
  under the campaign's limit (default 3 % of answered, the limit regulators use for
  predictive dialling);
* :func:`dial_allowance`: how many numbers a campaign may dial now, from its mode, the
  calling window, the agents ready for it, the calls already in flight, the abandon budget
  and the inbound service level (inbound callers always come first).

The calling window is a protocol (``is_open(now)``, ``next_open(now)``): the one in
``switchboard.telephony.windows`` (the callee's local time, public holidays closed).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from typing import Protocol

from switchboard.campaigns.model import FINAL_RESULTS, Campaign, Mode, Result

__all__ = ["AbandonBudget", "Allowance", "Next", "Window", "after_attempt", "dial_allowance"]


class Window(Protocol):
    """When a number may be dialled (the callee's local time)."""

    def is_open(self, now: datetime) -> bool: ...

    def next_open(self, now: datetime) -> datetime | None: ...


@dataclass(frozen=True, slots=True)
class Next:
    """What becomes of a contact after an attempt: ``done`` with ``final``, or retried at ``retry_at``."""

    done: bool
    final: Result | None = None
    retry_at: datetime | None = None


def after_attempt(campaign: Campaign, result: Result, *, attempts: int, now: datetime) -> Next:
    """The contact after its ``attempts``-th attempt ended with ``result``.

    ``not_dialled`` gives the contact back at once (the attempt did not count against it:
    the store does not count it); a final result ends it; a retryable one is retried after
    the campaign's spacing for that result, unless the spacing is 0 or the attempts are used up.
    """
    if result is Result.NOT_DIALLED:
        return Next(done=False, retry_at=now)
    if result in FINAL_RESULTS:
        return Next(done=True, final=result)
    spacing = campaign.retry.spacing(result)
    if spacing <= 0 or attempts >= campaign.max_attempts:
        return Next(done=True, final=result)
    return Next(done=False, retry_at=now + timedelta(seconds=spacing))


class AbandonBudget:
    """Answered and abandoned live answers of one campaign for the current local day.

    ``over_limit`` says the day's ratio (abandoned / answered) is above the campaign's
    limit: progressive dialling then stops for that campaign until answers bridged to an
    agent bring it back under. ``seed`` loads today's counts from the database at start.
    """

    def __init__(self, limit: float, tz: tzinfo) -> None:
        self.limit = limit
        self.tz = tz
        self._day = ""
        self.answered = 0
        self.abandoned = 0
        self.seeded_day = ""      # the local day whose figures were read from the database

    def _roll(self, now: datetime) -> None:
        day = now.astimezone(self.tz).date().isoformat()
        if day != self._day:
            self._day, self.answered, self.abandoned = day, 0, 0

    def seed(self, *, answered: int, abandoned: int, now: datetime) -> None:
        self._roll(now)
        self.answered, self.abandoned = max(self.answered, answered), max(self.abandoned, abandoned)

    def answer(self, now: datetime, *, abandoned: bool) -> None:
        self._roll(now)
        self.answered += 1
        if abandoned:
            self.abandoned += 1

    def ratio(self, now: datetime) -> float:
        self._roll(now)
        return self.abandoned / self.answered if self.answered else 0.0

    def over_limit(self, now: datetime) -> bool:
        self._roll(now)
        return self.abandoned > self.limit * self.answered


@dataclass(frozen=True, slots=True)
class Allowance:
    """How many numbers to dial now (``count``), and why not more (``reason``, for logs and metrics)."""

    count: int
    reason: str


def dial_allowance(campaign: Campaign, *, now: datetime, window: Window, ready_agents: int, in_flight: int,
                   budget: AbandonBudget, inbound_below_target: bool, max_lines: int) -> Allowance:
    """How many more numbers ``campaign`` may dial at ``now``.

    ``ready_agents``: agents of the campaign's topic (and province) ready and not reserved;
    ``in_flight``: the campaign's calls ringing or talking; ``max_lines``: the most calls a
    campaign may have in flight (trunk share).

    * outside the calling window (evening, a public holiday): none;
    * progressive: one per ready agent (each dial reserves one), none while the inbound
      service level is under its target (the agents go to inbound callers first); the abandon
      budget only matters when an agent could be lost between dial and answer, so none is
      dialled either once the day's ratio has reached the limit (agent first: the agent is on
      the line before the contact is dialled, no answer can be abandoned, the budget is moot);
    * message only: no agent is needed (a live answer is never abandoned), up to ``max_lines``;
    * preview: the agent starts each call; the dialer dials nothing by itself.
    """
    if not window.is_open(now):
        return Allowance(0, "window_closed")
    room = max(0, max_lines - in_flight)
    if room == 0:
        return Allowance(0, "lines_full")
    if campaign.mode is Mode.PREVIEW:
        return Allowance(0, "preview")
    if campaign.mode is Mode.MESSAGE:
        return Allowance(room, "ok")
    if inbound_below_target:
        return Allowance(0, "inbound_first")
    if not campaign.agent_first and budget.over_limit(now):   # agent first: an answer always has its agent
        return Allowance(0, "abandon_limit")
    if ready_agents <= 0:
        return Allowance(0, "no_agent")
    return Allowance(min(room, ready_agents), "ok")
