"""The app_queue baseline of `make bench-load` and the dispatch-latency probe both systems share.

* :func:`render_baseline` turns ``deploy/bench/`` and the bench's generated agents into the
  files the bench stack's Asterisk loads: the plain-dialplan copy of the hotline's menu path
  (``bench_extensions.conf``), one queue per (topic, caller's province) with province
  penalties (``bench_queues.conf``) and the widening rule (``queuerules.conf``). Pure.
* :func:`install_baseline` writes them into the stack's configuration folder and includes
  them from the rendered ``extensions.conf`` / ``queues.conf``; the reload goes through the
  stack's admin AMI user (``Action: Command``).
* :class:`DispatchProbe`: an independent AMI session (the admin user) that keeps the
  Asterisk-stamped events (``timestampevents = yes``) a dispatch latency is read from, the
  same way for both systems: from the moment the caller joined the line to the first agent leg
  offered to that caller (app_queue: ``AgentCalled`` names it; ours: the leg carries
  ``SB_CALL_ID``), ending at two points: the leg's ``Newchannel`` (Asterisk created the
  channel), and the agent farm's receipt of the leg's INVITE (SIPp's message trace,
  :func:`read_invites`), the issue's end point. They differ: app_queue sends the INVITE from
  the thread that created the channel, right after; an ``Originate`` creates the channel on
  the thread it starts and sends the INVITE from one more thread it starts after that
  (``pbx_outgoing_attempt`` in Asterisk's main/pbx.c). The join is the instant the joining side wrote on the
  caller's channel: ours, the service's ``SB_JOINED``; app_queue, the dialplan's ``BQ_JOINED``,
  set on the caller's own thread just before ``Queue()``. Not ``QueueCallerJoin``'s
  ``Timestamp``: the manager stamps an event when it turns it into text, after the event has
  waited its turn among all the others, and the agent leg's ``Newchannel`` carries the same
  kind of wait; a stamped join cancels it for app_queue alone. The stamped figure is kept
  (``stamped_join``) to show that wait.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from switchboard.geo import ProvinceTable

DEPLOY = Path(__file__).resolve().parent.parent / "deploy" / "bench"
BENCH_NUMBER = "19009069"
#: Topics of the hotline menu (ivr_flows/hotline.yaml); queue names use "_" for ".".
MENU_TOPICS = ("general", "social.pension", "social.sickness_maternity", "social.one_time", "social.contribution",
               "health.card", "health.benefit", "unemployment.benefit", "unemployment.job_support")
#: The seeded participant 0100000001 (switchboard/store/seed.py) paid to 06/2025: the static read-back.
STATUS_MONTH = ("num_6",)
STATUS_YEAR = ("num_2", "num_nghin", "num_0", "num_tram", "num_2", "num_muoi_ngang", "num_lam")


def topic_slug(topic: str) -> str:
    return topic.replace(".", "_")


def penalty(*, home: str, proficiency: int, caller_province: str | None, region_of: Mapping[str, str],
            minimums: tuple[int, int, int] = (1, 2, 3)) -> int | None:
    """The tier (0 province, 1 region, 2 nation) at which our router would first offer a caller
    from ``caller_province`` to an agent, as an app_queue penalty; None: never (not a member)."""
    if caller_province is not None and home == caller_province and proficiency >= minimums[0]:
        return 0
    if (caller_province is not None and region_of.get(home) == region_of.get(caller_province)
            and proficiency >= minimums[1]):
        return 1
    if proficiency >= minimums[2]:
        return 2
    return None


def _fill(text: str, values: Mapping[str, str]) -> str:
    """Substitute only the names given (the dialplan's own ``${VAR}`` stay)."""
    return re.sub(r"\$\{([A-Z_]+)\}", lambda m: values.get(m.group(1), m.group(0)), text)


def render_baseline(agents: Sequence[Mapping[str, Any]], provinces: ProvinceTable, *, prompts: str,
                    number: str = BENCH_NUMBER, ring_timeout_s: float = 15.0, wrap_up_s: float = 15.0,
                    announce_s: float = 45.0, region_after_s: float = 15.0, nation_after_s: float = 30.0,
                    minimums: tuple[int, int, int] = (1, 2, 3)) -> dict[str, str]:
    """File name -> text for the stack's Asterisk folder."""
    region_of = provinces.region_of_map()
    prompts = prompts.rstrip("/")
    status = {"STATUS_MONTH": "&".join(f"{prompts}/${{BQ_L}}/{n}" for n in STATUS_MONTH),
              "STATUS_YEAR": "&".join(f"{prompts}/${{BQ_L}}/{n}" for n in STATUS_YEAR)}
    ext = _fill(_fill((DEPLOY / "extensions.conf").read_text(), status), {"PROMPTS": prompts, "BENCH_NUMBER": number})
    ext += "\n; generated: the caller's province from the landline area code (switchboard.geo)\n[bench-aq-province]\n"
    for code, prov in sorted(provinces.area_codes.items()):
        ext += f"exten => _0{code}.,1,Return({prov.id})\n"
    ext += "exten => _X.,1,Return(any)\n"

    queues = _fill((DEPLOY / "queues.conf").read_text(), {
        "PROMPTS": prompts, "RING_TIMEOUT": f"{ring_timeout_s:g}", "WRAP_UP": f"{wrap_up_s:g}",
        "ANNOUNCE": f"{announce_s:g}"})
    queues += "\n; generated from the bench's agents: one queue per (topic, caller's province)\n"
    for topic in MENU_TOPICS:
        for prov in [*(p.id for p in provinces), None]:
            queues += f"\n[bq-{topic_slug(topic)}-{prov or 'any'}](bench-queue)\n"
            for a in agents:
                prof = int(a["skills"].get(topic, 0))
                if prof <= 0:
                    continue
                pen = penalty(home=a["home_province"], proficiency=prof, caller_province=prov,
                              region_of=region_of, minimums=minimums)
                if pen is not None:
                    queues += f"member => PJSIP/{a['id']},{pen},{a['id']}\n"
    rules = _fill((DEPLOY / "queuerules.conf").read_text(), {
        "REGION_AFTER": f"{region_after_s:g}", "NATION_AFTER": f"{nation_after_s:g}"})
    return {"bench_extensions.conf": ext, "bench_queues.conf": queues, "queuerules.conf": rules}


def install_baseline(etc: Path, files: Mapping[str, str]) -> None:
    """Write the files into Asterisk's folder and include them from the rendered configuration
    (``deploy/local/stack-up.sh`` renders afresh, which removes them again)."""
    for name, text in files.items():
        (etc / name).write_text(text, encoding="utf-8")
        (etc / name).chmod(0o640)
    for main, inc in (("extensions.conf", "bench_extensions.conf"), ("queues.conf", "bench_queues.conf")):
        path = etc / main
        text = path.read_text(encoding="utf-8")
        line = f"#include {inc}"
        if line not in text:
            path.write_text(text.rstrip("\n") + f"\n\n; bench/load.py: app_queue baseline\n{line}\n",
                            encoding="utf-8")


RELOADS = ("dialplan reload", "module reload app_queue.so", "module reload res_pjsip.so")


async def admin_command(client: Any, command: str, *, timeout: float = 30.0) -> str:
    """``Action: Command`` over the admin session; the CLI output as text."""
    resp = await client.send({"Action": "Command", "Command": command}, timeout=timeout)
    out = list(getattr(resp, "follows", ()) or ())
    out += resp.headers.get_all("Output") if hasattr(resp.headers, "get_all") else []
    text = "\n".join(out)
    if not resp.success:
        raise RuntimeError(f"AMI Command {command!r}: {resp.status} {resp.message}: {text}")
    return text


# ---------------------------------------------------------------- dispatch latency

#: What the probe asks Asterisk to send it (legacy regex filters of the AMI session: an event
#: passes when any matches). The VarSet one keeps only the two variables it reads.
PROBE_FILTERS = ("Event: (Newchannel|Hangup|QueueCallerJoin|AgentCalled)",
                 "Variable: (SB_JOINED|SB_CALL_ID|SB_OFFERED|BQ_RESULT|BQ_JOINED)[^A-Z_]")


@dataclass
class Probe:
    """Events kept by the probe (all times: Asterisk's ``Timestamp``, epoch seconds)."""

    agent_up: dict[str, tuple[str, float]] = field(default_factory=dict)     # leg uid -> (endpoint, ts)
    agent_down: dict[str, float] = field(default_factory=dict)               # leg uid -> ts of Hangup
    caller_number: dict[str, str] = field(default_factory=dict)             # caller uid -> caller id
    joined_ours: dict[str, float] = field(default_factory=dict)             # caller uid -> SB_JOINED
    call_of: dict[str, str] = field(default_factory=dict)                   # uid (caller or leg) -> call id
    joined_aq: dict[str, float] = field(default_factory=dict)               # caller uid -> BQ_JOINED
    stamped_aq: dict[str, float] = field(default_factory=dict)              # caller uid -> QueueCallerJoin ts
    called_aq: dict[str, list[tuple[float, str]]] = field(default_factory=dict)   # caller uid -> [(ts, leg uid)]
    outcome_aq: dict[str, list[str]] = field(default_factory=dict)          # caller id -> [BQ_RESULT...]
    caller_down: dict[str, float] = field(default_factory=dict)             # caller uid -> ts of Hangup
    offered_ours: dict[str, float] = field(default_factory=dict)            # leg uid -> SB_OFFERED (sent)

    def feed(self, name: str, get: Any, ts: float) -> None:
        uid = get("Uniqueid") or ""
        if name == "Newchannel":
            chan = get("Channel") or ""
            m = re.match(r"PJSIP/(bench\d+)-", chan)
            if m:
                self.agent_up[uid] = (m.group(1), ts)
            else:
                self.caller_number[uid] = get("CallerIDNum") or ""
        elif name == "Hangup":
            if uid in self.agent_up:
                self.agent_down[uid] = ts
            else:
                self.caller_down[uid] = ts
        elif name == "VarSet":
            var, value = get("Variable") or "", get("Value") or ""
            if var == "SB_JOINED":
                try:
                    self.joined_ours.setdefault(uid, float(value))
                except ValueError:
                    pass
            elif var == "SB_CALL_ID":
                self.call_of[uid] = value
            elif var == "SB_OFFERED":
                try:
                    self.offered_ours.setdefault(uid, float(value))
                except ValueError:
                    pass
            elif var == "BQ_JOINED":
                try:
                    self.joined_aq.setdefault(uid, float(value))
                except ValueError:
                    pass
            elif var == "BQ_RESULT":
                self.outcome_aq.setdefault(get("CallerIDNum") or "", []).append(value)
        elif name == "QueueCallerJoin":
            self.stamped_aq.setdefault(uid, ts)
        elif name == "AgentCalled":
            self.called_aq.setdefault(uid, []).append((ts, get("DestUniqueid") or ""))

    def agent_free_at(self, endpoint_ids: Iterable[str], t: float, wrap_up_s: float) -> bool:
        """Some agent of ``endpoint_ids`` had no channel at ``t`` and had finished its wrap-up
        (its last leg ended ``wrap_up_s`` + 1 s before ``t``, in both systems' eyes)."""
        wanted = set(endpoint_ids)
        busy: set[str] = set()
        for uid, (ep, up) in self.agent_up.items():
            if ep not in wanted or up > t:
                continue
            down = self.agent_down.get(uid)
            if down is None or down + wrap_up_s + 1.0 > t:
                busy.add(ep)
        return bool(wanted - busy)

    def app_queue_joins(self, *, stamped: bool = False) -> dict[str, float]:
        """app_queue's callers' join instants: ``BQ_JOINED`` (the caller's thread), or with
        ``stamped`` the ``QueueCallerJoin`` events' ``Timestamp``."""
        return dict(self.stamped_aq) if stamped else dict(self.joined_aq)

    def join_stamp_lag(self) -> list[float]:
        """app_queue, per caller: ``QueueCallerJoin``'s ``Timestamp`` minus the join instant, the
        wait of the event before the manager stamped it."""
        return [self.stamped_aq[u] - t for u, t in self.joined_aq.items() if u in self.stamped_aq]

    def dispatch(self, system: str, start: float, end: float, *, eligible: Mapping[str, Sequence[str]],
                 wrap_up_s: float, split: list[tuple[float, float]] | None = None,
                 stamped_join: bool = False,
                 invites: Mapping[str, Sequence[float]] | None = None) -> tuple[list[float], int]:
        """Latencies (s) of callers who joined in [start, end) with a free eligible agent, and how
        many joined in the window. ``eligible``: caller number -> endpoints of its tier 0.
        ``split`` (ours): gets, per latency, (join -> the service sent the Originate, sent ->
        Asterisk created the leg), from the leg's ``SB_OFFERED``. ``stamped_join`` (app_queue):
        from ``QueueCallerJoin``'s ``Timestamp`` instead of ``BQ_JOINED``. ``invites`` (from
        :func:`read_invites`): to the agent farm's receipt of the leg's INVITE instead of the
        leg's ``Newchannel`` (a leg whose INVITE is not found is not counted)."""
        out: list[float] = []
        joins = self.app_queue_joins(stamped=stamped_join) if system == "app_queue" else self.joined_ours
        legs_by_call: dict[str, list[tuple[float, str]]] = {}
        sent_by_up: dict[float, float] = {}
        if system != "app_queue":
            for uid, (ep, up) in self.agent_up.items():
                cid = self.call_of.get(uid)
                if cid:
                    legs_by_call.setdefault(cid, []).append((up, ep))
                    if uid in self.offered_ours:
                        sent_by_up[up] = self.offered_ours[uid]
        n = 0
        for caller_uid, joined in joins.items():
            if not start <= joined < end:
                continue
            n += 1
            agents = eligible.get(self.caller_number.get(caller_uid, ""), ())
            if not agents or not self.agent_free_at(agents, joined, wrap_up_s):
                continue
            if system == "app_queue":
                ups = [(self.agent_up[leg][1], self.agent_up[leg][0]) for _ts, leg in self.called_aq.get(caller_uid, ())
                       if leg in self.agent_up]
            else:
                ups = legs_by_call.get(self.call_of.get(caller_uid, ""), [])
            if ups:
                first, ep = min(ups)
                found = invite_for(invites, ep, first) if invites is not None else first
                if found is None:
                    continue
                end_at = found
                out.append(end_at - joined)
                if split is not None and first in sent_by_up:
                    split.append((sent_by_up[first] - joined, end_at - sent_by_up[first]))
        return out, n


    def first_offer(self, system: str) -> dict[str, float]:
        """Caller uid -> when its first agent leg was created."""
        out: dict[str, float] = {}
        if system == "app_queue":
            for caller, calls in self.called_aq.items():
                ups = [self.agent_up[leg][1] for _ts, leg in calls if leg in self.agent_up]
                if ups:
                    out[caller] = min(ups)
            return out
        first_by_call: dict[str, float] = {}
        for uid, (_ep, up) in self.agent_up.items():
            cid = self.call_of.get(uid)
            if cid:
                first_by_call[cid] = min(up, first_by_call.get(cid, up))
        for uid, cid in self.call_of.items():
            if uid not in self.agent_up and cid in first_by_call:
                out[uid] = first_by_call[cid]
        return out

    def redispatch(self, system: str, start: float, end: float, *, homes: Mapping[str, str],
                   province_of: Mapping[str, str | None], region_of: Mapping[str, str], wrap_up_s: float,
                   region_after_s: float, nation_after_s: float, limit_s: float = 30.0) -> list[float]:
        """"An agent became ready with a caller waiting": an agent's leg ended at ``h``, so both
        systems may offer it again at ``r = h + wrap_up_s``; if at ``r`` a caller of the agent path
        was waiting (joined, not yet offered, still there) for whom the agent was eligible at that
        wait (own province; same region after ``region_after_s``; anyone after ``nation_after_s``:
        every bench agent has ``general`` at proficiency 3), the latency is ``r`` -> the agent's next
        leg. Ready instants in [start, end); a next leg later than ``limit_s`` (the waiting callers
        went to other agents) is not counted."""
        joins = self.joined_aq if system == "app_queue" else self.joined_ours
        offered = self.first_offer(system)
        legs: dict[str, list[float]] = {}
        for ep, up in self.agent_up.values():
            legs.setdefault(ep, []).append(up)
        out: list[float] = []
        for uid, (ep, _up) in self.agent_up.items():
            down = self.agent_down.get(uid)
            if down is None:
                continue
            r = down + wrap_up_s
            if not start <= r < end:
                continue
            home = homes.get(ep)
            waiting = False
            for caller, joined in joins.items():
                prov = province_of.get(self.caller_number.get(caller, ""))
                if prov is None and self.caller_number.get(caller, "") not in province_of:
                    continue                    # not an agent-path caller of this run
                if joined > r or offered.get(caller, float("inf")) <= r or self.caller_down.get(caller, float("inf")) <= r:
                    continue
                waited = r - joined
                if (home == prov or (waited >= region_after_s and region_of.get(home or "") == region_of.get(prov or ""))
                        or waited >= nation_after_s):
                    waiting = True
                    break
            if not waiting:
                continue
            nxt = [u for u in legs.get(ep, ()) if u > down]
            if nxt and min(nxt) - r <= limit_s:
                out.append(min(nxt) - r)
        return out


class DispatchProbe:
    """The admin AMI session that feeds a :class:`Probe` (and runs the reload commands)."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.probe = Probe()
        client.subscribe(self._on_event, names=("Newchannel", "Hangup", "VarSet", "QueueCallerJoin", "AgentCalled"))

    def _on_event(self, ev: Any) -> None:
        try:
            ts = float(ev.get("Timestamp") or 0.0)
        except ValueError:
            return
        self.probe.feed(ev.name, ev.get, ts)

    async def filter(self) -> None:
        for f in PROBE_FILTERS:
            resp = await self.client.send({"Action": "Filter", "Operation": "Add", "Filter": f}, timeout=10)
            if not resp.success:
                raise RuntimeError(f"AMI Filter {f!r}: {resp.message}")


_TRACE_HEAD = re.compile(r"^-{20,} (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6})$")
_INVITE_TO = re.compile(r"^INVITE sip:(bench\d+)@")


def read_invites(text: str) -> dict[str, list[float]]:
    """Endpoint -> the instants (epoch s) the agent farm received its INVITEs, from SIPp's
    message trace (``AgentFarm(trace_messages=True)``): the first copy of each Call-ID (a UDP
    retransmission is not a new offer), sorted. SIPp writes local time."""
    out: dict[str, list[float]] = {}
    seen: set[str] = set()
    lines = text.splitlines()
    for i, line in enumerate(lines):
        m = _TRACE_HEAD.match(line)
        if not m or i + 3 >= len(lines) or not lines[i + 1].startswith("UDP message received"):
            continue
        inv = _INVITE_TO.match(lines[i + 3])
        if not inv:
            continue
        call_id = next((x.split(":", 1)[1].strip() for x in lines[i + 4:i + 20]
                        if x.lower().startswith("call-id:")), "")
        if not call_id or call_id in seen:
            continue
        seen.add(call_id)
        ts = datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S.%f").timestamp()
        out.setdefault(inv.group(1), []).append(ts)
    for times in out.values():
        times.sort()
    return out


def invite_for(invites: Mapping[str, Sequence[float]], endpoint: str, created: float,
               *, slack_s: float = 0.5) -> float | None:
    """The farm's receipt of the INVITE of the leg to ``endpoint`` that Asterisk created at
    ``created`` (its ``Newchannel``, stamped when the manager formatted it, so possibly after the
    INVITE left): the one nearest to it within ``slack_s``. An agent's legs are a wrap-up apart."""
    times = invites.get(endpoint, ())
    i = bisect.bisect_left(times, created - slack_s)
    near = [t for t in times[i:i + 4] if abs(t - created) <= slack_s]
    return min(near, key=lambda t: abs(t - created)) if near else None


def check_outcomes(probe: Probe, expected: Mapping[str, str]) -> dict[str, int]:
    """The baseline's counterpart of the records check: every caller's hang-up handler reported
    exactly once, with the outcome its path implies."""
    missing = duplicated = wrong = 0
    for number, outcome in expected.items():
        got = probe.outcome_aq.get(number, [])
        missing += not got
        duplicated += len(got) > 1
        wrong += any(g != outcome for g in got)
    return {"expected": len(expected), "missing": missing, "duplicated": duplicated, "wrong_outcome": wrong}


def percentile(values: Sequence[float], q: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q * (len(s) - 1))))]


def eligible_map(numbers: Iterable[str], agents: Sequence[Mapping[str, Any]], provinces: ProvinceTable,
                 topic: str = "general") -> dict[str, list[str]]:
    """Caller number -> agents of its own province with ``topic`` (tier 0 in both systems)."""
    out: dict[str, list[str]] = {}
    for n in numbers:
        prov = provinces.lookup_caller(n)
        out[n] = [a["id"] for a in agents if prov is not None and a["home_province"] == prov
                  and int(a["skills"].get(topic, 0)) >= 1]
    return out


__all__ = ["BENCH_NUMBER", "RELOADS", "DispatchProbe", "Probe", "admin_command", "check_outcomes", "eligible_map", "install_baseline",
           "penalty", "percentile", "render_baseline"]
