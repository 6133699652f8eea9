"""A Q&A session's conference recording over the API: like a call's (only from the recordings
folder, never through a path or symlink leading out), for a supervisor or the session's
moderator; another agent 403; no recording or a purged file 404. The real sessions service
(in memory: no database or Asterisk needed to read a session it holds)."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

from api_fakes import Client, Tokens, World, bearer

from switchboard.api.app import SETTINGS
from switchboard.config import SessionSettings
from switchboard.sessions.model import Session
from switchboard.sessions.service import SessionService
from switchboard.store.sessions import SessionRow

T0 = datetime(2026, 3, 3, 2, 0, tzinfo=UTC)


def _held(svc: SessionService, sid: str, moderator: str, recording: str | None) -> None:
    s = Session(session_id=sid, title="t", starts=T0, ends=T0 + timedelta(hours=1), moderator=moderator)
    svc._adopt(SessionRow(s, "test", T0 + timedelta(minutes=50), "test", recording))


async def test_session_recording_for_the_moderator_and_supervisors_only(client: Client, tokens: Tokens, world: World,
                                                                        tmp_path: Path) -> None:
    svc = SessionService(pool=None, ami=None, settings=SessionSettings(), clock=lambda: T0 + timedelta(hours=2))
    object.__setattr__(world.services, "sessions", svc)   # the frozen Services the app holds
    base = Path(client.app[SETTINGS].paths.recordings_dir)
    (base / "sessions").mkdir()
    (base / "sessions" / "s1-1772503200.wav").write_bytes(b"RIFF....WAVE")
    secret = tmp_path / "secret.wav"
    secret.write_bytes(b"top secret")
    os.symlink(secret, base / "sessions" / "link.wav")
    _held(svc, "s1", "a1", "sessions/s1-1772503200.wav")
    _held(svc, "s2", "a1", "sessions/link.wav")
    _held(svc, "s3", "a1", "../secret.wav")
    _held(svc, "s4", "a1", None)
    _held(svc, "s5", "a1", "sessions/purged.wav")

    for token in (tokens.supervisor, tokens.a1):
        resp = await client.get("/api/qa-sessions/s1/recording", headers=bearer(token))
        assert resp.status == 200 and await resp.read() == b"RIFF....WAVE"
        assert resp.headers["Content-Type"] == "audio/wav"
        assert 'filename="session-s1.wav"' in resp.headers["Content-Disposition"]
    resp = await client.get("/api/qa-sessions/s1/recording", headers=bearer(tokens.a2))
    assert resp.status == 403 and (await resp.json())["error_id"] == "not-moderator"
    for sid in ("s2", "s3"):
        resp = await client.get(f"/api/qa-sessions/{sid}/recording", headers=bearer(tokens.supervisor))
        assert resp.status == 403 and b"secret" not in await resp.read(), sid
    for sid in ("s4", "s5", "nope"):
        resp = await client.get(f"/api/qa-sessions/{sid}/recording", headers=bearer(tokens.supervisor))
        assert resp.status == 404, sid
    assert (await client.get("/api/qa-sessions/s1/recording")).status == 401
    # no registered participants: no invitations to show
    resp = await client.get("/api/qa-sessions/s1/invitations", headers=bearer(tokens.a1))
    assert resp.status == 404 and (await resp.json())["error_id"] == "no-invitations"
