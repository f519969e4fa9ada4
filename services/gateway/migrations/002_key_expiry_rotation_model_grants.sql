-- Keys: an optional team (grants to team:<team> cover its keys), an expiry, and rotation with a grace
-- period during which the previous secret still works.
ALTER TABLE {schema}.api_keys
    ADD COLUMN team                 text,
    ADD COLUMN expires_at           timestamptz,
    ADD COLUMN previous_secret_hash text,
    ADD COLUMN previous_valid_until timestamptz,
    ADD COLUMN rotated_at           timestamptz;
CREATE INDEX api_keys_name ON {schema}.api_keys (name) WHERE revoked_at IS NULL;

-- What the gateway knows of models, for authorisation only: a projection of cairn.models.v1 (filled in
-- from the registry's internal API when a request arrives before the event).
CREATE TABLE {schema}.models (
    model_id      uuid        PRIMARY KEY,
    name          text        NOT NULL,
    owner         text        NOT NULL,
    revision      integer     NOT NULL,
    deleted       boolean     NOT NULL DEFAULT false,
    registered_at timestamptz NOT NULL
);
CREATE INDEX models_live_name ON {schema}.models (lower(name), registered_at DESC) WHERE NOT deleted;

-- Per-model grants: principal is a key name or team:<team>. At most one active grant per
-- (model, principal, permission); granting again renews it. Revoked rows stay as history.
CREATE TABLE {schema}.model_grants (
    grant_id   uuid        PRIMARY KEY,
    model_id   uuid        NOT NULL REFERENCES {schema}.models (model_id),
    principal  text        NOT NULL,
    permission text        NOT NULL CHECK (permission IN ('read', 'write', 'publish', 'admin')),
    granted_by text        NOT NULL,
    granted_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz,
    revoked_at timestamptz,
    revoked_by text
);
CREATE UNIQUE INDEX model_grants_active ON {schema}.model_grants (model_id, principal, permission) WHERE revoked_at IS NULL;
CREATE INDEX model_grants_principal ON {schema}.model_grants (principal, granted_at) WHERE revoked_at IS NULL;
