"""Agent panel and wallboard in Chromium, live over the websocket: the real ACD over a fake
AMI link (tests/unit/api/fake_asterisk.py); tests/browser/test_browser_live_call.py does the
same against the real Asterisk."""

from __future__ import annotations

from typing import Any

from browser_helpers import ARTIFACTS, Running
from playwright.async_api import expect

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

    await page.click("#btn-login")                      # the service logs an agent in ready
    await expect(page.locator("#state")).to_have_attribute("data-state", "ready", timeout=T)
    await page.select_option("#pause-reason", "lunch")
    await page.click("#btn-pause")
    await expect(page.locator("#state")).to_have_attribute("data-state", "paused", timeout=T)
    await page.click("#btn-ready")
    await expect(page.locator("#state")).to_have_attribute("data-state", "ready", timeout=T)
    assert running.world.acd.states["a1"].status.value == "ready"

    # a caller reaches the line: the ACD offers it to a1 (screen pop over the websocket)
    call_id = await running.world.caller_waits(caller="02438123456")
    leg = await running.world.ringing("a1")
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

    # the phone answers, then hangs up → wrap-up; the agent picks a disposition
    running.world.asterisk.agent_answers(leg)
    await expect(page.locator("#state")).to_have_attribute("data-state", "talking", timeout=T)
    running.world.asterisk.agent_hangs_up(leg)
    await expect(page.locator("#wrapup")).to_be_visible(timeout=T)
    await page.select_option("#disposition", "referred")
    await page.screenshot(path=str(ARTIFACTS / "agent-wrap-up.png"), full_page=True)
    await page.click("#btn-wrapup")
    await expect(page.locator("#state")).to_have_attribute("data-state", "ready", timeout=T)
    await expect(page.locator("#no-call")).to_be_visible()
    (ended,) = running.world.of("agent.wrap_up_ended")
    assert (ended.call_id, ended.data["agent_id"], ended.data["disposition"]) == (call_id, "a1", "referred")
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

    await expect(page.locator("#t-sl-now")).to_have_text("–")              # no call answered yet

    # a caller from Đà Nẵng joins the line (no agent has the skill); a2 logs in and goes ready
    world = running.world
    da_nang = await world.caller_waits(caller="02363123456", topic="health/card", province="da-nang", waited_s=42)
    world.acd.ready("a2")
    await expect(page.locator("#t-waiting")).to_have_text("1", timeout=T)
    row = page.locator(f'#waiting-calls tr[data-call="{da_nang}"]')
    await expect(row).to_contain_text("02363123456", timeout=T)
    await expect(row).to_contain_text("Đà Nẵng")
    await expect(page.locator('#provinces tr[data-province="da-nang"]')).to_have_class("busy", timeout=T)
    await expect(page.locator('#by-topic tr[data-topic="health/card"]')).to_contain_text("1")
    await expect(page.locator('#agents tr[data-agent="a2"] .state')).to_have_attribute("data-state", "ready",
                                                                                      timeout=T)
    # two pension callers, one answered within the service-level time and one after it
    for caller, waited in (("02438000001", 5.0), ("02438000002", 35.0)):
        await world.caller_waits(caller=caller, waited_s=waited)
        leg = await world.ringing("a2")
        world.asterisk.agent_answers(leg)
        await expect(page.locator('#agents tr[data-agent="a2"] .state')).to_have_attribute(
            "data-state", "talking", timeout=T)
        world.asterisk.agent_hangs_up(leg)
        await world.settle()
        world.acd.end_wrap_up("a2", disposition="resolved")
    waits = [float(e.data["wait_s"]) for e in world.of("call.answered")]
    assert len(waits) == 2
    in_sl = sum(w <= world.acd.settings.service_level_s for w in waits)
    await expect(page.locator("#t-sl-now")).to_have_text(f"{round(100 * in_sl / len(waits))}%", timeout=T)
    await expect(page.locator("#t-answered")).to_have_text("2", timeout=T)
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
