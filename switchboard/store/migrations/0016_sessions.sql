-- Scheduled policy Q&A sessions (docs/sessions.md): the session, and who attended it.
--
-- One attendance row per caller's stay in the conference (joined, left, hand raised,
-- unmuted); the moderator's own leg is a row too (role 'moderator').

CREATE TABLE qa_sessions (
    session_id   text PRIMARY KEY CHECK (session_id ~ '^[a-z][a-z0-9_-]{0,47}$'),
    definition   jsonb NOT NULL,             -- the validated session (title, topic, times, moderator...)
    source       text NOT NULL,              -- sessions/<file>.yaml or api
    starts_at    timestamptz NOT NULL,
    ends_at      timestamptz NOT NULL CHECK (ends_at > starts_at),
    moderator    text NOT NULL,              -- an agent id
    ended_at     timestamptz,                -- ended early (API) or closed at its end time
    ended_by     text,
    recording    text,                       -- the conference recording, under the recordings folder
    created_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE qa_attendance (
    attendance_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    session_id    text NOT NULL REFERENCES qa_sessions (session_id) ON DELETE CASCADE,
    call_id       text NOT NULL COLLATE "C",  -- the caller's call (Linkedid); the moderator's leg id
    caller        text,
    role          text NOT NULL DEFAULT 'caller' CHECK (role IN ('caller', 'moderator')),
    channel       text,
    joined_at     timestamptz NOT NULL,
    left_at       timestamptz,
    hand_raised_at timestamptz,               -- the first *1
    hands         integer NOT NULL DEFAULT 0, -- how many times *1
    unmuted_at    timestamptz,                -- first given the floor (spoke)
    unmuted_s     double precision NOT NULL DEFAULT 0,  -- seconds with the floor
    left_reason   text                        -- hangup | kicked | session_ended | service_away
);
CREATE UNIQUE INDEX qa_attendance_one_stay ON qa_attendance (session_id, call_id, joined_at);
CREATE INDEX qa_attendance_session ON qa_attendance (session_id, joined_at);
