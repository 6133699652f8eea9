"""The load generator's plan (switchboard/demo/load.py): distinct caller numbers that say their
path, outcomes per path, SIPp's statistics read back. The load itself runs in
tests/e2e/test_load_smoke.py and bench/load.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from switchboard.demo.load import (
    PCAP,
    RecordCheck,
    _injection,
    _read_stats,
    caller_numbers,
    caller_paths,
    sip_refusals,
    with_media,
)
from switchboard.demo.sipp import AwaitHangup, Dtmf, HangUp, Pause, PlayAudio, caller_scenario
from switchboard.geo import load_provinces


def test_caller_numbers_are_distinct_landlines_of_known_provinces() -> None:
    provinces = load_provinces()
    numbers = [n for path in range(1, 5) for run in (1, 2) for n in caller_numbers(path, 500, run=run)]
    assert len(set(numbers)) == len(numbers) == 4000
    assert all(len(n) == 11 and n.startswith("0") and n.isdigit() for n in numbers)
    assert all(provinces.lookup_caller(n) for n in numbers)
    assert len({provinces.lookup_caller(n) for n in numbers}) >= 10


def test_each_path_ends_the_way_its_outcome_says() -> None:
    paths = caller_paths()
    assert {p.name: p.outcome for p in paths.values()} == {
        "self_service": "self_service", "agent": "answered", "hangup_menu": "abandoned_ivr",
        "hangup_queue": "abandoned_queue"}
    assert isinstance(paths["hangup_menu"].steps[-1], HangUp)
    assert isinstance(paths["agent"].steps[-1], AwaitHangup)


def test_injection_file_and_statistics(tmp_path: Path) -> None:
    f = _injection(tmp_path / "x.csv", [("agent1", "[authentication username=agent1 password=pw]"), ("0241",)])
    assert f.read_text().splitlines() == ["SEQUENTIAL", "agent1;[authentication username=agent1 password=pw];",
                                          "0241;"]
    with pytest.raises(ValueError, match="may not hold"):
        _injection(tmp_path / "y.csv", [("agent1", "p;q")])
    (tmp_path / "scenario_1_.csv").write_text(
        "StartTime;TotalCallCreated;SuccessfulCall(C);FailedCall(C);\n"
        "x;10;3;0;\n"
        "y;30;28;2;\n")
    stats = _read_stats(tmp_path)
    assert (stats["TotalCallCreated"], stats["SuccessfulCall(C)"], stats["FailedCall(C)"]) == ("30", "28", "2")


def test_callers_refused_past_capacity_are_counted_apart_from_wrong_records() -> None:
    check = RecordCheck(expected=3, records=3, wrong_outcome=[("024001", "answered", "overload")])
    assert not check.exact and check.exact_or_refused and check.refused == ["024001"]
    assert check.as_dict()["refused_overload"] == 1 and check.as_dict()["wrong_outcome"] == 0
    check.wrong_outcome.append(("024002", "answered", "abandoned_queue"))
    assert not check.exact_or_refused and check.as_dict()["wrong_outcome"] == 1
    assert not RecordCheck(expected=1, missing=["024003"]).exact_or_refused


def test_sip_refusals_counts_error_responses_from_sipp_error_log() -> None:
    log = ("Aborting call on unexpected message for Call-Id '6-1@127.0.0.1': while expecting '180' (index 3), "
           "received 'SIP/2.0 488 Not Acceptable Here\nVia: ...'\n"
           "Aborting call ... received 'SIP/2.0 488 Not Acceptable Here\n'\n"
           "Aborting call ... while expecting 'INFO', received 'BYE sip:0240@127.0.0.1 SIP/2.0\n'\n")
    assert sip_refusals(log) == {"488": 2}          # the service's BYE to a refused caller is not one
    assert sip_refusals("") == {}


def test_with_media_plays_the_pcap_through_every_pause_and_keeps_the_keys() -> None:
    path = caller_paths()["self_service"]
    talking = with_media(path)
    assert talking.outcome == path.outcome and not any(isinstance(s, Pause) for s in talking.steps)
    played = sum(s.seconds for s in talking.steps if isinstance(s, PlayAudio))
    assert played == pytest.approx(sum(s.seconds for s in path.steps if isinstance(s, Pause)))
    assert all(s.seconds <= 7.0 and s.pcap == PCAP for s in talking.steps if isinstance(s, PlayAudio))
    assert [s for s in talking.steps if isinstance(s, Dtmf | AwaitHangup)] == [
        s for s in path.steps if isinstance(s, Dtmf | AwaitHangup)]
    xml = caller_scenario(talking.steps, caller="1", codec="PCMA")
    assert xml.count("play_pcap_audio") == sum(isinstance(s, PlayAudio) for s in talking.steps)
