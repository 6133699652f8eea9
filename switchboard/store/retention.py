"""Retention: remove call records and recording files past their keep period.

Q&A sessions (docs/sessions.md) follow the call records' rules: a session over (ended, or past
its end) before the cutoff goes with its attendance rows (callers' numbers); its conference
recording is a file under ``recordings/sessions/``, removed by the recordings' walk like a
call's, and the session then forgets it (``forget_missing_session_recordings``)."""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import asyncpg

log = logging.getLogger("switchboard.store.retention")


@dataclass(frozen=True, slots=True)
class PurgeCounts:
    calls: int
    call_events: int
    surveys: int
    callbacks: int
    agent_state_log: int
    qa_sessions: int = 0
    qa_attendance: int = 0


@dataclass(frozen=True, slots=True)
class RecordingPurge:
    files: int
    bytes: int
    errors: int


# A call is purged when it ended (or, never ended, started) before the cutoff;
# its timeline and survey go with it. Callbacks and agent state rows by their own time.
_PURGE_SQL = """
WITH old AS (
    SELECT call_id FROM calls WHERE COALESCE(ended_at, started_at, updated_at) < $1
),
d_calls AS ({verb} calls WHERE call_id IN (SELECT call_id FROM old) {ret}),
d_events AS ({verb} call_events WHERE call_id IN (SELECT call_id FROM old) OR ts < $1 {ret}),
d_surveys AS ({verb} surveys WHERE call_id IN (SELECT call_id FROM old) OR answered_at < $1 {ret}),
d_callbacks AS ({verb} callbacks WHERE COALESCE(completed_at, requested_at) < $1 {ret}),
d_states AS ({verb} agent_state_log WHERE at < $1 {ret}),
old_sessions AS (
    SELECT session_id FROM qa_sessions WHERE COALESCE(ended_at, ends_at) < $1 AND ends_at < $1
),
d_attendance AS ({verb} qa_attendance WHERE session_id IN (SELECT session_id FROM old_sessions) {ret}),
d_sessions AS ({verb} qa_sessions WHERE session_id IN (SELECT session_id FROM old_sessions) {ret})
SELECT (SELECT count(*) FROM d_calls) AS calls, (SELECT count(*) FROM d_events) AS call_events,
       (SELECT count(*) FROM d_surveys) AS surveys, (SELECT count(*) FROM d_callbacks) AS callbacks,
       (SELECT count(*) FROM d_states) AS agent_state_log, (SELECT count(*) FROM d_sessions) AS qa_sessions,
       (SELECT count(*) FROM d_attendance) AS qa_attendance
"""


async def purge_records(
    conn: asyncpg.Connection, *, older_than: datetime, dry_run: bool = False, timeout: float = 300.0
) -> PurgeCounts:
    """Delete (or with dry_run only count) call records older than ``older_than`` (aware)."""
    if older_than.tzinfo is None:
        raise ValueError("older_than must be timezone-aware")
    if dry_run:
        sql = _PURGE_SQL.format(verb="SELECT 1 FROM", ret="")
    else:
        sql = _PURGE_SQL.format(verb="DELETE FROM", ret="RETURNING 1")
    async with conn.transaction():
        row = await conn.fetchrow(sql, older_than, timeout=timeout)
    assert row is not None
    counts = PurgeCounts(**dict(row))
    log.info("%s call records older than %s: %s", "would purge" if dry_run else "purged",
             older_than.isoformat(), counts)
    return counts


async def forget_missing_session_recordings(conn: asyncpg.Connection, recordings_dir: str | os.PathLike[str], *,
                                            dry_run: bool = False, timeout: float = 60.0) -> int:
    """Sessions whose recording file is gone (purged) forget it (``qa_sessions.recording``
    NULL): the API answers "no recording" rather than a missing file. Returns how many."""
    root = Path(recordings_dir)
    rows = await conn.fetch("SELECT session_id, recording FROM qa_sessions WHERE recording IS NOT NULL",
                            timeout=timeout)
    gone = [r["session_id"] for r in rows if not (root / r["recording"]).is_file()]
    if gone and not dry_run:
        await conn.execute("UPDATE qa_sessions SET recording = NULL WHERE session_id = ANY($1::text[])", gone,
                           timeout=timeout)
    return len(gone)


def purge_recordings(
    recordings_dir: str | os.PathLike[str],
    *,
    older_than_days: float,
    keep: tuple[str | os.PathLike[str], ...] = (),
    dry_run: bool = False,
    now: float | None = None,
) -> RecordingPurge:
    """Remove regular files under ``recordings_dir`` last modified more than N days ago.

    Folders listed in ``keep`` (e.g. the IVR prompts folder) are never touched.
    """
    root = Path(recordings_dir)
    if not root.is_dir():
        return RecordingPurge(0, 0, 0)
    cutoff = (time.time() if now is None else now) - older_than_days * 86400
    kept = {Path(k).resolve() for k in keep}
    files = size = errors = 0
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath).resolve()
        dirnames[:] = [d for d in dirnames if (here / d).resolve() not in kept]
        if here in kept:
            continue
        for name in filenames:
            p = here / name
            try:
                st = p.lstat()
                if not p.is_file() or p.is_symlink() or st.st_mtime >= cutoff:
                    continue
                if not dry_run:
                    p.unlink()
                files += 1
                size += st.st_size
            except OSError as exc:
                errors += 1
                log.warning("cannot remove recording %s: %s", p, exc)
    log.info("%s %d recording file(s), %d bytes older than %s days under %s",
             "would remove" if dry_run else "removed", files, size, older_than_days, root)
    return RecordingPurge(files, size, errors)
