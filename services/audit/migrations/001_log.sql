CREATE TABLE {schema}.log (
    seq         bigint      PRIMARY KEY,
    event_id    uuid        NOT NULL UNIQUE,
    event_type  text        NOT NULL,
    source      text        NOT NULL,
    subject     text,
    model_id    uuid,
    actor       text,
    topic       text,
    occurred_at timestamptz NOT NULL,
    recorded_at timestamptz NOT NULL,
    payload     jsonb       NOT NULL,
    prev_hash   text        NOT NULL,
    hash        text        NOT NULL
);
CREATE INDEX log_model ON {schema}.log (model_id, seq) WHERE model_id IS NOT NULL;
CREATE INDEX log_actor ON {schema}.log (actor, seq);
CREATE INDEX log_type ON {schema}.log (event_type, seq);
CREATE INDEX log_occurred ON {schema}.log (occurred_at);

-- the tip of the chain; appends lock this row, which serialises them
CREATE TABLE {schema}.chain_head (
    id        integer PRIMARY KEY CHECK (id = 1),
    last_seq  bigint  NOT NULL,
    last_hash text    NOT NULL
);
INSERT INTO {schema}.chain_head VALUES (1, 0, repeat('0', 64));

CREATE FUNCTION {schema}.refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit log is append-only: % refused', TG_OP USING ERRCODE = 'insufficient_privilege';
END $$;
CREATE TRIGGER log_append_only BEFORE UPDATE OR DELETE ON {schema}.log
    FOR EACH ROW EXECUTE FUNCTION {schema}.refuse_change();
CREATE TRIGGER log_no_truncate BEFORE TRUNCATE ON {schema}.log
    FOR EACH STATEMENT EXECUTE FUNCTION {schema}.refuse_change();
