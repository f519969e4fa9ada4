-- Typos are corrected against the vocabulary of indexed words (like a spell checker) instead of by
-- trigram similarity against every document: a query term that is not a known word is replaced by the
-- known words most similar to it, and the expanded query runs on the tsvector index. Numbers and
-- hyphenated compounds stay out (their parts are words of their own).
CREATE TABLE {schema}.words (word text PRIMARY KEY);
CREATE INDEX words_trgm ON {schema}.words USING gin (word gin_trgm_ops);
INSERT INTO {schema}.words (word)
SELECT DISTINCT w FROM {schema}.documents d, unnest(tsvector_to_array(d.tsv)) AS w
WHERE w !~ '^[0-9.]+$' AND strpos(w, '-') = 0
ON CONFLICT DO NOTHING;

DROP INDEX {schema}.documents_trgm;
ALTER TABLE {schema}.documents DROP COLUMN search_text;

-- Filter indexes carry the model id, so counting a filter (and joining it to metric ranges) reads only
-- the index, not the wide rows.
DROP INDEX {schema}.documents_framework;
DROP INDEX {schema}.documents_task;
DROP INDEX {schema}.documents_type;
DROP INDEX {schema}.documents_status;
CREATE INDEX documents_framework ON {schema}.documents (framework, created_at, model_id);
CREATE INDEX documents_task ON {schema}.documents (task, created_at, model_id);
CREATE INDEX documents_type ON {schema}.documents (type, created_at, model_id);
CREATE INDEX documents_status ON {schema}.documents (status, created_at, model_id);
