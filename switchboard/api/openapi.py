"""The OpenAPI 3 document, written from the route table at request time."""

from __future__ import annotations

import re
import typing
from typing import Any

from aiohttp import web

from switchboard import __version__
from switchboard.api.auth import Access
from switchboard.api.errors import ERROR_IDS
from switchboard.api.keys import ROUTES, Route
from switchboard.api.schema import components, schema_for_type
from switchboard.api.services import Code, ProvinceInfo

_STATUS_TEXT = {400: "Invalid request", 401: "No valid token", 403: "Not allowed for this token",
                404: "Not found", 405: "Method not allowed", 409: "Illegal in the current state",
                422: "Unprocessable", 429: "Too many failed attempts", 500: "Internal error",
                503: "A dependency is unavailable"}


def _openapi_path(path: str) -> str:
    return re.sub(r"\{([a-z_]+)(:[^}]*)?\}", r"{\1}", path)


def _response_schema(response: Any, found: dict[str, type]) -> dict[str, Any] | None:
    if response is None:
        return None
    if isinstance(response, dict):
        return response
    return schema_for_type(response, found)


def _operation(route: Route, found: dict[str, type]) -> dict[str, Any]:
    op: dict[str, Any] = {
        "operationId": route.operation_id,
        "summary": route.summary,
        "tags": [route.tag],
        "x-access": route.access.value,
    }
    params: list[dict[str, Any]] = []
    for name, param in route.path_params.items():
        params.append({"name": name, "in": "path", "required": True, "schema": dict(param)})
    for name, param in route.query.items():
        params.append({"name": name, "in": "query", "required": False, "schema": dict(param)})
    if params:
        op["parameters"] = params
    if route.body is not None:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": route.body}}}
    responses: dict[str, Any] = {}
    schema = _response_schema(route.response, found)
    ok = "201" if route.operation_id in ("session_create", "agent_spy") else "200"
    if route.operation_id == "session_delete":
        ok = "204"
    if route.operation_id == "index":
        responses["302"] = {"description": "Redirect"}
    else:
        content: dict[str, Any] = {route.content_type: {"schema": schema or {}}} if ok != "204" else {}
        responses[ok] = {"description": "OK", **({"content": content} if content else {})}
    if route.operation_id == "agent_call":
        responses["204"] = {"description": "No call"}
    statuses = set(route.errors)
    if route.access is not Access.OPEN:
        statuses |= {401, 403, 429}
    if route.path_params or route.query or route.body is not None:
        statuses.add(400)
    if route.path.startswith("/api/"):
        statuses |= {500, 503}
    for status in sorted(statuses):
        if status == 422:
            responses["422"] = {"description": _STATUS_TEXT[422],
                                "content": {"application/json": {"schema": schema or {}}}}
            continue
        responses[str(status)] = {"$ref": f"#/components/responses/E{status}"}
    op["responses"] = responses
    if route.access is Access.OPEN:
        op["security"] = []
    return op


def build_document(app: web.Application) -> dict[str, Any]:
    routes: dict[tuple[str, str], Route] = app[ROUTES]
    found: dict[str, type] = {"Code": Code, "ProvinceInfo": ProvinceInfo}
    paths: dict[str, dict[str, Any]] = {}
    for (method, path), route in sorted(routes.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        paths.setdefault(_openapi_path(path), {})[method.lower()] = _operation(route, found)
    error_schema = {
        "type": "object",
        "required": ["error_id", "message", "details"],
        "properties": {
            "error_id": {"type": "string", "enum": [*sorted(ERROR_IDS), "http-error"]},
            "message": {"type": "string"},
            "details": {"type": "object"},
        },
    }
    schemas = components(list(typing.cast(list[type], list(found.values()))))
    schemas["Error"] = error_schema
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "Switchboard API",
            "version": __version__,
            "description": "Care-center hotline switchboard: agents, supervisors, calls, reports, flows. "
                           "Errors are JSON {error_id, message, details}; error_id values are stable.",
        },
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}, {"session": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "session": {"type": "apiKey", "in": "cookie", "name": "sb_session"},
            },
            "schemas": schemas,
            "responses": {
                f"E{status}": {"description": text,
                               "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
                for status, text in _STATUS_TEXT.items() if status != 422
            },
        },
    }
