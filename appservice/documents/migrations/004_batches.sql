-- Bulk batches: a ZIP with a manifest that maps files to organisations, accepted whole and
-- then expanded into documents, one entry at a time, so that a crash repeats nothing.

CREATE TABLE batches (
  id              text PRIMARY KEY,
  submitted_by    text NOT NULL,
  size            bigint NOT NULL,
  state           text NOT NULL DEFAULT 'received' CHECK (state IN ('received', 'expanded', 'rejected')),
  reason          text,
  entry_count     integer,
  -- the organisations the submitting token may deliver to (null: all)
  organisations   text[],
  idempotency_scope text,
  idempotency_key text,
  created_at      timestamptz NOT NULL DEFAULT now(),
  expanded_at     timestamptz,
  UNIQUE (idempotency_scope, idempotency_key)
);

CREATE TABLE batch_entries (
  batch_id        text NOT NULL REFERENCES batches (id),
  line            integer NOT NULL,
  file            text NOT NULL,
  organisation_id text NOT NULL,
  kind            text,
  reference       text,
  document_id     text REFERENCES documents (id),
  errcode         text,
  error           text,
  PRIMARY KEY (batch_id, line)
);

CREATE TABLE batch_work (
  batch_id        text PRIMARY KEY REFERENCES batches (id),
  state           text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'done', 'failed')),
  attempts        integer NOT NULL DEFAULT 0,
  run_after       timestamptz NOT NULL DEFAULT now(),
  lease_until     timestamptz,
  leased_by       text,
  last_error      text
);

ALTER TABLE documents ADD COLUMN batch_id text REFERENCES batches (id);
CREATE INDEX documents_batch ON documents (batch_id) WHERE batch_id IS NOT NULL;
