-- One row per model: its projection (model fields, versions, metrics, stages) as built by domain.apply.
-- The search documents are derived from it and live in the search index (schema `search` or OpenSearch).
CREATE TABLE {schema}.models (
    model_id   uuid PRIMARY KEY,
    state      jsonb NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
