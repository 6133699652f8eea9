"""The runner over a fake AsyncAGI session: AGI commands sent, callbacks, events, hang-ups."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fake_agi import FakeAgi, agi_args

from switchboard.ami.agi import AgiHangup
from switchboard.events import EventKind
from switchboard.geo import load_provinces
from switchboard.ivr import machine as mc
from switchboard.ivr.registry import FlowRegistry
from switchboard.ivr.runner import IvrRunner, StepFailed
from switchboard.telephony.numbers import NumberPolicy, NumberRefused, default_callback_numbers

REPO = Path(__file__).resolve().parents[3]
HOTLINE = FlowRegistry(REPO / "ivr_flows", None)
assert HOTLINE.reload().ok
TEST_FLOWS = FlowRegistry(Path(__file__).parent / "flows", None)
assert TEST_FLOWS.reload().ok
OPEN = datetime(2026, 3, 3, 3, 0, tzinfo=UTC)  # Tuesday 10:00 in Hà Nội
EVENING = datetime(2026, 3, 3, 13, 0, tzinfo=UTC)  # 20:00
P = "/var/lib/switchboard/prompts"


class Harness:
    def __init__(self, registry: FlowRegistry = HOTLINE, *, now: datetime = OPEN, outcome: str = "served",
                 lookup_answer: Mapping[str, str] | Exception | None = None, lookup_delay: float = 0.0,
                 enqueue_error: Exception | None = None) -> None:
        self.events: list[tuple[EventKind, dict[str, Any]]] = []
        self.enqueued: list[mc.Enqueue] = []
        self.surveys: list[int] = []
        self.callbacks: list[mc.RequestCallback] = []
        self.lookups: list[tuple[str, str]] = []
        self._outcome = outcome
        self._answer = lookup_answer
        self._delay = lookup_delay
        self._enqueue_error = enqueue_error
        self.now = now
        self.runner = IvrRunner(
            registry, emit=lambda kind, data: self.events.append((kind, data)), on_enqueue=self.on_enqueue,
            lookup=self.lookup, on_survey=self.on_survey, on_callback=self.on_callback,
            clock=self.clock, lookup_timeout=0.2,
        )

    def clock(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now

    async def on_enqueue(self, session: Any, request: mc.Enqueue) -> str:
        self.enqueued.append(request)
        if self._enqueue_error:
            raise self._enqueue_error
        return self._outcome

    async def lookup(self, by: str, value: str) -> Mapping[str, str] | None:
        self.lookups.append((by, value))
        await asyncio.sleep(self._delay)
        if isinstance(self._answer, Exception):
            raise self._answer
        return self._answer

    async def on_survey(self, session: Any, score: int) -> None:
        self.surveys.append(score)

    async def on_callback(self, session: Any, request: mc.RequestCallback) -> str | None:
        self.callbacks.append(request)
        return "cb-1"

    def steps(self) -> list[tuple[str, str | None]]:
        return [(d["node"], d["input"]) for k, d in self.events if k is EventKind.IVR_STEP]

    def kinds(self) -> list[EventKind]:
        return [k for k, _ in self.events]


async def test_pension_call_by_provincial_did_with_survey() -> None:
    h = Harness()
    agi = FakeAgi(dialed="02439999001", keys=["1", "1", "1", "5"])
    result = await h.runner.run(agi)
    assert agi.commands.pop(0) == "ANSWER"
    assert agi.commands[:4] == [
        f'STREAM FILE "{P}/vi/welcome" "0123456789*#"',
        f'STREAM FILE "{P}/vi/lang_vi" "0123456789*#"',
        f'GET DATA "{P}/en/lang_en" 5000 1',
        f'GET DATA "{P}/vi/main_menu" 5000 1',
    ]
    assert agi.commands[4:] == [
        f'GET DATA "{P}/vi/social_menu" 5000 1',
        f'EXEC Playback "{P}/vi/connecting"',
        f'GET DATA "{P}/vi/survey_ask" 5000 1',
        f'EXEC Playback "{P}/vi/survey_thanks"',
        f'EXEC Playback "{P}/vi/goodbye"',
        "HANGUP",
    ]
    assert [(e.topic, e.province, e.province_source, e.language, e.priority) for e in h.enqueued] == [
        ("social.pension", "ha-noi", "did", "vi", 0)]
    assert h.surveys == [5]
    assert h.steps() == [
        ("welcome", None), ("choose_language", "1"), ("hours_check", "default"), ("session_check", "not found"),
        ("main_menu", "1"),
        ("social_menu", "1"), ("province_check", "case 1"), ("connecting", None), ("agent", "queue:served"),
        ("survey", "5"), ("goodbye", None),
    ]
    assert (EventKind.SURVEY, {"score": 5}) in h.events
    assert result.end == mc.End("hangup", "goodbye") and result.variables["csat"] == "5"
    step = next(d for k, d in h.events if k is EventKind.IVR_STEP)
    assert step["flow"] == "hotline" and step["flow_version"] == result.version and step["entered"] <= step["left"]


async def test_barge_in_skips_the_rest_and_feeds_the_menu() -> None:
    h = Harness()
    agi = FakeAgi(keys=["*"], barge={"welcome": "2"}, hangup_on='GET DATA "/var/lib/switchboard/prompts/en/main')
    result = await h.runner.run(agi)
    assert agi.commands[1].startswith(f'STREAM FILE "{P}/vi/welcome"')
    assert agi.commands[2] == f'GET DATA "{P}/en/main_menu" 5000 1'
    assert result.variables["language"] == "en"
    assert result.end == mc.End("caller_hangup", "main_menu")
    assert h.steps()[-1] == ("main_menu", "hangup")


async def test_province_code_typed_over_the_list_with_wait_for_digit() -> None:
    h = Harness()
    agi = FakeAgi(caller="0912345678", keys=["1", "3", "1", "1", "HANGUP"], barge={"province_03": "0"})
    await h.runner.run(agi)
    assert "WAIT FOR DIGIT 5000" in agi.commands
    assert not any(c.startswith(f'STREAM FILE "{P}/vi/province_04"') for c in agi.commands)
    assert [(e.topic, e.province, e.province_source) for e in h.enqueued] == [
        ("unemployment.benefit", "ha-noi", "menu")]


async def test_province_from_caller_area_code_via_geo() -> None:
    h = Harness()
    agi = FakeAgi(caller="02363822000", keys=["1", "2", "2", None, None])
    await h.runner.run(agi)
    assert [(e.topic, e.province, e.province_source) for e in h.enqueued] == [
        ("health.benefit", "da-nang", "caller_id")]


@pytest.mark.parametrize("how", ["HANGUP", "-1"])
async def test_hang_up_mid_menu_ends_cleanly_where_the_caller_left(how: str) -> None:
    h = Harness()
    agi = FakeAgi(keys=["1", "3", how])
    result = await h.runner.run(agi)
    assert result.end == mc.End("caller_hangup", "unemployment_menu")
    assert h.steps()[-1] == ("unemployment_menu", "hangup")
    assert agi.commands[-1] == f'GET DATA "{P}/vi/unemployment_menu" 5000 1'
    assert h.enqueued == []


async def test_hang_up_while_queued() -> None:
    h = Harness(enqueue_error=AgiHangup("gone"))
    agi = FakeAgi(dialed="02439999001", keys=["1", "0"])
    result = await h.runner.run(agi)
    assert result.end == mc.End("caller_hangup", "agent")
    assert h.steps()[-1] == ("agent", "hangup")


async def test_wrong_digits_then_silence_until_retries_exhausted() -> None:
    h = Harness()
    agi = FakeAgi(keys=["1", "7", None, "9"])
    result = await h.runner.run(agi)
    assert agi.commands[4:] == [
        f'GET DATA "{P}/vi/main_menu" 5000 1',
        f'STREAM FILE "{P}/vi/invalid_choice" "0123456789*#"',
        f'GET DATA "{P}/vi/main_menu" 5000 1',
        f'STREAM FILE "{P}/vi/no_input" "0123456789*#"',
        f'GET DATA "{P}/vi/main_menu" 5000 1',
        f'EXEC Playback "{P}/vi/goodbye_no_input"',
        "HANGUP",
    ]
    assert result.end == mc.End("hangup", "goodbye_no_input")


async def test_lookup_found_reads_the_record() -> None:
    h = Harness(lookup_answer={"id": "77", "paid_month": "12", "paid_year": "2024"})
    agi = FakeAgi(keys=["1", "4", "0123456789", "HANGUP"])
    result = await h.runner.run(agi)
    assert h.lookups == [("si_code", "0123456789")]
    lookup_events = [d for k, d in h.events if k is EventKind.IVR_LOOKUP]
    assert lookup_events == [{"by": "si_code", "found": True, "participant_id": "77", "error": False}]
    streamed = [agi_args(c)[2].rsplit("/", 1)[1] for c in agi.commands if c.startswith("STREAM FILE")]
    assert streamed[-11:] == ["status_paid_to_month", "num_muoi_huyen", "num_2", "status_year",  # 12 / 2024
                              "num_2", "num_nghin", "num_0", "num_tram", "num_2", "num_muoi_ngang", "num_tu"]
    assert streamed[:12] == ["welcome", "lang_vi", "si_code_is", *[f"num_{d}" for d in "0123456789"]][:12]
    assert result.variables["participant.paid_month"] == "12"
    assert result.end.node == "si_status_menu"


@pytest.mark.parametrize("trouble", ["raises", "slow"])
async def test_lookup_failure_goes_to_agent(trouble: str) -> None:
    h = Harness(lookup_answer=RuntimeError("db down") if trouble == "raises" else None,
                lookup_delay=1.0 if trouble == "slow" else 0.0)
    agi = FakeAgi(caller="02439998888", keys=["1", "4", "0123456789", "HANGUP"])
    await h.runner.run(agi)
    assert [(e.topic, e.province) for e in h.enqueued] == [("social.contribution", "ha-noi")]
    assert [d["error"] for k, d in h.events if k is EventKind.IVR_LOOKUP] == [True]


async def test_after_hours_callback_and_voicemail() -> None:
    h = Harness(now=EVENING)
    agi = FakeAgi(keys=["1", "1"])
    result = await h.runner.run(agi)
    assert h.callbacks == [mc.RequestCallback("0912345678", "general", "", "vi")]
    assert (EventKind.CALLBACK_REQUESTED, {"number": "0912345678", "callback_id": "cb-1", "topic": "general",
                                           "province": "", "language": "vi"}) in h.events
    assert result.end == mc.End("hangup", "callback_confirmed")
    h2 = Harness(now=EVENING)
    agi2 = FakeAgi(keys=["1", "2"])
    await h2.runner.run(agi2)
    rec = [c for c in agi2.commands if c.startswith("RECORD FILE")]
    assert rec == ['RECORD FILE "/var/spool/switchboard/voicemail/1767225600.42-1767225600.42" wav "#" 120000 BEEP s=6']
    assert any(k is EventKind.RECORDING for k in h2.kinds())


async def test_after_hours_callback_to_a_refused_number_says_so_and_ends() -> None:
    """The number policy refuses the caller id (a premium number): ``callback.refused`` with the
    reason, the caller hears ``callback_refused`` (not the confirmation) and the call ends."""
    h = Harness(now=EVENING)
    policy = default_callback_numbers()

    async def refuse(session: Any, request: mc.RequestCallback) -> str | None:
        raise NumberRefused(policy.decide(request.number, EVENING))

    h.runner._on_callback = refuse
    agi = FakeAgi(caller="19001234", keys=["1", "1"])
    result = await h.runner.run(agi)
    assert (EventKind.CALLBACK_REFUSED, {"reason": "denied_prefix", "number": "19001234", "detail": "1900"}) \
        in h.events
    assert EventKind.CALLBACK_REQUESTED not in h.kinds()
    played = " ".join(agi.commands)
    assert f"{P}/vi/callback_refused" in played and "callback_confirmed" not in played
    assert agi.commands[-1] == "HANGUP"
    assert result.end == mc.End("hangup", "callback_confirmed")


async def test_transfer_to_number_and_to_another_flow() -> None:
    h = Harness(TEST_FLOWS, now=datetime(2026, 3, 2, 2, 0, tzinfo=UTC))
    agi = FakeAgi(keys=["1", "6"])
    result = await h.runner.run(agi)
    assert agi.commands[-2:] == ['EXEC Dial "PJSIP/02439999999@trunk,60"', "HANGUP"]
    assert (EventKind.TRANSFER, {"target": "02439999999"}) in h.events
    assert result.end == mc.End("transfer", "to_number")
    h2 = Harness(TEST_FLOWS, now=datetime(2026, 3, 2, 2, 0, tzinfo=UTC))
    agi2 = FakeAgi(keys=["2", "7", "HANGUP"])
    result2 = await h2.runner.run(agi2)
    welcomes = [c for c in agi2.commands if "/welcome" in c]
    assert len(welcomes) == 2  # the other flow started over
    assert result2.variables["language"] == "en"  # variables carried into the new flow
    assert result2.end == mc.End("caller_hangup", "lang")


async def test_survey_entry_after_the_agent_leg() -> None:
    h = Harness()
    agi = FakeAgi(dialed="survey", keys=["4"])
    agi.env["agi_extension"] = "survey"
    agi.env["agi_context"] = "hotline-after"
    result = await h.runner.run(agi, variables={"language": "en", "topic": "health.card"})
    assert agi.commands == ["ANSWER", f'GET DATA "{P}/en/survey_ask" 5000 1', f'EXEC Playback "{P}/en/survey_thanks"',
                            f'EXEC Playback "{P}/en/goodbye"', "HANGUP"]
    assert h.surveys == [4] and h.steps()[0] == ("survey", "4")
    assert result.end == mc.End("hangup", "goodbye")


async def test_bridged_outcome_ends_the_flow_without_hanging_up() -> None:
    h = Harness(outcome="bridged")
    agi = FakeAgi(dialed="02439999001", keys=["1", "0"])
    result = await h.runner.run(agi)
    assert result.end == mc.End("queue:bridged", "agent")
    assert "HANGUP" not in agi.commands


async def test_a_transfer_the_number_policy_refuses_is_never_dialled() -> None:
    """A transfer node's number goes through the one number policy (its ``to`` may name a variable
    the caller typed): refused, it is recorded and the step fails with the node, so whoever runs the
    flow hands the caller to a person (telephony/rescue.py) instead of dialling it."""
    h = Harness(TEST_FLOWS, now=datetime(2026, 3, 2, 2, 0, tzinfo=UTC))
    h.runner._transfer_policy = NumberPolicy.create(landline_codes=load_provinces().area_codes,
                                                    deny_prefixes=("024",))
    agi = FakeAgi(keys=["1", "6"])
    with pytest.raises(StepFailed) as failed:
        await h.runner.run(agi)
    assert (failed.value.reason, failed.value.node) == ("transfer_refused", "to_number")
    assert (EventKind.TRANSFER_REFUSED, {"number": "02439999999", "reason": "denied_prefix", "detail": "024"}) \
        in h.events
    assert not any(c.startswith("EXEC Dial") for c in agi.commands)
    assert EventKind.TRANSFER not in h.kinds()


@pytest.mark.parametrize(("outcome", "end"), [("joined", mc.End("conference", "session_join")),
                                              ("full", mc.End("caller_hangup", "main_menu_session"))])
async def test_a_live_session_is_offered_on_key_5_and_joined_or_full(outcome: str, end: mc.End) -> None:
    h = Harness()
    asked: list[str] = []
    joins: list[str] = []

    def live(language: str) -> Mapping[str, str] | None:
        asked.append(language)
        return {"session_id": "pension-law", "title": "The new pension law", "prompt": "session_title_pension_law"}

    async def join(session: Any, session_id: str) -> str:
        joins.append(session_id)
        return outcome

    h.runner.live_session, h.runner.on_conference = live, join
    agi = FakeAgi(keys=["1", "5", "HANGUP"])
    result = await h.runner.run(agi)
    assert asked[0] == "vi" and joins == ["pension-law"]
    assert f'STREAM FILE "{P}/vi/session_title_pension_law" "0123456789*#"' in agi.commands
    assert f'EXEC Playback "{P}/vi/session_joining"' in agi.commands
    assert (EventKind.SESSION_SEAT, {"session": "pension-law", "outcome": outcome}) in h.events
    assert h.lookups == []                 # answered in process: no data dip
    assert result.end == end
    if outcome == "full":
        assert f'EXEC Playback "{P}/vi/session_full"' in agi.commands
