"""deploy/prometheus and deploy/grafana: promtool accepts them, and they use metrics we really export."""

from __future__ import annotations

import json
import re
import subprocess
from datetime import UTC, datetime
from pathlib import Path

from switchboard.events import CallEvent, EventKind
from switchboard.ha import metrics as ha_metrics
from switchboard.metrics import Metrics

DEPLOY = Path(__file__).resolve().parents[3] / "deploy"


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["promtool", *args], capture_output=True, text=True, timeout=60, check=False,
                          cwd=DEPLOY / "prometheus")


def test_rules_config_and_rule_unit_tests_pass() -> None:
    for args in (("check", "rules", "switchboard-rules.yml"), ("check", "config", "prometheus.yml"),
                 ("test", "rules", "switchboard-rules.test.yml")):
        done = _promtool(*args)
        assert done.returncode == 0, done.stdout + done.stderr


def test_promtool_rejects_a_broken_rule(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text("groups:\n  - name: x\n    rules:\n      - alert: X\n        expr: sum(\n")
    assert _promtool("check", "rules", str(bad)).returncode != 0


class _Leading:
    """What the HA metrics read of switchboard.ha.leader.Leadership."""

    epoch = seen_epoch = takeovers = 1
    takeover_s = 0.1
    on_lead: list[object] = []
    on_rewritten: list[object] = []

    def acting(self) -> bool:
        return True

    def holds_lock(self) -> bool:
        return True


def _exported_names() -> set[str]:
    """Every sample name the registry can produce (families with no samples yet included)."""
    m = Metrics()
    m.set_sources(agents=lambda: {("ready", ""): 1}, callbacks_pending=lambda: 0, ami_connected=lambda: True,
                  agi_commands_in_flight=lambda: 0, db_writer_queue_depth=lambda: 0, db_spool_bytes=lambda: 0,
                  websocket_clients=lambda: 0)
    t = datetime.now(UTC)
    m.observe_event(CallEvent("c", 1, t, EventKind.QUEUE_JOINED.value, {"topic": "x", "province": "ha-noi"}))
    m.observe_event(CallEvent("d", 1, t, EventKind.QUEUE_JOINED.value, {"topic": "x", "province": "ha-noi"}))
    m.observe_event(CallEvent("d", 2, t, EventKind.ANSWERED.value, {"wait_s": 3}))
    ha_metrics.register(_Leading(), m.registry)   # registered by the service when ha.enabled
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}
    names: set[str] = set()
    for family in m.registry.collect():
        names |= {family.name + s for s in suffixes.get(family.type, ("",))}
    return names


def test_rules_and_dashboard_use_exported_metrics() -> None:
    names = _exported_names()
    used: set[str] = set()
    rules = (DEPLOY / "prometheus" / "switchboard-rules.yml").read_text()
    dashboard = json.loads((DEPLOY / "grafana" / "switchboard-dashboard.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    for text in [rules, *exprs]:
        used |= set(re.findall(r"\bswitchboard_[a-z_]+\b", text))
    assert used and used <= names, used - names
    for alert in ("SwitchboardNoLeader", "SwitchboardTwoLeaders", "SwitchboardAmiDown", "SwitchboardServiceLevelLow", "SwitchboardSpoolGrowing",
                  "SwitchboardNoAgentsReady"):
        assert f"alert: {alert}" in rules
