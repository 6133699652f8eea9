"""Live events to browsers: a websocket hub with a bounded buffer per client.

``LiveHub.publish`` never waits: it serialises the message once and puts it
in each interested client's queue (``put_nowait``). Each client has its own
sender task; a client whose queue is full, or whose socket does not take a
message within ``send_timeout``, is dropped (closed with code 4008), so one
slow reader never slows the others or the publisher.

Who sees what: ``Audience.ALL`` goes to everyone, ``SUPERVISORS`` to
supervisor and admin connections, ``AGENT`` to the agent named by
``agent_id`` and to supervisors.

A connection lives no longer than its token: ``close_token`` (logout,
revocation, found by the app's periodic re-check) and ``close_expired``
close it with code 4001.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import WSMsgType, web

from switchboard.api.auth import Principal
from switchboard.api.errors import ValidationFailed
from switchboard.api.guards import parse_json
from switchboard.api.jsonutil import to_jsonable

log = logging.getLogger("switchboard.api.live")

CLOSE_TOO_SLOW = 4008
CLOSE_UNAUTHORIZED = 4001


class Audience(enum.StrEnum):
    ALL = "all"
    SUPERVISORS = "supervisors"
    AGENT = "agent"


@dataclass(frozen=True, slots=True)
class LiveMessage:
    """One message to browsers. ``type`` values: ``agent.offer`` (screen pop),
    ``agent.state`` (an AgentView), ``agent.call_ended``, ``queue.figures``
    (QueueFigures), ``agents`` (list of AgentView), ``call.event``."""

    type: str
    data: Any = None
    agent_id: str | None = None
    audience: Audience = Audience.ALL
    ts: datetime = field(default_factory=lambda: datetime.now(UTC))

    def encode(self) -> str:
        return json.dumps(
            {"type": self.type, "ts": self.ts.isoformat(), "agent_id": self.agent_id, "data": to_jsonable(self.data)},
            ensure_ascii=False,
            separators=(",", ":"),
        )


class _Client:
    __slots__ = ("closer", "dropped", "principal", "queue", "sender", "ws")

    def __init__(self, principal: Principal, ws: web.WebSocketResponse, buffer: int) -> None:
        self.principal = principal
        self.ws = ws
        self.queue: asyncio.Queue[str] = asyncio.Queue(maxsize=buffer)
        self.sender: asyncio.Task[None] | None = None
        self.closer: asyncio.Task[None] | None = None
        self.dropped = False

    def wants(self, msg: LiveMessage) -> bool:
        if msg.audience is Audience.ALL:
            return True
        if self.principal.is_supervisor:
            return True
        return msg.audience is Audience.AGENT and msg.agent_id is not None and msg.agent_id == self.principal.agent_id


class LiveHub:
    def __init__(self, *, buffer: int = 256, send_timeout: float = 5.0, close_timeout: float = 1.0,
                 on_drop: Callable[[], None] | None = None, on_publish: Callable[[], None] | None = None) -> None:
        self.buffer = buffer
        self.send_timeout = send_timeout
        self.close_timeout = close_timeout
        self._clients: set[_Client] = set()
        self._closers: set[asyncio.Task[None]] = set()
        self._on_drop = on_drop
        self._on_publish = on_publish
        self.dropped_total = 0

    def __len__(self) -> int:
        return len(self._clients)

    def token_ids(self) -> set[str]:
        """The tokens (sessions or API tokens) of the connected clients."""
        return {c.principal.token_id for c in self._clients if not c.dropped}

    def close_token(self, token_id: str, *, why: str = "logged out") -> int:
        """Close (4001) every connection authenticated by ``token_id``; returns how many."""
        hits = [c for c in self._clients if c.principal.token_id == token_id]
        for client in hits:
            self._drop(client, why, code=CLOSE_UNAUTHORIZED, message=b"unauthorized", count=False)
        return len(hits)

    def close_expired(self, *, now: datetime | None = None) -> int:
        """Close (4001) every connection whose token (or its login token) has expired."""
        moment = now or datetime.now(UTC)
        hits = [c for c in self._clients
                if c.principal.expires_at is not None and c.principal.expires_at <= moment]
        for client in hits:
            self._drop(client, "token expired", code=CLOSE_UNAUTHORIZED, message=b"unauthorized", count=False)
        return len(hits)

    def supervisors_connected(self) -> bool:
        return any(c.principal.is_supervisor for c in self._clients)

    def publish(self, msg: LiveMessage) -> int:
        """Queue ``msg`` for every interested client; returns how many. Never blocks."""
        if self._on_publish is not None:
            self._on_publish()
        text: str | None = None
        sent = 0
        for client in list(self._clients):
            if client.dropped or not client.wants(msg):
                continue
            text = text if text is not None else msg.encode()
            try:
                client.queue.put_nowait(text)
                sent += 1
            except asyncio.QueueFull:
                self._drop(client, "buffer full")
        return sent

    def register(self, principal: Principal, ws: web.WebSocketResponse) -> _Client:
        client = _Client(principal, ws, self.buffer)
        client.sender = asyncio.create_task(self._send_loop(client), name=f"ws-sender-{principal.token_id}")
        self._clients.add(client)
        return client

    async def unregister(self, client: _Client) -> None:
        self._clients.discard(client)
        if client.sender is not None and not client.sender.done():
            client.sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await client.sender

    async def _send_loop(self, client: _Client) -> None:
        while True:
            text = await client.queue.get()
            try:
                async with asyncio.timeout(self.send_timeout):
                    await client.ws.send_str(text)
            except TimeoutError:
                self._drop(client, "send timed out")
                return
            except (ConnectionError, RuntimeError):
                return  # the socket is closing; the handler unregisters it

    def _drop(self, client: _Client, why: str, *, code: int = CLOSE_TOO_SLOW, message: bytes = b"too slow",
              count: bool = True) -> None:
        if client.dropped:
            return
        client.dropped = True
        self._clients.discard(client)
        who = client.principal.agent_id or client.principal.role
        if count:
            self.dropped_total += 1
            if self._on_drop is not None:
                self._on_drop()
            log.warning("websocket client %s dropped: %s", who, why)
        else:
            log.info("websocket client %s closed: %s", who, why)
        if client.sender is not None and client.sender is not asyncio.current_task():
            client.sender.cancel()
        task = asyncio.create_task(self._close(client.ws, code=code, message=message), name="ws-close")
        client.closer = task
        self._closers.add(task)
        task.add_done_callback(self._closers.discard)

    async def _close(self, ws: web.WebSocketResponse, *, code: int = CLOSE_TOO_SLOW,
                     message: bytes = b"too slow") -> None:
        try:
            async with asyncio.timeout(self.close_timeout):
                await ws.close(code=code, message=message)
        except (TimeoutError, ConnectionError, RuntimeError):
            pass
        finally:
            # a reader that never reads cannot take the close frame: cut the connection
            writer = getattr(ws, "_writer", None)
            transport = getattr(writer, "transport", None)
            if transport is not None and not transport.is_closing():
                transport.abort()

    async def close_all(self) -> None:
        """Close every connection (on shutdown)."""
        clients = list(self._clients)
        self._clients.clear()
        for client in clients:
            if client.sender is not None:
                client.sender.cancel()
        await asyncio.gather(*(self._close_going_away(c.ws) for c in clients), return_exceptions=True)
        await asyncio.gather(*self._closers, return_exceptions=True)

    async def _close_going_away(self, ws: web.WebSocketResponse) -> None:
        try:
            async with asyncio.timeout(self.close_timeout):
                await ws.close(code=1001, message=b"server shutdown")
        except (TimeoutError, ConnectionError, RuntimeError):
            pass


async def serve_websocket(
    request: web.Request,
    *,
    hub: LiveHub,
    principal: Principal | None,
    authenticate: Callable[[str], Any],
    auth_timeout: float = 5.0,
) -> web.WebSocketResponse:
    """Run one websocket connection. ``principal`` is set when the upgrade
    request carried credentials (cookie or ``?token=``); otherwise the first
    message must be ``{"type": "auth", "token": "..."}`` within ``auth_timeout``."""
    ws = web.WebSocketResponse(heartbeat=30.0, max_msg_size=64 * 1024)
    await ws.prepare(request)
    if principal is None:
        principal = await _first_message_auth(ws, authenticate, auth_timeout)
        if principal is None:
            with contextlib.suppress(TimeoutError, ConnectionError, RuntimeError):
                async with asyncio.timeout(1.0):
                    await ws.close(code=CLOSE_UNAUTHORIZED, message=b"unauthorized")
            return ws
    client = hub.register(principal, ws)
    client.queue.put_nowait(LiveMessage("hello", {"role": principal.role, "agent_id": principal.agent_id}).encode())
    try:
        async for msg in ws:
            if msg.type != WSMsgType.TEXT:
                continue
            try:
                incoming = parse_json(msg.data)
            except ValidationFailed:
                incoming = None
            if isinstance(incoming, Mapping) and incoming.get("type") == "ping":
                with contextlib.suppress(asyncio.QueueFull):
                    client.queue.put_nowait(LiveMessage("pong").encode())
    finally:
        await hub.unregister(client)
        if client.closer is not None:
            # closed by the hub (token gone, too slow): let the close frame go out before the
            # handler returns, or aiohttp cuts the connection first (the client sees 1006)
            with contextlib.suppress(Exception):
                await asyncio.shield(client.closer)
    return ws


async def _first_message_auth(ws: web.WebSocketResponse, authenticate: Callable[[str], Any],
                              limit_s: float) -> Principal | None:
    try:
        async with asyncio.timeout(limit_s):
            msg = await ws.receive()
    except TimeoutError:
        return None
    if msg.type != WSMsgType.TEXT:
        return None
    try:
        first = parse_json(msg.data)
    except ValidationFailed:
        return None
    if not isinstance(first, Mapping) or first.get("type") != "auth" or not isinstance(first.get("token"), str):
        return None
    principal: Principal | None = await authenticate(first["token"])
    return principal
