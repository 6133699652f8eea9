"""Work that runs every few seconds until stopped: ``run_every`` (the loop, which logs a failed
round and goes on) and ``Periodic``, a part that runs ``once()`` at start and then every
``interval`` seconds (the agent loader and the callback sweep are two; the Asterisk nodes'
watch runs ``run_every`` itself)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)


async def run_every(interval: float, work: Callable[[], Awaitable[object]], *, name: str,
                    wait_first: bool = True) -> None:
    """Run ``work`` every ``interval`` seconds until cancelled. A round that raises is logged
    with its traceback and the next round runs as planned: one bad round never stops the loop."""
    if not wait_first:
        await _round(work, name, interval)
    while True:
        await asyncio.sleep(interval)
        await _round(work, name, interval)


async def _round(work: Callable[[], Awaitable[object]], name: str, interval: float) -> None:
    try:
        await work()
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("%s failed; next round in %gs", name, interval)


class Periodic:
    """A part that runs ``once()`` at start and then every ``interval`` seconds until stopped.
    A failure at start is the caller's (start-up fails); a later failed round is logged."""

    name = "periodic"
    interval = 60.0

    def __init__(self) -> None:
        self._task: asyncio.Task[None] | None = None

    async def once(self) -> None:
        raise NotImplementedError

    async def start(self) -> None:
        await self.once()
        self._task = asyncio.create_task(run_every(self.interval, self.once, name=self.name),
                                         name=f"{self.name}-every-{self.interval:g}s")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
