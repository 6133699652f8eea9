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

The writers run in a worker process each (this script with ``--worker``), whose own CPU time
over the timed part is the client's share. ``--ab REF`` adds the writer of git revision REF
(``git archive`` of its ``switchboard/`` package, its own migrations) as contender ``writer_ref``,
in the same rounds, the two writers' order alternating from round to round: a before/after at
the same machine moment.

usage: python bench/store_write.py [--quick] [--dsn DSN] [--events N] [--rounds R] [--ab REF] [--writers-only]
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
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg

# A writer worker of an A/B run imports the switchboard package of another tree (--ab REF).
sys.path.insert(0, os.environ.get("SB_BENCH_TREE") or str(Path(__file__).resolve().parent.parent))

from switchboard.config import DatabaseSettings
from switchboard.events import CallEvent
from switchboard.store.migrate import apply_migrations
from switchboard.store.writer import to_record

REPO = Path(__file__).resolve().parent.parent
SCRIPT = Path(__file__).resolve()
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
    from switchboard.store.writer import EventWriter  # the worker's tree
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


async def worker(dsn: str, n: int, prefix: str, migrate_only: bool) -> None:
    """``--worker``: migrate (untimed, then exit), or run the writer on ``n`` events and print
    {eps, count, cpu_s} (cpu_s: this process's CPU time over the timed part)."""
    if migrate_only:
        conn = await asyncpg.connect(dsn, timeout=10)
        try:
            await apply_migrations(conn)
        finally:
            await conn.close(timeout=10)
        return
    evs = events(prefix, n)
    cpu0 = time.process_time()
    eps, count = await bench_writer(dsn, evs, 0.0)
    print(json.dumps({"eps": eps, "count": count, "cpu_s": time.process_time() - cpu0}), flush=True)


def writer_in(tree: Path, n: int, prefix: str) -> Bench:
    """A contender: the writer of ``tree`` in a worker process (its migrations applied first, untimed)."""
    async def run(dsn: str, evs: list[CallEvent], seconds: float) -> tuple[float, int, float]:
        del evs, seconds
        env = {**os.environ, "SB_BENCH_TREE": str(tree)}
        base = [sys.executable, str(SCRIPT), "--worker", "--dsn", dsn]
        mig = await asyncio.create_subprocess_exec(*base, "--migrate-only", env=env)
        if await mig.wait() != 0:
            raise RuntimeError(f"migrations of {tree} failed")
        proc = await asyncio.create_subprocess_exec(*base, "--events", str(n), "--prefix", prefix,
                                                    env=env, stdout=asyncio.subprocess.PIPE)
        out, _ = await proc.communicate()
        if proc.returncode != 0:
            raise RuntimeError(f"writer worker of {tree} failed ({proc.returncode})")
        res = json.loads(out.decode().strip().splitlines()[-1])
        return float(res["eps"]), int(res["count"]), float(res["cpu_s"])
    return run


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


async def measured(fn: Bench, db: str, dsn: str, evs: list[CallEvent],
                   seconds: float) -> tuple[float, int, float, float]:
    """Run one contender: (events/s, events, CPU microseconds per event of the client + its backends,
    of which the backends')."""
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
        res = await fn(dsn, evs, seconds)
    finally:
        cpu = time.process_time() - cpu0
        done.set()
        await watcher
    eps, count = res[0], res[1]
    if len(res) == 3:  # a worker process: its own CPU time over the timed part
        cpu = res[2]  # type: ignore[misc]
    backend = sum(seen.values())
    return eps, count, (cpu + backend) / count * 1e6, backend / count * 1e6


Bench = Callable[[str, list[CallEvent], float], Awaitable[tuple[float, int] | tuple[float, int, float]]]
BASELINES: dict[str, Bench] = {"executemany": bench_executemany, "pool10": bench_pool, "serial": bench_serial}


def tree_of(ref: str, into: Path) -> Path:
    """The ``switchboard/`` package of git revision ``ref``, extracted under ``into``."""
    archive = subprocess.run(["git", "-C", str(REPO), "archive", ref, "switchboard"], check=True,
                             capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def cpu_model() -> str:
    text = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    return next((line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("model name")),
                platform.processor())


async def scratch_db(admin: asyncpg.Connection, base_dsn: str, *, migrate: bool = True) -> tuple[str, str]:
    name = f"sbbench_{uuid.uuid4().hex[:8]}"
    await admin.execute(f'CREATE DATABASE "{name}"', timeout=60)
    dsn = f"{base_dsn.rsplit('/', 1)[0]}/{name}"
    if not migrate:  # a writer worker applies its own tree's migrations
        return name, dsn
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
    ap.add_argument("--ab", metavar="REF", help="also run the writer of git revision REF (contender writer_ref)")
    ap.add_argument("--writers-only", action="store_true", help="with --ab: leave the baselines out")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--migrate-only", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--prefix", default="W", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        await worker(args.dsn, args.events, args.prefix, args.migrate_only)
        return
    n = args.events or (200_000 if args.quick else 1_000_000)
    rounds = args.rounds or (1 if args.quick else 2)
    budget = {"executemany": 8.0 if args.quick else 15.0,
              "pool10": 6.0 if args.quick else 10.0, "serial": 4.0 if args.quick else 6.0}
    with tempfile.TemporaryDirectory() as ref_dir:
        writers = {"writer": REPO}
        if args.ab:
            writers["writer_ref"] = tree_of(args.ab, Path(ref_dir))
        await run_rounds(args, n, rounds, budget, writers)


async def run_rounds(args: argparse.Namespace, n: int, rounds: int, budget: dict[str, float],
                     writers: dict[str, Path]) -> None:
    admin = await asyncpg.connect(args.dsn, timeout=10)
    settings = {k: await admin.fetchval(f"SHOW {k}") for k in
                ("server_version", "fsync", "synchronous_commit", "full_page_writes", "shared_buffers",
                 "wal_level", "max_wal_size", "jit", "autovacuum")}
    print(f"PostgreSQL {settings['server_version']}: " + ", ".join(f"{k}={v}" for k, v in settings.items()
                                                                  if k != "server_version"), flush=True)
    load_start = os.getloadavg()
    print(f"{n} events interleaved over {CONCURRENT_CALLS} concurrent calls; {rounds} round(s); "
          f"load average {load_start[0]:.2f} at start" + (f"; A/B against {args.ab}" if args.ab else ""), flush=True)
    best: dict[str, float] = {}
    counts: dict[str, int] = {}
    cpu_us: dict[str, float] = {}
    per_round: list[dict[str, float]] = []
    try:
        for r in range(rounds):
            names = list(writers) if r % 2 == 0 else list(writers)[::-1]  # the writers' order alternates
            if not args.writers_only:
                names += list(BASELINES)
            for name in names:
                db, _ = await scratch_db(admin, args.dsn, migrate=name not in writers)
                dsn = f"{args.dsn.rsplit('/', 1)[0]}/{db}"
                prefix = f"{name[0].upper()}{r}-"
                try:
                    if name in writers:
                        eps, count, us, be = await measured(writer_in(writers[name], n, prefix), db, dsn, [], 0.0)
                    else:
                        eps, count, us, be = await measured(BASELINES[name], db, dsn, events(prefix, 200_000 if name != "executemany" else n),
                                                        budget[name])
                finally:
                    await admin.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)', timeout=60)
                load = os.getloadavg()[0]
                print(f"  round {r + 1} {name:12s} {count:>9,} events  {eps:>10,.0f} events/s  "
                      f"{us:6.1f} us CPU/event ({us - be:.1f} client + {be:.1f} backends)  (load {load:.1f})", flush=True)
                per_round.append({"round": r + 1, "contender": name, "eps": round(eps), "cpu_us": round(us, 1),
                                  "backend_cpu_us": round(be, 1), "load_1m": round(load, 2)})
                if eps > best.get(name, 0.0):
                    best[name], counts[name] = eps, count
                cpu_us[name] = min(us, cpu_us.get(name, math.inf))
    finally:
        await admin.close(timeout=10)
    writer_eps = best["writer"]
    out: dict[str, object] = {"writer_eps": round(writer_eps), "writer_cpu_us": round(cpu_us["writer"], 1)}
    if "writer_ref" in best:
        out |= {"ab_ref": args.ab, "writer_ref_eps": round(best["writer_ref"]),
                "writer_ref_cpu_us": round(cpu_us["writer_ref"], 1)}
    baselines = {k: v for k, v in best.items() if k in BASELINES}
    if baselines:
        best_base = max(baselines, key=lambda k: baselines[k])
        out |= {"executemany_eps": round(best["executemany"]), "pool10_eps": round(best["pool10"]),
                "insert_eps": round(best["serial"]), "best_baseline": best_base,
                "ratio": round(writer_eps / baselines[best_base], 2), "ratio_serial": round(writer_eps / best["serial"], 1),
                "executemany_cpu_us": round(cpu_us["executemany"], 1), "pool10_cpu_us": round(cpu_us["pool10"], 1),
                "serial_cpu_us": round(cpu_us["serial"], 1)}
    print(json.dumps(out | {
        "events_writer": counts["writer"], "concurrent_calls": CONCURRENT_CALLS, "rounds": rounds,
        "batch_size": DatabaseSettings().batch_size, "flush_interval": DatabaseSettings().flush_interval,
        "fsync": settings["fsync"], "synchronous_commit": settings["synchronous_commit"],
        "full_page_writes": settings["full_page_writes"], "shared_buffers": settings["shared_buffers"],
        "jit": settings["jit"], "autovacuum": settings["autovacuum"], "pg": settings["server_version"],
        "target_eps": 50_000, "meets_target": writer_eps >= 50_000,
        "nproc": os.cpu_count(), "cpu": cpu_model(), "load_avg_at_start": [round(x, 2) for x in load_start],
        "load_avg_1m": round(os.getloadavg()[0], 2), "quick": args.quick, "per_round": per_round,
    }))


if __name__ == "__main__":
    asyncio.run(main())
