"""Production implementations of the API's service Protocols (``switchboard.api.services``):
thin adapters that call the queries of ``switchboard/store/`` and turn their rows into
the API's answers.

* :class:`PgCallService`      call search and one call's timeline (``store/calls_query.py``)
* :class:`PgPreviousCalls`    a caller's last calls for the screen pop
* :class:`PgReportService`    the care-center reports of ``switchboard.store.reports`` as tables,
                              and one agent's figures for a day (``store/agent_figures.py``)
* :class:`PgRecordingService` where a call's recording is, as this service sees the files
* :class:`RegistryFlowService` flow validation (the IVR loader) and reload (``FlowRegistry``)
* :class:`HealthChecks`       named readiness checks

No SQL here: the agent state log writer is ``store/agent_log.py``, the pool
``store/pool.py``. Days are the care center's local days (``Asia/Ho_Chi_Minh``
unless told): a day runs from local midnight to the next local midnight. Database
calls carry a ``timeout=``; an unreachable database is an ``UnavailableError`` (HTTP 503).
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import posixpath
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import astuple, dataclass, fields
from datetime import date, datetime
from pathlib import Path, PurePosixPath
from typing import Any
from zoneinfo import ZoneInfo

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
    ReportTable,
    TimelineEntry,
    UnavailableError,
)
from switchboard.config import Settings
from switchboard.ivr.loader import FlowError, FlowLoadError, load_flow_text
from switchboard.ivr.model import Transfer
from switchboard.ivr.registry import FlowRegistry
from switchboard.store import calls_query, reports
from switchboard.store.agent_figures import fetch_agent_day
from switchboard.store.errors import TRANSIENT_DB_ERRORS
from switchboard.store.pool import Db, acquire
from switchboard.store.reports import local_day_bounds

__all__ = [
    "REPORTS",
    "HealthChecks",
    "PgCallService",
    "PgPreviousCalls",
    "PgRecordingService",
    "PgReportService",
    "RegistryFlowService",
]

log = logging.getLogger("switchboard.api.services")

@asynccontextmanager
async def _database(what: str) -> AsyncIterator[None]:
    """Turn "the database is away" into the API's UnavailableError."""
    try:
        yield
    except TRANSIENT_DB_ERRORS as exc:
        log.warning("database unavailable while reading %s: %s: %s", what, type(exc).__name__, exc)
        raise UnavailableError("the database is not reachable", details={"reading": what}) from exc


# ============================================================================ calls

def _summary(r: Mapping[str, Any]) -> CallSummary:
    agents = list(r["answered_by"] or [])
    if r["agent_id"] and r["agent_id"] not in agents:
        agents.append(r["agent_id"])
    started = r["started_at"] or r["queue_joined_at"] or r["answered_at"] or r["ended_at"]
    return CallSummary(
        call_id=r["call_id"], started_at=started, caller=r["caller"], dialed=r["dialed"],
        ended_at=r["ended_at"], topic=r["topic"], province=r["province"], agent_ids=tuple(agents),
        outcome=r["outcome"], wait_s=r["wait_s"], talk_s=r["talk_s"], has_recording=r["has_recording"],
    )


class PgCallService:
    """``CallService`` over ``calls`` and ``call_events``.

    Search matches ``number`` anywhere in the caller number (``0912…`` also finds
    ``+84912…`` and back), dates on ``started_at`` in local days (``date_to``
    inclusive), ``agent_id`` on any agent who answered the call (transfers
    included), ``outcome`` exactly. Newest first; ``total`` counts every match.
    """

    def __init__(self, pool: Db, *, tz: str = reports.DEFAULT_TZ, timeout: float = 10.0) -> None:
        self._pool = pool
        self._tz = ZoneInfo(tz)
        self._timeout = timeout

    async def search(self, query: CallQuery) -> CallPage:
        if query.limit < 1 or query.offset < 0:
            raise ValueError("limit must be >= 1 and offset >= 0")
        where, args = calls_query.call_filter(number=query.number, date_from=query.date_from,
                                              date_to=query.date_to, agent_id=query.agent_id,
                                              outcome=query.outcome, tz=self._tz)
        async with _database("calls"), acquire(self._pool, timeout=self._timeout) as conn:
            total, rows = await calls_query.search_calls(conn, where, args, limit=query.limit,
                                                         offset=query.offset, timeout=self._timeout)
        return CallPage(items=[_summary(r) for r in rows], total=total)

    async def get(self, call_id: str) -> CallDetail:
        async with _database(f"call {call_id}"), acquire(self._pool, timeout=self._timeout) as conn:
            row, events = await calls_query.fetch_call(conn, call_id, timeout=self._timeout)
            if row is None:
                raise NotFoundError(f"no call {call_id}", details={"call_id": call_id})
        timeline = [TimelineEntry(seq=e["seq"], ts=e["ts"], kind=e["kind"], data=json.loads(e["data"]))
                    for e in events]
        return CallDetail(call=_summary(row), timeline=timeline)


class PgPreviousCalls:
    """A caller's last calls for the screen pop (``PreviousCalls``), newest first."""

    def __init__(self, pool: Db, *, timeout: float = 3.0) -> None:
        self._pool = pool
        self._timeout = timeout

    async def __call__(self, caller: str) -> list[PreviousCall]:
        async with self._pool.acquire(timeout=self._timeout) as conn:
            rows = await calls_query.recent_calls_of(conn, caller, timeout=self._timeout)
        return [PreviousCall(r["call_id"], r["started_at"], r["topic"], r["outcome"], r["agent_id"]) for r in rows]


# ============================================================================ reports


@dataclass(frozen=True, slots=True)
class _ReportSpec:
    interval: reports.Interval
    group_by: reports.GroupBy
    ivr: bool = False


REPORTS: dict[str, _ReportSpec] = {
    "daily": _ReportSpec("day", None),
    "halfhourly": _ReportSpec("halfhour", None),
    "hourly": _ReportSpec("hour", None),
    "weekly": _ReportSpec("week", None),
    "daily-by-topic": _ReportSpec("day", "topic"),
    "daily-by-province": _ReportSpec("day", "province"),
    "daily-by-agent": _ReportSpec("day", "agent"),
    "ivr-dropoff": _ReportSpec("day", None, ivr=True),
}


def _cell(value: Any, interval: str) -> Any:
    if isinstance(value, datetime):  # the local wall-clock start of the period
        return value.strftime("%Y-%m-%dT%H:%M") if interval in ("hour", "halfhour") else value.date().isoformat()
    if isinstance(value, float):
        return round(value, 4)
    return value


def _table(name: str, rows: Sequence[Any], cls: type[Any], interval: str) -> ReportTable:
    return ReportTable(name=name, columns=[f.name for f in fields(cls)],
                       rows=[[_cell(v, interval) for v in astuple(r)] for r in rows])


class PgReportService:
    """``ReportService`` on ``switchboard.store.reports`` (definitions: docs/reports.md).

    Report names: see :data:`REPORTS`. ``run`` covers local days ``date_from``
    to ``date_to`` inclusive; thresholds come from ``settings.routing``.
    """

    def __init__(self, pool: Db, settings: Settings, *, tz: str = reports.DEFAULT_TZ,
                 timeout: float = 30.0, max_days: int = 366) -> None:
        self._pool = pool
        self._settings = settings
        self._tz_name = tz
        self._tz = ZoneInfo(tz)
        self._timeout = timeout
        self._max_days = max_days

    def names(self) -> Sequence[str]:
        return list(REPORTS)

    async def run(self, name: str, *, date_from: date, date_to: date) -> ReportTable:
        spec = REPORTS.get(name)
        if spec is None:
            raise NotFoundError(f"no report named {name}", details={"reports": list(REPORTS)})
        if date_to < date_from or (date_to - date_from).days >= self._max_days:
            raise ValueError(f"date range must be 1..{self._max_days} days with date_to >= date_from")
        start, end = local_day_bounds(date_from, date_to, self._tz)
        routing = self._settings.routing
        async with _database(f"report {name}"), acquire(self._pool, timeout=self._timeout) as conn:
            if spec.ivr:
                ivr_rows = await reports.fetch_ivr_dropoff(conn, start=start, end=end, timeout=self._timeout)
                return _table(name, ivr_rows, reports.IvrNodeRow, spec.interval)
            rows = await reports.fetch_report(
                conn, start=start, end=end, interval=spec.interval, group_by=spec.group_by,
                service_level_s=routing.service_level_s, short_abandon_s=routing.short_abandon_s,
                tz=self._tz_name, timeout=self._timeout)
        return _table(name, rows, reports.ReportRow, spec.interval)

    async def agent_day(self, agent_id: str, *, day: date) -> AgentFigures:
        """One agent's local day: calls answered (transfers in included), offers not answered
        (any result but ``answered``), talk time (``agent.ended``), time in wrap-up and paused
        (agent state log, clipped to the day; today counts up to now), average handle time
        ``(talk + wrap-up) / answered`` and the mean survey score of the agent's calls."""
        start, end = local_day_bounds(day, day, self._tz)
        async with _database(f"figures of agent {agent_id}"), acquire(self._pool, timeout=self._timeout) as conn:
            ev, states, survey = await fetch_agent_day(conn, agent_id, start=start, end=end, timeout=self._timeout)
        answered = int(ev["answered"]) if ev else 0
        talk = float(ev["talk_s"]) if ev else 0.0
        wrap = float(states.get("wrap_up") or 0.0)
        return AgentFigures(
            agent_id=agent_id, day=day, answered=answered,
            missed_offers=int(ev["missed_offers"]) if ev else 0,
            talk_s=talk, wrap_up_s=wrap, paused_s=float(states.get("paused") or 0.0),
            avg_handle_s=(talk + wrap) / answered if answered else None,
            survey_avg=float(survey) if survey is not None else None,
        )


# ============================================================================ recordings


class PgRecordingService:
    """``RecordingService``: ``calls.recording_path`` as this service sees it.

    The stored path is the one Asterisk wrote. Under ``asterisk_recordings_dir``
    (where Asterisk sees the folder; empty = the same as ``recordings_dir``) it
    is mapped into ``recordings_dir``; a relative path is relative to
    ``recordings_dir``. Anything else is returned unchanged: the API refuses
    paths outside ``recordings_dir``.
    """

    def __init__(self, pool: Db, *, recordings_dir: str | Path, asterisk_recordings_dir: str | Path = "",
                 timeout: float = 5.0) -> None:
        self._pool = pool
        self.recordings_dir = Path(recordings_dir)
        self.asterisk_recordings_dir = PurePosixPath(str(asterisk_recordings_dir)) \
            if str(asterisk_recordings_dir) else None
        self._timeout = timeout

    @classmethod
    def from_settings(cls, pool: Db, settings: Settings, *, timeout: float = 5.0) -> PgRecordingService:
        return cls(pool, recordings_dir=settings.paths.recordings_dir,
                   asterisk_recordings_dir=settings.paths.asterisk_recordings_dir, timeout=timeout)

    def map_path(self, stored: str) -> Path:
        norm = PurePosixPath(posixpath.normpath(stored))
        if not norm.is_absolute():
            return self.recordings_dir / norm
        if self.asterisk_recordings_dir is not None and norm.is_relative_to(self.asterisk_recordings_dir):
            return self.recordings_dir / norm.relative_to(self.asterisk_recordings_dir)
        return Path(norm)

    async def path_for(self, call_id: str) -> Path | None:
        async with _database(f"recording of call {call_id}"):
            stored = await calls_query.recording_path(self._pool, call_id, timeout=self._timeout)
        if not stored:
            return None
        return self.map_path(str(stored))


# ============================================================================ flows


def _problem(err: FlowError) -> FlowProblem:
    return FlowProblem(where=f"{err.file}:{err.line}:{err.column}", message=err.message)


class RegistryFlowService:
    """``FlowService`` over the IVR loader and the running ``FlowRegistry``.

    ``validate`` checks a YAML document as ``reload`` would (schema, graph,
    prompt audio when the registry has a prompts folder, transfers to flows
    that are not loaded); ``where`` is ``<name>.yaml:line:column``. ``reload``
    reloads the folder; a rejected file leaves its last good version running.
    """

    def __init__(self, registry: FlowRegistry) -> None:
        self._registry = registry
        self._lock = asyncio.Lock()

    def _validate(self, source: str, name: str) -> FlowValidation:
        file = name if name.endswith((".yaml", ".yml")) else f"{name}.yaml"
        try:
            flow = load_flow_text(source, file, prompts_dir=self._registry.prompts_dir)
        except FlowLoadError as exc:
            return FlowValidation(ok=False, problems=[_problem(e) for e in exc.errors])
        except RecursionError:  # a hostile document nested thousands deep: a problem, not a crash
            return FlowValidation(ok=False, problems=[FlowProblem(
                where=file, message="the document nests too deeply to be a flow")])
        known = set(self._registry.flows) | {flow.name}
        problems = [
            FlowProblem(where=str(node.where), message=f"node {node.name}: transfer to unknown flow {node.flow!r}")
            for node in flow.nodes.values()
            if isinstance(node, Transfer) and node.flow and node.flow not in known
        ]
        return FlowValidation(ok=not problems, problems=problems)

    async def validate(self, source: str, *, name: str) -> FlowValidation:
        return await asyncio.to_thread(self._validate, source, name)

    async def reload(self) -> FlowReload:
        async with self._lock:
            report = await asyncio.to_thread(self._registry.reload)
        problems = [_problem(e) for e in report.errors]
        flows = self._registry.flows
        for name in report.kept:
            kept = flows.get(name)
            if kept is not None:
                problems.append(FlowProblem(where=kept.file, message=(
                    f"flow {name}: the new file was rejected; version {kept.version} keeps running")))
        return FlowReload(loaded=list(report.loaded), problems=problems)


# ============================================================================ health


class HealthChecks:
    """``HealthService`` from named checks (plain or async callables returning a bool).

    Checks run concurrently, each limited to ``timeout`` seconds; a check that
    raises or times out is False (and logged)."""

    def __init__(self, checks: Mapping[str, Callable[[], bool | Awaitable[bool]]], *,
                 timeout: float = 2.0, info: Callable[[], Mapping[str, Any]] | None = None) -> None:
        self._checks = dict(checks)
        self._timeout = timeout
        self._info = info

    def info(self) -> Mapping[str, Any]:
        """What ``/readyz`` shows beside the checks (active/standby: this instance's role)."""
        return self._info() if self._info is not None else {}

    async def _one(self, name: str, check: Callable[[], bool | Awaitable[bool]]) -> bool:
        try:
            async with asyncio.timeout(self._timeout):
                result = check()
                if inspect.isawaitable(result):
                    result = await result
            return bool(result)
        except Exception as exc:  # a failing check means "not ready", never a 500
            log.warning("readiness check %s failed: %s: %s", name, type(exc).__name__, exc)
            return False

    async def checks(self) -> Mapping[str, bool]:
        names = list(self._checks)
        results = await asyncio.gather(*(self._one(n, self._checks[n]) for n in names))
        return dict(zip(names, results, strict=True))
