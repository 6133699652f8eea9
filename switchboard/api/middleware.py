"""The API's middleware and what handlers read from it.

Outermost first: metrics (counts every request by route template), errors (JSON
``{error_id, message, details}``, in ``errors``), auth (bearer token or session
cookie; access rule of the route; CSRF header for cookie writes), validation
(path, query and JSON body against the route's schemas). Handlers read the
caller with :func:`principal_of` and the validated input from the request keys.
"""

from __future__ import annotations

import asyncio
import logging
import time

from aiohttp import web

from switchboard.api import auth, guards
from switchboard.api.auth import Access, Principal
from switchboard.api.errors import Forbidden, Handler, TooManyRequests, Unauthorized, ValidationFailed
from switchboard.api.keys import (
    BODY,
    METRICS,
    OPTIONS,
    PRINCIPAL,
    QUERY,
    ROUTES,
    SERVICES,
    TOKEN_LIMITER,
    TRUSTED_PROXIES,
    Route,
)
from switchboard.api.validation import check_body, coerce_query, problems

log = logging.getLogger("switchboard.api")


def principal_of(request: web.Request) -> Principal:
    p = request.get(PRINCIPAL)
    if p is None:  # pragma: no cover - the middleware guarantees it on protected routes
        raise Unauthorized("a bearer token is required")
    assert isinstance(p, Principal)
    return p


def client_ip(request: web.Request) -> str:
    """The client's address; ``X-Forwarded-For`` counts only from ``http.trusted_proxies``."""
    trusted = request.app[TRUSTED_PROXIES]
    return guards.client_address(request.remote, request.headers.getall("X-Forwarded-For", []), trusted)


def _route_of(request: web.Request) -> Route | None:
    info = request.match_info
    resource = info.route.resource if info.route is not None else None
    if resource is None:
        return None
    method = request.method if request.method != "HEAD" else "GET"
    found: Route | None = request.app[ROUTES].get((method, resource.canonical))
    return found


def _template(request: web.Request) -> str:
    resource = request.match_info.route.resource if request.match_info.route is not None else None
    return resource.canonical if resource is not None else "unmatched"


@web.middleware
async def metrics_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    start = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        route = _template(request)
        if route != "/metrics":
            request.app[METRICS].observe_http(method=request.method, route=route, status=status,
                                              seconds=time.perf_counter() - start)


async def authenticate(request: web.Request, token: str) -> Principal | None:
    """Check a token (bearer or cookie), counting failures per (token id claimed, client address):
    bad tokens from one address never block another token's holder behind the same address."""
    app = request.app
    key = guards.limiter_key(guards.claimed_principal(token), client_ip(request))
    wait = app[TOKEN_LIMITER].retry_after(key)
    if wait > 0:
        raise TooManyRequests("too many invalid tokens for this token id from this address",
                              headers={"Retry-After": str(int(wait) + 1)})
    async with asyncio.timeout(app[OPTIONS].service_timeout):
        principal = await auth.verify_token(app[SERVICES].tokens, token)
    if principal is None:
        app[TOKEN_LIMITER].failed(key)
    return principal


def _credentials(request: web.Request) -> tuple[str | None, bool]:
    """(token, came from the session cookie)."""
    header = request.headers.get("Authorization", "")
    if header:
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise Unauthorized("the Authorization header must be 'Bearer <token>'")
        return value.strip(), False
    cookie = request.cookies.get(auth.SESSION_COOKIE)
    if cookie:
        return cookie, True
    return None, False


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    route = _route_of(request)
    if route is None:
        return await handler(request)  # the router answers 404/405
    # path parameters first: a malformed id is a 400 whoever asks
    found: list[dict[str, str]] = []
    for name, schema in route.path_params.items():
        found.extend(problems(request.match_info.get(name, ""), schema, name))
    if found:
        raise ValidationFailed("the path is invalid", details={"problems": found})
    if route.access is not Access.OPEN:
        token, from_cookie = _credentials(request)
        if token is None and route.path == "/api/ws":
            token = request.query.get("token")
        if token is None:
            if route.path == "/api/ws":
                return await handler(request)  # first-message auth
            raise Unauthorized("a bearer token is required", headers={"WWW-Authenticate": "Bearer"})
        principal = await authenticate(request, token)
        if principal is None:
            raise Unauthorized("the token is invalid, expired or revoked", error_id="invalid-credentials",
                               headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
        if from_cookie and request.method not in ("GET", "HEAD", "OPTIONS") \
                and request.headers.get(auth.CSRF_HEADER) != "1":
            raise Forbidden(f"requests authenticated by cookie must send {auth.CSRF_HEADER}: 1",
                            error_id="forbidden")
        if not auth.may_access(principal, route.access, request.match_info.get("agent_id")):
            raise Forbidden("this token may not do that", details={"access": route.access.value,
                                                                  "role": principal.role})
        request[PRINCIPAL] = principal
    request[QUERY] = coerce_query(request.query, route.query)
    if route.body is not None:
        if request.content_length is not None and request.content_length > request.app[OPTIONS].max_body_bytes:
            raise ValidationFailed("the request body is too large")
        raw = await request.read() if request.can_read_body else b""
        body = guards.parse_json(raw) if raw else {}
        request[BODY] = check_body(body, route.body)
    return await handler(request)
