-- Q&A sessions (docs/sessions.md): how each participant came into the conference, and the
-- raised-hands queue kept across a restart.
--
-- joined_via: 'menu' (key 5 in the hotline menu), 'invited' (a registered participant called
-- at the start by the session's invitation campaign), 'moderator' (the expert's leg).
-- participant_id: the registered participant's insurance code (invited), when known.
ALTER TABLE qa_attendance
    ADD COLUMN joined_via text CHECK (joined_via IN ('menu', 'invited', 'moderator')),
    ADD COLUMN participant_id text;
