"""A session's invitation campaign (pure parts): its id, its definition read by the campaigns'
own loader, the registered participants' CSV through the number policy."""

from __future__ import annotations

import asyncio
import csv
import io
from pathlib import Path

from test_session_model import GOOD

from switchboard.campaigns.loader import load_campaign_text
from switchboard.campaigns.model import Mode
from switchboard.campaigns.targets import contacts_from_csv
from switchboard.ivr.registry import FlowRegistry
from switchboard.sessions.invites import INVITE_FLOW, SessionInvites, invite_campaign_id, invite_definition
from switchboard.sessions.model import load_session_text
from switchboard.telephony.numbers import default_callback_numbers

REPO = Path(__file__).resolve().parents[3]

SESSION = GOOD + """\
invite:
  numbers: ["0912700103", "0912 700 104", "19001234", "0912700103"]
  attempts: 3
  retry_s: 45
  ring_s: 20
  window: "08:00-20:00"
"""


def test_the_campaign_id_fits_the_campaigns_rule() -> None:
    assert invite_campaign_id("pension-law") == "qa-pension-law"
    long_a, long_b = "a" * 47 + "x", "a" * 47 + "y"
    assert len(invite_campaign_id(long_a)) <= 48 and invite_campaign_id(long_a) != invite_campaign_id(long_b)


def test_the_definition_is_a_valid_message_campaign_of_the_invite_flow() -> None:
    s = load_session_text(SESSION, "s.yaml")
    registry = FlowRegistry(REPO / "ivr_flows", REPO / "recordings" / "prompts")
    registry.reload()
    assert INVITE_FLOW in registry.flows
    c = load_campaign_text(invite_definition(s), "<invite>", flows=set(registry.flows))
    assert (c.campaign_id, c.flow, c.mode, c.topic) == ("qa-pension-law", INVITE_FLOW, Mode.MESSAGE, "social.pension")
    assert (c.max_attempts, c.retry.no_answer_s, c.retry.busy_s, c.ring_s, c.window) == (3, 45, 45, 20, "08:00-20:00")
    assert c.public_holidays and c.targets.csv


def test_the_registered_numbers_go_through_the_number_policy() -> None:
    s = load_session_text(SESSION, "s.yaml")
    policy = default_callback_numbers().policy
    invites = SessionInvites(campaigns=None, pool=None, policy=policy, context="campaign-answered")  # type: ignore[arg-type]
    text, problems = asyncio.run(invites.contacts(s, exclude=["0912 700 104"]))
    rows = list(csv.DictReader(io.StringIO(text)))
    assert {r["session"] for r in rows} == {"pension-law"} and {r["session_prompt"] for r in rows} == {
        "session_title_pension_law"}
    assert problems == ["0912 700 104: already in the session"]    # joined from the menu already
    contacts, refused = contacts_from_csv(text, policy)
    assert [c.number for c in contacts] == ["0912700103"]
    assert {r.reason for r in refused} >= {"duplicate"}             # and the premium 1900 number refused
    assert len(refused) == 2 and contacts[0].data == {"session": "pension-law",
                                                      "session_prompt": "session_title_pension_law"}
