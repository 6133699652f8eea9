"""Two service processes on one stack (active/standby, docs/ha.md): their configs, their
role as ``/readyz`` tells it, and the call records of a test's callers."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
from e2e_process import ServiceProcess, service_config, write_config
from e2e_service import free_port, hang_up_leftovers, until

from switchboard.store.seed import seed_demo


def ha_config(env: dict[str, str], dsn: str, run_dir: Path, instance: str) -> tuple[Path, int]:
    """A config for one instance (its own HTTP port and spool), leadership on."""
    run_dir.mkdir(parents=True, exist_ok=True)
    port = free_port(socket.SOCK_STREAM)
    config = run_dir / "switchboard.toml"
    write_config(config, env, dsn, port, run_dir)
    with config.open("a", encoding="utf-8") as f:
        f.write(f'\n[ha]\nenabled = true\ninstance = "{instance}"\npoll_s = 0.5\nwatch_s = 0.5\n')
    return config, port


async def two_instances(env: dict[str, str], dsn: str, tmp_path: Path, *,
                        dsn_a: str | None = None) -> tuple[HaProcess, HaProcess]:
    """Instances a and b (not started) on a migrated database with the demo agents and
    participants; ``dsn_a``: the leader-to-be reaches PostgreSQL there (a proxy)."""
    (tmp_path / "a").mkdir()
    await service_config(env, dsn, tmp_path / "a")
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        await seed_demo(conn)
    finally:
        await conn.close()
    config_a, port_a = ha_config(env, dsn_a or dsn, tmp_path / "a", "a")
    config_b, port_b = ha_config(env, dsn, tmp_path / "b", "b")
    return HaProcess(config_a, tmp_path / "a.log", port_a), HaProcess(config_b, tmp_path / "b.log", port_b)


class HeartbeatWatch:
    """Asterisk's side: the heartbeat's value read every 20 ms by an independent AMI session."""

    def __init__(self, ami: Any) -> None:
        self.ami = ami
        self.values: list[tuple[float, str]] = []   # (time.monotonic(), value)
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        from switchboard.telephony import heartbeat

        while not self._stop.is_set():
            with contextlib.suppress(Exception):
                got = await self.ami.send(heartbeat.get_action(), timeout=2)
                self.values.append((time.monotonic(), got.headers.get("Value") or ""))
            await asyncio.sleep(0.02)

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            with contextlib.suppress(Exception):
                await self._task

    def changes(self) -> list[str]:
        """The values as they changed (for a failure message)."""
        return [v for i, (_, v) in enumerate(self.values) if i == 0 or v != self.values[i - 1][1]]


@dataclass(frozen=True)
class LoggedAction:
    """One AMI action as Asterisk logged it (``manager set debug on``): its place in the log,
    Asterisk's timestamp, and its headers."""

    index: int
    at: str
    name: str
    action_id: str
    headers: dict[str, str]

    def sent_by(self, mark: str) -> bool:
        """Sent by the process whose mark is ``mark`` (``switchboard.ami.client.PROCESS_MARK``)."""
        return self.action_id.startswith(f"sb{mark}.")


class AsteriskActionLog:
    """Asterisk's side, written by Asterisk itself: every AMI action it reads, from every session,
    in the order it examines them, into a log file of the stack's Asterisk (a temporary logger
    channel, ``logger add channel``, with ``manager set debug on``: manager.c logs each action's
    headers; secrets redacted). Each instance's ActionIDs carry its process mark."""

    def __init__(self, env: dict[str, str], name: str) -> None:
        self.env = env
        self.name = name
        self.path = Path(env["STACK_ASTERISK_ROOT"]) / "var/log/asterisk" / name

    async def start(self) -> None:
        from e2e_stack import asterisk_cli

        self.path.unlink(missing_ok=True)
        await asterisk_cli(self.env, f"logger add channel {self.name} verbose")
        await asterisk_cli(self.env, "manager set debug on")

    async def stop(self) -> None:
        from e2e_stack import asterisk_cli

        await asterisk_cli(self.env, "manager set debug off")
        await asterisk_cli(self.env, f"logger remove channel {self.name}")

    def actions(self) -> list[LoggedAction]:
        out: list[LoggedAction] = []
        lines = self.path.read_text(errors="replace").splitlines() if self.path.is_file() else []
        i = 0
        while i < len(lines):
            line = lines[i]
            i += 1
            if "<--- Examining AMI action: -->" not in line:
                continue
            headers: dict[str, str] = {}
            while i < len(lines) and lines[i] and not lines[i].startswith("["):
                key, _, value = lines[i].partition(": ")
                headers[key] = value
                i += 1
            out.append(LoggedAction(len(out), line[1:line.index("]")], headers.get("Action", ""),
                                    headers.get("ActionID", ""), headers))
        return out


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


async def leader_and_standby(a: HaProcess, b: HaProcess) -> None:
    """Start ``a`` and wait until it leads, then ``b`` until it stands by."""
    await a.start()
    await a.wait_role("leader", timeout=10)
    await b.start()
    await b.wait_role("standby", timeout=10)


async def wind_down(env: dict[str, str], tasks: list[asyncio.Task[Any]], *instances: HaProcess,
                    watch: HeartbeatWatch | None = None) -> None:
    """End a test: the watch, the callers, the instances, what is left on the stack."""
    if watch is not None:
        await watch.stop()
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    for instance in instances:
        await instance.stop()
    await hang_up_leftovers(env)
