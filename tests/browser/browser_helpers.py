"""Shared bits of the browser tests (kept out of conftest so tests can import them)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "artifacts" / "browser"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


@dataclass
class Running:
    url: str
    world: Any
    hub: Any
    tokens: dict[str, str]


@contextlib.asynccontextmanager
async def serve_api(world: Any, *, settings: Any = None, services: Any = None,
                    options: Any = None) -> AsyncIterator[Running]:
    """The real API app over ``world`` (tests/unit/api/api_fakes.py; ``services`` replaces its
    services) on a free port, with an agent token ``a1`` and a supervisor token ``sup``."""
    from switchboard.api import auth
    from switchboard.api.app import HUB, ApiServer, create_app
    from switchboard.config import Settings

    app = create_app(settings=settings or Settings(), services=services or world.services, metrics=world.metrics,
                     **({"options": options} if options is not None else {}))
    world.attach(app[HUB])
    tokens = {}
    for key, role, agent in (("a1", "agent", "a1"), ("sup", "supervisor", None)):
        tokens[key], _ = await auth.create_token(world.tokens, role=role, agent_id=agent, name=key)
    server = ApiServer(app=app, host="127.0.0.1", port=0)
    await server.start()
    try:
        yield Running(url=f"http://127.0.0.1:{server.bound_port}", world=world, hub=app[HUB], tokens=tokens)
    finally:
        await server.stop()
