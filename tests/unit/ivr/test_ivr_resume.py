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


def test_an_end_memo_round_trips_without_variables() -> None:
    got = memo.decode(memo.encode("hotline", "goodbye", {}, end="hangup"))
    assert got == memo.Memo("hotline", "goodbye", {}, end="hangup")


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
    nodes = [(m.flow, m.node, m.end) for m in map(memo.decode, kept) if m is not None]
    assert nodes == [("hotline", "choose_language", ""), ("hotline", "main_menu", ""),
                     ("hotline", "ask_si_code", ""), ("hotline", "lookup_si", ""), ("hotline", "si_status_menu", ""),
                     ("hotline", "goodbye", "hangup")]   # the end, before the goodbye plays
    last = memo.decode(kept[-2])
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


async def test_a_first_key_of_a_code_starts_the_code_and_the_rest_is_waited_for() -> None:
    """The first key pressed into the code's prompt before the take-over is the code's first
    digit (as a barge-in is): the prompt is not played again, the rest comes key by key."""
    h = Harness(lookup_answer=PAID)
    agi = FakeAgi(dialed="02439999001", keys=[*"123456789", "2"])
    resume = memo.Memo("hotline", "ask_si_code", {"language": "en"}, digits="0", partial=True)
    await h.runner.run(agi, resume=resume)
    assert not any("ask_si_code" in c for c in agi.commands)          # not asked again
    assert agi.commands[:9] == ["WAIT FOR DIGIT 6000"] * 9
    assert h.lookups == [("si_code", "0123456789")]
    assert h.steps()[0] == ("ask_si_code", "0123456789")


async def test_keys_typed_while_nobody_served_answer_the_node_and_the_next() -> None:
    """The whole code and its terminator typed into the void during the take-over (no command
    ran): the code is taken without asking, the status is read, the key typed after it waits
    for the status menu (a message that cannot be interrupted drops it)."""
    h = Harness(lookup_answer=PAID)
    agi = FakeAgi(dialed="02439999001", keys=["2"])
    resume = memo.Memo("hotline", "ask_si_code", {"language": "en"}, typed="0123456789#")
    result = await h.runner.run(agi, resume=resume)
    assert not any("ask_si_code" in c for c in agi.commands)
    assert h.lookups == [("si_code", "0123456789")]
    assert h.steps()[0] == ("ask_si_code", "0123456789")
    assert result.end == mc.End("hangup", "goodbye")


async def test_typed_keys_after_a_timeout_answer_the_question_asked_again() -> None:
    """The previous owner's GET DATA timed out, then the caller typed the code while nobody
    served: the record keeps the timeout; the code answers the question's second asking."""
    h = Harness(lookup_answer=PAID)
    agi = FakeAgi(dialed="02439999001", keys=["2"])
    resume = memo.Memo("hotline", "ask_si_code", {"language": "en"}, digits="", typed="0123456789")
    await h.runner.run(agi, resume=resume)
    assert h.lookups == [("si_code", "0123456789")]
    assert [s for s in h.steps() if s[0] == "ask_si_code"][-1] == ("ask_si_code", "0123456789")


async def test_a_menu_key_and_a_code_typed_ahead_are_split_between_the_two_nodes() -> None:
    h = Harness(lookup_answer=PAID)
    agi = FakeAgi(dialed="02439999001", keys=["2"])
    resume = memo.Memo("hotline", "main_menu", {"language": "en"}, typed="40123456789")
    await h.runner.run(agi, resume=resume)
    assert h.steps()[:2] == [("main_menu", "4"), ("ask_si_code", "0123456789")]
    assert not any("main_menu" in c or "ask_si_code" in c for c in agi.commands)


async def test_part_of_a_code_typed_ahead_is_finished_key_by_key() -> None:
    h = Harness(lookup_answer=PAID)
    agi = FakeAgi(dialed="02439999001", keys=[*"6789", "2"])
    resume = memo.Memo("hotline", "ask_si_code", {"language": "en"}, typed="012345")
    await h.runner.run(agi, resume=resume)
    assert agi.commands[:4] == ["WAIT FOR DIGIT 6000"] * 4
    assert h.lookups == [("si_code", "0123456789")]


async def test_the_terminator_pressed_after_a_full_code_answered_meanwhile_is_not_typed_ahead() -> None:
    """The previous owner's GET DATA ended at 10 digits; the caller's '#' came after it, into the
    void: it belongs to the code (as ``TRAILING_S`` says for a live collect), not to what follows."""
    h = Harness(lookup_answer=PAID)
    agi = FakeAgi(dialed="02439999001", keys=["2"])
    resume = memo.Memo("hotline", "ask_si_code", {"language": "en"}, digits="0123456789", typed="#")
    result = await h.runner.run(agi, resume=resume)
    assert agi.commands[0] == f'STREAM FILE "{P}/en/si_code_is" "0123456789*#"'   # the status is read
    assert result.end == mc.End("hangup", "goodbye")
