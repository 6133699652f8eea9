-- Preview campaigns (docs/campaigns.md): an agent sees the next contact before the call and
-- starts it or skips it. A contact is held for one agent at a time until preview_until (a claim
-- that expires); an agent holds one contact at a time. A skipped contact is done with
-- final_result 'skipped' and the agent's reason.

ALTER TABLE campaign_contacts
    ADD COLUMN preview_agent text,              -- the agent previewing the contact (while preview_until > now)
    ADD COLUMN preview_until timestamptz,
    ADD COLUMN skip_reason   text;              -- why the agent skipped it

-- one contact per agent at a time (an expired hold is cleared before the agent takes another)
CREATE UNIQUE INDEX campaign_contacts_preview_agent ON campaign_contacts (preview_agent)
    WHERE preview_agent IS NOT NULL;
