"""The security probe's service: ``switchboard run`` as a real process on the local stack
(Asterisk 22 for AMI, PostgreSQL), reached over real HTTP and websockets.

Its database is reached through a TCP proxy that the tests can cut, to show what a
database outage looks like from outside. Every HTTP status the probe sees is kept, so
the last test can check that none was a 500.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e"))
from e2e_lock import e2e_turn as _turn
from e2e_process import cli, run_cli, service_config

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


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return bool(r.status == 200)
    except OSError:
        return False


@pytest.fixture(scope="module")
def probe_db(pg_dsn: str) -> Iterator[str]:
    """A database of the probe's own: its hostile rows never meet other tests' counts."""
    import asyncpg

    name = f"sbsec_{uuid.uuid4().hex[:12]}"

    async def sql(statement: str) -> None:
        conn = await asyncpg.connect(pg_dsn, timeout=10)  # the session's database, to create ours beside it
        try:
            await conn.execute(statement, timeout=30)
        finally:
            await conn.close(timeout=5)

    asyncio.run(sql(f'CREATE DATABASE "{name}"'))
    try:
        yield urlunsplit(urlsplit(pg_dsn)._replace(path=f"/{name}"))
    finally:
        asyncio.run(sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="module")  # gone before later e2e tests place calls on the same Asterisk
def probe(stack_env: dict[str, str], probe_db: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Probe]:
    pg_dsn = probe_db
    run_dir = tmp_path_factory.mktemp("security")
    parts = urlsplit(pg_dsn)
    proxy = TcpProxy(parts.hostname or "127.0.0.1", parts.port or 5432)
    netloc = parts.netloc.rsplit("@", 1)
    via_proxy = urlunsplit(parts._replace(netloc=(netloc[0] + "@" if len(netloc) == 2 else "")
                                          + f"127.0.0.1:{proxy.port}"))
    with _turn("security"):
        config, port = asyncio.run(service_config(stack_env, pg_dsn, run_dir))
        text = config.read_text(encoding="utf-8")
        text = text.replace(f'dsn = "{pg_dsn}"', f'dsn = "{via_proxy}"')
        text = text.replace("[http]\n", f'[http]\ntrusted_proxies = ["{TRUSTED_PROXY}"]\n', 1)
        config.write_text(text, encoding="utf-8")
        log = run_dir / "service.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("SWITCHBOARD_")}
        env["SWITCHBOARD_CONFIG"] = str(config)
        with log.open("ab") as out:
            proc = subprocess.Popen([*cli(config, "run")[:1], "run"], env=env, stdout=out, stderr=out,
                                    start_new_session=True)
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 30
            while not _ready(base + "/readyz"):
                assert proc.poll() is None, log.read_text(errors="replace")[-3000:]
                assert time.monotonic() < deadline, "service not ready: " + log.read_text(errors="replace")[-3000:]
                time.sleep(0.3)
            yield Probe(base=base, port=port, config=config, log=log, dsn=pg_dsn, proxy=proxy)
        finally:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            proxy.close()


def free_loopback(addr: str) -> bool:
    """Whether the probe may bind ``addr`` as a source address (Linux routes all of 127/8 to lo)."""
    with socket.socket() as s:
        try:
            s.bind((addr, 0))
        except OSError:
            return False
    return True
