"""Sustained write throughput of call events into PostgreSQL: the EventWriter
(batched COPY + idempotent upsert of the calls row) against the baselines a
careful engineer would write, side by side in one run, on the same events.

Traffic shape: events interleaved across ~300 concurrent calls (each call's
10 events spread over minutes of its own timeline, calls starting as others
end), so a batch touches a few hundred ``calls`` rows a few times each, as a
busy day does, not 200 calls with all ten events at once.

Contenders (each in a fresh scratch database, interleaved in rounds):

* writer: ``EventWriter`` with the configured defaults (``batch_size`` 2000,
  ``flush_interval`` 0.2 s, ``queue_size``): ``submit()`` (validate + JSON
  encode) -> batch -> COPY -> ``INSERT ... ON CONFLICT DO NOTHING`` + upsert of
  the ``calls`` row, one transaction per batch.
* executemany: ``executemany`` of a prepared ``INSERT ... ON CONFLICT DO
  NOTHING`` over a batch of 2000 events, one transaction per batch.
* pool10: 10 connections (an asyncpg pool) doing one autocommitted INSERT per
  event concurrently (the server's group commit shares the WAL flushes).
* serial: one connection, one autocommitted INSERT per event.

The baselines insert the events only; the writer also keeps the ``calls`` row
(so the ratio is conservative). The ratio is the writer against the best baseline.

Rates are events per wall second. The machine is shared, so each contender's CPU
is also counted: this process's CPU time plus the CPU time of the PostgreSQL
backends serving its scratch database (read from /proc while it runs; the server
is local), as microseconds per event (``*_cpu_us``): less swayed by other load.

usage: python bench/store_write.py [--quick] [--dsn DSN] [--events N] [--rounds R]
The last line printed is one JSON object: {writer_eps, best_baseline, ratio, ...}.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import random
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from switchboard.config import DatabaseSettings
from switchboard.events import CallEvent
from switchboard.store.migrate import apply_migrations
from switchboard.store.writer import EventWriter, to_record

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
CONCURRENT_CALLS = 300
BASELINE_BATCH = 2000
POOL_SIZE = 10
INSERT = ("INSERT INTO call_events (call_id, seq, ts, kind, data) "
          "VALUES ($1, $2, $3, $4, $5::jsonb) ON CONFLICT DO NOTHING")


def events(prefix: str, n: int, *, concurrent: int = CONCURRENT_CALLS, seed: int = 1) -> list[CallEvent]:
    """``n`` events of calls ``concurrent`` at a time: each next event from a random live call,
    its timestamp 5-60 s after that call's previous one; a finished call is replaced by a new one."""
    rng = random.Random(seed)
    t0 = datetime(2026, 3, 2, 2, 0, tzinfo=UTC)
    started = 0
    live: list[list] = []  # [call_id, next seq, ts]
    for _ in range(concurrent):
        started += 1
        live.append([f"{prefix}{started:08d}", 1, t0 + timedelta(seconds=rng.uniform(0, 600))])
    out: list[CallEvent] = []
    while len(out) < n:
        i = rng.randrange(concurrent)
        call = live[i]
        kind, data = KINDS[call[1] - 1]
        out.append(CallEvent(call[0], call[1], call[2], kind, dict(data)))
        call[1] += 1
        call[2] += timedelta(seconds=rng.uniform(5, 60))
        if call[1] > len(KINDS):
            started += 1
            live[i] = [f"{prefix}{started:08d}", 1, call[2]]
    return out


async def bench_writer(dsn: str, evs: list[CallEvent], seconds: float) -> tuple[float, int]:
    """The real writer with its default settings; the producer never lets the queue overflow
    (that path measures the spool, not the database). ``seconds`` is unused: all events go."""
    del seconds
    with tempfile.TemporaryDirectory() as spool:
        defaults = DatabaseSettings()
        s = DatabaseSettings(dsn=dsn, spool_dir=spool, command_timeout=60)
        assert (s.batch_size, s.flush_interval, s.queue_size) == (
            defaults.batch_size, defaults.flush_interval, defaults.queue_size)
        w = EventWriter(s)
        await w.start()
        t = time.perf_counter()
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
    return len(evs) / dt, len(evs)


async def bench_executemany(dsn: str, evs: list[CallEvent], seconds: float) -> tuple[float, int]:
    """``executemany`` of a prepared INSERT over 2000 events, one transaction per batch."""
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        t = time.perf_counter()
        n = 0
        for i in range(0, len(evs), BASELINE_BATCH):
            rows = [to_record(e) for e in evs[i:i + BASELINE_BATCH]]
            async with conn.transaction():
                await conn.executemany(INSERT, rows, timeout=60)
            n += len(rows)
            if time.perf_counter() - t > seconds:
                break
        dt = time.perf_counter() - t
    finally:
        await conn.close(timeout=10)
    return n / dt, n


async def bench_pool(dsn: str, evs: list[CallEvent], seconds: float) -> tuple[float, int]:
    """10 connections, one autocommitted INSERT per event, 10 in flight at a time."""
    pool = await asyncpg.create_pool(dsn, min_size=POOL_SIZE, max_size=POOL_SIZE, timeout=10)
    assert pool is not None
    it = iter(evs)
    done = 0
    t = time.perf_counter()

    async def worker() -> None:
        nonlocal done
        async with pool.acquire(timeout=10) as conn:
            for e in it:
                await conn.execute(INSERT, *to_record(e), timeout=10)
                done += 1
                if done % 100 == 0 and time.perf_counter() - t > seconds:
                    return

    try:
        await asyncio.gather(*(worker() for _ in range(POOL_SIZE)))
        dt = time.perf_counter() - t
    finally:
        await pool.close()
    return done / dt, done


async def bench_serial(dsn: str, evs: list[CallEvent], seconds: float) -> tuple[float, int]:
    """One connection, one autocommitted INSERT per event (one WAL flush each)."""
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        stmt = await conn.prepare(INSERT)
        t = time.perf_counter()
        n = 0
        for e in evs:
            await stmt.fetch(*to_record(e), timeout=10)
            n += 1
            if n % 50 == 0 and time.perf_counter() - t > seconds:
                break
        dt = time.perf_counter() - t
    finally:
        await conn.close(timeout=10)
    return n / dt, n


def _backend_cpu(db: str) -> dict[int, float]:
    """CPU seconds so far of each local backend process serving database ``db`` (from /proc)."""
    out: dict[int, float] = {}
    tick = os.sysconf("SC_CLK_TCK")
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/cmdline", "rb") as f:
                cmd = f.read()
            if not cmd.startswith(b"postgres: ") or f" {db} ".encode() not in cmd:
                continue
            with open(f"/proc/{entry.name}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[int(entry.name)] = (int(fields[11]) + int(fields[12])) / tick
    return out


async def measured(fn: Bench, db: str, dsn: str, evs: list[CallEvent], seconds: float) -> tuple[float, int, float]:
    """Run one contender: (events/s, events, CPU microseconds per event of this process + its backends)."""
    seen: dict[int, float] = {}
    done = asyncio.Event()

    async def watch() -> None:
        while not done.is_set():
            for pid, cpu in _backend_cpu(db).items():
                seen[pid] = max(cpu, seen.get(pid, 0.0))
            try:
                await asyncio.wait_for(done.wait(), 0.1)
            except TimeoutError:
                pass

    watcher = asyncio.create_task(watch())
    cpu0 = time.process_time()
    try:
        eps, count = await fn(dsn, evs, seconds)
    finally:
        cpu = time.process_time() - cpu0
        done.set()
        await watcher
    return eps, count, (cpu + sum(seen.values())) / count * 1e6


Bench = Callable[[str, list[CallEvent], float], Awaitable[tuple[float, int]]]
CONTENDERS: dict[str, Bench] = {
    "writer": bench_writer, "executemany": bench_executemany, "pool10": bench_pool, "serial": bench_serial,
}


def cpu_model() -> str:
    text = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    return next((line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("model name")),
                platform.processor())


async def scratch_db(admin: asyncpg.Connection, base_dsn: str) -> tuple[str, str]:
    name = f"sbbench_{uuid.uuid4().hex[:8]}"
    await admin.execute(f'CREATE DATABASE "{name}"', timeout=60)
    dsn = f"{base_dsn.rsplit('/', 1)[0]}/{name}"
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        await apply_migrations(conn)
    finally:
        await conn.close(timeout=10)
    return name, dsn


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="about a minute")
    ap.add_argument("--dsn", default=os.environ.get("SWITCHBOARD_DSN", "postgresql://postgres@127.0.0.1:5432/postgres"))
    ap.add_argument("--events", type=int, default=0, help="events per writer run (default 1,000,000; quick 200,000)")
    ap.add_argument("--rounds", type=int, default=0, help="interleaved rounds (default 2; quick 1)")
    args = ap.parse_args()
    n = args.events or (200_000 if args.quick else 1_000_000)
    rounds = args.rounds or (1 if args.quick else 2)
    budget = {"writer": 0.0, "executemany": 8.0 if args.quick else 15.0,
              "pool10": 6.0 if args.quick else 10.0, "serial": 4.0 if args.quick else 6.0}
    admin = await asyncpg.connect(args.dsn, timeout=10)
    settings = {k: await admin.fetchval(f"SHOW {k}") for k in
                ("server_version", "fsync", "synchronous_commit", "full_page_writes", "shared_buffers",
                 "wal_level", "max_wal_size")}
    print(f"PostgreSQL {settings['server_version']}: " + ", ".join(f"{k}={v}" for k, v in settings.items()
                                                                  if k != "server_version"), flush=True)
    print(f"{n} events interleaved over {CONCURRENT_CALLS} concurrent calls; {rounds} round(s); "
          f"load average {os.getloadavg()[0]:.2f} at start", flush=True)
    best: dict[str, float] = {}
    counts: dict[str, int] = {}
    cpu_us: dict[str, float] = {}
    try:
        for r in range(rounds):
            for name, fn in CONTENDERS.items():
                db, dsn = await scratch_db(admin, args.dsn)
                try:
                    evs = events(f"{name[0].upper()}{r}-", n if name in ("writer", "executemany") else 200_000)
                    eps, count, us = await measured(fn, db, dsn, evs, budget[name])
                finally:
                    await admin.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)', timeout=60)
                print(f"  round {r + 1} {name:12s} {count:>9,} events  {eps:>10,.0f} events/s  "
                      f"{us:6.1f} us CPU/event  (load {os.getloadavg()[0]:.1f})", flush=True)
                if eps > best.get(name, 0.0):
                    best[name], counts[name] = eps, count
                cpu_us[name] = min(us, cpu_us.get(name, math.inf))
    finally:
        await admin.close(timeout=10)
    baselines = {k: v for k, v in best.items() if k != "writer"}
    best_base = max(baselines, key=lambda k: baselines[k])
    writer_eps = best["writer"]
    print(json.dumps({
        "writer_eps": round(writer_eps), "executemany_eps": round(best["executemany"]),
        "pool10_eps": round(best["pool10"]), "insert_eps": round(best["serial"]),
        "best_baseline": best_base, "ratio": round(writer_eps / baselines[best_base], 2),
        "ratio_serial": round(writer_eps / best["serial"], 1),
        "writer_cpu_us": round(cpu_us["writer"], 1), "executemany_cpu_us": round(cpu_us["executemany"], 1),
        "pool10_cpu_us": round(cpu_us["pool10"], 1), "serial_cpu_us": round(cpu_us["serial"], 1),
        "events_writer": counts["writer"], "concurrent_calls": CONCURRENT_CALLS, "rounds": rounds,
        "batch_size": DatabaseSettings().batch_size, "flush_interval": DatabaseSettings().flush_interval,
        "fsync": settings["fsync"], "synchronous_commit": settings["synchronous_commit"],
        "full_page_writes": settings["full_page_writes"], "shared_buffers": settings["shared_buffers"],
        "pg": settings["server_version"],
        "target_eps": 50_000, "meets_target": writer_eps >= 50_000,
        "nproc": os.cpu_count(), "cpu": cpu_model(), "load_avg_1m": round(os.getloadavg()[0], 2),
        "quick": args.quick,
    }))


if __name__ == "__main__":
    asyncio.run(main())
