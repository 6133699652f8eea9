"""Composition root: build the parts, start them in order, stop them in reverse.

Signal handlers only set a flag (an asyncio Event); the main coroutine notices
it, stops every started part in reverse order with a bounded wait each, and
logs any part it had to cancel. Nothing else in the code base wires parts
together.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

from switchboard.config import Settings

log = logging.getLogger("switchboard.app")


class Part(Protocol):
    """Something the application starts and stops."""

    name: str

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


@dataclass
class FuncPart:
    """A part made of two coroutine functions (handy for small pieces)."""

    name: str
    on_start: Callable[[], Awaitable[None]]
    on_stop: Callable[[], Awaitable[None]]

    async def start(self) -> None:
        await self.on_start()

    async def stop(self) -> None:
        await self.on_stop()


@dataclass
class Application:
    settings: Settings
    parts: list[Part] = field(default_factory=list)
    stop_timeout: float = 10.0
    _started: list[Part] = field(default_factory=list)
    _stopping: asyncio.Event = field(default_factory=asyncio.Event)
    reload_hooks: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

    def add(self, part: Part) -> Part:
        self.parts.append(part)
        return part

    def request_stop(self) -> None:
        self._stopping.set()

    async def start(self) -> None:
        for part in self.parts:
            log.info("starting %s", part.name)
            await part.start()
            self._started.append(part)
        log.info("switchboard started (%d parts)", len(self._started))

    async def stop(self) -> list[str]:
        """Stop started parts in reverse order; returns the names that had to be cancelled."""
        cancelled: list[str] = []
        while self._started:
            part = self._started.pop()
            log.info("stopping %s", part.name)
            task = asyncio.ensure_future(part.stop())
            done, _ = await asyncio.wait({task}, timeout=self.stop_timeout)
            if not done:
                task.cancel()
                cancelled.append(part.name)
                log.warning("%s did not stop within %.1fs: cancelled", part.name, self.stop_timeout)
                try:
                    await task
                except (asyncio.CancelledError, Exception):
                    pass
            elif task.exception() is not None:
                log.error("%s failed while stopping: %r", part.name, task.exception())
        log.info("switchboard stopped")
        return cancelled

    async def _reload(self) -> None:
        for hook in self.reload_hooks:
            try:
                await hook()
            except Exception:
                log.exception("reload hook failed")

    async def run_forever(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop)
        loop.add_signal_handler(signal.SIGHUP, lambda: asyncio.ensure_future(self._reload()))
        try:
            await self.start()
        except Exception:
            log.exception("start-up failed")
            await self.stop()
            return 1
        await self._stopping.wait()
        log.info("stop requested")
        await self.stop()
        return 0


async def cancel_leftover_tasks() -> list[str]:
    """Cancel tasks still running after every part stopped; log and return their names."""
    pending = [t for t in asyncio.all_tasks() if t is not asyncio.current_task() and not t.done()]
    for t in pending:
        t.cancel()
    if pending:
        log.warning("cancelled %d leftover task(s): %s", len(pending),
                    ", ".join(sorted({t.get_name() for t in pending})))
        await asyncio.gather(*pending, return_exceptions=True)
    return [t.get_name() for t in pending]


def build_application(settings: Settings) -> Application:
    """Build every part of the service from the Settings, in start order."""
    app = Application(settings=settings)
    # Parts are added here, in start order, as they land (store, AMI, IVR, ACD, API).
    return app
