"""SQL that writes one batch of call events and keeps the ``calls`` row current.

The batch is COPY'd into a session temp table, then ``WRITE_BATCH`` inserts it
into ``call_events`` with ``ON CONFLICT DO NOTHING`` and, from the rows that
were *really* inserted (``RETURNING``), upserts ``calls``, ``callbacks`` and
``surveys``. A replayed event therefore changes nothing, counters included.

The writer's usual path splits that in two statements of one transaction, so that
two batches can overlap on two connections (``writer``): ``INSERT_EVENTS`` inserts
the staged events (no ``ON CONFLICT``: one already stored fails it), and only when
it inserted every staged row does ``UPDATE_SIDE_TABLES`` derive the side tables
from the staged rows, the same rows ``WRITE_BATCH`` would have derived them from.
Otherwise the transaction is rolled back and the batch written with ``WRITE_BATCH``.

A call has one ``call.started``: one arriving for a call whose ``call.started`` is
stored is not inserted (counted as a duplicate). Two owners can each write one: a
leader cut from PostgreSQL spools the ``call.started`` of a caller that arrived
during the cut, the instance that takes over adopts the caller and, finding none
stored, writes its own; the spool replayed later must not add a second.

Field rules for ``calls`` (see docs/reports.md):
* first-wins: started_at, queue_joined_at, answered_at (the first time it happened);
* last-wins (newer event overrides): everything else taken from event data. "Newer"
  is the higher ``seq``, not the later batch: ``calls.last_seq`` keeps, per column,
  the seq of the event that set it (an int[], positions in ``LAST_SEQ_COLUMNS``), and
  a batch sets a column only with an event of a higher seq. A leader fenced while
  cut from PostgreSQL replays its spool after the new leader wrote the same calls'
  later events (numbered from ``adopted_seq_base``, far above); its older ``call.ended`` or ``call.answered`` no longer overwrite the
  outcome, end or agent the new leader stored. Still one transaction per batch;
* summed: offers, transfers, talk_s, wrap_up_s.
Values of the wrong JSON type are ignored (NULL), never a failed batch.

Plan: the check for a stored ``call.started`` carries ``OFFSET 0`` so that it stays a per-row probe
of the ``(call_id, seq)`` index, run only for the batch's ``call.started`` rows. Without it the
planner may hash every ``call.started`` of the table instead: a scan of all of ``call_events`` per
batch (seen in ``EXPLAIN (ANALYZE, BUFFERS)`` at 200,000 stored events: 20,534 rows hashed,
183,466 filtered out, for one batch), whose cost grows with the table. The writer's session runs
with ``jit = off`` (``writer.SESSION_SETTINGS``): that plan's estimate crossed
``jit_optimize_above_cost``, and compiling the statement took 9.0 s of a 9.3 s batch.
"""

from __future__ import annotations

TEMP_TABLE = "sb_event_batch"

CREATE_TEMP = f"""
CREATE TEMP TABLE IF NOT EXISTS {TEMP_TABLE} (
    call_id text COLLATE "C", seq integer, ts timestamptz, kind text, data jsonb
) ON COMMIT DELETE ROWS
"""

COPY_COLUMNS = ("call_id", "seq", "ts", "kind", "data")


def _num(key: str) -> str:
    return f"CASE WHEN jsonb_typeof(data->'{key}') = 'number' THEN (data->>'{key}')::float8 END"


def _str(key: str) -> str:
    return f"CASE WHEN jsonb_typeof(data->'{key}') IN ('string', 'number') THEN data->>'{key}' END"


def _last_raw(expr: str, kind: str) -> str:
    """The highest-seq event of ``kind`` where ``expr`` is not NULL, as "zero-padded seq || value".

    One pass, no per-group sort: max() over those strings, compared bytewise (COLLATE "C": the
    padded seq decides, and a locale comparison costs more). The seq in front is kept for the
    merge with the stored row (``calls.last_seq``): no second aggregate for it.
    """
    return f"max((lpad(seq::text, 10, '0') || ({expr})::text) COLLATE \"C\") FILTER (WHERE kind = '{kind}')"


def _last(expr: str, kind: str, cast: str = "") -> str:
    """The value from the highest-seq event of ``kind`` where it is not NULL."""
    v = f"substr({_last_raw(expr, kind)}, 11)"
    return f"({v}){cast}" if cast else v


# column -> (aggregate over the inserted rows of one call, merge with the stored row, None), or for
# last-wins columns (the _last_raw aggregate, _LASTW, the cast of its value)
_FIRST = "COALESCE(calls.{c}, EXCLUDED.{c})"
_LASTW = "CASE WHEN {wins} THEN EXCLUDED.{c} ELSE calls.{c} END"
_SUM = "calls.{c} + EXCLUDED.{c}"
_SUMN = "CASE WHEN EXCLUDED.{c} IS NULL THEN calls.{c} ELSE COALESCE(calls.{c}, 0) + EXCLUDED.{c} END"


def _wins(c: str) -> str:
    """The batch's value of last-wins column ``c`` comes from a newer event than the stored one
    (no value in the batch: no seq, NULL, the stored value stays)."""
    i = LAST_SEQ_COLUMNS.index(c) + 1
    return f"EXCLUDED.last_seq[{i}] > COALESCE(calls.last_seq[{i}], 0)"


def _lw(expr: str, kind: str, cast: str = "") -> tuple[str, str, str | None]:
    return (_last_raw(expr, kind), _LASTW, cast)


#: ``calls.last_seq[i]``: the seq of the event that set the i-th of these columns (1-based). The
#: positions are stored: a new last-wins column goes at the END, none is ever removed or moved.
LAST_SEQ_COLUMNS = (
    "caller", "dialed", "channel", "asterisk_node", "language", "flow", "flow_version", "participant_id",
    "topic", "province", "province_source", "priority", "overflow_tier", "ended_at", "agent_id",
    "disposition", "callback_id", "callback_result", "outcome", "ivr_node", "hangup_cause",
    "recording_path", "survey_score",
)

CALL_COLUMNS: dict[str, tuple[str, str, str | None]] = {
    "caller": _lw(_str("caller"), "call.started"),
    "dialed": _lw(_str("dialed"), "call.started"),
    "channel": _lw(_str("channel"), "call.started"),
    "asterisk_node": _lw(_str("asterisk_node"), "call.started"),
    "language": (  # the queue's language (chosen in the menus) before the one the call started with
        f"COALESCE({_last_raw(_str('language'), 'queue.joined')}, {_last_raw(_str('language'), 'call.started')})",
        _LASTW, "",
    ),
    "flow": _lw(_str("flow"), "ivr.step"),
    "flow_version": _lw(_str("flow_version"), "ivr.step"),
    "participant_id": _lw(_str("participant_id"), "ivr.lookup"),
    "topic": _lw(_str("topic"), "queue.joined"),
    "province": _lw(_str("province"), "queue.joined"),
    "province_source": _lw(_str("province_source"), "queue.joined"),
    "priority": _lw(f"round({_num('priority')})::int", "queue.joined", "::int"),
    "overflow_tier": _lw(_str("tier"), "queue.overflow"),
    "started_at": ("min(ts) FILTER (WHERE kind = 'call.started')", _FIRST, None),
    "queue_joined_at": ("min(ts) FILTER (WHERE kind = 'queue.joined')", _FIRST, None),
    "answered_at": ("min(ts) FILTER (WHERE kind = 'call.answered')", _FIRST, None),
    "ended_at": _lw("ts", "call.ended", "::timestamptz"),
    "queue_wait_s": (_last(_num("wait_s"), "call.answered", "::float8"), _FIRST, None),
    "agent_id": _lw(_str("agent_id"), "call.answered"),
    "offers": ("count(*) FILTER (WHERE kind = 'agent.offer')", _SUM, None),
    "talk_s": (f"sum({_num('talk_s')}) FILTER (WHERE kind = 'agent.ended')", _SUMN, None),
    "wrap_up_s": (f"sum({_num('wrap_up_s')}) FILTER (WHERE kind = 'agent.wrap_up_ended')", _SUMN, None),
    "disposition": _lw(_str("disposition"), "agent.wrap_up_ended"),
    "transfers": ("count(*) FILTER (WHERE kind IN ('call.transfer', 'transfer.completed'))", _SUM, None),
    "callback_id": _lw(_str("callback_id"), "callback.requested"),
    "callback_result": _lw(_str("result"), "callback.completed"),
    "outcome": _lw(_str("outcome"), "call.ended"),
    "ivr_node": _lw(_str("node"), "call.ended"),
    "hangup_cause": _lw(_str("cause"), "call.ended"),
    "recording_path": _lw(_str("path"), "call.recording"),
    "survey_score": _lw(f"CASE WHEN {_num('score')} BETWEEN 1 AND 5 THEN round({_num('score')})::smallint END",
                        "call.survey", "::smallint"),
}


_INSERT_EVENTS = f"""
    INSERT INTO call_events (call_id, seq, ts, kind, data)
    SELECT call_id, seq, ts, kind, data FROM {TEMP_TABLE} b
    WHERE b.kind <> 'call.started' OR NOT EXISTS (
        SELECT 1 FROM call_events s WHERE s.call_id = b.call_id AND s.kind = 'call.started' OFFSET 0)
    ORDER BY call_id, seq"""


def _side_tables(src: str) -> str:
    """The CTEs that upsert ``calls``, ``callbacks`` and ``surveys`` from the event rows of ``src``."""
    cols = list(CALL_COLUMNS)
    last = [c for c, (_, _, cast) in CALL_COLUMNS.items() if cast is not None]
    assert sorted(last) == sorted(LAST_SEQ_COLUMNS), "every last-wins column has its place in last_seq"
    last = list(LAST_SEQ_COLUMNS)
    aggs = ",\n        ".join(f"{agg} AS {c}" for c, (agg, _, _) in CALL_COLUMNS.items())
    values = ", ".join(c if cast is None else f"(substr({c}, 11)){cast}" for c, (_, _, cast) in CALL_COLUMNS.items())
    seqs = "ARRAY[" + ", ".join(f"left({c}, 10)::int" for c in last) + "]"
    sets = ",\n        ".join(f"{c} = {merge.format(c=c, wins=_wins(c) if cast is not None else '')}"
                              for c, (_, merge, cast) in CALL_COLUMNS.items())
    seq_sets = "ARRAY[" + ", ".join(
        f"GREATEST(EXCLUDED.last_seq[{i}], calls.last_seq[{i}])" for i in range(1, len(last) + 1)) + "]::int[]"
    score = _num("score")
    return f"""
agg AS (
    SELECT call_id,
        {aggs}
    FROM {src} GROUP BY call_id
),
up_calls AS (
    INSERT INTO calls (call_id, {", ".join(cols)}, last_seq)
    SELECT call_id, {values}, {seqs} FROM agg
    ON CONFLICT (call_id) DO UPDATE SET
        {sets},
        last_seq = {seq_sets},
        updated_at = now()
    RETURNING 1
),
cb AS (
    SELECT {_str("callback_id")} AS callback_id,
        (array_agg(call_id) FILTER (WHERE kind = 'callback.requested'))[1] AS call_id,
        {_last(_str("number"), "callback.requested")} AS number,
        min(ts) FILTER (WHERE kind = 'callback.requested') AS requested_at,
        max(ts) FILTER (WHERE kind = 'callback.completed') AS completed_at,
        {_last(_str("result"), "callback.completed")} AS result,
        count(*) FILTER (WHERE kind = 'callback.completed') AS attempts,
        min(call_id) AS any_call
    FROM {src}
    WHERE kind IN ('callback.requested', 'callback.completed') AND {_str("callback_id")} IS NOT NULL
    GROUP BY 1
),
up_cb AS (
    INSERT INTO callbacks (callback_id, call_id, number, requested_at, completed_at, result, attempts)
    SELECT callback_id, COALESCE(call_id, any_call), number,
           COALESCE(requested_at, completed_at), completed_at, result, attempts
    FROM cb
    ON CONFLICT (callback_id) DO UPDATE SET
        number = COALESCE(EXCLUDED.number, callbacks.number),
        requested_at = LEAST(callbacks.requested_at, EXCLUDED.requested_at),
        completed_at = COALESCE(EXCLUDED.completed_at, callbacks.completed_at),
        result = COALESCE(EXCLUDED.result, callbacks.result),
        attempts = callbacks.attempts + EXCLUDED.attempts
    RETURNING 1
),
up_sv AS (
    INSERT INTO surveys (call_id, agent_id, score, answered_at)
    SELECT DISTINCT ON (call_id) call_id, {_str("agent_id")}, round({score})::smallint, ts
    FROM {src}
    WHERE kind = 'call.survey' AND {score} BETWEEN 1 AND 5
    ORDER BY call_id, seq DESC
    ON CONFLICT (call_id) DO UPDATE SET
        score = EXCLUDED.score, agent_id = COALESCE(EXCLUDED.agent_id, surveys.agent_id),
        answered_at = EXCLUDED.answered_at
    RETURNING 1
)"""


_TOUCHED = "(SELECT count(*) FROM up_calls) + (SELECT count(*) FROM up_cb) + (SELECT count(*) FROM up_sv)"

#: The whole batch in one statement: the staged events that are new, and the side tables from those.
WRITE_BATCH = f"""
WITH ins AS ({_INSERT_EVENTS}
    ON CONFLICT (call_id, seq) DO NOTHING
    RETURNING call_id, seq, ts, kind, data
),{_side_tables("ins")}
SELECT (SELECT count(*) FROM ins) AS inserted, {_TOUCHED} AS touched
"""

#: Step 1 of 2 (the writer's usual path, pipelined): the staged events, counted. No ``ON CONFLICT``:
#: a staged event already stored fails the statement (``unique_violation``, which the server logs),
#: and the writer rolls back and writes that batch with ``WRITE_BATCH``. Replays are rare; the
#: speculative insertion of ``ON CONFLICT`` (a probe of the unique index before each row, then a
#: confirmation) cost every batch about 2 us per event (bench/RESULTS.md, store_write).
INSERT_EVENTS = f"""
WITH ins AS ({_INSERT_EVENTS}
    RETURNING 1
)
SELECT count(*) FROM ins
"""

#: Step 2 of 2, valid only when step 1 inserted EVERY staged row (then the staged rows are the
#: inserted ones): the side tables from the staged rows. Otherwise the transaction is rolled back and
#: the batch written with ``WRITE_BATCH``.
UPDATE_SIDE_TABLES = f"""
WITH{_side_tables(TEMP_TABLE)}
SELECT {_TOUCHED} AS touched
"""
