"""Event-loop lag: a 10 ms ticker on the service's own loop and how late it wakes up.

A loop that is busy (a long synchronous step, a flood of events) delays every
AGI command, AMI action and HTTP answer at once; this is the one figure that
shows it. Each tick's lateness goes to ``observe`` (the Prometheus histogram
``switchboard_event_loop_lag_seconds``), and the part keeps the last minute of
ticks so the service can ask for a recent high percentile.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable


class RecentWindow:
    """The last ``window_s`` seconds of a figure (at most ``max_items`` values); ``quantile(q)``."""

    def __init__(self, *, window_s: float = 60.0, max_items: int = 20_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.window_s = window_s
        self.clock = clock
        self._items: deque[tuple[float, float]] = deque(maxlen=max_items)

    def add(self, value: float) -> None:
        self._items.append((self.clock(), value))

    def _prune(self) -> None:
        horizon = self.clock() - self.window_s
        while self._items and self._items[0][0] < horizon:
            self._items.popleft()

    def __len__(self) -> int:
        self._prune()
        return len(self._items)

    def quantile(self, q: float = 0.99) -> float:
        """The ``q`` quantile of the window (0.0 when empty)."""
        self._prune()
        if not self._items:
            return 0.0
        ordered = sorted(v for _, v in self._items)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class LoopLag:
    """A composition-root part: ``start``/``stop``; ``recent(q)`` is the q-quantile of the last window."""

    name = "loop-lag"

    def __init__(self, observe: Callable[[float], None], *, tick_s: float = 0.01, window_s: float = 60.0) -> None:
        self._observe = observe
        self.tick_s = tick_s
        self._recent = RecentWindow(window_s=window_s, max_items=max(1, int(window_s / tick_s)))
        self._task: asyncio.Task[None] | None = None

    def recent(self, q: float = 0.99) -> float:
        """The ``q`` quantile of the lag over the window (0.0 before the first tick)."""
        return self._recent.quantile(q)

    async def _run(self) -> None:
        while True:
            t0 = time.monotonic()
            await asyncio.sleep(self.tick_s)
            lag = max(0.0, time.monotonic() - t0 - self.tick_s)
            self._recent.add(lag)
            self._observe(lag)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="loop-lag")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
