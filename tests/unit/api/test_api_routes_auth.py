"""Every route's auth: no token, a bad token, a wrong role, another agent's id."""

from __future__ import annotations

import re
from typing import Any

import pytest
from api_fakes import Client, Tokens, World, bearer

from switchboard.api.auth import Access
from switchboard.api.routes import ROUTE_TABLE
from switchboard.api.services import CallSummary

PROTECTED = [r for r in ROUTE_TABLE if r.access is not Access.OPEN and r.path != "/api/ws"]
BODIES: dict[str, dict[str, Any]] = {
    "agent_pause": {"reason": "break"}, "agent_wrap_up": {"disposition": "resolved"},
    "agent_force_pause": {"reason": "break"}, "agent_spy": {"mode": "listen"},
    "flows_validate": {"name": "hotline", "source": "start: x"},
    "agent_transfer": {"kind": "topic", "target": "health.card"},
    "agent_consult": {"kind": "agent", "target": "a2"}, "agent_consult_end": {"action": "cancel"},
    "campaign_create": {"source": "campaign: c1"}, "campaign_contacts": {"csv": "number"},
    "dnc_add": {"number": "0912345678"}, "qa_session_create": {"source": "session: s1"},
    "campaign_preview_skip": {"reason": "wrong person"},
}


def fill(path: str, agent_id: str = "a1") -> str:
    values = {"agent_id": agent_id, "call_id": "c1", "name": "daily-summary", "campaign_id": "c1",
              "session_id": "s1", "participant": "p1", "contact_id": "7"}
    return re.sub(r"\{([a-z_]+)\}", lambda m: values[m.group(1)], path)


async def send(client: Client, route: Any, path: str, headers: dict[str, str]) -> Any:
    kwargs: dict[str, Any] = {"headers": headers}
    if route.body is not None:
        kwargs["json"] = BODIES.get(route.operation_id, {})
    return await client.request(route.method, path, **kwargs)


def test_every_protected_route_is_covered() -> None:
    assert len(PROTECTED) >= 20
    assert {r.access for r in PROTECTED} == {Access.ANY, Access.SELF, Access.SELF_OR_SUPERVISOR,
                                              Access.SUPERVISOR, Access.ADMIN}


@pytest.mark.parametrize("route", PROTECTED, ids=lambda r: f"{r.method} {r.path}")
async def test_no_token_is_401(client: Client, route: Any) -> None:
    resp = await send(client, route, fill(route.path), {})
    assert resp.status == 401
    body = await resp.json()
    assert body["error_id"] == "unauthorized" and set(body) == {"error_id", "message", "details"}


@pytest.mark.parametrize("route", PROTECTED, ids=lambda r: f"{r.method} {r.path}")
async def test_bad_token_is_401(client: Client, route: Any) -> None:
    resp = await send(client, route, fill(route.path), bearer("sb_0123456789ab." + "A" * 43))
    assert resp.status == 401
    assert (await resp.json())["error_id"] == "invalid-credentials"


@pytest.mark.parametrize("route", [r for r in PROTECTED if r.access is not Access.ANY],
                         ids=lambda r: f"{r.method} {r.path}")
async def test_wrong_role_or_other_agent_is_403(client: Client, tokens: Tokens, route: Any) -> None:
    refused: list[tuple[str, str]] = []  # (token, path) pairs that must get 403
    if route.access is Access.ADMIN:
        refused = [(tokens.supervisor, fill(route.path)), (tokens.a1, fill(route.path))]
    elif route.access is Access.SUPERVISOR:
        refused = [(tokens.a1, fill(route.path, "a1"))]
    elif route.access is Access.SELF:
        refused = [(tokens.a1, fill(route.path, "a2")), (tokens.supervisor, fill(route.path, "a1"))]
    elif route.access is Access.SELF_OR_SUPERVISOR:
        refused = [(tokens.a1, fill(route.path, "a2"))]
    assert refused
    for token, path in refused:
        resp = await send(client, route, path, bearer(token))
        assert resp.status == 403, (path, await resp.text())
        assert (await resp.json())["error_id"] == "forbidden"


@pytest.mark.parametrize("route", PROTECTED, ids=lambda r: f"{r.method} {r.path}")
async def test_the_right_token_gets_past_auth(client: Client, tokens: Tokens, route: Any) -> None:
    token = {Access.ADMIN: tokens.admin, Access.SUPERVISOR: tokens.supervisor}.get(route.access, tokens.a1)
    resp = await send(client, route, fill(route.path, "a1"), bearer(token))
    assert resp.status not in (401, 403), await resp.text()


async def test_agent_may_search_only_own_calls(client: Client, tokens: Tokens, world: World) -> None:
    resp = await client.get("/api/calls?agent_id=a2", headers=bearer(tokens.a1))
    assert resp.status == 403
    resp = await client.get("/api/calls", headers=bearer(tokens.a1))
    assert resp.status == 200
    assert world.calls.queries[-1].agent_id == "a1"  # scoped to self when not given
    resp = await client.get("/api/calls?agent_id=a2", headers=bearer(tokens.supervisor))
    assert resp.status == 200 and world.calls.queries[-1].agent_id == "a2"


async def test_agent_may_read_only_own_call(client: Client, tokens: Tokens, world: World) -> None:
    from api_fakes import NOW
    world.calls.add(CallSummary(call_id="c9", started_at=NOW, caller="0901", agent_ids=["a2"]))
    # a colleague's call answers exactly like a call that does not exist
    foreign = await client.get("/api/calls/c9", headers=bearer(tokens.a1))
    missing = await client.get("/api/calls/c404", headers=bearer(tokens.a1))
    assert foreign.status == missing.status == 404
    assert await foreign.json() == await missing.json()
    assert (await client.get("/api/calls/c9", headers=bearer(tokens.a2))).status == 200
    assert (await client.get("/api/calls/c9", headers=bearer(tokens.supervisor))).status == 200


async def test_open_routes_need_no_token(client: Client) -> None:
    for path in ("/healthz", "/readyz", "/metrics", "/api/openapi.json", "/agent", "/wallboard", "/reports"):
        resp = await client.get(path)
        assert resp.status == 200, path


async def test_malformed_authorization_header(client: Client, tokens: Tokens) -> None:
    resp = await client.get("/api/codes", headers={"Authorization": f"Token {tokens.a1}"})
    assert resp.status == 401


async def test_bad_tokens_from_one_address_are_rate_limited(client: Client, tokens: Tokens) -> None:
    bad = bearer("sb_0123456789ab." + "B" * 43)
    statuses = [(await client.get("/api/codes", headers=bad)).status for _ in range(31)]
    assert statuses[:30] == [401] * 30 and statuses[30] == 429
    # the same token id stays blocked from that address ...
    resp = await client.get("/api/codes", headers=bad)
    assert resp.status == 429 and "Retry-After" in resp.headers
    # ... but a valid token behind the same address (a call-center NAT) still works
    resp = await client.get("/api/codes", headers=bearer(tokens.a1))
    assert resp.status == 200
