"""The Q&A sessions' routes (``/api/qa-sessions``): supervisors create and run any session; an
agent (the expert) sees and runs only the sessions they moderate.

Thin handlers over ``switchboard.sessions.service.SessionService`` (``Services.sessions``);
joined to the route table in ``routes.py`` like the campaigns. A service that runs without
sessions answers 503 ``service-unavailable``; an agent acting on a session they do not
moderate gets 403 ``not-moderator``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from pathlib import Path
from typing import Any, TypeVar

from aiohttp import web

from switchboard.api.auth import Access
from switchboard.api.errors import Forbidden, NotFound, ServiceUnavailable
from switchboard.api.jsonutil import json_ok
from switchboard.api.keys import BODY, OPTIONS, SERVICES, Route
from switchboard.api.middleware import principal_of
from switchboard.api.recording_files import serve_recording
from switchboard.sessions.model import SESSION_ID

T = TypeVar("T")
SESSION_PATH = {"session_id": {"type": "string", "pattern": SESSION_ID}}
WHO_PATH = {**SESSION_PATH, "participant": {"type": "string", "pattern": r"[A-Za-z0-9][A-Za-z0-9_.@:/;-]{0,127}"}}
_EMPTY: dict[str, Any] = {"type": "object", "properties": {}, "additionalProperties": False}
_OBJ = {"type": "object"}


def _service(request: web.Request) -> Any:
    svc = request.app[SERVICES].sessions
    if svc is None:
        raise ServiceUnavailable("Q&A sessions are not enabled on this service", error_id="service-unavailable")
    return svc


def _session(request: web.Request) -> tuple[Any, str]:
    """The service and the path's session, once the caller may act on it (supervisor or its moderator)."""
    svc = _service(request)
    sid = request.match_info["session_id"]
    p = principal_of(request)
    if not p.is_supervisor:
        svc.view(sid)   # 404 first for a session that does not exist
        if not p.agent_id or not svc.moderates(p.agent_id, sid):
            raise Forbidden("only the session's moderator or a supervisor may do that", error_id="not-moderator",
                            details={"session": sid})
    return svc, sid


async def _call(request: web.Request, aw: Awaitable[T]) -> T:
    async with asyncio.timeout(request.app[OPTIONS].service_timeout * 3):
        return await aw


def _by(request: web.Request) -> str:
    p = principal_of(request)
    return p.name or p.token_id


async def sessions_list(request: web.Request) -> web.Response:
    p = principal_of(request)
    svc = _service(request)
    return json_ok(svc.list_all(moderator=None if p.is_supervisor else (p.agent_id or "-")))


async def session_create(request: web.Request) -> web.Response:
    return json_ok(await _call(request, _service(request).create(request[BODY]["source"], by=_by(request))),
                   status=201)


async def session_show(request: web.Request) -> web.Response:
    svc, sid = _session(request)
    return json_ok(svc.view(sid))


async def session_attendance(request: web.Request) -> web.Response:
    svc, sid = _session(request)
    return json_ok(await _call(request, svc.attendance(sid)))


async def session_confbridge(request: web.Request) -> web.Response:
    svc, sid = _session(request)
    return json_ok(await _call(request, svc.confbridge_list(sid)))


def _participant_handler(verb: str) -> Any:
    async def handler(request: web.Request) -> web.Response:
        svc, sid = _session(request)
        return json_ok(await _call(request, getattr(svc, verb)(sid, request.match_info["participant"])))
    handler.__name__ = f"session_{verb}"
    return handler


async def session_mute_all(request: web.Request) -> web.Response:
    svc, sid = _session(request)
    return json_ok(await _call(request, svc.mute_all(sid)))


async def session_end(request: web.Request) -> web.Response:
    svc, sid = _session(request)
    return json_ok(await _call(request, svc.end(sid, by=_by(request))))


async def session_call_moderator(request: web.Request) -> web.Response:
    svc, sid = _session(request)
    return json_ok({"leg": await _call(request, svc.call_moderator(sid))})


async def session_recording(request: web.Request) -> web.StreamResponse:
    """The conference's recording: like a call's (the recordings folder only), for a supervisor
    or the session's moderator."""
    svc, sid = _session(request)
    found = svc.view(sid).get("recording")
    if not found:
        raise NotFound("this session has no recording (not ended yet, or purged)")
    return await serve_recording(request, Path(found), what=f"session {sid}", name=f"session-{sid}")


async def session_register(request: web.Request) -> web.Response:
    svc, sid = _session(request)
    body = request[BODY]
    return json_ok(await _call(request, svc.register(sid, participants=list(body.get("participants", ())),
                                                     numbers=list(body.get("numbers", ())), by=_by(request))))


async def session_invitations(request: web.Request) -> web.Response:
    svc, sid = _session(request)
    found = await _call(request, svc.invitations(sid))
    if found is None:
        raise NotFound("this session calls nobody in (no registered participants, or not started)",
                       error_id="no-invitations")
    return json_ok(found)


_ANY = Access.ANY
_TAG = "qa-sessions"

SESSION_ROUTES = [
    Route("GET", "/api/qa-sessions", sessions_list, _ANY,
          "Q&A sessions (a supervisor sees all, an agent those they moderate), with who is in each now.",
          _TAG, "qa_sessions_list", errors=(503,), response={"type": "array", "items": _OBJ}),
    Route("POST", "/api/qa-sessions", session_create, Access.SUPERVISOR,
          "Create a Q&A session from its YAML definition (docs/sessions.md); 422 lists every problem.",
          _TAG, "qa_session_create", errors=(409, 422, 503), response=_OBJ,
          body={"type": "object", "additionalProperties": False, "required": ["source"],
                "properties": {"source": {"type": "string", "minLength": 1, "maxLength": 20_000}}}),
    Route("GET", "/api/qa-sessions/{session_id}", session_show, _ANY,
          "One session: participants (join order) and the raised-hands queue (first raised first).", _TAG,
          "qa_session_show", path_params=SESSION_PATH, errors=(403, 404, 503), response=_OBJ),
    Route("GET", "/api/qa-sessions/{session_id}/attendance", session_attendance, _ANY,
          "Attendance from PostgreSQL: who joined, when, for how long, hands raised, floor given.", _TAG,
          "qa_session_attendance", path_params=SESSION_PATH, errors=(403, 404, 503),
          response={"type": "array", "items": _OBJ}),
    Route("GET", "/api/qa-sessions/{session_id}/confbridge", session_confbridge, _ANY,
          "ConfBridge's own list of the conference (AMI ConfbridgeList): channel, muted, admin.", _TAG,
          "qa_session_confbridge", path_params=SESSION_PATH, errors=(403, 404, 503),
          response={"type": "array", "items": _OBJ}),
    Route("GET", "/api/qa-sessions/{session_id}/recording", session_recording, _ANY,
          "Download the session's conference recording (a supervisor or the session's moderator).", _TAG,
          "qa_session_recording", path_params=SESSION_PATH, content_type="audio/*", errors=(403, 404, 503)),
    Route("POST", "/api/qa-sessions/{session_id}/registered", session_register, _ANY,
          "Register participants (insurance codes) or numbers for a session not over yet: stored with it, "
          "called at its start (at once while it runs).", _TAG, "qa_session_register", path_params=SESSION_PATH,
          errors=(403, 404, 409, 422, 503), response=_OBJ,
          body={"type": "object", "additionalProperties": False, "properties": {
              "participants": {"type": "array", "maxItems": 2000, "items": {"type": "string", "maxLength": 32}},
              "numbers": {"type": "array", "maxItems": 2000, "items": {"type": "string", "maxLength": 32}}}}),
    Route("GET", "/api/qa-sessions/{session_id}/invitations", session_invitations, _ANY,
          "The registered participants' calls: the invitation campaign's state and counts (its report: "
          "/api/campaigns/{id}/report).", _TAG, "qa_session_invitations", path_params=SESSION_PATH,
          errors=(403, 404, 503), response=_OBJ),
    *(Route("POST", f"/api/qa-sessions/{{session_id}}/participants/{{participant}}/{verb}", _participant_handler(verb),
            _ANY, summary, _TAG, f"qa_session_{verb}", path_params=WHO_PATH, body=_EMPTY, errors=(403, 404, 409, 503),
            response=_OBJ)
      for verb, summary in (
          ("unmute", "Give a caller the floor (ConfbridgeUnmute); the participant is a uniqueid, call id or channel."),
          ("mute", "Mute a caller again (ConfbridgeMute)."),
          ("kick", "Remove a caller from the conference (ConfbridgeKick); they go on to the survey."))),
    Route("POST", "/api/qa-sessions/{session_id}/mute-all", session_mute_all, _ANY, "Mute every caller.", _TAG,
          "qa_session_mute_all", path_params=SESSION_PATH, body=_EMPTY, errors=(403, 404, 409, 503), response=_OBJ),
    Route("POST", "/api/qa-sessions/{session_id}/end", session_end, _ANY,
          "End the session now: everyone leaves the conference, callers go on to the survey.", _TAG,
          "qa_session_end", path_params=SESSION_PATH, body=_EMPTY, errors=(403, 404, 409, 503), response=_OBJ),
    Route("POST", "/api/qa-sessions/{session_id}/call-moderator", session_call_moderator, _ANY,
          "Ring the moderator's phone into the conference (again).", _TAG, "qa_session_call_moderator",
          path_params=SESSION_PATH, body=_EMPTY, errors=(403, 404, 409, 503), response=_OBJ),
]
