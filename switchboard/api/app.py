"""The aiohttp application: ``create_app(settings=..., services=...)``.

Every route is declared once, as a :class:`Route` (``switchboard.api.keys``) in the
table of ``switchboard.api.routes``: method, path, who may call it, its query/body
schemas and what it returns. The same table registers the handlers, drives the auth
and validation middleware (``switchboard.api.middleware``), and writes the OpenAPI
document, so the three cannot disagree. This module builds the application from that
table; no module of ``api/`` imports it back.

Middleware, outermost first: metrics (counts every request by route template), errors
(JSON ``{error_id, message, details}``), auth (bearer token or session cookie; access
rule of the route; CSRF header for cookie writes), validation (path, query and JSON
body against the route's schemas).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import AsyncIterator, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from switchboard.api import auth, guards
from switchboard.api.auth import FailureLimiter
from switchboard.api.errors import error_middleware
from switchboard.api.keys import (
    HUB,
    LOGIN_LIMITER,
    METRICS,
    OPTIONS,
    ROUTES,
    SERVICES,
    SETTINGS,
    TOKEN_LIMITER,
    TRUSTED_PROXIES,
    ApiOptions,
    Route,
)
from switchboard.api.live import Audience, LiveHub, LiveMessage
from switchboard.api.middleware import auth_middleware, metrics_middleware
from switchboard.api.routes import ROUTE_TABLE
from switchboard.api.services import Services
from switchboard.config import Settings
from switchboard.metrics import Metrics

log = logging.getLogger("switchboard.api")

__all__ = ["HUB", "METRICS", "SERVICES", "SETTINGS", "ApiOptions", "ApiServer", "create_app"]


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
