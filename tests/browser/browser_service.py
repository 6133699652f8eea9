"""The real service for browser tests: the end-to-end harness of ``tests/e2e``
(``running_service``: composition root, local Asterisk 22, migrated
PostgreSQL, SIPp softphones and callers) plus what a browser needs (the base
URL, tokens in the real ``api_tokens`` table) and the e2e turn lock.

Live-call browser tests place real calls on the shared Asterisk, so they take
the same file lock as ``tests/e2e`` (see ``tests/e2e/conftest.py``).
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "e2e"))

from e2e_metrics_service import create_token  # noqa: E402
from e2e_service import HOTLINE, Service, demo_agents, running_service, until  # noqa: E402

__all__ = ["HOTLINE", "Service", "base_url", "create_token", "demo_agents", "e2e_lock", "running_service",
           "until"]

LOCK = "/tmp/switchboard-e2e.lock"


def e2e_lock() -> contextlib.AbstractContextManager[None]:
    """Hold the e2e turn (shared, re-entrant: tests/e2e_lock.py) for the duration of the block."""
    from e2e_lock import e2e_turn

    turn: contextlib.AbstractContextManager[None] = e2e_turn("browser")
    return turn


def base_url(svc: Service) -> str:
    return f"http://127.0.0.1:{svc.app.context['api'].bound_port}"
