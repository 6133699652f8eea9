"""The dialer's pure parts: the result of an unanswered Originate, and the flow's variables."""

from __future__ import annotations

import pytest

from switchboard.campaigns.dialer import _flow_vars, result_of_failure
from switchboard.campaigns.model import Campaign, Result
from switchboard.store.campaigns import Claimed


@pytest.mark.parametrize(("reason", "cause", "result"), [
    ("3", "", Result.NO_ANSWER),          # OriginateResponse: ring timeout
    ("5", "", Result.BUSY),
    ("8", "", Result.FAILED),             # congestion
    ("0", "17", Result.BUSY),             # Asterisk 22 says Reason 0 for a 486; the Hangup's cause 17 decides
    ("", "19", Result.NO_ANSWER),
    ("1", "34", Result.FAILED),           # no circuit
    ("", "", Result.FAILED),
])
def test_result_of_an_unanswered_originate(reason: str, cause: str, result: Result) -> None:
    assert result_of_failure(reason, cause) is result


def test_the_flow_gets_the_contact_data_and_the_card_date() -> None:
    c = Campaign(campaign_id="card", flow="reminder-card", topic="health.card", province="")
    claim = Claimed(attempt_id="a1", campaign_id="card", contact_id=1, number="0912345678", attempt_no=1,
                    name="An", participant_id="0100000001", province="ha-noi",
                    data={"card_valid_to": "2026-12-20", "bad key!": "x", "employer": "VSS"})
    v = _flow_vars(c, claim)
    assert (v["card_day"], v["card_month"], v["card_year"]) == ("20", "12", "2026")
    assert (v["topic"], v["province"], v["campaign"], v["contact_name"], v["employer"]) == (
        "health.card", "ha-noi", "card", "An", "VSS")
    assert "bad key!" not in v
    assert "card_day" not in _flow_vars(c, Claimed("a2", "card", 2, "0912345679", 1, "", "", "", {}))
