"""The API's transfer service over the running ACD (``acd.transfers``), and its values.

What an agent may transfer its call to (topics, the directory's entries by code, ready
colleagues) and the transfer itself. The agent whose call moves comes from the URL and
the route's access rule (an agent: only itself; a supervisor: any agent); the target is a
topic, an agent id or a directory *code*, never a number from the client.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from switchboard.acd.consults import ACTIONS as CONSULT_ACTIONS
from switchboard.acd.model import UnknownAgent
from switchboard.acd.transfers import KINDS, TransferError
from switchboard.api.services import ConflictError, NotFoundError, UnavailableError

log = logging.getLogger("switchboard.api")
T = TypeVar("T")

__all__ = ["CONSULT_ACTIONS", "CONSULT_KINDS", "KINDS", "AcdTransferService", "Colleague", "ConsultResult", "DirectoryItem", "SupervisorItem", "TransferResult", "TransferService",
           "TransferTargets"]

CONSULT_KINDS = ("agent", "topic", "supervisor")
#: error ids of a refused transfer (HTTP 409), besides ``agent-not-on-call``
TRANSFER_ERROR_IDS = ("unknown-transfer-target", "not-in-directory", "transfer-in-progress",
                      "call-not-transferable", "colleague-not-ready", "no-consult", "consult-not-answered")


@dataclass(frozen=True, slots=True)
class DirectoryItem:
    code: str
    name: str


@dataclass(frozen=True, slots=True)
class Colleague:
    id: str
    name: str
    skills: dict[str, int]


@dataclass(frozen=True, slots=True)
class SupervisorItem:
    id: str
    name: str


@dataclass(frozen=True, slots=True)
class TransferTargets:
    """Where the agent's call may go: topics, directory entries (no numbers shown), ready colleagues,
    the supervisors' own phones (configured ones only; no endpoint shown)."""

    topics: list[str]
    directory: list[DirectoryItem]
    colleagues: list[Colleague]
    supervisors: list[SupervisorItem]


@dataclass(frozen=True, slots=True)
class TransferResult:
    transfer_id: str
    call_id: str
    kind: str
    target: str
    from_agent: str
    state: str            # requested: the caller is on its way (the call's timeline says the rest)


@dataclass(frozen=True, slots=True)
class ConsultResult:
    consult_id: str
    call_id: str
    agent_id: str         # who consults
    colleague: str        # who was rung (for a topic: the router's pick)
    state: str            # ringing | talking | three_way | done


class TransferService(Protocol):
    async def targets(self, agent_id: str) -> TransferTargets: ...

    async def transfer(self, agent_id: str, *, kind: str, target: str, by: str) -> TransferResult: ...

    async def consult(self, agent_id: str, *, kind: str, target: str, by: str) -> ConsultResult: ...

    async def consult_end(self, agent_id: str, *, action: str) -> ConsultResult: ...


class AcdTransferService:
    def __init__(self, acd: Any) -> None:
        self.acd = acd

    async def targets(self, agent_id: str) -> TransferTargets:
        t = self.acd.transfers
        try:
            t.desk.record(agent_id)
        except UnknownAgent:
            raise NotFoundError(f"unknown agent {agent_id}", details={"agent_id": agent_id}) from None
        colleagues = [Colleague(id=a, name=t.desk.records[a].name, skills=dict(t.desk.records[a].skills))
                      for a in t.ready_colleagues(agent_id)]
        return TransferTargets(topics=t.topics(), colleagues=colleagues,
                               directory=[DirectoryItem(code=e.code, name=e.name) for e in t.directory.entries],
                               supervisors=[SupervisorItem(id=sup.id, name=sup.name)
                                            for sup in sorted(t.supervisors.values(), key=lambda x: x.id)])

    async def _do(self, agent_id: str, aw: Awaitable[T]) -> T:
        try:
            return await aw
        except UnknownAgent:
            raise NotFoundError(f"unknown agent {agent_id}", details={"agent_id": agent_id}) from None
        except TransferError as exc:
            if exc.error_id == "transfer-failed":
                raise UnavailableError(str(exc), error_id="transfer-failed") from None
            raise ConflictError(str(exc), error_id=exc.error_id, details=exc.details) from None

    async def consult(self, agent_id: str, *, kind: str, target: str, by: str) -> ConsultResult:
        c = await self._do(agent_id, self.acd.consults.start(agent_id, kind=kind, target=target, by=by))
        return ConsultResult(consult_id=c.consult_id, call_id=c.call_id, agent_id=c.agent_id, colleague=c.colleague,
                             state=c.state)

    async def consult_end(self, agent_id: str, *, action: str) -> ConsultResult:
        c = await self._do(agent_id, self.acd.consults.finish(agent_id, action))
        return ConsultResult(consult_id=c.consult_id, call_id=c.call_id, agent_id=c.agent_id, colleague=c.colleague,
                             state=c.state)

    async def transfer(self, agent_id: str, *, kind: str, target: str, by: str) -> TransferResult:
        p = await self._do(agent_id, self.acd.transfers.blind(agent_id, kind=kind, target=target, by=by))
        return TransferResult(transfer_id=p.transfer_id, call_id=p.call_id, kind=p.kind, target=p.target,
                              from_agent=p.from_agent, state="requested")
