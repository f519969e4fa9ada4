-- What this service knows of models: a projection of cairn.models.v1 (filled in from the registry's
-- internal API when a version arrives before the event), plus the model's retention policy.
CREATE TABLE {schema}.models (
    id            uuid PRIMARY KEY,
    name          text        NOT NULL,
    deleted       boolean     NOT NULL DEFAULT false,
    revision      integer     NOT NULL DEFAULT 0,
    registered_at timestamptz NOT NULL,
    keep_last     integer CHECK (keep_last IS NULL OR keep_last >= 1)
);
CREATE INDEX models_live_name ON {schema}.models (lower(name), registered_at DESC) WHERE NOT deleted;

CREATE TABLE {schema}.versions (
    id               uuid PRIMARY KEY,
    model_id         uuid        NOT NULL REFERENCES {schema}.models (id),
    version          text        NOT NULL,
    sort_key         bytea       NOT NULL, -- bytewise order = semver precedence
    version_type     text        NOT NULL,
    change_log       text        NOT NULL DEFAULT '',
    metrics          jsonb       NOT NULL DEFAULT '{}',
    training_data    jsonb       NOT NULL DEFAULT '{}',
    dependencies     jsonb       NOT NULL DEFAULT '[]',
    tags             jsonb       NOT NULL DEFAULT '[]',
    lineage          jsonb       NOT NULL DEFAULT '{}',
    metadata         jsonb       NOT NULL DEFAULT '{}',
    artifact_sha256  text,
    artifact_size    bigint,
    artifact_storage text,
    created_by       text        NOT NULL,
    created_at       timestamptz NOT NULL,
    CONSTRAINT versions_artifact_whole CHECK (
        (artifact_sha256 IS NULL) = (artifact_size IS NULL) AND (artifact_sha256 IS NULL) = (artifact_storage IS NULL))
);
CREATE UNIQUE INDEX versions_model_version ON {schema}.versions (model_id, version);
-- one version per precedence: 1.0.0+a and 1.0.0+b cannot both exist, so "latest" is always one version
CREATE UNIQUE INDEX versions_model_precedence ON {schema}.versions (model_id, sort_key);
CREATE INDEX versions_model_created ON {schema}.versions (model_id, created_at DESC);
CREATE INDEX versions_artifact ON {schema}.versions (artifact_sha256, artifact_storage) WHERE artifact_sha256 IS NOT NULL;
CREATE INDEX versions_tags ON {schema}.versions USING gin (tags);
-- a training job makes one version: a retried job finds the version its first attempt made
CREATE UNIQUE INDEX versions_training_job ON {schema}.versions (model_id, (lineage->>'training_job_id'))
    WHERE lineage->>'training_job_id' IS NOT NULL;

-- one row per (model, alias): moving an alias is an update of that row
CREATE TABLE {schema}.aliases (
    model_id   uuid        NOT NULL REFERENCES {schema}.models (id),
    alias      text        NOT NULL,
    version_id uuid        NOT NULL REFERENCES {schema}.versions (id),
    updated_at timestamptz NOT NULL,
    updated_by text        NOT NULL,
    PRIMARY KEY (model_id, alias)
);
CREATE INDEX aliases_version ON {schema}.aliases (version_id);

-- where a version is live (in production), from cairn.lifecycle.v1; no foreign key: lifecycle events
-- and model events travel on different topics, so either may arrive first
CREATE TABLE {schema}.live (
    model_id    uuid        NOT NULL,
    version     text        NOT NULL,
    environment text        NOT NULL,
    since       timestamptz NOT NULL,
    PRIMARY KEY (model_id, version, environment)
);

-- direct (presigned) uploads handed out, so that only the version that asked may complete one
CREATE TABLE {schema}.uploads (
    upload_id  uuid        PRIMARY KEY,
    version_id uuid        NOT NULL REFERENCES {schema}.versions (id) ON DELETE CASCADE,
    expires_at timestamptz NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
