-- Event ids a consumer has applied, written in the same transaction as the effect.
CREATE TABLE {schema}.inbox (
    event_id    uuid        NOT NULL,
    consumer    text        NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, event_id)
);
