"""Lifecycle service: stages per (version, environment), the live slot, rollouts and rollbacks, and the
production view deployers read (Postgres, cached in Redis)."""
