-- A model's status (seed 001): the most advanced stage of its versions in the production environment,
-- kept from cairn.lifecycle.v1. `stages` holds each version's last stage per environment; `status` on
-- the model is recomputed from it in the same transaction, so reads stay one row.
CREATE TABLE {schema}.stages (
    model_id    uuid        NOT NULL,
    version     text        NOT NULL,
    environment text        NOT NULL,
    stage       text        NOT NULL,
    since       timestamptz NOT NULL,
    PRIMARY KEY (model_id, version, environment)
);
ALTER TABLE {schema}.models ADD COLUMN status text NOT NULL DEFAULT 'draft';
