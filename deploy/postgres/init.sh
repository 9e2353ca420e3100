#!/bin/bash
# Creates Synapse's and Kuvert's databases and roles on the stack's PostgreSQL server.
#
# The postgres image runs the scripts in /docker-entrypoint-initdb.d/ once, when it initialises
# an empty data directory (docker-compose.yml mounts this file there). It does not run again on
# later starts: to change a password afterwards use ALTER ROLE, see deploy/README.md.
# The passwords come from the container's environment (SYNAPSE_DB_PASSWORD, KUVERT_DB_PASSWORD,
# set from .env) and are handed to psql as variables, so no quoting can break the SQL.
set -euo pipefail

: "${SYNAPSE_DB_PASSWORD:?SYNAPSE_DB_PASSWORD is not set}"
: "${KUVERT_DB_PASSWORD:?KUVERT_DB_PASSWORD is not set}"

psql --no-psqlrc -v ON_ERROR_STOP=1 \
  --username "${POSTGRES_USER:-postgres}" --dbname "${POSTGRES_DB:-postgres}" \
  --set=synapse_password="$SYNAPSE_DB_PASSWORD" \
  --set=kuvert_password="$KUVERT_DB_PASSWORD" <<'SQL'
-- Synapse requires UTF8 with C collation and character classification; template0 because
-- template1 may carry another locale.
CREATE ROLE synapse LOGIN PASSWORD :'synapse_password';
CREATE DATABASE synapse OWNER synapse ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0;

-- Kuvert: UTF8, the server's default collation. Kuvert creates its tables itself (migrations
-- at start), as the owner of its database.
CREATE ROLE kuvert LOGIN PASSWORD :'kuvert_password';
CREATE DATABASE kuvert OWNER kuvert ENCODING 'UTF8' TEMPLATE template0;

-- Each role reaches only its own database.
REVOKE ALL ON DATABASE synapse FROM PUBLIC;
REVOKE ALL ON DATABASE kuvert FROM PUBLIC;
SQL
