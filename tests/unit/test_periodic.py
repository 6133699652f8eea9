"""``run_every`` and ``Periodic``: a failed round is logged and the loop goes on."""

from __future__ import annotations

import asyncio
import logging

import pytest

from switchboard.periodic import Periodic, run_every


async def test_a_failed_round_is_logged_and_the_next_rounds_run(caplog: pytest.LogCaptureFixture) -> None:
    rounds: list[int] = []
    four = asyncio.Event()

    async def work() -> None:
        rounds.append(len(rounds))
        if len(rounds) == 4:
            four.set()
        if len(rounds) == 2:
            raise RuntimeError("database away")

    task = asyncio.create_task(run_every(0.01, work, name="sweep", wait_first=False))
    async with asyncio.timeout(5):
        await four.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    failed = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(failed) == 1 and "sweep failed" in failed[0].getMessage()
    assert failed[0].exc_info is not None and "database away" in str(failed[0].exc_info[1])


async def test_wait_first_waits_one_interval_and_not_waiting_runs_at_once() -> None:
    ran: list[str] = []

    async def work() -> None:
        ran.append("x")

    waits = asyncio.create_task(run_every(30, work, name="slow"))
    now = asyncio.create_task(run_every(30, work, name="now", wait_first=False))
    await asyncio.sleep(0.05)
    assert ran == ["x"]     # only the one that does not wait first
    for t in (waits, now):
        t.cancel()
    await asyncio.gather(waits, now, return_exceptions=True)


async def test_periodic_runs_once_at_start_and_a_later_failure_does_not_stop_it() -> None:
    class Sweep(Periodic):
        name = "sweep"
        interval = 0.01

        def __init__(self) -> None:
            super().__init__()
            self.n = 0
            self.four = asyncio.Event()

        async def once(self) -> None:
            self.n += 1
            if self.n == 4:
                self.four.set()
            if self.n == 2:
                raise OSError("boom")

    s = Sweep()
    await s.start()
    assert s.n == 1
    async with asyncio.timeout(5):
        await s.four.wait()
    await s.stop()
    assert s._task is not None and s._task.done()
