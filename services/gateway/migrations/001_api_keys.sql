CREATE TABLE {schema}.api_keys (
    key_id      text        PRIMARY KEY,
    name        text        NOT NULL,
    role        text        NOT NULL,
    secret_hash text        NOT NULL,
    created_by  text        NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz
);
