-- Sessions of the staff console. A session begins when Kuvert has checked an OpenID token
-- with the homeserver; the browser holds the session id in an HttpOnly cookie, the database
-- only its SHA-256. Roles are not stored: they are read from the configuration on every
-- request, so taking a role away takes effect at once.
CREATE TABLE console_sessions (
  id_hash         text PRIMARY KEY,
  user_id         text NOT NULL,
  created_at      timestamptz NOT NULL DEFAULT now(),
  last_seen_at    timestamptz NOT NULL DEFAULT now(),
  -- the latest end, however active the session is (console.maxHours)
  expires_at      timestamptz NOT NULL,
  user_agent      text
);
CREATE INDEX console_sessions_user ON console_sessions (user_id);
CREATE INDEX console_sessions_expires ON console_sessions (expires_at);
