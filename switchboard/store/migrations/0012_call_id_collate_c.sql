-- Call ids (Asterisk Linkedids, e.g. 1700000000.42) are machine keys, never sorted for
-- people: compare them bytewise (COLLATE "C") instead of by the database's locale. Every
-- batch of the event writer sorts and looks up thousands of them in the call_events and
-- calls indexes, where a locale comparison goes through strcoll instead of memcmp (seen in a
-- perf profile of the writer's backend: bench/RESULTS.md, store_write). All call_id columns change together, so joins between
-- them keep one collation. On a large database this rebuilds those tables' call_id indexes under
-- an exclusive lock: apply it in a quiet hour.
ALTER TABLE calls ALTER COLUMN call_id TYPE text COLLATE "C";
ALTER TABLE call_events ALTER COLUMN call_id TYPE text COLLATE "C";
ALTER TABLE callbacks ALTER COLUMN call_id TYPE text COLLATE "C";
ALTER TABLE surveys ALTER COLUMN call_id TYPE text COLLATE "C";
ALTER TABLE agent_state_log ALTER COLUMN call_id TYPE text COLLATE "C";
