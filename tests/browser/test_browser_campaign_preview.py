"""An agent starts a preview campaign call from the agent panel, in Chromium against the REAL
service (issue 19): the local Asterisk 22 and PostgreSQL, the agent's SIPp phone, the contact
one SIPp behind the trunk.

The agent signs in, sees the preview card (name, masked number, why they are called), presses
"Call": its phone rings first, then the contact's number from the campaign's list is dialled,
and the attempt ends ``transferred_to_agent`` with that agent; the number was invited once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from browser_service import base_url, create_token, demo_agents, e2e_lock, running_service, until
from campaign_contacts import contact_scenario, invited_numbers, run_contacts
from e2e_service import sip_remote
from playwright.async_api import expect

from switchboard.api.keys import SERVICES
from switchboard.campaigns.model import State

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

AGENT, NUMBER = "agent1002", "0912345301"
T = 15_000  # ms
CAMPAIGN = """\
campaign: browser-preview
description: "Thẻ BHYT sắp hết hạn"
flow: reminder-card
mode: preview
topic: health.card
window: "07:30-20:00"
ring_seconds: 10
targets: {csv: contacts.csv}
"""


@pytest.fixture(scope="module", autouse=True)
def e2e_turn() -> Iterator[None]:
    with e2e_lock():
        yield


async def test_an_agent_starts_a_preview_call_from_the_panel(stack_env: dict[str, str], fresh_db: str,
                                                             browser: Any) -> None:
    async with running_service(stack_env, fresh_db, routing={"wrap_up_s": 1.0}) as svc:
        campaigns = svc.app.context["api_app"][SERVICES].campaigns
        record = next(a for a in demo_agents() if a.id == AGENT)
        token = await create_token(svc.dsn, role="agent", agent=record, name="browser agent")
        await svc.agent(AGENT, answer_after=0.5, talk=4.0)
        await campaigns.create(CAMPAIGN, contacts_csv=f"number,name,card_valid_to\n{NUMBER},Trần Văn An,2026-09-20\n",
                               by="browser test")
        await campaigns.set_state("browser-preview", State.RUNNING, by="browser test")
        contacts = asyncio.create_task(run_contacts(contact_scenario(), remote=sip_remote(stack_env),
                                                    port=int(stack_env["STACK_TRUNK_OUT_PORT"]), calls=1,
                                                    timeout=120))
        svc.callers.append(contacts)   # type: ignore[arg-type]
        errors: list[str] = []

        panel = await browser.new_page(viewport={"width": 1200, "height": 1400})
        panel.on("pageerror", lambda e: errors.append(f"agent panel: {e}"))
        await panel.goto(f"{base_url(svc)}/agent", timeout=T)
        await panel.fill("#login-agent", AGENT)
        await panel.fill("#login-token", token)
        await panel.click("#login button[type=submit]")
        card = panel.locator("#preview-card")
        await expect(card).to_be_visible(timeout=T)
        await expect(panel.locator("#preview-name")).to_have_text("Trần Văn An", timeout=T)
        await expect(panel.locator("#preview-number")).to_have_text("091****301")
        await expect(panel.locator("#preview-why")).to_have_text("Thẻ BHYT sắp hết hạn")
        assert NUMBER not in await panel.content()          # the whole number never reaches the page

        await panel.click("#btn-preview-call")
        await expect(panel.locator("#preview-status")).to_contain_text("Đang gọi", timeout=T)

        async def done() -> bool:
            rows = await svc.fetch("SELECT result, agent_id, answered_at FROM campaign_attempts "
                                   "WHERE campaign_id = 'browser-preview'")
            return len(rows) == 1 and rows[0]["result"] is not None
        await until(done, timeout=60, what="the preview call ended", interval=0.5)
        row = (await svc.fetch("SELECT result, agent_id, answered_at FROM campaign_attempts "
                               "WHERE campaign_id = 'browser-preview'"))[0]
        assert (row["result"], row["agent_id"]) == ("transferred_to_agent", AGENT) and row["answered_at"]
        code, log = await contacts
        assert code == 0, log[-2000:]
        assert invited_numbers(log) == [NUMBER]
        await expect(card).to_be_hidden(timeout=T)        # nothing more to preview
        assert errors == []
