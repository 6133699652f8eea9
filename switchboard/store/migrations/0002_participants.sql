-- Demo CRM: participants the IVR can look up by social insurance code or phone.

CREATE TABLE participants (
    insurance_code       char(10) PRIMARY KEY CHECK (insurance_code ~ '^[0-9]{10}$'),
    full_name            text NOT NULL,
    phone                text,
    province             text,
    birth_date           date,
    contribution_status  text NOT NULL CHECK (contribution_status IN ('active', 'paused', 'stopped', 'retired')),
    months_contributed   integer NOT NULL DEFAULT 0 CHECK (months_contributed >= 0),
    last_contribution    date,
    health_card_valid_to date,
    employer             text,
    updated_at           timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX participants_phone ON participants (phone);
