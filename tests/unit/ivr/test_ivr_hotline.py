"""The shipped hotline flow, stepped through the pure machine."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from switchboard.ivr import machine as mc
from switchboard.ivr.model import Collect, Queue
from switchboard.ivr.registry import FlowRegistry

REPO = Path(__file__).resolve().parents[3]
REG = FlowRegistry(REPO / "ivr_flows", REPO / "recordings" / "prompts")
assert REG.reload().ok
FLOW = REG.flow("hotline")
OPEN = datetime(2026, 3, 3, 3, 0, tzinfo=UTC)  # Tuesday 10:00 in Hà Nội
TOPICS = {
    "social.pension", "social.sickness_maternity", "social.one_time", "social.contribution",
    "health.card", "health.benefit", "unemployment.benefit", "unemployment.job_support", "general",
}


def _session_answer(state: mc.FlowState, cmds: list[mc.Command], at: datetime,
                    live: dict[str, str] | None) -> tuple[mc.FlowState, list[mc.Command]]:
    """The service's answer to the menu's question "is a Q&A session running?" (none unless ``live``)."""
    while state.waiting is mc.Waiting.LOOKUP and state.node == "session_check":
        played = [c for c in cmds if not isinstance(c, mc.LookupCmd)]
        state, more = mc.step(state, mc.LookupResult(live is not None, at, live or {}))
        cmds = played + more
    return state, cmds


def run(*inputs: str | mc.Input | None, dialed: str = "19009068", caller: str = "0912345678",
        at: datetime = OPEN, caller_province: str = "",
        live: dict[str, str] | None = None) -> tuple[mc.FlowState, list[mc.Command]]:
    route = REG.route(dialed)
    variables = {"caller_province": caller_province}
    if route.province:
        variables["province"] = route.province
    state, cmds = mc.step(mc.initial_state(route.flow), mc.Started(caller, dialed, at, variables))
    state, cmds = _session_answer(state, cmds, at, live)
    for i, item in enumerate(inputs):
        t = at + timedelta(seconds=10 * (i + 1))
        if item is None:
            inp: mc.Input = mc.Timeout(t)
        elif isinstance(item, str):
            inp = mc.Digits(item, t)
        else:
            inp = item
        state, cmds = mc.step(state, inp)
        state, cmds = _session_answer(state, cmds, t, live)
    return state, cmds


def enqueued(cmds: list[mc.Command]) -> mc.Enqueue:
    enq = [c for c in cmds if isinstance(c, mc.Enqueue)]
    assert len(enq) == 1, cmds
    return enq[0]


@pytest.mark.parametrize(
    ("keys", "topic"),
    [
        (["1", "1"], "social.pension"),
        (["1", "2"], "social.sickness_maternity"),
        (["1", "3"], "social.one_time"),
        (["1", "4"], "social.contribution"),
        (["2", "1"], "health.card"),
        (["2", "2"], "health.benefit"),
        (["3", "1"], "unemployment.benefit"),
        (["3", "2"], "unemployment.job_support"),
        (["0"], "general"),
    ],
)
def test_main_menu_paths_reach_the_queue_with_their_topic(keys: list[str], topic: str) -> None:
    state, cmds = run("1", *keys, dialed="02439999001")
    enq = enqueued(cmds)
    assert (enq.topic, enq.province, enq.province_source, enq.language) == (topic, "ha-noi", "did", "vi")
    assert state.node == "agent"


def test_queue_topics_are_the_known_skills() -> None:
    queue = next(n for n in FLOW.nodes.values() if isinstance(n, Queue))
    assert queue.topic == "$topic"
    set_topics = {v for n in FLOW.nodes.values() for opt in getattr(n, "options", {}).values()
                  for k, v in opt.set if k == "topic"}
    set_topics |= {v for n in FLOW.nodes.values() for k, v in getattr(n, "values", ()) if k == "topic"}
    assert set_topics == TOPICS


def test_english_and_back_key() -> None:
    _, cmds = run("2", "1", "*")
    assert cmds == [mc.CollectCmd(mc.Prompt("main_menu", "en"), 1, 1, 5.0, "")]


def test_province_from_caller_area_code() -> None:
    _, cmds = run("1", "2", "1", caller="02363822000", caller_province="da-nang")
    enq = enqueued(cmds)
    assert (enq.province, enq.province_source, enq.topic) == ("da-nang", "caller_id", "health.card")


def test_province_asked_reads_out_34_units_and_accepts_code() -> None:
    state, cmds = run("1", "3", "2")
    assert state.node == "ask_province"
    play, collect = cmds[-2], cmds[-1]
    assert isinstance(play, mc.PlayCmd) and play.barge_in and isinstance(collect, mc.CollectCmd)
    names = [p.name for p in play.prompts]
    assert names[0] == "ask_province" and names[1:] == [f"province_{i:02d}" for i in range(1, 35)]
    assert (collect.prompt, collect.min_digits, collect.max_digits) == (mc.Prompt("ask_province_end", "vi"), 1, 2)
    _, cmds = run("1", "3", "2", "01")
    enq = enqueued(cmds)
    assert (enq.province, enq.province_source) == ("ha-noi", "menu")
    _, cmds = run("1", "3", "2", "0")
    enq = enqueued(cmds)
    assert (enq.province, enq.province_source) == ("", "none")


def test_province_codes_follow_the_reference_data_order() -> None:
    data = yaml.safe_load(Path("/work/shared/data/provinces.yaml").read_text(encoding="utf-8"))
    ids = [p["id"] for p in data["provinces"]]
    node = FLOW.nodes["ask_province"]
    assert isinstance(node, Collect) and node.choices is not None
    assert [node.choices[f"{i:02d}"] for i in range(1, 35)] == ids
    assert node.choices["0"] == ""


def test_wrong_digits_then_silence_until_retries_run_out() -> None:
    state, cmds = run("1", "7")
    assert cmds[0] == mc.PlayCmd((mc.Prompt("invalid_choice", "vi"),), True)
    state, cmds = run("1", "7", None, "8")
    assert state.ended and state.end == mc.End("hangup", "goodbye_no_input")
    assert cmds == [mc.PlayCmd((mc.Prompt("goodbye_no_input", "vi"),), False), mc.HangUpCmd("no_input")]


def test_lookup_found_reads_status_then_agent_on_contributions() -> None:
    _, cmds = run("1", "4", "0123456789#")
    assert cmds == [mc.LookupCmd("si_code", "0123456789")]
    found = mc.LookupResult(True, OPEN, {"paid_month": "4", "paid_year": "2025", "province": "hue"})
    _state, cmds = run("1", "4", "0123456789#", found)
    play = cmds[0]
    assert isinstance(play, mc.PlayCmd)
    names = [p.name for p in play.prompts]
    assert names[11:] == ["status_paid_to_month", "num_4", "status_year",
                          "num_2", "num_nghin", "num_0", "num_tram", "num_2", "num_muoi_ngang", "num_lam"]
    _, cmds = run("1", "4", "0123456789#", found, "1")
    enq = enqueued(cmds)
    assert (enq.topic, enq.province, enq.province_source) == ("social.contribution", "hue", "crm")


def test_lookup_not_found_and_unavailable() -> None:
    state, cmds = run("1", "4", "0123456789", mc.LookupResult(False, OPEN))
    assert state.node == "si_retry_menu"
    _, cmds = run("1", "4", "0123456789", mc.LookupResult(False, OPEN, error=True), caller_province="hue")
    assert enqueued(cmds).topic == "social.contribution"


@pytest.mark.parametrize(
    "local",
    [datetime(2026, 3, 3, 19, 0), datetime(2026, 2, 17, 10, 0), datetime(2026, 3, 7, 10, 0),
     datetime(2026, 4, 27, 9, 0), datetime(2026, 9, 2, 9, 0)],
    ids=["evening", "tet", "saturday", "hung-kings-observed", "national-day"],
)
def test_after_hours_offers_callback_or_voicemail(local: datetime) -> None:
    at = (local - timedelta(hours=7)).replace(tzinfo=UTC)
    state, _ = run("1", at=at)
    assert state.node == "after_hours_offer"
    _, cmds = run("1", "1", at=at)
    assert cmds[0] == mc.RequestCallback("0912345678", "general", "", "vi")
    _, cmds = run("1", "2", at=at)
    assert any(isinstance(c, mc.RecordCmd) and c.max_seconds == 120 for c in cmds)


def test_served_call_gets_survey() -> None:
    state, cmds = run("1", "0", mc.QueueResult("served", OPEN), "4", dialed="02439999001")
    assert cmds[0] == mc.SaveSurvey(4, "csat")
    assert state.end == mc.End("hangup", "goodbye")


def test_hang_up_mid_menu_records_where() -> None:
    state, _ = run("1", "1", mc.HangUp(OPEN + timedelta(seconds=99)))
    assert state.end == mc.End("caller_hangup", "social_menu")
    assert [s.node for s in state.path] == ["welcome", "choose_language", "hours_check", "session_check",
                                              "main_menu", "social_menu"]


LIVE = {"session_id": "pension-law", "title": "The new pension law", "prompt": "session_title_pension_law"}


def test_live_session_offered_on_key_5_with_its_title() -> None:
    state, cmds = run("1", live=LIVE)
    assert state.node == "main_menu_session"
    names = [p.name for c in cmds if isinstance(c, (mc.PlayCmd,)) for p in c.prompts]
    names += [c.prompt.name for c in cmds if isinstance(c, mc.CollectCmd) and c.prompt]
    assert names[:3] == ["session_offer", "session_title_pension_law", "session_offer_press"]
    state, cmds = run("1", "5", live=LIVE)
    assert cmds[-1] == mc.JoinConference("pension-law", "vi")
    assert state.waiting is mc.Waiting.CONFERENCE
    state, cmds = run("1", "5", mc.ConferenceResult("joined", OPEN), live=LIVE)
    assert state.end == mc.End("conference", "session_join")
    assert cmds == []


def test_no_live_session_no_key_5() -> None:
    state, _ = run("1")
    assert state.node == "main_menu"
    state, _ = run("1", "5")
    assert state.node == "main_menu" and state.attempts == 1     # an invalid key there


def test_session_full_goes_back_to_the_menu() -> None:
    state, cmds = run("1", "5", mc.ConferenceResult("full", OPEN), live=LIVE)
    assert next(p.name for c in cmds if isinstance(c, mc.PlayCmd) for p in c.prompts) == "session_full"
    assert state.node == "main_menu_session" and not state.ended


def test_a_conference_on_another_node_is_said_and_the_plain_menu_follows() -> None:
    state, cmds = run("1", "5", mc.ConferenceResult("elsewhere", OPEN), live=LIVE)
    played = [p.name for c in cmds if isinstance(c, mc.PlayCmd) for p in c.prompts]
    assert played[0] == "session_elsewhere"
    assert state.node == "main_menu" and not state.ended     # no key 5 offered again on this call
