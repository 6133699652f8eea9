-- Call ids (Asterisk Linkedids, e.g. 1700000000.42) are machine keys, never sorted for
-- people: compare them bytewise (COLLATE "C") instead of by the database's locale. Every
-- batch of the event writer sorts and looks up thousands of them in the call_events and
-- calls indexes, where a locale comparison (strcoll) costs several times a memcmp
-- (bench/RESULTS.md, store_write). All call_id columns change together, so joins between
-- them keep one collation.
ALTER TABLE calls ALTER COLUMN call_id TYPE text COLLATE "C";
ALTER TABLE call_events ALTER COLUMN call_id TYPE text COLLATE "C";
ALTER TABLE callbacks ALTER COLUMN call_id TYPE text COLLATE "C";
ALTER TABLE surveys ALTER COLUMN call_id TYPE text COLLATE "C";
ALTER TABLE agent_state_log ALTER COLUMN call_id TYPE text COLLATE "C";
