"""`switchboard doctor`'s host-name check: local, quick resolution and Asterisk's /etc/hosts."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from switchboard.commands.doctor import asterisk_hosts_file, check_host_names, hosts_names
from switchboard.config import Settings, load_settings

GOOD = "127.0.0.1 localhost\n127.0.1.1 pbx1  # this host\n198.41.0.4 A.ROOT-SERVERS.NET a.root-servers.net\n"


def _ok(name: str, port: Any) -> list[Any]:
    return []


def test_hosts_names_ignores_comments_and_case() -> None:
    assert hosts_names(GOOD + "# 10.0.0.1 commented\n\n10.0.0.2\n") == {
        "localhost", "pbx1", "a.root-servers.net"}


def test_green_when_the_name_resolves_fast_and_asterisk_hosts_has_both(tmp_path: Path) -> None:
    hosts = tmp_path / "hosts"
    hosts.write_text(GOOD)
    check = check_host_names(Settings(), hostname="PBX1", resolve=_ok, hosts_file=hosts)
    assert check.ok and check.optional and "names both" in check.detail


def test_warns_when_asterisk_hosts_lacks_a_name(tmp_path: Path) -> None:
    hosts = tmp_path / "hosts"
    hosts.write_text("127.0.0.1 localhost\n127.0.1.1 pbx1\n")
    check = check_host_names(Settings(), hostname="pbx1", resolve=_ok, hosts_file=hosts)
    assert not check.ok and check.optional and "lacks a.root-servers.net" in check.detail
    missing = check_host_names(Settings(), hostname="pbx1", resolve=_ok, hosts_file=tmp_path / "none")
    assert not missing.ok and "none" in missing.detail


def test_warns_when_the_name_is_slow_or_does_not_resolve() -> None:
    def slow(name: str, port: Any) -> list[Any]:
        time.sleep(0.05)
        return []

    def fails(name: str, port: Any) -> list[Any]:
        raise OSError("Name or service not known")

    slow_check = check_host_names(Settings(), hostname="pbx1", resolve=slow, hosts_file=None, slow_s=0.01)
    assert not slow_check.ok and "to resolve" in slow_check.detail
    fail_check = check_host_names(Settings(), hostname="pbx1", resolve=fails, hosts_file=None)
    assert not fail_check.ok and "does not resolve" in fail_check.detail
    assert check_host_names(Settings(), hostname="pbx1", resolve=_ok, hosts_file=None).ok


def test_which_hosts_file_asterisk_reads() -> None:
    local = Settings()
    assert asterisk_hosts_file(local, {"STACK_ASTERISK_ROOT": "/srv/root"}) == Path("/srv/root/etc/hosts")
    assert asterisk_hosts_file(local, {}) == Path("/etc/hosts")                 # AMI on this host
    remote = load_settings(None, environ={}, overrides={"ami": {"host": "10.1.2.3"}})
    assert asterisk_hosts_file(remote, {}) is None                              # cannot know
