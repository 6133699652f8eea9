"""Route handlers and the route table (the single declaration of the API).

Why one long file: the route table is the single declaration of the API (auth, validation
and OpenAPI are derived from it), and each handler beside it is a few lines.

Handlers are thin: read the validated input the middleware left on the
request, call one service under a timeout, serialise the answer.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from aiohttp import web

from switchboard.api import auth, guards
from switchboard.api.auth import Access
from switchboard.api.campaign_routes import CAMPAIGN_ROUTES
from switchboard.api.errors import (
    Forbidden,
    NotFound,
    ServiceUnavailable,
    TooManyRequests,
    Unauthorized,
    ValidationFailed,
)
from switchboard.api.jsonutil import csv_response, json_ok
from switchboard.api.keys import (
    BODY,
    HUB,
    ID_PATTERN,
    LOGIN_LIMITER,
    METRICS,
    OPTIONS,
    PRINCIPAL,
    QUERY,
    SERVICES,
    SETTINGS,
    Route,
)
from switchboard.api.live import serve_websocket
from switchboard.api.middleware import authenticate, client_ip, principal_of
from switchboard.api.openapi import build_document
from switchboard.api.pages import PAGE_ROUTES
from switchboard.api.recording_files import serve_recording
from switchboard.api.services import (
    AgentFigures,
    AgentView,
    CallDetail,
    CallPage,
    CallQuery,
    Code,
    FlowReload,
    FlowValidation,
    NotFoundError,
    ProvinceInfo,
    QueueFigures,
    ScreenPop,
    SpyMode,
    SpyResult,
    WaitingCall,
)
from switchboard.api.session_routes import SESSION_ROUTES
from switchboard.api.transfer_services import (
    CONSULT_ACTIONS,
    CONSULT_KINDS,
    ConsultResult,
    TransferResult,
    TransferService,
    TransferTargets,
)
from switchboard.api.transfer_services import KINDS as TRANSFER_KINDS

log = logging.getLogger("switchboard.api")
T = TypeVar("T")

ID = {"type": "string", "pattern": ID_PATTERN}
CODE = {"type": "string", "pattern": r"[a-z0-9][a-z0-9_-]{0,31}"}
DATE = {"type": "string", "format": "date"}
AGENT_PATH = {"agent_id": ID}
CALL_PATH = {"call_id": ID}
EMPTY_BODY: dict[str, Any] = {"type": "object", "properties": {}, "additionalProperties": False}


async def _call(request: web.Request, aw: Awaitable[T]) -> T:
    async with asyncio.timeout(request.app[OPTIONS].service_timeout):
        return await aw


def _q(request: web.Request) -> dict[str, Any]:
    q: dict[str, Any] = request[QUERY]
    return q


def _b(request: web.Request) -> dict[str, Any]:
    b: dict[str, Any] = request[BODY]
    return b


# ----------------------------------------------------------------- health and metrics


async def healthz(request: web.Request) -> web.Response:
    return json_ok({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    try:
        checks = dict(await _call(request, request.app[SERVICES].health.checks()))
    except Exception as exc:
        log.warning("readiness check failed: %r", exc)
        checks = {"health": False}
    ready = all(checks.values())
    info = getattr(request.app[SERVICES].health, "info", None)
    extra = dict(info()) if info is not None else {}
    return json_ok({"ready": ready, "checks": checks, **extra}, status=200 if ready else 503)


async def metrics_handler(request: web.Request) -> web.Response:
    body = request.app[METRICS].scrape()
    return web.Response(body=body, headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"})


async def openapi_handler(request: web.Request) -> web.Response:
    return json_ok(build_document(request.app))


# ----------------------------------------------------------------- session (web login)


async def session_create(request: web.Request) -> web.Response:
    app = request.app
    body = _b(request)
    limiter = app[LOGIN_LIMITER]
    identity = body.get("agent_id") or "-"
    # failures count per (claimed principal, address): others' failures never block a valid login
    keys = [guards.limiter_key(guards.claimed_principal(body["token"], body.get("agent_id")), client_ip(request))]
    wait = max(limiter.retry_after(k) for k in keys)
    if wait > 0:
        raise TooManyRequests("too many failed logins; try again later",
                              details={"retry_after_s": int(wait) + 1},
                              headers={"Retry-After": str(int(wait) + 1)})
    principal = await authenticate(request, body["token"])
    wrong_agent = (principal is not None and "agent_id" in body and principal.agent_id != body["agent_id"])
    if principal is None or wrong_agent or (principal.role == "agent" and "agent_id" not in body):
        for k in keys:
            limiter.failed(k)
        log.info("failed web login for %s from %s", identity, client_ip(request))
        raise Unauthorized("wrong agent id or token", error_id="invalid-credentials")
    if principal.kind != "api":
        raise Forbidden("a session cannot open another session; log in with your token",
                        error_id="session-from-session")
    for k in keys:
        limiter.succeeded(k)
    ttl = timedelta(seconds=app[OPTIONS].session_ttl_s)
    now = datetime.now(UTC)
    if principal.expires_at is not None:  # never outlive the login token
        ttl = min(ttl, principal.expires_at - now)
    session, row = await _call(request, auth.create_token(
        app[SERVICES].tokens, role=principal.role, agent_id=principal.agent_id,
        name=principal.name, kind="session", ttl=ttl, now=now, parent_id=principal.token_id))
    log.info("web login: %s (%s)", principal.agent_id or principal.name or principal.token_id, principal.role)
    resp = json_ok({"role": principal.role, "agent_id": principal.agent_id, "name": principal.name,
                    "expires_at": row.expires_at, "token": session}, status=201)
    resp.set_cookie(auth.SESSION_COOKIE, session, max_age=int(ttl.total_seconds()), httponly=True,
                    samesite="Strict", secure=app[OPTIONS].secure_cookies, path="/")
    return resp


async def session_show(request: web.Request) -> web.Response:
    p = principal_of(request)
    return json_ok({"role": p.role, "agent_id": p.agent_id, "name": p.name, "kind": p.kind})


async def session_delete(request: web.Request) -> web.Response:
    p = principal_of(request)
    if p.kind == "session":
        await _call(request, request.app[SERVICES].tokens.revoke(p.token_id))
        request.app[HUB].close_token(p.token_id)
    resp = web.Response(status=204)
    resp.del_cookie(auth.SESSION_COOKIE, path="/")
    return resp


# ----------------------------------------------------------------- reference data


async def codes(request: web.Request) -> web.Response:
    agents = request.app[SERVICES].agents
    return json_ok({"pause_reasons": list(agents.pause_reasons()), "dispositions": list(agents.dispositions())})


async def provinces(request: web.Request) -> web.Response:
    return json_ok(list(request.app[SERVICES].provinces))


# ----------------------------------------------------------------- agents


def _check_code(value: str, allowed: list[Code], field_name: str) -> None:
    if value not in {c.code for c in allowed}:
        raise ValidationFailed(f"unknown {field_name}", details={"problems": [
            {"field": field_name, "problem": "must be one of: " + ", ".join(c.code for c in allowed)}]})


async def agents_list(request: web.Request) -> web.Response:
    return json_ok(list(await _call(request, request.app[SERVICES].agents.list_agents())))


async def agent_show(request: web.Request) -> web.Response:
    return json_ok(await _call(request, request.app[SERVICES].agents.get_agent(request.match_info["agent_id"])))


async def agent_login(request: web.Request) -> web.Response:
    return json_ok(await _call(request, request.app[SERVICES].agents.login(request.match_info["agent_id"])))


async def agent_logout(request: web.Request) -> web.Response:
    return json_ok(await _call(request, request.app[SERVICES].agents.logout(request.match_info["agent_id"])))


async def agent_ready(request: web.Request) -> web.Response:
    return json_ok(await _call(request, request.app[SERVICES].agents.ready(request.match_info["agent_id"])))


async def agent_pause(request: web.Request) -> web.Response:
    agents = request.app[SERVICES].agents
    reason = _b(request)["reason"]
    _check_code(reason, list(agents.pause_reasons()), "reason")
    return json_ok(await _call(request, agents.pause(request.match_info["agent_id"], reason=reason)))


async def agent_wrap_up(request: web.Request) -> web.Response:
    agents = request.app[SERVICES].agents
    disposition = _b(request)["disposition"]
    _check_code(disposition, list(agents.dispositions()), "disposition")
    return json_ok(await _call(request, agents.end_wrap_up(request.match_info["agent_id"],
                                                           disposition=disposition)))


async def agent_call(request: web.Request) -> web.Response:
    pop = await _call(request, request.app[SERVICES].agents.current_call(request.match_info["agent_id"]))
    if pop is None:
        return web.Response(status=204)
    return json_ok(pop)


async def agent_figures(request: web.Request) -> web.Response:
    day_text = _q(request).get("day")
    day = date.fromisoformat(day_text) if day_text else datetime.now(request.app[METRICS].tz).date()
    return json_ok(await _call(request, request.app[SERVICES].reports.agent_day(
        request.match_info["agent_id"], day=day)))


async def agent_force_pause(request: web.Request) -> web.Response:
    agents = request.app[SERVICES].agents
    reason = _b(request)["reason"]
    _check_code(reason, list(agents.pause_reasons()), "reason")
    by = principal_of(request)
    log.info("agent %s force-paused (%s) by %s", request.match_info["agent_id"], reason, by.name or by.token_id)
    return json_ok(await _call(request, agents.force_pause(request.match_info["agent_id"], reason=reason,
                                                           by=by.name or by.token_id)))


async def agent_force_logout(request: web.Request) -> web.Response:
    by = principal_of(request)
    log.info("agent %s force-logged-out by %s", request.match_info["agent_id"], by.name or by.token_id)
    return json_ok(await _call(request, request.app[SERVICES].agents.force_logout(
        request.match_info["agent_id"], by=by.name or by.token_id)))


async def agent_spy(request: web.Request) -> web.Response:
    # The leg rings only the supervisor's own phone (bound to the token), never a target from the body.
    result = await _call(request, request.app[SERVICES].supervisor.spy(
        agent_id=request.match_info["agent_id"], mode=SpyMode(_b(request)["mode"]),
        supervisor_endpoint=principal_of(request).sip_endpoint))
    return json_ok(result, status=201)


# ----------------------------------------------------------------- transfers


def _transfers(request: web.Request) -> TransferService:
    service = request.app[SERVICES].transfers
    if service is None:
        raise ServiceUnavailable("transfers are not available here")
    return service


async def agent_transfer_targets(request: web.Request) -> web.Response:
    return json_ok(await _call(request, _transfers(request).targets(request.match_info["agent_id"])))


async def agent_transfer(request: web.Request) -> web.Response:
    # whose call moves: the agent in the URL (an agent token: only itself); where: a topic, an agent
    # id or a directory code, never a number (the directory holds the numbers)
    body, by = _b(request), principal_of(request)
    result = await _call(request, _transfers(request).transfer(
        request.match_info["agent_id"], kind=body["kind"], target=body["target"],
        by=by.agent_id or by.name or by.token_id))
    return json_ok(result, status=202)


async def agent_consult(request: web.Request) -> web.Response:
    body, by = _b(request), principal_of(request)
    result = await _call(request, _transfers(request).consult(
        request.match_info["agent_id"], kind=body["kind"], target=body["target"],
        by=by.agent_id or by.name or by.token_id))
    return json_ok(result, status=202)


async def agent_consult_end(request: web.Request) -> web.Response:
    return json_ok(await _call(request, _transfers(request).consult_end(
        request.match_info["agent_id"], action=_b(request)["action"])))


# ----------------------------------------------------------------- queues


async def queue_waiting(request: web.Request) -> web.Response:
    q = _q(request)
    return json_ok(list(await _call(request, request.app[SERVICES].queues.waiting(
        topic=q.get("topic"), province=q.get("province")))))


async def queue_figures(request: web.Request) -> web.Response:
    return json_ok(await _call(request, request.app[SERVICES].queues.figures()))


# ----------------------------------------------------------------- calls


def _date_range(q: dict[str, Any]) -> tuple[date | None, date | None]:
    d_from = guards.check_date(q["from"], "from") if "from" in q else None
    d_to = guards.check_date(q["to"], "to") if "to" in q else None
    if d_from and d_to and d_to < d_from:
        raise ValidationFailed("the query parameters are invalid", details={"problems": [
            {"field": "to", "problem": "must not be before from"}]})
    return d_from, d_to


async def calls_search(request: web.Request) -> web.Response:
    p = principal_of(request)
    q = _q(request)
    agent_id = q.get("agent_id")
    if not p.is_supervisor:
        if agent_id is not None and agent_id != p.agent_id:
            raise Forbidden("an agent may only search its own calls")
        agent_id = p.agent_id
    d_from, d_to = _date_range(q)
    query = CallQuery(number=q.get("number"), date_from=d_from, date_to=d_to, agent_id=agent_id,
                      outcome=q.get("outcome"), limit=q.get("limit", 50), offset=q.get("offset", 0))
    return json_ok(await _call(request, request.app[SERVICES].calls.search(query)))


async def call_show(request: web.Request) -> web.Response:
    p = principal_of(request)
    if p.is_supervisor:
        return json_ok(await _call(request, request.app[SERVICES].calls.get(request.match_info["call_id"])))
    # an agent gets the same answer for a colleague's call as for a call that does not exist
    try:
        detail = await _call(request, request.app[SERVICES].calls.get(request.match_info["call_id"]))
    except NotFoundError:
        detail = None
    if detail is None or p.agent_id not in detail.call.agent_ids:
        raise NotFound("no such call among yours")
    return json_ok(detail)


async def call_recording(request: web.Request) -> web.StreamResponse:
    call_id = request.match_info["call_id"]
    found = await _call(request, request.app[SERVICES].recordings.path_for(call_id))
    if found is None:
        raise NotFound("this call has no recording")
    return await serve_recording(request, Path(found), what=f"call {call_id}", name=call_id)


# ----------------------------------------------------------------- reports


async def reports_list(request: web.Request) -> web.Response:
    routing = request.app[SETTINGS].routing
    return json_ok({"reports": list(request.app[SERVICES].reports.names()),
                    "targets": {"service_level": routing.service_level_target,
                                "service_level_s": routing.service_level_s,
                                "satisfaction": routing.satisfaction_target}})


async def report_run(request: web.Request) -> web.Response:
    reports = request.app[SERVICES].reports
    name = request.match_info["name"]
    if name not in reports.names():
        raise NotFound(f"no report named {name}", details={"reports": list(reports.names())})
    q = _q(request)
    today = datetime.now(UTC).date()
    d_from, d_to = _date_range(q)
    first, last = guards.check_range(d_from or today, d_to or d_from or today)
    table = await _call(request, reports.run(name, date_from=first, date_to=last))
    if q.get("format", "json") == "csv":
        return csv_response(name, table.columns, table.rows)
    return json_ok({"name": table.name, "columns": list(table.columns),
                    "rows": [list(r) for r in table.rows]})


# ----------------------------------------------------------------- flows


async def flows_validate(request: web.Request) -> web.Response:
    body = _b(request)
    result = await _call(request, request.app[SERVICES].flows.validate(body["source"], name=body["name"]))
    return json_ok(result, status=200 if result.ok else 422)


async def flows_reload(request: web.Request) -> web.Response:
    by = principal_of(request)
    log.info("flows reload requested by %s", by.name or by.token_id)
    return json_ok(await _call(request, request.app[SERVICES].flows.reload()))


# ----------------------------------------------------------------- websocket


async def websocket(request: web.Request) -> web.StreamResponse:
    origin = request.headers.get("Origin")
    if origin is not None and origin.split("://", 1)[-1] != request.host:
        raise Forbidden("cross-origin websocket refused")
    app = request.app

    async def check(token: str) -> auth.Principal | None:
        try:
            return await authenticate(request, token)
        except Exception:
            return None

    return await serve_websocket(request, hub=app[HUB], principal=request.get(PRINCIPAL),
                                 authenticate=check, auth_timeout=app[OPTIONS].ws_auth_timeout)


# ----------------------------------------------------------------- the table

_SUP = Access.SUPERVISOR
_SELF = Access.SELF
_SOS = Access.SELF_OR_SUPERVISOR
DATE_RANGE = {"from": DATE, "to": DATE}
ERROR_SCHEMA_STATUSES = (400, 401, 403, 404, 409, 429, 500, 503)

ROUTE_TABLE: list[Route] = [
    Route("GET", "/healthz", healthz, Access.OPEN, "Liveness: the process answers.", "health", "healthz",
          response={"type": "object", "properties": {"status": {"type": "string"}}}),
    Route("GET", "/readyz", readyz, Access.OPEN, "Readiness: every dependency check passes (503 if not; a standby is not ready).",
          "health", "readyz", errors=(503,),
          response={"type": "object", "properties": {"ready": {"type": "boolean"},
                                                     "checks": {"type": "object",
                                                                "additionalProperties": {"type": "boolean"}}}}),
    Route("GET", "/metrics", metrics_handler, Access.OPEN, "Prometheus metrics (text exposition).", "health",
          "metrics", content_type="text/plain"),
    Route("GET", "/api/openapi.json", openapi_handler, Access.OPEN, "This document.", "meta", "openapi",
          response={"type": "object"}),
    Route("POST", "/api/session", session_create, Access.OPEN,
          "Web login: an agent id and a token give a session cookie (and the session token).", "session",
          "session_create", errors=(401, 429),
          body={"type": "object", "additionalProperties": False, "required": ["token"], "properties": {
              "agent_id": ID, "token": {"type": "string", "minLength": 1, "maxLength": 200}}},
          response={"type": "object", "properties": {
              "role": {"type": "string"}, "agent_id": {"type": "string", "nullable": True},
              "name": {"type": "string"}, "expires_at": {"type": "string", "format": "date-time"},
              "token": {"type": "string"}}}),
    Route("GET", "/api/session", session_show, Access.ANY, "Who am I.", "session", "session_show",
          response={"type": "object"}),
    Route("DELETE", "/api/session", session_delete, Access.ANY, "Log out of the web session.", "session",
          "session_delete"),
    Route("GET", "/api/codes", codes, Access.ANY, "Pause reasons and wrap-up dispositions.", "reference", "codes",
          response={"type": "object", "properties": {
              "pause_reasons": {"type": "array", "items": {"$ref": "#/components/schemas/Code"}},
              "dispositions": {"type": "array", "items": {"$ref": "#/components/schemas/Code"}}}}),
    Route("GET", "/api/provinces", provinces, Access.ANY, "The 34 provincial units.", "reference", "provinces",
          response=list[ProvinceInfo]),
    Route("GET", "/api/agents", agents_list, _SUP, "All agents and their states.", "agents", "agents_list",
          response=list[AgentView]),
    Route("GET", "/api/agents/{agent_id}", agent_show, _SOS, "One agent.", "agents", "agent_show",
          path_params=AGENT_PATH, response=AgentView, errors=(404,)),
    Route("POST", "/api/agents/{agent_id}/login", agent_login, _SELF, "Log in to the switchboard.", "agents",
          "agent_login", path_params=AGENT_PATH, body=EMPTY_BODY, response=AgentView, errors=(404, 409)),
    Route("POST", "/api/agents/{agent_id}/logout", agent_logout, _SELF, "Log out.", "agents", "agent_logout",
          path_params=AGENT_PATH, body=EMPTY_BODY, response=AgentView, errors=(404, 409)),
    Route("POST", "/api/agents/{agent_id}/ready", agent_ready, _SELF, "Become ready for calls.", "agents",
          "agent_ready", path_params=AGENT_PATH, body=EMPTY_BODY, response=AgentView, errors=(404, 409)),
    Route("POST", "/api/agents/{agent_id}/pause", agent_pause, _SELF, "Pause with a reason code.", "agents",
          "agent_pause", path_params=AGENT_PATH, response=AgentView, errors=(404, 409),
          body={"type": "object", "additionalProperties": False, "required": ["reason"],
                "properties": {"reason": CODE}}),
    Route("POST", "/api/agents/{agent_id}/wrap-up", agent_wrap_up, _SELF, "End wrap-up with a disposition code.",
          "agents", "agent_wrap_up", path_params=AGENT_PATH, response=AgentView, errors=(404, 409),
          body={"type": "object", "additionalProperties": False, "required": ["disposition"],
                "properties": {"disposition": CODE}}),
    Route("GET", "/api/agents/{agent_id}/call", agent_call, _SOS,
          "The call offered to or handled by the agent, with screen-pop data (204 when none).", "agents",
          "agent_call", path_params=AGENT_PATH, response=ScreenPop, errors=(404,)),
    Route("GET", "/api/agents/{agent_id}/figures", agent_figures, _SOS, "The agent's own figures for a day.",
          "agents", "agent_figures", path_params=AGENT_PATH, query={"day": DATE}, response=AgentFigures,
          errors=(404,)),
    Route("POST", "/api/agents/{agent_id}/force-pause", agent_force_pause, _SUP, "Supervisor: pause an agent.",
          "supervisor", "agent_force_pause", path_params=AGENT_PATH, response=AgentView, errors=(404, 409),
          body={"type": "object", "additionalProperties": False, "required": ["reason"],
                "properties": {"reason": CODE}}),
    Route("POST", "/api/agents/{agent_id}/force-logout", agent_force_logout, _SUP,
          "Supervisor: log an agent out.", "supervisor", "agent_force_logout", path_params=AGENT_PATH,
          body=EMPTY_BODY, response=AgentView, errors=(404, 409)),
    Route("POST", "/api/agents/{agent_id}/spy", agent_spy, _SUP,
          "Supervisor: listen to, whisper to or barge into the agent's call: ChanSpy on the agent's leg, "
          "originated over AMI to the supervisor's own phone (the SIP endpoint bound to the token).",
          "supervisor", "agent_spy", path_params=AGENT_PATH, response=SpyResult, errors=(404, 409, 503),
          body={"type": "object", "additionalProperties": False, "required": ["mode"],
                "properties": {"mode": {"type": "string", "enum": [m.value for m in SpyMode]}}}),
    Route("GET", "/api/agents/{agent_id}/transfer-targets", agent_transfer_targets, _SOS,
          "Where the agent's call may be transferred: topics, the directory's entries (by code; numbers are "
          "never shown), the colleagues ready now and the supervisors' own phones (by id).", "transfers", "agent_transfer_targets",
          path_params=AGENT_PATH, response=TransferTargets, errors=(404,)),
    Route("POST", "/api/agents/{agent_id}/transfer", agent_transfer, _SOS,
          "Blind transfer of the agent's answered call (an agent: its own call; a supervisor: any agent's): "
          "to a topic's line (the caller keeps its place and priority), to a named colleague first (then "
          "the topic's line), to a supervisor's own phone (by id; then the topic's line), or to a directory "
          "entry by code. 202: the caller is on its way; the call's "
          "timeline says the rest (transfer.completed / transfer.failed).", "transfers", "agent_transfer",
          path_params=AGENT_PATH, response=TransferResult, errors=(404, 409, 503),
          body={"type": "object", "additionalProperties": False, "required": ["kind", "target"],
                "properties": {"kind": {"type": "string", "enum": list(TRANSFER_KINDS)},
                               "target": {"type": "string", "pattern": r"[A-Za-z0-9][A-Za-z0-9_.-]{0,47}"}}}),
    Route("POST", "/api/agents/{agent_id}/consult", agent_consult, _SOS,
          "Consult: the caller goes on hold (music) and a colleague is rung (an agent by id, a supervisor's own "
          "phone by id, or for a topic the one the router picks); then consult-end. The colleague not answering or rejecting brings the agent "
          "back to its caller.", "transfers", "agent_consult", path_params=AGENT_PATH, response=ConsultResult,
          errors=(404, 409, 503),
          body={"type": "object", "additionalProperties": False, "required": ["kind", "target"],
                "properties": {"kind": {"type": "string", "enum": list(CONSULT_KINDS)},
                               "target": {"type": "string", "pattern": r"[A-Za-z0-9][A-Za-z0-9_.-]{0,47}"}}}),
    Route("POST", "/api/agents/{agent_id}/consult-end", agent_consult_end, _SOS,
          "End a consult: complete (the colleague takes the caller, the agent leaves), cancel (back to the "
          "caller) or three_way (all three in one call).", "transfers", "agent_consult_end",
          path_params=AGENT_PATH, response=ConsultResult, errors=(404, 409, 503),
          body={"type": "object", "additionalProperties": False, "required": ["action"],
                "properties": {"action": {"type": "string", "enum": list(CONSULT_ACTIONS)}}}),
    Route("GET", "/api/queues/waiting", queue_waiting, _SUP, "Calls waiting now, by topic and province.",
          "queues", "queue_waiting", query={"topic": {"type": "string", "pattern": r"[a-z0-9_/.-]{1,48}"},
                                            "province": {"type": "string", "pattern": r"[a-z0-9-]{1,48}"}},
          response=list[WaitingCall]),
    Route("GET", "/api/queues/figures", queue_figures, _SUP, "Live queue and service-level figures.", "queues",
          "queue_figures", response=QueueFigures),
    Route("GET", "/api/calls", calls_search, Access.ANY,
          "Search calls by number, date, agent, outcome (agents: their own calls only).", "calls", "calls_search",
          query={**DATE_RANGE, "number": {"type": "string", "pattern": r"\+?[0-9]{2,20}"}, "agent_id": ID,
                 "outcome": CODE, "limit": {"type": "integer", "minimum": 1, "maximum": 500},
                 "offset": {"type": "integer", "minimum": 0, "maximum": guards.MAX_OFFSET}},
          response=CallPage),
    Route("GET", "/api/calls/{call_id}", call_show, Access.ANY,
          "One call and its full timeline (agents: their own calls only).", "calls", "call_show",
          path_params=CALL_PATH, response=CallDetail, errors=(404,)),
    Route("GET", "/api/calls/{call_id}/recording", call_recording, _SUP, "Download the call's recording.",
          "calls", "call_recording", path_params=CALL_PATH, content_type="audio/*", errors=(404,)),
    Route("GET", "/api/reports", reports_list, _SUP, "Available reports and the targets they are read against.",
          "reports", "reports_list",
          response={"type": "object", "properties": {"reports": {"type": "array", "items": {"type": "string"}},
                                                     "targets": {"type": "object"}}}),
    Route("GET", "/api/reports/{name}", report_run, _SUP, "Run a report over a date range, as JSON or CSV.",
          "reports", "report_run", path_params={"name": CODE},
          query={**DATE_RANGE, "format": {"type": "string", "enum": ["json", "csv"]}}, errors=(404,),
          response={"type": "object", "properties": {"name": {"type": "string"},
                                                     "columns": {"type": "array", "items": {"type": "string"}},
                                                     "rows": {"type": "array", "items": {"type": "array"}}}}),
    Route("POST", "/api/flows/validate", flows_validate, Access.ADMIN,
          "Validate an IVR flow document (422 with the problems when invalid).", "flows", "flows_validate",
          errors=(422,), response=FlowValidation,
          body={"type": "object", "additionalProperties": False, "required": ["name", "source"],
                "properties": {"name": {"type": "string", "pattern": r"[A-Za-z0-9_.-]{1,64}"},
                               "source": {"type": "string", "minLength": 1, "maxLength": 200_000}}}),
    Route("POST", "/api/flows/reload", flows_reload, Access.ADMIN, "Reload IVR flows from the flows folder.",
          "flows", "flows_reload", body=EMPTY_BODY, response=FlowReload, errors=(503,)),
    Route("GET", "/api/ws", websocket, Access.ANY,
          "Live events (websocket). Authenticate with the session cookie, ?token=, or a first message "
          "{\"type\":\"auth\",\"token\":...}.", "live", "websocket",
          query={"token": {"type": "string", "maxLength": 200}}),
    *CAMPAIGN_ROUTES,
    *SESSION_ROUTES,
    *PAGE_ROUTES,
]
