"""Retention: old call records and recordings go, recent ones and prompts stay."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest

from switchboard.cli import main as cli_main
from switchboard.store.migrate import apply_migrations
from switchboard.store.retention import purge_recordings, purge_records


async def _fill(conn: asyncpg.Connection, now: datetime) -> None:
    for cid, age_days in (("old1", 800), ("old2", 731), ("new1", 729), ("new2", 1)):
        t = now - timedelta(days=age_days)
        await conn.execute("INSERT INTO calls (call_id, started_at, ended_at) VALUES ($1, $2, $2)", cid, t)
        for seq in (1, 2, 3):
            await conn.execute("INSERT INTO call_events (call_id, seq, ts, kind) VALUES ($1, $2, $3, 'x')",
                               cid, seq, t)
        await conn.execute("INSERT INTO surveys (call_id, score, answered_at) VALUES ($1, 4, $2)", cid, t)
    await conn.execute("INSERT INTO agent_state_log (agent_id, at, to_state) VALUES ('a', $1, 'idle'), "
                       "('a', $2, 'idle')", now - timedelta(days=900), now)
    await conn.execute("INSERT INTO callbacks (callback_id, call_id, requested_at) VALUES "
                       "('cbold', 'old1', $1), ('cbnew', 'new2', $2)", now - timedelta(days=800), now)


async def test_purge_records_dry_run_then_real(db: asyncpg.Connection) -> None:
    now = datetime.now(UTC)
    await _fill(db, now)
    cutoff = now - timedelta(days=730)
    dry = await purge_records(db, older_than=cutoff, dry_run=True)
    assert (dry.calls, dry.call_events, dry.surveys, dry.callbacks, dry.agent_state_log) == (2, 6, 2, 1, 1)
    assert await db.fetchval("SELECT count(*) FROM calls", timeout=10) == 4  # nothing removed
    real = await purge_records(db, older_than=cutoff)
    assert real == dry
    left = await db.fetch("SELECT call_id FROM calls ORDER BY 1", timeout=10)
    assert [r[0] for r in left] == ["new1", "new2"]
    assert await db.fetchval("SELECT count(*) FROM call_events", timeout=10) == 6
    assert (await purge_records(db, older_than=cutoff)).calls == 0


def test_purge_recordings_keeps_prompts_and_recent(tmp_path: Path) -> None:
    rec = tmp_path / "recordings"
    (rec / "2024" / "01").mkdir(parents=True)
    (rec / "prompts").mkdir()
    old = time.time() - 200 * 86400
    files = {"2024/01/a.wav": old, "2024/01/b.wav": old, "new.wav": time.time(), "prompts/welcome.wav": old}
    for name, mtime in files.items():
        p = rec / name
        p.write_bytes(b"x" * 100)
        os.utime(p, (mtime, mtime))
    dry = purge_recordings(rec, older_than_days=180, keep=(rec / "prompts",), dry_run=True)
    assert (dry.files, dry.bytes, dry.errors) == (2, 200, 0)
    assert (rec / "2024/01/a.wav").exists()
    done = purge_recordings(rec, older_than_days=180, keep=(rec / "prompts",))
    assert done.files == 2
    assert sorted(str(p.relative_to(rec)) for p in rec.rglob("*.wav")) == ["new.wav", "prompts/welcome.wav"]


def test_purge_command_reports_counts(fresh_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    import asyncio
    import json

    async def prep() -> None:
        conn = await asyncpg.connect(fresh_db, timeout=10)
        try:
            await apply_migrations(conn)
            await _fill(conn, datetime.now(UTC))
        finally:
            await conn.close(timeout=5)

    asyncio.run(prep())
    monkeypatch.setenv("SWITCHBOARD_DSN", fresh_db)
    monkeypatch.setenv("SWITCHBOARD_PATHS_RECORDINGS_DIR", str(tmp_path))
    monkeypatch.setenv("SWITCHBOARD_PATHS_PROMPTS_DIR", str(tmp_path / "prompts"))
    assert cli_main(["purge", "--dry-run"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["dry_run"] is True and out["records"]["calls"] == 2
    assert cli_main(["purge"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["records"]["calls"] == 2 and out["recordings"]["files"] == 0
    assert cli_main(["purge"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["records"]["calls"] == 0


async def test_sessions_follow_the_call_records_and_forget_a_purged_recording(db: asyncpg.Connection,
                                                                             tmp_path: Path) -> None:
    """A Q&A session over before the cutoff goes with its attendance rows (callers' numbers),
    like a call; a recent one stays. Its recording is a file under recordings/sessions/: the
    recordings' walk removes it by age like a call's, and the session then forgets it."""
    from switchboard.sessions.model import Session
    from switchboard.store import sessions as ss
    from switchboard.store.retention import forget_missing_session_recordings

    now = datetime.now(UTC)
    for sid, age_days in (("old-session", 800), ("new-session", 10)):
        t = now - timedelta(days=age_days)
        s = Session(session_id=sid, title="t", starts=t, ends=t + timedelta(hours=1), moderator="agent1001")
        assert await ss.insert_session(db, s, source="test")
        await ss.end_session(db, sid, at=t + timedelta(minutes=50), by="test")
        await ss.join(db, session_id=sid, call_id=f"{sid}-c1", caller="0912000001", role="caller", channel="x",
                      joined_at=t + timedelta(minutes=1), via="menu")
        await ss.set_recording(db, sid, f"sessions/{sid}-{int(t.timestamp())}.wav")
    cutoff = now - timedelta(days=730)
    dry = await purge_records(db, older_than=cutoff, dry_run=True)
    assert (dry.qa_sessions, dry.qa_attendance) == (1, 1)
    assert await db.fetchval("SELECT count(*) FROM qa_attendance", timeout=10) == 2
    real = await purge_records(db, older_than=cutoff)
    assert real == dry
    assert [r[0] for r in await db.fetch("SELECT session_id FROM qa_sessions", timeout=10)] == ["new-session"]
    assert [r[0] for r in await db.fetch("SELECT call_id FROM qa_attendance", timeout=10)] == ["new-session-c1"]

    # the recording file: removed by the walk once past the recordings' period, then forgotten
    rec = tmp_path / "recordings"
    stored = await db.fetchval("SELECT recording FROM qa_sessions WHERE session_id = 'new-session'", timeout=10)
    f = rec / stored
    f.parent.mkdir(parents=True)
    f.write_bytes(b"x" * 100)
    assert await forget_missing_session_recordings(db, rec) == 0          # the file is there: kept
    old = time.time() - 200 * 86400
    os.utime(f, (old, old))
    assert purge_recordings(rec, older_than_days=180).files == 1
    assert await forget_missing_session_recordings(db, rec, dry_run=True) == 1
    assert await db.fetchval("SELECT recording FROM qa_sessions WHERE session_id = 'new-session'",
                             timeout=10) == stored
    assert await forget_missing_session_recordings(db, rec) == 1
    assert await db.fetchval("SELECT recording FROM qa_sessions WHERE session_id = 'new-session'",
                             timeout=10) is None
