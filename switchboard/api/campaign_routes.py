"""The campaigns' routes (``/api/campaigns``, ``/api/do-not-call``): supervisors only; and the
agents' preview (``/api/agents/{agent_id}/campaign-preview``): an agent on itself only.

Thin handlers over ``switchboard.campaigns.service.PgCampaignService`` (``Services.campaigns``);
joined to the route table in ``routes.py`` like the pages. A service that runs without
campaigns answers 503 ``service-unavailable``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any, TypeVar

from aiohttp import web

from switchboard.api.auth import Access
from switchboard.api.errors import ServiceUnavailable
from switchboard.api.jsonutil import csv_response, json_ok
from switchboard.api.keys import BODY, ID_PATTERN, OPTIONS, QUERY, SERVICES, Route
from switchboard.api.middleware import principal_of
from switchboard.campaigns.model import CAMPAIGN_ID, State

T = TypeVar("T")
CAMPAIGN_PATH = {"campaign_id": {"type": "string", "pattern": CAMPAIGN_ID}}
_EMPTY: dict[str, Any] = {"type": "object", "properties": {}, "additionalProperties": False}
_CSV = {"type": "string", "minLength": 1, "maxLength": 8_000_000}


def _service(request: web.Request) -> Any:
    svc = request.app[SERVICES].campaigns
    if svc is None:
        raise ServiceUnavailable("campaigns are not enabled on this service", error_id="service-unavailable")
    return svc


async def _call(request: web.Request, aw: Awaitable[T]) -> T:
    async with asyncio.timeout(request.app[OPTIONS].service_timeout * 6):   # imports read whole lists
        return await aw


def _by(request: web.Request) -> str:
    p = principal_of(request)
    return p.name or p.token_id


async def campaigns_list(request: web.Request) -> web.Response:
    return json_ok(await _call(request, _service(request).list_all()))


async def campaign_create(request: web.Request) -> web.Response:
    body = request[BODY]
    view = await _call(request, _service(request).create(body["source"], contacts_csv=body.get("contacts_csv"),
                                                         by=_by(request)))
    return json_ok(view, status=201)


async def campaign_show(request: web.Request) -> web.Response:
    return json_ok(await _call(request, _service(request).get(request.match_info["campaign_id"])))


def _state_handler(state: State) -> Any:
    async def handler(request: web.Request) -> web.Response:
        return json_ok(await _call(request, _service(request).set_state(
            request.match_info["campaign_id"], state, by=_by(request))))
    handler.__name__ = f"campaign_{state.value}"
    return handler


async def campaign_contacts(request: web.Request) -> web.Response:
    imported = await _call(request, _service(request).import_contacts(
        request.match_info["campaign_id"], request[BODY]["csv"], by=_by(request)))
    return json_ok(imported)


async def campaign_report(request: web.Request) -> web.Response:
    cid = request.match_info["campaign_id"]
    report = await _call(request, _service(request).report(cid))
    if request[QUERY].get("format", "json") == "csv":
        return csv_response(f"campaign-{cid}", report.columns, report.rows)
    return json_ok({"campaign": report.campaign, "results": report.results, "abandon_ratio": report.abandon_ratio,
                    "columns": list(report.columns), "rows": [list(r) for r in report.rows]})


async def dnc_list(request: web.Request) -> web.Response:
    return json_ok(await _call(request, _service(request).dnc_list()))


async def dnc_add(request: web.Request) -> web.Response:
    return json_ok(await _call(request, _service(request).add_dnc(request[BODY]["number"], by=_by(request))),
                   status=201)


async def preview_show(request: web.Request) -> web.Response:
    view = await _call(request, _service(request).preview(request.match_info["agent_id"]))
    if view is None:
        return web.Response(status=204)
    return json_ok(view)


async def preview_call(request: web.Request) -> web.Response:
    m = request.match_info
    return json_ok(await _call(request, _service(request).preview_call(m["agent_id"], int(m["contact_id"]))),
                   status=202)


async def preview_skip(request: web.Request) -> web.Response:
    m = request.match_info
    return json_ok(await _call(request, _service(request).preview_skip(m["agent_id"], int(m["contact_id"]),
                                                                       request[BODY]["reason"])))


_SUP = Access.SUPERVISOR
_OBJ = {"type": "object"}
#: an agent id (as the agents' routes) and a contact of a campaign (its number in campaign_contacts)
PREVIEW_PATH = {"agent_id": {"type": "string", "pattern": ID_PATTERN},
                "contact_id": {"type": "string", "pattern": r"[1-9][0-9]{0,17}"}}
_PREVIEW = {"type": "object", "properties": {
    "campaign_id": {"type": "string"}, "contact_id": {"type": "integer"}, "name": {"type": "string"},
    "number": {"type": "string", "description": "masked: the first three and last three digits"},
    "participant_id": {"type": "string"}, "province": {"type": "string"},
    "why": {"type": "string", "description": "the campaign's description"}, "topic": {"type": "string"},
    "data": {"type": "object"}, "attempts": {"type": "integer"}, "last_result": {"type": "string"},
    "held_until": {"type": "string", "format": "date-time"}}}

CAMPAIGN_ROUTES = [
    Route("GET", "/api/campaigns", campaigns_list, _SUP, "Outbound campaigns with their contact counts.",
          "campaigns", "campaigns_list", errors=(503,), response={"type": "array", "items": _OBJ}),
    Route("POST", "/api/campaigns", campaign_create, _SUP,
          "Create a campaign (paused) from its YAML definition (docs/campaigns.md); a csv campaign brings "
          "its contacts as contacts_csv, a selection campaign reads them from participants. 422 lists "
          "every problem at its line.", "campaigns", "campaign_create", errors=(409, 422, 503), response=_OBJ,
          body={"type": "object", "additionalProperties": False, "required": ["source"],
                "properties": {"source": {"type": "string", "minLength": 1, "maxLength": 100_000},
                               "contacts_csv": _CSV}}),
    Route("GET", "/api/campaigns/{campaign_id}", campaign_show, _SUP, "One campaign.", "campaigns",
          "campaign_show", path_params=CAMPAIGN_PATH, errors=(404, 503), response=_OBJ),
    *(Route("POST", f"/api/campaigns/{{campaign_id}}/{verb}", _state_handler(state), _SUP, summary, "campaigns",
            f"campaign_{verb}", path_params=CAMPAIGN_PATH, body=_EMPTY, errors=(404, 409, 503), response=_OBJ)
      for verb, state, summary in (
          ("resume", State.RUNNING, "Start or resume dialling."),
          ("pause", State.PAUSED, "Pause dialling (calls in flight finish)."),
          ("stop", State.STOPPED, "Stop for good: nothing more is dialled."))),
    Route("POST", "/api/campaigns/{campaign_id}/contacts", campaign_contacts, _SUP,
          "Add contacts from a CSV text (numbers through the number policy; refused rows listed).", "campaigns",
          "campaign_contacts", path_params=CAMPAIGN_PATH, errors=(404, 409, 422, 503), response=_OBJ,
          body={"type": "object", "additionalProperties": False, "required": ["csv"], "properties": {"csv": _CSV}}),
    Route("GET", "/api/campaigns/{campaign_id}/report", campaign_report, _SUP,
          "Results per result and per contact, as JSON or CSV.", "campaigns", "campaign_report",
          path_params=CAMPAIGN_PATH, query={"format": {"type": "string", "enum": ["json", "csv"]}},
          errors=(404, 503), response=_OBJ),
    Route("GET", "/api/agents/{agent_id}/campaign-preview", preview_show, Access.SELF,
          "Preview: the next contact of a running preview campaign of the agent's topic (and province), "
          "held for this agent only until held_until (the same one while held); 204 when none is due or "
          "the calling window is closed. The number is masked.", "campaigns", "campaign_preview",
          path_params={"agent_id": PREVIEW_PATH["agent_id"]}, errors=(404, 409, 503), response=_PREVIEW),
    Route("POST", "/api/agents/{agent_id}/campaign-preview/{contact_id}/call", preview_call, Access.SELF,
          "Call the contact the agent holds: the agent's phone rings first, then the contact's number from "
          "the campaign's list is dialled (never a number from the client) and both are bridged. 409 when "
          "the hold expired, the agent is not ready, the window is closed or the number is on the "
          "do-not-call list.", "campaigns", "campaign_preview_call", path_params=PREVIEW_PATH, body=_EMPTY,
          errors=(404, 409, 503), response=_PREVIEW),
    Route("POST", "/api/agents/{agent_id}/campaign-preview/{contact_id}/skip", preview_skip, Access.SELF,
          "Do not call the contact the agent holds: it is done (final result skipped) with the reason.",
          "campaigns", "campaign_preview_skip", path_params=PREVIEW_PATH, errors=(404, 409, 503), response=_OBJ,
          body={"type": "object", "additionalProperties": False, "required": ["reason"],
                "properties": {"reason": {"type": "string", "minLength": 1, "maxLength": 200}}}),
    Route("GET", "/api/do-not-call", dnc_list, _SUP, "The do-not-call list.", "campaigns", "dnc_list",
          errors=(503,), response={"type": "array", "items": _OBJ}),
    Route("POST", "/api/do-not-call", dnc_add, _SUP, "Put a number on the do-not-call list.", "campaigns",
          "dnc_add", errors=(422, 503), response=_OBJ,
          body={"type": "object", "additionalProperties": False, "required": ["number"],
                "properties": {"number": {"type": "string", "minLength": 1, "maxLength": 40}}}),
]
