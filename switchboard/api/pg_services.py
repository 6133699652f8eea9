"""Production implementations of the API's service Protocols (``switchboard.api.services``).

* :class:`PgCallService`      call search and one call's timeline (``calls``, ``call_events``)
* :class:`PgReportService`    the care-center reports of ``switchboard.store.reports`` as tables,
                              and one agent's figures for a day
* :class:`PgRecordingService` where a call's recording is, as this service sees the files
* :class:`RegistryFlowService` flow validation (the IVR loader) and reload (``FlowRegistry``)
* :class:`HealthChecks`       named readiness checks
* :class:`AgentStateLog`      a non-blocking, batched writer of agent state changes
* :func:`create_pool` / :func:`close_pool`

Days are the care center's local days (``Asia/Ho_Chi_Minh`` unless told): a
day runs from local midnight to the next local midnight. Database calls carry
a ``timeout=``; an unreachable database is an ``UnavailableError`` (HTTP 503).
"""

from __future__ import annotations

import asyncio
import collections
import inspect
import json
import logging
import posixpath
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import astuple, dataclass, fields
from datetime import date, datetime, timedelta
from datetime import time as dtime
from pathlib import Path, PurePosixPath
from typing import Any, TypeAlias
from zoneinfo import ZoneInfo

import asyncpg
import asyncpg.exceptions as pgexc

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
    ReportTable,
    TimelineEntry,
    UnavailableError,
)
from switchboard.config import DatabaseSettings, Settings, redact_dsn
from switchboard.ivr.loader import FlowError, FlowLoadError, load_flow_text
from switchboard.ivr.model import Transfer
from switchboard.ivr.registry import FlowRegistry
from switchboard.store import reports
from switchboard.store.errors import TRANSIENT_DB_ERRORS

__all__ = [
    "REPORTS",
    "AgentStateLog",
    "HealthChecks",
    "PgCallService",
    "PgRecordingService",
    "PgReportService",
    "RegistryFlowService",
    "close_pool",
    "create_pool",
    "local_day_bounds",
]

log = logging.getLogger("switchboard.api.services")

Db: TypeAlias = "asyncpg.Pool | asyncpg.Connection"


def local_day_bounds(first: date, last: date, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """[first 00:00, the day after last 00:00) in ``tz``, as aware datetimes."""
    return (datetime.combine(first, dtime(0), tzinfo=tz),
            datetime.combine(last + timedelta(days=1), dtime(0), tzinfo=tz))


@asynccontextmanager
async def _database(what: str) -> AsyncIterator[None]:
    """Turn "the database is away" into the API's UnavailableError."""
    try:
        yield
    except TRANSIENT_DB_ERRORS as exc:
        log.warning("database unavailable while reading %s: %s: %s", what, type(exc).__name__, exc)
        raise UnavailableError("the database is not reachable", details={"reading": what}) from exc


# ============================================================================ calls

_SUMMARY_COLUMNS = """
    c.call_id, c.started_at, c.queue_joined_at, c.answered_at, c.ended_at,
    COALESCE(c.caller, '') AS caller, c.dialed, c.topic, c.province, c.agent_id, c.outcome, c.talk_s,
    CASE WHEN c.queue_joined_at IS NULL THEN NULL
         WHEN c.answered_at IS NOT NULL
             THEN COALESCE(c.queue_wait_s, extract(epoch FROM c.answered_at - c.queue_joined_at))
         WHEN c.ended_at IS NOT NULL THEN extract(epoch FROM c.ended_at - c.queue_joined_at)
    END::float8 AS wait_s,
    COALESCE(c.recording_path, '') <> '' AS has_recording,
    ARRAY(SELECT x.agent FROM (SELECT e.data->>'agent_id' AS agent, min(e.seq) AS first_seq
                               FROM call_events e
                               WHERE e.call_id = c.call_id AND e.kind = 'call.answered'
                                 AND jsonb_typeof(e.data->'agent_id') = 'string'
                               GROUP BY 1) x
          ORDER BY x.first_seq) AS answered_by
"""


def _number_patterns(number: str) -> list[str]:
    """LIKE patterns for a caller number search: the digits as typed, and the same number
    in the other Vietnamese form (0xxx <-> +84xxx)."""
    escaped = number.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    forms = [escaped]
    if escaped.startswith("+84") and len(escaped) > 3:
        forms.append("0" + escaped[3:])
    elif escaped.startswith("0") and len(escaped) > 1:
        forms.append("+84" + escaped[1:])
    return [f"%{f}%" for f in forms]


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

    def _where(self, query: CallQuery) -> tuple[str, list[Any]]:
        conds: list[str] = []
        args: list[Any] = []

        def arg(value: Any) -> str:
            args.append(value)
            return f"${len(args)}"

        if query.number:
            conds.append(f"c.caller LIKE ANY({arg(_number_patterns(query.number))}::text[])")
        if query.date_from is not None:
            conds.append(f"c.started_at >= {arg(local_day_bounds(query.date_from, query.date_from, self._tz)[0])}")
        if query.date_to is not None:
            conds.append(f"c.started_at < {arg(local_day_bounds(query.date_to, query.date_to, self._tz)[1])}")
        if query.agent_id:
            a = arg(query.agent_id)
            conds.append(f"(c.agent_id = {a} OR EXISTS (SELECT 1 FROM call_events e WHERE e.call_id = c.call_id"
                         f" AND e.kind = 'call.answered' AND e.data->>'agent_id' = {a}))")
        if query.outcome:
            conds.append(f"c.outcome = {arg(query.outcome)}")
        return (" AND ".join(conds) or "true"), args

    async def search(self, query: CallQuery) -> CallPage:
        if query.limit < 1 or query.offset < 0:
            raise ValueError("limit must be >= 1 and offset >= 0")
        where, args = self._where(query)
        n = len(args)
        page_sql = (f"SELECT {_SUMMARY_COLUMNS} FROM calls c WHERE {where} "
                    f"ORDER BY c.started_at DESC NULLS LAST, c.call_id DESC LIMIT ${n + 1} OFFSET ${n + 2}")
        count_sql = f"SELECT count(*) FROM calls c WHERE {where}"
        async with _database("calls"), self._acquire() as conn, \
                conn.transaction(isolation="repeatable_read", readonly=True):
            total = await conn.fetchval(count_sql, *args, timeout=self._timeout)
            rows = await conn.fetch(page_sql, *args, query.limit, query.offset, timeout=self._timeout)
        return CallPage(items=[_summary(r) for r in rows], total=int(total))

    async def get(self, call_id: str) -> CallDetail:
        async with _database(f"call {call_id}"), self._acquire() as conn, \
                conn.transaction(isolation="repeatable_read", readonly=True):
            row = await conn.fetchrow(f"SELECT {_SUMMARY_COLUMNS} FROM calls c WHERE c.call_id = $1", call_id,
                                      timeout=self._timeout)
            if row is None:
                raise NotFoundError(f"no call {call_id}", details={"call_id": call_id})
            events = await conn.fetch(
                "SELECT seq, ts, kind, data::text AS data FROM call_events WHERE call_id = $1 ORDER BY seq",
                call_id, timeout=self._timeout)
        timeline = [TimelineEntry(seq=e["seq"], ts=e["ts"], kind=e["kind"], data=json.loads(e["data"]))
                    for e in events]
        return CallDetail(call=_summary(row), timeline=timeline)

    @asynccontextmanager
    async def _acquire(self) -> AsyncIterator[asyncpg.Connection]:
        # A connection is used as it is; anything else is a pool (the service hands a lazy
        # proxy of one, which is no asyncpg.Pool instance).
        if isinstance(self._pool, asyncpg.Connection):
            yield self._pool
        else:
            async with self._pool.acquire(timeout=self._timeout) as conn:
                yield conn


# ============================================================================ reports


@dataclass(frozen=True, slots=True)
class _ReportSpec:
    interval: reports.Interval
    group_by: reports.GroupBy
    ivr: bool = False


REPORTS: dict[str, _ReportSpec] = {
    "daily": _ReportSpec("day", None),
    "hourly": _ReportSpec("hour", None),
    "weekly": _ReportSpec("week", None),
    "daily-by-topic": _ReportSpec("day", "topic"),
    "daily-by-province": _ReportSpec("day", "province"),
    "daily-by-agent": _ReportSpec("day", "agent"),
    "ivr-dropoff": _ReportSpec("day", None, ivr=True),
}


def _cell(value: Any, interval: str) -> Any:
    if isinstance(value, datetime):  # the local wall-clock start of the period
        return value.strftime("%Y-%m-%dT%H:%M") if interval == "hour" else value.date().isoformat()
    if isinstance(value, float):
        return round(value, 4)
    return value


def _table(name: str, rows: Sequence[Any], cls: type[Any], interval: str) -> ReportTable:
    return ReportTable(name=name, columns=[f.name for f in fields(cls)],
                       rows=[[_cell(v, interval) for v in astuple(r)] for r in rows])


_AGENT_EVENTS_SQL = """
SELECT count(DISTINCT call_id) FILTER (WHERE kind = 'call.answered') AS answered,
       count(*) FILTER (WHERE kind = 'agent.offer_result' AND data->>'result' IS DISTINCT FROM 'answered')
           AS missed_offers,
       COALESCE(sum((data->>'talk_s')::float8)
                FILTER (WHERE kind = 'agent.ended' AND jsonb_typeof(data->'talk_s') = 'number'), 0) AS talk_s
FROM call_events
WHERE ts >= $2 AND ts < $3
  AND kind IN ('call.answered', 'agent.offer_result', 'agent.ended')
  AND data->>'agent_id' = $1
"""

# Time in each state, from consecutive rows of the log: a row says "from ``at`` the agent is in
# ``to_state``" until the next row (or now). The intervals are clipped to the day.
_AGENT_STATES_SQL = """
WITH s AS (
    SELECT to_state, at, lead(at) OVER (ORDER BY at, id) AS until
    FROM agent_state_log
    WHERE agent_id = $1 AND at < $3
      AND at >= COALESCE((SELECT max(at) FROM agent_state_log WHERE agent_id = $1 AND at <= $2), $2)
)
SELECT to_state,
       sum(extract(epoch FROM LEAST(COALESCE(until, LEAST(now(), $3)), $3) - GREATEST(at, $2)))::float8 AS s
FROM s
WHERE to_state IN ('wrap_up', 'paused') AND LEAST(COALESCE(until, LEAST(now(), $3)), $3) > GREATEST(at, $2)
GROUP BY to_state
"""

_AGENT_SURVEY_SQL = """
SELECT avg(s.score::float8)
FROM surveys s LEFT JOIN calls c USING (call_id)
WHERE COALESCE(s.agent_id, c.agent_id) = $1 AND s.answered_at >= $2 AND s.answered_at < $3
"""


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
        async with _database(f"report {name}"), self._acquire() as conn:
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
        async with _database(f"figures of agent {agent_id}"), self._acquire() as conn:
            ev = await conn.fetchrow(_AGENT_EVENTS_SQL, agent_id, start, end, timeout=self._timeout)
            states = {r["to_state"]: r["s"] for r in
                      await conn.fetch(_AGENT_STATES_SQL, agent_id, start, end, timeout=self._timeout)}
            survey = await conn.fetchval(_AGENT_SURVEY_SQL, agent_id, start, end, timeout=self._timeout)
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

    @asynccontextmanager
    async def _acquire(self) -> AsyncIterator[asyncpg.Connection]:
        # A connection is used as it is; anything else is a pool (the service hands a lazy
        # proxy of one, which is no asyncpg.Pool instance).
        if isinstance(self._pool, asyncpg.Connection):
            yield self._pool
        else:
            async with self._pool.acquire(timeout=self._timeout) as conn:
                yield conn


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
            stored = await self._pool.fetchval("SELECT recording_path FROM calls WHERE call_id = $1", call_id,
                                               timeout=self._timeout)
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
                 timeout: float = 2.0) -> None:
        self._checks = dict(checks)
        self._timeout = timeout

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


# ============================================================================ agent state log

StateRow = tuple[str, datetime, str | None, str, str | None, str | None, float | None]

# Idempotent: a batch retried after a link drop (its commit may have landed) writes once.
_INSERT_STATE = """
INSERT INTO agent_state_log (agent_id, at, from_state, to_state, reason, call_id, duration_s)
SELECT $1, $2, $3, $4, $5, $6, $7
WHERE NOT EXISTS (SELECT 1 FROM agent_state_log
                  WHERE agent_id = $1 AND at = $2 AND to_state = $4 AND from_state IS NOT DISTINCT FROM $3)
"""

_BAD_DATA_ERRORS: tuple[type[BaseException], ...] = (
    pgexc.DataError,                            # class 22
    pgexc.IntegrityConstraintViolationError,    # class 23
)


class AgentStateLog:
    """Records agent state changes into ``agent_state_log`` without blocking the caller.

    ``record()`` appends to a bounded in-memory queue; a background task writes
    what is queued every ``flush_interval`` seconds in batches (``executemany``).
    While the database is away the rows stay queued and are retried with
    backoff; when the queue is full the oldest row is dropped, counted in
    ``dropped_total`` and logged (rows being written are never dropped: while a
    batch is in flight the queue may exceed ``max_rows`` by up to one batch,
    trimmed when the write ends). Give it a pool or a DSN (then it keeps one
    connection of its own and reconnects).

    Counters: ``queue_depth``, ``written_total``, ``dropped_total``, ``last_error``.
    """

    name = "agent-state-log"

    def __init__(
        self,
        db: asyncpg.Pool | str,
        *,
        max_rows: int = 50_000,
        batch_size: int = 1000,
        flush_interval: float = 0.5,
        timeout: float = 5.0,
        reconnect_min: float = 0.2,
        reconnect_max: float = 5.0,
        stop_timeout: float = 10.0,
    ) -> None:
        if max_rows < 1 or batch_size < 1:
            raise ValueError("max_rows and batch_size must be >= 1")
        self._db = db
        self._max_rows = max_rows
        self._batch_size = min(batch_size, max_rows)
        self._flush_interval = flush_interval
        self._timeout = timeout
        self._reconnect_min = reconnect_min
        self._reconnect_max = reconnect_max
        self._stop_timeout = stop_timeout
        self._queue: collections.deque[StateRow] = collections.deque()
        self._inflight: list[StateRow] = []
        self._conn: asyncpg.Connection | None = None
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._stopping = False
        self._backoff = reconnect_min
        self._retry_at = 0.0
        self._dropping = False
        self.written_total = 0
        self.dropped_total = 0
        self.last_error: str | None = None

    # -- counters

    @property
    def queue_depth(self) -> int:
        return len(self._queue) + len(self._inflight)

    # -- producer side

    def record(self, agent_id: str, at: datetime, from_state: str | None, to_state: str,
               reason: str | None = None, call_id: str | None = None, duration_s: float | None = None) -> None:
        """Queue one state change; never blocks, never awaits. ValueError for a row that can
        never be stored (empty ids/states, a naive ``at``)."""
        if not agent_id or not to_state:
            raise ValueError("agent_id and to_state are required")
        if not isinstance(at, datetime) or at.tzinfo is None:
            raise ValueError(f"at must be a timezone-aware datetime (agent {agent_id})")
        if not self._inflight and len(self._queue) >= self._max_rows:  # else trimmed after the write
            self._queue.popleft()
            self._count_drop(1)
        self._queue.append((agent_id, at, from_state, to_state, reason, call_id,
                            None if duration_s is None else float(duration_s)))
        if len(self._queue) >= self._batch_size:
            self._wake.set()

    def _count_drop(self, n: int) -> None:
        self.dropped_total += n
        if not self._dropping:
            self._dropping = True
            log.warning("agent state log queue full (%d rows, database %s): dropping the oldest changes",
                        self._max_rows, "away" if self.last_error else "slow")

    # -- lifecycle

    async def start(self) -> None:
        self._stopping = False
        self._task = asyncio.create_task(self._run(), name=self.name)
        log.info("agent state log started")

    async def stop(self) -> None:
        """Write what is queued (bounded by ``stop_timeout``), then close."""
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), timeout=self._stop_timeout)
            except TimeoutError:
                self._task.cancel()
                await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        left = self.queue_depth
        if left:
            self.dropped_total += left
            log.error("agent state log stopped with %d changes not written (database: %s)", left,
                      self.last_error or "?")
            self._queue.clear()
            self._inflight = []
        await self._close_conn()
        log.info("agent state log stopped: %d written, %d dropped", self.written_total, self.dropped_total)

    async def flush(self, *, timeout: float) -> bool:
        """Wait until everything queued so far is written; False on timeout (tests, shutdown)."""
        deadline = time.monotonic() + timeout
        while self.queue_depth:
            if time.monotonic() >= deadline:
                return False
            self._wake.set()
            await asyncio.sleep(0.02)
        return True

    # -- the loop

    async def _run(self) -> None:
        while True:
            if not self._stopping:
                try:
                    await asyncio.wait_for(self._wake.wait(), timeout=self._flush_interval)
                except TimeoutError:
                    pass
            self._wake.clear()
            while self._queue and time.monotonic() >= self._retry_at:
                if not await self._write_next():
                    break
            if self._stopping:
                if not self._queue:
                    return
                # the database is away: keep retrying until stop() gives up on us
                await asyncio.sleep(max(0.01, self._retry_at - time.monotonic()))

    async def _write_next(self) -> bool:
        n = min(self._batch_size, len(self._queue))
        self._inflight = [self._queue.popleft() for _ in range(n)]
        try:
            written, bad = await self._write(self._inflight)
        except (*TRANSIENT_DB_ERRORS, asyncpg.PostgresError) as exc:
            self._put_back()
            await self._note_down(exc)
            return False
        self._inflight = []
        self._trim()  # rows recorded while the batch was in flight may overshoot the bound
        self.written_total += written
        if bad:
            self.dropped_total += bad
        if self.last_error is not None:
            log.info("agent state log: database back, writing again")
        self.last_error = None
        self._backoff = self._reconnect_min
        self._dropping = False
        return True

    async def _write(self, rows: list[StateRow]) -> tuple[int, int]:
        """(rows written, rows refused as bad data) for one batch."""
        async with self._connection() as conn:
            try:
                await conn.executemany(_INSERT_STATE, rows, timeout=self._timeout)
                return len(rows), 0
            except _BAD_DATA_ERRORS:
                pass
            written = bad = 0  # one bad row must not hold the others back forever
            for row in rows:
                try:
                    await conn.execute(_INSERT_STATE, *row, timeout=self._timeout)
                    written += 1
                except _BAD_DATA_ERRORS as exc:
                    bad += 1
                    log.error("agent state change of %s at %s refused by the database (%s: %s): dropped",
                              row[0], row[1].isoformat(), type(exc).__name__, exc)
            return written, bad

    def _put_back(self) -> None:
        self._queue.extendleft(reversed(self._inflight))
        self._inflight = []
        self._trim()

    def _trim(self) -> None:
        """Drop the oldest rows beyond ``max_rows`` (never rows being written)."""
        excess = len(self._queue) - self._max_rows
        if excess > 0:
            for _ in range(excess):
                self._queue.popleft()
            self._count_drop(excess)

    async def _note_down(self, exc: BaseException) -> None:
        first = self.last_error is None
        self.last_error = f"{type(exc).__name__}: {exc}"
        if isinstance(exc, TRANSIENT_DB_ERRORS):
            await self._close_conn()
        self._retry_at = time.monotonic() + self._backoff
        (log.warning if first else log.debug)(
            "agent state log cannot write (%s): %d changes kept, retry in %.1fs",
            self.last_error, self.queue_depth, self._backoff)
        self._backoff = min(self._backoff * 2, self._reconnect_max)

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[asyncpg.Connection]:
        if isinstance(self._db, asyncpg.Pool):
            async with self._db.acquire(timeout=self._timeout) as conn:
                yield conn
            return
        if self._conn is None or self._conn.is_closed():
            self._conn = await asyncpg.connect(self._db, timeout=self._timeout,
                                               server_settings={"application_name": "switchboard-agent-log"})
            log.info("agent state log connected to %s", redact_dsn(self._db))
        yield self._conn

    async def _close_conn(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None or conn.is_closed():
            return
        try:
            await conn.close(timeout=2.0)
        except (*TRANSIENT_DB_ERRORS, asyncpg.PostgresError):
            conn.terminate()


# ============================================================================ pool


async def create_pool(
    settings: DatabaseSettings,
    *,
    dsn: str | None = None,
    connect_timeout: float = 5.0,
    application_name: str = "switchboard",
) -> asyncpg.Pool:
    """A connection pool sized by ``database.pool_min``/``pool_max``; every connection
    attempt is limited to ``connect_timeout`` and every query to ``command_timeout``."""
    target = dsn or settings.dsn
    pool = asyncpg.create_pool(
        target,
        min_size=settings.pool_min,
        max_size=max(settings.pool_max, settings.pool_min),
        timeout=connect_timeout,
        command_timeout=settings.command_timeout,
        max_inactive_connection_lifetime=300.0,
        server_settings={"application_name": application_name},
    )
    try:
        async with asyncio.timeout(connect_timeout * max(1, settings.pool_min) + 1.0):
            await pool
    except BaseException:
        pool.terminate()
        raise
    log.info("database pool ready (%s, %d-%d connections)", redact_dsn(target), settings.pool_min,
             settings.pool_max)
    return pool


async def close_pool(pool: asyncpg.Pool, *, timeout: float = 5.0) -> None:
    """Close gracefully (waits for connections in use), then terminate what is left."""
    try:
        await asyncio.wait_for(pool.close(), timeout=timeout)
    except TimeoutError:
        log.warning("database pool did not close within %.1fs: terminating", timeout)
        pool.terminate()
