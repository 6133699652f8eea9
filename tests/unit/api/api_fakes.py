"""In-memory fakes of the API's service Protocols (tests only).

They follow the Protocols faithfully: illegal agent transitions raise
ConflictError, unknown ids NotFoundError, and the token store keeps hashes
only, like the PostgreSQL one.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from aiohttp import web
from aiohttp.test_utils import TestClient

from switchboard.api.services import (
    AgentFigures,
    AgentView,
    CallDetail,
    CallPage,
    CallQuery,
    CallSummary,
    Code,
    ConflictError,
    FlowProblem,
    FlowReload,
    FlowValidation,
    GroupFigure,
    NotFoundError,
    PreviousCall,
    ProvinceInfo,
    QueueFigures,
    ReportTable,
    ScreenPop,
    Services,
    SpyMode,
    SpyResult,
    StoredToken,
    TimelineEntry,
    WaitingCall,
)

NOW = datetime(2026, 3, 2, 3, 0, tzinfo=UTC)

PAUSE_REASONS = [Code("break", "Nghỉ giải lao", "Break"), Code("lunch", "Ăn trưa", "Lunch"),
                 Code("training", "Đào tạo", "Training"), Code("no-answer", "Không trả lời", "No answer")]
DISPOSITIONS = [Code("resolved", "Đã giải quyết", "Resolved"), Code("escalated", "Chuyển cấp trên", "Escalated"),
                Code("info", "Cung cấp thông tin", "Information given")]

# state -> actions allowed from it
_ALLOWED = {
    "login": {"logged_out"},
    "logout": {"ready", "paused"},
    "ready": {"paused"},
    "pause": {"ready", "paused"},
    "end_wrap_up": {"wrap_up"},
}


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


class FakeAgents:
    def __init__(self, agent_ids: Sequence[str] = ("a1", "a2")) -> None:
        self.agents: dict[str, AgentView] = {
            a: AgentView(id=a, name=f"Agent {a}", state="logged_out", since=NOW, endpoint=f"PJSIP/{a}",
                         skills={"social/pension": 3}, home_province="ha-noi", languages=("vi",))
            for a in agent_ids
        }
        self.calls: dict[str, ScreenPop] = {}
        self.log: list[tuple[str, str, str]] = []  # (action, agent, detail)

    def pause_reasons(self) -> Sequence[Code]:
        return PAUSE_REASONS

    def dispositions(self) -> Sequence[Code]:
        return DISPOSITIONS

    def _get(self, agent_id: str) -> AgentView:
        try:
            return self.agents[agent_id]
        except KeyError:
            raise NotFoundError(f"no agent {agent_id}", details={"agent_id": agent_id}) from None

    def _move(self, agent_id: str, action: str, state: str, reason: str | None = None) -> AgentView:
        agent = self._get(agent_id)
        if agent.state not in _ALLOWED[action]:
            raise ConflictError(f"cannot {action} while {agent.state}",
                                details={"state": agent.state, "action": action})
        new = dataclasses.replace(agent, state=state, pause_reason=reason, since=datetime.now(UTC))
        self.agents[agent_id] = new
        self.log.append((action, agent_id, reason or ""))
        return new

    async def list_agents(self) -> Sequence[AgentView]:
        return list(self.agents.values())

    async def get_agent(self, agent_id: str) -> AgentView:
        return self._get(agent_id)

    async def login(self, agent_id: str) -> AgentView:
        return self._move(agent_id, "login", "paused", "login")

    async def logout(self, agent_id: str) -> AgentView:
        return self._move(agent_id, "logout", "logged_out")

    async def ready(self, agent_id: str) -> AgentView:
        return self._move(agent_id, "ready", "ready")

    async def pause(self, agent_id: str, *, reason: str) -> AgentView:
        return self._move(agent_id, "pause", "paused", reason)

    async def end_wrap_up(self, agent_id: str, *, disposition: str) -> AgentView:
        new = self._move(agent_id, "end_wrap_up", "ready")
        self.calls.pop(agent_id, None)
        self.log[-1] = ("end_wrap_up", agent_id, disposition)
        return new

    async def current_call(self, agent_id: str) -> ScreenPop | None:
        self._get(agent_id)
        return self.calls.get(agent_id)

    async def force_pause(self, agent_id: str, *, reason: str, by: str) -> AgentView:
        agent = self._get(agent_id)
        if agent.state == "logged_out":
            raise ConflictError("agent is logged out", details={"state": agent.state})
        new = dataclasses.replace(agent, state="paused", pause_reason=reason, since=datetime.now(UTC))
        self.agents[agent_id] = new
        self.log.append(("force_pause", agent_id, by))
        return new

    async def force_logout(self, agent_id: str, *, by: str) -> AgentView:
        agent = self._get(agent_id)
        new = dataclasses.replace(agent, state="logged_out", pause_reason=None, since=datetime.now(UTC))
        self.agents[agent_id] = new
        self.log.append(("force_logout", agent_id, by))
        return new

    # -- helpers for tests: what the ACD would do
    def offer(self, agent_id: str, pop: ScreenPop) -> AgentView:
        agent = self._get(agent_id)
        if agent.state != "ready":
            raise ConflictError("not ready")
        self.calls[agent_id] = pop
        new = dataclasses.replace(agent, state="offered", current_call_id=pop.call_id, since=datetime.now(UTC))
        self.agents[agent_id] = new
        return new

    def set_state(self, agent_id: str, state: str) -> AgentView:
        new = dataclasses.replace(self._get(agent_id), state=state, since=datetime.now(UTC))
        self.agents[agent_id] = new
        if agent_id in self.calls:
            self.calls[agent_id] = dataclasses.replace(self.calls[agent_id], state=state)
        return new


class FakeQueues:
    def __init__(self, agents: FakeAgents) -> None:
        self.agents = agents
        self.calls: list[WaitingCall] = []

    async def waiting(self, *, topic: str | None = None, province: str | None = None) -> Sequence[WaitingCall]:
        return [c for c in self.calls
                if (topic is None or c.topic == topic) and (province is None or c.province == province)]

    async def figures(self) -> QueueFigures:
        now = datetime.now(UTC)

        def groups(key: str) -> list[GroupFigure]:
            out: dict[str, GroupFigure] = {}
            for c in self.calls:
                k = getattr(c, key) or "unknown"
                wait = (now - c.joined_at).total_seconds()
                g = out.get(k, GroupFigure(k, 0, 0.0))
                out[k] = GroupFigure(k, g.waiting + 1, max(g.longest_wait_s, wait))
            return sorted(out.values(), key=lambda g: g.key)

        states: dict[str, int] = {}
        for a in self.agents.agents.values():
            states[a.state] = states.get(a.state, 0) + 1
        by_topic = groups("topic")
        return QueueFigures(
            generated_at=now, waiting=len(self.calls),
            longest_wait_s=max((g.longest_wait_s for g in by_topic), default=0.0),
            by_topic=by_topic, by_province=groups("province"), agents_by_state=states,
            service_level_target_s=20.0, service_level_now=0.8, service_level_today=0.75,
            abandon_rate_now=0.05, abandon_rate_today=0.07, answered_today=40, abandoned_today=3,
        )


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


class FakeSupervisor:
    """Records what the route hands over; refuses as the SupervisorService Protocol says
    (the real AmiSupervisorService: tests/unit/acd/test_acd_spy.py and tests/e2e)."""

    def __init__(self, agents: FakeAgents) -> None:
        self.agents = agents
        self.spied: list[tuple[str, SpyMode, str]] = []

    async def spy(self, *, agent_id: str, mode: SpyMode, supervisor_endpoint: str | None) -> SpyResult:
        if not supervisor_endpoint:
            raise ConflictError("no SIP endpoint of your own", error_id="supervisor-no-endpoint")
        agent = self.agents._get(agent_id)
        if agent.state != "talking":
            raise ConflictError("the agent is not on a call", details={"state": agent.state},
                                error_id="agent-not-on-call")
        self.spied.append((agent_id, mode, supervisor_endpoint))
        return SpyResult(agent_id=agent_id, mode=mode, supervisor_endpoint=supervisor_endpoint,
                         channel_id=f"spy-{len(self.spied)}", spied_channel_id=f"leg-{agent_id}")


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


@dataclasses.dataclass
class World:
    services: Services
    tokens: FakeTokens
    agents: FakeAgents
    queues: FakeQueues
    calls: FakeCalls
    recordings: FakeRecordings
    flows: FakeFlows
    supervisor: FakeSupervisor
    health: FakeHealth


def make_world(provinces: Sequence[ProvinceInfo] = PROVINCES) -> World:
    tokens, agents = FakeTokens(), FakeAgents()
    queues, calls, recordings = FakeQueues(agents), FakeCalls(), FakeRecordings()
    flows, supervisor, health = FakeFlows(), FakeSupervisor(agents), FakeHealth()
    services = Services(agents=agents, queues=queues, calls=calls, reports=FakeReports(), recordings=recordings,
                        flows=flows, supervisor=supervisor, health=health, tokens=tokens, provinces=provinces)
    return World(services, tokens, agents, queues, calls, recordings, flows, supervisor, health)


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
