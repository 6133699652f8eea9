"""The pure guards against hostile input (switchboard.api.guards), and the routes that use them."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest
from api_fakes import Client, Tokens, bearer

from switchboard.api import guards
from switchboard.api.errors import ValidationFailed
from switchboard.config import ConfigError, load_settings

# ----------------------------------------------------------------- JSON depth


def test_json_depth_counts_nesting_and_skips_strings() -> None:
    assert guards.json_depth("{}") == 1
    assert guards.json_depth('{"a": [1, {"b": []}]}') == 4
    deep_in_string = json.dumps({"s": "[" * 5000 + '\\"{' * 100})
    assert guards.json_depth(deep_in_string) == 1
    assert guards.json_depth("[" * 100_000) == 100_000
    assert guards.json_depth(b"[" * 40 + b"]" * 40) == 40


def test_parse_json_refuses_deep_documents_without_recursing() -> None:
    with pytest.raises(ValidationFailed) as err:
        guards.parse_json("[" * 100_000)
    assert err.value.error_id == "invalid-json" and err.value.status == 400
    with pytest.raises(ValidationFailed):
        guards.parse_json("[" * 33 + "]" * 33)
    assert guards.parse_json("[" * 32 + "]" * 32) == [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]
    with pytest.raises(ValidationFailed):
        guards.parse_json(b"{not json")
    assert guards.parse_json('{"token": "x\\u0000y"}') == {"token": "x\x00y"}


# ----------------------------------------------------------------- limiter keys and addresses


def test_claimed_principal_is_the_token_id_never_the_secret() -> None:
    token = "sb_0123456789ab." + "S" * 43
    assert guards.claimed_principal(token) == "token:0123456789ab"
    assert guards.claimed_principal(token, "a1") == "token:0123456789ab"
    assert guards.claimed_principal("garbage", "a1") == "agent:a1"
    assert guards.claimed_principal("garbage") == "-"
    assert "S" * 10 not in guards.limiter_key(guards.claimed_principal(token), "10.0.0.7")


def test_limiter_keys_differ_by_principal_and_by_address() -> None:
    a = guards.limiter_key("token:aaaaaaaaaaaa", "10.0.0.1")
    assert a != guards.limiter_key("token:bbbbbbbbbbbb", "10.0.0.1")
    assert a != guards.limiter_key("token:aaaaaaaaaaaa", "10.0.0.2")
    assert a == guards.limiter_key("token:aaaaaaaaaaaa", "10.0.0.1")


def test_forwarded_for_is_believed_only_from_trusted_proxies() -> None:
    trusted = guards.parse_networks(["10.0.0.0/8", "::1"])
    # an untrusted peer cannot choose its address by sending the header
    assert guards.client_address("203.0.113.9", ["1.2.3.4"], trusted) == "203.0.113.9"
    # a trusted proxy: the right-most address that is not a proxy
    assert guards.client_address("10.0.0.2", ["198.51.100.7"], trusted) == "198.51.100.7"
    assert guards.client_address("10.0.0.2", ["6.6.6.6, 198.51.100.7, 10.0.0.3"], trusted) == "198.51.100.7"
    assert guards.client_address("10.0.0.2", ["6.6.6.6", "198.51.100.7"], trusted) == "198.51.100.7"
    # no header, garbage in the chain, or only proxies
    assert guards.client_address("10.0.0.2", [], trusted) == "10.0.0.2"
    assert guards.client_address("10.0.0.2", ["not-an-ip"], trusted) == "10.0.0.2"
    assert guards.client_address("10.0.0.2", ["10.0.0.5"], trusted) == "10.0.0.5"
    assert guards.client_address("::1", ["2001:db8::1"], trusted) == "2001:db8::1"
    assert guards.client_address(None, ["1.2.3.4"], ()) == "unknown"


def test_trusted_proxies_setting_from_toml_list_and_environment() -> None:
    s = load_settings(environ={"SWITCHBOARD_HTTP_TRUSTED_PROXIES": "10.0.0.1, 192.168.0.0/16",
                               "SWITCHBOARD_HTTP_SECURE_COOKIES": "yes"})
    assert s.http.trusted_proxies == ("10.0.0.1", "192.168.0.0/16") and s.http.secure_cookies is True
    assert load_settings(environ={}).http.trusted_proxies == ()
    with pytest.raises(ConfigError):
        load_settings(environ={"SWITCHBOARD_HTTP_TRUSTED_PROXIES": "10.0.0.300"})


# ----------------------------------------------------------------- dates and offsets


def test_dates_outside_the_supported_years_are_refused() -> None:
    assert guards.check_date("2026-05-04", "day") == date(2026, 5, 4)
    for bad in ("9999-12-31", "0001-01-01", "2026-02-30", "x"):
        with pytest.raises(ValidationFailed) as err:
            guards.check_date(bad, "day")
        assert err.value.status == 400 and err.value.details["problems"][0]["field"] == "day"


def test_ranges_are_ordered_and_at_most_366_days() -> None:
    assert guards.check_range(date(2024, 1, 1), date(2024, 12, 31)) == (date(2024, 1, 1), date(2024, 12, 31))
    with pytest.raises(ValidationFailed):
        guards.check_range(date(2024, 1, 1), date(2025, 1, 1))   # 367 days
    with pytest.raises(ValidationFailed):
        guards.check_range(date(2024, 1, 2), date(2024, 1, 1))


@pytest.mark.parametrize("path", [
    "/api/agents/a1/figures?day=9999-12-31",
    "/api/calls?to=9999-12-31",
    "/api/calls?from=2026-01-02&to=2026-01-01",
    f"/api/calls?offset={2**63}",
    "/api/calls?offset=" + "9" * 5000,
    "/api/reports/daily-summary?to=9999-12-31",
    "/api/reports/daily-summary?from=2024-01-01&to=2025-06-01",
    "/api/reports/daily-summary?from=2026-01-02&to=2026-01-01",
    "/api/reports/daily-summary?to=2001-01-01",    # from defaults to today: reversed
])
async def test_hostile_query_values_are_400_with_problems(client: Client, tokens: Tokens, path: str) -> None:
    resp = await client.get(path, headers=bearer(tokens.admin if "reports" in path else tokens.a1))
    body = await resp.json()
    assert resp.status == 400, body
    assert body["error_id"] == "invalid-request" and body["details"]["problems"]


async def test_deep_json_body_is_400_even_without_a_token(client: Client) -> None:
    resp = await client.post("/api/session", data="[" * 100_000, headers={"Content-Type": "application/json"})
    body = await resp.json()
    assert resp.status == 400 and body["error_id"] == "invalid-json"


async def test_deep_yaml_flow_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    from switchboard.api.pg_services import RegistryFlowService
    from switchboard.ivr.registry import FlowRegistry

    service = RegistryFlowService(FlowRegistry(str(tmp_path), str(tmp_path)))
    for source in ("a: " + "[" * 100_000, "\n".join(" " * i + "- x:" for i in range(1500))):
        result = await service.validate(source, name="deep")
        assert not result.ok and result.problems
