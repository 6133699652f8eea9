from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

import pytest

from switchboard.app import Application
from switchboard.config import Settings


@dataclass
class Recorder:
    name: str
    journal: list[str]
    hang_on_stop: bool = False
    fail_start: bool = False
    calls: list[str] = field(default_factory=list)

    async def start(self) -> None:
        if self.fail_start:
            raise RuntimeError("boom")
        self.journal.append(f"start {self.name}")

    async def stop(self) -> None:
        self.journal.append(f"stop {self.name}")
        if self.hang_on_stop:
            await asyncio.sleep(3600)


async def test_parts_start_in_order_and_stop_in_reverse() -> None:
    journal: list[str] = []
    app = Application(settings=Settings())
    for n in ("store", "ami", "api"):
        app.add(Recorder(n, journal))
    await app.start()
    cancelled = await app.stop()
    assert journal == ["start store", "start ami", "start api", "stop api", "stop ami", "stop store"]
    assert cancelled == []


async def test_a_part_that_hangs_is_cancelled_and_reported(caplog: pytest.LogCaptureFixture) -> None:
    journal: list[str] = []
    app = Application(settings=Settings(), stop_timeout=0.2)
    app.add(Recorder("store", journal))
    app.add(Recorder("stuck", journal, hang_on_stop=True))
    await app.start()
    with caplog.at_level(logging.WARNING):
        cancelled = await app.stop()
    assert cancelled == ["stuck"]
    assert journal[-1] == "stop store"          # the rest still stopped
    assert "stuck did not stop" in caplog.text


async def test_failed_start_stops_what_started() -> None:
    journal: list[str] = []
    app = Application(settings=Settings())
    app.add(Recorder("store", journal))
    app.add(Recorder("ami", journal, fail_start=True))

    async def runner() -> int:
        return await app.run_forever()

    rc = await asyncio.wait_for(runner(), 5)
    assert rc == 1
    assert journal == ["start store", "stop store"]


async def test_stop_request_ends_run_forever() -> None:
    journal: list[str] = []
    app = Application(settings=Settings())
    app.add(Recorder("one", journal))
    task = asyncio.create_task(app.run_forever())
    await asyncio.sleep(0.05)
    app.request_stop()
    assert await asyncio.wait_for(task, 5) == 0
    assert journal == ["start one", "stop one"]
