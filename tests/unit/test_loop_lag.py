"""The event-loop lag ticker sees a loop that is blocked (no timing bound on an idle loop: the
machine may be busy)."""

from __future__ import annotations

import asyncio
import time

from switchboard.loop_lag import LoopLag


async def test_a_blocked_loop_shows_as_lag_and_an_idle_one_does_not() -> None:
    seen: list[float] = []
    lag = LoopLag(seen.append, tick_s=0.01, window_s=10)
    await lag.start()
    try:
        await asyncio.sleep(0.2)
        time.sleep(0.15)  # noqa: ASYNC251 -- the point: a synchronous step holds the loop
        await asyncio.sleep(0.05)
    finally:
        await lag.stop()
    assert len(seen) >= 5
    assert max(seen) >= 0.1         # the tick that waited behind the blocking step
    assert lag.recent(1.0) == max(seen)


def test_no_ticks_yet_reads_zero() -> None:
    assert LoopLag(lambda _: None).recent() == 0.0


def test_recent_window_quantile_matches_a_plain_sort_for_high_and_low_quantiles() -> None:
    import random

    from switchboard.loop_lag import RecentWindow

    rng = random.Random(12)
    now = [0.0]
    window = RecentWindow(window_s=60, max_items=5000, clock=lambda: now[0])
    values = [rng.random() for _ in range(3000)]
    for v in values:
        window.add(v)
    ordered = sorted(values)
    for q in (0.0, 0.5, 0.9, 0.99, 0.999, 1.0):
        assert window.quantile(q) == ordered[min(len(ordered) - 1, int(q * len(ordered)))]
    now[0] = 61.0                          # everything is older than the window now
    assert window.quantile(0.99) == 0.0 and len(window) == 0


def test_gc_pauses_are_timed_by_generation_and_the_callback_goes_away() -> None:
    import gc

    from switchboard.loop_lag import GcPauses

    seen: list[tuple[int, float]] = []
    pauses = GcPauses(lambda gen, s: seen.append((gen, s)))
    pauses.install()
    pauses.install()   # once only
    try:
        junk = [[i] for i in range(10_000)]
        del junk
        gc.collect()
    finally:
        pauses.remove()
    assert gc.callbacks.count(pauses) == 0
    assert (2 in [g for g, _ in seen]) and all(s >= 0 for _, s in seen)
    assert pauses.count == len(seen) and pauses.longest_s == max(s for _, s in seen)
    n = len(seen)
    gc.collect()
    assert len(seen) == n   # removed: no more calls


async def test_loop_lag_with_gc_freezes_the_startup_objects_and_times_collections() -> None:
    import gc

    from switchboard.loop_lag import LoopLag

    seen: list[tuple[int, float]] = []
    part = LoopLag(lambda lag: None, observe_gc=lambda gen, s: seen.append((gen, s)))
    gc.unfreeze()
    await part.start()
    try:
        assert gc.get_freeze_count() > 0
        gc.collect()
        assert any(g == 2 for g, _ in seen)
    finally:
        await part.stop()
        gc.unfreeze()
