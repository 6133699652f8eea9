"""End-to-end tests share one Asterisk: one test session at a time.

Every AGI manager connected to Asterisk sees every AsyncAGIStart, so two test
processes running calls at once would both drive the same channels. A
session-wide file lock makes concurrent runs (two developers' shells, a
tool's run beside `make test`) take turns instead.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator

import pytest

LOCK = "/tmp/switchboard-e2e.lock"


@pytest.fixture(scope="session", autouse=True)
def e2e_turn() -> Iterator[None]:
    if os.environ.get("SB_E2E_LOCK_HELD") == "1":   # a caller (e.g. `flock ... make test`) holds it
        yield
        return
    fd = os.open(LOCK, os.O_CREAT | os.O_RDWR, 0o666)
    t0 = time.monotonic()
    fcntl.flock(fd, fcntl.LOCK_EX)
    waited = time.monotonic() - t0
    if waited > 1:
        print(f"\n[e2e] waited {waited:.0f}s for another e2e run to finish")
    try:
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
