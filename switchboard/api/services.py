"""What the HTTP API needs from the rest of the switchboard, as Protocols.

The API layer holds no call-center logic: every route is a thin shell over one
of these interfaces. The composition root (``switchboard/app.py``) hands
``create_app`` a :class:`Services` built from the real ACD, store, IVR and AMI
parts; tests hand it faithful in-memory fakes that follow the same Protocols.

Values crossing this boundary are frozen dataclasses (serialised to JSON by
``switchboard.api.jsonutil.to_jsonable``). Services signal expected failures
with the typed errors below; the API maps them to HTTP statuses
(404, 409, 503). Anything else is a 500 with a logged traceback.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from switchboard.api.transfer_services import TransferService

__all__ = [
    "AgentFigures",
    "AgentService",
    "AgentView",
    "CallDetail",
    "CallPage",
    "CallQuery",
    "CallService",
    "CallSummary",
    "Code",
    "ConflictError",
    "FlowProblem",
    "FlowReload",
    "FlowService",
    "FlowValidation",
    "GroupFigure",
    "HealthService",
    "InvalidError",
    "NotFoundError",
    "PreviousCall",
    "ProvinceInfo",
    "QueueFigures",
    "QueueService",
    "RecordingService",
    "ReportService",
    "ReportTable",
    "ScreenPop",
    "ServiceError",
    "Services",
    "SpyMode",
    "SpyResult",
    "StoredToken",
    "SupervisorService",
    "TimelineEntry",
    "TokenStore",
    "UnavailableError",
    "WaitingCall",
    "provinces_from_geo",
]


# --------------------------------------------------------------------------- errors


class ServiceError(Exception):
    """Base of the errors a service may raise on purpose.

    ``details`` is JSON-safe extra information returned to the client;
    ``error_id`` (optional) a more precise stable id than the status's generic one.
    """

    def __init__(self, message: str, *, details: Mapping[str, Any] | None = None,
                 error_id: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details: dict[str, Any] = dict(details or {})
        self.error_id = error_id


class NotFoundError(ServiceError):
    """The agent, call, report or recording does not exist (HTTP 404)."""


class ConflictError(ServiceError):
    """The request is well-formed but illegal in the current state (HTTP 409),
    e.g. ``ready`` while talking, ``end_wrap_up`` when not in wrap-up."""


class InvalidError(ServiceError):
    """The request is well-formed but its content cannot be used (HTTP 422), e.g. a campaign
    definition with errors; ``details.problems`` lists them."""


class UnavailableError(ServiceError):
    """A dependency (AMI, database) is away right now (HTTP 503)."""


# --------------------------------------------------------------------------- values


@dataclass(frozen=True, slots=True)
class Code:
    """A configured code: a pause reason or a wrap-up disposition."""

    code: str
    label_vi: str
    label_en: str


@dataclass(frozen=True, slots=True)
class ProvinceInfo:
    """One of the 34 provincial units (for the wallboard's table)."""

    id: str
    name_vi: str
    name_en: str
    region: str


@dataclass(frozen=True, slots=True)
class AgentView:
    """A snapshot of one agent. ``state`` is one of the ACD's agent states
    (``logged_out``, ``ready``, ``offered``, ``talking``, ``wrap_up``, ``paused``)."""

    id: str
    name: str
    state: str
    since: datetime
    pause_reason: str | None = None
    endpoint: str = ""
    skills: Mapping[str, int] = field(default_factory=dict)
    home_province: str | None = None
    languages: Sequence[str] = ()
    current_call_id: str | None = None


@dataclass(frozen=True, slots=True)
class PreviousCall:
    call_id: str
    started_at: datetime
    topic: str | None
    outcome: str | None
    agent_id: str | None


@dataclass(frozen=True, slots=True)
class ScreenPop:
    """What an agent sees about the call offered to them or in progress."""

    call_id: str
    state: str  # offered | talking | wrap_up
    caller: str
    topic: str | None
    province: str | None
    language: str | None = None
    si_code: str | None = None  # social insurance code, when the IVR/CRM found it
    ivr_path: Sequence[str] = ()
    previous_calls: Sequence[PreviousCall] = ()
    offered_at: datetime | None = None
    answered_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class WaitingCall:
    call_id: str
    caller: str
    topic: str
    province: str | None
    priority: int
    language: str | None
    joined_at: datetime
    wait_s: float
    tier: str = "province"  # province | region | nation


@dataclass(frozen=True, slots=True)
class GroupFigure:
    """Waiting calls in one topic or one province."""

    key: str
    waiting: int
    longest_wait_s: float


@dataclass(frozen=True, slots=True)
class QueueFigures:
    """Live figures for supervisors. Ratios are 0..1, None when there is no data."""

    generated_at: datetime
    waiting: int
    longest_wait_s: float
    by_topic: Sequence[GroupFigure]
    by_province: Sequence[GroupFigure]
    agents_by_state: Mapping[str, int]
    service_level_target_s: float
    service_level_now: float | None
    service_level_today: float | None
    abandon_rate_now: float | None
    abandon_rate_today: float | None
    answered_today: int = 0
    abandoned_today: int = 0
    callbacks_pending: int = 0
    transfers_today: int = 0


@dataclass(frozen=True, slots=True)
class CallQuery:
    number: str | None = None
    date_from: date | None = None
    date_to: date | None = None  # inclusive
    agent_id: str | None = None
    outcome: str | None = None
    limit: int = 50
    offset: int = 0


@dataclass(frozen=True, slots=True)
class CallSummary:
    call_id: str
    started_at: datetime
    caller: str
    dialed: str | None = None
    ended_at: datetime | None = None
    topic: str | None = None
    province: str | None = None
    agent_ids: Sequence[str] = ()
    outcome: str | None = None
    wait_s: float | None = None
    talk_s: float | None = None
    has_recording: bool = False


@dataclass(frozen=True, slots=True)
class CallPage:
    items: Sequence[CallSummary]
    total: int


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    seq: int
    ts: datetime
    kind: str
    data: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class CallDetail:
    call: CallSummary
    timeline: Sequence[TimelineEntry]


@dataclass(frozen=True, slots=True)
class ReportTable:
    name: str
    columns: Sequence[str]
    rows: Sequence[Sequence[Any]]


@dataclass(frozen=True, slots=True)
class AgentFigures:
    """One agent's own figures for one day."""

    agent_id: str
    day: date
    answered: int = 0
    missed_offers: int = 0
    talk_s: float = 0.0
    wrap_up_s: float = 0.0
    paused_s: float = 0.0
    avg_handle_s: float | None = None
    survey_avg: float | None = None


@dataclass(frozen=True, slots=True)
class FlowProblem:
    where: str
    message: str


@dataclass(frozen=True, slots=True)
class FlowValidation:
    ok: bool
    problems: Sequence[FlowProblem] = ()


@dataclass(frozen=True, slots=True)
class FlowReload:
    loaded: Sequence[str]
    problems: Sequence[FlowProblem] = ()


class SpyMode(enum.StrEnum):
    """ChanSpy options per mode: switchboard/acd/spy.py."""

    LISTEN = "listen"    # ChanSpy(<agent leg>,qEu)  : hear both sides, speak to nobody
    WHISPER = "whisper"  # ChanSpy(<agent leg>,qwEu) : speak to the agent only
    BARGE = "barge"      # ChanSpy(<agent leg>,qBEu) : speak to the agent and the caller


@dataclass(frozen=True, slots=True)
class SpyResult:
    agent_id: str
    mode: SpyMode
    supervisor_endpoint: str  # the PJSIP endpoint bound to the supervisor's token
    channel_id: str  # Uniqueid of the supervisor leg originated over AMI
    spied_channel_id: str  # Uniqueid of the agent's leg ChanSpy listens to


# --------------------------------------------------------------------------- protocols


class AgentService(Protocol):
    """The ACD's agent side. State-changing calls return the new snapshot and
    raise ConflictError when the transition is illegal, NotFoundError for an
    unknown agent."""

    def pause_reasons(self) -> Sequence[Code]: ...

    def dispositions(self) -> Sequence[Code]: ...

    async def list_agents(self) -> Sequence[AgentView]: ...

    async def get_agent(self, agent_id: str) -> AgentView: ...

    async def login(self, agent_id: str) -> AgentView: ...

    async def logout(self, agent_id: str) -> AgentView: ...

    async def ready(self, agent_id: str) -> AgentView: ...

    async def pause(self, agent_id: str, *, reason: str) -> AgentView: ...

    async def end_wrap_up(self, agent_id: str, *, disposition: str) -> AgentView: ...

    async def current_call(self, agent_id: str) -> ScreenPop | None: ...

    async def force_pause(self, agent_id: str, *, reason: str, by: str) -> AgentView: ...

    async def force_logout(self, agent_id: str, *, by: str) -> AgentView: ...


class QueueService(Protocol):
    async def waiting(self, *, topic: str | None = None, province: str | None = None) -> Sequence[WaitingCall]: ...

    async def figures(self) -> QueueFigures: ...


class CallService(Protocol):
    async def search(self, query: CallQuery) -> CallPage: ...

    async def get(self, call_id: str) -> CallDetail: ...


class ReportService(Protocol):
    def names(self) -> Sequence[str]: ...

    async def run(self, name: str, *, date_from: date, date_to: date) -> ReportTable: ...

    async def agent_day(self, agent_id: str, *, day: date) -> AgentFigures: ...


class RecordingService(Protocol):
    async def path_for(self, call_id: str) -> Path | None:
        """The recording file of a call (absolute, or relative to recordings_dir),
        None when the call has none. The API refuses any path outside
        ``paths.recordings_dir``."""
        ...


class FlowService(Protocol):
    async def validate(self, source: str, *, name: str) -> FlowValidation: ...

    async def reload(self) -> FlowReload: ...


class SupervisorService(Protocol):
    async def spy(self, *, agent_id: str, mode: SpyMode, supervisor_endpoint: str | None) -> SpyResult:
        """Originate ChanSpy over AMI from the supervisor's own endpoint (bound to
        their token; None when it has none) onto the agent's bridged leg, as the
        ACD knows it. ConflictError ``supervisor-no-endpoint`` / ``agent-not-on-call``,
        NotFoundError for an unknown agent."""
        ...


@dataclass(frozen=True, slots=True)
class StoredToken:
    """One row of ``api_tokens``: never the token itself, only its hash."""

    id: str
    secret_hash: bytes  # sha256 of the secret part
    role: str  # agent | supervisor | admin
    agent_id: str | None
    name: str
    kind: str  # api | session
    created_at: datetime
    expires_at: datetime | None = None
    revoked_at: datetime | None = None
    parent_id: str | None = None  # for a session: the token used to log in
    sip_endpoint: str | None = None  # a supervisor's own phone (spy legs ring it); a session inherits it


class TokenStore(Protocol):
    """Where token hashes live (PostgreSQL in production: ``PgTokenStore``)."""

    async def fetch(self, token_id: str) -> StoredToken | None: ...

    async def insert(self, token: StoredToken) -> None: ...

    async def revoke(self, token_id: str) -> bool:
        """Revoke a token and every session opened with it; False if it was not active."""
        ...

    async def list_tokens(self) -> Sequence[StoredToken]: ...


class HealthService(Protocol):
    async def checks(self) -> Mapping[str, bool]:
        """Named readiness checks (``ami``, ``database`` ...): ready when all are True."""
        ...


def provinces_from_geo(table: Iterable[Any]) -> list[ProvinceInfo]:
    """The wallboard's province list from ``switchboard.geo.load_provinces()``."""
    return [ProvinceInfo(id=p.id, name_vi=p.short_vi, name_en=p.name_en, region=p.region) for p in table]


@dataclass(frozen=True)
class Services:
    agents: AgentService
    queues: QueueService
    calls: CallService
    reports: ReportService
    recordings: RecordingService
    flows: FlowService
    supervisor: SupervisorService
    health: HealthService
    tokens: TokenStore
    provinces: Sequence[ProvinceInfo] = ()
    transfers: TransferService | None = None   # None: transfers answer 503 (no ACD behind the API)
    # outbound campaigns (switchboard.campaigns.service.PgCampaignService); None: the routes answer 503
    campaigns: Any = None
    # Q&A sessions (switchboard.sessions.service.SessionService); None: the routes answer 503
    sessions: Any = None
