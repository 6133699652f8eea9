"""A part that runs ``once()`` at start and then every ``interval`` seconds until stopped
(the agent loader and the callback sweep are two)."""

from __future__ import annotations

import asyncio
import contextlib


class Periodic:
    """A part that runs ``once()`` at start and then every ``interval`` seconds until stopped."""

    name = "periodic"
    interval = 60.0

    def __init__(self) -> None:
        self._task: asyncio.Task[None] | None = None

    async def once(self) -> None:
        raise NotImplementedError

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            await self.once()

    async def start(self) -> None:
        await self.once()
        self._task = asyncio.create_task(self._loop(), name=f"{self.name}-every-{self.interval:g}s")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
