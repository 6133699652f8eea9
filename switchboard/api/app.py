"""The aiohttp application: ``create_app(settings=..., services=...)``.

Every route is declared once, as a :class:`Route` in ``switchboard.api.routes``:
method, path, who may call it, its query/body schemas and what it returns.
The same table registers the handlers, drives the auth and validation
middleware, and writes the OpenAPI document, so the three cannot disagree.

Middleware, outermost first: metrics (counts every request by route
template), errors (JSON ``{error_id, message, details}``), auth (bearer token
or session cookie; access rule of the route; CSRF header for cookie writes),
validation (path, query and JSON body against the route's schemas).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from switchboard.api import auth, guards
from switchboard.api.auth import Access, FailureLimiter, Principal
from switchboard.api.errors import (
    Forbidden,
    Handler,
    TooManyRequests,
    Unauthorized,
    ValidationFailed,
    error_middleware,
)
from switchboard.api.live import Audience, LiveHub, LiveMessage
from switchboard.api.services import Services
from switchboard.api.validation import Schema, check_body, coerce_query, problems
from switchboard.config import Settings
from switchboard.metrics import Metrics

log = logging.getLogger("switchboard.api")

SETTINGS = web.AppKey("settings", Settings)
SERVICES = web.AppKey("services", Services)
METRICS = web.AppKey("metrics", Metrics)
HUB = web.AppKey("hub", LiveHub)
ROUTES = web.AppKey("routes", dict)  # (method, path template) -> Route
LOGIN_LIMITER = web.AppKey("login_limiter", FailureLimiter)
TOKEN_LIMITER = web.AppKey("token_limiter", FailureLimiter)
TRUSTED_PROXIES: web.AppKey[tuple[guards.Network, ...]] = web.AppKey("trusted_proxies")

PRINCIPAL = web.RequestKey("principal", Principal)
BODY = web.RequestKey("body", dict)
QUERY = web.RequestKey("query", dict)


@dataclass(frozen=True)
class ApiOptions:
    """Tunables of the API layer (defaults suit production)."""

    service_timeout: float = 10.0      # limit on every service call made by a handler
    session_ttl_s: float = 12 * 3600.0
    secure_cookies: bool = False       # set True behind HTTPS
    login_max_failures: int = 5
    login_window_s: float = 300.0
    token_max_failures: int = 30       # bad bearer tokens per IP before 429
    figures_interval_s: float = 2.0    # how often supervisors get queue figures
    ws_send_timeout: float = 5.0
    ws_auth_timeout: float = 5.0
    ws_recheck_s: float = 0.5          # how often live sockets' tokens are checked (logout, revocation, expiry)
    max_body_bytes: int = 256 * 1024


OPTIONS = web.AppKey("options", ApiOptions)


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    access: Access
    summary: str
    tag: str
    operation_id: str
    path_params: Mapping[str, Schema] = field(default_factory=dict)
    query: Mapping[str, Schema] = field(default_factory=dict)
    body: Schema | None = None
    response: Any = None            # a dataclass, list[dataclass] or a JSON schema dict
    content_type: str = "application/json"
    errors: Sequence[int] = ()      # extra documented statuses beyond the auth/validation ones


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


def _register(app: web.Application, routes: Sequence[Route]) -> None:
    table: dict[tuple[str, str], Route] = {}
    for r in routes:
        key = (r.method, r.path)
        if key in table:
            raise ValueError(f"route declared twice: {r.method} {r.path}")
        table[key] = r
        app.router.add_route(r.method, r.path, r.handler, name=r.operation_id)
    app[ROUTES] = table


async def _figures_pusher(app: web.Application) -> AsyncIterator[None]:
    """Push queue figures and the agent list to supervisors while any is connected."""
    hub, services, options = app[HUB], app[SERVICES], app[OPTIONS]

    async def loop() -> None:
        while True:
            await asyncio.sleep(options.figures_interval_s)
            if not hub.supervisors_connected():
                continue
            try:
                async with asyncio.timeout(options.service_timeout):
                    figures = await services.queues.figures()
                    agents = await services.agents.list_agents()
            except Exception as exc:  # keep pushing; log once per failure
                log.warning("could not read queue figures for the wallboard: %r", exc)
                continue
            hub.publish(LiveMessage("queue.figures", figures, audience=Audience.SUPERVISORS))
            hub.publish(LiveMessage("agents", list(agents), audience=Audience.SUPERVISORS))

    async with _running(loop(), "api-figures-pusher"):
        yield
    await hub.close_all()


def create_app(
    *,
    settings: Settings,
    services: Services,
    metrics: Metrics | None = None,
    hub: LiveHub | None = None,
    options: ApiOptions | None = None,
) -> web.Application:
    """The API application. ``metrics`` and ``hub`` are created when not given;
    read them back from ``app[METRICS]`` and ``app[HUB]`` to feed them."""
    from switchboard.api.routes import ROUTE_TABLE

    opts = options or ApiOptions()
    m = metrics or Metrics(service_level_s=settings.routing.service_level_s,
                           short_abandon_s=settings.routing.short_abandon_s)
    h = hub or LiveHub(buffer=settings.http.websocket_buffer, send_timeout=opts.ws_send_timeout,
                       on_drop=m.websocket_dropped.inc, on_publish=m.websocket_messages.inc)
    if m.sources.websocket_clients is None:
        m.set_sources(websocket_clients=lambda: len(h))
    app = web.Application(
        middlewares=[metrics_middleware, error_middleware, auth_middleware],
        client_max_size=opts.max_body_bytes,
    )
    app[SETTINGS] = settings
    app[SERVICES] = services
    app[METRICS] = m
    app[HUB] = h
    if settings.http.secure_cookies and not opts.secure_cookies:
        opts = dataclasses.replace(opts, secure_cookies=True)
    app[OPTIONS] = opts
    app[TRUSTED_PROXIES] = guards.parse_networks(settings.http.trusted_proxies)
    app[LOGIN_LIMITER] = FailureLimiter(max_failures=opts.login_max_failures, window_s=opts.login_window_s)
    app[TOKEN_LIMITER] = FailureLimiter(max_failures=opts.token_max_failures, window_s=opts.login_window_s)
    _register(app, ROUTE_TABLE)
    app.cleanup_ctx.append(_figures_pusher)
    app.cleanup_ctx.append(_session_watch)
    app.on_response_prepare.append(_server_header)
    app.on_shutdown.append(_close_websockets)
    return app


async def _server_header(request: web.Request, response: web.StreamResponse) -> None:
    """No software versions to the world (aiohttp would send its own and Python's)."""
    response.headers["Server"] = "switchboard"


async def _session_watch(app: web.Application) -> AsyncIterator[None]:
    """Close live sockets (4001) whose token was logged out, revoked or expired, or whose
    login token was: checked every ``ws_recheck_s`` with one query for all of them."""
    hub, tokens, options = app[HUB], app[SERVICES].tokens, app[OPTIONS]

    async def loop() -> None:
        while True:
            await asyncio.sleep(options.ws_recheck_s)
            hub.close_expired()
            ids = hub.token_ids()
            if not ids:
                continue
            try:
                async with asyncio.timeout(options.service_timeout):
                    alive = await auth.active_ids(tokens, ids)
            except Exception as exc:  # the database is away: keep the sockets, say so
                log.warning("could not re-check live sockets' tokens: %r", exc)
                continue
            for token_id in ids - alive:
                hub.close_token(token_id, why="token revoked or expired")

    async with _running(loop(), "api-session-watch"):
        yield


@contextlib.asynccontextmanager
async def _running(coro: Coroutine[Any, Any, None], name: str) -> AsyncIterator[None]:
    """Run ``coro`` as a background task for the life of the block; cancel it at the end."""
    task = asyncio.create_task(coro, name=name)
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _close_websockets(app: web.Application) -> None:
    """Close the live sockets when shutdown starts: their handlers then end at
    once instead of holding the server's shutdown for its whole timeout."""
    await app[HUB].close_all()


class _BadRequestLines(logging.Filter):
    """aiohttp logs every malformed HTTP message (CR in a header, NUL in the path, both
    Content-Length and Transfer-Encoding...) at ERROR with a traceback, though it answers
    400. A hostile client must not fill the log with tracebacks: one line, no trace."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError) and 400 <= (exc.code or 400) < 500:
            record.msg, record.args = "malformed HTTP request refused (%s): %s", (exc.code, exc.message.splitlines()[0])
            record.exc_info, record.exc_text = None, None
            record.levelno, record.levelname = logging.INFO, "INFO"
        return True


_BAD_REQUESTS = _BadRequestLines()


ID_PATTERN = r"[A-Za-z0-9][A-Za-z0-9_.@:-]{0,63}"
_ID_RE = re.compile(ID_PATTERN)


@dataclass
class ApiServer:
    """The API as a Part of the composition root: ``start``/``stop``.

    aiohttp's access log is off: it would print ``?token=`` query strings.
    The metrics middleware counts every request instead.
    """

    app: web.Application
    host: str
    port: int
    shutdown_timeout: float = 5.0
    name: str = "api"
    _runner: web.AppRunner | None = None

    async def start(self) -> None:
        server_log = logging.getLogger("aiohttp.server")
        if _BAD_REQUESTS not in server_log.filters:
            server_log.addFilter(_BAD_REQUESTS)
        self._runner = web.AppRunner(self.app, access_log=None, shutdown_timeout=self.shutdown_timeout)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        log.info("HTTP API listening on %s:%d", self.host, self.port)

    @property
    def bound_port(self) -> int:
        assert self._runner is not None
        for address in self._runner.addresses:
            if isinstance(address, tuple):
                return int(address[1])
        raise RuntimeError("not listening")

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
