-- Arrival order of timeline events (the writer inserts in accepted order, and
-- each batch in (call_id, seq) order): lets readers tail the timeline by id.
ALTER TABLE call_events ADD COLUMN id bigint GENERATED ALWAYS AS IDENTITY;
CREATE INDEX call_events_id ON call_events (id);
