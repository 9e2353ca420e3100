-- OpenID tokens Kuvert has accepted, each bound to the purpose it was first presented for:
-- 'verify' (Jitsi's Prosody asking /verify for a call), 'console' (a console sign-in) or
-- 'member-link' (a member proving membership on the call link page). A token seen for one
-- purpose is refused for every other; console and member-link tokens work once. The token is
-- kept only as an HMAC-SHA256 under the key below, never itself. Rows go after expires_at
-- (retention), long after the homeserver stopped accepting the token (Synapse: one hour).
CREATE TABLE openid_tokens_seen (
  token_hash      text PRIMARY KEY,
  purpose         text NOT NULL CHECK (purpose IN ('verify', 'console', 'member-link')),
  first_seen_at   timestamptz NOT NULL DEFAULT now(),
  expires_at      timestamptz NOT NULL
);
CREATE INDEX openid_tokens_seen_expires ON openid_tokens_seen (expires_at);

-- The key of that hash: made by the first Kuvert process that needs it, shared by all.
CREATE TABLE openid_token_key (
  id    integer PRIMARY KEY CHECK (id = 1),
  key   bytea NOT NULL
);
