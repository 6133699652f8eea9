"""In-call softphone codes: what the digits after *4 / *5 name (the AGI path is e2e-tested)."""

from __future__ import annotations

from types import SimpleNamespace

from switchboard.telephony.call_codes import CALL_FEATURES, CallCodes


def _codes() -> CallCodes:
    acd = SimpleNamespace(transfers=SimpleNamespace(topics=lambda: ["general", "health.benefit", "social.pension"]),
                          records={"agent1010": object(), "sup7": object()})
    return CallCodes(acd)


def test_topic_by_its_place_in_the_list() -> None:
    codes = _codes()
    assert codes.target("transfer", "2") == "health.benefit"
    assert codes.target("transfer", "3") == "social.pension"
    for bad in ("0", "4", "", "2*", "x"):
        assert codes.target("transfer", bad) is None


def test_agent_by_its_digits_or_full_id() -> None:
    codes = _codes()
    assert codes.target("consult", "1010") == "agent1010"
    assert codes.target("consult", "1011") is None and codes.target("consult", "") is None


def test_only_transfer_and_consult_read_digits() -> None:
    assert {f for f, reads in CALL_FEATURES.items() if reads} == {"transfer", "consult"}
    assert set(CALL_FEATURES) == {"transfer", "consult", "complete", "cancel", "three_way"}
