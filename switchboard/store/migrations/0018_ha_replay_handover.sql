-- Last-wins columns of calls follow the newest event, not the latest batch (issue 17,
-- store/batch_sql.py): per column (positions: LAST_SEQ_COLUMNS), the seq of the event that set it. A fenced leader's
-- spool replayed after the new leader wrote the same calls leaves their columns alone.
-- Rows written before this: empty, so the next event sets them as before.
ALTER TABLE calls ADD COLUMN IF NOT EXISTS last_seq integer[] NOT NULL DEFAULT '{}';

-- A leader that hands over cleanly (stopped: its gate closed, then its lock released) writes
-- its epoch here before releasing the lock; the instance that takes over after it skips the
-- take-over grace (docs/ha.md). A crash or a cut leaves it below the epoch: the grace is kept.
ALTER TABLE leader_epoch ADD COLUMN IF NOT EXISTS released_epoch bigint NOT NULL DEFAULT 0;
