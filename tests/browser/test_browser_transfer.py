"""A transfer from the agent panel in Chromium against the REAL service (issue 16): the local
Asterisk 22 and PostgreSQL, a SIPp caller through the hotline IVR, SIPp softphones for two agents.

agent1009 takes a pension caller in the panel, picks the topic ``health.benefit`` in the
transfer box and presses "transfer to topic": the caller goes back into our line, agent1010
(health benefit) answers, agent1009's panel shows wrap-up; the call record in PostgreSQL is one
record for the whole call (two answers, one transfer, the last agent), and the wallboard
counts the transfer.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from browser_service import base_url, create_token, demo_agents, e2e_lock, running_service
from playwright.async_api import expect

from switchboard.demo.sipp import AwaitHangup, Dtmf, Pause

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

AGENT, COLLEAGUE = "agent1009", "agent1010"
CALLER = "02838123457"
T = 15_000  # ms


@pytest.fixture(scope="module", autouse=True)
def e2e_turn() -> Iterator[None]:
    with e2e_lock():
        yield


async def test_agent_transfers_a_live_call_to_a_topic_in_the_panel(stack_env: dict[str, str], fresh_db: str,
                                                                   browser: Any) -> None:
    async with running_service(stack_env, fresh_db, routing={"wrap_up_s": 60.0}) as svc:
        url = base_url(svc)
        record = next(a for a in demo_agents() if a.id == AGENT)
        token = await create_token(svc.dsn, role="agent", agent=record, name="browser agent1009")
        sup_token = await create_token(svc.dsn, role="supervisor", name="browser supervisor")
        await svc.agent(AGENT, talk=None)
        colleague = await svc.agent(COLLEAGUE, talk=None, ready=False)
        errors: list[str] = []

        panel = await browser.new_page(viewport={"width": 1200, "height": 1100})
        panel.on("pageerror", lambda e: errors.append(f"agent panel: {e}"))
        await panel.goto(f"{url}/agent", timeout=T)
        await panel.fill("#login-agent", AGENT)
        await panel.fill("#login-token", token)
        await panel.click("#login button[type=submit]")
        await expect(panel.locator("#conn")).to_have_class("status on", timeout=T)

        sipp = svc.call([Pause(2.5), Dtmf("1"), Pause(2.5), Dtmf("1"), Pause(2.5), Dtmf("1"), AwaitHangup(120)],
                        caller=CALLER, timeout=150)
        call_id = await svc.wait_call_id(CALLER)
        state = panel.locator("#state")
        await expect(state).to_have_attribute("data-state", "talking", timeout=30_000)
        await expect(panel.locator("#transfer")).to_be_visible(timeout=T)
        await expect(panel.locator('#xfer-topic option[value="health.benefit"]')).to_have_count(1, timeout=T)
        await expect(panel.locator('#xfer-number option[value="ho-chi-minh"]')).to_have_count(1)
        assert "02839000001" not in await panel.content()     # the directory's numbers never reach the page
        svc.acd.ready(COLLEAGUE)
        await panel.select_option("#xfer-topic", "health.benefit")
        await panel.click("#btn-xfer-topic")
        await expect(panel.locator("#transfer-status")).to_contain_text("health.benefit", timeout=T)
        await expect(state).to_have_attribute("data-state", "wrap_up", timeout=T)
        await expect(panel.locator("#transfer")).to_be_hidden()
        await panel.screenshot(path="artifacts/browser/transfer-agent-wrap-up.png", full_page=True)
        done = await svc.wait_event(call_id, "transfer.completed", timeout=30)
        assert (done.data["kind"], done.data["to_agent"]) == ("topic", COLLEAGUE)
        assert svc.status(COLLEAGUE) == "on_call"

        board = await browser.new_page(viewport={"width": 1400, "height": 1000})
        board.on("pageerror", lambda e: errors.append(f"wallboard: {e}"))
        await board.goto(f"{url}/wallboard", timeout=T)
        await board.fill("#login-token", sup_token)
        await board.click("#login button[type=submit]")
        await expect(board.locator("#t-transfers")).to_have_text("1", timeout=T)

        # the colleague's phone hangs up for it: the caller goes on to the survey and leaves
        leg = next(o.leg for o in svc.acd.talking.values() if o.agent_id == COLLEAGUE)
        await svc.app.context["client"].send({"Action": "Hangup", "Channel": leg, "Cause": "16"}, timeout=5)
        result = await sipp
        assert result.ok, result.errors or result.stderr
        row, timeline = await svc.record(call_id, until=("call.ended", "transfer.completed"), timeout=30)
        assert (row["outcome"], row["agent_id"], row["topic"], row["transfers"]) == \
            ("answered", COLLEAGUE, "health.benefit", 1)
        kinds = [e["kind"] for e in timeline]
        assert kinds.count("call.answered") == 2 and kinds.index("transfer.requested") < kinds.index("transfer.completed")
        assert colleague.calls_answered() == 1
        assert errors == []
