-- Organisations, their clerks and rooms; the appservice inbox; the work queues that
-- survive a crash; API tokens; the hash-chained audit log.

CREATE TABLE organisations (
  id              text PRIMARY KEY CHECK (id ~ '^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$'),
  display_name    text NOT NULL CHECK (length(display_name) BETWEEN 1 AND 200),
  tags            text[] NOT NULL DEFAULT '{}',
  state           text NOT NULL DEFAULT 'active' CHECK (state IN ('active', 'archived')),
  room_id         text UNIQUE,
  room_state      text NOT NULL DEFAULT 'pending' CHECK (room_state IN ('pending', 'ready', 'lost')),
  room_problem    text,
  welcome_event_id text,
  archive_notice_event_id text,
  created_at      timestamptz NOT NULL DEFAULT now(),
  updated_at      timestamptz NOT NULL DEFAULT now(),
  archived_at     timestamptz
);
CREATE INDEX organisations_tags ON organisations USING gin (tags);

-- A clerk of one organisation. matrix_id may be null for a clerk who only gets e-mail.
CREATE TABLE clerks (
  id              bigserial PRIMARY KEY,
  organisation_id text NOT NULL REFERENCES organisations (id),
  matrix_id       text,
  email           text,
  display_name    text,
  status          text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'removed')),
  -- membership in the room as the homeserver last told Kuvert: null (not yet), invite, join, leave, ban
  membership      text CHECK (membership IN ('invite', 'join', 'leave', 'ban', 'knock')),
  created_at      timestamptz NOT NULL DEFAULT now(),
  removed_at      timestamptz,
  CHECK (matrix_id IS NOT NULL OR email IS NOT NULL)
);
CREATE UNIQUE INDEX clerks_org_matrix_id ON clerks (organisation_id, matrix_id) WHERE matrix_id IS NOT NULL;
CREATE UNIQUE INDEX clerks_org_email ON clerks (organisation_id, email) WHERE matrix_id IS NULL;
CREATE INDEX clerks_matrix_id ON clerks (matrix_id);

-- Staff as configured; kept so that people taken out of the configuration are removed from rooms.
CREATE TABLE staff_members (
  matrix_id       text PRIMARY KEY,
  roles           text[] NOT NULL,
  status          text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'removed')),
  updated_at      timestamptz NOT NULL DEFAULT now()
);

-- Work queue: bring an organisation's room to the state the database describes.
CREATE TABLE room_sync (
  organisation_id text PRIMARY KEY REFERENCES organisations (id),
  generation      bigint NOT NULL DEFAULT 1,
  requested_at    timestamptz NOT NULL DEFAULT now(),
  state           text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'done', 'failed')),
  attempts        integer NOT NULL DEFAULT 0,
  run_after       timestamptz NOT NULL DEFAULT now(),
  lease_until     timestamptz,
  leased_by       text,
  last_error      text
);
CREATE INDEX room_sync_pending ON room_sync (run_after) WHERE state = 'pending';

-- Application service transactions, stored before the homeserver is answered.
CREATE TABLE appservice_transactions (
  txn_id          text PRIMARY KEY,
  event_count     integer NOT NULL,
  received_at     timestamptz NOT NULL DEFAULT now()
);

-- Work queue: events from the homeserver, handled in order per room.
CREATE TABLE inbound_events (
  seq             bigserial PRIMARY KEY,
  event_id        text NOT NULL UNIQUE,
  room_id         text NOT NULL,
  event_type      text NOT NULL,
  event           jsonb NOT NULL,
  state           text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'done', 'failed')),
  attempts        integer NOT NULL DEFAULT 0,
  run_after       timestamptz NOT NULL DEFAULT now(),
  lease_until     timestamptz,
  leased_by       text,
  last_error      text,
  received_at     timestamptz NOT NULL DEFAULT now(),
  handled_at      timestamptz
);
CREATE INDEX inbound_events_pending ON inbound_events (room_id, seq) WHERE state = 'pending';

-- Tokens of systems and admins that call the HTTP API. Only a hash is stored.
CREATE TABLE api_tokens (
  name            text PRIMARY KEY CHECK (name ~ '^[a-z0-9][a-z0-9._-]{0,63}$'),
  token_hash      text NOT NULL UNIQUE,
  scopes          text[] NOT NULL,
  organisations   text[],
  created_at      timestamptz NOT NULL DEFAULT now(),
  revoked_at      timestamptz
);

-- Append-only, hash-chained audit log: each row's hash covers its canonical form and the
-- previous row's hash, so changing or removing a row breaks the chain at that row.
CREATE TABLE audit_log (
  seq             bigint PRIMARY KEY,
  at              timestamptz NOT NULL,
  actor           text NOT NULL,
  action          text NOT NULL,
  organisation_id text,
  object          text,
  outcome         text NOT NULL,
  details         jsonb NOT NULL DEFAULT '{}',
  prev_hash       text NOT NULL,
  hash            text NOT NULL
);
CREATE INDEX audit_log_at ON audit_log (at);
CREATE INDEX audit_log_organisation ON audit_log (organisation_id, seq);

CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'audit_log is append-only: % is not allowed', TG_OP USING ERRCODE = 'insufficient_privilege';
END;
$$;
CREATE TRIGGER audit_log_no_update BEFORE UPDATE OR DELETE ON audit_log
  FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
  FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();
