"""End-to-end tests share one Asterisk: one test process at a time (see tests/e2e_lock.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from e2e_lock import e2e_turn as _turn
from e2e_stack import ami_settings

from switchboard.ami.client import AmiClient


@pytest.fixture(scope="session", autouse=True)
def e2e_turn() -> Iterator[None]:
    with _turn("e2e"):
        yield


@pytest.fixture
async def ami(stack_env: dict[str, str]) -> AsyncIterator[AmiClient]:
    """An AMI session of the shipped service user (deploy/asterisk/manager.conf as rendered)."""
    client = AmiClient(ami_settings(stack_env))
    await client.start(timeout=10)
    try:
        yield client
    finally:
        await client.close()
