"""The writer's disk spool: ordered, append-only segment files of JSON lines.

Used when PostgreSQL is unreachable (or the in-memory queue is full). Each
append is one batch, written with a single ``write`` and ``fsync``'d before it
returns; a batch that fails half-way is truncated back off the file. Segment
files are named by the order number of their first batch and replayed in name
order, oldest first; a segment is deleted only after all its events are in
the database (replaying it twice is harmless: inserts are idempotent).

Order rule: a batch is appended to the newest segment only when it is newer
than everything in it; otherwise it starts a new file, whose name (its own
order number) sorts it into place. ``fresh_file=True`` forces a new file (used
by the queue-overflow path, which may overtake a batch still in flight).

This module does blocking file I/O; the writer calls it from a worker thread
(or, on the rare overflow path, directly). A lock serialises it.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from datetime import datetime
from pathlib import Path
from typing import Any

from switchboard.store.errors import StoreError

log = logging.getLogger("switchboard.store.spool")

# (call_id, seq, ts, kind, data as a JSON text)
Record = tuple[str, int, datetime, str, str]

SUFFIX = ".jsonl"
NEAR_FULL_RATIO = 0.8


class SpoolFull(StoreError):
    """Appending would push the spool past its size limit."""


def encode_line(rec: Record) -> bytes:
    call_id, seq, ts, kind, data_json = rec
    return (
        f'[{json.dumps(call_id, ensure_ascii=False)},{seq},"{ts.isoformat()}",'
        f"{json.dumps(kind, ensure_ascii=False)},{data_json}]\n"
    ).encode()


def decode_line(line: bytes) -> Record:
    call_id, seq, ts, kind, data = json.loads(line)
    return (
        str(call_id), int(seq), datetime.fromisoformat(ts), str(kind),
        json.dumps(data, ensure_ascii=False, separators=(",", ":")),
    )


class Spool:
    def __init__(self, directory: str | os.PathLike[str], *, max_bytes: int,
                 segment_bytes: int = 16 * 1024 * 1024) -> None:
        self.directory = Path(directory)
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes
        self._lock = threading.Lock()
        self._sizes: dict[int, int] = {}      # segment name (order) -> bytes
        self._open: tuple[int, int] | None = None  # (segment, highest order in it) open for appends
        self.corrupt_lines = 0

    # -- state -------------------------------------------------------------

    def open(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        with self._lock:
            self._sizes.clear()
            for p in self.directory.glob("*" + SUFFIX):
                try:
                    self._sizes[int(p.stem)] = p.stat().st_size
                except ValueError:
                    log.warning("ignoring unexpected file in spool: %s", p)
            self._open = None  # never append to files from an earlier run
        if self._sizes:
            log.warning("spool holds %d segment(s), %d bytes from an earlier run: replaying them first",
                        len(self._sizes), self.bytes)

    @property
    def bytes(self) -> int:
        return sum(self._sizes.values())

    @property
    def near_full(self) -> bool:
        return self.bytes >= self.max_bytes * NEAR_FULL_RATIO

    def has_data(self) -> bool:
        return bool(self._sizes)

    def segments(self) -> list[int]:
        with self._lock:
            return sorted(self._sizes)

    def next_order_floor(self) -> int:
        """An order number above every segment already on disk."""
        return max(self._sizes, default=0) + 1

    def _path(self, segment: int) -> Path:
        return self.directory / f"{segment:020d}{SUFFIX}"

    # -- writing -------------------------------------------------------------

    def append(self, order: int, records: list[Record], *, fresh_file: bool = False) -> int:
        """Append one batch durably; returns the bytes written. Raises SpoolFull / OSError."""
        payload = b"".join(encode_line(r) for r in records)
        with self._lock:
            if self.bytes + len(payload) > self.max_bytes:
                raise SpoolFull(f"spool at {self.bytes} bytes, limit {self.max_bytes}: "
                                f"cannot take {len(records)} more events")
            target = order
            if (
                not fresh_file
                and self._open is not None
                and self._open[0] == max(self._sizes, default=-1)
                and order > self._open[1]
                and self._sizes.get(self._open[0], 0) < self.segment_bytes
            ):
                target = self._open[0]
            path = self._path(target)
            new_file = target not in self._sizes
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            try:
                before = os.fstat(fd).st_size
                try:
                    written = os.write(fd, payload)
                    if written != len(payload):
                        raise OSError(f"short write to {path}: {written} of {len(payload)} bytes")
                    os.fsync(fd)
                except OSError:
                    os.ftruncate(fd, before)  # never leave half a batch behind
                    raise
            finally:
                os.close(fd)
            if new_file:
                self._fsync_dir()
            self._sizes[target] = before + len(payload)
            if target == max(self._sizes):
                prev_max = self._open[1] if self._open and self._open[0] == target else -1
                self._open = (target, max(order, prev_max))
            elif self._open is not None and self._open[0] != max(self._sizes):
                self._open = None
        if self.near_full:
            log.error("SPOOL NEAR FULL: %d of %d bytes used in %s (database unreachable?)",
                      self.bytes, self.max_bytes, self.directory)
        return len(payload)

    def _fsync_dir(self) -> None:
        fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    # -- replay --------------------------------------------------------------

    def seal(self, segment: int) -> None:
        """No further appends to this segment (it is about to be replayed)."""
        with self._lock:
            if self._open is not None and self._open[0] == segment:
                self._open = None

    def read(self, segment: int) -> list[Record]:
        data = self._path(segment).read_bytes()
        records: list[Record] = []
        lines = data.split(b"\n")
        tail = lines.pop()  # b"" when the file ends with a newline
        if tail:
            log.warning("spool segment %d ends with a torn line (%d bytes): ignored", segment, len(tail))
        for i, line in enumerate(lines):
            if not line:
                continue
            try:
                records.append(decode_line(line))
            except (ValueError, TypeError) as exc:
                self.corrupt_lines += 1
                log.error("spool segment %d line %d is corrupt (%s): skipped", segment, i + 1, exc)
        return records

    def remove(self, segment: int) -> None:
        with self._lock:
            self._path(segment).unlink(missing_ok=True)
            self._sizes.pop(segment, None)
            if self._open is not None and self._open[0] == segment:
                self._open = None

    def stats(self) -> dict[str, Any]:
        return {"segments": len(self._sizes), "bytes": self.bytes, "near_full": self.near_full}
