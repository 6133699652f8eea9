"""A writer in a process of its own, for the kill -9 test.

usage: writer_proc.py DSN SPOOL_DIR CALLS
Submits CALLS synthetic calls, prints ``SPOOLED <n>`` once every event is in
the spool (the database is expected to be unreachable), then keeps running
and submitting until it is killed.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from store_helpers import local, make_call

from switchboard.config import DatabaseSettings
from switchboard.store.writer import EventWriter


async def main(dsn: str, spool_dir: str, calls: int) -> None:
    w = EventWriter(DatabaseSettings(dsn=dsn, spool_dir=spool_dir, flush_interval=0.05, batch_size=50),
                    connect_timeout=1.0, reconnect_min=0.05, reconnect_max=0.2)
    await w.start()
    total = 0
    for i in range(calls):
        for e in make_call(f"K{i:04d}", local(2026, 3, 2, 9, 0, i), topic="t", province="p", wait=3,
                           agent="a", talk=10, wrap=1):
            w.submit(e)
            total += 1
        await asyncio.sleep(0)
    while w.spooled_total < total:  # noqa: ASYNC110  (polling a counter)
        await asyncio.sleep(0.01)
    print(f"SPOOLED {total}", flush=True)
    i = calls
    while True:  # keep the writer busy until kill -9
        for e in make_call(f"X{i:05d}", local(2026, 3, 2, 10), topic="t", province="p", wait=3):
            w.submit(e)
        i += 1
        await asyncio.sleep(0.001)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
