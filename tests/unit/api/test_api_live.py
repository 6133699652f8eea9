"""Live websocket: auth, who sees what, and a slow reader dropped without slowing anyone."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import time
from typing import Any

import aiohttp
from api_fakes import Client, Tokens, bearer, sample_pop

from switchboard.api.app import HUB, METRICS
from switchboard.api.live import Audience, LiveMessage


async def _recv(ws: aiohttp.ClientWebSocketResponse, *, limit_s: float = 5.0) -> dict[str, Any]:
    msg = await ws.receive(timeout=limit_s)
    assert msg.type == aiohttp.WSMsgType.TEXT, msg
    data = json.loads(msg.data)
    assert isinstance(data, dict)
    return data


async def _until(ws: aiohttp.ClientWebSocketResponse, kind: str) -> dict[str, Any]:
    for _ in range(50):
        data = await _recv(ws)
        if data["type"] == kind:
            return data
    raise AssertionError(f"no {kind}")


async def test_websocket_auth_ways(client: Client, tokens: Tokens) -> None:
    # bearer header
    async with client.ws_connect("/api/ws", headers=bearer(tokens.a1)) as ws:
        assert (await _recv(ws))["type"] == "hello"
    # first message
    async with client.ws_connect("/api/ws") as ws:
        await ws.send_str(json.dumps({"type": "auth", "token": tokens.a2}))
        hello = await _recv(ws)
        assert hello["type"] == "hello" and hello["data"] == {"role": "agent", "agent_id": "a2"}
    # wrong first message: closed with 4001
    async with client.ws_connect("/api/ws") as ws:
        await ws.send_str(json.dumps({"type": "auth", "token": "sb_0123456789ab." + "D" * 43}))
        msg = await ws.receive(timeout=5)
        assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
        assert ws.close_code == 4001
    # bad bearer: refused before the upgrade
    try:
        async with client.ws_connect("/api/ws", headers=bearer("sb_0123456789ab." + "E" * 43)):
            raise AssertionError("upgraded with a bad token")
    except aiohttp.WSServerHandshakeError as exc:
        assert exc.status == 401
    # another site's page
    try:
        async with client.ws_connect("/api/ws", headers={**bearer(tokens.a1), "Origin": "https://evil.example"}):
            raise AssertionError("cross-origin upgrade accepted")
    except aiohttp.WSServerHandshakeError as exc:
        assert exc.status == 403


async def test_agents_see_only_their_own_events(client: Client, tokens: Tokens) -> None:
    hub = client.app[HUB]
    async with client.ws_connect("/api/ws", headers=bearer(tokens.a1)) as a1, \
            client.ws_connect("/api/ws", headers=bearer(tokens.a2)) as a2, \
            client.ws_connect("/api/ws", headers=bearer(tokens.supervisor)) as sup:
        for ws in (a1, a2, sup):
            assert (await _recv(ws))["type"] == "hello"
        hub.publish(LiveMessage("agent.offer", sample_pop("c7"), agent_id="a2", audience=Audience.AGENT))
        hub.publish(LiveMessage("queue.figures", {"waiting": 3}, audience=Audience.SUPERVISORS))
        hub.publish(LiveMessage("notice", {"text": "all"}))
        offer = await _recv(a2)
        assert offer["type"] == "agent.offer" and offer["data"]["call_id"] == "c7"
        assert offer["data"]["si_code"] == "0123456789"
        assert (await _recv(a2))["type"] == "notice"
        assert (await _recv(a1))["type"] == "notice"  # neither the offer to a2 nor supervisor figures
        assert [(await _recv(sup))["type"] for _ in range(3)] == ["agent.offer", "queue.figures", "notice"]


async def test_supervisors_get_queue_figures_pushed(client: Client, tokens: Tokens) -> None:
    async with client.ws_connect("/api/ws", headers=bearer(tokens.supervisor)) as sup:
        figures = await _until(sup, "queue.figures")
        assert figures["data"]["service_level_target_s"] == 20.0
        agents = await _until(sup, "agents")
        assert {a["id"] for a in agents["data"]} == {"a1", "a2"}


async def _raw_ws_that_never_reads(host: str, port: int, token: str) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    await asyncio.wait_for(loop.sock_connect(sock, (host, port)), 5)
    key = base64.b64encode(os.urandom(16)).decode()
    request = (f"GET /api/ws?token={token} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
               f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n")
    await asyncio.wait_for(loop.sock_sendall(sock, request.encode()), 5)
    head = b""
    while b"\r\n\r\n" not in head:
        head += await asyncio.wait_for(loop.sock_recv(sock, 1), 5)
    assert head.startswith(b"HTTP/1.1 101"), head
    return sock  # from here on, nobody reads it


async def test_slow_client_is_dropped_without_slowing_others(client: Client, tokens: Tokens) -> None:
    hub = client.app[HUB]
    assert client.server.host and client.server.port
    slow = await _raw_ws_that_never_reads(client.server.host, client.server.port, tokens.a1)
    try:
        async with client.ws_connect("/api/ws", headers=bearer(tokens.a2)) as fast:
            assert (await _recv(fast))["type"] == "hello"
            for _ in range(500):
                if len(hub) == 2:
                    break
                await asyncio.sleep(0.01)
            assert len(hub) == 2
            n, payload = 600, "x" * 16_000
            received: list[int] = []

            async def read_fast() -> None:
                while len(received) < n:
                    data = await _recv(fast)
                    if data["type"] == "bulk":
                        received.append(data["data"]["i"])

            reader = asyncio.create_task(read_fast())
            worst_publish = 0.0
            start = time.monotonic()
            for i in range(n):
                t = time.perf_counter()
                hub.publish(LiveMessage("bulk", {"i": i, "pad": payload}))
                worst_publish = max(worst_publish, time.perf_counter() - t)
                await asyncio.sleep(0.001)
            await asyncio.wait_for(reader, 10)
            elapsed = time.monotonic() - start
            assert received == list(range(n))          # the fast client got everything, in order
            assert hub.dropped_total == 1 and len(hub) == 1  # the slow one is gone
            assert worst_publish < 0.05                 # publishing never waited on a socket
            assert elapsed < 8
            assert client.app[METRICS].registry.get_sample_value("switchboard_websocket_dropped_clients_total") == 1
    finally:
        slow.close()
