"""Browser tests: the real service app (the real ACD over a fake AMI link, in-memory stand-ins
of the PostgreSQL-backed services: tests/unit/api/api_fakes.py) on a real port,
driven by Debian's Chromium through Playwright (no browser download)."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from browser_helpers import ARTIFACTS, CHROMIUM_ARGS, REPO, Running, serve_api

sys.path.insert(0, str(REPO / "tests" / "unit" / "api"))


@pytest.fixture
async def running(tmp_path: Path) -> AsyncIterator[Running]:
    from api_fakes import make_world

    from switchboard.api.app import ApiOptions
    from switchboard.api.services import provinces_from_geo
    from switchboard.geo import load_provinces

    world = make_world(provinces=provinces_from_geo(load_provinces()))
    await world.start()
    try:
        async with serve_api(world, options=ApiOptions(figures_interval_s=0.3)) as running:
            yield running
    finally:
        await world.stop()


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    from playwright.async_api import async_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    async with async_playwright() as pw:
        b = await pw.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS, timeout=30_000)
        try:
            yield b
        finally:
            await b.close()
