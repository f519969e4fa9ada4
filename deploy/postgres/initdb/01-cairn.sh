#!/bin/sh
# Runs once, when the Postgres data volume is empty (docker-entrypoint-initdb.d of the official image).
# Creates the application role `cairn` (not a superuser) owning database `cairn`, with pg_trgm installed.
# Changing CAIRN_DB_PASSWORD later does not reach an existing volume: run
#   docker compose exec postgres psql -U postgres -c "ALTER ROLE cairn PASSWORD '...'"
set -eu
: "${CAIRN_DB_PASSWORD:?CAIRN_DB_PASSWORD must be set}"

# quoted heredoc: the shell expands nothing; psql substitutes :'app_password' as a quoted literal
psql -v ON_ERROR_STOP=1 -v app_password="$CAIRN_DB_PASSWORD" --username "$POSTGRES_USER" --dbname postgres <<'EOSQL'
CREATE ROLE cairn LOGIN PASSWORD :'app_password';
CREATE DATABASE cairn OWNER cairn;
\connect cairn
CREATE EXTENSION IF NOT EXISTS pg_trgm;
ALTER SCHEMA public OWNER TO cairn;
EOSQL
