-- Projections of other services' aggregates, kept from their events (and from their internal API
-- when an event has not arrived yet).
CREATE TABLE {schema}.models (
    id         uuid PRIMARY KEY,
    name       text        NOT NULL,
    revision   integer     NOT NULL DEFAULT 0,
    deleted_at timestamptz,
    seen_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX models_live_name ON {schema}.models (lower(name)) WHERE deleted_at IS NULL;

CREATE TABLE {schema}.versions (
    id               uuid PRIMARY KEY,
    model_id         uuid        NOT NULL,
    version          text        NOT NULL,
    artifact_sha256  text,
    artifact_size    bigint,
    artifact_storage text,
    created_at       timestamptz NOT NULL,
    deleted_at       timestamptz
);
CREATE INDEX versions_model ON {schema}.versions (model_id, version);

-- The stage of a version in an environment; no row means draft.
CREATE TABLE {schema}.stages (
    version_id  uuid        NOT NULL,
    environment text        NOT NULL,
    model_id    uuid        NOT NULL,
    stage       text        NOT NULL CHECK (stage IN ('draft', 'staging', 'production', 'archived', 'deprecated')),
    updated_at  timestamptz NOT NULL,
    PRIMARY KEY (version_id, environment)
);
CREATE INDEX stages_model ON {schema}.stages (model_id, environment);

-- What is live per (model, environment). Every change for a (model, environment) locks this row
-- first, so changes of one slot are serialised. ``revision`` grows with every change of what is live
-- or of its traffic weights; the Redis cache never lets a lower revision replace a higher one.
CREATE TABLE {schema}.slots (
    model_id        uuid        NOT NULL,
    environment     text        NOT NULL,
    live_version_id uuid,
    revision        bigint      NOT NULL DEFAULT 0,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (model_id, environment)
);

-- Who was live when, and why. At most one open entry per slot.
CREATE TABLE {schema}.deployments (
    id          bigserial PRIMARY KEY,
    model_id    uuid        NOT NULL,
    environment text        NOT NULL,
    version_id  uuid        NOT NULL,
    version     text        NOT NULL,
    started_at  timestamptz NOT NULL,
    ended_at    timestamptz,
    reason      text        NOT NULL DEFAULT '',
    actor       text        NOT NULL,
    end_reason  text
);
CREATE INDEX deployments_slot ON {schema}.deployments (model_id, environment, id DESC);
CREATE UNIQUE INDEX deployments_open ON {schema}.deployments (model_id, environment) WHERE ended_at IS NULL;

CREATE TABLE {schema}.rollouts (
    id                   uuid PRIMARY KEY,
    model_id             uuid        NOT NULL,
    environment          text        NOT NULL,
    kind                 text        NOT NULL CHECK (kind IN ('promotion', 'rollback')),
    status               text        NOT NULL CHECK (status IN ('started', 'progressing', 'completed', 'aborted')),
    stable_version_id    uuid,
    stable_version       text,
    candidate_version_id uuid        NOT NULL,
    candidate_version    text        NOT NULL,
    steps                integer[]   NOT NULL,
    step                 integer     NOT NULL,
    step_interval_s      double precision,
    next_step_at         timestamptz,
    reason               text        NOT NULL DEFAULT '',
    actor                text        NOT NULL,
    command_id           uuid,
    strategy             text,
    created_at           timestamptz NOT NULL,
    updated_at           timestamptz NOT NULL,
    finished_at          timestamptz
);
CREATE UNIQUE INDEX rollouts_one_active ON {schema}.rollouts (model_id, environment)
    WHERE status IN ('started', 'progressing');
CREATE INDEX rollouts_due ON {schema}.rollouts (next_step_at)
    WHERE status IN ('started', 'progressing') AND next_step_at IS NOT NULL;
CREATE INDEX rollouts_model ON {schema}.rollouts (model_id, environment, created_at DESC);

-- Outcome of each command (RollbackRequested), keyed by the command event's id, written in the same
-- transaction as its effect and its events.
CREATE TABLE {schema}.commands (
    command_id  uuid PRIMARY KEY,
    model_id    uuid        NOT NULL,
    environment text        NOT NULL,
    status      text        NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed')),
    event_type  text        NOT NULL,
    outcome     jsonb       NOT NULL,
    at          timestamptz NOT NULL
);
