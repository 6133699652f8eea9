"""The dialer's pure decisions: retries with spacing, the abandon budget, how many to dial now."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from switchboard.campaigns.model import Campaign, Connect, Mode, Result, RetryRules
from switchboard.campaigns.rules import AbandonBudget, after_attempt, dial_allowance

VN = ZoneInfo("Asia/Ho_Chi_Minh")
NOW = datetime(2026, 12, 3, 3, 0, tzinfo=UTC)      # 10:00 in Hà Nội
C = Campaign(campaign_id="c", flow="reminder-card", mode=Mode.PROGRESSIVE, max_attempts=3,
             retry=RetryRules(no_answer_s=7200, busy_s=900, failed_s=0))


class Always:
    def __init__(self, open_: bool) -> None:
        self.open = open_

    def is_open(self, now: datetime) -> bool:
        return self.open

    def next_open(self, now: datetime) -> datetime | None:
        return now if self.open else None


@pytest.mark.parametrize(("result", "attempts", "done", "final", "retry_in"), [
    (Result.BUSY, 1, False, None, 900),
    (Result.NO_ANSWER, 2, False, None, 7200),
    (Result.NO_ANSWER, 3, True, Result.NO_ANSWER, None),        # attempts used up
    (Result.FAILED, 1, True, Result.FAILED, None),              # spacing 0: never retried
    (Result.OPTED_OUT, 1, True, Result.OPTED_OUT, None),
    (Result.MESSAGE_HEARD_TO_END, 1, True, Result.MESSAGE_HEARD_TO_END, None),
    (Result.TRANSFERRED_TO_AGENT, 1, True, Result.TRANSFERRED_TO_AGENT, None),
    (Result.ANSWERED, 1, True, Result.ANSWERED, None),
    (Result.INTERRUPTED, 1, True, Result.INTERRUPTED, None),   # may have been heard: never again
    (Result.NOT_DIALLED, 3, False, None, 0),                   # never went out: back at once
])
def test_after_an_attempt(result: Result, attempts: int, done: bool, final: Result | None,
                          retry_in: int | None) -> None:
    nxt = after_attempt(C, result, attempts=attempts, now=NOW)
    assert (nxt.done, nxt.final) == (done, final)
    assert nxt.retry_at == (None if retry_in is None else NOW + timedelta(seconds=retry_in))


def test_the_abandon_budget_is_per_local_day() -> None:
    b = AbandonBudget(0.03, VN)
    for _ in range(33):
        b.answer(NOW, abandoned=False)
    b.answer(NOW, abandoned=True)
    assert b.ratio(NOW) == pytest.approx(1 / 34) and not b.over_limit(NOW)
    b.answer(NOW, abandoned=True)
    assert b.over_limit(NOW)                              # 2 / 35 > 3 %
    # 17:00 UTC is midnight in Hà Nội: a new day starts with a clean count
    tomorrow = datetime(2026, 12, 3, 17, 0, tzinfo=UTC)
    assert not b.over_limit(tomorrow) and b.answered == 0
    b.seed(answered=10, abandoned=1, now=tomorrow)        # restart: today's figures from the database
    assert b.over_limit(tomorrow)


def _allow(c: Campaign = C, *, open_: bool = True, ready: int = 3, in_flight: int = 0, below: bool = False,
           lines: int = 10, budget: AbandonBudget | None = None) -> tuple[int, str]:
    a = dial_allowance(c, now=NOW, window=Always(open_), ready_agents=ready, in_flight=in_flight,
                       budget=budget or AbandonBudget(0.03, VN), inbound_below_target=below, max_lines=lines)
    return a.count, a.reason


def test_progressive_dials_one_per_ready_agent_and_yields_to_inbound() -> None:
    assert _allow() == (3, "ok")
    assert _allow(ready=0) == (0, "no_agent")              # all agents busy: nobody is dialled
    assert _allow(lines=2) == (2, "ok")
    assert _allow(in_flight=10) == (0, "lines_full")
    assert _allow(below=True) == (0, "inbound_first")
    assert _allow(open_=False) == (0, "window_closed")
    over = AbandonBudget(0.03, VN)
    over.answer(NOW, abandoned=True)
    assert _allow(budget=over) == (0, "abandon_limit")


def test_message_only_needs_no_agent_and_preview_dials_nothing_alone() -> None:
    msg = replace(C, mode=Mode.MESSAGE)
    assert _allow(msg, ready=0, below=True) == (10, "ok")
    assert _allow(msg, open_=False) == (0, "window_closed")
    assert _allow(replace(C, mode=Mode.PREVIEW)) == (0, "preview")


def test_agent_first_progressive_is_not_stopped_by_the_abandon_limit() -> None:
    agent_first = replace(C, connect=Connect.AGENT_FIRST)
    assert agent_first.agent_first and replace(C, mode=Mode.PREVIEW).agent_first and not C.agent_first
    over = AbandonBudget(0.03, VN)
    over.answer(NOW, abandoned=True)                      # (from days of caller first, say)
    assert _allow(agent_first, budget=over) == (3, "ok")  # an answer always has its agent: nothing to hold back
    assert _allow(agent_first, ready=0) == (0, "no_agent")
    assert _allow(agent_first, below=True) == (0, "inbound_first")
    assert _allow(agent_first, open_=False) == (0, "window_closed")
