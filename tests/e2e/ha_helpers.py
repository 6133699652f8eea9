"""Two service processes on one stack (active/standby, docs/ha.md): their configs, their
role as ``/readyz`` tells it, and the call records of a test's callers."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
from e2e_process import ServiceProcess, write_config
from e2e_service import free_port, until


def ha_config(env: dict[str, str], dsn: str, run_dir: Path, instance: str) -> tuple[Path, int]:
    """A config for one instance (its own HTTP port and spool), leadership on."""
    run_dir.mkdir(parents=True, exist_ok=True)
    port = free_port(socket.SOCK_STREAM)
    config = run_dir / "switchboard.toml"
    write_config(config, env, dsn, port, run_dir)
    with config.open("a", encoding="utf-8") as f:
        f.write(f'\n[ha]\nenabled = true\ninstance = "{instance}"\npoll_s = 0.5\nwatch_s = 0.5\n')
    return config, port


class HaProcess(ServiceProcess):
    """A service instance that may come up as a standby (``/readyz`` 503): up = ``/healthz``."""

    async def start(self) -> None:
        await super().start()

    async def _ready(self) -> bool:
        try:
            async with aiohttp.ClientSession() as s, s.get(f"http://127.0.0.1:{self.http_port}/healthz",
                                                           timeout=aiohttp.ClientTimeout(total=2)) as r:
                return r.status == 200
        except (aiohttp.ClientError, TimeoutError):
            return False

    async def readyz(self) -> dict[str, Any]:
        try:
            async with aiohttp.ClientSession() as s, s.get(f"http://127.0.0.1:{self.http_port}/readyz",
                                                           timeout=aiohttp.ClientTimeout(total=2)) as r:
                body: dict[str, Any] = await r.json()
                body["status"] = r.status
                return body
        except (aiohttp.ClientError, TimeoutError):
            return {"status": 0, "role": "down"}

    async def role(self) -> str:
        return str((await self.readyz()).get("role", "down"))

    async def wait_role(self, role: str, *, timeout: float) -> None:
        async def is_it() -> bool:
            return await self.role() == role
        await until(is_it, timeout=timeout, what=f"instance on {self.http_port} {role} (log {self.log})",
                    interval=0.05)

    async def exit_code(self, *, timeout: float) -> int | None:
        assert self.proc is not None
        try:
            return await asyncio.wait_for(self.proc.wait(), timeout)
        except TimeoutError:
            return None


async def fetch(dsn: str, query: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        return list(await conn.fetch(query, *args, timeout=10))
    finally:
        await conn.close()


async def call_ids(dsn: str, caller: str) -> list[str]:
    rows = await fetch(dsn, "SELECT call_id FROM calls WHERE caller = $1", caller)
    return [r["call_id"] for r in rows]


async def events(dsn: str, call_id: str) -> list[asyncpg.Record]:
    return await fetch(dsn, "SELECT seq, kind, data FROM call_events WHERE call_id = $1 ORDER BY seq", call_id)


async def has_event(dsn: str, caller: str, kind: str, **data: str) -> bool:
    rows = await fetch(dsn, "SELECT data FROM call_events WHERE kind = $1 AND call_id IN "
                       "(SELECT call_id FROM call_events WHERE kind = 'call.started' AND data->>'caller' = $2)",
                       kind, caller)
    import json
    return any(all(json.loads(r["data"]).get(k) == v for k, v in data.items()) for r in rows)


class TcpProxy:
    """A TCP proxy to PostgreSQL that the test can cut (both sides closed, new ones refused)."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = free_port(socket.SOCK_STREAM)
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_r, up_w = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        self._writers |= {writer, up_w}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                dst.close()

        await asyncio.gather(pipe(reader, up_w), pipe(up_r, writer), return_exceptions=True)

    async def cut(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for w in list(self._writers):
            w.transport.abort()
        self._writers.clear()
