-- A model's promotion policy (services.lifecycle.policy.PromotionPolicy as JSON).
CREATE TABLE {schema}.policies (
    model_id   uuid PRIMARY KEY,
    policy     jsonb       NOT NULL,
    updated_by text        NOT NULL,
    updated_at timestamptz NOT NULL
);

-- What the evaluation service measured per version (EvaluationCompleted); the policy compares a
-- candidate with the live version's latest measurement.
CREATE TABLE {schema}.evaluations (
    evaluation_id uuid PRIMARY KEY,
    version_id    uuid        NOT NULL,
    model_id      uuid        NOT NULL,
    version       text        NOT NULL,
    metrics       jsonb       NOT NULL,
    at            timestamptz NOT NULL
);
CREATE INDEX evaluations_version ON {schema}.evaluations (version_id, at DESC);
