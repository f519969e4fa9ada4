CREATE TABLE {schema}.models (
    id          uuid PRIMARY KEY,
    name        text        NOT NULL,
    type        text        NOT NULL,
    framework   text        NOT NULL,
    task        text,
    description text        NOT NULL DEFAULT '',
    metadata    jsonb       NOT NULL DEFAULT '{}',
    tags        jsonb       NOT NULL DEFAULT '{}',
    owner       text        NOT NULL,
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL,
    revision    integer     NOT NULL DEFAULT 1,
    deleted_at  timestamptz
);
-- a name is taken only while its model is live; a deleted model's name may be registered again
CREATE UNIQUE INDEX models_live_name ON {schema}.models (lower(name)) WHERE deleted_at IS NULL;
CREATE INDEX models_live_created ON {schema}.models (created_at DESC, id) WHERE deleted_at IS NULL;
CREATE INDEX models_type ON {schema}.models (type) WHERE deleted_at IS NULL;
CREATE INDEX models_framework ON {schema}.models (framework) WHERE deleted_at IS NULL;
CREATE INDEX models_tags ON {schema}.models USING gin (tags) WHERE deleted_at IS NULL;
