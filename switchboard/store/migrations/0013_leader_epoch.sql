-- Active/standby instances (issue 17, docs/ha.md): the leader epoch, bumped by every
-- instance that takes the lead (the advisory lock holder). One row.
CREATE TABLE IF NOT EXISTS leader_epoch (
    id          smallint PRIMARY KEY DEFAULT 1 CHECK (id = 1),
    epoch       bigint NOT NULL DEFAULT 0,
    instance    text NOT NULL DEFAULT '',
    api_url     text NOT NULL DEFAULT '',
    since       timestamptz NOT NULL DEFAULT now()
);
INSERT INTO leader_epoch (id) VALUES (1) ON CONFLICT (id) DO NOTHING;
