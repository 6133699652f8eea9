"""Test helpers for the store: a TCP proxy that can cut the database link,
synthetic call timelines, and a private PostgreSQL cluster."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from switchboard.events import CallEvent


class TcpProxy:
    """Forwards 127.0.0.1:<port> to a target; ``cut()`` drops every link and refuses new
    ones until ``restore()``. The idea of asyncpg's adversity tests, written for this project."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self._server: asyncio.Server | None = None
        self._links: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self.connected = True
        self.accepted = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            await asyncio.wait_for(self._server.wait_closed(), timeout=5)
        for t in list(self._links):
            t.cancel()
        await asyncio.gather(*self._links, return_exceptions=True)

    def dsn(self, base_dsn: str) -> str:
        """``base_dsn`` with host:port replaced by the proxy's."""
        scheme, rest = base_dsn.split("://", 1)
        creds, hostpart = rest.rsplit("@", 1) if "@" in rest else ("", rest)
        _, _, path = hostpart.partition("/")
        return f"{scheme}://{creds + '@' if creds else ''}127.0.0.1:{self.port}/{path}"

    def cut(self) -> None:
        self.connected = False
        for w in list(self._writers):
            with contextlib.suppress(Exception):
                w.transport.abort()
        self._writers.clear()

    def restore(self) -> None:
        self.connected = True

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self.connected:
            writer.transport.abort()
            return
        self.accepted += 1
        try:
            up_reader, up_writer = await asyncio.wait_for(asyncio.open_connection(*self.target), timeout=5)
        except (OSError, TimeoutError):
            writer.transport.abort()
            return
        self._writers |= {writer, up_writer}

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    if not self.connected:
                        break
                    dst.write(data)
                    await dst.drain()
            except (OSError, asyncio.IncompleteReadError):
                pass
            finally:
                with contextlib.suppress(Exception):
                    dst.transport.abort()

        tasks = [asyncio.create_task(pump(reader, up_writer)), asyncio.create_task(pump(up_reader, writer))]
        self._links.update(tasks)
        try:
            await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            self._links.difference_update(tasks)
            self._writers.discard(writer)
            self._writers.discard(up_writer)


def host_port(dsn: str) -> tuple[str, int]:
    rest = dsn.split("://", 1)[1]
    hostpart = rest.rsplit("@", 1)[-1].split("/", 1)[0]
    host, _, port = hostpart.partition(":")
    return host or "127.0.0.1", int(port or 5432)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


# -- synthetic calls ------------------------------------------------------------

ICT = timedelta(hours=7)


def local(y: int, mo: int, d: int, h: int, mi: int = 0, s: float = 0) -> datetime:
    """A Vietnam local wall-clock time as an aware UTC datetime."""
    return datetime(y, mo, d, h, mi, tzinfo=UTC) - ICT + timedelta(seconds=s)


@dataclass
class CallScript:
    """Builds one call's timeline with consistent timestamps."""

    call_id: str
    start: datetime
    events: list[CallEvent] = field(default_factory=list)
    t: float = 0.0

    def add(self, dt: float, kind: str, /, **data: Any) -> CallScript:
        self.t += dt
        self.events.append(CallEvent(self.call_id, len(self.events) + 1,
                                     self.start + timedelta(seconds=self.t), kind, data))
        return self


def make_call(
    call_id: str,
    start: datetime,
    *,
    ivr_nodes: tuple[str, ...] = ("welcome", "menu"),
    topic: str | None = None,
    province: str | None = None,
    wait: float = 0.0,
    agent: str | None = None,
    talk: float | None = None,
    wrap: float | None = None,
    survey: int | None = None,
    transfers: int = 0,
    callback: str | None = None,
    callback_result: str | None = None,
    outcome: str = "answered",
    node: str | None = None,
) -> list[CallEvent]:
    c = CallScript(call_id, start)
    c.add(0, "call.started", caller="0901" + call_id[-6:], dialed="19008000", channel=f"PJSIP/t-{call_id}",
          language="vi")
    for n in ivr_nodes:
        c.add(0, "ivr.step", flow="main", flow_version="7", node=n, kind="menu")
    if topic is None:
        c.add(15, "call.ended", outcome=outcome, cause="16", node=node or ivr_nodes[-1])
        return c.events
    c.add(10, "ivr.step", flow="main", flow_version="7", node="queue", kind="enqueue")
    c.add(0, "queue.joined", topic=topic, province=province, province_source="dialed", priority=1, language="vi")
    if agent is not None:
        c.add(max(wait - 2, 0), "agent.offer", agent_id=agent, leg_uniqueid=f"leg-{call_id}")
        c.add(min(wait, 2), "call.answered", agent_id=agent, wait_s=wait)
        for i in range(transfers):
            c.add(10, "call.transfer", target=f"x{i}")
        c.add(float(talk or 0) - 10 * transfers, "agent.ended", agent_id=agent, talk_s=talk)
        if wrap is not None:
            c.add(0, "agent.wrap_up_ended", agent_id=agent, wrap_up_s=wrap, disposition="resolved")
        if survey is not None:
            c.add(1, "call.survey", score=survey, agent_id=agent)
        c.add(1, "call.ended", outcome="answered", cause="16", node="survey" if survey else "talk")
        return c.events
    if callback is not None:
        c.add(wait, "callback.requested", callback_id=callback, number="0901" + call_id[-6:])
        c.add(0, "call.ended", outcome="callback", cause="16", node="queue")
        if callback_result is not None:
            c.add(600, "callback.completed", callback_id=callback, result=callback_result)
        return c.events
    c.add(wait, "call.ended", outcome="abandoned_queue", cause="16", node="queue")
    return c.events


# -- a private cluster ------------------------------------------------------------

PG_BIN_DIRS = ("/usr/lib/postgresql/15/bin", "/usr/local/bin")


def pg_bin(name: str) -> str:
    for d in PG_BIN_DIRS:
        p = Path(d) / name
        if p.is_file():
            return str(p)
    found = shutil.which(name)
    assert found, f"{name} not found"
    return found


class PrivateCluster:
    """initdb + pg_ctl as user postgres (initdb refuses root) in a temp folder."""

    def __init__(self) -> None:
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="sb-pg-"))
        self.data = self.root / "data"
        self._as_postgres = os.geteuid() == 0

    def _run(self, *args: str, timeout: float = 60) -> None:
        cmd = list(args)
        if self._as_postgres:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        subprocess.run(cmd, check=True, timeout=timeout, capture_output=True)

    def init(self) -> None:
        if self._as_postgres:
            shutil.chown(self.root, "postgres", "postgres")
        self._run(pg_bin("initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8")
        self.start()

    def start(self) -> None:
        self._run(pg_bin("pg_ctl"), "-D", str(self.data), "-l", str(self.root / "log"), "-w", "-t", "60",
                  "-o", f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off",
                  "start")

    def stop(self, mode: str = "fast") -> None:
        self._run(pg_bin("pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop")

    def destroy(self) -> None:
        with contextlib.suppress(Exception):
            self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"


def wait_until(pred: Any, timeout: float, step: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(step)
    return bool(pred())
