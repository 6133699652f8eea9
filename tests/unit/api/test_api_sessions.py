"""Web sessions: no session from a session, never outliving the login token, and live
sockets closed (4001) on logout, revocation and expiry."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime, timedelta

import aiohttp
from api_fakes import Client, Tokens, World, bearer

from switchboard.api import auth
from switchboard.api.live import CLOSE_UNAUTHORIZED


async def _login(client: Client, token: str, agent_id: str | None = "a1") -> aiohttp.ClientResponse:
    body = {"token": token} | ({"agent_id": agent_id} if agent_id else {})
    return await client.post("/api/session", json=body)


async def test_a_session_cannot_open_a_session(client: Client, tokens: Tokens, world: World) -> None:
    resp = await _login(client, tokens.a1)
    assert resp.status == 201
    session = (await resp.json())["token"]
    again = await _login(client, session)
    body = await again.json()
    assert again.status == 403 and body["error_id"] == "session-from-session"
    assert len([r for r in world.tokens.rows.values() if r.kind == "session"]) == 1


async def test_revoking_the_login_token_ends_sessions_at_any_depth(client: Client, tokens: Tokens,
                                                                  world: World) -> None:
    session = (await (await _login(client, tokens.a1)).json())["token"]
    session_id = (auth.parse_token(session) or ("", ""))[0]
    # a session of a session, as older versions could mint
    child, _ = await auth.create_token(world.tokens, role="agent", agent_id="a1", kind="session",
                                       ttl=timedelta(hours=1), parent_id=session_id)
    assert (await client.get("/api/session", headers=bearer(child))).status == 200
    a1_id = (auth.parse_token(tokens.a1) or ("", ""))[0]
    assert await world.tokens.revoke(a1_id)
    for t in (tokens.a1, session, child):
        assert (await client.get("/api/session", headers=bearer(t))).status == 401


async def test_a_session_is_refused_once_its_parent_is_revoked_even_if_its_own_row_is_not(
        client: Client, tokens: Tokens, world: World) -> None:
    session = (await (await _login(client, tokens.a1)).json())["token"]
    a1_id = (auth.parse_token(tokens.a1) or ("", ""))[0]
    parent = world.tokens.rows[a1_id]
    world.tokens.rows[a1_id] = dataclasses.replace(parent, revoked_at=datetime.now(UTC))  # only the parent
    assert (await client.get("/api/session", headers=bearer(session))).status == 401


async def test_a_session_never_outlives_its_login_token(client: Client, world: World) -> None:
    short, row = await auth.create_token(world.tokens, role="supervisor", name="temp", ttl=timedelta(minutes=10))
    resp = await _login(client, short, agent_id=None)
    assert resp.status == 201
    expires = datetime.fromisoformat((await resp.json())["expires_at"])
    assert row.expires_at is not None and expires <= row.expires_at
    # and past the parent's expiry the session is refused even if its own row still ran
    session = (await resp.json())["token"]
    p = await auth.verify_token(world.tokens, session, now=row.expires_at + timedelta(seconds=1))
    assert p is None


async def _closed_within(ws: aiohttp.ClientWebSocketResponse, limit: float) -> int | None:
    loop = asyncio.get_running_loop()
    start = loop.time()
    async with asyncio.timeout(limit):
        while True:
            msg = await ws.receive()
            if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING):
                assert loop.time() - start <= limit
                # the server's code (ws.close_code may turn 1006 if the client's reply races the server's close)
                return int(msg.data) if msg.type is aiohttp.WSMsgType.CLOSE else ws.close_code


async def test_logout_closes_the_sessions_socket(client: Client, tokens: Tokens) -> None:
    session = (await (await _login(client, tokens.a1)).json())["token"]
    ws = await client.ws_connect("/api/ws", headers=bearer(session))
    assert (await ws.receive_json(timeout=2))["type"] == "hello"
    resp = await client.delete("/api/session", headers=bearer(session))
    assert resp.status == 204
    assert await _closed_within(ws, 1.0) == CLOSE_UNAUTHORIZED


async def test_revocation_and_expiry_close_sockets_within_a_second(client: Client, tokens: Tokens,
                                                                   world: World) -> None:
    ws = await client.ws_connect("/api/ws", headers=bearer(tokens.a2))
    assert (await ws.receive_json(timeout=2))["type"] == "hello"
    short, row = await auth.create_token(world.tokens, role="supervisor", ttl=timedelta(seconds=1.5))
    ws_short = await client.ws_connect("/api/ws", headers=bearer(short))
    assert (await ws_short.receive_json(timeout=2))["type"] == "hello"
    a2_id = (auth.parse_token(tokens.a2) or ("", ""))[0]
    assert await world.tokens.revoke(a2_id)  # as the CLI would: straight in the store
    assert await _closed_within(ws, 1.0) == CLOSE_UNAUTHORIZED
    assert await _closed_within(ws_short, 2.5) == CLOSE_UNAUTHORIZED
    assert row.expires_at is not None and datetime.now(UTC) >= row.expires_at - timedelta(seconds=0.6)


async def test_secure_cookie_flag_follows_the_setting_and_server_header_has_no_version(
        world: World, tokens: Tokens) -> None:
    from aiohttp.test_utils import TestClient, TestServer

    from switchboard.api.app import create_app
    from switchboard.config import HttpSettings, Settings

    for secure in (False, True):
        app = create_app(settings=Settings(http=HttpSettings(secure_cookies=secure)), services=world.services)
        async with TestClient(TestServer(app)) as c:
            resp = await c.post("/api/session", json={"agent_id": "a1", "token": tokens.a1})
            assert resp.status == 201
            cookie = resp.headers["Set-Cookie"]
            assert ("Secure" in cookie) is secure and "HttpOnly" in cookie
            assert resp.headers["Server"] == "switchboard"
            assert (await c.get("/healthz")).headers["Server"] == "switchboard"
