"""What the API's modules share: app and request keys, the :class:`Route` declaration
and :class:`ApiOptions`.

It imports nothing of ``switchboard.api`` at run time (names from its other modules
appear under ``TYPE_CHECKING`` only, for the key and field types), so any module of
the folder can import it and no import circle can start here: ``routes``, ``pages``,
``openapi`` and ``middleware`` read the keys from this module, and only ``app``
builds the application from the route table.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import web

from switchboard.config import Settings
from switchboard.metrics import Metrics

if TYPE_CHECKING:
    from switchboard.api import guards
    from switchboard.api.auth import Access, FailureLimiter, Principal
    from switchboard.api.live import LiveHub
    from switchboard.api.services import Services
    from switchboard.api.validation import Schema

SETTINGS = web.AppKey("settings", Settings)
SERVICES: web.AppKey[Services] = web.AppKey("services")
METRICS = web.AppKey("metrics", Metrics)
HUB: web.AppKey[LiveHub] = web.AppKey("hub")
ROUTES = web.AppKey("routes", dict)  # (method, path template) -> Route
LOGIN_LIMITER: web.AppKey[FailureLimiter] = web.AppKey("login_limiter")
TOKEN_LIMITER: web.AppKey[FailureLimiter] = web.AppKey("token_limiter")
TRUSTED_PROXIES: web.AppKey[tuple[guards.Network, ...]] = web.AppKey("trusted_proxies")

PRINCIPAL: web.RequestKey[Principal] = web.RequestKey("principal")
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


ID_PATTERN = r"[A-Za-z0-9][A-Za-z0-9_.@:-]{0,63}"
_ID_RE = re.compile(ID_PATTERN)
