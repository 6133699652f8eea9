"""Provinces of Vietnam after the 2025 merger (34 units) and caller-id lookup.

The data is ``switchboard/data/provinces.yaml`` (its header lists the sources).
Each unit lists the pre-2025 provinces merged into it and all their landline area
codes (2017 scheme: ``0`` + area code + subscriber number, 11 digits). The 63
codes are prefix-free, so a longest-prefix match on a caller id is unambiguous.

* :func:`load_provinces` -> :class:`ProvinceTable`
* ``table.lookup_caller("+84 24 3825 1234")`` -> ``"ha-noi"`` (None for mobiles,
  foreign or unknown numbers)
* ``table.find("Thừa Thiên Huế")`` -> the Huế unit (names with or without
  diacritics, old merged names, ids and English names all work)
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import yaml

__all__ = ["Province", "ProvinceTable", "load_provinces", "normalize_name", "normalize_number"]

DATA = Path(__file__).resolve().parent / "data" / "provinces.yaml"
REGIONS = ("north", "central", "south")

# Names the units were known by that are not in merged_from.
_EXTRA_ALIASES = {"hue": ("Thừa Thiên Huế", "Thừa Thiên - Huế", "Thua Thien Hue"),
                  "ho-chi-minh": ("TP.HCM", "TPHCM", "HCMC", "Sài Gòn", "Saigon")}


@dataclass(frozen=True, slots=True)
class Province:
    id: str
    name_vi: str
    short_vi: str
    name_en: str
    kind: str                 # city | province
    region: str               # north | central | south
    subregion: str            # unverified draft plan
    seat: str
    merged_from: tuple[str, ...]
    area_codes: tuple[str, ...]   # first = the one expected to be kept


def normalize_name(name: str) -> str:
    """Case-, diacritic-, punctuation-insensitive key; drops 'Tỉnh' / 'Thành phố' / 'TP'."""
    s = unicodedata.normalize("NFD", name.replace("đ", "d").replace("Đ", "D"))
    s = "".join(ch for ch in s if unicodedata.category(ch) != "Mn").lower()
    s = re.sub(r"[^a-z0-9]+", " ", s).strip()
    s = re.sub(r"^(tinh|thanh pho|tp|province|city)\s+", "", s)
    s = re.sub(r"\s+(province|city)$", "", s)
    return s.replace(" ", "")


def normalize_number(caller_id: str) -> str | None:
    """A Vietnamese number in national form (``0...``), or None if it is not one."""
    digits = re.sub(r"[^\d+]", "", caller_id)
    if digits.startswith("+"):
        digits = digits[1:]
        if not digits.startswith("84"):
            return None
        digits = "0" + digits[2:]
    elif digits.startswith("0084"):
        digits = "0" + digits[4:]
    elif digits.startswith("84") and len(digits) in (11, 12):
        digits = "0" + digits[2:]
    if not digits.startswith("0") or not digits.isdigit():
        return None
    return digits


class ProvinceTable:
    def __init__(self, provinces: list[Province]) -> None:
        self.provinces = tuple(provinces)
        self.by_id: dict[str, Province] = {p.id: p for p in provinces}
        self._by_code: dict[str, Province] = {}
        self._by_name: dict[str, Province] = {}
        for p in provinces:
            for code in p.area_codes:
                if code in self._by_code:
                    raise ValueError(f"area code {code} listed twice")
                self._by_code[code] = p
            names = (p.id, p.name_vi, p.short_vi, p.name_en, *p.merged_from, *_EXTRA_ALIASES.get(p.id, ()))
            for n in names:
                key = normalize_name(n)
                other = self._by_name.get(key)
                if other is not None and other.id != p.id:
                    raise ValueError(f"name {n!r} would mean both {other.id} and {p.id}")
                self._by_name[key] = p
        self._code_lengths = sorted({len(c) for c in self._by_code}, reverse=True)

    def __len__(self) -> int:
        return len(self.provinces)

    def __iter__(self) -> Iterator[Province]:
        return iter(self.provinces)

    def __getitem__(self, province_id: str) -> Province:
        return self.by_id[province_id]

    @property
    def area_codes(self) -> Mapping[str, Province]:
        return self._by_code

    def region_of(self, province_id: str) -> str:
        return self.by_id[province_id].region

    def region_of_map(self) -> dict[str, str]:
        """province id -> region, what the router's policy needs."""
        return {p.id: p.region for p in self.provinces}

    def find(self, name: str) -> Province | None:
        """The unit for any of its names (current or merged, with or without diacritics), or its id."""
        return self._by_name.get(normalize_name(name))

    def lookup_caller(self, caller_id: str) -> str | None:
        """Province id from a landline caller id by its area code (longest prefix), else None."""
        number = normalize_number(caller_id)
        if number is None or len(number) < 4:
            return None
        rest = number[1:]
        for n in self._code_lengths:
            p = self._by_code.get(rest[:n])
            if p is not None:
                return p.id
        return None


def _province(raw: Mapping[str, object]) -> Province:
    def s(key: str) -> str:
        value = raw.get(key)
        if not isinstance(value, str):
            raise ValueError(f"province {raw.get('id')!r}: {key} must be a string")
        return value

    def strings(key: str) -> tuple[str, ...]:
        value = raw.get(key)
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ValueError(f"province {raw.get('id')!r}: {key} must be a list of strings")
        return tuple(value)

    p = Province(id=s("id"), name_vi=s("name_vi"), short_vi=s("short_vi"), name_en=s("name_en"),
                 kind=s("kind"), region=s("region"), subregion=s("subregion"), seat=s("seat"),
                 merged_from=strings("merged_from"), area_codes=strings("area_codes"))
    if p.region not in REGIONS:
        raise ValueError(f"province {p.id}: unknown region {p.region!r}")
    if p.kind not in ("city", "province"):
        raise ValueError(f"province {p.id}: unknown kind {p.kind!r}")
    return p


def load_provinces(path: str | Path | None = None) -> ProvinceTable:
    """The province table from ``path`` (default: the packaged data file; cached)."""
    return _load(str(path) if path is not None else str(DATA))


@cache
def _load(path: str) -> ProvinceTable:
    data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    if not isinstance(data, dict) or not isinstance(data.get("provinces"), list):
        raise ValueError(f"{path}: expected a mapping with a 'provinces' list")
    return ProvinceTable([_province(p) for p in data["provinces"]])
