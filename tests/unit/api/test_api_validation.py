"""Validation errors: 400 with every problem listed; service errors mapped to 404/409."""

from __future__ import annotations

from api_fakes import Client, Tokens, World, bearer


async def _problems(resp) -> list[dict[str, str]]:  # type: ignore[no-untyped-def]
    body = await resp.json()
    assert body["error_id"] in ("invalid-request", "invalid-json"), body
    return list(body["details"].get("problems", []))


async def test_unknown_pause_reason_is_400(client: Client, tokens: Tokens) -> None:
    await client.post("/api/agents/a1/login", json={}, headers=bearer(tokens.a1))
    await client.post("/api/agents/a1/ready", json={}, headers=bearer(tokens.a1))
    resp = await client.post("/api/agents/a1/pause", json={"reason": "coffee"}, headers=bearer(tokens.a1))
    assert resp.status == 400
    assert (await _problems(resp))[0]["field"] == "reason"


async def test_missing_and_extra_fields_are_all_reported(client: Client, tokens: Tokens) -> None:
    resp = await client.post("/api/agents/a1/pause", json={"why": "x"}, headers=bearer(tokens.a1))
    assert resp.status == 400
    fields = {p["field"] for p in await _problems(resp)}
    assert fields == {"reason", "why"}


async def test_body_that_is_not_json_or_not_an_object(client: Client, tokens: Tokens) -> None:
    resp = await client.post("/api/agents/a1/pause", data=b"{nope", headers=bearer(tokens.a1))
    assert resp.status == 400 and (await resp.json())["error_id"] == "invalid-json"
    resp = await client.post("/api/agents/a1/pause", json=["break"], headers=bearer(tokens.a1))
    assert resp.status == 400


async def test_bad_query_parameters(client: Client, tokens: Tokens) -> None:
    h = bearer(tokens.supervisor)
    resp = await client.get("/api/calls?from=2026-13-01&limit=0&agnt=a1", headers=h)
    assert resp.status == 400
    fields = {p["field"] for p in await _problems(resp)}
    assert fields == {"from", "limit", "agnt"}
    resp = await client.get("/api/calls?from=2026-03-02&to=2026-03-01", headers=h)
    assert resp.status == 400
    resp = await client.get("/api/calls?limit=abc", headers=h)
    assert resp.status == 400


async def test_bad_path_id_is_400(client: Client, tokens: Tokens) -> None:
    resp = await client.get("/api/agents/..%2F..%2Fetc", headers=bearer(tokens.supervisor))
    assert resp.status in (400, 404)
    resp = await client.get("/api/agents/a%20b", headers=bearer(tokens.supervisor))
    assert resp.status == 400


async def test_service_errors_map_to_404_and_409(client: Client, tokens: Tokens, world: World) -> None:
    resp = await client.get("/api/agents/zz", headers=bearer(tokens.supervisor))
    assert resp.status == 404 and (await resp.json())["error_id"] == "not-found"
    resp = await client.post("/api/agents/a1/logout", json={}, headers=bearer(tokens.a1))   # never logged in
    assert resp.status == 409
    body = await resp.json()
    assert body["error_id"] == "conflict" and "logged_out" in body["message"]
    assert world.acd.states["a1"].status.value == "logged_out"


async def test_unknown_route_and_method(client: Client, tokens: Tokens) -> None:
    resp = await client.get("/api/nothing", headers=bearer(tokens.a1))
    assert resp.status == 404 and (await resp.json())["error_id"] == "not-found"
    resp = await client.put("/api/agents", headers=bearer(tokens.supervisor))
    assert resp.status == 405 and (await resp.json())["error_id"] == "method-not-allowed"


async def test_service_crash_is_500_without_leaking(client: Client, tokens: Tokens, world: World) -> None:
    async def boom() -> None:
        raise RuntimeError("secret internals")

    world.services.queues.figures = boom  # type: ignore[method-assign,assignment]
    resp = await client.get("/api/queues/figures", headers=bearer(tokens.supervisor))
    assert resp.status == 500
    body = await resp.json()
    assert body["error_id"] == "internal-error" and "secret" not in str(body) and body["details"]["incident"]
