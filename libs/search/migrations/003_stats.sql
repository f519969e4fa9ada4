-- The number of documents, kept with every write, so a query without filters does not count 100k rows.
CREATE TABLE {schema}.stats (
    id        boolean PRIMARY KEY DEFAULT true CHECK (id),
    documents bigint NOT NULL
);
INSERT INTO {schema}.stats (documents) SELECT count(*) FROM {schema}.documents;
