"""Happy paths and the security-sensitive ones: sessions, recordings, reports, spy, flows."""

from __future__ import annotations

import os
from pathlib import Path

from api_fakes import Client, Tokens, World, bearer

from switchboard.api import auth
from switchboard.api.app import SETTINGS


async def test_agent_day(client: Client, tokens: Tokens, world: World) -> None:
    h = bearer(tokens.a1)
    assert (await (await client.post("/api/agents/a1/login", json={}, headers=h)).json())["state"] == "ready"
    resp = await client.post("/api/agents/a1/pause", json={"reason": "lunch"}, headers=h)
    assert (await resp.json())["pause_reason"] == "lunch"
    assert (await (await client.post("/api/agents/a1/ready", json={}, headers=h)).json())["state"] == "ready"
    assert (await client.get("/api/agents/a1/call", headers=h)).status == 204
    # a caller reaches the line: the ACD offers it to a1 (Originate to a1's phone)
    call_id = await world.caller_waits(caller="02438123456")
    leg = await world.ringing("a1")
    originate = next(a for a in world.asterisk.actions if a["Action"] == "Originate")
    assert (originate["Channel"], originate["ChannelId"]) == ("PJSIP/a1", leg)
    pop = await (await client.get("/api/agents/a1/call", headers=h)).json()
    assert (pop["call_id"], pop["state"], pop["caller"]) == (call_id, "offered", "02438123456")
    assert pop["si_code"] == "0123456789" and pop["province"] == "ha-noi"
    world.asterisk.agent_answers(leg)
    await world.settle()
    assert (await (await client.get("/api/agents/a1", headers=h)).json())["state"] == "talking"
    world.asterisk.agent_hangs_up(leg)
    await world.settle()
    assert (await (await client.get("/api/agents/a1", headers=h)).json())["state"] == "wrap_up"
    resp = await client.post("/api/agents/a1/wrap-up", json={"disposition": "resolved"}, headers=h)
    assert resp.status == 200 and (await resp.json())["state"] == "ready"
    (ended,) = world.of("agent.wrap_up_ended")
    assert (ended.call_id, ended.data["agent_id"], ended.data["disposition"]) == (call_id, "a1", "resolved")
    resp = await client.post("/api/agents/a1/wrap-up", json={"disposition": "resolved"}, headers=h)
    assert resp.status == 409                                    # not in wrap-up any more
    figures = await (await client.get("/api/agents/a1/figures?day=2026-03-02", headers=h)).json()
    assert figures["answered"] == 7 and figures["day"] == "2026-03-02"


async def test_agent_state_rules_are_the_services(client: Client, tokens: Tokens, world: World) -> None:
    """ready from logged_out logs in; a logged-out agent cannot log out; force-pause logs in."""
    h, sup = bearer(tokens.a1), bearer(tokens.supervisor)
    resp = await client.post("/api/agents/a1/logout", json={}, headers=h)
    assert resp.status == 409 and (await resp.json())["error_id"] == "conflict"
    assert (await (await client.post("/api/agents/a1/ready", json={}, headers=h)).json())["state"] == "ready"
    assert (await client.post("/api/agents/a1/login", json={}, headers=h)).status == 409   # already in
    resp = await client.post("/api/agents/a2/force-pause", json={"reason": "training"}, headers=sup)
    assert resp.status == 200 and (await resp.json())["state"] == "paused"
    assert world.acd.snapshot("a2").pause_reason == "training"
    assert (await client.post("/api/agents/a2/pause", json={"reason": "escalated"}, headers=bearer(tokens.a2))
            ).status == 400    # not a pause reason of the service


async def test_web_session_login_cookie_csrf_and_logout(client: Client, tokens: Tokens, world: World) -> None:
    resp = await client.post("/api/session", json={"agent_id": "a1", "token": tokens.a1})
    assert resp.status == 201
    body = await resp.json()
    assert body["agent_id"] == "a1" and body["token"] != tokens.a1
    cookie = resp.cookies[auth.SESSION_COOKIE]
    assert cookie["httponly"] and cookie["samesite"] == "Strict"
    # the cookie authenticates reads ...
    assert (await client.get("/api/session")).status == 200
    # ... but writes need the CSRF header
    assert (await client.post("/api/agents/a1/login", json={})).status == 403
    resp = await client.post("/api/agents/a1/login", json={}, headers={auth.CSRF_HEADER: "1"})
    assert resp.status == 200
    # the session token is stored hashed, as kind=session with an expiry
    sessions = [r for r in world.tokens.rows.values() if r.kind == "session"]
    assert len(sessions) == 1 and sessions[0].expires_at is not None
    assert (await client.delete("/api/session", headers={auth.CSRF_HEADER: "1"})).status == 204
    assert (await client.get("/api/session", headers=bearer(body["token"]))).status == 401


async def test_login_refuses_wrong_agent_and_rate_limits(client: Client, tokens: Tokens) -> None:
    resp = await client.post("/api/session", json={"agent_id": "a2", "token": tokens.a1})
    assert resp.status == 401 and (await resp.json())["error_id"] == "invalid-credentials"
    statuses = []
    for _ in range(6):
        r = await client.post("/api/session", json={"agent_id": "a9", "token": "sb_0123456789ab." + "C" * 43})
        statuses.append(r.status)
    # five failures for that (token id, address), then refused before the token is even checked
    assert statuses[:5] == [401] * 5 and statuses[5] == 429
    assert int(r.headers["Retry-After"]) > 0
    # others' failures from the same address never block a valid credential
    resp = await client.post("/api/session", json={"agent_id": "a1", "token": tokens.a1})
    assert resp.status == 201


async def test_recording_download_and_no_path_tricks(client: Client, tokens: Tokens, world: World,
                                                     tmp_path: Path) -> None:
    base = Path(client.app[SETTINGS].paths.recordings_dir)
    (base / "2026").mkdir()
    (base / "2026" / "c1.wav").write_bytes(b"RIFF....WAVE")
    secret = tmp_path / "secret.wav"
    secret.write_bytes(b"top secret")
    os.symlink(secret, base / "link.wav")
    world.recordings.paths.update({
        "c1": Path("2026/c1.wav"), "c2": Path("../secret.wav"), "c3": secret, "c4": Path("link.wav"),
        "c5": Path("2026/missing.wav"),
    })
    h = bearer(tokens.supervisor)
    resp = await client.get("/api/calls/c1/recording", headers=h)
    assert resp.status == 200 and await resp.read() == b"RIFF....WAVE"
    assert resp.headers["Content-Type"] == "audio/wav"
    assert 'filename="c1.wav"' in resp.headers["Content-Disposition"]
    for call_id in ("c2", "c3", "c4"):
        resp = await client.get(f"/api/calls/{call_id}/recording", headers=h)
        assert resp.status == 403, call_id
        assert b"secret" not in await resp.read()
    assert (await client.get("/api/calls/c5/recording", headers=h)).status == 404
    assert (await client.get("/api/calls/c6/recording", headers=h)).status == 404
    assert (await client.get("/api/calls/c1/recording", headers=bearer(tokens.a1))).status == 403


async def test_report_json_and_csv(client: Client, tokens: Tokens) -> None:
    h = bearer(tokens.supervisor)
    assert (await (await client.get("/api/reports", headers=h)).json()) == {
        "reports": ["daily-summary"], "targets": {"service_level": 0.8, "service_level_s": 20.0, "satisfaction": 0.9}}
    body = await (await client.get("/api/reports/daily-summary?from=2026-03-01", headers=h)).json()
    assert body["columns"] == ["day", "answered", "note"] and body["rows"][0][:2] == ["2026-03-01", 12]
    resp = await client.get("/api/reports/daily-summary?from=2026-03-01&format=csv", headers=h)
    assert resp.headers["Content-Type"].startswith("text/csv")
    assert (await resp.text()).splitlines() == ["day,answered,note", '2026-03-01,12,"Hà Nội, ""quoted"""']
    assert (await client.get("/api/reports/nope", headers=h)).status == 404


async def test_supervisor_actions(client: Client, tokens: Tokens, world: World) -> None:
    h = bearer(tokens.supervisor)
    resp = await client.post("/api/agents/a1/spy", json={"mode": "whisper"}, headers=bearer(tokens.phone_supervisor))
    assert resp.status == 409 and (await resp.json())["error_id"] == "agent-not-on-call"
    await client.post("/api/agents/a1/ready", json={}, headers=bearer(tokens.a1))
    await world.caller_waits()
    leg = await world.ringing("a1")
    world.asterisk.agent_answers(leg)
    await world.settle()

    def spied() -> list[tuple[str, str, str]]:
        return [(a["Channel"], a["Data"], a["Application"]) for a in world.asterisk.actions
                if a["Action"] == "Originate" and a.get("Application") == "ChanSpy"]

    resp = await client.post("/api/agents/a1/spy", json={"mode": "whisper"}, headers=bearer(tokens.phone_supervisor))
    assert resp.status == 201 and spied() == [("PJSIP/sup1", f"{leg},qwEu", "ChanSpy")]   # the token's phone
    assert (await resp.json())["supervisor_endpoint"] == "sup1"
    resp = await client.post("/api/agents/a1/spy", json={"mode": "listen"}, headers=h)   # a token without a phone
    assert resp.status == 409 and (await resp.json())["error_id"] == "supervisor-no-endpoint"
    for body in ({"mode": "whisper", "endpoint": "PJSIP/sup1"}, {"mode": "listen", "endpoint": "Local/1@x"},
                 {"mode": "barge", "channel": "PJSIP/0912345678@trunk"}, {"mode": "record"}, {}):
        resp = await client.post("/api/agents/a1/spy", json=body, headers=bearer(tokens.phone_supervisor))
        assert resp.status == 400 and (await resp.json())["error_id"] == "invalid-request", body
    resp = await client.post("/api/agents/a1/spy", json={"mode": "listen"}, headers=bearer(tokens.a1))
    assert resp.status == 403
    # a web session opened with the phone token rings the same phone
    login = await client.post("/api/session", json={"token": tokens.phone_supervisor})
    session = (await login.json())["token"]
    resp = await client.post("/api/agents/a1/spy", json={"mode": "barge"}, headers=bearer(session))
    assert resp.status == 201 and spied()[-1] == ("PJSIP/sup1", f"{leg},qBEu", "ChanSpy")
    assert len(spied()) == 2
    # force-pause of an agent on a call: the pause waits for the call's end, as in the service
    resp = await client.post("/api/agents/a1/force-pause", json={"reason": "training"}, headers=h)
    assert resp.status == 200 and (await resp.json())["pause_reason"] == "training"
    resp = await client.post("/api/agents/a2/force-logout", json={}, headers=h)
    assert resp.status == 409                                   # a2 was never logged in
    await client.post("/api/agents/a2/ready", json={}, headers=bearer(tokens.a2))
    resp = await client.post("/api/agents/a2/force-logout", json={}, headers=h)
    assert (await resp.json())["state"] == "logged_out" and world.acd.states["a2"].status.value == "logged_out"


async def test_flows_and_readiness(client: Client, tokens: Tokens, world: World) -> None:
    h = bearer(tokens.admin)
    resp = await client.post("/api/flows/validate", json={"name": "hotline", "source": "nodes: []"}, headers=h)
    assert resp.status == 422 and (await resp.json())["problems"][0]["message"] == "no start node"
    resp = await client.post("/api/flows/reload", json={}, headers=h)
    assert resp.status == 200 and world.flows.reloads == 1
    assert (await client.get("/readyz")).status == 200
    world.health.state["ami"] = False
    resp = await client.get("/readyz")
    assert resp.status == 503 and (await resp.json())["checks"]["ami"] is False


async def test_pages_and_static_files(client: Client) -> None:
    resp = await client.get("/", allow_redirects=False)
    assert resp.status == 302 and resp.headers["Location"] == "/agent"
    resp = await client.get("/agent")
    assert "agent.js" in await resp.text() and "default-src 'self'" in resp.headers["Content-Security-Policy"]
    assert (await client.get("/static/common.js")).headers["Content-Type"].startswith("text/javascript")
    assert (await client.get("/static/agent.html")).status in (400, 404)
    assert (await client.get("/static/..%2Fapp.py")).status in (400, 404)
    assert (await client.get("/static/nope.js")).status == 404
