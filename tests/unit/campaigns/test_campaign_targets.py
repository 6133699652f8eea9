"""Contacts from a CSV file or selected participants: every number through the number policy."""

from __future__ import annotations

import pytest

from switchboard.campaigns.targets import contacts_from_csv, contacts_from_rows
from switchboard.telephony.numbers import NumberPolicy

POLICY = NumberPolicy.create(landline_codes=["24", "28", "236"])


def test_csv_numbers_are_normalised_and_the_refused_are_reported_by_line() -> None:
    text = ("number,name,insurance_code,province,card_valid_to\n"
            "+84 912 345 678,Nguyễn Văn A,0100000001,ha-noi,2026-12-20\n"
            "19001234,Premium,,,\n"
            "0912345678,Twice,,,\n"
            "0912;345,Bad,,,\n"
            ",Empty,,,\n"
            "02439999001,Landline,,,\n"
            "+33123456789,Abroad,,,\n")
    contacts, refused = contacts_from_csv(text, POLICY)
    assert [(c.number, c.name, c.participant_id, c.province) for c in contacts] == [
        ("0912345678", "Nguyễn Văn A", "0100000001", "ha-noi"), ("02439999001", "Landline", "", "")]
    assert dict(contacts[0].data) == {"card_valid_to": "2026-12-20"}
    assert [(r.line, r.reason) for r in refused] == [
        (3, "denied_prefix"), (4, "duplicate"), (5, "malformed"), (6, "missing_number"), (8, "international")]


def test_csv_without_a_number_column_is_refused() -> None:
    with pytest.raises(ValueError, match="'number'"):
        contacts_from_csv("name\nA\n", POLICY)


def test_selected_participants_become_contacts() -> None:
    rows = [{"insurance_code": "0100000001", "full_name": "A", "phone": "0912345678", "province": "Hà Nội",
             "card_valid_to": "2026-12-20"},
            {"insurance_code": "0100000002", "full_name": "B", "phone": "1900 1234", "province": None}]
    contacts, refused = contacts_from_rows(rows, POLICY)
    assert [(c.number, c.name, c.participant_id) for c in contacts] == [("0912345678", "A", "0100000001")]
    assert dict(contacts[0].data) == {"card_valid_to": "2026-12-20"}
    assert [(r.line, r.reason) for r in refused] == [(2, "denied_prefix")]
