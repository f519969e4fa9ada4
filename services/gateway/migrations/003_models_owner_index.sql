-- A guest's listing asks which live models its key or its teams own (store.VISIBLE_MODELS): without
-- this index that part read the whole projection.
CREATE INDEX models_owner_live ON {schema}.models (owner) WHERE NOT deleted;
