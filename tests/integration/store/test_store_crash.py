"""kill -9 with events in the spool, and a real PostgreSQL stop/start."""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import asyncpg
import pytest
from store_helpers import PrivateCluster, free_port, local, make_call

from switchboard.config import DatabaseSettings
from switchboard.store.migrate import apply_migrations
from switchboard.store.writer import EventWriter

HERE = Path(__file__).resolve().parent


async def test_kill_9_with_spooled_events_loses_nothing(migrated_db: str, tmp_path: Path,
                                                        db: asyncpg.Connection) -> None:
    spool = tmp_path / "spool"
    dead = f"postgresql://postgres@127.0.0.1:{free_port()}/nothing"  # nobody listens: refused
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(HERE / "writer_proc.py"), dead, str(spool), "300",
        stdout=asyncio.subprocess.PIPE, cwd=HERE.parent.parent.parent)
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), timeout=60)).decode()
        assert line.startswith("SPOOLED "), line
        durable = int(line.split()[1])
        await asyncio.sleep(0.3)  # let it keep spooling more, then pull the plug mid-stream
        proc.send_signal(signal.SIGKILL)
        assert await asyncio.wait_for(proc.wait(), timeout=10) == -signal.SIGKILL
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert any(spool.glob("*.jsonl"))
    w = EventWriter(DatabaseSettings(dsn=migrated_db, spool_dir=str(spool), flush_interval=0.05),
                    connect_timeout=2.0)
    await w.start()
    await w.flush(timeout=30)
    await w.stop()
    per_call = len(make_call("K0000", local(2026, 3, 2, 9), topic="t", province="p", wait=3, agent="a",
                             talk=10, wrap=1))
    k = await db.fetchrow("SELECT count(*) AS n, count(DISTINCT call_id) AS calls FROM call_events "
                          "WHERE call_id LIKE 'K%'", timeout=10)
    assert k is not None
    assert (k["n"], k["calls"]) == (durable, 300) and durable == 300 * per_call
    # events spooled after the SPOOLED line are in too, each at most once, and the spool is empty
    assert w.replayed_total >= durable and not any(spool.glob("*.jsonl"))
    dup = await db.fetchval("SELECT count(*) - count(DISTINCT (call_id, seq)) FROM call_events", timeout=10)
    assert dup == 0


@pytest.fixture
def cluster() -> Iterator[PrivateCluster]:
    c = PrivateCluster()
    c.init()
    try:
        yield c
    finally:
        c.destroy()


async def test_real_postgres_stop_and_start(cluster: PrivateCluster, tmp_path: Path) -> None:
    conn = await asyncpg.connect(cluster.dsn, timeout=10)
    try:
        await apply_migrations(conn)
    finally:
        await conn.close(timeout=5)
    w = EventWriter(DatabaseSettings(dsn=cluster.dsn, spool_dir=str(tmp_path / "spool"), flush_interval=0.05,
                                     command_timeout=3.0),
                    connect_timeout=2.0, reconnect_min=0.05, reconnect_max=0.5)
    await w.start()
    expected: dict[str, int] = {}
    t0 = time.monotonic()
    stopped_at = started_at = None
    i = 0
    while time.monotonic() - t0 < 12:
        el = time.monotonic() - t0
        if stopped_at is None and el > 3:
            await asyncio.to_thread(cluster.stop, "immediate")  # a crash of the server, not a polite stop
            stopped_at = el
        if stopped_at is not None and started_at is None and el > 7:
            await asyncio.to_thread(cluster.start)
            started_at = el
        evs = make_call(f"P{i:04d}", local(2026, 3, 2, 9) + timedelta(seconds=el), topic="t", province="p",
                        wait=2, agent="a", talk=15, wrap=2)
        for e in evs:
            w.submit(e)
        expected[f"P{i:04d}"] = len(evs)
        i += 1
        await asyncio.sleep(0.03)
    await w.flush(timeout=60)
    assert w.spooled_total > 0 and w.replayed_total > 0
    await w.stop()
    conn = await asyncpg.connect(cluster.dsn, timeout=10)
    try:
        rows = await conn.fetch("SELECT call_id, count(*) AS n, max(seq) AS hi FROM call_events GROUP BY 1",
                                timeout=10)
        assert {r["call_id"]: (r["n"], r["hi"]) for r in rows} == {c: (n, n) for c, n in expected.items()}
        assert await conn.fetchval("SELECT count(*) FROM calls WHERE ended_at IS NOT NULL", timeout=10) == i
    finally:
        await conn.close(timeout=5)
