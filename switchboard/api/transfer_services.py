"""The API's transfer service over the running ACD (``acd.transfers``), and its values.

What an agent may transfer its call to (topics, the directory's entries by code, ready
colleagues) and the transfer itself. The agent whose call moves comes from the URL and
the route's access rule (an agent: only itself; a supervisor: any agent); the target is a
topic, an agent id or a directory *code*, never a number from the client.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Protocol

from switchboard.acd.model import UnknownAgent
from switchboard.acd.transfers import KINDS, TransferError
from switchboard.api.services import ConflictError, NotFoundError, UnavailableError

log = logging.getLogger("switchboard.api")

__all__ = ["KINDS", "AcdTransferService", "Colleague", "DirectoryItem", "TransferResult", "TransferService",
           "TransferTargets"]

#: error ids of a refused transfer (HTTP 409), besides ``agent-not-on-call``
TRANSFER_ERROR_IDS = ("unknown-transfer-target", "not-in-directory", "transfer-in-progress",
                      "call-not-transferable")


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
class TransferTargets:
    """Where the agent's call may go: topics, directory entries (no numbers shown), ready colleagues."""

    topics: list[str]
    directory: list[DirectoryItem]
    colleagues: list[Colleague]


@dataclass(frozen=True, slots=True)
class TransferResult:
    transfer_id: str
    call_id: str
    kind: str
    target: str
    from_agent: str
    state: str            # requested: the caller is on its way (the call's timeline says the rest)


class TransferService(Protocol):
    async def targets(self, agent_id: str) -> TransferTargets: ...

    async def transfer(self, agent_id: str, *, kind: str, target: str, by: str) -> TransferResult: ...


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
                               directory=[DirectoryItem(code=e.code, name=e.name) for e in t.directory.entries])

    async def transfer(self, agent_id: str, *, kind: str, target: str, by: str) -> TransferResult:
        try:
            p = await self.acd.transfers.blind(agent_id, kind=kind, target=target, by=by)
        except UnknownAgent:
            raise NotFoundError(f"unknown agent {agent_id}", details={"agent_id": agent_id}) from None
        except TransferError as exc:
            if exc.error_id == "transfer-failed":
                raise UnavailableError(str(exc), error_id="transfer-failed") from None
            raise ConflictError(str(exc), error_id=exc.error_id, details=exc.details) from None
        return TransferResult(transfer_id=p.transfer_id, call_id=p.call_id, kind=p.kind, target=p.target,
                              from_agent=p.from_agent, state="requested")
