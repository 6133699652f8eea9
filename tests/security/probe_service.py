"""The security probe's helpers: a TCP proxy that can cut the database, and what the probe
saw of the service (shared by conftest.py and the tests; importable as ``probe_service``)."""

from __future__ import annotations

import asyncio
import socket
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e"))
from e2e_process import run_cli

TRUSTED_PROXY = "127.0.0.1"      # the probe's own address: X-Forwarded-For from it is believed
UNTRUSTED_PEER = "127.0.0.2"     # another loopback address: X-Forwarded-For from it is not


class TcpProxy:
    """A TCP relay on 127.0.0.1 to (host, port), run in its own thread; ``cut()`` closes the
    listener and every relayed connection (the database is unreachable), ``restore()`` listens again."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.target_port = host, port
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._thread = threading.Thread(target=self._loop.run_forever, name="db-proxy", daemon=True)
        self._thread.start()
        self._run(self._listen())

    def _run(self, coro: object) -> object:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(10)  # type: ignore[arg-type]

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(self.host, self.target_port)
        except OSError:
            writer.transport.abort()
            return
        self._writers |= {writer, up_writer}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (OSError, asyncio.CancelledError):
                pass
            finally:
                dst.transport.abort()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        self._writers -= {writer, up_writer}

    async def _cut(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for w in list(self._writers):
            w.transport.abort()
        self._writers.clear()

    def cut(self) -> None:
        self._run(self._cut())

    def restore(self) -> None:
        self._run(self._listen())

    def close(self) -> None:
        self._run(self._cut())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)


@dataclass
class Probe:
    """The running service and what the probe saw."""

    base: str
    port: int
    config: Path
    log: Path
    dsn: str                       # the database itself (not through the proxy)
    proxy: TcpProxy
    tokens: dict[str, str] = field(default_factory=dict)      # name -> token
    seen: list[tuple[int, str]] = field(default_factory=list)  # (status, "METHOD path")

    def saw(self, status: int, what: str) -> int:
        self.seen.append((status, what))
        return status

    def token_id(self, name: str) -> str:
        return self.tokens[name][3:15]

    async def new_token(self, name: str, role: str, agent: str | None = None, *extra: str) -> str:
        args = ["tokens", "create", "--role", role, "--name", name, *(["--agent", agent] if agent else []), *extra]
        token = (await run_cli(self.config, *args)).strip().splitlines()[-1]
        self.tokens[name] = token
        return token

    async def revoke(self, token_id: str) -> None:
        await run_cli(self.config, "tokens", "revoke", token_id)


def free_loopback(addr: str) -> bool:
    """Whether the probe may bind ``addr`` as a source address (Linux routes all of 127/8 to lo)."""
    with socket.socket() as s:
        try:
            s.bind((addr, 0))
        except OSError:
            return False
    return True
