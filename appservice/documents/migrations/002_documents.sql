-- Documents between arrival and delivery, in both directions, and the work queue that moves them.

CREATE TABLE documents (
  id              text PRIMARY KEY,
  direction       text NOT NULL CHECK (direction IN ('outbound', 'inbound')),
  organisation_id text NOT NULL REFERENCES organisations (id),
  -- api, folder, batch, console (outbound); room (inbound)
  source          text NOT NULL,
  -- token:<name>, cli:<user>, or the Matrix ID of the person who posted it
  submitted_by    text NOT NULL,
  filename        text NOT NULL,
  kind            text,
  reference       text,
  mimetype        text,
  size            bigint NOT NULL,
  sha256          text,
  -- a retried upload with the same key (per token) returns the first result
  idempotency_scope text,
  idempotency_key text,
  -- inbound: the event that carried the file and its media
  room_event_id   text UNIQUE,
  source_mxc      text,
  state           text NOT NULL DEFAULT 'received'
                  CHECK (state IN ('received', 'scanning', 'held', 'rejected', 'delivered', 'checked', 'removed')),
  reason          text,
  signature       text,
  mxc_uri         text,
  event_id        text,
  created_at      timestamptz NOT NULL DEFAULT now(),
  scanned_at      timestamptz,
  finished_at     timestamptz,
  UNIQUE (idempotency_scope, idempotency_key)
);
CREATE INDEX documents_organisation ON documents (organisation_id, created_at);
CREATE INDEX documents_state ON documents (state) WHERE state IN ('received', 'scanning', 'held');

CREATE TABLE document_work (
  document_id     text PRIMARY KEY REFERENCES documents (id),
  state           text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'done', 'failed')),
  attempts        integer NOT NULL DEFAULT 0,
  run_after       timestamptz NOT NULL DEFAULT now(),
  lease_until     timestamptz,
  leased_by       text,
  last_error      text
);
CREATE INDEX document_work_pending ON document_work (run_after) WHERE state = 'pending';

-- Rooms Kuvert keeps beside the organisation rooms (the staff room), by purpose.
CREATE TABLE service_rooms (
  purpose         text PRIMARY KEY,
  room_id         text NOT NULL UNIQUE,
  created_at      timestamptz NOT NULL DEFAULT now()
);
