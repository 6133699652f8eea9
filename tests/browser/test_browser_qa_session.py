"""The moderator's Q&A session card in the agent panel, in Chromium against the REAL service
(issue 19): the local Asterisk 22 and PostgreSQL, the moderator's SIPp phone rung into the
conference, two SIPp callers who joined from the hotline menu (key 5), one raising a hand (*1).

The expert signs in to the agent panel, sees the card with the raised hand, presses "give the
floor" on it (ConfBridge's own list then shows that caller unmuted), and ends the session from
the card (the callers leave the conference).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from browser_service import base_url, create_token, demo_agents, e2e_lock, running_service, until
from playwright.async_api import expect
from test_qa_session import MODERATOR, SESSION, caller_steps, definition

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

HAND, QUIET = "0912000071", "0912000072"
T = 15_000  # ms


@pytest.fixture(scope="module", autouse=True)
def e2e_turn() -> Iterator[None]:
    with e2e_lock():
        yield


async def test_moderator_gives_the_floor_and_ends_the_session_in_the_panel(stack_env: dict[str, str],
                                                                          fresh_db: str, browser: Any) -> None:
    async with running_service(stack_env, fresh_db, campaigns={"enabled": False}) as svc:
        sessions = svc.app.context["sessions"]
        record = next(a for a in demo_agents() if a.id == MODERATOR)
        token = await create_token(svc.dsn, role="agent", agent=record, name="browser expert")
        await svc.agent(MODERATOR, mode="answer", answer_after=0.3, ready=False)
        await sessions.create(definition(), by="browser test")
        room = sessions.sessions[SESSION].room
        await until(lambda: any(p.role == "moderator" for p in room.participants.values()), timeout=20,
                    what="the moderator in the conference")
        svc.call(caller_steps(hand=True), caller=HAND, timeout=150)
        svc.call(caller_steps(), caller=QUIET, timeout=150)
        errors: list[str] = []

        panel = await browser.new_page(viewport={"width": 1200, "height": 1400})
        panel.on("pageerror", lambda e: errors.append(f"agent panel: {e}"))
        panel.on("dialog", lambda d: asyncio.ensure_future(d.accept()))
        await panel.goto(f"{base_url(svc)}/agent", timeout=T)
        await panel.fill("#login-agent", MODERATOR)
        await panel.fill("#login-token", token)
        await panel.click("#login button[type=submit]")
        card = panel.locator("#qa-card")
        await expect(card).to_be_visible(timeout=T)

        hand = panel.locator(".qa-hands li[data-uniqueid]")
        await expect(hand).to_have_count(1, timeout=45_000)
        await expect(hand).to_contain_text(HAND)
        await expect(panel.locator(".qa-people li[data-uniqueid]")).to_have_count(3, timeout=T)   # the moderator and two callers
        await hand.locator("button.primary").click()
        await expect(panel.locator(".qa-hands li")).to_have_text(["Chưa có ai"], timeout=T)   # nobody waiting
        await expect(panel.locator(".qa-people li.speaking", has_text=HAND)).to_have_count(1, timeout=T)
        await expect(panel.locator(".qa-people li.muted", has_text=QUIET)).to_have_count(1, timeout=T)
        await expect(panel.locator(".qa-people li", has_text=MODERATOR)).to_have_count(1, timeout=T)

        listed = {v["caller"]: v["muted"] for v in await sessions.confbridge_list(SESSION) if v["admin"] != "Yes"}
        assert listed == {HAND: "No", QUIET: "Yes"}

        await card.locator("button", has_text="Kết thúc phiên").click()
        await until(lambda: not room.participants, timeout=20, what="everyone out of the conference")
        assert not sessions.view(SESSION)["running"]
        assert errors == []
