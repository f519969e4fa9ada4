-- The Postgres search index: one row per model (its representative version inlined).
-- q matches tsv (words) or search_text by trigram word similarity (typos: "bertt" finds "bert-base").
CREATE EXTENSION IF NOT EXISTS pg_trgm;

CREATE TABLE {schema}.documents (
    model_id      uuid PRIMARY KEY,
    name          text NOT NULL,
    description   text NOT NULL DEFAULT '',
    type          text NOT NULL,
    framework     text NOT NULL,
    task          text,
    owner         text NOT NULL,
    model_tags    jsonb NOT NULL DEFAULT '{}',
    version       text,
    version_id    uuid,
    status        text,
    metrics       jsonb NOT NULL DEFAULT '{}',
    version_tags  text[] NOT NULL DEFAULT '{}',
    tag_terms     text[] NOT NULL DEFAULT '{}',
    created_at    timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL,
    search_text   text NOT NULL,
    tsv           tsvector NOT NULL
);

CREATE INDEX documents_tsv ON {schema}.documents USING gin (tsv);
CREATE INDEX documents_trgm ON {schema}.documents USING gin (search_text gin_trgm_ops);
CREATE INDEX documents_tags ON {schema}.documents USING gin (tag_terms);
CREATE INDEX documents_framework ON {schema}.documents (framework, created_at);
CREATE INDEX documents_task ON {schema}.documents (task, created_at);
CREATE INDEX documents_type ON {schema}.documents (type, created_at);
CREATE INDEX documents_status ON {schema}.documents (status, created_at);
CREATE INDEX documents_created ON {schema}.documents (created_at, model_id);
CREATE INDEX documents_updated ON {schema}.documents (updated_at, model_id);
CREATE INDEX documents_name ON {schema}.documents (name, model_id);

-- One row per (model, metric) so that sorting or filtering by any metric can walk an index.
CREATE TABLE {schema}.metric_values (
    model_id uuid NOT NULL REFERENCES {schema}.documents (model_id) ON DELETE CASCADE,
    metric   text NOT NULL,
    value    double precision NOT NULL,
    PRIMARY KEY (model_id, metric)
);
CREATE INDEX metric_values_by_metric ON {schema}.metric_values (metric, value, model_id);
