"""Province data invariants and caller-id lookup."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from switchboard.geo import DATA, load_provinces, normalize_number

TABLE = load_provinces()


def test_34_units_6_cities_28_provinces() -> None:
    assert len(TABLE) == 34
    kinds = Counter(p.kind for p in TABLE)
    assert kinds == {"city": 6, "province": 28}
    assert {p.id for p in TABLE if p.kind == "city"} == {
        "ha-noi", "ho-chi-minh", "hai-phong", "da-nang", "hue", "can-tho"}
    assert len({p.id for p in TABLE}) == 34


def test_63_old_provinces_and_63_codes_each_exactly_once() -> None:
    old = [name for p in TABLE for name in p.merged_from]
    assert len(old) == 63 and len(set(old)) == 63
    codes = [c for p in TABLE for c in p.area_codes]
    assert len(codes) == 63 and len(set(codes)) == 63
    # 11 units unchanged, 23 merged from 52 old provinces
    assert sum(1 for p in TABLE if len(p.merged_from) == 1) == 11
    assert sum(len(p.merged_from) for p in TABLE if len(p.merged_from) > 1) == 52
    for p in TABLE:
        assert p.region in ("north", "central", "south")
        assert len(p.area_codes) == len(p.merged_from), p.id


def test_codes_are_prefix_free_and_well_formed() -> None:
    codes = [c for p in TABLE for c in p.area_codes]
    for a in codes:
        assert a.isdigit() and len(a) in (2, 3) and a.startswith("2")
        for b in codes:
            assert a == b or not b.startswith(a), (a, b)


def test_data_file_carries_its_sources() -> None:
    text = Path(DATA).read_text(encoding="utf-8")
    assert "Resolution 202/2025/QH15" in text and "SOURCES" in text and "# unverified" in text


@pytest.mark.parametrize(("number", "province"), [
    ("02438251234", "ha-noi"),
    ("+84 24 3825 1234", "ha-noi"),
    ("842838251234", "ho-chi-minh"),
    ("0084 274 3822 123", "ho-chi-minh"),   # old Bình Dương code -> HCMC
    ("0254 3852 123", "ho-chi-minh"),       # old Bà Rịa - Vũng Tàu
    ("02343822123", "hue"),
    ("02193822123", "tuyen-quang"),         # old Hà Giang
    ("0297 3862 123", "an-giang"),          # old Kiên Giang
    ("0236-3822-123", "da-nang"),
])
def test_lookup_landlines(number: str, province: str) -> None:
    assert TABLE.lookup_caller(number) == province


@pytest.mark.parametrize("number", ["0912345678", "+84912345678", "0388888888", "+14155550100", "", "abc",
                                    "1900 9068", "0"])
def test_lookup_non_landlines_is_none(number: str) -> None:
    assert TABLE.lookup_caller(number) is None


def test_every_code_maps_to_its_unit() -> None:
    for p in TABLE:
        for code in p.area_codes:
            number = "0" + code + "1" * (10 - len(code))
            assert len(number) == 11
            assert TABLE.lookup_caller(number) == p.id


def test_find_by_names() -> None:
    hue = TABLE.find("Thừa Thiên Huế")
    assert hue is not None and hue.id == "hue"
    assert TABLE.find("Thành phố Huế") is hue and TABLE.find("Hue") is hue
    assert TABLE.find("Bình Dương").id == "ho-chi-minh"  # type: ignore[union-attr]
    assert TABLE.find("tinh dak lak").id == "dak-lak"  # type: ignore[union-attr]
    assert TABLE.find("Đắk Nông").id == "lam-dong"  # type: ignore[union-attr]
    assert TABLE.find("Atlantis") is None
    assert TABLE.region_of("hue") == "central"
    assert TABLE.region_of_map()["can-tho"] == "south"


def test_normalize_number() -> None:
    assert normalize_number("+84 (24) 3825-1234") == "02438251234"
    assert normalize_number("+33 1 23") is None
