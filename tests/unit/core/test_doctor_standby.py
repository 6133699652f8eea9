"""doctor and active/standby: a standby's 503 on /readyz is its role, not a failure."""

from __future__ import annotations

import json

from switchboard.commands.doctor import _standby


def test_a_standby_answer_names_the_leader() -> None:
    raw = json.dumps({"ready": False, "role": "standby", "instance": "b", "leader": "a",
                      "leader_url": "http://sb-a:8080", "leader_epoch": 7}).encode()
    assert _standby(raw) == "standby (instance b); leader a (http://sb-a:8080), epoch 7"


def test_anything_else_is_no_standby() -> None:
    assert _standby(json.dumps({"ready": False, "checks": {"database": False}}).encode()) == ""
    assert _standby(json.dumps({"role": "leader"}).encode()) == ""
    assert _standby(b"<html>") == ""
    assert _standby(b"[]") == ""
