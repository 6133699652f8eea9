"""Fixtures: the API app over the real ACD (fake AMI link) and in-memory stand-ins of the
PostgreSQL-backed services, served by a real aiohttp test server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer
from api_fakes import Client, Tokens, World, make_world

from switchboard.api import auth
from switchboard.api.app import HUB, ApiOptions, create_app
from switchboard.config import HttpSettings, PathSettings, Settings
from switchboard.metrics import Metrics


@pytest.fixture
async def world() -> AsyncIterator[World]:
    w = make_world()
    await w.start()
    try:
        yield w
    finally:
        await w.stop()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    rec = tmp_path / "recordings"
    rec.mkdir()
    return Settings(http=HttpSettings(websocket_buffer=16), paths=PathSettings(recordings_dir=str(rec)))


@pytest.fixture
async def tokens(world: World) -> Tokens:
    a1, _ = await auth.create_token(world.tokens, role="agent", agent_id="a1", name="Agent a1")
    a2, _ = await auth.create_token(world.tokens, role="agent", agent_id="a2", name="Agent a2")
    sup, _ = await auth.create_token(world.tokens, role="supervisor", name="Sup")
    adm, _ = await auth.create_token(world.tokens, role="admin", name="Admin")
    phone, _ = await auth.create_token(world.tokens, role="supervisor", name="Sup phone", sip_endpoint="sup1")
    return Tokens(a1=a1, a2=a2, supervisor=sup, admin=adm, phone_supervisor=phone)


@pytest.fixture
def metrics(world: World) -> Metrics:
    return world.metrics      # the one the ACD's events feed, as in the service


@pytest.fixture
async def client(world: World, settings: Settings, metrics: Metrics) -> AsyncIterator[Client]:
    app = create_app(settings=settings, services=world.services, metrics=metrics,
                     options=ApiOptions(figures_interval_s=0.1, ws_send_timeout=1.0))
    world.attach(app[HUB])
    async with TestClient(TestServer(app)) as c:
        yield c
