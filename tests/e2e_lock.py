"""The e2e turn: one process at a time places calls on the shared Asterisk.

Every AGI manager connected to Asterisk sees every AsyncAGIStart, so two test
processes running calls at once would both drive the same channels. An
exclusive flock on one file makes concurrent runs take turns. The lock is
re-entrant within a process (flock would deadlock against a second open of
the same file in the same process), and skipped when the caller already holds
it (``SB_E2E_LOCK_HELD=1``, e.g. ``flock /tmp/switchboard-e2e.lock make test``).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Iterator

LOCK = "/tmp/switchboard-e2e.lock"
_held = {"depth": 0, "fd": -1}


@contextlib.contextmanager
def e2e_turn(label: str = "e2e") -> Iterator[None]:
    if os.environ.get("SB_E2E_LOCK_HELD") == "1" or _held["depth"] > 0:
        _held["depth"] += 1
        try:
            yield
        finally:
            _held["depth"] -= 1
        return
    fd = os.open(LOCK, os.O_CREAT | os.O_RDWR, 0o666)
    t0 = time.monotonic()
    fcntl.flock(fd, fcntl.LOCK_EX)
    waited = time.monotonic() - t0
    if waited > 1:
        print(f"\n[{label}] waited {waited:.0f}s for another e2e run to finish")
    _held.update(depth=1, fd=fd)
    try:
        yield
    finally:
        _held.update(depth=0, fd=-1)
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
