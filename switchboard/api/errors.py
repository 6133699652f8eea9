"""HTTP errors: JSON ``{error_id, message, details}`` with a stable ``error_id``.

Handlers raise :class:`ApiError` subclasses; the error middleware turns them
(and service errors, and unexpected exceptions) into JSON responses. The
``error_id`` values are part of the public API: clients branch on them, so
they never change once released (see docs/api.md).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aiohttp import web

from switchboard.api.services import (
    ConflictError,
    InvalidError,
    NotFoundError,
    ServiceError,
    UnavailableError,
)

log = logging.getLogger("switchboard.api")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ApiError(Exception):
    status = 500
    error_id = "internal-error"

    def __init__(
        self,
        message: str,
        *,
        error_id: str | None = None,
        details: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if error_id is not None:
            self.error_id = error_id
        self.details: dict[str, Any] = dict(details or {})
        self.headers: dict[str, str] = dict(headers or {})


class ValidationFailed(ApiError):
    status = 400
    error_id = "invalid-request"


class Unauthorized(ApiError):
    status = 401
    error_id = "unauthorized"


class Forbidden(ApiError):
    status = 403
    error_id = "forbidden"


class NotFound(ApiError):
    status = 404
    error_id = "not-found"


class MethodNotAllowed(ApiError):
    status = 405
    error_id = "method-not-allowed"


class Conflict(ApiError):
    status = 409
    error_id = "conflict"


class Unprocessable(ApiError):
    status = 422
    error_id = "unprocessable"


class TooManyRequests(ApiError):
    status = 429
    error_id = "too-many-requests"


class ServiceUnavailable(ApiError):
    status = 503
    error_id = "service-unavailable"


#: Every error_id the API may return, with its status (documented in the OpenAPI document).
ERROR_IDS: dict[str, int] = {
    "invalid-request": 400,
    "invalid-json": 400,
    "unauthorized": 401,
    "invalid-credentials": 401,
    "forbidden": 403,
    "session-from-session": 403,
    "not-found": 404,
    "method-not-allowed": 405,
    "conflict": 409,
    "supervisor-no-endpoint": 409,
    "agent-not-on-call": 409,
    "unknown-transfer-target": 409,
    "not-in-directory": 409,
    "transfer-in-progress": 409,
    "call-not-transferable": 409,
    "colleague-not-ready": 409,
    "no-consult": 409,
    "consult-not-answered": 409,
    "transfer-failed": 503,
    "campaign-exists": 409,
    "campaign-state": 409,
    "invalid-campaign": 422,
    "invalid-contacts": 422,
    "invalid-number": 422,
    "not-moderator": 403,
    "not-in-session": 404,
    "session-exists": 409,
    "session-state": 409,
    "session-no-moderator": 409,
    "confbridge-refused": 409,
    "invalid-session": 422,
    "too-many-requests": 429,
    "internal-error": 500,
    "service-unavailable": 503,
    "service-timeout": 503,
}


def error_response(status: int, error_id: str, message: str, details: Mapping[str, Any] | None = None,
                   *, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.json_response(
        {"error_id": error_id, "message": message, "details": dict(details or {})},
        status=status,
        headers=dict(headers or {}),
    )


def from_service_error(exc: ServiceError) -> ApiError:
    if isinstance(exc, NotFoundError):
        return NotFound(exc.message, details=exc.details, error_id=exc.error_id)
    if isinstance(exc, ConflictError):
        return Conflict(exc.message, details=exc.details, error_id=exc.error_id)
    if isinstance(exc, InvalidError):
        return Unprocessable(exc.message, details=exc.details, error_id=exc.error_id)
    if isinstance(exc, UnavailableError):
        return ServiceUnavailable(exc.message, details=exc.details, error_id=exc.error_id)
    return ApiError(exc.message, details=exc.details, error_id=exc.error_id)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as exc:
        return error_response(exc.status, exc.error_id, exc.message, exc.details, headers=exc.headers)
    except ServiceError as exc:
        api = from_service_error(exc)
        return error_response(api.status, api.error_id, api.message, api.details)
    except TimeoutError:
        log.warning("%s %s: a service did not answer in time", request.method, request.path)
        return error_response(503, "service-timeout", "a service did not answer in time")
    except web.HTTPException as exc:
        if exc.status == 404:
            return error_response(404, "not-found", "no such resource")
        if exc.status == 405:
            return error_response(405, "method-not-allowed", f"{request.method} not allowed here")
        if exc.status < 400:
            raise
        return error_response(exc.status, "http-error", exc.reason)
    except asyncio.CancelledError:
        raise
    except Exception:
        incident = uuid.uuid4().hex[:12]
        log.exception("%s %s failed (incident %s)", request.method, request.path, incident)
        return error_response(500, "internal-error", "internal error", {"incident": incident})
