"""Demo CRM rows (``switchboard migrate --seed-demo``): made-up participants for
the IVR lookup. Names, codes and phones are fictional."""

from __future__ import annotations

from datetime import date

import asyncpg

# insurance_code, full_name, phone, province, birth_date, status, months, last_contribution, card_valid_to, employer
DEMO_PARTICIPANTS: tuple[tuple[str, str, str, str, date, str, int, date | None, date | None, str | None], ...] = (
    ("0100000001", "Nguyễn Văn An", "0901000001", "Hà Nội", date(1985, 3, 12), "active", 180, date(2025, 6, 1), date(2026, 12, 31), "Công ty May Thăng Long"),
    ("0100000002", "Trần Thị Bình", "0901000002", "Hà Nội", date(1990, 7, 5), "paused", 96, date(2024, 11, 1), date(2025, 12, 31), None),
    ("7900000003", "Lê Minh Châu", "0901000003", "Thành phố Hồ Chí Minh", date(1978, 1, 20), "active", 300, date(2025, 6, 1), date(2026, 12, 31), "Công ty Điện tử Sài Gòn"),
    ("7900000004", "Phạm Quốc Dũng", "0901000004", "Thành phố Hồ Chí Minh", date(1962, 9, 30), "retired", 372, date(2022, 9, 1), date(2026, 12, 31), None),
    ("4800000005", "Hoàng Thị Em", "0901000005", "Đà Nẵng", date(1995, 4, 18), "active", 60, date(2025, 6, 1), date(2026, 6, 30), "Khách sạn Biển Xanh"),
    ("3100000006", "Vũ Văn Phúc", "0901000006", "Hải Phòng", date(1988, 12, 2), "stopped", 84, date(2023, 3, 1), None, None),
    ("9200000007", "Đặng Thị Giang", "0901000007", "Cần Thơ", date(1992, 6, 14), "active", 120, date(2025, 6, 1), date(2026, 12, 31), "Công ty Thủy sản Tây Đô"),
    ("4600000008", "Bùi Văn Hải", "0901000008", "Huế", date(1975, 8, 8), "active", 240, date(2025, 5, 1), date(2026, 12, 31), "Bệnh viện Trung ương Huế"),
    ("2200000009", "Đỗ Thị Hoa", "0901000009", "Quảng Ninh", date(1983, 2, 27), "active", 200, date(2025, 6, 1), date(2026, 12, 31), "Công ty Than Hạ Long"),
    ("3800000010", "Ngô Văn Khánh", "0901000010", "Thanh Hóa", date(1999, 11, 11), "paused", 30, date(2025, 1, 1), date(2025, 9, 30), None),
    ("4000000011", "Dương Thị Lan", "0901000011", "Nghệ An", date(1970, 5, 3), "active", 330, date(2025, 6, 1), date(2026, 12, 31), "Trường THPT Vinh"),
    ("6600000012", "Lý Văn Mạnh", "0901000012", "Đắk Lắk", date(1987, 10, 19), "active", 150, date(2025, 6, 1), date(2026, 12, 31), "Công ty Cà phê Buôn Ma Thuột"),
    ("7500000013", "Mai Thị Ngọc", "0901000013", "Đồng Nai", date(1993, 3, 9), "active", 90, date(2025, 6, 1), date(2026, 12, 31), "Khu công nghiệp Biên Hòa"),
    ("5600000014", "Trịnh Văn Oanh", "0901000014", "Khánh Hòa", date(1965, 1, 1), "retired", 360, date(2023, 1, 1), date(2026, 12, 31), None),
    ("8600000015", "Phan Thị Phương", "0901000015", "Vĩnh Long", date(1997, 7, 7), "active", 48, date(2025, 6, 1), date(2026, 12, 31), "Công ty Gạch Vĩnh Long"),
    ("1900000016", "Hồ Văn Quang", "0901000016", "Thái Nguyên", date(1980, 4, 4), "stopped", 110, date(2021, 12, 1), None, None),
    ("3000000017", "Tạ Thị Rạng", "0901000017", "Hưng Yên", date(1991, 9, 9), "active", 100, date(2025, 6, 1), date(2026, 12, 31), "Công ty Dệt Phố Hiến"),
    ("9600000018", "Châu Văn Sơn", "0901000018", "Cà Mau", date(1984, 6, 6), "active", 170, date(2025, 6, 1), date(2026, 12, 31), "Công ty Tôm Cà Mau"),
    ("6800000019", "Kiều Thị Thảo", "0901000019", "Lâm Đồng", date(1989, 12, 12), "paused", 70, date(2024, 8, 1), date(2025, 8, 31), None),
    ("2000000020", "La Văn Uy", "0901000020", "Lạng Sơn", date(1972, 2, 2), "active", 280, date(2025, 6, 1), date(2026, 12, 31), "Cửa khẩu Hữu Nghị"),
)


async def seed_demo(conn: asyncpg.Connection, *, timeout: float = 30.0) -> int:
    """Insert (or refresh) the demo participants; returns how many rows were written."""
    await conn.executemany(
        """
        INSERT INTO participants (insurance_code, full_name, phone, province, birth_date,
                                  contribution_status, months_contributed, last_contribution,
                                  health_card_valid_to, employer)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
        ON CONFLICT (insurance_code) DO UPDATE SET
            full_name = EXCLUDED.full_name, phone = EXCLUDED.phone, province = EXCLUDED.province,
            birth_date = EXCLUDED.birth_date, contribution_status = EXCLUDED.contribution_status,
            months_contributed = EXCLUDED.months_contributed, last_contribution = EXCLUDED.last_contribution,
            health_card_valid_to = EXCLUDED.health_card_valid_to, employer = EXCLUDED.employer,
            updated_at = now()
        """,
        DEMO_PARTICIPANTS,
        timeout=timeout,
    )
    return len(DEMO_PARTICIPANTS)
