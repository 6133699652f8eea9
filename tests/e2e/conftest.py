"""End-to-end tests share one Asterisk: one test process at a time (see tests/e2e_lock.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from e2e_lock import e2e_turn as _turn


@pytest.fixture(scope="session", autouse=True)
def e2e_turn() -> Iterator[None]:
    with _turn("e2e"):
        yield
