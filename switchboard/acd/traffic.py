"""Demo and benchmark traffic mix: topic skills and how calls spread over provinces.

``PROVINCE_WEIGHTS`` are rounded population estimates (millions, about 2024) of
the 34 units, summed over the provinces merged into each. They only shape the
skew of simulated load (Hồ Chí Minh City and Hà Nội large, the northern
mountain provinces small); they are not official figures.
"""

from __future__ import annotations

from typing import Final

__all__ = ["PROVINCE_WEIGHTS", "TOPICS", "TOPIC_NAMES"]

#: (topic skill, share of calls)
TOPICS: Final[tuple[tuple[str, float], ...]] = (
    ("social.pension", 0.20),
    ("social.one_time", 0.12),
    ("social.voluntary", 0.08),
    ("social.sickness_maternity", 0.08),
    ("health.card", 0.18),
    ("health.reimbursement", 0.08),
    ("health.household", 0.06),
    ("unemployment.benefit", 0.12),
    ("unemployment.training", 0.03),
    ("general.info", 0.05),
)
TOPIC_NAMES: Final = tuple(t for t, _ in TOPICS)

PROVINCE_WEIGHTS: Final[dict[str, float]] = {
    "ha-noi": 8.7, "ho-chi-minh": 14.0, "hai-phong": 4.7, "da-nang": 3.1, "hue": 1.2, "can-tho": 4.2,
    "cao-bang": 0.55, "lang-son": 0.8, "lai-chau": 0.48, "dien-bien": 0.64, "son-la": 1.3,
    "quang-ninh": 1.4, "thanh-hoa": 3.8, "nghe-an": 3.5, "ha-tinh": 1.3,
    "tuyen-quang": 1.9, "lao-cai": 1.8, "thai-nguyen": 1.8, "phu-tho": 4.0, "bac-ninh": 3.6,
    "hung-yen": 3.6, "ninh-binh": 4.4, "quang-tri": 1.9, "quang-ngai": 2.2, "gia-lai": 3.6,
    "khanh-hoa": 2.2, "lam-dong": 3.9, "dak-lak": 3.3, "dong-nai": 4.5, "tay-ninh": 3.3,
    "vinh-long": 4.3, "dong-thap": 4.4, "ca-mau": 2.6, "an-giang": 4.9,
}
