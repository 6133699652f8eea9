"""SQL that writes one batch of call events and keeps the ``calls`` row current.

The batch is COPY'd into a session temp table, then one statement inserts it
into ``call_events`` with ``ON CONFLICT DO NOTHING`` and, from the rows that
were *really* inserted (``RETURNING``), upserts ``calls``, ``callbacks`` and
``surveys``. A replayed event therefore changes nothing, counters included.

A call has one ``call.started``: one arriving for a call whose ``call.started`` is
stored is not inserted (counted as a duplicate). Two owners can each write one: a
leader cut from PostgreSQL spools the ``call.started`` of a caller that arrived
during the cut, the instance that takes over adopts the caller and, finding none
stored, writes its own; the spool replayed later must not add a second.

Field rules for ``calls`` (see docs/reports.md):
* first-wins: started_at, queue_joined_at, answered_at (the first time it happened);
* last-wins (newer event overrides): everything else taken from event data;
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


def _last(expr: str, kind: str, cast: str = "") -> str:
    """The value from the highest-seq event of ``kind`` where it is not NULL.

    One pass, no per-group sort: max() over "zero-padded seq || value" strings, compared
    bytewise (COLLATE "C": the padded seq decides, and a locale comparison costs more).
    """
    v = f"substr(max((lpad(seq::text, 10, '0') || ({expr})::text) COLLATE \"C\") FILTER (WHERE kind = '{kind}'), 11)"
    return f"({v}){cast}" if cast else v


# column -> (aggregate over the inserted rows of one call, merge with the stored row)
_FIRST = "COALESCE(calls.{c}, EXCLUDED.{c})"
_LASTW = "COALESCE(EXCLUDED.{c}, calls.{c})"
_SUM = "calls.{c} + EXCLUDED.{c}"
_SUMN = "CASE WHEN EXCLUDED.{c} IS NULL THEN calls.{c} ELSE COALESCE(calls.{c}, 0) + EXCLUDED.{c} END"

CALL_COLUMNS: dict[str, tuple[str, str]] = {
    "caller": (_last(_str("caller"), "call.started"), _LASTW),
    "dialed": (_last(_str("dialed"), "call.started"), _LASTW),
    "channel": (_last(_str("channel"), "call.started"), _LASTW),
    "asterisk_node": (_last(_str("asterisk_node"), "call.started"), _LASTW),
    "language": (
        f"COALESCE({_last(_str('language'), 'queue.joined')}, {_last(_str('language'), 'call.started')})",
        _LASTW,
    ),
    "flow": (_last(_str("flow"), "ivr.step"), _LASTW),
    "flow_version": (_last(_str("flow_version"), "ivr.step"), _LASTW),
    "participant_id": (_last(_str("participant_id"), "ivr.lookup"), _LASTW),
    "topic": (_last(_str("topic"), "queue.joined"), _LASTW),
    "province": (_last(_str("province"), "queue.joined"), _LASTW),
    "province_source": (_last(_str("province_source"), "queue.joined"), _LASTW),
    "priority": (_last(f"round({_num('priority')})::int", "queue.joined", "::int"), _LASTW),
    "overflow_tier": (_last(_str("tier"), "queue.overflow"), _LASTW),
    "started_at": ("min(ts) FILTER (WHERE kind = 'call.started')", _FIRST),
    "queue_joined_at": ("min(ts) FILTER (WHERE kind = 'queue.joined')", _FIRST),
    "answered_at": ("min(ts) FILTER (WHERE kind = 'call.answered')", _FIRST),
    "ended_at": ("max(ts) FILTER (WHERE kind = 'call.ended')", _LASTW),
    "queue_wait_s": (_last(_num("wait_s"), "call.answered", "::float8"), _FIRST),
    "agent_id": (_last(_str("agent_id"), "call.answered"), _LASTW),
    "offers": ("count(*) FILTER (WHERE kind = 'agent.offer')", _SUM),
    "talk_s": (f"sum({_num('talk_s')}) FILTER (WHERE kind = 'agent.ended')", _SUMN),
    "wrap_up_s": (f"sum({_num('wrap_up_s')}) FILTER (WHERE kind = 'agent.wrap_up_ended')", _SUMN),
    "disposition": (_last(_str("disposition"), "agent.wrap_up_ended"), _LASTW),
    "transfers": ("count(*) FILTER (WHERE kind IN ('call.transfer', 'transfer.completed'))", _SUM),
    "callback_id": (_last(_str("callback_id"), "callback.requested"), _LASTW),
    "callback_result": (_last(_str("result"), "callback.completed"), _LASTW),
    "outcome": (_last(_str("outcome"), "call.ended"), _LASTW),
    "ivr_node": (_last(_str("node"), "call.ended"), _LASTW),
    "hangup_cause": (_last(_str("cause"), "call.ended"), _LASTW),
    "recording_path": (_last(_str("path"), "call.recording"), _LASTW),
    "survey_score": (
        _last(f"CASE WHEN {_num('score')} BETWEEN 1 AND 5 THEN round({_num('score')})::smallint END",
              "call.survey", "::smallint"),
        _LASTW,
    ),
}


def _build_write_batch() -> str:
    cols = list(CALL_COLUMNS)
    aggs = ",\n        ".join(f"{agg} AS {c}" for c, (agg, _) in CALL_COLUMNS.items())
    sets = ",\n        ".join(f"{c} = {merge.format(c=c)}" for c, (_, merge) in CALL_COLUMNS.items())
    score = _num("score")
    return f"""
WITH ins AS (
    INSERT INTO call_events (call_id, seq, ts, kind, data)
    SELECT call_id, seq, ts, kind, data FROM {TEMP_TABLE} b
    WHERE b.kind <> 'call.started' OR NOT EXISTS (
        SELECT 1 FROM call_events s WHERE s.call_id = b.call_id AND s.kind = 'call.started' OFFSET 0)
    ORDER BY call_id, seq
    ON CONFLICT (call_id, seq) DO NOTHING
    RETURNING call_id, seq, ts, kind, data
),
agg AS (
    SELECT call_id,
        {aggs}
    FROM ins GROUP BY call_id
),
up_calls AS (
    INSERT INTO calls (call_id, {", ".join(cols)})
    SELECT call_id, {", ".join(cols)} FROM agg
    ON CONFLICT (call_id) DO UPDATE SET
        {sets},
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
    FROM ins
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
    FROM ins
    WHERE kind = 'call.survey' AND {score} BETWEEN 1 AND 5
    ORDER BY call_id, seq DESC
    ON CONFLICT (call_id) DO UPDATE SET
        score = EXCLUDED.score, agent_id = COALESCE(EXCLUDED.agent_id, surveys.agent_id),
        answered_at = EXCLUDED.answered_at
    RETURNING 1
)
SELECT (SELECT count(*) FROM ins) AS inserted,
       (SELECT count(*) FROM up_calls) + (SELECT count(*) FROM up_cb) + (SELECT count(*) FROM up_sv) AS touched
"""


WRITE_BATCH = _build_write_batch()
