-- Events written in the same transaction as the state change; the relay publishes them in seq order.
CREATE TABLE {schema}.outbox (
    seq          bigserial PRIMARY KEY,
    event_id     uuid        NOT NULL UNIQUE,
    topic        text        NOT NULL,
    key          text        NOT NULL,
    headers      jsonb       NOT NULL,
    body         bytea       NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    published_at timestamptz
);
CREATE INDEX outbox_unpublished ON {schema}.outbox (seq) WHERE published_at IS NULL;
CREATE INDEX outbox_published_at ON {schema}.outbox (published_at) WHERE published_at IS NOT NULL;
