"""The web pages: plain HTML, JS and CSS from ``static/``, no build step.

Only files named in the folder listing at import time can be served, by
name; a request for anything else is a 404, so no path can leave the folder.
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from switchboard.api.auth import Access
from switchboard.api.errors import NotFound
from switchboard.api.keys import Route

STATIC_DIR = Path(__file__).resolve().parent / "static"
_TYPES = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml", ".png": "image/png",
          ".json": "application/json", ".html": "text/html"}
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; connect-src 'self'; img-src 'self' data:; "
                               "frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


def _files() -> dict[str, Path]:
    if not STATIC_DIR.is_dir():
        return {}
    return {p.name: p for p in STATIC_DIR.iterdir() if p.is_file() and p.suffix in _TYPES}


def _page(name: str) -> web.Response:
    path = STATIC_DIR / name
    return web.Response(body=path.read_bytes(), content_type="text/html", charset="utf-8",
                        headers=SECURITY_HEADERS)


async def index(request: web.Request) -> web.Response:
    raise web.HTTPFound("/agent")


async def agent_page(request: web.Request) -> web.Response:
    return _page("agent.html")


async def wallboard_page(request: web.Request) -> web.Response:
    return _page("wallboard.html")


async def reports_page(request: web.Request) -> web.Response:
    return _page("reports.html")


async def static_file(request: web.Request) -> web.Response:
    path = _files().get(request.match_info["name"])
    if path is None or path.suffix == ".html":
        raise NotFound("no such file")
    return web.Response(body=path.read_bytes(), content_type=_TYPES[path.suffix],
                        charset="utf-8" if path.suffix in (".js", ".css", ".json", ".svg") else None,
                        headers=SECURITY_HEADERS)


PAGE_ROUTES = [
    Route("GET", "/", index, Access.OPEN, "Redirect to the agent panel.", "pages", "index", content_type="text/html"),
    Route("GET", "/agent", agent_page, Access.OPEN, "Agent panel (HTML).", "pages", "agent_page",
          content_type="text/html"),
    Route("GET", "/wallboard", wallboard_page, Access.OPEN, "Supervisor wallboard (HTML).", "pages",
          "wallboard_page", content_type="text/html"),
    Route("GET", "/reports", reports_page, Access.OPEN, "Reports with charts (HTML; its data needs a supervisor).",
          "pages", "reports_page", content_type="text/html",
          query={"view": {"type": "string", "enum": ["day", "week", "month"]},
                 "date": {"type": "string", "pattern": r"[0-9]{4}-[0-9]{2}-[0-9]{2}"}}),
    Route("GET", "/static/{name}", static_file, Access.OPEN, "Page assets (JS, CSS).", "pages", "static_file",
          path_params={"name": {"type": "string", "pattern": r"[a-z0-9_-]{1,40}\.(js|css|svg|png|json)"}},
          content_type="text/plain"),
]
