-- Circulars: one message from staff to many organisations. The circular is a row; its fan-out
-- is one delivery row per target organisation (and per correction), claimed by workers with
-- FOR UPDATE SKIP LOCKED, so a crash mid fan-out resumes where it stopped.

CREATE TABLE circulars (
  id                text PRIMARY KEY,
  -- the text as staff wrote it (Markdown), and what is sent: plain body and Matrix HTML
  markdown          text NOT NULL,
  body              text NOT NULL,
  html              text NOT NULL,
  -- {"all": true} | {"tag": "schools"} | {"organisations": ["a", "b"]}
  targets           jsonb NOT NULL,
  -- token:<name> or the Matrix ID of the staff member
  author            text NOT NULL,
  source            text NOT NULL CHECK (source IN ('api', 'room')),
  -- the command in the staff room it came from: handling the command again finds it
  source_event_id   text UNIQUE,
  state             text NOT NULL DEFAULT 'scheduled'
                    CHECK (state IN ('scheduled', 'scanning', 'sending', 'sent', 'cancelled', 'stopped')),
  reason            text,
  scheduled_at      timestamptz,
  -- the one staff-room message that is edited as the fan-out moves
  progress_event_id text,
  created_at        timestamptz NOT NULL DEFAULT now(),
  started_at        timestamptz,
  finished_at       timestamptz
);
CREATE INDEX circulars_created ON circulars (created_at);

-- Corrections: revision 1, 2, … of the text, sent as edits (m.replace) of the original.
CREATE TABLE circular_revisions (
  circular_id       text NOT NULL REFERENCES circulars (id),
  revision          integer NOT NULL CHECK (revision >= 1),
  markdown          text NOT NULL,
  body              text NOT NULL,
  html              text NOT NULL,
  author            text NOT NULL,
  created_at        timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (circular_id, revision)
);

-- Attachments: scanned once, uploaded once, the same mxc referenced by every room.
CREATE TABLE circular_attachments (
  circular_id       text NOT NULL REFERENCES circulars (id),
  position          integer NOT NULL,
  filename          text NOT NULL,
  mimetype          text NOT NULL,
  size              bigint NOT NULL,
  sha256            text,
  -- a file staff posted in the staff room (on the homeserver already); else staged by Kuvert
  source_mxc        text,
  verdict           text CHECK (verdict IN ('clean', 'infected', 'too-large')),
  signature         text,
  mxc_uri           text,
  PRIMARY KEY (circular_id, position)
);

-- The circular's own work: waiting for its time, scanning, uploading, then watching the
-- fan-out and editing the progress message.
CREATE TABLE circular_work (
  circular_id       text PRIMARY KEY REFERENCES circulars (id),
  state             text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'done', 'failed')),
  attempts          integer NOT NULL DEFAULT 0,
  run_after         timestamptz NOT NULL DEFAULT now(),
  lease_until       timestamptz,
  leased_by         text,
  last_error        text
);
CREATE INDEX circular_work_pending ON circular_work (run_after) WHERE state = 'pending';

-- One row per organisation and revision (0: the circular, n: its n-th correction).
CREATE TABLE circular_deliveries (
  id                bigserial PRIMARY KEY,
  circular_id       text NOT NULL REFERENCES circulars (id),
  revision          integer NOT NULL DEFAULT 0,
  organisation_id   text NOT NULL REFERENCES organisations (id),
  state             text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'failed')),
  reason            text,
  room_id           text,
  event_id          text,
  delivered_at      timestamptz,
  attempts          integer NOT NULL DEFAULT 0,
  run_after         timestamptz NOT NULL DEFAULT now(),
  lease_until       timestamptz,
  leased_by         text,
  last_error        text,
  UNIQUE (circular_id, revision, organisation_id)
);
-- Claimed in id order: the partial index keeps a claim from walking past delivered rows.
CREATE INDEX circular_deliveries_pending ON circular_deliveries (id) WHERE state = 'pending';

-- Files staff post in the staff room: the next !circular of the same person takes them along.
CREATE TABLE circular_staff_files (
  event_id          text PRIMARY KEY,
  room_id           text NOT NULL,
  sender            text NOT NULL,
  mxc               text NOT NULL,
  filename          text NOT NULL,
  mimetype          text NOT NULL,
  size              bigint NOT NULL,
  posted_at         timestamptz NOT NULL DEFAULT now(),
  circular_id       text REFERENCES circulars (id)
);
CREATE INDEX circular_staff_files_sender ON circular_staff_files (sender, posted_at) WHERE circular_id IS NULL;

-- A fan-out reads each organisation's clerks by organisation: the partial indexes on clerks
-- (by Matrix ID, by e-mail) do not serve that, so without this every lookup reads all clerks.
CREATE INDEX IF NOT EXISTS clerks_organisation ON clerks (organisation_id);
