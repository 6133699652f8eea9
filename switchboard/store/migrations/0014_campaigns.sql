-- Outbound campaigns (docs/campaigns.md): the campaign, its contacts, every dial attempt
-- with its result, and the do-not-call list.
--
-- "Never call anyone twice" is held here, not in memory: an attempt row is written (claimed)
-- before the Originate, at most one attempt per contact and per number may be open (no result
-- yet) at a time, and attempt numbers per contact are unique.

CREATE TABLE campaigns (
    campaign_id  text PRIMARY KEY CHECK (campaign_id ~ '^[a-z][a-z0-9_-]{0,47}$'),
    definition   jsonb NOT NULL,             -- the validated campaign (mode, flow, window, retries...)
    source       text NOT NULL,              -- campaigns/<file>.yaml or api
    state        text NOT NULL DEFAULT 'paused'
                 CHECK (state IN ('running', 'paused', 'stopped', 'finished')),
    state_by     text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE campaign_contacts (
    contact_id     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    campaign_id    text NOT NULL REFERENCES campaigns (campaign_id) ON DELETE CASCADE,
    number         text NOT NULL,            -- normalised by the number policy at import
    participant_id text,
    name           text,
    province       text,
    data           jsonb NOT NULL DEFAULT '{}'::jsonb,   -- variables handed to the flow
    status         text NOT NULL DEFAULT 'pending'
                   CHECK (status IN ('pending', 'dialing', 'done')),
    attempts       integer NOT NULL DEFAULT 0,
    next_at        timestamptz NOT NULL DEFAULT now(),  -- not dialled before
    last_result    text,
    final_result   text,                     -- set when status = done
    updated_at     timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT campaign_contacts_number UNIQUE (campaign_id, number)
);

CREATE INDEX campaign_contacts_due ON campaign_contacts (campaign_id, next_at) WHERE status = 'pending';

CREATE TABLE campaign_attempts (
    attempt_id    text PRIMARY KEY,          -- also the ChannelId of the dialled leg
    campaign_id   text NOT NULL REFERENCES campaigns (campaign_id) ON DELETE CASCADE,
    contact_id    bigint NOT NULL REFERENCES campaign_contacts (contact_id) ON DELETE CASCADE,
    number        text NOT NULL,
    attempt_no    integer NOT NULL CHECK (attempt_no >= 1),
    agent_id      text,                      -- the agent reserved (progressive) or reached
    claimed_at    timestamptz NOT NULL,
    originated_at timestamptz,               -- Asterisk accepted the Originate
    answered_at   timestamptz,
    ended_at      timestamptz,
    result        text CHECK (result IN ('answered', 'no_answer', 'busy', 'failed', 'opted_out',
                                         'transferred_to_agent', 'message_heard_to_end',
                                         'not_dialled', 'interrupted')),
    abandoned     boolean NOT NULL DEFAULT false,   -- a live answer with no agent (pacing limit)
    detail        text,
    CONSTRAINT campaign_attempts_no UNIQUE (contact_id, attempt_no)
);

-- at most one call in flight per contact and per number, whatever the campaign
CREATE UNIQUE INDEX campaign_attempts_open_contact ON campaign_attempts (contact_id) WHERE result IS NULL;
CREATE UNIQUE INDEX campaign_attempts_open_number ON campaign_attempts (number) WHERE result IS NULL;
CREATE INDEX campaign_attempts_day ON campaign_attempts (campaign_id, claimed_at);

CREATE TABLE do_not_call (
    number       text PRIMARY KEY,           -- normalised by the number policy
    added_at     timestamptz NOT NULL DEFAULT now(),
    source       text NOT NULL,              -- key9 | api | import
    campaign_id  text,
    attempt_id   text
);
