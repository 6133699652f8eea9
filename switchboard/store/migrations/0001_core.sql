-- Core call-record schema: one interaction row per call, an append-only
-- timeline, agents and their state log, callbacks, surveys.

CREATE TABLE calls (
    call_id          text PRIMARY KEY,          -- Linkedid of the caller's channel
    caller           text,
    dialed           text,
    channel          text,
    language         text,
    flow             text,
    flow_version     text,
    participant_id   text,                      -- CRM match (ivr.lookup), if any
    topic            text,                      -- skill asked for, e.g. social/pension
    province         text,
    province_source  text,                      -- dialed | area_code | crm | ivr
    priority         integer,
    overflow_tier    text,                      -- last tier reached: province | region | nation
    started_at       timestamptz,
    queue_joined_at  timestamptz,
    answered_at      timestamptz,
    ended_at         timestamptz,
    queue_wait_s     double precision,          -- as reported by call.answered
    agent_id         text,                      -- agent who answered
    offers           integer NOT NULL DEFAULT 0,
    talk_s           double precision,
    wrap_up_s        double precision,
    disposition      text,
    transfers        integer NOT NULL DEFAULT 0,
    callback_id      text,
    callback_result  text,
    outcome          text,                      -- answered | abandoned_ivr | abandoned_queue | callback
                                                -- | after_hours | failed (see docs/reports.md)
    ivr_node         text,                      -- node where the caller left (call.ended.node)
    hangup_cause     text,
    recording_path   text,
    survey_score     smallint CHECK (survey_score BETWEEN 1 AND 5),
    updated_at       timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE call_events (
    call_id  text        NOT NULL,
    seq      integer     NOT NULL CHECK (seq >= 1),
    ts       timestamptz NOT NULL,
    kind     text        NOT NULL,
    data     jsonb       NOT NULL DEFAULT '{}'::jsonb,
    CONSTRAINT call_events_call_seq UNIQUE (call_id, seq)
);

CREATE TABLE agents (
    id             text PRIMARY KEY,
    name           text NOT NULL,
    sip_endpoint   text NOT NULL,
    skills         jsonb NOT NULL DEFAULT '{}'::jsonb,   -- {"social/pension": 4, ...} proficiency 1-5
    home_province  text,
    languages      text[] NOT NULL DEFAULT ARRAY['vi'],
    active         boolean NOT NULL DEFAULT true,
    created_at     timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE agent_state_log (
    id          bigserial PRIMARY KEY,
    agent_id    text NOT NULL,
    at          timestamptz NOT NULL,
    from_state  text,
    to_state    text NOT NULL,
    reason      text,
    call_id     text,
    duration_s  double precision                  -- time spent in from_state
);

CREATE TABLE callbacks (
    callback_id   text PRIMARY KEY,
    call_id       text NOT NULL,
    number        text,
    requested_at  timestamptz NOT NULL,
    completed_at  timestamptz,
    result        text,
    attempts      integer NOT NULL DEFAULT 0
);

CREATE TABLE surveys (
    call_id      text PRIMARY KEY,
    agent_id     text,
    score        smallint NOT NULL CHECK (score BETWEEN 1 AND 5),
    answered_at  timestamptz NOT NULL
);

-- Report and purge paths.
CREATE INDEX calls_started_at ON calls (started_at);
CREATE INDEX calls_agent_started ON calls (agent_id, started_at) WHERE agent_id IS NOT NULL;
CREATE INDEX calls_topic_started ON calls (topic, started_at);
CREATE INDEX calls_province_started ON calls (province, started_at);
CREATE INDEX call_events_ts ON call_events USING brin (ts);
CREATE INDEX agent_state_log_agent_at ON agent_state_log (agent_id, at);
CREATE INDEX callbacks_open ON callbacks (requested_at) WHERE completed_at IS NULL;
