"""An in-process AMI server on 127.0.0.1 for the faults the real Asterisk cannot show.

Spec (what it does like Asterisk 22, checked against tests/fixtures/ami/*.ami):
banner ``Asterisk Call Manager/9.0.0``; ``Challenge`` (MD5) and ``Login``
(``Key`` = md5(challenge + secret)) answered ``Response: Success`` with the
action's ``ActionID`` followed by ``FullyBooted`` (not to a session logged in with
``Events: off``); ``Ping`` answers
``Ping: Pong``; ``CoreStatus`` answers ``CoreStartupDate``/``CoreStartupTime``;
any other action ``Response: Success``. It counts every action it receives,
and lets a test misbehave on purpose: stop answering (a half-open link), hold
named actions unanswered, write raw bytes, or drop the connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from dataclasses import dataclass, field

BANNER = b"Asterisk Call Manager/9.0.0\r\n"
CHALLENGE = "418151127"


@dataclass
class Received:
    connection: int
    name: str
    headers: dict[str, str]


@dataclass
class FakeAmi:
    username: str = "switchboard"
    secret: str = "fake-secret"
    startup: str = "2026-01-01 08:00:00"
    answering: bool = True  # False: read and count actions, answer nothing (half-open link)
    hold: set[str] = field(default_factory=set)  # action names never answered
    received: list[Received] = field(default_factory=list)
    connections: int = 0
    port: int = 0
    _server: asyncio.Server | None = None
    _writers: list[asyncio.StreamWriter] = field(default_factory=list)
    logins: asyncio.Queue[int] = field(default_factory=asyncio.Queue)

    async def __aenter__(self) -> FakeAmi:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.drop()
        assert self._server is not None
        self._server.close()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(2):
                await self._server.wait_closed()

    def count(self, name: str) -> int:
        return sum(1 for r in self.received if r.name == name)

    def write(self, data: bytes) -> None:
        """Raw bytes to every open connection (events, garbage, half frames)."""
        for w in self._writers:
            w.write(data)

    def drop(self) -> None:
        """Reset every open connection (as a crashed peer or a cut cable would)."""
        for w in self._writers:
            w.transport.abort()
        self._writers.clear()

    async def wait_login(self, *, timeout: float = 5.0) -> int:
        """The number of the next connection that logs in."""
        async with asyncio.timeout(timeout):
            return await self.logins.get()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        conn = self.connections
        self._writers.append(writer)
        writer.write(BANNER)
        buf = b""
        try:
            while data := await reader.read(65536):
                buf += data
                while b"\r\n\r\n" in buf:
                    frame, buf = buf.split(b"\r\n\r\n", 1)
                    self._handle(conn, writer, frame.decode("utf-8", "replace"))
        except (ConnectionError, OSError):
            pass
        finally:
            if writer in self._writers:
                self._writers.remove(writer)
            writer.close()

    def _handle(self, conn: int, writer: asyncio.StreamWriter, frame: str) -> None:
        headers: dict[str, str] = {}
        for line in frame.split("\r\n"):
            name, _, value = line.partition(": ")
            headers.setdefault(name, value)
        action = headers.get("Action", "")
        self.received.append(Received(conn, action, headers))
        if not self.answering or action in self.hold:
            return
        aid = headers.get("ActionID", "")
        head = f"Response: Success\r\nActionID: {aid}\r\n"
        if action == "Challenge":
            writer.write(f"{head}Challenge: {CHALLENGE}\r\n\r\n".encode())
        elif action == "Login":
            key = hashlib.md5((CHALLENGE + self.secret).encode()).hexdigest()
            if headers.get("Username") != self.username or headers.get("Key") != key:
                writer.write(f"Response: Error\r\nActionID: {aid}\r\nMessage: Authentication failed\r\n\r\n"
                             .encode())
                return
            writer.write(f"{head}Message: Authentication accepted\r\n\r\n".encode())
            # like manager.c: FullyBooted only to a session that takes system events
            if headers.get("Events", "on").lower() not in ("off", "no", "false", "0"):
                writer.write(b"Event: FullyBooted\r\nPrivilege: system,all\r\nUptime: 100\r\nLastReload: 100\r\n"
                             b"Status: Fully Booted\r\n\r\n")
            self.logins.put_nowait(conn)
        elif action == "Ping":
            writer.write(f"{head}Ping: Pong\r\nTimestamp: 1750000000.000000\r\n\r\n".encode())
        elif action == "CoreStatus":
            date, tm = self.startup.split(" ")
            writer.write(f"{head}CoreStartupDate: {date}\r\nCoreStartupTime: {tm}\r\nCoreReloadDate: {date}\r\n"
                         f"CoreReloadTime: {tm}\r\nCoreCurrentCalls: 0\r\n\r\n".encode())
        elif action == "Logoff":
            writer.write(f"Response: Goodbye\r\nActionID: {aid}\r\nMessage: Thanks for all the fish.\r\n\r\n"
                         .encode())
        else:
            writer.write(f"{head}Message: {action} done\r\n\r\n".encode())


def event(name: str, n: int) -> bytes:
    return (f"Event: {name}\r\nPrivilege: call,all\r\nChannel: PJSIP/trunk-{n:08x}\r\nUniqueid: 1750000000.{n}\r\n"
            f"Linkedid: 1750000000.{n}\r\nChannelState: 6\r\n\r\n").encode()
