"""doctor and active/standby: a standby's 503 on /readyz is its role, not a failure."""

from __future__ import annotations

import json

from switchboard.commands.doctor import _standby, _without_lock


def test_a_standby_answer_names_the_leader() -> None:
    raw = json.dumps({"ready": False, "role": "standby", "instance": "b", "leader": "a",
                      "leader_url": "http://sb-a:8080", "leader_epoch": 7}).encode()
    assert _standby(raw) == "standby (instance b); leader a (http://sb-a:8080), epoch 7"


def test_anything_else_is_no_standby() -> None:
    assert _standby(json.dumps({"ready": False, "checks": {"database": False}}).encode()) == ""
    assert _standby(json.dumps({"role": "leader"}).encode()) == ""
    assert _standby(b"<html>") == ""
    assert _standby(b"[]") == ""


def test_a_leader_without_its_lock_is_told() -> None:
    raw = json.dumps({"role": "leader", "instance": "a", "epoch": 7, "lock": False, "lock_lost_s": 12.5}).encode()
    assert _without_lock(raw).startswith("leader (instance a, epoch 7) without its PostgreSQL lock for 12.5s")
    assert _without_lock(json.dumps({"role": "leader", "lock": True}).encode()) == ""
    assert _without_lock(b"not json") == ""
