-- Training jobs. The scheduler is their only writer; workers report through its HTTP API.
CREATE TABLE {schema}.jobs (
    id               uuid PRIMARY KEY,
    model_id         uuid        NOT NULL,
    pool             text        NOT NULL,
    state            text        NOT NULL,
    spec             jsonb       NOT NULL,
    max_attempts     integer     NOT NULL,
    attempt          integer     NOT NULL DEFAULT 0,  -- number of the latest claimed attempt
    failures         integer     NOT NULL DEFAULT 0,  -- failed attempts; the job fails at max_attempts
    lease_id         uuid,
    worker           text,
    device           text,
    heartbeat_at     timestamptz,
    next_attempt_at  timestamptz,                     -- queued: next dispatch due; NULL = a job message is out
    dispatched_at    timestamptz,
    checkpoint_epoch integer     NOT NULL DEFAULT 0,
    progress         jsonb,
    result           jsonb,
    last_error       text,
    cancel_reason    text,
    created_by       text        NOT NULL,
    created_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL,
    started_at       timestamptz,
    finished_at      timestamptz,
    CONSTRAINT jobs_state CHECK (state IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
    CONSTRAINT jobs_pool CHECK (pool IN ('cpu', 'gpu')),
    CONSTRAINT jobs_attempts CHECK (max_attempts >= 1 AND attempt >= 0 AND failures >= 0)
);
CREATE INDEX jobs_model_created ON {schema}.jobs (model_id, created_at DESC, id DESC);
CREATE INDEX jobs_queued ON {schema}.jobs (next_attempt_at, dispatched_at) WHERE state = 'queued';
CREATE INDEX jobs_running ON {schema}.jobs (heartbeat_at) WHERE state = 'running';
