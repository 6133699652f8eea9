"""Sustained write throughput of call events into PostgreSQL: through the
EventWriter (batched COPY + idempotent upsert of the calls row) versus plain
per-row INSERTs of the same events, side by side in one run.

usage: python bench/store_write.py [--quick] [--dsn DSN] [--events N]
The last line printed is one JSON object: {writer_eps, insert_eps, ratio, ...}.
Each run works in a scratch database it creates and drops.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from switchboard.config import DatabaseSettings
from switchboard.events import CallEvent
from switchboard.store.migrate import apply_migrations
from switchboard.store.writer import EventWriter

KINDS = [
    ("call.started", {"caller": "0912345678", "dialed": "19008000", "channel": "PJSIP/x", "language": "vi"}),
    ("ivr.step", {"flow": "main", "flow_version": "7", "node": "welcome", "kind": "play"}),
    ("ivr.step", {"flow": "main", "flow_version": "7", "node": "menu", "kind": "collect", "input": "2"}),
    ("queue.joined", {"topic": "social/pension", "province": "Hà Nội", "province_source": "dialed",
                      "priority": 1, "language": "vi"}),
    ("agent.offer", {"agent_id": "a17", "leg_uniqueid": "1700000000.42"}),
    ("agent.offer_result", {"agent_id": "a17", "result": "answered"}),
    ("call.answered", {"agent_id": "a17", "wait_s": 12.5}),
    ("call.recording", {"path": "2026/03/02/x.wav"}),
    ("agent.ended", {"agent_id": "a17", "talk_s": 180.0}),
    ("call.ended", {"outcome": "answered", "cause": "16", "node": "talk"}),
]


def events(prefix: str, n: int) -> list[CallEvent]:
    t0 = datetime(2026, 3, 2, 2, 0, tzinfo=UTC)
    out: list[CallEvent] = []
    call = 0
    while len(out) < n:
        cid = f"{prefix}{call:07d}"
        for seq, (kind, data) in enumerate(KINDS, 1):
            out.append(CallEvent(cid, seq, t0 + timedelta(seconds=call + seq), kind, dict(data)))
        call += 1
    return out[:n]


async def bench_writer(dsn: str, evs: list[CallEvent], batch_size: int) -> tuple[float, dict[str, object]]:
    with tempfile.TemporaryDirectory() as spool:
        s = DatabaseSettings(dsn=dsn, spool_dir=spool, batch_size=batch_size, queue_size=max(100_000, batch_size * 4),
                             flush_interval=0.05, command_timeout=60)
        w = EventWriter(s)
        await w.start()
        t = time.perf_counter()
        # a producer that yields to the loop now and then, as the live service would
        # never overflowing the queue (that path measures the spool, not the database)
        high = s.queue_size - 2000
        for i in range(0, len(evs), 1000):
            while w.queue_depth > high:  # noqa: ASYNC110  (polling a counter)
                await asyncio.sleep(0.001)
            for e in evs[i:i + 1000]:
                w.submit(e)
            await asyncio.sleep(0)
        await w.flush(timeout=600)
        dt = time.perf_counter() - t
        stats = w.stats()
        await w.stop()
    assert stats["written_total"] == len(evs), stats
    return len(evs) / dt, stats


async def bench_insert(dsn: str, evs: list[CallEvent], seconds: float) -> tuple[float, int]:
    """Plain per-row INSERT ... ON CONFLICT DO NOTHING, one statement per event (autocommit)."""
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        stmt = await conn.prepare("INSERT INTO call_events (call_id, seq, ts, kind, data) "
                                  "VALUES ($1, $2, $3, $4, $5::jsonb) ON CONFLICT DO NOTHING")
        t = time.perf_counter()
        n = 0
        for e in evs:
            await stmt.fetch(e.call_id, e.seq, e.ts, e.kind, json.dumps(e.data), timeout=10)
            n += 1
            if n % 200 == 0 and time.perf_counter() - t > seconds:
                break
        dt = time.perf_counter() - t
    finally:
        await conn.close(timeout=10)
    return n / dt, n


def cpu_model() -> str:
    text = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    return next((line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("model name")),
                platform.processor())


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="under a minute")
    ap.add_argument("--dsn", default=os.environ.get("SWITCHBOARD_DSN", "postgresql://postgres@127.0.0.1:5432/postgres"))
    ap.add_argument("--events", type=int, default=0)
    ap.add_argument("--batch-size", type=int, default=5000)
    args = ap.parse_args()
    n = args.events or (200_000 if args.quick else 1_000_000)
    insert_seconds = 8.0 if args.quick else 30.0
    name = f"sbbench_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(args.dsn, timeout=10)
    await admin.execute(f'CREATE DATABASE "{name}"', timeout=30)
    head = args.dsn.rsplit("/", 1)[0]
    dsn = f"{head}/{name}"
    try:
        conn = await asyncpg.connect(dsn, timeout=10)
        await apply_migrations(conn)
        await conn.close(timeout=10)
        evs = events("W", n)
        writer_eps, stats = await bench_writer(dsn, evs, args.batch_size)
        print(f"writer: {n} events in {n / writer_eps:.1f}s = {writer_eps:,.0f} events/s "
              f"({stats['batches']} batches)", flush=True)
        insert_eps, n_ins = await bench_insert(dsn, events("I", n), insert_seconds)
        print(f"plain INSERT per row: {n_ins} events = {insert_eps:,.0f} events/s", flush=True)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', timeout=60)
        await admin.close(timeout=10)
    cpu = cpu_model()
    print(json.dumps({
        "writer_eps": round(writer_eps), "insert_eps": round(insert_eps), "ratio": round(writer_eps / insert_eps, 1),
        "events_writer": n, "events_insert": n_ins, "batch_size": args.batch_size,
        "target_eps": 50_000, "meets_target": writer_eps >= 50_000,
        "nproc": os.cpu_count(), "cpu": cpu, "quick": args.quick,
    }))


if __name__ == "__main__":
    asyncio.run(main())
