"""The API of a standby: reads are answered, writes are refused with 503 ``not-leader``
(``details.leader_url`` says where the leader answers). A load balancer sends traffic to
the instance whose ``/readyz`` says ready (the leader); this guard keeps a client that
reached a standby anyway from changing state the leader would not know (docs/ha.md)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from switchboard.api.errors import ApiError, Handler

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class NotLeader(ApiError):
    status = 503
    error_id = "not-leader"


def middleware(leadership: Any) -> Any:
    @web.middleware
    async def not_leader_guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.method not in SAFE_METHODS and not leadership.acting():
            st = leadership.status()
            raise NotLeader("this instance is a standby: send writes to the leader",
                            details={"role": st["role"], "leader": st["leader"], "leader_url": st["leader_url"]})
        return await handler(request)

    return not_leader_guard
