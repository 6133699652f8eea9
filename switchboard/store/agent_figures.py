"""One agent's figures for a local day, straight from the database: calls answered,
offers missed and talk time (``call_events``), time in wrap-up and paused
(``agent_state_log``) and the mean survey score (``surveys``).

The SQL only; the API (``switchboard/api/pg_services.py``) turns the numbers into
``AgentFigures``. The care-center reports over ``calls`` are ``store/reports.py``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg

_AGENT_EVENTS_SQL = """
SELECT count(DISTINCT call_id) FILTER (WHERE kind = 'call.answered') AS answered,
       count(*) FILTER (WHERE kind = 'agent.offer_result' AND data->>'result' IS DISTINCT FROM 'answered')
           AS missed_offers,
       COALESCE(sum((data->>'talk_s')::float8)
                FILTER (WHERE kind = 'agent.ended' AND jsonb_typeof(data->'talk_s') = 'number'), 0) AS talk_s
FROM call_events
WHERE ts >= $2 AND ts < $3
  AND kind IN ('call.answered', 'agent.offer_result', 'agent.ended')
  AND data->>'agent_id' = $1
"""

# Time in each state, from consecutive rows of the log: a row says "from ``at`` the agent is in
# ``to_state``" until the next row (or now). The intervals are clipped to the day.
_AGENT_STATES_SQL = """
WITH s AS (
    SELECT to_state, at, lead(at) OVER (ORDER BY at, id) AS until
    FROM agent_state_log
    WHERE agent_id = $1 AND at < $3
      AND at >= COALESCE((SELECT max(at) FROM agent_state_log WHERE agent_id = $1 AND at <= $2), $2)
)
SELECT to_state,
       sum(extract(epoch FROM LEAST(COALESCE(until, LEAST(now(), $3)), $3) - GREATEST(at, $2)))::float8 AS s
FROM s
WHERE to_state IN ('wrap_up', 'paused') AND LEAST(COALESCE(until, LEAST(now(), $3)), $3) > GREATEST(at, $2)
GROUP BY to_state
"""

_AGENT_SURVEY_SQL = """
SELECT avg(s.score::float8)
FROM surveys s LEFT JOIN calls c USING (call_id)
WHERE COALESCE(s.agent_id, c.agent_id) = $1 AND s.answered_at >= $2 AND s.answered_at < $3
"""


async def fetch_agent_day(conn: asyncpg.Connection, agent_id: str, *, start: datetime, end: datetime,
                          timeout: float) -> tuple[asyncpg.Record | None, dict[str, Any], Any]:
    """(event counts row, seconds per state in ``wrap_up``/``paused``, mean survey score)
    for ``agent_id`` in ``[start, end)``."""
    ev = await conn.fetchrow(_AGENT_EVENTS_SQL, agent_id, start, end, timeout=timeout)
    states = {r["to_state"]: r["s"] for r in
              await conn.fetch(_AGENT_STATES_SQL, agent_id, start, end, timeout=timeout)}
    survey = await conn.fetchval(_AGENT_SURVEY_SQL, agent_id, start, end, timeout=timeout)
    return ev, states, survey
