from __future__ import annotations

import io
import json
import logging

from switchboard.logging_setup import register_secret, setup_logging


def _capture(fmt: str) -> tuple[logging.Logger, io.StringIO]:
    buf = io.StringIO()
    setup_logging("DEBUG", fmt, stream=buf)
    return logging.getLogger("switchboard.test"), buf


def test_json_lines_are_valid_and_carry_extras() -> None:
    log, buf = _capture("json")
    log.info("call %s entered queue", "L1", extra={"call_id": "L1", "wait_s": 3})
    doc = json.loads(buf.getvalue().strip())
    assert doc["msg"] == "call L1 entered queue"
    assert doc["call_id"] == "L1" and doc["wait_s"] == 3
    assert doc["level"] == "info"


def test_secrets_never_reach_the_log() -> None:
    log, buf = _capture("text")
    register_secret("Zq9-very-secret")
    log.warning("login with secret=hunter22 failed")
    log.warning("raw value Zq9-very-secret leaked?")
    log.warning("dsn postgresql://app:pa55word@db:5432/x")
    log.warning("header Authorization: Bearer abc.def.ghi")
    out = buf.getvalue()
    for s in ("hunter22", "Zq9-very-secret", "pa55word", "abc.def.ghi"):
        assert s not in out
    assert out.count("***") >= 4
