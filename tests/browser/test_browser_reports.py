"""The reports page (/reports) in Chromium on the hand-worked fixture day of
tests/integration/store/test_store_reports.py: the real report service over a real
PostgreSQL (the other API services are the in-memory stand-ins of the browser tests).
Every number on the page is known; the charts are checked by the numbers their marks
carry and by layout features (sizes, grid columns), not pixels."""

from __future__ import annotations

import dataclasses
import itertools
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from browser_helpers import ARTIFACTS, REPO, Running, serve_api
from playwright.async_api import expect

from switchboard.store.migrate import apply_migrations

sys.path.insert(0, str(REPO / "tests" / "integration" / "store"))
sys.path.insert(0, str(REPO / "tests" / "unit" / "api"))

T = 15_000  # ms


@pytest.fixture
async def reports_running(fresh_db: str, tmp_path: Path) -> AsyncIterator[Running]:
    from api_fakes import make_world
    from test_store_reports import _load, fixture_events

    from switchboard.api.pg_services import PgReportService
    from switchboard.api.services import provinces_from_geo
    from switchboard.config import Settings
    from switchboard.geo import load_provinces

    conn = await asyncpg.connect(fresh_db, timeout=10)
    try:
        await apply_migrations(conn)
    finally:
        await conn.close()
    await _load(fresh_db, tmp_path, fixture_events())
    pool = await asyncpg.create_pool(fresh_db, min_size=1, max_size=2)
    world = make_world(provinces=provinces_from_geo(load_provinces()))
    await world.start()
    settings = Settings()          # 20 s service level, 5 s short abandon, targets 80 % and 90 %
    services = dataclasses.replace(world.services, reports=PgReportService(pool, settings))
    try:
        async with serve_api(world, settings=settings, services=services) as running:
            yield running
    finally:
        await world.stop()
        await pool.close()


async def _marks(page: Any, selector: str) -> dict[str, str]:
    return dict(await page.eval_on_selector_all(
        selector, "els => els.map(e => [e.dataset.label, e.dataset.value])"))


async def test_reports_page_shows_the_fixture_day(reports_running: Running, browser: Any) -> None:
    page = await browser.new_page(viewport={"width": 1400, "height": 1100})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    await page.goto(f"{reports_running.url}/reports?view=day&date=2026-03-02", timeout=T)
    await page.fill("#login-token", reports_running.tokens["a1"])         # an agent may not read reports
    await page.click("#login button[type=submit]")
    await expect(page.locator("#login-error")).not_to_be_empty(timeout=T)
    await page.fill("#login-token", reports_running.tokens["sup"])
    await page.click("#login button[type=submit]")
    await expect(page.locator("#reports")).to_be_visible(timeout=T)
    await expect(page.locator("#t-offered")).to_have_text("10", timeout=T)

    # totals of the day (worked by hand in test_store_reports.py)
    await expect(page.locator("#t-answered")).to_have_text("5")
    await expect(page.locator("#t-sl")).to_have_text("40%")              # q01 q03 q04 q13 of 10 offered
    await expect(page.locator("#t-abandon")).to_have_text("20%")         # q06 q07 (q05 is a short abandon)
    await expect(page.locator("#t-satisfied")).to_have_text("50%")       # scores 5 3 4 2
    await expect(page.locator("#t-sl-target")).to_contain_text("80%")
    await expect(page.locator("#t-satisfied-target")).to_contain_text("90%")

    # service level and abandon rate per half-hour, against the 80 % target
    sl = await _marks(page, "#c-periods circle.sl")
    assert sl == {"07:30": "1.0000", "08:00": "0.5000", "08:30": "0.1667", "14:00": "1.0000"}
    ab = await _marks(page, "#c-periods circle.abandon")
    assert ab == {"07:30": "0.0000", "08:00": "0.0000", "08:30": "0.3333", "14:00": "0.0000"}
    assert await page.get_attribute("#c-periods line.target", "data-target") == "0.8"
    await expect(page.locator("#periods tbody tr")).to_have_count(4)
    await expect(page.locator("#periods tbody tr[data-period='08:30'] td").nth(1)).to_have_text("6")

    # the IVR funnel, most reached first; answered by province; satisfied vs 90 %
    funnel = await page.eval_on_selector_all(
        "#c-funnel rect", "els => els.map(e => [e.dataset.label, Number(e.dataset.value)])")
    assert funnel == [["menu", 13], ["welcome", 13], ["queue", 10], ["id_entry", 2], ["info", 1]]
    provinces = await _marks(page, "#c-provinces rect")
    assert provinces == {"Hà Nội": "4", "Đà Nẵng": "1"}
    assert await page.get_attribute("#c-satisfaction rect", "data-value") == "0.5"
    assert await page.get_attribute("#c-satisfaction line.target", "data-target") == "0.9"

    # layout: four charts drawn with a real size, side by side on a wide screen, stacked on a phone
    charts = ("c-periods", "c-funnel", "c-provinces", "c-satisfaction")
    boxes = [await page.locator(f"#{c}").bounding_box() for c in charts]
    assert all(b is not None and b["width"] > 300 and b["height"] > 50 for b in boxes), boxes
    first, second = boxes[0], boxes[1]
    assert first is not None and second is not None
    assert abs(first["y"] - second["y"]) < 2 and second["x"] > first["x"] + first["width"]
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / "reports-day.png"), full_page=True)
    await page.set_viewport_size({"width": 420, "height": 900})
    narrow = [await page.locator(f"#{c}").bounding_box() for c in charts]
    for upper, lower in itertools.pairwise(narrow):
        assert upper is not None and lower is not None and lower["y"] > upper["y"] + upper["height"]
        assert lower["width"] < 420
    await page.set_viewport_size({"width": 1400, "height": 1100})

    # each table downloads as CSV from the same API
    href = await page.get_attribute("#csv-periods", "href")
    assert href == "/api/reports/halfhourly?from=2026-03-02&to=2026-03-02&format=csv"
    resp = await page.request.get(f"{reports_running.url}{href}")
    lines = (await resp.text()).strip().splitlines()
    assert resp.status == 200 and lines[0].startswith("period,group,calls,offered")
    assert [ln.split(",")[0] for ln in lines[1:]] == ["2026-03-02T07:30", "2026-03-02T08:00", "2026-03-02T08:30",
                                                      "2026-03-02T14:00"]
    for link in ("#csv-funnel", "#csv-provinces", "#csv-totals"):
        resp = await page.request.get(f"{reports_running.url}{await page.get_attribute(link, 'href')}")
        assert resp.status == 200 and resp.headers["content-type"].startswith("text/csv")

    # the week (Monday 2 to Sunday 8 March) takes in the next day's call; the month its range
    await page.select_option("#view", "week")
    await expect(page.locator("#range")).to_have_text("2026-03-02 – 2026-03-08", timeout=T)
    await expect(page.locator("#t-offered")).to_have_text("11")
    assert await _marks(page, "#c-periods circle.sl") == {"03-02": "0.4000", "03-03": "1.0000"}
    await page.select_option("#view", "month")
    await expect(page.locator("#range")).to_have_text("2026-03-01 – 2026-03-31", timeout=T)
    await expect(page.locator("#t-offered")).to_have_text("11")
    await page.click("#lang-toggle")                                      # English labels, same numbers
    await expect(page.locator("h1")).to_have_text("Call-center reports")
    await expect(page.locator("#t-answered")).to_have_text("6")
    assert errors == []
