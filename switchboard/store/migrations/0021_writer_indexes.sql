-- The event writer's per-event cost (bench/RESULTS.md, store_write):
-- * call_events_id served no query: readers order a call's few events by id (a sort of
--   that call's rows, found by the (call_id, seq) index); retention deletes by call_id and ts.
--   The id column stays (arrival order); its B-tree cost every stored event an insertion.
-- * calls rows are updated by several batches each (a call's events minutes apart): free room
--   on each page lets an update that changes no indexed column stay on its page (a HOT update,
--   no new entry in the six calls indexes). Applies to pages written from now on.
DROP INDEX IF EXISTS call_events_id;
ALTER TABLE calls SET (fillfactor = 70);
