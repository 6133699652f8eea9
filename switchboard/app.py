"""Composition root: build the parts, start them in order, stop them in reverse.

Signal handlers only set a flag (an asyncio Event); the main coroutine notices
it, stops every started part in reverse order with a bounded wait each, and
logs any part it had to cancel. Nothing else in the code base wires parts
together.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from switchboard.config import Settings

log = logging.getLogger("switchboard.app")


class Part(Protocol):
    """Something the application starts and stops."""

    name: str

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


@dataclass
class FuncPart:
    """A part made of two coroutine functions (handy for small pieces)."""

    name: str
    on_start: Callable[[], Awaitable[None]]
    on_stop: Callable[[], Awaitable[None]]

    async def start(self) -> None:
        await self.on_start()

    async def stop(self) -> None:
        await self.on_stop()


@dataclass
class Application:
    settings: Settings
    parts: list[Part] = field(default_factory=list)
    stop_timeout: float = 10.0
    _started: list[Part] = field(default_factory=list)
    _stopping: asyncio.Event = field(default_factory=asyncio.Event)
    reload_hooks: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    context: dict[str, Any] = field(default_factory=dict)   # the built parts, by name (for tests and tools)

    def add(self, part: Part) -> Part:
        self.parts.append(part)
        return part

    def request_stop(self) -> None:
        self._stopping.set()

    async def start(self) -> None:
        for part in self.parts:
            log.info("starting %s", part.name)
            await part.start()
            self._started.append(part)
        log.info("switchboard started (%d parts)", len(self._started))

    async def stop(self) -> list[str]:
        """Stop started parts in reverse order; returns the names that had to be cancelled."""
        cancelled: list[str] = []
        while self._started:
            part = self._started.pop()
            log.info("stopping %s", part.name)
            task = asyncio.ensure_future(part.stop())
            done, _ = await asyncio.wait({task}, timeout=self.stop_timeout)
            if not done:
                task.cancel()
                cancelled.append(part.name)
                log.warning("%s did not stop within %.1fs: cancelled", part.name, self.stop_timeout)
                try:
                    await task
                except (asyncio.CancelledError, Exception):
                    pass
            elif task.exception() is not None:
                log.error("%s failed while stopping: %r", part.name, task.exception())
        log.info("switchboard stopped")
        return cancelled

    async def _reload(self) -> None:
        for hook in self.reload_hooks:
            try:
                await hook()
            except Exception:
                log.exception("reload hook failed")

    async def run_forever(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop)
        loop.add_signal_handler(signal.SIGHUP, lambda: asyncio.ensure_future(self._reload()))
        try:
            await self.start()
        except Exception:
            log.exception("start-up failed")
            await self.stop()
            return 1
        await self._stopping.wait()
        log.info("stop requested")
        await self.stop()
        return 0


async def cancel_leftover_tasks() -> list[str]:
    """Cancel tasks still running after every part stopped; log and return their names."""
    pending = [t for t in asyncio.all_tasks() if t is not asyncio.current_task() and not t.done()]
    for t in pending:
        t.cancel()
    if pending:
        log.warning("cancelled %d leftover task(s): %s", len(pending),
                    ", ".join(sorted({t.get_name() for t in pending})))
        await asyncio.gather(*pending, return_exceptions=True)
    return [t.get_name() for t in pending]


def build_application(settings: Settings, *, agents: Any = None, clock: Any = None) -> Application:
    """Build every part of the service from the Settings, in start order.

    ``agents`` (a list of agent records) replaces loading them from the
    database; ``clock`` replaces the IVR's clock (tests and drills).
    """
    app = Application(settings=settings)
    wire(app, agents=agents, clock=clock)
    return app


# ---------------------------------------------------------------------------- wiring


def _abs(path: str) -> str:
    return str(Path(path).resolve())


class _Pool:
    """The asyncpg pool as a part. It connects lazily, so the service starts
    (and spools call events) while the database is away."""

    name = "database-pool"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.pool: Any = None

    async def start(self) -> None:
        import dataclasses

        from switchboard.store.pool import create_pool

        # pool_min 0: no connection is opened (or waited for) until one is needed.
        db = self.settings.database
        self.pool = await create_pool(dataclasses.replace(db, pool_min=0, pool_max=max(1, db.pool_max)))

    async def stop(self) -> None:
        from switchboard.store.pool import close_pool

        if self.pool is not None:
            await close_pool(self.pool, timeout=5)


class _Ami:
    name = "ami"

    def __init__(self, client: Any, timeout: float) -> None:
        self.client = client
        self.timeout = timeout

    async def start(self) -> None:
        await self.client.start(wait=False)
        try:
            await self.client.wait_connected(timeout=self.timeout)
        except Exception as exc:
            log.error("AMI not connected yet (%s); retrying in the background", exc)

    async def stop(self) -> None:
        await self.client.close()


class _Periodic:
    """A part that runs ``once()`` at start and then every ``interval`` seconds until stopped."""

    name = "periodic"
    interval = 60.0

    def __init__(self) -> None:
        self._task: asyncio.Task[None] | None = None

    async def once(self) -> None:
        raise NotImplementedError

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            await self.once()

    async def start(self) -> None:
        await self.once()
        self._task = asyncio.create_task(self._loop(), name=f"{self.name}-every-{self.interval:g}s")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


class _AgentLoader(_Periodic):
    """Loads the agents from PostgreSQL into the ACD at start and every minute."""

    name = "agents"

    def __init__(self, acd: Any, pool_part: _Pool, fixed: Any, *, restore_states_h: float = 0.0) -> None:
        super().__init__()
        self.acd = acd
        self.pool_part = pool_part
        self.fixed = fixed
        self.restore_states_h = restore_states_h
        self.loaded: int | None = None

    async def load(self) -> int:
        if self.fixed is not None:
            self.acd.set_agents(self.fixed)
            return len(self.fixed)
        from switchboard.store.agents import load_agents

        try:
            async with self.pool_part.pool.acquire(timeout=5) as conn:
                records = await load_agents(conn, timeout=5)
        except Exception as exc:
            log.error("cannot load agents from the database: %s", exc)
            return 0
        self.acd.set_agents(records)
        return len(records)

    async def once(self) -> None:
        n = await self.load()
        if self.loaded is None:
            log.info("%d agents loaded", n)
            if self.restore_states_h > 0:
                await self.restore_states()
        self.loaded = n

    async def restore_states(self) -> list[str]:
        """Agents take back their last logged state (the service restarted under them)."""
        from datetime import timedelta

        from switchboard.store.agents import last_agent_states

        since = datetime.now(UTC) - timedelta(hours=self.restore_states_h)
        try:
            async with self.pool_part.pool.acquire(timeout=5) as conn:
                last = await last_agent_states(conn, since=since, timeout=5)
        except Exception as exc:
            log.error("agent states not restored (agents log in again): %s", exc)
            return []
        return list(self.acd.restore_states(last))


class _CallbackSweep(_Periodic):
    """Owed callbacks from the database into the ACD's line: at start (so a restart of the
    service loses none) and every ``interval`` (callbacks asked after hours join the line)."""

    name = "callbacks"

    def __init__(self, acd: Any, pool_part: _Pool, bus: Any, *, sweep_s: float, max_age_s: float) -> None:
        super().__init__()
        self.acd = acd
        self.pool_part = pool_part
        self.bus = bus
        self.interval = sweep_s
        self.max_age_s = max_age_s

    async def sweep(self) -> list[str]:
        """Restore what is owed; the call ids put back in line."""
        from datetime import timedelta

        from switchboard.calls import adopted_seq_base
        from switchboard.store.callbacks import callbacks_granted, open_callbacks

        now = datetime.now(UTC)
        since = now - timedelta(seconds=2 * self.max_age_s)  # older ones: expired long ago
        cap = self.acd.numbers.cap
        day_start = datetime.fromisoformat(cap.day_of(now)).replace(tzinfo=cap.tz)
        try:
            async with self.pool_part.pool.acquire(timeout=5) as conn:
                owed = await open_callbacks(conn, since=since, timeout=10)
                granted = await callbacks_granted(conn, since=day_start, timeout=10)
        except Exception as exc:  # the database is away: the next sweep tries again
            log.warning("owed callbacks not read from the database: %s", exc)
            return []
        # the daily cap counts what the database holds for today: a restart does not reset it
        counts: dict[str, int] = {}
        for raw, n in granted.items():
            number = self.acd.numbers.policy.check(raw).number
            if number:
                counts[number] = counts.get(number, 0) + n
        cap.seed(counts, now)
        base = adopted_seq_base()
        for cb in owed:  # events of a call the previous process numbered continue above its numbers
            if not self.bus.knows(cb.call_id):
                self.bus.seed(cb.call_id, base)
        return list(self.acd.restore_callbacks(owed, max_age_s=self.max_age_s))

    async def once(self) -> None:
        restored = await self.sweep()
        if restored:
            log.info("%d owed callback(s) back in line", len(restored))


def wire(app: Application, *, agents: Any = None, clock: Any = None) -> None:
    """Build the parts in start order: database, writer, AMI, IVR, ACD, heartbeat, HTTP."""
    from datetime import timedelta

    from switchboard.acd.hold import HoldLoop
    from switchboard.acd.service import AcdService, new_callback_id
    from switchboard.ami.agi import AgiManager
    from switchboard.ami.client import AmiClient
    from switchboard.api import pg_services
    from switchboard.api.acd_services import (
        AcdAgentService,
        AcdQueueService,
        AmiSupervisorService,
        agent_view,
    )
    from switchboard.api.app import HUB, ApiServer, create_app
    from switchboard.api.live import Audience, LiveMessage
    from switchboard.api.pg_tokens import PgTokenStore
    from switchboard.api.services import PreviousCall, Services, provinces_from_geo
    from switchboard.calls import CallBook, CallEventBus
    from switchboard.geo import load_provinces, normalize_number
    from switchboard.ivr.registry import FlowRegistry
    from switchboard.ivr.runner import IvrRunner
    from switchboard.logging_setup import register_secret
    from switchboard.loop_lag import LoopLag
    from switchboard.metrics import Metrics
    from switchboard.store import calls_query
    from switchboard.store.agent_log import AgentStateLog
    from switchboard.store.participants import ParticipantLookup
    from switchboard.store.writer import EventWriter
    from switchboard.telephony.entry import AgiEntry
    from switchboard.telephony.features import FeatureCodes
    from switchboard.telephony.heartbeat import Heartbeat
    from switchboard.telephony.numbers import NumberRefused, default_callback_numbers
    from switchboard.telephony.overload import OverloadCheck
    from switchboard.telephony.rescue import Reconciler, Rescuer

    s = app.settings
    secret = s.ami.resolved_secret()
    register_secret(secret)
    provinces = load_provinces()

    # storage
    pool_part = _Pool(s)
    app.add(pool_part)
    writer = EventWriter(s.database)
    app.add(writer)
    state_log = AgentStateLog(s.database.dsn)
    app.add(state_log)

    # events: one bus, numbered per call, to the writer, the metrics and the browsers
    metrics = Metrics(service_level_s=s.routing.service_level_s, short_abandon_s=s.routing.short_abandon_s,
                      provinces=[p.id for p in provinces])
    bus = CallEventBus([writer.submit, metrics.observe_event])
    book = CallBook(bus)

    # AMI and AsyncAGI
    client = AmiClient(s.ami)
    app.add(_Ami(client, s.ami.connect_timeout))

    # IVR
    registry = FlowRegistry(s.paths.flows_dir, s.paths.prompts_dir)
    report = registry.reload()
    if not registry.flows:
        raise RuntimeError(f"no valid IVR flow in {s.paths.flows_dir}: {report}")

    async def reload_flows() -> None:
        result = registry.reload()
        log.info("flows reloaded: %s", result)

    app.reload_hooks.append(reload_flows)

    sound_prefix = s.paths.asterisk_prompts_dir or _abs(s.paths.prompts_dir)
    rec_dir = s.paths.asterisk_recordings_dir or _abs(s.paths.recordings_dir)

    # the CRM look-up of the flow's lookup node: its own pool share, a cache, a deadline
    def province_id(name: str) -> str | None:
        unit = provinces.find(name)
        return unit.id if unit is not None else None

    lookup = ParticipantLookup(s.database, province_id=province_id, normalize=normalize_number)
    app.add(lookup)

    offset = timedelta(seconds=s.ivr.clock_offset_s)

    def ivr_clock() -> datetime:
        return (clock() if clock is not None else datetime.now(UTC)) + offset

    # ACD; every number dialled out (callbacks, transfers) goes through one policy
    numbers = default_callback_numbers(s.numbers)
    acd = AcdService(ami=client, routing=s.routing, agents=(), region_of=provinces.region_of_map(),
                     emit=book.emit, recordings_dir=rec_dir,
                     hold=HoldLoop(sound_prefix=sound_prefix, interval_s=s.routing.announce_interval_s,
                                   first_after_s=s.ivr.announce_first_s, moh_class=s.ivr.moh_class,
                                   callbacks=s.ivr.callbacks),
                     numbers=numbers)

    entry_holder: dict[str, AgiEntry] = {}

    async def after_hours_callback(session: Any, cmd: Any) -> str:
        """A callback asked in the flow (after hours): recorded now, in line at the next sweep.
        Raises ``NumberRefused`` when the number policy (or the daily cap) refuses the number."""
        now = datetime.now(UTC)
        decision = acd.numbers.decide(cmd.number, now)
        if not decision.ok:
            raise NumberRefused(decision)
        acd.numbers.grant(decision.number, now)
        return new_callback_id()

    runner = IvrRunner(registry, emit=lambda kind, data: entry_holder["entry"].emit_current(kind, data),
                       on_enqueue=acd.enqueue, lookup=lookup, province_for_caller=provinces.lookup_caller,
                       sound_prefix=sound_prefix, voicemail_dir=f"{rec_dir}/voicemail",
                       transfer_dial=s.ivr.transfer_dial, transfer_policy=numbers.policy,
                       clock=ivr_clock,
                       on_callback=after_hours_callback)
    # past capacity, new hotline callers are refused cleanly (busy message or the fallback queue)
    loop_lag = LoopLag(metrics.loop_lag.observe)
    overload = OverloadCheck(s.overload, calls=book.live_calls, loop_lag_p99=lambda: loop_lag.recent(0.99),
                             on_refused=metrics.observe_overload_refused)
    metrics.overload_active.set_function(lambda: 1.0 if overload.check().refuse else 0.0)
    busy_files = tuple(f"{sound_prefix}/{lang}/{s.overload.busy_prompt}" for lang in s.overload.busy_languages)
    entry = AgiEntry(book=book, runner=runner, acd=acd, features=FeatureCodes(acd), ami=client,
                     overload=overload, busy_files=busy_files)
    entry_holder["entry"] = entry
    book.current_node = runner.node_of   # a record closed while its flow is stuck still says where
    # never strand a caller: a failed step hands the channel on; the reconciliation backs it up
    rescuer = Rescuer(client, book, observe=metrics.observe_rescue)
    entry.rescuer = rescuer

    def observe_agi(verb: str, ack: float, result: float | None) -> None:
        metrics.observe_agi(verb, ack_s=ack, result_s=result)
        overload.observe_agi(ack)

    manager = AgiManager(client, on_start=entry.on_start, observe=observe_agi)
    entry.manager = manager

    def on_hangup(ev: Any) -> None:
        book.channel_hung_up(ev.get("Uniqueid") or "", cause=ev.get("Cause") or "",
                             cause_txt=ev.get("Cause-txt") or "")

    client.subscribe(on_hangup, names=("Hangup",))

    app.add(_AgentLoader(acd, pool_part, agents, restore_states_h=s.routing.restore_agent_states_h))
    app.add(acd)
    sweep = _CallbackSweep(acd, pool_part, bus, sweep_s=s.routing.callback_sweep_s,
                           max_age_s=s.routing.callback_max_age_h * 3600)
    app.add(sweep)
    app.add(Heartbeat(client, interval=s.ami.heartbeat_interval))

    async def readopt(restarted: bool = False) -> None:
        if not restarted:
            n = await entry.readopt()
            if n:
                log.info("re-adopted %d call(s) waiting in AGI", n)

    client.on_resync(readopt)

    # HTTP API and live events
    async def previous_calls(caller: str) -> list[PreviousCall]:
        async with pool_part.pool.acquire(timeout=3) as conn:
            rows = await calls_query.recent_calls_of(conn, caller, timeout=3)
        return [PreviousCall(r["call_id"], r["started_at"], r["topic"], r["outcome"], r["agent_id"]) for r in rows]

    live_info: dict[str, dict[str, Any]] = {}

    def track_info(event: Any) -> None:
        info = live_info.setdefault(event.call_id, {})
        d = event.data
        if event.kind == "call.started":
            info["caller"] = d.get("caller", "")
        elif event.kind == "ivr.step":
            info.setdefault("ivr_path", []).append(d.get("node"))
        elif event.kind == "ivr.lookup" and d.get("found"):
            info["si_code"] = d.get("participant_id")
        elif event.kind == "queue.joined":
            info.update(topic=d.get("topic"), province=d.get("province"), language=d.get("language"))
        elif event.kind == "agent.offer":
            info["offered_at"] = event.ts
        elif event.kind == "call.answered":
            info["answered_at"] = event.ts
        elif event.kind == "call.ended":
            live_info.pop(event.call_id, None)
        while len(live_info) > 5000:
            live_info.pop(next(iter(live_info)))

    bus.sinks.append(track_info)

    services = Services(
        agents=AcdAgentService(acd, previous_calls=previous_calls, call_info=lambda c: live_info.get(c, {})),
        queues=AcdQueueService(acd, metrics, service_level_s=s.routing.service_level_s),
        calls=pg_services.PgCallService(_LazyPool(pool_part)),
        reports=pg_services.PgReportService(_LazyPool(pool_part), s),
        recordings=pg_services.PgRecordingService(_LazyPool(pool_part), recordings_dir=s.paths.recordings_dir,
                                                  asterisk_recordings_dir=s.paths.asterisk_recordings_dir),
        flows=pg_services.RegistryFlowService(registry),
        supervisor=AmiSupervisorService(acd, client),
        health=pg_services.HealthChecks({"ami": lambda: bool(client.connected),
                                         "database": lambda: bool(writer.db_connected)}),
        tokens=PgTokenStore(_LazyPool(pool_part)),
        provinces=provinces_from_geo(provinces),
    )
    api_app = create_app(settings=s, services=services, metrics=metrics)
    hub = api_app[HUB]
    metrics.set_sources(
        agents=lambda: _agent_counts(acd),
        callbacks_pending=acd.callbacks_pending,
        ami_connected=lambda: bool(client.connected),
        agi_commands_in_flight=lambda: sum(len(getattr(x, "_waiting", ())) for x in manager.sessions.values()),
        db_writer_queue_depth=lambda: writer.queue_depth,
        db_spool_bytes=lambda: writer.spool_bytes,
    )

    def on_acd(kind: str, payload: Any) -> None:
        agent_id = payload.get("agent_id") if isinstance(payload, dict) else None
        if kind == "agent.state" and agent_id:
            state_log.record(agent_id, datetime.fromtimestamp(payload["at"], UTC), payload["from"],
                             payload["to"], payload.get("reason"), payload.get("call_id"), payload.get("duration_s"))
            view = agent_view(acd.snapshot(agent_id))
            hub.publish(LiveMessage("agent.state", view, agent_id=agent_id, audience=Audience.AGENT))
        elif kind == "agent.offer" and agent_id:
            info = live_info.get(payload["call_id"], {})
            pop = {**payload, "ivr_path": info.get("ivr_path", []), "si_code": info.get("si_code")}
            hub.publish(LiveMessage("agent.offer", pop, agent_id=agent_id, audience=Audience.AGENT))
        elif agent_id:
            hub.publish(LiveMessage(kind, payload, agent_id=agent_id, audience=Audience.AGENT))

    acd.listeners.append(on_acd)
    app.add(_MetricsSync(metrics, client))
    app.add(loop_lag)
    api = ApiServer(app=api_app, host=s.http.host, port=s.http.port, shutdown_timeout=s.http.shutdown_timeout)
    app.add(api)
    app.add(FuncPart("re-adoption", lambda: readopt(False), _noop))
    reconciler = Reconciler(client, book, entry, rescuer, interval=s.ami.reconcile_interval_s,
                            min_age_s=s.ami.reconcile_min_age_s, observe=metrics.observe_reconciled,
                            observe_stranded=metrics.observe_stranded)
    app.add(reconciler)
    app.context.update(rescuer=rescuer, reconciler=reconciler,
                       pool=pool_part, writer=writer, client=client, registry=registry, runner=runner,
                       acd=acd, entry=entry, manager=manager, book=book, bus=bus, metrics=metrics,
                       api=api, api_app=api_app, hub=hub, state_log=state_log, callback_sweep=sweep,
                       loop_lag=loop_lag, overload=overload, lookup=lookup)


async def _noop() -> None:
    return None


def _agent_counts(acd: Any) -> dict[tuple[str, str], int]:
    from switchboard.api.acd_services import state_name

    out: dict[tuple[str, str], int] = {}
    for snap in acd.agents():
        key = (state_name(snap.status), snap.pause_reason or "")
        out[key] = out.get(key, 0) + 1
    return out


class _LazyPool:
    """Hands the pool part's pool to services built before it started."""

    def __init__(self, part: _Pool) -> None:
        self._part = part

    def __getattr__(self, name: str) -> Any:
        return getattr(self._part.pool, name)


class _MetricsSync:
    """Copies the AMI client's counters into Prometheus every second."""

    name = "metrics-sync"

    def __init__(self, metrics: Any, client: Any) -> None:
        self.metrics = metrics
        self.client = client
        self._seen_reconnects = 0
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            reconnects = int(getattr(self.client, "reconnects", 0))
            if reconnects > self._seen_reconnects:
                self.metrics.ami_reconnects.inc(reconnects - self._seen_reconnects)
                self._seen_reconnects = reconnects
            self.metrics.observe_ami_lag(float(getattr(self.client, "event_lag", 0.0)))
            await asyncio.sleep(1.0)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="metrics-sync")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
