"""The OpenAPI document matches the registered routes, both ways."""

from __future__ import annotations

import re

from api_fakes import Client, bearer

from switchboard.api import auth
from switchboard.api.app import SERVICES


def _registered(client: Client) -> set[tuple[str, str]]:
    out = set()
    for route in client.app.router.routes():
        if route.method in ("HEAD", "*"):
            continue
        canonical = route.resource.canonical if route.resource is not None else ""
        out.add((route.method.lower(), canonical))
    return out


async def test_every_route_is_documented_and_vice_versa(client: Client) -> None:
    doc = await (await client.get("/api/openapi.json")).json()
    documented = {(method, path) for path, ops in doc["paths"].items() for method in ops}
    registered = _registered(client)
    assert registered == documented
    assert ("get", "/api/agents/{agent_id}") in documented and len(documented) > 30


async def test_document_is_openapi3_with_resolvable_refs(client: Client) -> None:
    doc = await (await client.get("/api/openapi.json")).json()
    assert doc["openapi"].startswith("3.")
    text = str(doc)
    for ref in set(re.findall(r"#/components/(schemas|responses)/([A-Za-z0-9]+)", text)):
        assert ref[1] in doc["components"][ref[0]], ref
    for path, ops in doc["paths"].items():
        for name in re.findall(r"\{([a-z_]+)\}", path):
            for op in ops.values():
                assert any(p["in"] == "path" and p["name"] == name for p in op.get("parameters", [])), (path, name)
    # the access rule is part of each operation, and open ones need no security
    assert doc["paths"]["/healthz"]["get"]["security"] == []
    assert doc["paths"]["/api/agents"]["get"]["x-access"] == "supervisor"
    assert "401" in doc["paths"]["/api/agents"]["get"]["responses"]


async def test_documented_response_fields_match_a_real_response(client: Client) -> None:
    doc = await (await client.get("/api/openapi.json")).json()
    token, _ = await auth.create_token(client.app[SERVICES].tokens, role="supervisor")
    body = await (await client.get("/api/agents/a1", headers=bearer(token))).json()
    assert set(body) == set(doc["components"]["schemas"]["AgentView"]["properties"])
    figures = await (await client.get("/api/queues/figures", headers=bearer(token))).json()
    assert set(figures) == set(doc["components"]["schemas"]["QueueFigures"]["properties"])
