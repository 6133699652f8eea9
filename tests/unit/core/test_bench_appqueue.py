"""The app_queue baseline of `make bench-load` (bench/appqueue.py): penalties that restate our
routing tiers, the rendered queues and dialplan, and the dispatch-latency probe fed with
events shaped like Asterisk's. The load itself runs in bench/load.py (not a test)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

from switchboard.geo import load_provinces

_PATH = Path(__file__).resolve().parents[3] / "bench" / "appqueue.py"
_spec = importlib.util.spec_from_file_location("bench_appqueue", _PATH)
assert _spec is not None and _spec.loader is not None
appqueue: Any = importlib.util.module_from_spec(_spec)
sys.modules["bench_appqueue"] = appqueue
_spec.loader.exec_module(appqueue)

REGIONS = {"ha-noi": "north", "hai-phong": "north", "da-nang": "central", "ho-chi-minh": "south"}


def test_penalty_is_the_tier_at_which_our_router_first_offers_the_caller() -> None:
    def pen(home: str, prof: int, caller: str | None) -> int | None:
        return appqueue.penalty(home=home, proficiency=prof, caller_province=caller, region_of=REGIONS)

    assert pen("ha-noi", 1, "ha-noi") == 0          # own province: any proficiency
    assert pen("hai-phong", 2, "ha-noi") == 1       # same region: proficiency >= 2
    assert pen("hai-phong", 1, "ha-noi") is None    # ... below it, never (nation needs 3)
    assert pen("ho-chi-minh", 3, "ha-noi") == 2     # anywhere: proficiency >= 3
    assert pen("ho-chi-minh", 2, "ha-noi") is None
    assert pen("ha-noi", 3, None) == 2              # unknown province: the nation tier only


def test_rendered_baseline_has_a_queue_per_topic_and_province_with_those_members() -> None:
    provinces = load_provinces()
    agents = [{"id": "bench0001", "home_province": "ha-noi", "skills": {"general": 3, "health.card": 1}},
              {"id": "bench0002", "home_province": "ho-chi-minh", "skills": {"general": 3}}]
    files = appqueue.render_baseline(agents, provinces, prompts="/p/")
    queues = files["bench_queues.conf"]
    assert queues.count("\n[bq-") == len(appqueue.MENU_TOPICS) * (len(provinces) + 1)
    hanoi = queues.split("[bq-general-ha-noi](bench-queue)\n", 1)[1].split("\n\n", 1)[0]
    assert hanoi.splitlines() == ["member => PJSIP/bench0001,0,bench0001", "member => PJSIP/bench0002,2,bench0002"]
    card_hcm = queues.split("[bq-health_card-ho-chi-minh](bench-queue)\n", 1)[1].split("\n\n", 1)[0]
    assert "PJSIP/bench0001" not in card_hcm        # proficiency 1 away from home: not a member
    ext = files["bench_extensions.conf"]
    assert "exten => 19009069,1,Goto(bench-appqueue,s,1)" in ext
    assert "exten => _024.,1,Return(ha-noi)" in ext and "exten => _X.,1,Return(any)" in ext
    assert "${PROMPTS}" not in ext and "/p/vi/welcome" in ext and "${BQ_L}" in ext
    assert "penaltychange => 15,1" in files["queuerules.conf"]


def _ev(probe: Any, name: str, ts: float, **headers: str) -> None:
    probe.feed(name, headers.get, ts)


def test_dispatch_reads_both_systems_the_same_way() -> None:
    probe = appqueue.Probe()
    # app_queue: the caller's thread joins at 99.999 (BQ_JOINED), the manager stamps the
    # join's event at 100.000; agent channel stamped at 100.004
    _ev(probe, "Newchannel", 99.0, Uniqueid="c1", Channel="PJSIP/trunk-01", CallerIDNum="02410000001")
    _ev(probe, "VarSet", 100.0005, Uniqueid="c1", Variable="BQ_JOINED", Value="99.999000")
    _ev(probe, "QueueCallerJoin", 100.0, Uniqueid="c1")
    _ev(probe, "Newchannel", 100.004, Uniqueid="a1", Channel="PJSIP/bench0001-02")
    _ev(probe, "AgentCalled", 100.005, Uniqueid="c1", DestUniqueid="a1")
    # ours: the service's join instant on the channel, the leg carries the call id
    _ev(probe, "Newchannel", 199.0, Uniqueid="c2", Channel="PJSIP/trunk-03", CallerIDNum="02410000002")
    _ev(probe, "VarSet", 200.5, Uniqueid="c2", Variable="SB_CALL_ID", Value="call-2")
    _ev(probe, "VarSet", 200.6, Uniqueid="c2", Variable="SB_JOINED", Value="200.000")
    _ev(probe, "Newchannel", 200.7, Uniqueid="a2", Channel="PJSIP/bench0002-04")
    _ev(probe, "VarSet", 200.7, Uniqueid="a2", Variable="SB_CALL_ID", Value="call-2")
    eligible = {"02410000001": ["bench0001"], "02410000002": ["bench0002"]}
    lat, n = probe.dispatch("app_queue", 0, 1000, eligible=eligible, wrap_up_s=15)
    assert n == 1 and [round(x, 3) for x in lat] == [0.005]          # from the caller's own join instant
    lat, n = probe.dispatch("app_queue", 0, 1000, eligible=eligible, wrap_up_s=15, stamped_join=True)
    assert n == 1 and [round(x, 3) for x in lat] == [0.004]          # from the stamped event
    assert [round(x, 3) for x in probe.join_stamp_lag()] == [0.001]
    _ev(probe, "VarSet", 200.7, Uniqueid="a2", Variable="SB_OFFERED", Value="200.200")
    split: list[tuple[float, float]] = []
    lat, n = probe.dispatch("ours", 0, 1000, eligible=eligible, wrap_up_s=15, split=split)
    assert n == 1 and [round(x, 3) for x in lat] == [0.7]
    # the service sent the Originate 0.2 s after the join; Asterisk made the leg 0.5 s later
    assert [(round(a, 3), round(b, 3)) for a, b in split] == [(0.2, 0.5)]


def test_a_caller_is_counted_only_when_an_eligible_agent_was_free_at_the_join() -> None:
    probe = appqueue.Probe()
    _ev(probe, "Newchannel", 90.0, Uniqueid="x", Channel="PJSIP/bench0001-01")
    _ev(probe, "Hangup", 95.0, Uniqueid="x")                          # wrap-up until 110 (+1 s margin)
    _ev(probe, "Newchannel", 99.0, Uniqueid="c1", Channel="PJSIP/trunk-01", CallerIDNum="02410000001")
    _ev(probe, "VarSet", 100.0, Uniqueid="c1", Variable="BQ_JOINED", Value="100.000000")
    _ev(probe, "QueueCallerJoin", 100.0, Uniqueid="c1")
    _ev(probe, "Newchannel", 110.5, Uniqueid="a1", Channel="PJSIP/bench0001-02")
    _ev(probe, "AgentCalled", 110.5, Uniqueid="c1", DestUniqueid="a1")
    lat, n = probe.dispatch("app_queue", 0, 1000, eligible={"02410000001": ["bench0001"]}, wrap_up_s=15)
    assert (lat, n) == ([], 1)
    ready = probe.redispatch("app_queue", 0, 1000, homes={"bench0001": "ha-noi"},
                             province_of={"02410000001": "ha-noi"}, region_of=REGIONS, wrap_up_s=15,
                             region_after_s=15, nation_after_s=30)
    assert [round(x, 3) for x in ready] == [0.5]                     # ready at 110.0, offered at 110.5


def test_baseline_outcomes_are_checked_once_per_caller() -> None:
    probe = appqueue.Probe()
    _ev(probe, "VarSet", 1.0, Uniqueid="c1", Variable="BQ_RESULT", Value="answered", CallerIDNum="1")
    _ev(probe, "VarSet", 2.0, Uniqueid="c2", Variable="BQ_RESULT", Value="abandoned_ivr", CallerIDNum="2")
    _ev(probe, "VarSet", 3.0, Uniqueid="c3", Variable="BQ_RESULT", Value="answered", CallerIDNum="3")
    _ev(probe, "VarSet", 3.5, Uniqueid="c3", Variable="BQ_RESULT", Value="answered", CallerIDNum="3")
    got = appqueue.check_outcomes(probe, {"1": "answered", "2": "abandoned_queue", "3": "answered", "4": "x"})
    assert got == {"expected": 4, "missing": 1, "duplicated": 1, "wrong_outcome": 1}


def _trace_block(when: str, first_line: str, call_id: str, direction: str = "UDP message received [500] bytes :") -> str:
    return (f"----------------------------------------------- {when}\n{direction}\n\n{first_line}\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK-1\nFrom: <sip:0241@127.0.0.1>;tag=1\n"
            f"To: <sip:x@127.0.0.1>\nCall-ID: {call_id}\nCSeq: 1 INVITE\nContent-Length: 0\n\n")


def test_the_farms_trace_gives_each_offer_its_invite_once() -> None:
    from datetime import datetime

    def at(s: str) -> float:
        return datetime.strptime(s, "%Y-%m-%d %H:%M:%S.%f").timestamp()   # SIPp writes local time

    text = "".join([
        _trace_block("2026-12-03 21:35:53.368726", "INVITE sip:bench0001@127.0.0.1:5070 SIP/2.0", "c-1"),
        _trace_block("2026-12-03 21:35:53.868726", "INVITE sip:bench0001@127.0.0.1:5070 SIP/2.0", "c-1"),  # retransmission
        _trace_block("2026-12-03 21:35:53.368900", "SIP/2.0 180 Ringing", "c-1", "UDP message sent (313 bytes):"),
        _trace_block("2026-12-03 21:35:54.000001", "OPTIONS sip:bench0002@127.0.0.1:5070 SIP/2.0", "o-1"),
        _trace_block("2026-12-03 21:36:20.100000", "INVITE sip:bench0001@127.0.0.1:5070 SIP/2.0", "c-2"),
        _trace_block("2026-12-03 21:35:55.250000", "INVITE sip:bench0002@127.0.0.1:5070 SIP/2.0", "c-3"),
    ])
    invites = appqueue.read_invites(text)
    assert invites == {"bench0001": [at("2026-12-03 21:35:53.368726"), at("2026-12-03 21:36:20.100000")],
                       "bench0002": [at("2026-12-03 21:35:55.250000")]}
    # a leg is paired with its agent's INVITE nearest its Newchannel (stamped before or after it)
    t = at("2026-12-03 21:35:53.368726")
    assert appqueue.invite_for(invites, "bench0001", t - 0.0004) == t
    assert appqueue.invite_for(invites, "bench0001", t + 0.0020) == t
    assert appqueue.invite_for(invites, "bench0001", t + 5.0) is None
    assert appqueue.invite_for(invites, "bench0009", t) is None


def test_dispatch_to_the_invite_ends_where_the_farm_received_it() -> None:
    probe = appqueue.Probe()
    _ev(probe, "Newchannel", 199.0, Uniqueid="c2", Channel="PJSIP/trunk-03", CallerIDNum="02410000002")
    _ev(probe, "VarSet", 200.5, Uniqueid="c2", Variable="SB_CALL_ID", Value="call-2")
    _ev(probe, "VarSet", 200.6, Uniqueid="c2", Variable="SB_JOINED", Value="200.000")
    _ev(probe, "Newchannel", 200.0015, Uniqueid="a2", Channel="PJSIP/bench0002-04")
    _ev(probe, "VarSet", 200.7, Uniqueid="a2", Variable="SB_CALL_ID", Value="call-2")
    _ev(probe, "VarSet", 200.7, Uniqueid="a2", Variable="SB_OFFERED", Value="200.0004")
    eligible = {"02410000002": ["bench0002"]}
    split: list[tuple[float, float]] = []
    lat, n = probe.dispatch("ours", 0, 1000, eligible=eligible, wrap_up_s=15, split=split,
                            invites={"bench0002": [100.0, 200.0031]})
    assert n == 1 and [round(x, 4) for x in lat] == [0.0031]
    assert [(round(a, 4), round(b, 4)) for a, b in split] == [(0.0004, 0.0027)]
    # no INVITE found for the leg: not counted (never a Newchannel figure in its place)
    lat, n = probe.dispatch("ours", 0, 1000, eligible=eligible, wrap_up_s=15, invites={})
    assert (lat, n) == ([], 1)
