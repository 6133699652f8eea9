"""A reusable in-process switchboard for end-to-end tests.

:func:`running_service` builds the real service through the composition root
(``build_application``) against the local stack (run/stack.env) and a
migrated test database, with short routing timers, the IVR clock fixed inside
opening hours, and the agents of ``deploy/agents.yaml``. Helpers start SIPp
softphones for agents, place SIPp calls, poll the ACD and read call records
back from PostgreSQL.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
from e2e_stack import ami_settings

from switchboard.acd.agents import AgentRecord, load_agents, sip_password
from switchboard.acd.service import AcdService
from switchboard.ami.client import AmiClient
from switchboard.app import Application, build_application
from switchboard.calls import CallBook
from switchboard.config import Settings, load_settings
from switchboard.demo.sipp import (
    SippAgent,
    SippResult,
    Step,
    agent_scenario,
    caller_scenario,
    sipp_binary,
)
from switchboard.events import CallEvent
from switchboard.store.migrate import apply_migrations

REPO = Path(__file__).resolve().parents[2]
#: Tuesday 3 March 2026, 10:00 in Asia/Ho_Chi_Minh: the hotline is open.
OPEN = datetime(2026, 3, 3, 3, 0, tzinfo=UTC)
HOTLINE = "19009068"

#: IVR key presses from the welcome prompt to the line: language vi, social menu, pension.
PENSION = "111"
#: language vi, health menu, health card.
HEALTH_CARD = "121"

#: Short routing timers so the tests run in seconds.
FAST_ROUTING: dict[str, Any] = {
    "ring_timeout_s": 6.0, "wrap_up_s": 3.0, "region_after_s": 6.0, "nation_after_s": 12.0,
    "reevaluate_interval_s": 0.5, "announce_interval_s": 4.0, "no_answer_limit": 2,
    "sticky_max_wait_s": 0.0, "callback_max_attempts": 2,
    "restore_agent_states_h": 0.0,   # each test logs its agents in itself (the database is shared)
}


def free_port(kind: int = socket.SOCK_DGRAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def free_port_on(host: str, kind: int) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


async def start_media_caller(env: dict[str, str], xml: str, *, ip: str) -> asyncio.subprocess.Process:
    """One SIPp call of the scenario ``xml`` from address ``ip`` (127.0.0.2: the stack's
    ``trunk-media`` endpoint, for callers that send RTP), to the hotline."""
    tmp = Path(tempfile.mkdtemp(prefix="sipp-rtp-"))
    (tmp / "scenario.xml").write_text(xml, encoding="ascii")
    args = [sipp_binary(), sip_remote(env), "-sf", str(tmp / "scenario.xml"), "-m", "1", "-i", ip,
            "-p", str(free_port_on(ip, socket.SOCK_DGRAM)), "-mp", str(free_port_on(ip, socket.SOCK_DGRAM)),
            "-s", HOTLINE, "-nostdin", "-trace_err", "-timeout", "200s", "-max_recv_loops", "1000"]
    return await asyncio.create_subprocess_exec(*args, cwd=tmp, stdin=asyncio.subprocess.DEVNULL,
                                                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)


def sip_remote(env: dict[str, str]) -> str:
    return f"127.0.0.1:{env['STACK_SIP_PORT']}"


def stack_settings(env: dict[str, str], dsn: str, *, routing: dict[str, Any] | None = None,
                   ivr: dict[str, Any] | None = None, http_port: int | None = None,
                   run_dir: str | None = None, ami: dict[str, Any] | None = None,
                   overload: dict[str, Any] | None = None, campaigns: dict[str, Any] | None = None) -> Settings:
    """Settings for the local stack with fast timers (no TOML file, no process environment)."""
    run = run_dir or tempfile.mkdtemp(prefix="sb-e2e-")
    environ = {k: v for k, v in env.items() if k.startswith("SWITCHBOARD_AMI_")}
    overrides: dict[str, dict[str, Any]] = {
        "database": {"dsn": dsn, "spool_dir": f"{run}/spool", "flush_interval": 0.05},
        "http": {"host": "127.0.0.1", "port": http_port or free_port(socket.SOCK_STREAM)},
        "paths": {"flows_dir": str(REPO / "ivr_flows"), "recordings_dir": str(REPO / "recordings"),
                  "prompts_dir": str(REPO / "recordings" / "prompts"), "run_dir": run,
                  "asterisk_prompts_dir": env["STACK_SOUND_PREFIX"],
                  "asterisk_recordings_dir": env["STACK_RECORDINGS_IN_ASTERISK"]},
        "routing": {**FAST_ROUTING, **(routing or {})},
        "ivr": {"announce_first_s": 3.0, **(ivr or {})},
        "ami": {"heartbeat_interval": 1.0, **(ami or {})},
        "overload": dict(overload or {}),
        "campaigns": dict(campaigns or {}),
    }
    return _load(environ, overrides)


def _load(environ: dict[str, str], overrides: dict[str, dict[str, Any]]) -> Settings:
    # An explicit empty TOML file: never pick up a switchboard.toml from the working folder.
    empty = Path(tempfile.mkdtemp(prefix="sb-cfg-")) / "empty.toml"
    empty.write_text("", encoding="utf-8")
    return load_settings(empty, environ=environ, overrides=overrides)


async def migrate(dsn: str) -> None:
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        await apply_migrations(conn)
    finally:
        await conn.close()


def agents_secret(env: dict[str, str]) -> str:
    return Path(env["STACK_SIP_AGENTS_SECRET_FILE"]).read_text(encoding="utf-8").strip()


def demo_agents() -> list[AgentRecord]:
    return load_agents(REPO / "deploy" / "agents.yaml")


@dataclass
class Service:
    """The running application and what the tests look at."""

    app: Application
    env: dict[str, str]
    dsn: str
    events: list[CallEvent] = field(default_factory=list)
    agents: list[SippAgent] = field(default_factory=list)
    callers: list[asyncio.Task[SippResult]] = field(default_factory=list)
    started_wall: float = field(default_factory=time.time)

    @property
    def acd(self) -> AcdService:
        acd: AcdService = self.app.context["acd"]
        return acd

    @property
    def book(self) -> CallBook:
        book: CallBook = self.app.context["book"]
        return book

    # ------------------------------------------------------------ agents

    async def agent(self, endpoint: str, *, mode: str = "answer", answer_after: float = 1.0,
                    talk: float | None = None, ready: bool = True, keys: str = "",
                    keys_after: float = 3.0) -> SippAgent:
        """Start a SIPp softphone for ``endpoint``, wait until Asterisk sees it idle, make it ready."""
        secret = agents_secret(self.env)
        sipp = SippAgent(endpoint=endpoint, password=sip_password(secret, endpoint), remote=sip_remote(self.env),
                         port=free_port(), mode=mode, answer_after=answer_after, talk=talk, keys=keys,
                         keys_after=keys_after)
        await sipp.start()
        self.agents.append(sipp)
        await until(lambda: self._contact_port(endpoint, sipp.port), timeout=10,
                    what=f"{endpoint} registered from port {sipp.port}")
        await until(lambda: self.acd.states[endpoint].device.value == "NOT_INUSE", timeout=10,
                    what=f"{endpoint} idle")
        if ready:
            self.acd.ready(endpoint)
        return sipp

    async def _contact_port(self, endpoint: str, port: int) -> bool:
        """Is ``endpoint``'s registered contact the SIPp on ``port`` (not a stale one of an earlier test)?
        Asked as the test-only admin: PJSIPShowContacts needs the system class the service's user lacks."""
        admin = AmiClient(ami_settings(self.env, admin=True))
        await admin.start(timeout=10)
        try:
            resp = await admin.send({"Action": "PJSIPShowContacts"}, timeout=5)
        finally:
            await admin.close()
        return any(ev.get("Endpoint") == endpoint and f":{port}" in (ev.get("Uri") or "")
                   for ev in getattr(resp, "events", ()))

    def status(self, agent_id: str) -> str:
        return self.acd.states[agent_id].status.value

    # ------------------------------------------------------------ calls

    def call(self, steps: Sequence[Step], *, caller: str, dialed: str = HOTLINE,
             timeout: float = 90.0) -> asyncio.Task[SippResult]:
        """Place a SIPp call in the background (killed when the service stops)."""
        task = asyncio.create_task(run_caller(caller_scenario(steps, caller=caller), remote=sip_remote(self.env),
                                              service=dialed, timeout=timeout))
        self.callers.append(task)
        return task

    def pstn(self, *, mode: str = "answer", answer_after: float = 1.0, talk: float | None = 3.0,
             calls: int = 1, timeout: float = 90.0, expect_number: str = "") -> asyncio.Task[SippResult]:
        """The local "PSTN" behind the trunk (STACK_TRUNK_OUT_PORT): a SIPp UAS that plays
        the called-back caller for ``calls`` calls. ``expect_number``: SIPp fails the call
        unless the INVITE's Request-URI is ``sip:<expect_number>@...``. The generator's own
        scenario (``agent_scenario``), as the product ships it."""
        scenario = agent_scenario(answer_after=answer_after, mode=mode, talk=talk, expect_number=expect_number)
        task = asyncio.create_task(run_caller(scenario, remote=sip_remote(self.env), service="", timeout=timeout,
                                              port=int(self.env["STACK_TRUNK_OUT_PORT"]), calls=calls))
        self.callers.append(task)
        return task

    def call_ids_of(self, caller: str) -> list[str]:
        return [ev.call_id for ev in self.events if ev.kind == "call.started" and ev.data.get("caller") == caller]

    def call_id_of(self, caller: str) -> str | None:
        for ev in self.events:
            if ev.kind == "call.started" and ev.data.get("caller") == caller:
                return ev.call_id
        return None

    async def wait_call_id(self, caller: str, *, timeout: float = 15.0) -> str:
        await until(lambda: self.call_id_of(caller) is not None, timeout=timeout, what=f"call from {caller}")
        cid = self.call_id_of(caller)
        assert cid is not None
        return cid

    def kinds(self, call_id: str) -> list[str]:
        return [e.kind for e in self.events if e.call_id == call_id]

    def of(self, call_id: str, kind: str) -> list[CallEvent]:
        return [e for e in self.events if e.call_id == call_id and e.kind == kind]

    async def wait_event(self, call_id: str, kind: str, *, timeout: float = 30.0,
                         where: Callable[[CallEvent], bool] = lambda e: True) -> CallEvent:
        await until(lambda: any(where(e) for e in self.of(call_id, kind)), timeout=timeout,
                    what=f"{kind} on {call_id}; so far {self.kinds(call_id)}; all {[(e.call_id, e.seq, e.kind) for e in self.events]}")
        return next(e for e in self.of(call_id, kind) if where(e))

    # ------------------------------------------------------------ the database

    async def record(self, call_id: str, *, timeout: float = 15.0,
                     until: Sequence[str] = ("call.ended",)) -> tuple[asyncpg.Record, list[asyncpg.Record]]:
        """The ``calls`` row and the timeline (seq, kind, data) once every kind in ``until`` is stored."""
        conn = await asyncpg.connect(self.dsn, timeout=10)
        try:
            deadline = time.monotonic() + timeout
            while True:
                events = await conn.fetch("SELECT seq, kind, data FROM call_events WHERE call_id = $1 "
                                          "ORDER BY seq", call_id, timeout=5)
                row = await conn.fetchrow("SELECT * FROM calls WHERE call_id = $1", call_id, timeout=5)
                if row is not None and set(until) <= {e["kind"] for e in events}:
                    return row, list(events)
                if time.monotonic() > deadline:
                    raise AssertionError(f"{until} of {call_id} not stored within {timeout}s: "
                                         f"{[e['kind'] for e in events]}")
                await asyncio.sleep(0.2)
        finally:
            await conn.close()

    async def fetch(self, query: str, *args: Any) -> list[asyncpg.Record]:
        conn = await asyncpg.connect(self.dsn, timeout=10)
        try:
            return list(await conn.fetch(query, *args, timeout=5))
        finally:
            await conn.close()


async def until(cond: Callable[[], bool | Awaitable[bool]], *, timeout: float, what: str = "",
                interval: float = 0.1) -> None:
    """Poll ``cond`` until it is true; AssertionError naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if not isinstance(value, bool):
            value = await value
        if value:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(interval)


async def run_caller(scenario_xml: str, *, remote: str, service: str, timeout: float, port: int = 0,
                     calls: int = 1, ip: str = "127.0.0.1", call_id: str = "") -> SippResult:
    """``run_sipp``, but the SIPp process dies with the task (a cancelled test leaves no caller behind).
    ``ip``: the address SIPp sends from; ``call_id``: a fixed Call-ID (SIPp's ``-cid_str``)."""
    tmp = Path(tempfile.mkdtemp(prefix="sipp-caller-"))
    scen = tmp / "scenario.xml"
    scen.write_text(scenario_xml, encoding="ascii", errors="xmlcharrefreplace")
    args = [sipp_binary(), remote, "-sf", str(scen), "-m", str(calls), "-i", ip, "-p", str(port),
            "-nostdin", "-trace_err", "-timeout", f"{int(timeout)}s", "-timeout_error", "-max_recv_loops", "1000"]
    if call_id:
        args += ["-cid_str", call_id]
    if service:
        args += ["-s", service]
    proc = await asyncio.create_subprocess_exec(*args, cwd=tmp, stdin=asyncio.subprocess.DEVNULL,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout + 10)
    except BaseException:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        raise
    errors = "".join(p.read_text(errors="replace") for p in tmp.glob("*_errors.log"))  # noqa: ASYNC240
    return SippResult(proc.returncode if proc.returncode is not None else -1,
                      out.decode(errors="replace"), err.decode(errors="replace"), errors)


async def hang_up_leftovers(env: dict[str, str]) -> int:
    """Hang up channels left on the shared Asterisk by an earlier (failed) run: we hold the e2e turn,
    so nothing else may be calling now, and a stale agent channel would make that agent look busy."""
    client = AmiClient(ami_settings(env))
    await client.start(timeout=10)
    try:
        listing = await client.send({"Action": "CoreShowChannels"}, timeout=5)
        names = [ev.get("Channel") or "" for ev in getattr(listing, "events", ()) if ev.name == "CoreShowChannel"]
        for name in names:
            await client.send({"Action": "Hangup", "Channel": name}, timeout=5)
        if names:
            await until(lambda: _no_channels(client), timeout=5, what="leftover channels gone")
        return len(names)
    finally:
        await client.close()


async def _no_channels(client: AmiClient) -> bool:
    listing = await client.send({"Action": "CoreShowChannels"}, timeout=5)
    return not any(ev.name == "CoreShowChannel" for ev in getattr(listing, "events", ()))


async def close_owed_callbacks(dsn: str) -> int:
    """Close the callbacks earlier tests left owed in the shared database (the service would
    put them back in line and dial them), as the service would: a final ``callback.completed``."""
    import json

    from switchboard.store.callbacks import open_callbacks

    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        owed = await open_callbacks(conn, since=datetime.now(UTC) - timedelta(days=30))
        for cb in owed:
            await conn.execute(
                "INSERT INTO call_events (call_id, seq, ts, kind, data) SELECT $1, max(seq) + 1, now(), "
                "'callback.completed', $2::jsonb FROM call_events WHERE call_id = $1", cb.call_id,
                json.dumps({"callback_id": cb.callback_id, "result": "expired", "final": True, "by": "e2e harness"}))
    finally:
        await conn.close(timeout=5)
    return len(owed)


@contextlib.asynccontextmanager
async def running_service(env: dict[str, str], dsn: str, *, routing: dict[str, Any] | None = None,
                          ivr: dict[str, Any] | None = None, agents: list[AgentRecord] | None = None,
                          keep_owed_callbacks: bool = False, ami: dict[str, Any] | None = None,
                          overload: dict[str, Any] | None = None, campaigns: dict[str, Any] | None = None,
                          clock: Callable[[], datetime] | None = None) -> AsyncIterator[Service]:
    """Start the whole service in this process; stop it (and every SIPp agent) afterwards.

    Callbacks owed by earlier tests are closed first unless ``keep_owed_callbacks``. ``clock``
    replaces the service's clock (default: the hotline open, at :data:`OPEN`, running)."""
    await migrate(dsn)
    if not keep_owed_callbacks:
        await close_owed_callbacks(dsn)
    settings = stack_settings(env, dsn, routing=routing, ivr=ivr, ami=ami, overload=overload, campaigns=campaigns)
    started = time.monotonic()
    app = build_application(settings, agents=agents if agents is not None else demo_agents(),
                            clock=clock or (lambda: OPEN + timedelta(seconds=time.monotonic() - started)))
    svc = Service(app=app, env=env, dsn=dsn)
    app.context["bus"].sinks.append(svc.events.append)
    await hang_up_leftovers(env)
    await app.start()
    try:
        await until(lambda: bool(app.context["client"].connected), timeout=10, what="AMI connected")
        yield svc
    finally:
        for task in svc.callers:
            task.cancel()
        await asyncio.gather(*svc.callers, return_exceptions=True)
        for a in svc.agents:
            await a.stop()
        await app.stop()
