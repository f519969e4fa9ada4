-- each version's lifecycle stage per environment, from cairn.lifecycle.v1, so version reads can say
-- where a version stands (seed 001's "status"); no row means draft. Like `live`, no foreign key:
-- lifecycle events may arrive before the version's own.
CREATE TABLE {schema}.stages (
    model_id    uuid        NOT NULL,
    version     text        NOT NULL,
    environment text        NOT NULL,
    stage       text        NOT NULL,
    since       timestamptz NOT NULL,
    PRIMARY KEY (model_id, version, environment)
);
