-- Several Asterisk nodes behind Kamailio (issue 18, docs/scale.md): the node that carried
-- the call (its Asterisk systemname; NULL with one Asterisk). A call whose node was lost
-- ends with outcome 'failed' and hangup_cause 'node_lost'.
ALTER TABLE calls ADD COLUMN IF NOT EXISTS asterisk_node text;
CREATE INDEX IF NOT EXISTS calls_asterisk_node ON calls (asterisk_node, started_at) WHERE asterisk_node IS NOT NULL;
