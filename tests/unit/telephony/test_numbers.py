"""The number policy: what may be dialled, normalised, and why the rest is refused."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from switchboard.config import NumberSettings, load_settings
from switchboard.geo import load_provinces
from switchboard.telephony.numbers import CallbackNumbers, DailyCap, NumberPolicy, Refusal, masked

CODES = tuple(load_provinces().area_codes)
POLICY = NumberPolicy.from_settings(NumberSettings(), landline_codes=CODES)
VN = ZoneInfo("Asia/Ho_Chi_Minh")


@pytest.mark.parametrize(("raw", "number", "kind"), [
    ("0912345678", "0912345678", "mobile"),
    ("+84912345678", "0912345678", "mobile"),
    ("84912345678", "0912345678", "mobile"),
    ("0084912345678", "0912345678", "mobile"),
    ("+84 91 234-5678", "0912345678", "mobile"),
    ("0386.123.456", "0386123456", "mobile"),
    ("0523456789", "0523456789", "mobile"),
    ("0778123456", "0778123456", "mobile"),
    ("0838200001", "0838200001", "mobile"),
    ("02838200001", "02838200001", "landline"),       # Hồ Chí Minh City, 028
    ("+842438200001", "02438200001", "landline"),     # Hà Nội, 024
    ("842363123456", "02363123456", "landline"),      # Đà Nẵng, 236
])
def test_subscriber_numbers_are_accepted_in_national_form(raw: str, number: str, kind: str) -> None:
    d = POLICY.check(raw)
    assert (d.ok, d.number, d.kind, d.reason) == (True, number, kind, "")
    assert POLICY.dial_string(d) == number


@pytest.mark.parametrize(("raw", "reason"), [
    ("", "empty"), ("unknown", "empty"), ("anonymous", "empty"), (None, "empty"),
    ("19001234", "denied_prefix"), ("1900123456", "denied_prefix"), ("18001091", "denied_prefix"),
    ("0912&PJSIP/agent1001@trunk", "malformed"), ("0912345678&PJSIP/agent1003", "malformed"),
    ("0912,,U(sub)", "malformed"), ("0912345678,30,U(sub)", "malformed"),
    ('0912" SB_NEXT "transfer', "malformed"), ("0912\n345678", "malformed"), ("091234567x", "malformed"),
    ("0912;345678", "malformed"), ("0912345678" * 3, "malformed"), ("++84912345678", "malformed"),
    ("+14155550100", "international"), ("+85512345678", "international"), ("0014155550100", "international"),
    ("113", "short_code"), ("1080", "short_code"), ("9029", "short_code"),
    ("0212345678", "not_subscriber"),       # 02x with 10 digits: no such landline length
    ("0612345678", "not_subscriber"),       # 06x is no mobile range
    ("091234567", "not_subscriber"), ("09123456789", "not_subscriber"),
    ("02958200001", "not_subscriber"),      # 0295…: 295 is no area code
    ("0812", "not_subscriber"), ("12345678", "not_subscriber"),
])
def test_everything_else_is_refused_with_a_reason(raw: str | None, reason: str) -> None:
    d = POLICY.check(raw)
    assert not d.ok and d.reason == reason, d
    with pytest.raises(ValueError):
        POLICY.dial_string(d)


def test_the_deny_list_names_its_prefix_and_wins_over_the_allow_list() -> None:
    p = NumberPolicy.create(landline_codes=CODES, allow_prefixes=("1900",), deny_prefixes=("1900", "0869"))
    assert (p.check("19009068").reason, p.check("19009068").detail) == ("denied_prefix", "1900")
    assert p.check("+84869123456").reason == "denied_prefix"          # normalised before matching
    assert p.check("0912345678").ok


def test_the_allow_list_widens_the_default() -> None:
    p = NumberPolicy.create(landline_codes=CODES, allow_prefixes=("1800", "+855"), deny_prefixes=())
    assert p.check("18001091").ok and p.check("18001091").kind == "allowed"
    assert p.check("+85512345678").ok and p.dial_string(p.check("+85512345678")) == "+85512345678"
    assert p.check("+14155550100").reason == "international"
    assert NumberPolicy.create(landline_codes=CODES, allow_prefixes=("+84912",)).allow_prefixes == ("0912",)


def test_e164_dial_format() -> None:
    p = NumberPolicy.create(landline_codes=CODES, dial_format="e164")
    assert p.dial_string(p.check("0912345678")) == "+84912345678"
    with pytest.raises(ValueError):
        NumberPolicy.create(landline_codes=CODES, dial_format="tel")
    with pytest.raises(ValueError):
        NumberPolicy.create(landline_codes=CODES, deny_prefixes=("19x0",))


_HOSTILE = st.text(alphabet=st.sampled_from("0123456789+&,;()/@\"'\\ \t\r\nUPJSIabc|$-.{}"), max_size=30)


@given(_HOSTILE)
def test_whatever_is_accepted_is_only_digits_and_a_leading_plus(raw: str) -> None:
    d = POLICY.check(raw)
    if d.ok:
        dial = POLICY.dial_string(d)
        assert dial.lstrip("+").isdigit() and dial.count("+") <= 1
        assert not set(raw) & set("&,;()/@\"'\\\t\r\n|$UPJSIabc{}")
    else:
        assert d.refusal in Refusal


@given(st.sampled_from(["03", "05", "07", "08", "09"]), st.text(alphabet="0123456789", min_size=8, max_size=8),
       st.sampled_from(["0", "+84", "84", "0084"]))
def test_every_mobile_number_in_any_written_form_is_the_same_number(prefix: str, rest: str, form: str) -> None:
    national = prefix + rest
    d = POLICY.check(form + national[1:])
    assert d.ok and d.number == national and d.kind == "mobile"


@given(st.sampled_from(CODES), st.integers(min_value=0, max_value=10**8 - 1))
def test_every_landline_of_the_area_code_list_is_accepted(code: str, subscriber: int) -> None:
    width = 10 - len(code)
    number = "0" + code + f"{subscriber % 10**width:0{width}d}"
    d = POLICY.check(number)
    assert d.ok and d.kind == "landline" and d.number == number


def test_daily_cap_counts_per_number_and_local_day() -> None:
    gate = CallbackNumbers(POLICY, DailyCap(2, VN))
    t = datetime(2026, 11, 30, 16, 30, tzinfo=UTC)               # 23:30 in Việt Nam
    for _ in range(2):
        assert gate.decide("0912345678", t).ok
        gate.grant("0912345678", t)
    refused = gate.decide("+84912345678", t)                      # the same number, written otherwise
    assert (refused.reason, refused.number, refused.detail) == ("daily_cap", "0912345678", "2")
    assert gate.decide("0912345679", t).ok                        # another number
    assert gate.decide("0912345678", t, count=False).ok           # a check that takes nothing
    assert gate.decide("0912345678", t + timedelta(hours=1)).ok   # 00:30 the next local day
    assert gate.decide("19001234", t).reason == "denied_prefix"   # the policy first


def test_daily_cap_seeded_from_the_database_survives_a_restart() -> None:
    t = datetime(2026, 11, 30, 3, 0, tzinfo=UTC)
    cap = DailyCap(3, VN)
    cap.seed({"0912345678": 3, "02838200001": 1}, t)
    assert not cap.allows("0912345678", t) and cap.allows("02838200001", t)
    assert DailyCap(0, VN).allows("0912345678", t)                # 0 = no cap


def test_settings_section(tmp_path: object) -> None:
    s = load_settings(environ={"SWITCHBOARD_NUMBERS_DENY_PREFIXES": "1900, 1800,+1",
                               "SWITCHBOARD_NUMBERS_CALLBACKS_PER_DAY": "5"})
    assert s.numbers.deny_prefixes == ("1900", "1800", "+1") and s.numbers.callbacks_per_day == 5
    assert load_settings(environ={}, overrides={"numbers": {"allow_prefixes": ["1800"]}}).numbers.allow_prefixes \
        == ("1800",)
    with pytest.raises(ValueError, match=r"numbers\.dial_format"):
        load_settings(environ={}, overrides={"numbers": {"dial_format": "sip"}})
    with pytest.raises(ValueError, match="list of strings"):
        load_settings(environ={}, overrides={"numbers": {"deny_prefixes": [1900]}})


def test_a_masked_number_shows_its_first_and_last_three_digits_only() -> None:
    assert masked("0912345678") == "091****678"
    assert masked("+84912345678") == "+849*****678"
    assert masked("0912 345 678") == "091****678"
    assert masked("12345") == "***45"
    assert masked("") == ""
