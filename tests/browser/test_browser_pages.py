"""Agent panel and wallboard in Chromium, live over the websocket (ACD side faked)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

from api_fakes import sample_pop
from browser_helpers import ARTIFACTS, Running
from playwright.async_api import expect

from switchboard.api.live import Audience, LiveMessage
from switchboard.api.services import WaitingCall

T = 10_000  # ms


async def test_agent_logs_in_goes_ready_gets_screen_pop_and_wraps_up(running: Running, browser: Any) -> None:
    page = await browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    await page.goto(f"{running.url}/agent", timeout=T)
    await page.fill("#login-agent", "a1")
    await page.fill("#login-token", "sb_0123456789ab." + "Z" * 43)
    await page.click("#login button[type=submit]")
    await expect(page.locator("#login-error")).to_contain_text("Sai", timeout=T)
    await page.fill("#login-token", running.tokens["a1"])
    await page.click("#login button[type=submit]")
    await expect(page.locator("#panel")).to_be_visible(timeout=T)
    await expect(page.locator("#conn")).to_have_class("status on", timeout=T)
    await expect(page.locator("#state")).to_have_attribute("data-state", "logged_out", timeout=T)

    await page.click("#btn-login")
    await expect(page.locator("#state")).to_have_attribute("data-state", "paused", timeout=T)
    await page.click("#btn-ready")
    await expect(page.locator("#state")).to_have_attribute("data-state", "ready", timeout=T)
    assert running.world.agents.agents["a1"].state == "ready"

    # the ACD offers a call: screen pop over the websocket
    view = running.world.agents.offer("a1", sample_pop("c42"))
    running.hub.publish(LiveMessage("agent.state", view, agent_id="a1", audience=Audience.AGENT))
    running.hub.publish(LiveMessage("agent.offer", sample_pop("c42"), agent_id="a1", audience=Audience.AGENT))
    await expect(page.locator("#pop-caller")).to_have_text("02438123456", timeout=T)
    await expect(page.locator("#pop-si")).to_have_text("0123456789")
    await expect(page.locator("#pop-province")).to_have_text("Hà Nội")
    await expect(page.locator("#pop-ivr")).to_contain_text("menu:1")
    await expect(page.locator("#state")).to_have_attribute("data-state", "offered")
    await page.screenshot(path=str(ARTIFACTS / "agent-screen-pop.png"), full_page=True)

    # English toggle
    await page.click("#lang-toggle")
    await expect(page.locator("#pop-province")).to_have_text("Hanoi", timeout=T)
    await expect(page.locator("#state")).to_have_text("Ringing")

    # talk, hang-up → wrap-up; the agent picks a disposition
    view = running.world.agents.set_state("a1", "wrap_up")
    running.hub.publish(LiveMessage("agent.state", view, agent_id="a1", audience=Audience.AGENT))
    await expect(page.locator("#wrapup")).to_be_visible(timeout=T)
    await page.select_option("#disposition", "escalated")
    await page.screenshot(path=str(ARTIFACTS / "agent-wrap-up.png"), full_page=True)
    await page.click("#btn-wrapup")
    await expect(page.locator("#state")).to_have_attribute("data-state", "ready", timeout=T)
    await expect(page.locator("#no-call")).to_be_visible()
    assert running.world.agents.log[-1] == ("end_wrap_up", "a1", "escalated")
    await expect(page.locator("#fig-answered")).to_have_text("7")
    assert errors == []


async def test_wallboard_shows_waiting_call_and_agent_state_live(running: Running, browser: Any) -> None:
    page = await browser.new_page(viewport={"width": 1400, "height": 1000})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    await page.goto(f"{running.url}/wallboard", timeout=T)
    await page.fill("#login-token", running.tokens["sup"])
    await page.click("#login button[type=submit]")
    await expect(page.locator("#board")).to_be_visible(timeout=T)
    await expect(page.locator("#provinces tbody tr")).to_have_count(34, timeout=T)
    await expect(page.locator("#t-waiting")).to_have_text("0")

    # a caller from Đà Nẵng joins the queue; an agent logs in and goes ready
    running.world.queues.calls.append(WaitingCall(
        call_id="c77", caller="02363123456", topic="health/card", province="da-nang", priority=0, language="vi",
        joined_at=datetime.now(UTC) - timedelta(seconds=42), wait_s=42.0))
    running.world.agents.agents["a2"] = dataclasses.replace(running.world.agents.agents["a2"], state="ready")
    await expect(page.locator("#t-waiting")).to_have_text("1", timeout=T)
    row = page.locator('#waiting-calls tr[data-call="c77"]')
    await expect(row).to_contain_text("02363123456", timeout=T)
    await expect(row).to_contain_text("Đà Nẵng")
    await expect(page.locator('#provinces tr[data-province="da-nang"]')).to_have_class("busy", timeout=T)
    await expect(page.locator('#by-topic tr[data-topic="health/card"]')).to_contain_text("1")
    await expect(page.locator('#agents tr[data-agent="a2"] .state')).to_have_attribute("data-state", "ready",
                                                                                      timeout=T)
    # a state change pushed by the ACD shows at once
    view = running.world.agents.set_state("a2", "talking")
    running.hub.publish(LiveMessage("agent.state", view, agent_id="a2", audience=Audience.AGENT))
    await expect(page.locator('#agents tr[data-agent="a2"] .state')).to_have_attribute("data-state", "talking",
                                                                                      timeout=T)
    await expect(page.locator("#t-sl-now")).to_have_text("80%")
    await page.screenshot(path=str(ARTIFACTS / "wallboard-vi.png"), full_page=True)
    await page.click("#lang-toggle")
    await expect(page.locator('#provinces tr[data-province="ho-chi-minh"]')).to_contain_text("Ho Chi Minh City")
    await page.screenshot(path=str(ARTIFACTS / "wallboard-en.png"), full_page=True)
    assert errors == []


async def test_agent_token_cannot_open_the_wallboard(running: Running, browser: Any) -> None:
    page = await browser.new_page()
    await page.goto(f"{running.url}/wallboard", timeout=T)
    await page.fill("#login-token", running.tokens["a1"])
    await page.click("#login button[type=submit]")
    await expect(page.locator("#login-error")).not_to_be_empty(timeout=T)
    await expect(page.locator("#board")).to_be_hidden()
