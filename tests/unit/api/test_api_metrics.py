"""KPIs from the call-event stream; promtool accepts the /metrics output."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime, timedelta

from api_fakes import Client, Tokens, bearer

from switchboard.events import CallEvent, EventKind
from switchboard.metrics import Metrics

T0 = datetime(2026, 3, 2, 2, 0, tzinfo=UTC)  # 09:00 in Hà Nội


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def ev(call_id: str, seq: int, at_s: float, kind: EventKind, **data: object) -> CallEvent:
    return CallEvent(call_id=call_id, seq=seq, ts=T0 + timedelta(seconds=at_s), kind=kind.value, data=dict(data))


def make() -> tuple[Metrics, Clock]:
    clock = Clock()
    m = Metrics(clock=clock, service_level_s=20, short_abandon_s=5, window_s=900,
                provinces=["ha-noi", "da-nang"], topics=["social/pension", "health/card"])
    return m, clock


def value(m: Metrics, name: str, **labels: str) -> float | None:
    return m.registry.get_sample_value(name, labels)


def test_answered_and_abandoned_calls_move_the_kpis() -> None:
    m, clock = make()
    # c1: waits 10 s, answered (within SL), talks 100 s, wraps up 20 s, survey 5
    for e in [ev("c1", 1, 0, EventKind.CALL_STARTED), ev("c1", 2, 5, EventKind.QUEUE_JOINED, topic="social/pension",
                                                          province="ha-noi")]:
        m.observe_event(e)
    clock.now = T0 + timedelta(seconds=12)
    assert value(m, "switchboard_calls_waiting", topic="social/pension", province="ha-noi") == 1
    assert value(m, "switchboard_longest_wait_seconds", topic="social/pension", province="ha-noi") == 7
    for e in [ev("c1", 3, 15, EventKind.ANSWERED, agent_id="a1", wait_s=10),
              ev("c1", 4, 115, EventKind.AGENT_ENDED, agent_id="a1", talk_s=100),
              ev("c1", 5, 115, EventKind.SURVEY, score=5),
              ev("c1", 6, 116, EventKind.CALL_ENDED, outcome="answered"),
              ev("c1", 7, 135, EventKind.WRAP_UP_ENDED, agent_id="a1", wrap_up_s=20, disposition="resolved")]:
        m.observe_event(e)
    assert value(m, "switchboard_calls_waiting", topic="social/pension", province="ha-noi") is None
    assert value(m, "switchboard_calls_total", topic="social/pension", province="ha-noi", outcome="answered") == 1
    assert value(m, "switchboard_wait_seconds_count", topic="social/pension") == 1
    assert value(m, "switchboard_wait_seconds_bucket", topic="social/pension", le="10.0") == 1
    assert value(m, "switchboard_handle_seconds_sum", topic="social/pension") == 120
    assert value(m, "switchboard_survey_score_sum", topic="social/pension") == 5
    # c2: waits 40 s and hangs up (abandon); c3: hangs up after 2 s (short abandon, not counted)
    for e in [ev("c2", 1, 200, EventKind.QUEUE_JOINED, topic="health/card", province="atlantis"),
              ev("c2", 2, 240, EventKind.CALL_ENDED, outcome="abandoned"),
              ev("c3", 1, 300, EventKind.QUEUE_JOINED, topic="nonsense", province="da-nang"),
              ev("c3", 2, 302, EventKind.CALL_ENDED)]:
        m.observe_event(e)
    clock.now = T0 + timedelta(seconds=400)
    assert value(m, "switchboard_calls_total", topic="health/card", province="other", outcome="abandoned") == 1
    assert value(m, "switchboard_calls_total", topic="other", province="da-nang", outcome="short_abandon") == 1
    assert value(m, "switchboard_service_level_ratio", window="15m") == 0.5
    assert value(m, "switchboard_abandon_ratio", window="15m") == 0.5
    assert value(m, "switchboard_service_level_ratio", window="today") == 0.5
    # 20 minutes later the sliding window is empty, today still counts
    clock.now = T0 + timedelta(minutes=30)
    assert value(m, "switchboard_service_level_ratio", window="15m") is None
    assert value(m, "switchboard_abandon_ratio", window="today") == 0.5
    # next local day: today's figures reset
    clock.now = T0 + timedelta(hours=23)
    assert value(m, "switchboard_service_level_ratio", window="today") is None


def test_late_answer_and_callback() -> None:
    m, _ = make()
    for e in [ev("c1", 1, 0, EventKind.QUEUE_JOINED, topic="health/card", province="ha-noi"),
              ev("c1", 2, 30, EventKind.ANSWERED, agent_id="a1"),
              ev("c2", 1, 0, EventKind.QUEUE_JOINED, topic="health/card", province="ha-noi"),
              ev("c2", 2, 60, EventKind.CALLBACK_REQUESTED, number="0901", callback_id="k1"),
              ev("c2", 3, 61, EventKind.CALL_ENDED, outcome="callback")]:
        m.observe_event(e)
    assert value(m, "switchboard_wait_seconds_bucket", topic="health/card", le="30.0") == 1
    assert value(m, "switchboard_wait_seconds_bucket", topic="health/card", le="20.0") == 0
    assert m.ratios()["today"] == (0.0, 0.0)  # one late answer; the callback is not an abandon
    assert value(m, "switchboard_calls_total", topic="health/card", province="ha-noi", outcome="callback") == 1


def test_sources_are_read_at_scrape_time() -> None:
    m, _ = make()
    agents = {("ready", ""): 3, ("paused", "lunch"): 1}
    connected = [True]
    m.set_sources(agents=lambda: agents, ami_connected=lambda: connected[0], db_spool_bytes=lambda: 4096)
    assert value(m, "switchboard_agents", state="paused", reason="lunch") == 1
    assert value(m, "switchboard_ami_connected") == 1
    connected[0] = False
    assert value(m, "switchboard_ami_connected") == 0
    assert value(m, "switchboard_db_spool_bytes") == 4096
    m.ami_reconnects.inc()
    assert value(m, "switchboard_ami_reconnects_total") == 1
    try:
        m.set_sources(nonsense=lambda: 1)
    except TypeError:
        pass
    else:
        raise AssertionError("unknown source accepted")


def test_label_values_stay_bounded_without_a_known_list() -> None:
    m = Metrics()
    for i in range(200):
        m.observe_event(ev(f"c{i}", 1, 0, EventKind.QUEUE_JOINED, topic=f"t{i}", province="ha-noi"))
        m.observe_event(ev(f"c{i}", 2, 1, EventKind.CALL_ENDED, outcome=f"weird{i}"))
    text = m.scrape().decode()
    topics = {line.split('topic="')[1].split('"')[0] for line in text.splitlines()
              if line.startswith("switchboard_calls_total{")}
    outcomes = {line.split('outcome="')[1].split('"')[0] for line in text.splitlines()
                if line.startswith("switchboard_calls_total{")}
    assert len(topics) <= 65 and "other" in topics
    assert outcomes == {"short_abandon"}  # unknown outcome, 1 s wait


def _promtool(args: list[str], stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["promtool", *args], input=stdin, capture_output=True, timeout=60, check=False)


async def test_promtool_accepts_the_scrape(client: Client, tokens: Tokens, metrics: Metrics) -> None:
    metrics.set_sources(agents=lambda: {("ready", ""): 2, ("paused", "break"): 1}, ami_connected=lambda: True,
                        agi_commands_in_flight=lambda: 0, db_writer_queue_depth=lambda: 5,
                        db_spool_bytes=lambda: 0, callbacks_pending=lambda: 1)
    for e in [ev("c1", 1, 0, EventKind.QUEUE_JOINED, topic="social/pension", province="ha-noi"),
              ev("c1", 2, 8, EventKind.ANSWERED, agent_id="a1", wait_s=8),
              ev("c2", 1, 0, EventKind.QUEUE_JOINED, topic="social/pension", province="ha-noi")]:
        metrics.observe_event(e)
    await client.get("/api/codes", headers=bearer(tokens.a1))
    resp = await client.get("/metrics")
    body = await resp.read()
    assert resp.status == 200
    for name in ("switchboard_calls_waiting", "switchboard_service_level_ratio", "switchboard_agents",
                 "switchboard_http_requests_total", "switchboard_ami_connected", "switchboard_wait_seconds_bucket"):
        assert name.encode() in body, name
    assert b'route="/api/codes"' in body
    done = _promtool(["check", "metrics"], stdin=body)
    assert done.returncode == 0, done.stdout.decode() + done.stderr.decode()
    # promtool really lints: a bad counter name fails
    bad = _promtool(["check", "metrics"], stdin=b"# HELP x_seconds_total x\n# TYPE x_seconds_total gauge\nx_seconds_total 1\n")
    assert bad.returncode != 0
