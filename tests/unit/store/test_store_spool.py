"""The disk spool on its own: order of segments, torn lines, size limit."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from switchboard.events import CallEvent
from switchboard.store.spool import Record, Spool, SpoolFull, decode_line, encode_line
from switchboard.store.writer import to_record


def rec(call: str, seq: int) -> Record:
    return to_record(CallEvent(call, seq, datetime(2026, 3, 2, 1, 2, 3, 456789, tzinfo=UTC), "ivr.step",
                               {"node": "menu", "vi": "Bảo hiểm xã hội", "n": 1.5}))


def replay(sp: Spool) -> list[tuple[str, int]]:
    return [(r[0], r[1]) for seg in sp.segments() for r in sp.read(seg)]


def test_line_roundtrip_keeps_every_field() -> None:
    r = rec("c-1", 7)
    assert decode_line(encode_line(r)) == r


def test_batches_replay_in_order_across_segments(tmp_path: Path) -> None:
    sp = Spool(tmp_path, max_bytes=10**6, segment_bytes=300)
    sp.open()
    for order in range(1, 6):
        sp.append(order, [rec("a", order * 2 - 1), rec("a", order * 2)])
    assert len(sp.segments()) > 1  # rolled over by size
    assert replay(sp) == [("a", i) for i in range(1, 11)]


def test_overtaking_batch_sorts_before_later_ones(tmp_path: Path) -> None:
    """Batch 2 is in flight when the queue overflows as batch 3; batch 2 then fails and is spooled."""
    sp = Spool(tmp_path, max_bytes=10**6)
    sp.open()
    sp.append(1, [rec("a", 1)])
    sp.append(3, [rec("a", 3)], fresh_file=True)   # overflow spill: always a new file
    sp.append(2, [rec("a", 2)])                    # older than segment 3's content: new file "2"
    sp.append(4, [rec("a", 4)])                    # appended to the newest segment
    assert replay(sp) == [("a", 1), ("a", 2), ("a", 3), ("a", 4)]


def test_reopen_never_appends_to_old_files_and_orders_after_them(tmp_path: Path) -> None:
    sp = Spool(tmp_path, max_bytes=10**6)
    sp.open()
    sp.append(5, [rec("a", 1)])
    sp2 = Spool(tmp_path, max_bytes=10**6)
    sp2.open()
    assert sp2.has_data() and sp2.next_order_floor() == 6
    sp2.append(sp2.next_order_floor(), [rec("a", 2)])
    assert sp2.segments() == [5, 6]
    assert replay(sp2) == [("a", 1), ("a", 2)]


def test_torn_and_corrupt_lines_are_skipped_not_fatal(tmp_path: Path) -> None:
    sp = Spool(tmp_path, max_bytes=10**6)
    sp.open()
    sp.append(1, [rec("a", 1), rec("a", 2)])
    path = next(tmp_path.glob("*.jsonl"))
    with path.open("ab") as f:
        f.write(b'{"broken"}\n')
        f.write(encode_line(rec("a", 3)))
        f.write(encode_line(rec("a", 4))[:-9])  # crash in the middle of a write
    assert [r[1] for r in sp.read(1)] == [1, 2, 3]
    assert sp.corrupt_lines == 1


def test_size_limit_refuses_and_near_full_reports(tmp_path: Path) -> None:
    line = len(encode_line(rec("a", 1)))
    sp = Spool(tmp_path, max_bytes=line * 5)
    sp.open()
    sp.append(1, [rec("a", i) for i in range(1, 5)])
    assert sp.near_full and sp.bytes == line * 4
    with pytest.raises(SpoolFull):
        sp.append(2, [rec("a", 5), rec("a", 6)])
    assert sp.bytes == line * 4 == os.path.getsize(next(tmp_path.glob("*.jsonl")))
    sp.seal(1)
    sp.remove(1)
    assert not sp.has_data() and sp.bytes == 0 and not sp.near_full


def test_to_record_refuses_unstorable_events() -> None:
    now = datetime.now(UTC)
    with pytest.raises(ValueError):
        to_record(CallEvent("", 1, now, "x"))
    with pytest.raises(ValueError):
        to_record(CallEvent("c", 2**31, now, "x"))
    with pytest.raises(ValueError):
        to_record(CallEvent("c", 1, now, "x", {"v": float("nan")}))
    with pytest.raises(TypeError):
        to_record(CallEvent("c", 1, now, "x", {"v": object()}))
