"""Pause reasons and wrap-up dispositions, with the digits agents dial after *21."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ReasonCode:
    code: str
    digit: str
    label_vi: str
    label_en: str


PAUSE_REASONS: tuple[ReasonCode, ...] = (
    ReasonCode("break", "1", "Nghỉ giải lao", "Break"),
    ReasonCode("lunch", "2", "Nghỉ trưa", "Lunch"),
    ReasonCode("meeting", "3", "Họp", "Meeting"),
    ReasonCode("training", "4", "Đào tạo", "Training"),
    ReasonCode("backoffice", "5", "Xử lý hồ sơ", "Back-office work"),
    ReasonCode("no-answer", "", "Không trả lời cuộc gọi", "Missed offers (automatic)"),
)

DISPOSITIONS: tuple[ReasonCode, ...] = (
    ReasonCode("resolved", "1", "Đã giải đáp", "Resolved"),
    ReasonCode("info", "2", "Cung cấp thông tin", "Information given"),
    ReasonCode("follow_up", "3", "Cần xử lý tiếp", "Follow-up needed"),
    ReasonCode("referred", "4", "Chuyển cơ quan BHXH địa phương", "Referred to the local office"),
    ReasonCode("complaint", "5", "Khiếu nại", "Complaint"),
    ReasonCode("wrong_number", "6", "Gọi nhầm", "Wrong number"),
)


def pause_reason_for_digit(digit: str) -> str | None:
    for r in PAUSE_REASONS:
        if r.digit and r.digit == digit:
            return r.code
    return None


def is_pause_reason(code: str) -> bool:
    return any(r.code == code for r in PAUSE_REASONS)


def is_disposition(code: str) -> bool:
    return any(r.code == code for r in DISPOSITIONS)
