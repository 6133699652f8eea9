"""The AMI client as parts of the composition root: connecting at start (without waiting
forever for Asterisk), and copying the client's counters into Prometheus every second.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

# The lines keep the logger they had in the composition root.
log = logging.getLogger("switchboard.app")


class AmiPart:
    name = "ami"

    def __init__(self, client: Any, timeout: float) -> None:
        self.client = client
        self.timeout = timeout

    async def start(self) -> None:
        await self.client.start(wait=False)
        try:
            await self.client.wait_connected(timeout=self.timeout)
        except Exception as exc:
            log.error("AMI not connected yet (%s); retrying in the background", exc)

    async def stop(self) -> None:
        await self.client.close()


class AmiMetricsSync:
    """Copies the AMI client's counters into Prometheus every second."""

    name = "metrics-sync"

    def __init__(self, metrics: Any, client: Any) -> None:
        self.metrics = metrics
        self.client = client
        self._seen_reconnects = 0
        self._seen_events = {"delivered": 0, "skipped": 0}
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            reconnects = int(getattr(self.client, "reconnects", 0))
            if reconnects > self._seen_reconnects:
                self.metrics.ami_reconnects.inc(reconnects - self._seen_reconnects)
                self._seen_reconnects = reconnects
            for fate, attr in (("delivered", "events_received"), ("skipped", "events_skipped")):
                n = int(getattr(self.client, attr, 0))
                seen = self._seen_events[fate]
                delta = n - seen if n >= seen else n     # below: a new connection's parser counts anew
                if delta:
                    self.metrics.ami_events.labels(fate).inc(delta)
                self._seen_events[fate] = n
            self.metrics.observe_ami_lag(float(getattr(self.client, "event_lag", 0.0)))
            await asyncio.sleep(1.0)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="metrics-sync")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
