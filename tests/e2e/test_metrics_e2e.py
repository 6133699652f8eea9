"""/metrics of the whole running service across a real call (Asterisk 22 +
SIPp caller + SIPp agent), checked by promtool; health and auth of the HTTP
API as an operator and a stray client see them.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence

import pytest
from e2e_metrics_service import Scrape, create_token, http_get, promtool_check_metrics, scrape
from e2e_service import Service, demo_agents, running_service, until

from switchboard.demo.sipp import AwaitHangup, Dtmf, Pause

pytestmark = pytest.mark.e2e

AGENT = "agent1009"          # Hồ Chí Minh City, social.pension 5
CALLER = "02838123456"       # HCM landline: province from the area code
LINE = {"topic": "social.pension", "province": "ho-chi-minh"}
TOPIC = {"topic": "social.pension"}
ROUTING = {"ring_timeout_s": 8.0, "wrap_up_s": 5.0, "reevaluate_interval_s": 0.5}
#: The agent leaves the caller waiting (phone ringing) long enough to be seen in the queue gauges.
RING_S = 4.0
TALK_S = 4.0
STATES = ("logged_out", "ready", "offered", "on_call", "talking", "wrap_up", "paused")


def pension_call() -> list[Pause | Dtmf | AwaitHangup]:
    return [Pause(2.5), Dtmf("1"), Pause(2.5), Dtmf("1"), Pause(2.5), Dtmf("1"), AwaitHangup(60)]


def busy_states(s: Scrape) -> tuple[str, ...]:
    """States other than logged_out that hold at least one agent (only our agent is logged in)."""
    return tuple(st for st in STATES if st != "logged_out" and s.value("switchboard_agents", state=st) >= 1)


class Sampler:
    """Scrapes /metrics every 200 ms in the background and keeps what changed."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.states: list[tuple[str, ...]] = []
        self.waiting: list[float] = []
        self.last: Scrape | None = None
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            s = await scrape(self.base)
            self.last = s
            states = busy_states(s)
            if not self.states or self.states[-1] != states:
                self.states.append(states)
            waiting = s.value("switchboard_calls_waiting", **LINE)
            if not self.waiting or self.waiting[-1] != waiting:
                self.waiting.append(waiting)
            await asyncio.sleep(0.2)

    def __enter__(self) -> Sampler:
        self._task = asyncio.create_task(self._run(), name="metrics-sampler")
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()

    async def until(self, what: str, cond: Callable[[Scrape], bool], *, timeout: float) -> Scrape:
        deadline = time.monotonic() + timeout
        while True:
            if self._task is not None and self._task.done() and not self._task.cancelled():
                self._task.result()  # a failed scrape fails the test
            if self.last is not None and cond(self.last):
                return self.last
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout}s waiting for {what}; "
                                     f"states seen {self.states}, waiting seen {self.waiting}")
            await asyncio.sleep(0.1)


def base_url(svc: Service) -> str:
    return f"http://127.0.0.1:{svc.app.context['api'].bound_port}"


async def test_metrics_move_across_a_real_call_and_promtool_accepts_them(stack_env: dict[str, str],
                                                                         pg_dsn: str) -> None:
    async with running_service(stack_env, pg_dsn, routing=ROUTING) as svc:
        base = base_url(svc)
        await svc.agent(AGENT, answer_after=RING_S, talk=TALK_S)
        before = await scrape(base)
        assert before.value("switchboard_ami_connected") == 1
        assert busy_states(before) == ("ready",)
        assert before.value("switchboard_agents", state="ready") == 1
        assert before.value("switchboard_agents", state="logged_out") == len(demo_agents()) - 1
        assert before.value("switchboard_calls_waiting", **LINE) == 0

        with Sampler(base) as sampler:
            sipp = svc.call(pension_call(), caller=CALLER)
            # the caller waits in the line while the agent's phone rings
            waiting = await sampler.until("a call waiting on social.pension / ho-chi-minh",
                                          lambda s: s.value("switchboard_calls_waiting", **LINE) == 1, timeout=30)
            assert waiting.value("switchboard_longest_wait_seconds", **LINE) >= 0
            await sampler.until("the agent talking", lambda s: "on_call" in busy_states(s)
                                or "talking" in busy_states(s), timeout=RING_S + 10)
            answered = await sampler.until("the wait observed",
                                           lambda s: s.value("switchboard_wait_seconds_count", **TOPIC)
                                           == before.value("switchboard_wait_seconds_count", **TOPIC) + 1,
                                           timeout=5)
            assert answered.value("switchboard_calls_waiting", **LINE) == 0
            # the wait covered the ringing: at least RING_S seconds, well under the 20 s bucket's edge
            wait_sum = (answered.value("switchboard_wait_seconds_sum", **TOPIC)
                        - before.value("switchboard_wait_seconds_sum", **TOPIC))
            assert RING_S - 0.5 <= wait_sum < 20, wait_sum
            await sampler.until("the agent in wrap-up", lambda s: busy_states(s) == ("wrap_up",),
                                timeout=TALK_S + 10)
            after = await sampler.until(
                "wrap-up over, handle time observed",
                lambda s: busy_states(s) == ("ready",) and s.value("switchboard_handle_seconds_count", **TOPIC)
                == before.value("switchboard_handle_seconds_count", **TOPIC) + 1, timeout=ROUTING["wrap_up_s"] + 10)
            result = await sipp
            assert result.ok, result.errors or result.stderr
            after = await sampler.until(
                "the call counted as answered",
                lambda s: s.value("switchboard_calls_total", **LINE, outcome="answered")
                == before.value("switchboard_calls_total", **LINE, outcome="answered") + 1, timeout=15)

        # the agent went ready -> offered -> talking -> wrap-up -> ready, in that order
        flat = [s for s in sampler.states if s]
        talking = next(s for s in flat if s in (("on_call",), ("talking",)))
        expected = [("ready",), ("offered",), talking, ("wrap_up",), ("ready",)]
        assert _subsequence(expected, flat), sampler.states
        # the wait series went 0 -> 1 -> 0
        assert _subsequence([0.0, 1.0, 0.0], sampler.waiting), sampler.waiting
        handle_sum = (after.value("switchboard_handle_seconds_sum", **TOPIC)
                      - before.value("switchboard_handle_seconds_sum", **TOPIC))
        assert TALK_S - 1 <= handle_sum <= TALK_S + ROUTING["wrap_up_s"] + 5, handle_sum
        # only this call moved the counters
        assert after.value("switchboard_calls_total") == before.value("switchboard_calls_total") + 1
        assert after.value("switchboard_agent_offers_total", result="answered") == \
            before.value("switchboard_agent_offers_total", result="answered") + 1
        assert after.value("switchboard_ami_connected") == 1
        assert after.value("switchboard_http_requests_total", route="/metrics") == 0  # /metrics is not counted

        final = await http_get(f"{base}/metrics")
        assert "switchboard_calls_total{" in final.text
        checked = promtool_check_metrics(final.text)
        assert checked.returncode == 0, checked.stdout + checked.stderr


async def test_health_is_open_and_agent_routes_refuse_strangers(stack_env: dict[str, str], pg_dsn: str) -> None:
    async with running_service(stack_env, pg_dsn, routing=ROUTING) as svc:
        base = base_url(svc)
        health = await http_get(f"{base}/healthz")
        assert health.status == 200 and '"ok"' in health.text
        await until(lambda: _ready(base), timeout=10, what="/readyz 200")
        ready = await http_get(f"{base}/readyz")
        assert ready.status == 200 and '"ami":true' in ready.text.replace(" ", "")

        assert (await http_get(f"{base}/api/agents")).status == 401
        assert (await http_get(f"{base}/api/agents", token="sb_0123456789ab." + "Z" * 43)).status == 401
        records = {a.id: a for a in demo_agents()}
        other = await create_token(svc.dsn, role="agent", agent=records["agent1001"], name="e2e agent1001")
        own = await http_get(f"{base}/api/agents/agent1001", token=other)
        assert own.status == 200 and '"agent1001"' in own.text
        assert (await http_get(f"{base}/api/agents", token=other)).status == 403
        refused = await http_get(f"{base}/api/agents/{AGENT}", token=other)
        assert refused.status == 403 and '"error_id"' in refused.text
        assert (await http_get(f"{base}/api/agents/{AGENT}/call", token=other)).status == 403
        supervisor = await create_token(svc.dsn, role="supervisor", name="e2e supervisor")
        listed = await http_get(f"{base}/api/agents", token=supervisor)
        assert listed.status == 200 and f'"{AGENT}"' in listed.text
        # the refusals are counted by route template and status
        counted = await scrape(base)
        assert counted.value("switchboard_http_requests_total", route="/api/agents", status="401") == 2
        assert counted.value("switchboard_http_requests_total", route="/api/agents/{agent_id}", status="403") == 1


async def _ready(base: str) -> bool:
    with contextlib.suppress(OSError, TimeoutError):
        return (await http_get(f"{base}/readyz")).status == 200
    return False


def _subsequence(wanted: Sequence[object], seen: Sequence[object]) -> bool:
    it = iter(seen)
    return all(any(x == w for x in it) for w in wanted)
