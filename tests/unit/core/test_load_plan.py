"""The load generator's plan (switchboard/demo/load.py): distinct caller numbers that say their
path, outcomes per path, SIPp's statistics read back. The load itself runs in
tests/e2e/test_load_smoke.py and bench/load.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from switchboard.demo.load import _injection, _read_stats, caller_numbers, caller_paths
from switchboard.demo.sipp import AwaitHangup, HangUp
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
