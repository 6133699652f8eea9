"""Demo traffic for ``make run``: SIPp agents that log in and answer, and a
gentle stream of SIPp callers taking varied paths through the hotline menu
from varied provinces, so a newcomer sees calls routed live.

Agents log in from their "softphones" with the feature code ``*20`` (an
authenticated SIPp call into the ``agents`` context), register, and answer
offered calls after a few seconds; they talk a while and hang up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from dataclasses import dataclass
from pathlib import Path

from switchboard.acd.agents import AgentRecord, sip_password
from switchboard.demo.sipp import (
    AwaitHangup,
    Dtmf,
    HangUp,
    Pause,
    SippAgent,
    Step,
    caller_scenario,
    feature_code_scenario,
    run_sipp,
)

log = logging.getLogger("switchboard.demo")

#: Caller numbers from several provinces (landline area codes) and mobiles.
CALLERS = [
    "02437650001",  # Hà Nội
    "02838220002",  # Hồ Chí Minh
    "02363810003",  # Đà Nẵng
    "02253840004",  # Hải Phòng
    "02923820005",  # Cần Thơ
    "02383840006",  # Nghệ An
    "02343820007",  # Huế
    "02623850008",  # Đắk Lắk
    "0912345009",   # mobile: province asked in the menu
    "0987654010",
]

#: (weight, digits after the language choice, description). Topic digits follow ivr_flows/hotline.yaml.
PATHS: list[tuple[int, list[str], str]] = [
    (5, ["1", "1"], "social insurance / pension"),
    (3, ["1", "3"], "social insurance / one-time withdrawal"),
    (3, ["2", "1"], "health insurance / card"),
    (2, ["2", "2"], "health insurance / medical benefits"),
    (3, ["3", "1"], "unemployment / benefits"),
    (1, ["3", "2"], "unemployment / job support"),
    (2, ["0"], "talk to an agent"),
]


@dataclass
class DemoConfig:
    sip_remote: str
    hotline: str = "19009068"
    agents: int = 6
    base_port: int = 5071
    call_every_s: float = 12.0
    sip_secret: str = ""
    workdir: str = "run/demo"
    seed: int | None = None


class DemoTraffic:
    def __init__(self, cfg: DemoConfig, agents: list[AgentRecord]) -> None:
        self.cfg = cfg
        self.records = [a for a in agents if a.active][: cfg.agents]
        self.rng = random.Random(cfg.seed)
        self.phones: list[SippAgent] = []
        self.calls_started = 0
        self.calls_ok = 0
        self.agents_ready = 0   # agents whose *20 (log in, ready) went through
        self._tasks: set[asyncio.Task[None]] = set()
        Path(cfg.workdir).mkdir(parents=True, exist_ok=True)

    async def start_agents(self) -> None:
        for i, rec in enumerate(self.records):
            password = sip_password(self.cfg.sip_secret, rec.sip_endpoint)
            phone = SippAgent(endpoint=rec.sip_endpoint, password=password, remote=self.cfg.sip_remote,
                              port=self.cfg.base_port + i, answer_after=self.rng.uniform(1.5, 4.0),
                              talk=self.rng.uniform(10.0, 25.0), workdir=self.cfg.workdir)
            await phone.start()
            self.phones.append(phone)
        await asyncio.sleep(2.0)   # let them register
        for rec in self.records:
            password = sip_password(self.cfg.sip_secret, rec.sip_endpoint)
            res = await run_sipp(feature_code_scenario(user=rec.sip_endpoint, password=password, code="*20"),
                                 remote=self.cfg.sip_remote, timeout=30, workdir=self.cfg.workdir)
            self.agents_ready += int(res.ok)
            log.info("agent %s (%s) dialed *20: %s", rec.id, rec.home_province, "ready" if res.ok else "FAILED")

    def caller_steps(self, caller: str) -> tuple[list[Step], str]:
        weights = [w for w, _, _ in PATHS]
        _, digits, label = self.rng.choices(PATHS, weights=weights)[0]
        steps: list[Step] = [Pause(2.5), Dtmf("1" if self.rng.random() < 0.85 else "2")]
        for d in digits:
            steps += [Pause(2.5), Dtmf(d)]
        if caller.startswith("09"):   # a mobile: the menu asks the province; 0 = not sure (nationwide)
            steps += [Pause(4.0), Dtmf("0")]
        fate = self.rng.random()
        if fate < 0.12:
            steps = [*steps[:3], Pause(self.rng.uniform(1, 4)), HangUp()]
            label += " (hangs up in the menu)"
        elif fate < 0.22:
            steps += [Pause(self.rng.uniform(10, 30)), HangUp()]
            label += " (hangs up while waiting)"
        else:
            steps += [AwaitHangup(240)]
        return steps, label

    async def one_call(self) -> None:
        caller = self.rng.choice(CALLERS)
        steps, label = self.caller_steps(caller)
        self.calls_started += 1
        log.info("demo caller %s: %s", caller, label)
        res = await run_sipp(caller_scenario(steps, caller=caller), remote=self.cfg.sip_remote,
                             service=self.cfg.hotline, timeout=300, workdir=self.cfg.workdir)
        self.calls_ok += int(res.ok)

    async def run(self) -> None:
        await self.start_agents()
        try:
            while True:
                task = asyncio.create_task(self.one_call())
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
                await asyncio.sleep(self.rng.expovariate(1.0 / self.cfg.call_every_s))
        finally:
            for t in list(self._tasks):
                t.cancel()
            with contextlib.suppress(Exception):
                await asyncio.gather(*self._tasks, return_exceptions=True)
            for phone in self.phones:
                await phone.stop()
