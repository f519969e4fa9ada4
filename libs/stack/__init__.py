"""Runs the whole system on one machine: embedded Postgres, Kafka-protocol broker and Redis (unless
given by URL), migrations, the bootstrap admin key, and each service as its own supervised process."""
