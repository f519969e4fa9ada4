"""Shared service plumbing: settings, database, migrations, unit of work, outbox, inbox, broker, errors."""
