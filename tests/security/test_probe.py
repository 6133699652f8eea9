"""A black-box probe of the running service, as a hostile API client would run it.

Real ``switchboard run`` process on the local stack, real HTTP and websockets, real tokens
made by ``switchboard tokens create`` in PostgreSQL. The tests run in file order; the last
ones cut the database and then check that the service still stands and that no answer
of the whole probe was a 500.
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
from collections.abc import AsyncIterator

import aiohttp
import asyncpg
import pytest
from probe_service import TRUSTED_PROXY, UNTRUSTED_PEER, Probe, free_loopback

from switchboard.api.auth import Access
from switchboard.api.live import CLOSE_UNAUTHORIZED
from switchboard.api.routes import ROUTE_TABLE

A1, A2 = "agent1001", "agent1002"
FORGED = "sb_0123456789ab." + "A" * 43
SAMPLE = {"agent_id": A1, "call_id": "sec-missing", "name": "daily", "campaign_id": "sec-missing",
          "session_id": "sec-missing", "participant": "sec-missing", "contact_id": "999999999"}
TIMEOUT = aiohttp.ClientTimeout(total=15)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
async def http(probe: Probe) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(probe.base, timeout=TIMEOUT) as s:
        yield s


async def call(probe: Probe, s: aiohttp.ClientSession, method: str, path: str, **kw: object) -> tuple[int, dict]:
    async with s.request(method, path, **kw) as r:  # type: ignore[arg-type]
        text = await r.text()
        probe.saw(r.status, f"{method} {path}")
        try:
            body = json.loads(text) if text else {}
        except ValueError:
            body = {"_text": text[:200]}
        return r.status, body if isinstance(body, dict) else {"_json": body}


async def raw(probe: Probe, data: bytes, *, source: str | None = None) -> int:
    """Send bytes as they are (no client library to tidy them up); the status of the answer."""
    reader, writer = await asyncio.open_connection("127.0.0.1", probe.port,
                                                   local_addr=(source, 0) if source else None)
    try:
        writer.write(data)
        await writer.drain()
        line = await asyncio.wait_for(reader.readline(), 15)
    finally:
        writer.close()
    m = re.match(rb"HTTP/1\.[01] (\d{3})", line)
    assert m, line
    return probe.saw(int(m.group(1)), f"raw {data[:60]!r}")


async def tokens(probe: Probe) -> dict[str, str]:
    if not probe.tokens:
        await probe.new_token("a1", "agent", A1)
        await probe.new_token("a2", "agent", A2)
        await probe.new_token("sup", "supervisor")
        await probe.new_token("admin", "admin")
    return probe.tokens


async def login(probe: Probe, s: aiohttp.ClientSession, token: str, agent_id: str | None = None,
                **kw: object) -> tuple[int, dict]:
    body = {"token": token} | ({"agent_id": agent_id} if agent_id else {})
    return await call(probe, s, "POST", "/api/session", json=body, **kw)


async def closed_within(ws: aiohttp.ClientWebSocketResponse, limit: float) -> int | None:
    """The close code if the server closes ``ws`` within ``limit`` seconds (other messages skipped)."""
    async with asyncio.timeout(limit):
        while True:
            msg = await ws.receive()
            if msg.type is aiohttp.WSMsgType.CLOSE:
                return int(msg.data)  # the server's code (ws.close_code may turn 1006 if the reply races)
            if msg.type in (aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.CLOSED):
                return ws.close_code


async def hello(ws: aiohttp.ClientWebSocketResponse) -> dict:
    first = await ws.receive_json(timeout=5)
    assert first["type"] == "hello"
    return dict(first)


# ----------------------------------------------------------------- no token, forged tokens


def _path(template: str) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: SAMPLE[m.group(1)], template)


async def test_every_protected_route_refuses_a_request_without_a_token(probe: Probe, http) -> None:
    protected = [r for r in ROUTE_TABLE if r.access is not Access.OPEN and r.path != "/api/ws"]
    assert len(protected) >= 20
    for r in protected:
        status, body = await call(probe, http, r.method, _path(r.path), json={} if r.method == "POST" else None)
        assert status == 401 and body["error_id"] == "unauthorized", (r.method, r.path, status, body)
    # the open ones are only health, metrics, the login, the pages and the API description
    open_paths = {r.path for r in ROUTE_TABLE if r.access is Access.OPEN}
    assert open_paths <= {"/healthz", "/readyz", "/metrics", "/api/openapi.json", "/api/session", "/",
                          "/agent", "/wallboard", "/reports", "/static/{name}"}


@pytest.mark.parametrize("header", [
    f"Bearer {FORGED}",
    "Bearer sb_zzzzzzzzzzzz.abc",
    "Bearer " + "x" * 5000,
    "Bearer eyJhbGciOiJub25lIn0.eyJyb2xlIjoiYWRtaW4ifQ.",
    "Basic YWRtaW46YWRtaW4=",
    "Bearer",
])
async def test_forged_tokens_are_401(probe: Probe, http, header: str) -> None:
    status, body = await call(probe, http, "GET", "/api/agents", headers={"Authorization": header})
    assert status == 401 and body["error_id"] in ("unauthorized", "invalid-credentials")


async def test_a_real_token_id_with_a_wrong_secret_is_401(probe: Probe, http) -> None:
    t = await tokens(probe)
    forged = t["admin"][:16] + secrets.token_urlsafe(32)
    status, body = await call(probe, http, "GET", "/api/agents", headers=bearer(forged))
    assert status == 401 and body["error_id"] == "invalid-credentials"


# ----------------------------------------------------------------- cross-agent and cross-role


async def test_agents_act_only_on_themselves_and_roles_hold(probe: Probe, http) -> None:
    t = await tokens(probe)
    a1 = bearer(t["a1"])
    for method, path in [("POST", f"/api/agents/{A2}/ready"), ("POST", f"/api/agents/{A2}/login"),
                         ("GET", f"/api/agents/{A2}"), ("GET", f"/api/agents/{A2}/figures"),
                         ("GET", f"/api/agents/{A2}/call"), ("GET", "/api/agents"),
                         ("POST", f"/api/agents/{A2}/force-logout"), ("GET", "/api/queues/figures"),
                         ("GET", "/api/reports"), ("GET", "/api/calls/sec-missing/recording"),
                         ("POST", "/api/flows/reload"), ("GET", f"/api/calls?agent_id={A2}")]:
        status, body = await call(probe, http, method, path, headers=a1, json={} if method == "POST" else None)
        assert status == 403 and body["error_id"] == "forbidden", (method, path, status, body)
    sup = bearer(t["sup"])
    for method, path in [("POST", "/api/flows/reload"), ("POST", f"/api/agents/{A1}/ready")]:
        status, _ = await call(probe, http, method, path, headers=sup, json={})
        assert status == 403, (method, path)
    status, _ = await call(probe, http, "POST", "/api/flows/validate", headers=sup,
                           json={"name": "x", "source": "a: 1"})
    assert status == 403


async def test_a_colleagues_call_answers_like_a_missing_one(probe: Probe, http) -> None:
    t = await tokens(probe)
    conn = await asyncpg.connect(probe.dsn, timeout=10)
    try:
        await conn.execute("INSERT INTO calls (call_id, started_at, caller, agent_id, outcome) VALUES "
                           "('sec-a2-call', now(), '0901234567', $1, 'answered')", A2, timeout=10)
        await conn.execute("INSERT INTO call_events (call_id, seq, ts, kind, data) VALUES "
                           "('sec-a2-call', 1, now(), 'call.answered', jsonb_build_object('agent_id', $1::text))",
                           A2, timeout=10)
    finally:
        await conn.close(timeout=5)
    own = await call(probe, http, "GET", "/api/calls/sec-a2-call", headers=bearer(t["a2"]))
    assert own[0] == 200
    foreign = await call(probe, http, "GET", "/api/calls/sec-a2-call", headers=bearer(t["a1"]))
    missing = await call(probe, http, "GET", "/api/calls/sec-nowhere", headers=bearer(t["a1"]))
    assert foreign[0] == missing[0] == 404 and foreign[1] == missing[1]


# ----------------------------------------------------------------- hostile bodies and requests


async def test_hostile_bodies_are_4xx(probe: Probe, http) -> None:
    t = await tokens(probe)
    adm = {"Content-Type": "application/json", **bearer(t["admin"])}
    cases: list[tuple[str, str, bytes, dict[str, str]]] = [
        ("POST", "/api/session", b"{not json", {"Content-Type": "application/json"}),
        ("POST", "/api/session", b"[" * 100_000, {"Content-Type": "application/json"}),
        ("POST", "/api/session", b'{"a":' * 50_000, {"Content-Type": "application/json"}),
        ("POST", "/api/session", b"\xff\xfe\x00", {"Content-Type": "application/json"}),
        ("POST", "/api/session", json.dumps({"token": "sb_\u0000." + "a" * 40, "agent_id": A1}).encode(),
         {"Content-Type": "application/json"}),
        ("POST", "/api/session", json.dumps({"token": "x", "agent_id": "a\u0000b"}).encode(),
         {"Content-Type": "application/json"}),
        ("POST", "/api/session", b'{"token": "' + b"x" * 300_000 + b'"}', {"Content-Type": "application/json"}),
        ("POST", "/api/flows/validate", json.dumps({"name": "deep", "source": "a: " + "[" * 100_000}).encode(), adm),
        ("POST", "/api/flows/validate", json.dumps({"name": "nul", "source": "a: \u0000"}).encode(), adm),
        ("POST", f"/api/agents/{A1}/pause", b'{"reason": "lunch\\r\\nX-Injected: 1"}',
         {"Content-Type": "application/json", **bearer(t["a1"])}),
    ]
    for method, path, data, headers in cases:
        status, body = await call(probe, http, method, path, data=data, headers=headers)
        assert 400 <= status < 500, (path, data[:40], status, body)
        assert "error_id" in body or path == "/api/flows/validate", body


@pytest.mark.parametrize("query", [
    "/api/agents/{a}/figures?day=9999-12-31", "/api/agents/{a}/figures?day=0001-01-01",
    "/api/calls?to=9999-12-31", "/api/calls?offset=9223372036854775808", "/api/calls?offset=" + "9" * 5000,
    "/api/calls?number=%00", "/api/calls?from=2026-02-01&to=2026-01-01",
])
async def test_hostile_query_values_are_400(probe: Probe, http, query: str) -> None:
    t = await tokens(probe)
    status, body = await call(probe, http, "GET", query.format(a=A1), headers=bearer(t["a1"]))
    assert status == 400 and body["error_id"] == "invalid-request", body


@pytest.mark.parametrize("query", [
    "?from=2024-01-01&to=2025-06-30", "?from=2026-03-02&to=2026-03-01", "?to=9999-12-31", "?to=2001-01-01",
])
async def test_report_ranges_reversed_or_over_366_days_are_400(probe: Probe, http, query: str) -> None:
    t = await tokens(probe)
    status, body = await call(probe, http, "GET", "/api/reports/daily" + query, headers=bearer(t["sup"]))
    assert status == 400 and body["error_id"] == "invalid-request", body


async def test_crlf_nul_and_garbage_on_the_wire_never_reach_a_handler_as_500(probe: Probe) -> None:
    t = await tokens(probe)
    host = f"Host: 127.0.0.1:{probe.port}\r\n".encode()
    for data in [
        b"GET /api/agents HTTP/1.1\r\n" + host + b"Authorization: Bearer " + t["sup"].encode()
        + b"\r\nX-Evil: a\rb\r\n\r\n",
        b"GET /api/agents\x00 HTTP/1.1\r\n" + host + b"\r\n",
        b"GET /api/calls?number=1%0d%0aSet-Cookie:x HTTP/1.1\r\n" + host + b"Authorization: Bearer "
        + t["sup"].encode() + b"\r\n\r\n",
        b"POST /api/session HTTP/1.1\r\n" + host + b"Content-Type: application/json\r\nContent-Length: 5\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"BREW /api/agents HTTP/1.1\r\n" + host + b"\r\n",
        b"GET /api/agents HTTP/1.1\r\n" + host + b"Authorization: Bearer " + FORGED.encode() + b"\x00\r\n\r\n",
    ]:
        status = await raw(probe, data)
        assert 400 <= status < 500, (data[:80], status)


@pytest.mark.parametrize("path", [
    "/static/../../../../etc/passwd", "/static/..%2f..%2f..%2fetc%2fpasswd", "/static/%2e%2e%2fapp.py",
    "/static/agent.html", "/static/....//....//etc/passwd", "/static/%00agent.js",
])
async def test_no_traversal_on_static_files(probe: Probe, http, path: str) -> None:
    status, body = await call(probe, http, "GET", path)
    assert status in (400, 404), (path, status)
    assert "root:" not in json.dumps(body)


async def test_no_traversal_on_recordings(probe: Probe, http) -> None:
    t = await tokens(probe)
    conn = await asyncpg.connect(probe.dsn, timeout=10)
    try:
        await conn.execute("INSERT INTO calls (call_id, started_at, recording_path) VALUES "
                           "('sec-rec-out', now(), '/etc/passwd'), ('sec-rec-up', now(), '../../../../etc/passwd')",
                           timeout=10)
    finally:
        await conn.close(timeout=5)
    sup = bearer(t["sup"])
    for path in ["/api/calls/sec-rec-out/recording", "/api/calls/sec-rec-up/recording",
                 "/api/calls/..%2f..%2fetc%2fpasswd/recording", "/api/calls/../../etc/passwd/recording"]:
        status, body = await call(probe, http, "GET", path, headers=sup)
        assert status in (400, 403, 404), (path, status)
        assert "root:" not in json.dumps(body)


# ----------------------------------------------------------------- sessions


async def test_a_session_cannot_open_a_session(probe: Probe, http) -> None:
    t = await tokens(probe)
    status, body = await login(probe, http, t["a1"], A1)
    assert status == 201
    status, again = await login(probe, http, body["token"], A1)
    assert status == 403 and again["error_id"] == "session-from-session"


async def test_revoking_the_login_token_ends_its_sessions_and_their_sockets(probe: Probe, http) -> None:
    token = await probe.new_token("a1-revoked", "agent", A1)
    status, body = await login(probe, http, token, A1)
    assert status == 201
    session = body["token"]
    async with aiohttp.ClientSession(timeout=TIMEOUT) as ws_http, \
            ws_http.ws_connect(f"{probe.base}/api/ws", headers=bearer(session)) as ws:
        await hello(ws)
        await probe.revoke(probe.token_id("a1-revoked"))
        assert await closed_within(ws, 1.5) == CLOSE_UNAUTHORIZED
    for t in (token, session):
        status, _ = await call(probe, http, "GET", "/api/session", headers=bearer(t))
        assert status == 401


# ----------------------------------------------------------------- websockets


async def test_websocket_without_or_with_a_forged_token_is_refused(probe: Probe) -> None:
    async with aiohttp.ClientSession(timeout=TIMEOUT) as s:
        async with s.ws_connect(f"{probe.base}/api/ws") as ws:
            await ws.send_json({"type": "auth", "token": FORGED})
            assert await closed_within(ws, 3) == CLOSE_UNAUTHORIZED
        async with s.ws_connect(f"{probe.base}/api/ws") as ws:
            await ws.send_str("[" * 60_000)
            assert await closed_within(ws, 3) == CLOSE_UNAUTHORIZED
        with pytest.raises(aiohttp.WSServerHandshakeError) as err:
            await s.ws_connect(f"{probe.base}/api/ws?token={FORGED}")
        assert probe.saw(err.value.status, "ws ?token=forged") == 401


async def test_websocket_closes_on_revocation_within_a_second(probe: Probe) -> None:
    token = await probe.new_token("sup-revoked", "supervisor")
    async with aiohttp.ClientSession(timeout=TIMEOUT) as s, \
            s.ws_connect(f"{probe.base}/api/ws", headers=bearer(token)) as ws:
        await hello(ws)
        await probe.revoke(probe.token_id("sup-revoked"))
        assert await closed_within(ws, 1.5) == CLOSE_UNAUTHORIZED


async def test_websocket_closes_on_logout_within_a_second(probe: Probe, http) -> None:
    t = await tokens(probe)
    status, body = await login(probe, http, t["a2"], A2)
    assert status == 201
    session = body["token"]
    async with aiohttp.ClientSession(timeout=TIMEOUT) as s, \
            s.ws_connect(f"{probe.base}/api/ws", headers=bearer(session)) as ws:
        await hello(ws)
        status, _ = await call(probe, http, "DELETE", "/api/session", headers=bearer(session))
        assert status == 204
        assert await closed_within(ws, 1.0) == CLOSE_UNAUTHORIZED


async def test_an_agent_socket_gets_no_colleagues_state(probe: Probe, http) -> None:
    t = await tokens(probe)
    async with aiohttp.ClientSession(timeout=TIMEOUT) as s, \
            s.ws_connect(f"{probe.base}/api/ws", headers=bearer(t["a1"])) as ws1, \
            s.ws_connect(f"{probe.base}/api/ws", headers=bearer(t["a2"])) as ws2, \
            s.ws_connect(f"{probe.base}/api/ws", headers=bearer(t["sup"])) as wss:
        for ws in (ws1, ws2, wss):
            await hello(ws)
        status, body = await call(probe, http, "POST", f"/api/agents/{A2}/login", headers=bearer(t["a2"]), json={})
        assert status == 200, body

        own, sup, colleague = await asyncio.gather(live_messages(ws2, 2.0), live_messages(wss, 2.0),
                                                   live_messages(ws1, 2.0))
        assert any(m["type"] == "agent.state" and m["agent_id"] == A2 for m in own)
        assert any(m["type"] == "agent.state" and m["agent_id"] == A2 for m in sup)
        leaked = [m for m in colleague if m["type"] in ("agent.state", "agents", "agent.offer", "queue.figures")
                  and m.get("agent_id") != A1]
        assert leaked == []
        await call(probe, http, "POST", f"/api/agents/{A2}/logout", headers=bearer(t["a2"]), json={})


async def live_messages(ws: aiohttp.ClientWebSocketResponse, wait: float) -> list[dict]:
    """Every message ``ws`` receives within ``wait`` seconds."""
    got: list[dict] = []
    try:
        async with asyncio.timeout(wait):
            while True:
                got.append(await ws.receive_json())
    except TimeoutError:
        pass
    return got


# ----------------------------------------------------------------- brute force


async def test_a_valid_credential_works_after_many_failures_from_its_address(probe: Probe, http) -> None:
    t = await tokens(probe)
    for i in range(40):  # bad bearer tokens, many token ids, from this address
        bad = f"sb_{i:012x}." + "B" * 43
        status, _ = await call(probe, http, "GET", "/api/codes", headers=bearer(bad))
        assert status in (401, 429)
    for _ in range(40):  # the same bad token again and again: that one is blocked
        last, _ = await call(probe, http, "GET", "/api/codes", headers=bearer(FORGED))
    assert last == 429
    for _ in range(10):  # bogus web logins without an agent id (supervisor-style) and for another agent
        await login(probe, http, "sb_aaaaaaaaaaaa." + "C" * 43)
        await login(probe, http, "wrong", A2)
    status, _ = await call(probe, http, "GET", "/api/codes", headers=bearer(t["a1"]))
    assert status == 200
    status, _ = await login(probe, http, t["sup"])
    assert status == 201
    status, _ = await login(probe, http, t["a1"], A1)
    assert status == 201


async def test_forwarded_for_counts_only_from_a_trusted_proxy(probe: Probe) -> None:
    assert free_loopback(UNTRUSTED_PEER), "this host does not route 127.0.0.2 to loopback"
    bad = {"token": "sb_bbbbbbbbbbbb." + "D" * 43}
    # through the trusted proxy (this address): each client behind it has its own count
    async with aiohttp.ClientSession(timeout=TIMEOUT) as s:
        statuses = [(await call(probe, s, "POST", f"{probe.base}/api/session", json=bad,
                                headers={"X-Forwarded-For": "198.51.100.1"}))[0] for _ in range(6)]
        assert statuses == [401] * 5 + [429]
        other = await call(probe, s, "POST", f"{probe.base}/api/session", json=bad,
                           headers={"X-Forwarded-For": "198.51.100.2"})
        assert other[0] == 401
    # from an untrusted peer the header is ignored: changing it does not reset the count
    connector = aiohttp.TCPConnector(local_addr=(UNTRUSTED_PEER, 0))
    async with aiohttp.ClientSession(timeout=TIMEOUT, connector=connector) as s:
        bad = {"token": "sb_cccccccccccc." + "E" * 43}
        statuses = [(await call(probe, s, "POST", f"{probe.base}/api/session", json=bad,
                                headers={"X-Forwarded-For": f"203.0.113.{i}"}))[0] for i in range(6)]
        assert statuses == [401] * 5 + [429]
    assert TRUSTED_PROXY == "127.0.0.1"


# ----------------------------------------------------------------- the database goes away


async def test_a_database_outage_is_503_not_500(probe: Probe, http) -> None:
    t = await tokens(probe)
    probe.proxy.cut()
    try:
        for method, path, token in [("GET", "/api/session", t["a1"]), ("GET", "/api/agents", t["sup"]),
                                    ("GET", "/api/calls", t["sup"]), ("GET", "/api/codes", t["a2"])]:
            status, body = await call(probe, http, method, path, headers=bearer(token))
            assert status == 503 and body["error_id"] in ("service-unavailable", "service-timeout"), (path, body)
        status, body = await login(probe, http, t["a1"], A1)
        assert status == 503, body
    finally:
        probe.proxy.restore()
    for _ in range(50):  # the pool reconnects on its own
        status, _ = await call(probe, http, "GET", "/api/session", headers=bearer(t["a1"]))
        if status == 200:
            break
        await asyncio.sleep(0.2)
    assert status == 200


# ----------------------------------------------------------------- still standing


async def test_zz_the_service_still_stands_and_never_answered_500(probe: Probe, http) -> None:
    for _ in range(150):  # the event writer reconnects with its own back-off after the outage
        status, body = await call(probe, http, "GET", "/readyz")
        if status == 200:
            break
        await asyncio.sleep(0.2)
    assert status == 200, body
    async with http.get("/healthz") as r:
        assert r.headers.get("Server") == "switchboard"  # no software, no version
    assert len(probe.seen) > 100
    assert [what for status, what in probe.seen if status >= 500 and status != 503] == []
    log = probe.log.read_text(errors="replace")
    assert "Traceback" not in log and "internal-error" not in log, log[-3000:]
    for token in probe.tokens.values():
        assert token[16:] not in log  # no secret in the log
