"""Migrations against a real PostgreSQL: from empty, re-run, a failing file rolls back."""

from __future__ import annotations

import shutil
from pathlib import Path

import asyncpg
import pytest

from switchboard.cli import main as cli_main
from switchboard.store.errors import MigrationError
from switchboard.store.migrate import MIGRATIONS_DIR, apply_migrations, current_level, discover
from switchboard.store.seed import DEMO_PARTICIPANTS, seed_demo

TABLES = {"calls", "call_events", "agents", "agent_state_log", "callbacks", "surveys", "participants",
          "schema_migrations"}


async def _tables(conn: asyncpg.Connection) -> set[str]:
    rows = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'", timeout=10)
    return {r["tablename"] for r in rows}


async def test_from_empty_then_rerun_is_noop(fresh_db: str) -> None:
    conn = await asyncpg.connect(fresh_db, timeout=10)
    try:
        assert await current_level(conn) == (0, len(discover()))
        applied = await apply_migrations(conn)
        assert applied == [m.name for m in discover()]
        assert applied[0] == "0001_core.sql"
        assert TABLES <= await _tables(conn)
        assert await current_level(conn) == (len(applied), len(applied))
        before = await conn.fetch("SELECT version, applied_at FROM schema_migrations ORDER BY 1", timeout=10)
        assert await apply_migrations(conn) == []
        after = await conn.fetch("SELECT version, applied_at FROM schema_migrations ORDER BY 1", timeout=10)
        assert before == after
        # idempotency key of the timeline
        await conn.execute("INSERT INTO call_events (call_id, seq, ts, kind) VALUES ('c', 1, now(), 'x')")
        with pytest.raises(asyncpg.UniqueViolationError):
            await conn.execute("INSERT INTO call_events (call_id, seq, ts, kind) VALUES ('c', 1, now(), 'y')")
    finally:
        await conn.close(timeout=5)


async def test_failing_migration_rolls_back_and_names_file(fresh_db: str, tmp_path: Path) -> None:
    for p in MIGRATIONS_DIR.glob("*.sql"):
        shutil.copy(p, tmp_path / p.name)
    (tmp_path / "0098_good.sql").write_text("CREATE TABLE good_one (x int);")
    (tmp_path / "0099_broken.sql").write_text(
        "CREATE TABLE half_done (x int);\nINSERT INTO half_done VALUES (1);\nSELECT no_such_function();\n"
    )
    conn = await asyncpg.connect(fresh_db, timeout=10)
    try:
        with pytest.raises(MigrationError) as info:
            await apply_migrations(conn, directory=tmp_path)
        assert info.value.filename == "0099_broken.sql"
        assert "0099_broken.sql" in str(info.value)
        assert isinstance(info.value.cause, asyncpg.UndefinedFunctionError)
        tables = await _tables(conn)
        assert "half_done" not in tables
        assert "good_one" in tables
        versions = {r[0] for r in await conn.fetch("SELECT version FROM schema_migrations", timeout=10)}
        assert 98 in versions and 99 not in versions
        applied, available = await current_level(conn, directory=tmp_path)
        assert (applied, available) == (available - 1, available)
        # fixing the file and re-running applies just that one
        (tmp_path / "0099_broken.sql").write_text("CREATE TABLE half_done (x int);")
        assert await apply_migrations(conn, directory=tmp_path) == ["0099_broken.sql"]
    finally:
        await conn.close(timeout=5)


def test_duplicate_number_is_refused(tmp_path: Path) -> None:
    (tmp_path / "0001_a.sql").write_text("SELECT 1;")
    (tmp_path / "0001_b.sql").write_text("SELECT 1;")
    with pytest.raises(MigrationError, match=r"0001_b\.sql"):
        discover(tmp_path)


async def test_seed_demo_participants(db: asyncpg.Connection) -> None:
    assert await seed_demo(db) == len(DEMO_PARTICIPANTS) >= 20
    assert await seed_demo(db) == len(DEMO_PARTICIPANTS)  # re-seeding updates, never duplicates
    rows = await db.fetch("SELECT insurance_code, phone FROM participants", timeout=10)
    assert len(rows) == len(DEMO_PARTICIPANTS)
    assert all(len(r["insurance_code"]) == 10 and r["insurance_code"].isdigit() for r in rows)
    with pytest.raises(asyncpg.CheckViolationError):
        await db.execute("INSERT INTO participants (insurance_code, full_name, contribution_status) "
                         "VALUES ('12345', 'x', 'active')")


def test_cli_migrate_and_status(pg_dsn: str, monkeypatch: pytest.MonkeyPatch,
                                capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("SWITCHBOARD_DSN", pg_dsn)
    assert cli_main(["migrate", "--seed-demo"]) == 0
    out = capsys.readouterr().out
    n = len(discover())
    assert f"migrations: {n}/{n} applied" in out
    assert "seeded 20 demo participants" in out
    assert cli_main(["migrate"]) == 0
    assert "schema up to date" in capsys.readouterr().out
    monkeypatch.setenv("SWITCHBOARD_DSN", "postgresql://postgres@127.0.0.1:1/nothing")
    assert cli_main(["migrate", "--status"]) == 1
