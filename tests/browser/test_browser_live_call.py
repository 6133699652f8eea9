"""The agent panel and the wallboard in Chromium against the REAL service: the
composition root on the local Asterisk 22 and PostgreSQL, a SIPp caller
through the hotline IVR and a SIPp softphone answering for the agent.

An agent signs in with a token from the real token table, starts the shift,
pauses; a caller from Hồ Chí Minh City asks about pensions and waits (the
wallboard shows the waiting call); the agent goes ready in the page, the call
is offered with its screen pop, the softphone answers after a few seconds and
hangs up; the panel shows wrap-up, the agent picks a disposition and ends
it; the call record in PostgreSQL carries that disposition.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from browser_helpers import ARTIFACTS
from browser_service import base_url, create_token, demo_agents, e2e_lock, running_service, until
from playwright.async_api import Page, expect

from switchboard.demo.sipp import AwaitHangup, Dtmf, Pause

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

AGENT = "agent1009"          # Hồ Chí Minh City, social.pension 5
CALLER = "02838123456"       # HCM landline (area code 28)
DISPOSITION = "referred"
#: Wrap-up long enough for the agent to end it in the page (not by the timer).
ROUTING = {"ring_timeout_s": 8.0, "wrap_up_s": 60.0, "reevaluate_interval_s": 0.5}
RING_S = 4.0
TALK_S = 4.0
T = 15_000  # ms


@pytest.fixture(scope="module", autouse=True)
def e2e_turn() -> Iterator[None]:
    """These tests place real calls on the shared Asterisk: take the e2e turn."""
    with e2e_lock():
        yield


def pension_call() -> list[Pause | Dtmf | AwaitHangup]:
    return [Pause(2.5), Dtmf("1"), Pause(2.5), Dtmf("1"), Pause(2.5), Dtmf("1"), AwaitHangup(90)]


async def shot(page: Page, name: str) -> None:
    await page.screenshot(path=str(ARTIFACTS / f"live-{name}.png"), full_page=True)


async def test_agent_takes_a_real_call_in_the_panel_and_the_wallboard_follows(
        stack_env: dict[str, str], fresh_db: str, browser: Any) -> None:
    # A database of its own: "answered today" counts this test's call only.
    async with running_service(stack_env, fresh_db, routing=ROUTING) as svc:
        url = base_url(svc)
        record = next(a for a in demo_agents() if a.id == AGENT)
        agent_token = await create_token(svc.dsn, role="agent", agent=record, name="browser agent1009")
        sup_token = await create_token(svc.dsn, role="supervisor", name="browser supervisor")
        phone = await svc.agent(AGENT, answer_after=RING_S, talk=TALK_S, ready=False)
        assert svc.status(AGENT) == "logged_out"

        errors: list[str] = []
        board = await browser.new_page(viewport={"width": 1400, "height": 1000})
        board.on("pageerror", lambda e: errors.append(f"wallboard: {e}"))
        await board.goto(f"{url}/wallboard", timeout=T)
        await board.fill("#login-token", sup_token)
        await board.click("#login button[type=submit]")
        await expect(board.locator("#board")).to_be_visible(timeout=T)
        await expect(board.locator("#conn")).to_have_class("status on", timeout=T)
        await expect(board.locator("#provinces tbody tr")).to_have_count(34, timeout=T)
        board_agent = board.locator(f'#agents tr[data-agent="{AGENT}"] .state')
        await expect(board_agent).to_have_attribute("data-state", "logged_out", timeout=T)

        panel = await (await browser.new_context()).new_page()
        panel.on("pageerror", lambda e: errors.append(f"agent panel: {e}"))
        await panel.goto(f"{url}/agent", timeout=T)
        await panel.fill("#login-agent", AGENT)
        await panel.fill("#login-token", agent_token)
        await panel.click("#login button[type=submit]")
        await expect(panel.locator("#panel")).to_be_visible(timeout=T)
        await expect(panel.locator("#conn")).to_have_class("status on", timeout=T)
        state = panel.locator("#state")
        await expect(state).to_have_attribute("data-state", "logged_out", timeout=T)

        # start the shift, then pause for a meeting: the caller will have to wait
        await panel.click("#btn-login")
        await expect(state).to_have_attribute("data-state", "ready", timeout=T)
        await expect(board_agent).to_have_attribute("data-state", "ready", timeout=T)
        await panel.select_option("#pause-reason", "meeting")
        await panel.click("#btn-pause")
        await expect(state).to_have_attribute("data-state", "paused", timeout=T)
        assert svc.status(AGENT) == "paused"
        await expect(board_agent).to_have_attribute("data-state", "paused", timeout=T)
        await expect(board_agent).to_contain_text("Họp")      # the reason's label, not its code

        # a caller from Hồ Chí Minh City asks about pensions and waits in line
        sipp = svc.call(pension_call(), caller=CALLER, timeout=150)
        call_id = await svc.wait_call_id(CALLER)
        await svc.wait_event(call_id, "queue.joined", timeout=30)
        waiting_row = board.locator(f'#waiting-calls tr[data-call="{call_id}"]')
        await expect(waiting_row).to_contain_text(CALLER, timeout=T)
        await expect(waiting_row).to_contain_text("social.pension")
        await expect(waiting_row).to_contain_text("Hồ Chí Minh")
        await expect(board.locator("#t-waiting")).to_have_text("1", timeout=T)
        await expect(board.locator('#by-topic tr[data-topic="social.pension"]')).to_contain_text("1", timeout=T)
        await expect(board.locator('#provinces tr[data-province="ho-chi-minh"]')).to_have_class("busy", timeout=T)
        # the wait counts up while the agent is away
        await expect(waiting_row.locator("td.num")).not_to_have_text("0s", timeout=T)
        await expect(board.locator("#t-longest")).not_to_have_text("0s", timeout=T)
        await shot(board, "wallboard-waiting")
        assert phone.calls_answered() == 0

        # the agent goes ready in the page: the call is offered with its screen pop
        await expect(panel.locator("#btn-ready")).to_be_enabled(timeout=T)
        await panel.click("#btn-ready")
        await expect(state).to_have_attribute("data-state", "offered", timeout=T)
        await expect(panel.locator("#pop")).to_be_visible(timeout=T)
        await expect(panel.locator("#pop-caller")).to_have_text(CALLER, timeout=T)
        await expect(panel.locator("#pop-topic")).to_have_text("social.pension")
        await expect(panel.locator("#pop-province")).to_contain_text("Hồ Chí Minh")
        await expect(panel.locator("#pop-language")).to_have_text("vi")
        await expect(panel.locator("#pop-ivr")).not_to_have_text("–")
        await expect(panel.locator("#pop-card")).to_have_class("card pop-offered")
        await shot(panel, "agent-offered")
        await expect(board_agent).to_have_attribute("data-state", "offered", timeout=T)

        # the softphone answers: talking on both pages, the caller no longer waits
        await expect(state).to_have_attribute("data-state", "talking", timeout=RING_S * 1000 + T)
        await expect(board_agent).to_have_attribute("data-state", "talking", timeout=T)
        await expect(panel.locator("#pop-caller")).to_have_text(CALLER)
        await expect(board.locator(f'#waiting-calls tr[data-call="{call_id}"]')).to_have_count(0, timeout=T)
        await expect(board.locator("#t-waiting")).to_have_text("0", timeout=T)
        await expect(board.locator("#t-answered")).to_have_text("1", timeout=T)
        await expect(board.locator("#t-abandoned")).to_have_text("0")
        await shot(panel, "agent-talking")
        await shot(board, "wallboard-talking")
        assert svc.status(AGENT) == "on_call"

        # the agent's phone hangs up: wrap-up; the agent records what the call was about
        await expect(state).to_have_attribute("data-state", "wrap_up", timeout=TALK_S * 1000 + T)
        await expect(panel.locator("#wrapup")).to_be_visible()
        await expect(panel.locator("#pop-caller")).to_have_text(CALLER)
        await expect(board_agent).to_have_attribute("data-state", "wrap_up", timeout=T)
        await panel.select_option("#disposition", DISPOSITION)
        await shot(panel, "agent-wrap-up")
        await panel.click("#btn-wrapup")
        await expect(state).to_have_attribute("data-state", "ready", timeout=T)
        await expect(panel.locator("#no-call")).to_be_visible()
        await expect(panel.locator("#wrapup")).to_be_hidden()
        await expect(board_agent).to_have_attribute("data-state", "ready", timeout=T)
        await expect(panel.locator("#fig-answered")).to_have_text("1", timeout=T)
        await shot(panel, "agent-ready-again")
        await shot(board, "wallboard-after")
        assert svc.status(AGENT) == "ready"

        result = await sipp
        assert result.ok, result.errors or result.stderr
        assert phone.calls_answered() == 1
        row, _ = await svc.record(call_id, timeout=30)
        assert (row["outcome"], row["agent_id"]) == ("answered", AGENT)
        assert (row["topic"], row["province"]) == ("social.pension", "ho-chi-minh")

        async def stored() -> bool:
            rows = await svc.fetch("SELECT disposition FROM calls WHERE call_id = $1", call_id)
            return bool(rows) and rows[0]["disposition"] == DISPOSITION

        await until(stored, timeout=15, what=f"disposition {DISPOSITION} stored for {call_id}")
        wrapped = await svc.fetch("SELECT data FROM call_events WHERE call_id = $1 AND kind = "
                                  "'agent.wrap_up_ended'", call_id)
        assert len(wrapped) == 1 and DISPOSITION in str(wrapped[0]["data"])

        # the state changes the pages showed are the ones logged for reports
        want = ["ready", "paused", "ready", "offered", "on_call", "wrap_up", "ready"]

        async def logged() -> bool:
            rows = await svc.fetch("SELECT to_state FROM agent_state_log WHERE agent_id = $1 ORDER BY at, id",
                                   AGENT)
            return [r["to_state"] for r in rows][-len(want):] == want

        await until(logged, timeout=15, what=f"{AGENT}'s states logged: {want}")
        assert errors == []

        # stopping the HTTP server closes the pages' live sockets at once, not after its timeout
        t0 = time.monotonic()
        await svc.app.context["api"].stop()
        assert time.monotonic() - t0 < 2.0
        await expect(panel.locator("#conn")).to_have_class("status off", timeout=T)
        await expect(board.locator("#conn")).to_have_class("status off", timeout=T)
