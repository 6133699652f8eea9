"""Overload protection: the pure decision (limits, hysteresis), its figures, and which calls it applies to."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from switchboard.ami.agi import AgiResult
from switchboard.calls import CallBook, CallEventBus
from switchboard.config import ConfigError, OverloadSettings, load_settings
from switchboard.events import CallEvent, EventKind
from switchboard.loop_lag import RecentWindow
from switchboard.metrics import Metrics
from switchboard.telephony.entry import AgiEntry
from switchboard.telephony.overload import Load, OverloadCheck, OverloadGuard, Reason


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


SETTINGS = OverloadSettings(max_calls=10, max_loop_lag_s=0.2, max_agi_ack_s=1.0, resume_ratio=0.8, hold_s=5.0)


def load(calls: int = 0, ack: float = 0.0, lag: float = 0.0) -> Load:
    return Load(calls=calls, agi_ack_p99_s=ack, loop_lag_p99_s=lag)


def test_each_limit_refuses_at_its_threshold_and_says_why() -> None:
    for figures, reason in (({"calls": 10}, Reason.CALLS), ({"lag": 0.2}, Reason.LOOP_LAG),
                            ({"ack": 1.0}, Reason.AGI_ACK)):
        guard = OverloadGuard(SETTINGS, clock=Clock())
        below = {k: v * 0.99 if isinstance(v, float) else v - 1 for k, v in figures.items()}
        assert not guard.decide(load(**below)).refuse                 # just under: accepted
        verdict = guard.decide(load(**figures))
        assert verdict.refuse and verdict.reasons == (reason,) and verdict.reason == str(reason)


def test_several_reasons_are_all_listed() -> None:
    verdict = OverloadGuard(SETTINGS, clock=Clock()).decide(load(calls=12, ack=3.0))
    assert verdict.reasons == (Reason.CALLS, Reason.AGI_ACK)


def test_hysteresis_accepts_again_only_after_calm_for_hold_s() -> None:
    clock = Clock()
    guard = OverloadGuard(SETTINGS, clock=clock)
    assert guard.decide(load(calls=10)).refuse
    # back under the limit but above 80 % of it: still refusing (no flapping at the edge)
    verdict = guard.decide(load(calls=9))
    assert verdict.refuse and verdict.reasons == (Reason.CALLS,)
    clock.t += 60
    assert guard.decide(load(calls=9)).refuse                         # time alone does not clear it
    assert guard.decide(load(calls=7)).refuse                         # calm starts now
    clock.t += 4.9
    assert guard.decide(load(calls=7)).refuse
    clock.t += 0.2
    assert not guard.decide(load(calls=7)).refuse and not guard.active
    assert guard.decide(load(calls=9)).refuse is False                # off: only the limit turns it on


def test_a_relapse_during_the_calm_period_restarts_it() -> None:
    clock = Clock()
    guard = OverloadGuard(SETTINGS, clock=clock)
    guard.decide(load(lag=0.5))
    guard.decide(load(lag=0.01))
    clock.t += 4
    assert guard.decide(load(lag=0.19)).refuse      # above 80 % of the limit: calm broken
    clock.t += 2
    assert guard.decide(load(lag=0.01)).refuse      # calm again, from now
    clock.t += 4
    assert guard.decide(load(lag=0.01)).refuse
    clock.t += 1.5
    assert not guard.decide(load(lag=0.01)).refuse


def test_zero_limits_and_disabled_are_not_checked() -> None:
    off = dataclasses.replace(SETTINGS, max_calls=0, max_loop_lag_s=0.0)
    assert not OverloadGuard(off, clock=Clock()).decide(load(calls=10_000, lag=9.0)).refuse
    assert OverloadGuard(off, clock=Clock()).decide(load(ack=1.0)).refuse
    disabled = dataclasses.replace(SETTINGS, enabled=False)
    assert not OverloadGuard(disabled, clock=Clock()).decide(load(calls=99, ack=9, lag=9)).refuse


def test_recent_window_quantile_forgets_old_values() -> None:
    clock = Clock()
    window = RecentWindow(window_s=60, clock=clock)
    assert window.quantile(0.99) == 0.0
    for i in range(100):
        window.add(0.001 * i)
    assert window.quantile(0.99) == pytest.approx(0.099)
    assert window.quantile(0.5) == pytest.approx(0.050)
    clock.t += 61
    window.add(0.002)
    assert len(window) == 1 and window.quantile(0.99) == 0.002


def test_check_combines_the_figures_and_counts_refusals() -> None:
    clock = Clock()
    live = {"n": 3}
    refused: list[str] = []
    check = OverloadCheck(SETTINGS, calls=lambda: live["n"], loop_lag_p99=lambda: 0.01, clock=clock,
                          on_refused=refused.append)
    for _ in range(200):
        check.observe_agi(0.01)
    assert not check.check().refuse
    for _ in range(10):
        check.observe_agi(2.0)                     # 5 % of commands slow: the p99 is over the limit
    clock.t += 1                                   # past the cache
    verdict = check.check()
    assert verdict.refuse and verdict.reasons == (Reason.AGI_ACK,)
    assert verdict.load.calls == 3 and verdict.load.agi_ack_p99_s == 2.0
    check.refused(verdict)
    assert refused == ["agi_ack"] and check.refused_total == 1


def test_settings_section_and_its_checks() -> None:
    s = load_settings(None, environ={"SWITCHBOARD_OVERLOAD_MAX_CALLS": "2", "SWITCHBOARD_OVERLOAD_ACTION": "fallback"})
    assert s.overload.max_calls == 2 and s.overload.action == "fallback"
    assert s.overload.busy_languages == ("vi", "en")
    with pytest.raises(ConfigError, match=r"overload\.action"):
        load_settings(None, environ={}, overrides={"overload": {"action": "drop"}})
    with pytest.raises(ConfigError, match="resume_ratio"):
        load_settings(None, environ={}, overrides={"overload": {"resume_ratio": 1.5}})


# ---------------------------------------------------------------------------- which calls


class FakeSession:
    """An AgiSession as the entry uses it: the env, and the commands it was sent."""

    def __init__(self, context: str, uniqueid: str, env: dict[str, str] | None = None) -> None:
        self.channel = f"PJSIP/trunk-{uniqueid}"
        self.uniqueid = self.linkedid = uniqueid
        self.env = {"agi_context": context, "agi_callerid": "0912000001", "agi_dnid": "19001234", **(env or {})}
        self.commands: list[str] = []
        self.closed = False

    async def execute(self, command: str, *, timeout: float | None = None, tag: str = "") -> AgiResult:
        self.commands.append(command)
        return AgiResult(200, "0", "", None)


class Recorder:
    """Stands for the IVR runner, the survey and the feature codes: notes who was served."""

    def __init__(self) -> None:
        self.served: list[str] = []
        self.registry: Any = None

    async def run(self, session: FakeSession, **kw: Any) -> Any:
        self.served.append(f"flow:{session.uniqueid}:{kw.get('start_at', '')}")
        if kw.get("start_at"):
            return None
        raise LookupError("stop here")      # the entry's "no flow" path: no runner result needed

    async def handle(self, session: FakeSession) -> None:
        self.served.append(f"feature:{session.uniqueid}")


class Rescuer:
    def __init__(self) -> None:
        self.handed: list[tuple[str, str]] = []

    async def hand_to_fallback(self, **kw: Any) -> str:
        self.handed.append((kw["uniqueid"], kw["reason"]))
        return "fallback"


def _entry(action: str = "busy", max_calls: int = 1) -> tuple[AgiEntry, CallBook, list[CallEvent], Recorder,
                                                               Metrics, Rescuer]:
    seen: list[CallEvent] = []
    metrics = Metrics()
    book = CallBook(CallEventBus([seen.append, metrics.observe_event]), flow_grace_s=0)
    recorder = Recorder()
    settings = OverloadSettings(max_calls=max_calls, max_loop_lag_s=0, max_agi_ack_s=0, action=action)
    check = OverloadCheck(settings, calls=book.live_calls, loop_lag_p99=lambda: 0.0,
                          on_refused=metrics.observe_overload_refused)

    class Acd:
        call_vars: dict[str, dict[str, str]] = {}

    entry = AgiEntry(book=book, runner=recorder, acd=Acd(), features=recorder, ami=None,  # type: ignore[arg-type]
                     overload=check, busy_files=("/snd/vi/all_lines_busy", "/snd/en/all_lines_busy"))
    rescuer = Rescuer()
    entry.rescuer = rescuer  # type: ignore[assignment]
    return entry, book, seen, recorder, metrics, rescuer


async def test_past_max_calls_a_new_caller_hears_busy_and_is_hung_up_with_outcome_overload() -> None:
    entry, book, seen, recorder, metrics, _ = _entry()
    book.started(call_id="held", uniqueid="held", caller="1", dialed="x", channel="c")   # one caller held
    new = FakeSession("hotline", "new")
    await entry.on_start(new)
    assert recorder.served == []                                       # the flow never ran
    assert new.commands == ['ANSWER', 'STREAM FILE "/snd/vi/all_lines_busy" ""',
                            'STREAM FILE "/snd/en/all_lines_busy" ""', "HANGUP"]
    kinds = [e.kind for e in seen if e.call_id == "new"]
    assert kinds == ["call.started", "call.refused_overload"]
    refused = next(e for e in seen if e.kind == EventKind.REFUSED_OVERLOAD)
    assert refused.data == {"reason": "calls", "action": "busy", "reasons": ["calls"], "calls": 1,
                            "agi_ack_p99_s": 0.0, "loop_lag_p99_s": 0.0}
    assert book.live_calls() == 1                                      # a refused caller is not load
    book.channel_hung_up("new", cause="16")
    [ended] = [e.data for e in seen if e.kind == EventKind.CALL_ENDED]
    assert ended["outcome"] == "overload"
    assert book.live_calls() == 1 and len(book.calls) == 1           # the count follows the records
    book.channel_hung_up("held", cause="16")
    assert book.live_calls() == 0 and not book.calls
    assert metrics.registry.get_sample_value("switchboard_overload_refused_total", {"reason": "calls"}) == 1
    assert metrics.registry.get_sample_value("switchboard_calls_total",
                                             {"topic": "unknown", "province": "unknown", "outcome": "overload"}) == 1


async def test_action_fallback_hands_the_new_caller_to_the_fallback_queue() -> None:
    entry, book, _seen, recorder, _, rescuer = _entry(action="fallback")
    book.started(call_id="held", uniqueid="held", caller="1", dialed="x", channel="c")
    new = FakeSession("hotline", "new")
    await entry.on_start(new)
    assert rescuer.handed == [("new", "overload")] and new.commands == [] and recorder.served == []
    assert book.calls["new"].outcome() == ("overload", "")


async def test_under_the_limit_and_never_for_callers_already_served() -> None:
    entry, book, seen, recorder, _, rescuer = _entry(max_calls=1)
    await entry.on_start(FakeSession("hotline", "first"))       # none held: served by the flow
    assert recorder.served == ["flow:first:"]
    book.started(call_id="held", uniqueid="held", caller="1", dialed="x", channel="c")
    # past the limit now; yet a survey, an agent's feature code and a re-adopted caller still run
    await entry.on_start(FakeSession("hotline-after", "held"))
    await entry.on_start(FakeSession("agents", "agent1"))
    await entry.on_start(FakeSession("hotline", "adopted", {"agi_adopted": "1"}))
    assert recorder.served == ["flow:first:", "flow:held:survey", "feature:agent1", "flow:adopted:"]
    assert not any(e.kind == EventKind.REFUSED_OVERLOAD for e in seen) and rescuer.handed == []
