"""The pure flow machine on every node kind, retries, bad input, hang-up anywhere."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import cast

import pytest

from switchboard.ivr import machine as mc
from switchboard.ivr.loader import load_flow
from switchboard.ivr.model import Flow, Play, Where

FLOW = load_flow(Path(__file__).parent / "flows" / "every_kind.yaml")
# Monday 2 March 2026, 09:00 in Hà Nội (UTC+7)
OPEN = datetime(2026, 3, 2, 2, 0, tzinfo=UTC)
P = mc.Prompt


def start(at: datetime = OPEN, caller: str = "0912345678", **variables: str) -> tuple[mc.FlowState, list[mc.Command]]:
    return mc.step(mc.initial_state(FLOW), mc.Started(caller, "19009068", at, variables))


def feed(state: mc.FlowState, *inputs: str | None, at: datetime = OPEN) -> tuple[mc.FlowState, list[mc.Command]]:
    """Digits for strings, Timeout for None; returns the last (state, commands)."""
    cmds: list[mc.Command] = []
    for i, item in enumerate(inputs):
        t = at + timedelta(seconds=i + 1)
        inp = mc.Timeout(t) if item is None else mc.Digits(item, t)
        state, cmds = mc.step(state, inp)
    return state, cmds


def at_main(lang: str = "1", **kw: str) -> tuple[mc.FlowState, list[mc.Command]]:
    state, _ = start(OPEN, kw.pop("caller", "0912345678"), **kw)
    return feed(state, lang)


def test_start_plays_welcome_then_asks_language_with_pinned_prompts() -> None:
    state, cmds = start()
    assert cmds == [
        mc.PlayCmd((P("welcome", "vi"),), barge_in=True),
        mc.PlayCmd((P("press1_vi", "vi"),), barge_in=True),
        mc.CollectCmd(P("press2_en", "en"), 1, 1, 4.0, ""),
    ]
    assert state.waiting is mc.Waiting.DIGITS and state.node == "lang"
    assert [s.node for s in state.path] == ["hello", "hours", "lang"]
    assert state.path[1].input == "default"


def test_language_choice_selects_prompt_folder() -> None:
    state, cmds = at_main("2")
    assert state.language == "en" and state.variables["language"] == "en"
    assert cmds == [mc.CollectCmd(P("main_menu", "en"), 1, 1, 4.0, "")]


def test_language_timeout_keeps_default_vi() -> None:
    state, _ = start()
    state, cmds = feed(state, None)
    assert state.language == "vi" and state.node == "main"
    assert cmds == [mc.CollectCmd(P("main_menu", "vi"), 1, 1, 4.0, "")]


def test_menu_invalid_digit_reprompts_then_gives_up_after_retries() -> None:
    state, _ = at_main()
    state, cmds = feed(state, "9")
    assert cmds == [mc.PlayCmd((P("invalid", "vi"),), True), mc.CollectCmd(P("main_menu", "vi"), 1, 1, 4.0, "")]
    assert state.attempts == 1
    state, cmds = feed(state, "8")
    assert state.attempts == 2 and state.node == "main"
    state, cmds = feed(state, "0")
    assert cmds == [mc.PlayCmd((P("goodbye", "vi"),), False), mc.HangUpCmd("normal")]
    assert state.ended and state.end == mc.End("hangup", "bye")
    main_steps = [s for s in state.path if s.node == "main"]
    assert len(main_steps) == 1 and main_steps[0].input == "0"


def test_menu_timeouts_use_timeout_prompt_and_retry_count() -> None:
    state, _ = at_main()
    state, cmds = feed(state, None)
    assert cmds[0] == mc.PlayCmd((P("no_input", "vi"),), True)
    state, cmds = feed(state, None, None)
    assert state.ended and state.end is not None and state.end.node == "bye"
    assert [s.input for s in state.path if s.node == "main"] == ["timeout"]


def test_retry_then_valid_choice_resets_attempts_on_next_node() -> None:
    state, _ = at_main()
    state, cmds = feed(state, "9", "2")
    assert state.node == "ask_code" and state.attempts == 0
    assert cmds == [mc.CollectCmd(P("ask_code", "vi"), 10, 10, 4.0, "#")]


def test_collect_validates_length_and_strips_terminator() -> None:
    state, _ = at_main()
    state, _ = feed(state, "2", "12345#")
    assert state.node == "ask_code" and state.attempts == 1
    state, cmds = feed(state, "0123456789#")
    assert cmds == [mc.LookupCmd("si_code", "0123456789")]
    assert state.waiting is mc.Waiting.LOOKUP and state.variables["si_code"] == "0123456789"


def test_collect_pattern_rejects_and_fails_over_to_on_fail() -> None:
    state, _ = at_main()
    state, _ = feed(state, "2", "12345", "1", None)
    assert state.node == "main"  # on_fail: main
    assert [s.input for s in state.path if s.node == "ask_code"] == ["timeout"]


def _at_lookup(lang: str = "1") -> mc.FlowState:
    state, _ = at_main(lang)
    state, _ = feed(state, "2", "0123456789")
    return state


def test_lookup_found_sets_variables_and_says_number_in_vietnamese() -> None:
    state = _at_lookup()
    state, cmds = mc.step(state, mc.LookupResult(True, OPEN, {"paid_month": "15", "name": "An"}))
    assert state.variables["participant.paid_month"] == "15"
    assert state.variables["participant.found"] == "1"
    play = cmds[0]
    assert isinstance(play, mc.PlayCmd)
    names = [p.name for p in play.prompts]
    assert names[:3] == ["paid_until", "num_muoi_huyen", "num_lam"]  # 15 = mười lăm
    assert names[3:] == [f"num_{d}" for d in "0123456789"]
    assert state.node == "main"


def test_lookup_number_in_english() -> None:
    state = _at_lookup("2")
    _, cmds = mc.step(state, mc.LookupResult(True, OPEN, {"paid_month": "21"}))
    assert isinstance(cmds[0], mc.PlayCmd)
    assert [p.name for p in cmds[0].prompts][:3] == ["paid_until", "num_20", "num_1"]
    assert {p.language for p in cmds[0].prompts} == {"en"}


def test_lookup_not_found_and_error() -> None:
    state, cmds = mc.step(_at_lookup(), mc.LookupResult(False, OPEN))
    assert cmds[0] == mc.PlayCmd((P("unknown_code", "vi"),), False) and state.node == "main"
    state, cmds = mc.step(_at_lookup(), mc.LookupResult(False, OPEN, error=True))
    assert cmds == [mc.PlayCmd((P("sorry", "vi"),), False), mc.HangUpCmd("lookup_error")]
    assert state.end == mc.End("hangup", "sorry")


def test_queue_with_province_from_did() -> None:
    state, _ = at_main(province="da-nang")
    state, cmds = feed(state, "1")
    assert isinstance(cmds[0], mc.Enqueue)
    assert cmds == [mc.Enqueue("social.pension", "da-nang", 1, "vi", "did", cmds[0].variables)]
    assert cmds[0].variables["caller"] == "0912345678"
    assert state.waiting is mc.Waiting.QUEUE


def test_queue_with_province_from_caller_prefix() -> None:
    state, _ = at_main(caller="02438223344")
    _, cmds = feed(state, "1")
    enq = cmds[0]
    assert isinstance(enq, mc.Enqueue)
    assert (enq.province, enq.province_source, enq.topic) == ("ha-noi", "caller_id", "social.pension")


def test_province_asked_with_two_digit_codes_and_zero_for_unsure() -> None:
    state, _ = at_main()
    state, cmds = feed(state, "1")
    assert cmds == [mc.CollectCmd(P("ask_province", "vi"), 1, 2, 4.0, "#")]
    s2, _ = feed(state, "99")
    assert s2.node == "ask_province" and s2.attempts == 1
    _s3, cmds = feed(state, "02")
    assert isinstance(cmds[0], mc.Enqueue) and cmds[0].province == "ho-chi-minh"
    _s4, cmds = feed(state, "0")
    assert isinstance(cmds[0], mc.Enqueue) and cmds[0].province == ""


def _in_queue() -> mc.FlowState:
    state, _ = at_main(province="ha-noi")
    state, _ = feed(state, "1")
    return state


def test_queue_served_goes_to_survey_and_saves_score() -> None:
    state, cmds = mc.step(_in_queue(), mc.QueueResult("served", OPEN))
    assert cmds == [mc.CollectCmd(P("survey", "vi"), 1, 1, 4.0, "")]
    state, cmds = feed(state, "7")
    assert state.node == "survey" and state.attempts == 1
    state, cmds = feed(state, "5")
    assert cmds == [
        mc.SaveSurvey(5, "csat"),
        mc.PlayCmd((P("thanks", "vi"),), False),
        mc.PlayCmd((P("goodbye", "vi"),), False),
        mc.HangUpCmd("normal"),
    ]
    assert state.variables["csat"] == "5"


def test_survey_no_answer_goes_to_on_fail() -> None:
    state, _ = mc.step(_in_queue(), mc.QueueResult("served", OPEN))
    state, cmds = feed(state, None, None, None)
    assert state.ended and not any(isinstance(c, mc.SaveSurvey) for c in cmds)


def test_queue_outcomes() -> None:
    state, cmds = mc.step(_in_queue(), mc.QueueResult("callback", OPEN))
    assert cmds[-1] == mc.HangUpCmd("normal")
    state, cmds = mc.step(_in_queue(), mc.QueueResult("abandoned", OPEN))
    assert cmds == [] and state.end == mc.End("queue:abandoned", "agent")


def test_callback_offer_accept_and_decline() -> None:
    state, _ = at_main(province="hue")
    state, _ = feed(state, "4")
    s1, cmds = feed(state, "1")
    assert cmds[0] == mc.RequestCallback("0912345678", "general", "hue", "vi")
    assert s1.ended
    _s2, cmds = feed(state, "2")
    assert cmds == [mc.PlayCmd((P("after_beep", "vi"),), False), mc.RecordCmd(60, 5, True, "#"),
                    mc.PlayCmd((P("goodbye", "vi"),), False), mc.HangUpCmd("normal")]
    s3, _ = feed(state, "5", "5", "5")
    assert s3.node == "bye" and [s.input for s in s3.path if s.node == "callback"] == ["5"]


def test_transfer_to_number_and_to_flow() -> None:
    state, _ = at_main()
    s1, cmds = feed(state, "6")
    assert cmds == [mc.TransferCmd(number="02439999999")] and s1.end == mc.End("transfer", "to_number")
    _s2, cmds = feed(state, "7")
    assert cmds == [mc.TransferCmd(flow="every_kind")]


@pytest.mark.parametrize(
    ("local", "why"),
    [
        (datetime(2026, 3, 2, 20, 0), "evening"),
        (datetime(2026, 3, 1, 10, 0), "sunday"),
        (datetime(2026, 2, 17, 10, 0), "Tết (lunar new year)"),
        (datetime(2026, 4, 27, 10, 0), "Hùng Kings' day (observed)"),
        (datetime(2026, 3, 10, 10, 0), "closed date from the flow"),
        (datetime(2026, 3, 2, 12, 30), "lunch break"),
    ],
)
def test_after_hours(local: datetime, why: str) -> None:
    at = (local - timedelta(hours=7)).replace(tzinfo=UTC)
    state, cmds = start(at=at)
    assert state.node == "callback", why
    assert cmds[1] == mc.PlayCmd((P("closed", "vi"),), False)


def test_make_up_working_day_is_open() -> None:
    at = (datetime(2026, 2, 28, 14, 0) - timedelta(hours=7)).replace(tzinfo=UTC)  # a Saturday
    state, _ = start(at=at)
    assert state.node == "lang"


def _waiting_nodes() -> list[tuple[str, list[str | None], object]]:
    return [
        ("lang", [], None),
        ("main", ["1"], None),
        ("ask_code", ["1", "2"], None),
        ("find", ["1", "2", "0123456789"], None),
        ("ask_province", ["1", "1"], None),
        ("callback", ["1", "4"], None),
    ]


@pytest.mark.parametrize(("node", "digits", "_"), _waiting_nodes())
def test_hang_up_at_each_waiting_node_records_where(node: str, digits: list[str | None], _: object) -> None:
    state, _c = start()
    state, _c = feed(state, *digits)
    assert state.node == node
    t = OPEN + timedelta(minutes=5)
    state, cmds = mc.step(state, mc.HangUp(t))
    assert cmds == [] and state.ended
    assert state.end == mc.End("caller_hangup", node)
    assert state.path[-1].node == node and state.path[-1].input == "hangup" and state.path[-1].left == t
    with pytest.raises(mc.MachineError):
        mc.step(state, mc.Digits("1", t))


def test_hang_up_in_queue_and_survey_and_before_start() -> None:
    state, _ = mc.step(_in_queue(), mc.HangUp(OPEN))
    assert state.end == mc.End("caller_hangup", "agent")
    state, _ = mc.step(_in_queue(), mc.QueueResult("served", OPEN))
    state, _ = mc.step(state, mc.HangUp(OPEN))
    assert state.end == mc.End("caller_hangup", "survey")
    state, _ = mc.step(mc.initial_state(FLOW), mc.HangUp(OPEN))
    assert state.ended and state.path == ()


def test_wrong_input_for_state_raises() -> None:
    state = _at_lookup()
    with pytest.raises(mc.MachineError):
        mc.step(state, mc.Digits("1", OPEN))
    with pytest.raises(mc.MachineError):
        mc.step(_in_queue(), mc.LookupResult(True, OPEN))
    s, _ = start()
    with pytest.raises(mc.MachineError):
        mc.step(s, mc.Started("1", "2", OPEN))
    with pytest.raises(mc.MachineError):
        mc.step(mc.initial_state(FLOW), mc.Digits("1", OPEN))


def test_path_records_entered_left_and_input() -> None:
    state, _ = start()
    later = OPEN + timedelta(seconds=30)
    state, _ = mc.step(state, mc.Digits("2", later))
    lang = next(s for s in state.path if s.node == "lang")
    assert (lang.entered, lang.left, lang.input, lang.kind) == (OPEN, later, "2", "menu")
    assert state.path[-1] == mc.PathStep("main", "menu", later)


def test_spinning_flow_is_stopped() -> None:
    w = Where("x", 1, 1)
    flow = Flow("spin", "x", "v", "a", ("vi",), "vi",
                {"a": Play("a", w, (), False, "b"), "b": Play("b", w, (), False, "a")})
    with pytest.raises(mc.MachineError, match="without input"):
        mc.step(mc.initial_state(flow), mc.Started("1", "2", OPEN))


def test_state_is_immutable_between_steps() -> None:
    s0, _ = at_main()
    s1, _ = feed(s0, "9")
    assert s0.attempts == 0 and s1.attempts == 1
    with pytest.raises(TypeError):
        cast(dict[str, str], s1.variables)["x"] = "y"


def test_started_can_enter_at_a_given_node() -> None:
    state, cmds = mc.step(mc.initial_state(FLOW), mc.Started("1", "2", OPEN, {"language": "en"}, start="survey"))
    assert state.node == "survey" and cmds == [mc.CollectCmd(P("survey", "en"), 1, 1, 4.0, "")]
    with pytest.raises(mc.MachineError):
        mc.step(mc.initial_state(FLOW), mc.Started("1", "2", OPEN, start="nope"))
