"""A flow taken over (a standby took the lead, or the service restarted): the memo the runner
keeps on the channel, and the flow resuming at its node instead of the welcome prompt."""

from __future__ import annotations

from typing import Any

from fake_agi import FakeAgi
from test_ivr_runner import OPEN, Harness, P

from switchboard.ivr import machine as mc
from switchboard.ivr import memo

PAID = {"id": "0123456789", "paid_year": "2025", "paid_month": "6"}


def test_memo_round_trip_keeps_node_and_variables_but_not_what_is_recomputed() -> None:
    text = memo.encode("hotline", "ask_si_code", {"language": "en", "topic": "social.pension", "caller": "09",
                                                   "call_id": "1.2", "province": "ha-noi", "a b": "x&y=z"})
    got = memo.decode(text)
    assert got == memo.Memo("hotline", "ask_si_code",
                            {"a b": "x&y=z", "language": "en", "province": "ha-noi", "topic": "social.pension"})


def test_memo_stays_under_the_ami_line_limit_dropping_the_longest_values() -> None:
    text = memo.encode("hotline", "main_menu", {"language": "vi", "participant.name": "N" * 2000})
    assert len(text) <= memo.MAX_CHARS
    got = memo.decode(text)
    assert got is not None and got.variables == {"language": "vi"}


def test_decode_refuses_what_is_no_memo() -> None:
    assert memo.decode("") is None
    assert memo.decode("garbage") is None
    assert memo.decode("_node=x") is None


async def test_runner_keeps_a_memo_at_each_waiting_node_once() -> None:
    kept: list[str] = []

    async def remember(session: Any, value: str) -> None:
        kept.append(value)

    h = Harness(lookup_answer=PAID)
    h.runner._remember = remember
    agi = FakeAgi(dialed="02439999001", keys=["2", "4", "0123456789", "2"])
    await h.runner.run(agi)
    nodes = [(m.flow, m.node) for m in map(memo.decode, kept) if m is not None]
    assert nodes == [("hotline", "choose_language"), ("hotline", "main_menu"), ("hotline", "ask_si_code"),
                     ("hotline", "lookup_si"), ("hotline", "si_status_menu")]
    last = memo.decode(kept[-1])
    assert last is not None and last.variables["si_code"] == "0123456789" and last.variables["language"] == "en"


async def test_resumed_with_the_answer_given_meanwhile_goes_straight_on() -> None:
    h = Harness(lookup_answer=PAID)
    agi = FakeAgi(dialed="02439999001", keys=["2"])
    resume = memo.Memo("hotline", "ask_si_code", {"language": "en", "province": "ha-noi"}, digits="0123456789")
    result = await h.runner.run(agi, resume=resume)
    assert "ANSWER" not in agi.commands                     # answered long ago
    assert not any("ask_si_code" in c for c in agi.commands)   # the question is not asked again
    assert agi.commands[0] == f'STREAM FILE "{P}/en/si_code_is" "0123456789*#"'
    assert h.lookups == [("si_code", "0123456789")]
    assert h.steps()[0] == ("ask_si_code", "0123456789")
    assert result.end == mc.End("hangup", "goodbye")


async def test_resumed_without_an_answer_asks_the_node_again_once() -> None:
    h = Harness(lookup_answer=PAID)
    agi = FakeAgi(dialed="02439999001", keys=["0123456789", "2"])
    resume = memo.Memo("hotline", "ask_si_code", {"language": "en"})
    await h.runner.run(agi, resume=resume)
    assert agi.commands[0] == f'GET DATA "{P}/en/ask_si_code" 6000 10'
    assert not any("welcome" in c for c in agi.commands)
    assert h.lookups == [("si_code", "0123456789")]


async def test_resume_of_a_flow_that_is_gone_starts_the_dialed_number_s_flow() -> None:
    h = Harness(now=OPEN)
    agi = FakeAgi(dialed="02439999001", keys=["HANGUP"])
    await h.runner.run(agi, resume=memo.Memo("no-such-flow", "x", {}))
    assert agi.commands[0] == "ANSWER"
    assert any("welcome" in c for c in agi.commands)


async def test_a_key_pressed_into_a_menu_prompt_meanwhile_answers_the_menu() -> None:
    h = Harness(lookup_answer=PAID)
    agi = FakeAgi(dialed="02439999001", keys=["0123456789", "2"])
    resume = memo.Memo("hotline", "main_menu", {"language": "en"}, digits="4", partial=True)
    await h.runner.run(agi, resume=resume)
    assert agi.commands[0] == f'GET DATA "{P}/en/ask_si_code" 6000 10'   # main menu answered: "4"
    assert h.steps()[0] == ("main_menu", "4")


async def test_a_first_key_of_a_code_is_not_taken_for_the_whole_code() -> None:
    h = Harness(lookup_answer=PAID)
    agi = FakeAgi(dialed="02439999001", keys=["0123456789", "2"])
    resume = memo.Memo("hotline", "ask_si_code", {"language": "en"}, digits="0", partial=True)
    await h.runner.run(agi, resume=resume)
    assert agi.commands[0] == f'GET DATA "{P}/en/ask_si_code" 6000 10'   # asked again
    assert h.lookups == [("si_code", "0123456789")]
