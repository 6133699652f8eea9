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
import gc
import heapq
import time
from collections import deque
from collections.abc import Callable


class RecentWindow:
    """The last ``window_s`` seconds of a figure (at most ``max_items`` values); ``quantile(q)``.

    Times and values sit in two parallel deques, so a quantile is one C-level sort of the values:
    the overload check asks for two of them (6,000 loop-lag ticks, up to 20,000 AGI acks) twice a
    second, and under load (issue 12, py-spy at level 400) a generator unpacking (time, value)
    pairs for a full sort took 15 % of the service's CPU and blocked its loop while doing so; a
    high quantile now takes the few largest values (``heapq.nlargest``), about 3x faster again."""

    def __init__(self, *, window_s: float = 60.0, max_items: int = 20_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.window_s = window_s
        self.clock = clock
        self._times: deque[float] = deque(maxlen=max_items)
        self._values: deque[float] = deque(maxlen=max_items)

    def add(self, value: float) -> None:
        self._times.append(self.clock())
        self._values.append(value)

    def _prune(self) -> None:
        horizon = self.clock() - self.window_s
        times, values = self._times, self._values
        while times and times[0] < horizon:
            times.popleft()
            values.popleft()

    def __len__(self) -> int:
        self._prune()
        return len(self._values)

    def quantile(self, q: float = 0.99) -> float:
        """The ``q`` quantile of the window (0.0 when empty)."""
        self._prune()
        if not self._values:
            return 0.0
        n = len(self._values)
        index = min(n - 1, int(q * n))
        if n - index <= 1000:          # a high quantile: the (n - index)-th largest, no full sort
            return heapq.nlargest(n - index, self._values)[-1]
        return sorted(self._values)[index]


class GcPauses:
    """How long each of the interpreter's garbage collections stopped the process, by generation
    (``gc.callbacks``): a collection of the oldest generation walks every tracked object and
    stalls the loop meanwhile, which the 10 ms ticker sees only as one late tick."""

    def __init__(self, observe: Callable[[int, float], None]) -> None:
        self._observe = observe
        self._started = 0.0
        self.longest_s = 0.0
        self.count = 0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
            return
        took = time.perf_counter() - self._started
        self.count += 1
        self.longest_s = max(self.longest_s, took)
        try:
            self._observe(int(info.get("generation", 0)), took)
        except Exception:   # never let a metric raise inside the collector
            pass

    def install(self) -> None:
        if self not in gc.callbacks:
            gc.callbacks.append(self)

    def remove(self) -> None:
        with contextlib.suppress(ValueError):
            gc.callbacks.remove(self)


class LoopLag:
    """A composition-root part: ``start``/``stop``; ``recent(q)`` is the q-quantile of the last window.

    With ``observe_gc`` it also times the garbage collector's pauses (:class:`GcPauses`), and at
    start it moves every object alive then (flows, settings, modules: what the service loaded
    before serving) out of the collector's reach (``gc.freeze``), so a full collection under load
    walks only what calls created."""

    name = "loop-lag"

    def __init__(self, observe: Callable[[float], None], *, tick_s: float = 0.01, window_s: float = 60.0,
                 observe_gc: Callable[[int, float], None] | None = None) -> None:
        self._observe = observe
        self._gc = GcPauses(observe_gc) if observe_gc is not None else None
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
        if self._gc is not None:
            gc.collect()
            gc.freeze()
            self._gc.install()
        self._task = asyncio.create_task(self._run(), name="loop-lag")

    async def stop(self) -> None:
        if self._gc is not None:
            self._gc.remove()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
