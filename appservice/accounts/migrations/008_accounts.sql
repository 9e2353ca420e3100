-- Accounts on the homeserver that Kuvert creates for clerks who have none. The initial password
-- is never stored: the account is made with a random password nobody learns, and the password
-- of the letter is generated and set on the homeserver at the moment the letter is produced.

CREATE TABLE clerk_accounts (
  id                bigserial PRIMARY KEY,
  matrix_id         text NOT NULL UNIQUE,
  email             text NOT NULL,
  display_name      text NOT NULL CHECK (length(display_name) BETWEEN 1 AND 200),
  -- The organisation the account was asked for (the letter names the organisations the clerk is in).
  organisation_id   text NOT NULL REFERENCES organisations (id),
  -- requested: to be created by the worker; letter_ready: on the homeserver, no one knows its
  -- password, a letter can be produced; letter_issued: the letter with the password was produced
  -- (another one only after a password reset); failed: see failure; deactivated: on the homeserver too.
  state             text NOT NULL DEFAULT 'requested'
                    CHECK (state IN ('requested', 'letter_ready', 'letter_issued', 'failed', 'deactivated')),
  failure           text,
  -- Kuvert's mark on the account (an external id with auth_provider "kuvert"): an account that
  -- carries it was made by Kuvert in an earlier attempt and is adopted, not refused.
  marker            text NOT NULL UNIQUE,
  create_started_at timestamptz,
  created_at        timestamptz NOT NULL DEFAULT now(),
  account_created_at timestamptz,
  letters_issued    integer NOT NULL DEFAULT 0,
  letter_issued_at  timestamptz,
  password_resets   integer NOT NULL DEFAULT 0,
  deactivated_at    timestamptz,
  CHECK ((state = 'failed') = (failure IS NOT NULL))
);
CREATE INDEX clerk_accounts_email ON clerk_accounts (lower(email));
CREATE INDEX clerk_accounts_organisation ON clerk_accounts (organisation_id);

-- Work queue: create the account on the homeserver.
CREATE TABLE account_creation (
  account_id      bigint PRIMARY KEY REFERENCES clerk_accounts (id),
  state           text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'done', 'failed')),
  attempts        integer NOT NULL DEFAULT 0,
  run_after       timestamptz NOT NULL DEFAULT now(),
  lease_until     timestamptz,
  leased_by       text,
  last_error      text,
  requested_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX account_creation_pending ON account_creation (run_after) WHERE state = 'pending';

-- The clerk's e-mail about the account: the sign-in link and the username, never the password.
ALTER TABLE mail_outbox DROP CONSTRAINT mail_outbox_kind_check;
ALTER TABLE mail_outbox ADD CONSTRAINT mail_outbox_kind_check CHECK (kind IN ('document', 'circular', 'inbound-file', 'alert', 'guest-link', 'account'));
