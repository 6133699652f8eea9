"""Composition root: build the parts, start them in order, stop them in reverse.

Signal handlers only set a flag (an asyncio Event); the main coroutine notices
it, stops every started part in reverse order with a bounded wait each, and
logs any part it had to cancel. Nothing else in the code base wires parts
together.
"""

from __future__ import annotations

import asyncio
import dataclasses
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
    exit_code: int = 0   # what run_forever returns after a requested stop (a fenced leader: EXIT_FENCED)

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
        return self.exit_code


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


def wire(app: Application, *, agents: Any = None, clock: Any = None) -> None:
    """Build the parts in start order: database, writer, AMI, IVR, ACD, heartbeat, HTTP."""

    from switchboard.acd.agents import load_supervisors
    from switchboard.acd.directory import load_directory
    from switchboard.acd.hold import HoldLoop
    from switchboard.acd.service import AcdService, new_callback_id
    from switchboard.ami.agi import AgiManager
    from switchboard.ami.client import AmiClient
    from switchboard.ami.nodes import AmiNodes
    from switchboard.ami.part import AmiMetricsSync, AmiPart
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
    from switchboard.api.services import Services, provinces_from_geo
    from switchboard.api.transfer_services import AcdTransferService
    from switchboard.calls import CallBook, CallEventBus
    from switchboard.campaigns.service import PgCampaignService
    from switchboard.campaigns.wiring import CampaignSync, build_dialer
    from switchboard.geo import load_provinces, normalize_number
    from switchboard.ha import api_guard
    from switchboard.ha import metrics as ha_metrics
    from switchboard.ha.leader import EXIT_FENCED, Leadership
    from switchboard.ivr.clock import IvrClock
    from switchboard.ivr.registry import FlowRegistry
    from switchboard.ivr.runner import IvrRunner
    from switchboard.logging_setup import register_secret
    from switchboard.loop_lag import LoopLag
    from switchboard.metrics import Metrics
    from switchboard.sessions import metrics as session_metrics
    from switchboard.sessions.service import SessionService
    from switchboard.store.agent_loader import AgentLoader
    from switchboard.store.agent_log import AgentStateLog
    from switchboard.store.callback_sweep import CallbackSweep
    from switchboard.store.participants import ParticipantLookup
    from switchboard.store.pool import LazyPool, PoolPart
    from switchboard.store.writer import EventWriter
    from switchboard.telephony.entry import AgiEntry
    from switchboard.telephony.features import FeatureCodes
    from switchboard.telephony.heartbeat import Heartbeat
    from switchboard.telephony.numbers import NumberRefused, default_callback_numbers
    from switchboard.telephony.overload import OverloadCheck
    from switchboard.telephony.rescue import Reconciler, Rescuer
    from switchboard.telephony.resume import GoneRecords, MemoKeeper, StartedCheck, live_call_ids
    from switchboard.telephony.windows import CallingWindow

    s = app.settings
    secret = s.ami.resolved_secret()
    register_secret(secret)
    provinces = load_provinces()

    # storage
    pool_part = PoolPart(s)
    app.add(pool_part)
    writer = EventWriter(s.database)
    app.add(writer)
    state_log = AgentStateLog(s.database.dsn)
    app.add(state_log)

    # AMI and AsyncAGI
    # one Asterisk, or several behind Kamailio (ami.nodes, docs/scale.md) seen as one link
    client: Any
    if s.ami.nodes:
        node_clients = [AmiClient(dataclasses.replace(s.ami, host=host, port=port, nodes=()), name=name,
                                  lane=s.ami.action_lane)
                        for name, host, port, _sip in s.ami.node_list()]
        client = AmiNodes(node_clients, lost_after_s=s.ami.node_lost_after_s,
                          sip={name: (host, sip) for name, host, _p, sip in s.ami.node_list() if sip})
    else:
        client = AmiClient(s.ami, lane=s.ami.action_lane)
    app.add(AmiPart(client, s.ami.connect_timeout))

    # active/standby (docs/ha.md): who leads; the parts that act start when this instance does
    leader: Leadership | None = None
    if s.ha.enabled:
        def fenced(reason: str) -> None:
            app.exit_code = EXIT_FENCED
            app.request_stop()

        leader = Leadership(s.ha, s.database.dsn, ami=client, on_fenced=fenced,
                            instance=s.ha.instance or f"{s.http.host}:{s.http.port}",
                            api_url=s.ha.advertise_url or f"http://{s.http.host}:{s.http.port}")
        client.gate = leader.may_send
        client.confirm = leader.confirm
        app.add(leader)

    def when_leading(part: Any) -> Any:
        return leader.when_leading(part) if leader is not None else part

    # events: one bus, numbered per call, to the writer, the metrics and the browsers
    metrics = Metrics(service_level_s=s.routing.service_level_s, short_abandon_s=s.routing.short_abandon_s,
                      provinces=[p.id for p in provinces])
    bus = CallEventBus([leader.guard(writer.submit) if leader is not None else writer.submit,
                        metrics.observe_event])
    book = CallBook(bus)

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

    # one local clock for opening hours and calling windows (a demo may start it at the opening)
    hotline = registry.flows.get("hotline") or next(iter(registry.flows.values()))
    ivr_clock = IvrClock.build(base=clock, offset_s=s.ivr.clock_offset_s, demo_clock=s.ivr.demo_clock,
                               hours=hotline.hours)
    log.info("IVR clock: %s", ivr_clock.describe(s.numbers.timezone))
    ivr_clock.note(s.paths.run_dir, s.numbers.timezone)
    hours = hotline.hours
    window = CallingWindow.build(s.numbers.call_window, timezone=s.numbers.timezone,
                                 public_holidays=s.numbers.call_window_holidays,
                                 closed=hours.closed if hours else (), open=hours.open if hours else ())

    # ACD; every number dialled out (callbacks, transfers) goes through one policy
    numbers = default_callback_numbers(s.numbers)
    directory = load_directory(s.paths.directory_file, numbers.policy)   # DirectoryError names file:line
    # supervisors' own phones, the only ones a transfer may ring (AgentFileError names the entry)
    supervisors_file = Path(s.paths.supervisors_file)
    supervisors = load_supervisors(supervisors_file, provinces=provinces) if supervisors_file.is_file() else []
    log.info("transfer targets: %d supervisor phone(s) from %s", len(supervisors), supervisors_file)
    acd = AcdService(ami=client, routing=s.routing, agents=(), region_of=provinces.region_of_map(),
                     emit=book.emit, recordings_dir=rec_dir,
                     hold=HoldLoop(sound_prefix=sound_prefix, interval_s=s.routing.announce_interval_s,
                                   first_after_s=s.ivr.announce_first_s, moh_class=s.ivr.moh_class,
                                   callbacks=s.ivr.callbacks),
                     numbers=numbers, directory=directory, sound_prefix=sound_prefix,
                     supervisors=tuple(supervisors))

    acd.callbacks.window, acd.callbacks.local_clock = window, ivr_clock
    log.info("calling window for callbacks: %s", window.describe())
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

    # scheduled Q&A sessions (docs/sessions.md): the hotline menu's key 5, the conference, attendance
    def endpoint_of(agent_id: str) -> str | None:
        rec = acd.records.get(agent_id)
        return rec.sip_endpoint if rec is not None else None

    sessions = SessionService(pool=LazyPool(pool_part), ami=client, settings=s.sessions, clock=ivr_clock,
                              recordings_dir=rec_dir, host_recordings_dir=s.paths.recordings_dir,
                              endpoint_of=endpoint_of) if s.sessions.enabled else None

    runner = IvrRunner(registry, emit=lambda kind, data: entry_holder["entry"].emit_current(kind, data),
                       on_enqueue=acd.enqueue, lookup=lookup, province_for_caller=provinces.lookup_caller,
                       sound_prefix=sound_prefix, voicemail_dir=f"{rec_dir}/voicemail",
                       transfer_dial=s.ivr.transfer_dial, transfer_policy=numbers.policy,
                       clock=ivr_clock,
                       on_callback=after_hours_callback, callback_expected=acd.callbacks.expected_at,
                       remember=MemoKeeper(client),
                       on_conference=sessions.join if sessions is not None else None,
                       live_session=sessions.offer if sessions is not None else None)
    # past capacity, new hotline callers are refused cleanly (busy message or the fallback queue)
    loop_lag = LoopLag(metrics.loop_lag.observe,
                       observe_gc=lambda gen, s: metrics.gc_pause.labels(generation=str(gen)).observe(s))
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

    manager = AgiManager(client, on_start=entry.on_start, observe=observe_agi,
                         accept=leader.acting if leader is not None else None)
    entry.manager = manager
    entry.started_check = StartedCheck(LazyPool(pool_part))
    gone = GoneRecords(LazyPool(pool_part), book,   # records left open by a previous owner, channel gone
                       hangup_reason=entry.hangup_reason_of)

    # outbound campaigns (docs/campaigns.md): the dialer, its own flow runner, its metrics
    campaign_dialer = build_dialer(
        s, pool=LazyPool(pool_part), ami=client, policy=numbers.policy, acd=acd, hours=hours, clock=ivr_clock,
        book=book, metrics=metrics, entry=entry, registry=registry, lookup=lookup, provinces=provinces,
        emit=lambda kind, data: entry_holder["entry"].emit_current(kind, data), sound_prefix=sound_prefix,
        voicemail_dir=f"{rec_dir}/voicemail") if s.campaigns.enabled else None

    def on_hangup(ev: Any) -> None:
        book.channel_hung_up(ev.get("Uniqueid") or "", cause=ev.get("Cause") or "",
                             cause_txt=ev.get("Cause-txt") or "")

    client.subscribe(on_hangup, names=("Hangup",))
    if isinstance(client, AmiNodes):
        # a node lost: its AGI sessions end, the ACD frees its agents, its records close (failed)
        book.asterisk_node = client.node_for
        client.on_lost.extend([lambda node: manager.close_node(node, "Asterisk node lost"),
                               acd.events.node_lost, book.node_lost])
        metrics.watch_nodes(client)

    loader = AgentLoader(acd, pool_part, agents, restore_states_h=s.routing.restore_agent_states_h,
                         restore_at_start=leader is None)
    app.add(loader)
    if leader is not None:   # agents take back the states the previous leader logged
        leader.on_lead.append(loader.restore_states)
    app.add(when_leading(acd))
    sweep = CallbackSweep(acd, pool_part, bus, sweep_s=s.routing.callback_sweep_s,
                           max_age_s=s.routing.callback_max_age_h * 3600)
    app.add(when_leading(sweep))
    heartbeat = Heartbeat(client, interval=min(1.0, s.ami.heartbeat_interval) if leader is not None else
                          s.ami.heartbeat_interval,
                          leader_epoch=(lambda: leader.epoch) if leader is not None else None,
                          check=leader.may_beat if leader is not None else None,
                          clear_on_stop=leader is None)
    app.add(when_leading(heartbeat))

    async def readopt(restarted: bool = False, takeover: bool = False) -> None:
        if leader is not None and not leader.acting():
            return
        if heartbeat.running:
            # a restarted Asterisk (or a node back) has no beat yet: without one its dialplan sends
            # new callers to the fallback queue until the next beat; write it now
            await heartbeat.beat()
        if not restarted:
            n = await entry.readopt()
            if n:
                log.info("re-adopted %d call(s) waiting in AGI", n)
            if takeover and leader is not None:   # what the previous leader could not close
                await gone.close(await live_call_ids(client))

    client.on_resync(readopt)

    # HTTP API and live events
    services = Services(
        agents=AcdAgentService(acd, previous_calls=pg_services.PgPreviousCalls(LazyPool(pool_part)), call_info=book.call_info),
        queues=AcdQueueService(acd, metrics, service_level_s=s.routing.service_level_s),
        calls=pg_services.PgCallService(LazyPool(pool_part)),
        reports=pg_services.PgReportService(LazyPool(pool_part), s),
        recordings=pg_services.PgRecordingService(LazyPool(pool_part), recordings_dir=s.paths.recordings_dir,
                                                  asterisk_recordings_dir=s.paths.asterisk_recordings_dir),
        flows=pg_services.RegistryFlowService(registry),
        supervisor=AmiSupervisorService(acd, client),
        health=pg_services.HealthChecks({"ami": lambda: bool(client.connected),
                                         "database": lambda: bool(writer.db_connected),
                                         **({"leader": leader.acting} if leader is not None else {})},
                                        info=leader.status if leader is not None else None),
        tokens=PgTokenStore(LazyPool(pool_part)),
        provinces=provinces_from_geo(provinces),
        transfers=AcdTransferService(acd),
        campaigns=PgCampaignService(LazyPool(pool_part), policy=numbers.policy, flows=lambda: set(registry.flows),
                                    wall=ivr_clock),
        sessions=sessions,
    )
    services.campaigns.dialer = campaign_dialer      # the agents' preview (None: 503)
    if sessions is not None and campaign_dialer is not None:
        # registered participants called into a Q&A session at its start: an invitation campaign
        # whose flow (session-invite) takes a seat like key 5 (docs/sessions.md)
        from switchboard.sessions.invites import SessionInvites

        campaign_dialer.runner.on_conference = sessions.join
        sessions.invites = SessionInvites(campaigns=services.campaigns, pool=LazyPool(pool_part),
                                          policy=numbers.policy, context=s.campaigns.context)
    api_app = create_app(settings=s, services=services, metrics=metrics)
    if leader is not None:
        api_app.middlewares.append(api_guard.middleware(leader))
        ha_metrics.register(leader, metrics.registry)
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
        if kind == "agent.state" and agent_id and (leader is None or leader.acting()):
            state_log.record(agent_id, datetime.fromtimestamp(payload["at"], UTC), payload["from"],
                             payload["to"], payload.get("reason"), payload.get("call_id"), payload.get("duration_s"))
            view = agent_view(acd.snapshot(agent_id))
            hub.publish(LiveMessage("agent.state", view, agent_id=agent_id, audience=Audience.AGENT))
        elif kind == "agent.offer" and agent_id:
            info = book.call_info(payload["call_id"])
            pop = {**payload, "ivr_path": info.get("ivr_path", []), "si_code": info.get("si_code")}
            hub.publish(LiveMessage("agent.offer", pop, agent_id=agent_id, audience=Audience.AGENT))
        elif agent_id:
            hub.publish(LiveMessage(kind, payload, agent_id=agent_id, audience=Audience.AGENT))

    acd.listeners.append(on_acd)
    app.add(AmiMetricsSync(metrics, client))
    app.add(loop_lag)
    api = ApiServer(app=api_app, host=s.http.host, port=s.http.port, shutdown_timeout=s.http.shutdown_timeout)
    app.add(api)
    app.add(when_leading(FuncPart("re-adoption", lambda: readopt(False, takeover=True), _noop)))
    if sessions is not None:
        session_metrics.register(metrics.registry, sessions)
        app.add(when_leading(sessions))   # it rings moderators and kicks callers: only the leader
    if campaign_dialer is not None:
        app.add(when_leading(CampaignSync(services.campaigns, s.campaigns.campaigns_dir)))
        app.add(when_leading(campaign_dialer))   # it dials: only the leader
    reconciler = Reconciler(client, book, entry, rescuer, interval=s.ami.reconcile_interval_s,
                            min_age_s=s.ami.reconcile_min_age_s, observe=metrics.observe_reconciled,
                            observe_stranded=metrics.observe_stranded)
    app.add(when_leading(reconciler))
    if leader is not None:
        app.add(leader.step_down_part())   # stopped first: the lead is handed over before anything else stops
    app.context.update(leader=leader, rescuer=rescuer, reconciler=reconciler,
                       pool=pool_part, writer=writer, client=client, registry=registry, runner=runner,
                       acd=acd, entry=entry, manager=manager, book=book, bus=bus, metrics=metrics,
                       api=api, api_app=api_app, hub=hub, state_log=state_log, callback_sweep=sweep,
                       loop_lag=loop_lag, overload=overload, lookup=lookup, ivr_clock=ivr_clock,
                       campaign_dialer=campaign_dialer, sessions=sessions)


async def _noop() -> None:
    return None


def _agent_counts(acd: Any) -> dict[tuple[str, str], int]:
    from switchboard.api.acd_services import state_name

    out: dict[tuple[str, str], int] = {}
    for snap in acd.agents():
        key = (state_name(snap.status), snap.pause_reason or "")
        out[key] = out.get(key, 0) + 1
    return out
