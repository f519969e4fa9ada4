-- What this service knows of versions: a projection of cairn.versions.v1 (filled in from the version
-- service's internal API when a request names a version whose event has not arrived yet).
CREATE TABLE {schema}.versions (
    id               uuid PRIMARY KEY,
    model_id         uuid        NOT NULL,
    version          text        NOT NULL,
    artifact_sha256  text,
    artifact_size    bigint,
    artifact_storage text,
    created_at       timestamptz,
    deleted_at       timestamptz,
    seen_at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX versions_model_version ON {schema}.versions (model_id, version);

-- One row per evaluation. It is also the work queue: a row is queued by an event handler, claimed by a
-- worker (state running, lease), computed outside any transaction, then finished in one transaction
-- together with its EvaluationCompleted / EvaluationFailed event. A lease that runs out (the process
-- died) lets another worker take the run over.
CREATE TABLE {schema}.evaluations (
    id                uuid PRIMARY KEY,
    model_id          uuid        NOT NULL,
    version           text        NOT NULL,
    version_id        uuid,
    trigger           text        NOT NULL CHECK (trigger IN ('artifact_stored', 'requested', 'compare')),
    trigger_event_id  uuid,
    requested_dataset text,
    requested_seed    integer,
    state             text        NOT NULL CHECK (state IN ('queued', 'running', 'completed', 'failed')),
    priority          smallint    NOT NULL DEFAULT 0,
    attempts          integer     NOT NULL DEFAULT 0,
    not_before        timestamptz NOT NULL DEFAULT now(),
    lease_owner       text,
    lease_until       timestamptz,
    actor             text        NOT NULL,
    traceparent       text,
    created_at        timestamptz NOT NULL,
    started_at        timestamptz,
    finished_at       timestamptz,
    artifact_sha256   text,
    model_type        text,
    dataset           text,
    dataset_seed      integer,
    dataset_hash      text,
    split             text,
    samples           integer,
    device            text,
    metrics           jsonb,
    details           jsonb,
    config            jsonb,
    hyperparameters   jsonb,
    structure         jsonb,
    reason            text,
    last_error        text,
    -- storing the metrics on the version (version service internal API), retried with back-off
    sync_state        text        NOT NULL DEFAULT 'none' CHECK (sync_state IN ('none', 'pending', 'done', 'failed')),
    sync_attempts     integer     NOT NULL DEFAULT 0,
    sync_next_at      timestamptz,
    sync_error        text
);
CREATE INDEX evaluations_due ON {schema}.evaluations (priority DESC, created_at) WHERE state IN ('queued', 'running');
CREATE INDEX evaluations_version ON {schema}.evaluations (model_id, version, created_at DESC);
CREATE INDEX evaluations_version_id ON {schema}.evaluations (version_id, finished_at DESC) WHERE state = 'completed';
CREATE INDEX evaluations_sync_due ON {schema}.evaluations (sync_next_at) WHERE sync_state = 'pending';

CREATE TABLE {schema}.comparisons (
    id         uuid PRIMARY KEY,
    created_at timestamptz NOT NULL,
    created_by text        NOT NULL,
    result     jsonb       NOT NULL, -- the JSON answer
    report     jsonb       NOT NULL  -- what the HTML report renders
);
