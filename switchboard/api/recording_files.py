"""Serving a recording file (a call's, a Q&A session's): only from the recordings folder,
never through a path or symlink leading out of it; downloads logged with who asked."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from aiohttp import web

from switchboard.api.errors import Forbidden, NotFound
from switchboard.api.keys import SETTINGS
from switchboard.api.middleware import principal_of

__all__ = ["AUDIO_TYPES", "resolve_recording", "serve_recording"]

log = logging.getLogger("switchboard.api")

AUDIO_TYPES = {".wav": "audio/wav", ".mp3": "audio/mpeg", ".ogg": "audio/ogg", ".opus": "audio/ogg",
               ".gsm": "audio/x-gsm"}


def resolve_recording(recordings_dir: Path, found: Path) -> Path | None:
    """The real path of a recording, or None when it (or a symlink in it) leads
    outside ``recordings_dir``."""
    base = recordings_dir.resolve()
    target = (found if found.is_absolute() else base / found).resolve()
    return target if target.is_relative_to(base) else None


async def serve_recording(request: web.Request, found: Path, *, what: str, name: str) -> web.StreamResponse:
    """The file ``found`` (relative: under the recordings folder) as a download named ``name``;
    403 outside the recordings folder, 404 when the file is gone (purged)."""
    target = await asyncio.to_thread(resolve_recording, Path(request.app[SETTINGS].paths.recordings_dir), found)
    if target is None:
        log.warning("recording of %s points outside the recordings folder: refused", what)
        raise Forbidden("the recording is not in the recordings folder", error_id="forbidden")
    if not await asyncio.to_thread(target.is_file):
        raise NotFound("the recording file is missing")
    by = principal_of(request)
    log.info("recording of %s downloaded by %s", what, by.name or by.token_id)
    content_type = AUDIO_TYPES.get(target.suffix.lower(), "application/octet-stream")
    return web.FileResponse(target, headers={
        "Content-Type": content_type,
        "Content-Disposition": f'attachment; filename="{name}{target.suffix.lower()}"',
        "Cache-Control": "no-store",
    })
