-- The mail outbox: one row per decision to notify one address, written in the transaction
-- that makes the change it is about, so an e-mail between decision and sending survives a
-- crash. A work queue (see workers/queue.ts); pending rows of one recipient and batch are
-- sent together as one e-mail (appservice/mail/outbox.ts).

CREATE TABLE mail_outbox (
  id                bigserial PRIMARY KEY,
  kind              text NOT NULL CHECK (kind IN ('document', 'circular', 'inbound-file', 'alert')),
  recipient         text NOT NULL CHECK (recipient ~ '^[^@\s,;<>]+@[^@\s,;<>]+$'),
  -- Notifications with the same recipient and batch key can go out as one e-mail:
  -- the kind group, the organisation and the room.
  batch_key         text NOT NULL,
  organisation_id   text,
  organisation_name text,
  room_id           text,
  -- [{ "title": …, "reference": …, "kind": … }]: what the e-mail lists; never document content.
  items             jsonb NOT NULL CHECK (jsonb_typeof(items) = 'array' AND jsonb_array_length(items) > 0),
  -- null: the configured mail.language at sending time.
  language          text CHECK (language IN ('de', 'en')),
  -- A replayed enqueue with the same key for the same recipient is a no-op.
  dedupe_key        text,
  created_at        timestamptz NOT NULL DEFAULT now(),
  -- pending: to be sent; sent: went out (this row's id made the Message-ID);
  -- combined: went out inside the e-mail of row combined_into; dead: given up, staff alerted.
  state             text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'sent', 'combined', 'dead')),
  attempts          integer NOT NULL DEFAULT 0,
  run_after         timestamptz NOT NULL DEFAULT now(),
  lease_until       timestamptz,
  leased_by         text,
  last_error        text,
  sent_at           timestamptz,
  message_id        text,
  combined_into     bigint REFERENCES mail_outbox (id),
  CHECK ((state = 'combined') = (combined_into IS NOT NULL) OR state = 'dead')
);
CREATE UNIQUE INDEX mail_outbox_dedupe ON mail_outbox (dedupe_key, recipient) WHERE dedupe_key IS NOT NULL;
-- The worker's questions: which pending row heads its batch, and what joins it.
CREATE INDEX mail_outbox_pending ON mail_outbox (recipient, batch_key, id) WHERE state = 'pending';
CREATE INDEX mail_outbox_due ON mail_outbox (run_after) WHERE state = 'pending';
CREATE INDEX mail_outbox_combined_into ON mail_outbox (combined_into) WHERE combined_into IS NOT NULL;
