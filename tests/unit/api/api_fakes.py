"""The API's services for tests: the real ACD over a fake AMI link, and in-memory stand-ins
for the PostgreSQL-backed ones.

Agents, queues and the supervisor's spy are the product's own ``AcdAgentService``,
``AcdQueueService`` and ``AmiSupervisorService`` over a real ``AcdService`` (and the real
``AgiManager`` for waiting callers): only the AMI link is faked (``fake_asterisk.FakeAsterisk``,
answering like Asterisk 22), so an API test cannot pass on agent behaviour the service does
not have. Queue figures (service level, abandon rate, answered today) come from the real
``Metrics`` fed by the ACD's own events.

Tokens, calls, reports, recordings, flows and health are in-memory stand-ins of the
PostgreSQL / file-backed services (their real implementations are tested against a real
PostgreSQL in tests/integration/api); the token store keeps hashes only, like the real one.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient
from fake_asterisk import FakeAsterisk, registered

from switchboard.acd.agents import AgentRecord
from switchboard.acd.service import AcdService
from switchboard.ami.agi import AgiManager, AgiSession
from switchboard.api.acd_services import AcdAgentService, AcdQueueService, AmiSupervisorService, agent_view
from switchboard.api.live import Audience, LiveHub, LiveMessage
from switchboard.api.services import (
    AgentFigures,
    CallDetail,
    CallPage,
    CallQuery,
    CallSummary,
    FlowProblem,
    FlowReload,
    FlowValidation,
    NotFoundError,
    PreviousCall,
    ProvinceInfo,
    ReportTable,
    ScreenPop,
    Services,
    StoredToken,
    TimelineEntry,
)
from switchboard.api.transfer_services import AcdTransferService
from switchboard.config import RoutingSettings
from switchboard.events import CallEvent
from switchboard.ivr.machine import Enqueue
from switchboard.metrics import Metrics

NOW = datetime(2026, 3, 2, 3, 0, tzinfo=UTC)

class FakeTokens:
    def __init__(self) -> None:
        self.rows: dict[str, StoredToken] = {}

    async def fetch(self, token_id: str) -> StoredToken | None:
        row = self.rows.get(token_id)
        parent = self.rows.get(row.parent_id) if row is not None and row.parent_id else None
        if row is not None and row.sip_endpoint is None and parent is not None:   # as PgTokenStore: inherited
            row = dataclasses.replace(row, sip_endpoint=parent.sip_endpoint)
        return row

    async def insert(self, token: StoredToken) -> None:
        if token.id in self.rows:
            raise ValueError("duplicate token id")
        self.rows[token.id] = token

    async def revoke(self, token_id: str) -> bool:
        tree = {token_id}
        while True:  # the token and everything opened with it, at any depth
            more = {r.id for r in self.rows.values() if r.parent_id in tree} - tree
            if not more:
                break
            tree |= more
        hits = [r for r in self.rows.values() if r.id in tree and r.revoked_at is None]
        for row in hits:
            self.rows[row.id] = dataclasses.replace(row, revoked_at=datetime.now(UTC))
        return bool(hits)

    async def list_tokens(self) -> Sequence[StoredToken]:
        return [r for r in self.rows.values() if r.kind == "api"]


class FakeCalls:
    def __init__(self) -> None:
        self.details: dict[str, CallDetail] = {}
        self.queries: list[CallQuery] = []

    def add(self, summary: CallSummary, timeline: Sequence[TimelineEntry] = ()) -> None:
        self.details[summary.call_id] = CallDetail(call=summary, timeline=list(timeline))

    async def search(self, query: CallQuery) -> CallPage:
        self.queries.append(query)
        hits = [d.call for d in self.details.values()
                if (query.agent_id is None or query.agent_id in d.call.agent_ids)
                and (query.number is None or query.number in d.call.caller)
                and (query.outcome is None or d.call.outcome == query.outcome)
                and (query.date_from is None or d.call.started_at.date() >= query.date_from)
                and (query.date_to is None or d.call.started_at.date() <= query.date_to)]
        return CallPage(items=hits[query.offset:query.offset + query.limit], total=len(hits))

    async def get(self, call_id: str) -> CallDetail:
        try:
            return self.details[call_id]
        except KeyError:
            raise NotFoundError(f"no call {call_id}") from None


class FakeReports:
    def names(self) -> Sequence[str]:
        return ["daily-summary"]

    async def run(self, name: str, *, date_from: date, date_to: date) -> ReportTable:
        if name not in self.names():
            raise NotFoundError(name)
        return ReportTable(name=name, columns=["day", "answered", "note"],
                           rows=[[date_from.isoformat(), 12, "Hà Nội, \"quoted\""]])

    async def agent_day(self, agent_id: str, *, day: date) -> AgentFigures:
        return AgentFigures(agent_id=agent_id, day=day, answered=7, missed_offers=1, talk_s=1260.0,
                            wrap_up_s=140.0, avg_handle_s=200.0, survey_avg=4.5)


class FakeRecordings:
    def __init__(self) -> None:
        self.paths: dict[str, Path] = {}

    async def path_for(self, call_id: str) -> Path | None:
        return self.paths.get(call_id)


class FakeFlows:
    def __init__(self) -> None:
        self.reloads = 0

    async def validate(self, source: str, *, name: str) -> FlowValidation:
        if "start:" not in source:
            return FlowValidation(ok=False, problems=[FlowProblem(where=name, message="no start node")])
        return FlowValidation(ok=True)

    async def reload(self) -> FlowReload:
        self.reloads += 1
        return FlowReload(loaded=["hotline"])


class FakeHealth:
    def __init__(self) -> None:
        self.state: dict[str, bool] = {"ami": True, "database": True}

    async def checks(self) -> Mapping[str, bool]:
        return dict(self.state)


PROVINCES = [ProvinceInfo("ha-noi", "Hà Nội", "Hanoi", "north"),
             ProvinceInfo("ho-chi-minh", "Hồ Chí Minh", "Ho Chi Minh City", "south"),
             ProvinceInfo("da-nang", "Đà Nẵng", "Da Nang", "central")]


def sample_pop(call_id: str = "1700000000.1") -> ScreenPop:
    return ScreenPop(call_id=call_id, state="offered", caller="02438123456", topic="social/pension",
                     province="ha-noi", language="vi", si_code="0123456789",
                     ivr_path=["welcome", "menu:1", "pension"],
                     previous_calls=[PreviousCall("1699990000.5", NOW - timedelta(days=2), "social/pension",
                                                  "answered", "a2")],
                     offered_at=datetime.now(UTC))


#: The agents of the API tests: a1 and a2 take pension calls in Hà Nội; their phones are registered.
AGENTS = [AgentRecord(id=a, name=f"Agent {a}", sip_endpoint=a, home_province="ha-noi",
                      skills={"social/pension": 3}, languages=("vi",)) for a in ("a1", "a2")]
#: Long ring and wrap-up: the tests (and the pages) end them, not the timers.
ROUTING = RoutingSettings(ring_timeout_s=600.0, wrap_up_s=600.0)


@dataclasses.dataclass
class World:
    services: Services
    tokens: FakeTokens
    calls: FakeCalls
    recordings: FakeRecordings
    flows: FakeFlows
    health: FakeHealth
    acd: AcdService
    asterisk: FakeAsterisk
    metrics: Metrics
    events: list[CallEvent]
    call_info: dict[str, dict[str, Any]]
    _agi: AgiManager
    _sessions: dict[str, AgiSession] = dataclasses.field(default_factory=dict)
    _callers: list[asyncio.Task[str]] = dataclasses.field(default_factory=list)

    async def start(self) -> None:
        await self.acd.start()

    async def stop(self) -> None:
        for t in self._callers:
            t.cancel()
        await asyncio.gather(*self._callers, return_exceptions=True)
        await self.acd.stop()

    def attach(self, hub: LiveHub) -> None:
        """What the composition root (switchboard/app.py, ``on_acd``) does with the ACD's
        notifications: agent states and offers to the agent's live socket."""
        def on_acd(kind: str, payload: Any) -> None:
            agent_id = payload.get("agent_id") if isinstance(payload, dict) else None
            if kind == "agent.state" and agent_id:
                hub.publish(LiveMessage("agent.state", agent_view(self.acd.snapshot(agent_id)), agent_id=agent_id,
                                        audience=Audience.AGENT))
            elif kind == "agent.offer" and agent_id:
                info = self.call_info.get(payload["call_id"], {})
                pop = {**payload, "ivr_path": info.get("ivr_path", []), "si_code": info.get("si_code")}
                hub.publish(LiveMessage("agent.offer", pop, agent_id=agent_id, audience=Audience.AGENT))
            elif agent_id:
                hub.publish(LiveMessage(kind, payload, agent_id=agent_id, audience=Audience.AGENT))

        self.acd.listeners.append(on_acd)

    # -- a caller, as the IVR hands one to the ACD (``on_enqueue(session, Enqueue)``)

    async def caller_waits(self, *, caller: str = "02438123456", topic: str = "social/pension",
                           province: str = "ha-noi", waited_s: float = 0.0, si_code: str | None = "0123456789",
                           ivr_path: Sequence[str] = ("welcome", "menu:1", "pension")) -> str:
        """A caller reaches the line after the menus (``waited_s`` ago); returns the call id once
        the ACD holds it. ``si_code``/``ivr_path``: what the IVR's events told the call tracker."""
        chan = self.asterisk.caller_enters_agi(caller=caller)
        for _ in range(100):
            if chan.uniqueid in self._sessions:
                break
            await asyncio.sleep(0.01)
        session = self._sessions[chan.uniqueid]
        self.call_info[session.linkedid] = {"caller": caller, "si_code": si_code, "ivr_path": list(ivr_path)}
        request = Enqueue(topic=topic, province=province, priority=0, language="vi", province_source="did",
                          variables={"joined_wall": str(time.time() - waited_s)})
        self._callers.append(asyncio.create_task(self.acd.enqueue(session, request)))
        for _ in range(200):
            if session.linkedid in self.acd.waiting:
                return session.linkedid
            await asyncio.sleep(0.01)
        raise AssertionError(f"{caller} never joined the line")

    async def ringing(self, agent_id: str) -> str:
        """The agent leg Asterisk was asked to ring for ``agent_id`` (waits for the offer)."""
        endpoint = self.acd.records[agent_id].sip_endpoint
        for _ in range(200):
            leg = self.asterisk.ringing_leg(endpoint)
            if leg is not None:
                return leg
            await asyncio.sleep(0.01)
        raise AssertionError(f"no call offered to {agent_id}")

    async def settle(self) -> None:
        """Let the events Asterisk sent reach the ACD."""
        for _ in range(5):
            await asyncio.sleep(0)

    def of(self, kind: str) -> list[CallEvent]:
        return [e for e in self.events if e.kind == kind]


def make_world(provinces: Sequence[ProvinceInfo] = PROVINCES) -> World:
    tokens, calls, recordings = FakeTokens(), FakeCalls(), FakeRecordings()
    flows, health = FakeFlows(), FakeHealth()
    asterisk = FakeAsterisk(endpoints=registered([a.sip_endpoint for a in AGENTS]))
    metrics = Metrics()
    events: list[CallEvent] = []
    seqs: dict[str, int] = {}
    call_info: dict[str, dict[str, Any]] = {}

    def emit(call_id: str, kind: str, data: dict[str, Any]) -> None:
        seqs[call_id] = seqs.get(call_id, 0) + 1
        event = CallEvent(call_id=call_id, seq=seqs[call_id], ts=datetime.now(UTC), kind=str(kind), data=dict(data))
        events.append(event)
        metrics.observe_event(event)
        info = call_info.setdefault(call_id, {})
        if event.kind == "queue.joined":      # as app.py's track_info
            info.update(topic=data.get("topic"), province=data.get("province"), language=data.get("language"))
        elif event.kind == "agent.offer":
            info["offered_at"] = event.ts
        elif event.kind == "call.answered":
            info["answered_at"] = event.ts

    acd = AcdService(ami=asterisk, routing=ROUTING, agents=AGENTS, region_of={p.id: p.region for p in provinces},
                     emit=emit)
    sessions: dict[str, AgiSession] = {}
    agi = AgiManager(asterisk, on_start=lambda s: sessions.__setitem__(s.uniqueid, s))
    services = Services(
        agents=AcdAgentService(acd, call_info=lambda c: call_info.get(c, {})),
        queues=AcdQueueService(acd, metrics, service_level_s=ROUTING.service_level_s),
        calls=calls, reports=FakeReports(), recordings=recordings, flows=flows,
        supervisor=AmiSupervisorService(acd, asterisk), health=health, tokens=tokens, provinces=provinces,
        transfers=AcdTransferService(acd))
    return World(services, tokens, calls, recordings, flows, health, acd, asterisk, metrics, events, call_info,
                 agi, sessions)


@dataclasses.dataclass
class Tokens:
    a1: str
    a2: str
    supervisor: str
    admin: str
    phone_supervisor: str   # a supervisor token bound to the SIP endpoint sup1


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


Client = TestClient[web.Request, web.Application]
