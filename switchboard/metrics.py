"""Prometheus metrics: contact-center KPIs from the call-event stream, and health.

Why one long file: every metric the service exports is declared here, next to how it is
derived from the call-event stream, so an operator finds a metric's meaning in one place.

One :class:`Metrics` object owns its own ``CollectorRegistry`` (no globals), so
tests build as many as they like. KPIs are derived from the same
:class:`~switchboard.events.CallEvent` stream that the store writes and the
websocket forwards: feed every event to :meth:`Metrics.observe_event`.
Values that live elsewhere (agents by state, AMI connected, writer queue
depth, spool size ...) are read from callables at scrape time, given with
:meth:`Metrics.set_sources`.

Labels are bounded: ``topic`` and ``province`` are checked against the known
sets (anything else is counted as ``other``), ``outcome`` against
:data:`OUTCOMES`, HTTP ``route`` is the route template, never the raw path.

Service level (SL) = calls answered within ``service_level_s`` / (answered +
abandoned after ``short_abandon_s``); abandon ratio = abandoned after
``short_abandon_s`` / (answered + those abandoned). Both over a sliding window
(``window_s``) and over today (local time, reset at midnight).
"""

from __future__ import annotations

import re
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from switchboard.events import CallEvent, EventKind

__all__ = ["OUTCOMES", "Metrics", "Sources"]

OUTCOMES = (
    "answered",
    "abandoned",          # left the queue after short_abandon_s (the store's abandoned_queue)
    "short_abandon",      # left the queue sooner
    "abandoned_ivr",
    "after_hours",
    "self_service",
    "ivr_completed",
    "callback",
    "transferred",
    "overload",           # a new caller refused past capacity (busy message or the fallback queue)
    "fallback",           # the service handed the caller to the fallback queue (a failed step, stranded)
    "timeout",
    "failed",
    "other",
)
OTHER = "other"
UNKNOWN = "unknown"
#: Why a caller was taken off AGI by the service (switchboard/telephony/rescue.py).
RESCUE_REASONS = ("agi_timeout", "ami_disconnected", "agi_refused", "error", "stranded", "overload")
#: Why a new caller was refused past capacity (switchboard/telephony/overload.py).
OVERLOAD_REASONS = ("calls", "loop_lag", "agi_ack")
RECONCILE_ACTIONS = ("gone", "adopted", "fallback", "hangup")
_LABEL_RE = re.compile(r"[a-z0-9][a-z0-9_/.-]{0,47}")

WAIT_BUCKETS = (5, 10, 20, 30, 45, 60, 90, 120, 180, 300, 600, 1200)
HANDLE_BUCKETS = (30, 60, 120, 180, 240, 300, 450, 600, 900, 1200, 1800, 3600)
SCORE_BUCKETS = (1, 2, 3, 4, 5)
#: AGI commands and event-loop lag: milliseconds matter (targets: p99 < 100 ms and < 20 ms).
FAST_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0)
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class _Labels:
    """A bounded label vocabulary: the known values, or (when none are given)
    at most ``cap`` well-formed values first seen; the rest are ``other``."""

    def __init__(self, known: Iterable[str] | None, *, cap: int = 64) -> None:
        self._fixed = known is not None
        self._values: set[str] = set(known or ())
        self._cap = cap

    def __call__(self, value: object) -> str:
        if value is None or value == "":
            return UNKNOWN
        text = str(value).strip().lower()
        if text in self._values or text == UNKNOWN:
            return text
        if self._fixed or len(self._values) >= self._cap or not _LABEL_RE.fullmatch(text):
            return OTHER
        self._values.add(text)
        return text


@dataclass
class Sources:
    """Callables read at scrape time. Any of them may be left out."""

    agents: Callable[[], Mapping[tuple[str, str], int]] | None = None  # (state, pause reason or "") -> count
    callbacks_pending: Callable[[], int] | None = None
    ami_connected: Callable[[], bool] | None = None
    agi_commands_in_flight: Callable[[], int] | None = None
    db_writer_queue_depth: Callable[[], int] | None = None
    db_spool_bytes: Callable[[], int] | None = None
    websocket_clients: Callable[[], int] | None = None


@dataclass
class _Track:
    topic: str
    province: str
    joined_at: datetime | None = None
    answered: bool = False
    callback: bool = False


class _Tally:
    """Counts for SL and abandon ratio: a sliding window and today."""

    def __init__(self, *, window_s: float, tz: tzinfo) -> None:
        self.window_s = window_s
        self.tz = tz
        self._window: deque[tuple[datetime, str]] = deque()
        self._day: date | None = None
        self._today: dict[str, int] = {}

    def add(self, ts: datetime, kind: str) -> None:  # kind: in_sl | late | abandoned | short
        self._window.append((ts, kind))
        day = ts.astimezone(self.tz).date()
        if day != self._day:
            if self._day is None or day > self._day:
                self._day, self._today = day, {}
            else:
                return  # a late event of yesterday: not today's
        self._today[kind] = self._today.get(kind, 0) + 1

    def counts(self, now: datetime) -> tuple[dict[str, int], dict[str, int]]:
        while self._window and (now - self._window[0][0]).total_seconds() > self.window_s:
            self._window.popleft()
        win: dict[str, int] = {}
        for _, kind in self._window:
            win[kind] = win.get(kind, 0) + 1
        today = dict(self._today) if self._day == now.astimezone(self.tz).date() else {}
        return win, today


def _ratios(c: Mapping[str, int]) -> tuple[float | None, float | None]:
    answered = c.get("in_sl", 0) + c.get("late", 0)
    abandoned = c.get("abandoned", 0)
    offered = answered + abandoned
    if offered == 0:
        return None, None
    return c.get("in_sl", 0) / offered, abandoned / offered


def _utcnow() -> datetime:
    return datetime.now(UTC)


class Metrics:
    """All of the switchboard's Prometheus metrics, in one registry."""

    def __init__(
        self,
        *,
        registry: CollectorRegistry | None = None,
        service_level_s: float = 20.0,
        short_abandon_s: float = 5.0,
        window_s: float = 900.0,
        topics: Iterable[str] | None = None,
        provinces: Iterable[str] | None = None,
        outcomes: Iterable[str] = OUTCOMES,
        tz: tzinfo | None = None,
        clock: Callable[[], datetime] = _utcnow,
        max_tracked_calls: int = 100_000,
    ) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        self.service_level_s = service_level_s
        self.short_abandon_s = short_abandon_s
        self.window_s = window_s
        self.tz = tz or ZoneInfo("Asia/Ho_Chi_Minh")
        self.clock = clock
        self.sources = Sources()
        self._topic = _Labels(topics)
        self._province = _Labels(provinces)
        self._outcome = _Labels(outcomes)
        self._max_tracked = max_tracked_calls
        self._calls: OrderedDict[str, _Track] = OrderedDict()
        self._talk: OrderedDict[tuple[str, str], float] = OrderedDict()
        self._ended: OrderedDict[str, str] = OrderedDict()  # call id -> topic, for wrap-ups after the end
        self._tally = _Tally(window_s=window_s, tz=self.tz)
        r = self.registry

        self.calls = Counter("switchboard_calls", "Calls ended, by topic, province and outcome.",
                             ["topic", "province", "outcome"], registry=r)
        self.wait = Histogram("switchboard_wait_seconds", "Time callers waited in queue before an agent answered.",
                              ["topic"], buckets=WAIT_BUCKETS, registry=r)
        self.abandoned_wait = Histogram("switchboard_abandoned_wait_seconds",
                                        "Time callers waited in queue before hanging up unanswered.",
                                        ["topic"], buckets=WAIT_BUCKETS, registry=r)
        self.handle = Histogram("switchboard_handle_seconds", "Agent handle time: talk plus wrap-up.",
                                ["topic"], buckets=HANDLE_BUCKETS, registry=r)
        self.survey = Histogram("switchboard_survey_score", "Post-call survey scores (CSAT 1-5).",
                                ["topic"], buckets=SCORE_BUCKETS, registry=r)
        self.offers = Counter("switchboard_agent_offers", "Calls offered to agents, by result.",
                              ["result"], registry=r)
        self.transfers = Counter("switchboard_transfers", "Transfers of answered calls, by kind (topic, agent, "
                                 "supervisor, number, consult; ivr: the IVR's transfer node) and result (completed, "
                                 "three_way, fallback: the named agent, supervisor or number did not take it and the "
                                 "topic's line did, cancelled, "
                                 "failed, refused).",
                                 ["kind", "result"], registry=r)
        self.ami_reconnects = Counter("switchboard_ami_reconnects", "AMI reconnections.", registry=r)
        self.ami_events = Counter("switchboard_ami_events",
                                  "AMI events read from Asterisk (every node), by fate: delivered to the service's "
                                  "subscribers, or skipped unparsed (no subscriber wants that event).", ["fate"],
                                  registry=r)
        self.ami_event_lag = Gauge("switchboard_ami_event_lag_seconds",
                                   "Delay between an AMI event's timestamp and its handling.", registry=r)
        self.events_seen = Counter("switchboard_call_events", "Call-timeline events observed, by kind.",
                                   ["kind"], registry=r)
        self.http_requests = Counter("switchboard_http_requests", "HTTP requests, by method, route and status.",
                                     ["method", "route", "status"], registry=r)
        self.http_duration = Histogram("switchboard_http_request_duration_seconds", "HTTP request duration.",
                                       ["route"], buckets=HTTP_BUCKETS, registry=r)
        self.websocket_dropped = Counter("switchboard_websocket_dropped_clients",
                                         "Websocket clients dropped for reading too slowly.", registry=r)
        self.websocket_messages = Counter("switchboard_websocket_messages", "Live messages published.",
                                          registry=r)
        self.agi_ack = Histogram("switchboard_agi_ack_seconds",
                                 "AGI command sent over AMI until Asterisk accepted it (the action's response), "
                                 "by command.", ["command"], buckets=FAST_BUCKETS, registry=r)
        self.agi_round_trip = Histogram("switchboard_agi_round_trip_seconds",
                                        "AGI command sent until its AsyncAGIExec result, by command (prompts and "
                                        "digit collection include the time they play).", ["command"],
                                        buckets=(*FAST_BUCKETS, 2.5, 5.0, 10.0, 30.0), registry=r)
        self.loop_lag = Histogram("switchboard_event_loop_lag_seconds",
                                  "How late a 10 ms ticker on the service's event loop wakes up.",
                                  buckets=FAST_BUCKETS, registry=r)
        self.gc_pause = Histogram("switchboard_gc_pause_seconds",
                                  "How long each garbage collection of the interpreter stopped the service, by "
                                  "generation (2: the full one).", ["generation"],
                                  buckets=FAST_BUCKETS, registry=r)
        self.service_level_target = Gauge("switchboard_service_level_target_seconds",
                                          "Answer-time target of the service level.", registry=r)
        self.service_level_target.set(service_level_s)
        self.handed_to_fallback = Counter(
            "switchboard_calls_handed_to_fallback", "Callers the service took off AGI to the fallback queue "
            "(a failed or timed-out step, or found stranded), by reason.", ["reason"], registry=r)
        self.hung_up_by_service = Counter(
            "switchboard_calls_hung_up_by_service", "Callers the service hung up with a cause because it could "
            "not hand them on (or found them in AGI after their flow), by reason.", ["reason"], registry=r)
        self.rescue_failures = Counter(
            "switchboard_rescue_failures", "Callers neither handed on nor hung up (Asterisk did not answer); "
            "the reconciliation retries.", ["reason"], registry=r)
        self.reconciled = Counter(
            "switchboard_reconciled", "Reconciliation actions: records closed because the channel was gone, "
            "stranded channels adopted, handed to the fallback queue or hung up.", ["action"], registry=r)
        self.stranded = Gauge("switchboard_stranded_channels",
                              "Channels in AGI that no session served, found by the last reconciliation.",
                              registry=r)
        self.asterisk_node_up = Gauge("switchboard_asterisk_node_up",
                                      "1 while the switchboard's AMI link to this Asterisk node is up and the node "
                                      "is not lost (several nodes, docs/scale.md).", ["node"], registry=r)
        self.asterisk_nodes_lost = Counter("switchboard_asterisk_nodes_lost",
                                           "Asterisk nodes declared lost (link down and SIP silent), by node.",
                                           ["node"], registry=r)
        self.asterisk_node_originates = Gauge("switchboard_asterisk_node_originates",
                                              "Originates sent to each Asterisk node since the start.", ["node"],
                                              registry=r)
        self.overload_active = Gauge("switchboard_overload_active",
                                     "1 while new hotline callers are refused past capacity.", registry=r)
        self.overload_refused = Counter(
            "switchboard_overload_refused", "New hotline callers refused past capacity (busy message or the "
            "fallback queue), by the first limit reached.", ["reason"], registry=r)
        self._rescue_reason = _Labels(RESCUE_REASONS)
        self._overload_reason = _Labels(OVERLOAD_REASONS)
        self._reconcile_action = _Labels(RECONCILE_ACTIONS)
        r.register(_LiveCollector(self))

    # ------------------------------------------------------------------ feeding

    def set_sources(self, **sources: Callable[..., object] | None) -> None:
        """Set scrape-time callables by name (see :class:`Sources`)."""
        for name, fn in sources.items():
            if not hasattr(self.sources, name):
                raise TypeError(f"unknown metrics source {name!r}")
            setattr(self.sources, name, fn)

    def watch_nodes(self, nodes: Any) -> None:
        """Per-node gauges of an ``AmiNodes`` (read at scrape time) and the lost-node counter."""
        def up(n: str) -> Callable[[], float]:
            return lambda: 1.0 if nodes.node_up(n) else 0.0

        def placed(n: str) -> Callable[[], float]:
            return lambda: float(nodes.placements.get(n, 0))

        for name in nodes.clients:
            self.asterisk_node_up.labels(name).set_function(up(name))
            self.asterisk_node_originates.labels(name).set_function(placed(name))
        nodes.on_lost.append(lambda node: self.asterisk_nodes_lost.labels(node).inc())

    def observe_rescue(self, kind: str, reason: str) -> None:
        """A caller taken off AGI: ``kind`` fallback / hangup / failed (see telephony/rescue.py)."""
        counter = {"fallback": self.handed_to_fallback, "hangup": self.hung_up_by_service}.get(
            kind, self.rescue_failures)
        counter.labels(self._rescue_reason(reason)).inc()

    def observe_overload_refused(self, reason: str) -> None:
        self.overload_refused.labels(self._overload_reason(reason)).inc()

    def observe_reconciled(self, action: str) -> None:
        self.reconciled.labels(self._reconcile_action(action)).inc()

    def observe_stranded(self, count: int) -> None:
        self.stranded.set(count)

    def observe_ami_lag(self, seconds: float) -> None:
        self.ami_event_lag.set(max(0.0, seconds))

    def observe_agi(self, command: str, *, ack_s: float, result_s: float | None) -> None:
        """One AGI command: ``command`` is its verb (``STREAM FILE``, ``GET DATA``, ``EXEC Playback``...)."""
        self.agi_ack.labels(command).observe(max(0.0, ack_s))
        if result_s is not None:
            self.agi_round_trip.labels(command).observe(max(0.0, result_s))

    def observe_http(self, *, method: str, route: str, status: int, seconds: float) -> None:
        self.http_requests.labels(method, route, str(status)).inc()
        self.http_duration.labels(route).observe(seconds)

    def _track(self, call_id: str) -> _Track:
        track = self._calls.get(call_id)
        if track is None:
            track = _Track(topic=UNKNOWN, province=UNKNOWN)
            self._calls[call_id] = track
            while len(self._calls) > self._max_tracked:
                self._calls.popitem(last=False)
        return track

    def observe_event(self, event: CallEvent) -> None:
        """Update the KPIs from one call-timeline event."""
        kind, data = event.kind, event.data
        self.events_seen.labels(kind if kind in _KINDS else OTHER).inc()
        if kind == EventKind.CALL_STARTED:
            self._track(event.call_id)
        elif kind == EventKind.QUEUE_JOINED and data.get("province_source") == "transfer":
            self._track(event.call_id).topic = self._topic(data.get("topic"))   # its wait was counted once
        elif kind in (EventKind.QUEUE_JOINED, EventKind.QUEUE_RESUMED):
            track = self._track(event.call_id)
            track.topic = self._topic(data.get("topic"))
            track.province = self._province(data.get("province"))
            joined_wall = data.get("joined_wall")   # a caller taken back waits since its first join
            track.joined_at = (datetime.fromtimestamp(float(joined_wall), UTC)
                               if kind == EventKind.QUEUE_RESUMED and isinstance(joined_wall, int | float)
                               else event.ts)
            track.answered = False
            track.callback = False
        elif kind in _TRANSFER_RESULTS:
            xkind = str(data.get("kind") or "ivr")
            result = _TRANSFER_RESULTS[kind]
            if result == "completed":
                self._tally.add(event.ts, "transferred")
            if data.get("fell_back"):
                result = "fallback"
            elif data.get("result") == "three_way" or data.get("reason") == "cancelled":
                result = str(data.get("result") or data.get("reason"))
            self.transfers.labels(xkind if xkind in _TRANSFER_KINDS else OTHER, result).inc()
        elif kind == EventKind.OFFER_RESULT:
            result = str(data.get("result", ""))
            self.offers.labels(result if result in _OFFER_RESULTS else OTHER).inc()
        elif kind == EventKind.ANSWERED:
            track = self._track(event.call_id)
            wait_s = data.get("wait_s")
            if not isinstance(wait_s, (int, float)) and track.joined_at is not None:
                wait_s = (event.ts - track.joined_at).total_seconds()
            if isinstance(wait_s, (int, float)) and track.joined_at is not None and not track.answered:
                self.wait.labels(track.topic).observe(max(0.0, float(wait_s)))
                self._tally.add(event.ts, "in_sl" if wait_s <= self.service_level_s else "late")
            track.answered = True
            track.joined_at = None
        elif kind == EventKind.CALLBACK_REQUESTED:
            track = self._track(event.call_id)
            track.callback = True
            track.joined_at = None
        elif kind == EventKind.SURVEY:
            score = data.get("score")
            if isinstance(score, (int, float)) and not isinstance(score, bool) and 1 <= score <= 5:
                self.survey.labels(self._calls[event.call_id].topic if event.call_id in self._calls
                                   else UNKNOWN).observe(score)
        elif kind == EventKind.AGENT_ENDED:
            talk_s = data.get("talk_s")
            if isinstance(talk_s, (int, float)):
                self._talk[(event.call_id, str(data.get("agent_id")))] = float(talk_s)
                while len(self._talk) > self._max_tracked:
                    self._talk.popitem(last=False)
        elif kind == EventKind.WRAP_UP_ENDED:
            talk_s = self._talk.pop((event.call_id, str(data.get("agent_id"))), None)
            wrap_s = data.get("wrap_up_s")
            if talk_s is not None and isinstance(wrap_s, (int, float)):
                topic = self._calls[event.call_id].topic if event.call_id in self._calls else self._ended_topic(
                    event.call_id)
                self.handle.labels(topic).observe(talk_s + float(wrap_s))
        elif kind == EventKind.CALL_ENDED:
            self._end(event)

    def _ended_topic(self, call_id: str) -> str:
        return self._ended.get(call_id, UNKNOWN)

    def _end(self, event: CallEvent) -> None:
        track = self._calls.pop(event.call_id, None) or _Track(topic=UNKNOWN, province=UNKNOWN)
        raw = event.data.get("outcome")
        outcome = OTHER if raw == "abandoned_queue" else self._outcome(raw)   # split by wait below
        if track.joined_at is not None and not track.answered and not track.callback:
            waited = max(0.0, (event.ts - track.joined_at).total_seconds())
            if waited >= self.short_abandon_s:
                self._tally.add(event.ts, "abandoned")
                self.abandoned_wait.labels(track.topic).observe(waited)
                if outcome in (UNKNOWN, OTHER):
                    outcome = "abandoned"
            else:
                self._tally.add(event.ts, "short")
                if outcome in (UNKNOWN, OTHER):
                    outcome = "short_abandon"
        self.calls.labels(track.topic, track.province, outcome).inc()
        # wrap-up ends after the call: remember the topic for the handle-time histogram
        self._ended[event.call_id] = track.topic
        while len(self._ended) > 10_000:
            self._ended.popitem(last=False)

    # ------------------------------------------------------------------ reading

    def waiting(self) -> dict[tuple[str, str], tuple[int, float]]:
        """(topic, province) -> (calls waiting, longest wait in seconds), now."""
        now = self.clock()
        out: dict[tuple[str, str], tuple[int, float]] = {}
        for track in self._calls.values():
            if track.joined_at is None:
                continue
            key = (track.topic, track.province)
            count, longest = out.get(key, (0, 0.0))
            out[key] = (count + 1, max(longest, (now - track.joined_at).total_seconds()))
        return out

    def ratios(self) -> dict[str, tuple[float | None, float | None]]:
        """window name -> (service level, abandon ratio); None when no call counted."""
        win, today = self._tally.counts(self.clock())
        return {"window": _ratios(win), "today": _ratios(today)}

    def answered_abandoned_today(self) -> tuple[int, int]:
        """(calls answered, calls abandoned after the short-abandon threshold) since local midnight."""
        _, today = self._tally.counts(self.clock())
        return today.get("in_sl", 0) + today.get("late", 0), today.get("abandoned", 0)

    def transfers_today(self) -> int:
        """Transfers completed since local midnight (the wallboard's tile)."""
        _, today = self._tally.counts(self.clock())
        return today.get("transferred", 0)

    def scrape(self) -> bytes:
        """The text exposition of every metric (what /metrics serves)."""
        return generate_latest(self.registry)


_KINDS = frozenset(k.value for k in EventKind)
_TRANSFER_RESULTS = {EventKind.TRANSFER_COMPLETED.value: "completed", EventKind.TRANSFER.value: "completed",
                     EventKind.TRANSFER_FAILED.value: "failed", EventKind.TRANSFER_REFUSED.value: "refused"}
_TRANSFER_KINDS = frozenset({"topic", "agent", "supervisor", "number", "consult", "ivr"})
_OFFER_RESULTS = frozenset({"answered", "timeout", "rejected", "caller_gone", "failed"})


class _LiveCollector:
    """Gauges computed at scrape time from tracked calls and the sources."""

    def __init__(self, metrics: Metrics) -> None:
        self._m = metrics

    def describe(self) -> Iterator[Metric]:
        return iter(())

    def collect(self) -> Iterator[Metric]:
        m = self._m
        waiting = GaugeMetricFamily("switchboard_calls_waiting", "Calls waiting in queue now.",
                                    labels=["topic", "province"])
        longest = GaugeMetricFamily("switchboard_longest_wait_seconds", "Longest current wait in queue.",
                                    labels=["topic", "province"])
        for (topic, province), (count, wait_s) in sorted(m.waiting().items()):
            waiting.add_metric([topic, province], count)
            longest.add_metric([topic, province], wait_s)
        yield waiting
        yield longest

        window_label = f"{int(m.window_s // 60)}m"
        sl = GaugeMetricFamily("switchboard_service_level_ratio",
                               "Share of calls answered within the target (abandons after the short-abandon "
                               "threshold count against it).", labels=["window"])
        ab = GaugeMetricFamily("switchboard_abandon_ratio",
                               "Share of queued calls abandoned after the short-abandon threshold.",
                               labels=["window"])
        for name, (sl_value, ab_value) in m.ratios().items():
            label = window_label if name == "window" else "today"
            if sl_value is not None and ab_value is not None:
                sl.add_metric([label], sl_value)
                ab.add_metric([label], ab_value)
        yield sl
        yield ab

        src = m.sources
        if src.agents is not None:
            agents = GaugeMetricFamily("switchboard_agents", "Logged-in agents by state and pause reason.",
                                       labels=["state", "reason"])
            for (state, reason), count in sorted(src.agents().items()):
                agents.add_metric([state, reason or ""], count)
            yield agents
        simple = (
            ("switchboard_callbacks_pending", "Callbacks requested and not yet completed.", src.callbacks_pending),
            ("switchboard_ami_connected", "1 when the AMI connection is up and logged in.", src.ami_connected),
            ("switchboard_agi_commands_in_flight", "AsyncAGI commands sent and not yet answered.",
             src.agi_commands_in_flight),
            ("switchboard_db_writer_queue_depth", "Events accepted and not yet written to PostgreSQL.",
             src.db_writer_queue_depth),
            ("switchboard_db_spool_bytes", "Size of the local spool of events awaiting the database.",
             src.db_spool_bytes),
            ("switchboard_websocket_clients", "Connected websocket clients.", src.websocket_clients),
        )
        for name, help_text, fn in simple:
            if fn is not None:
                yield GaugeMetricFamily(name, help_text, value=float(fn()))
