-- Video consultations (appservice/calls/). One row per call in an organisation room: the
-- Jitsi widget Kuvert put into the room, and a work-queue row (see workers/queue.ts) for the
-- widget's lifecycle, so a widget is posted and removed even across a crash:
--   phase 'post':   the widget (and layout) are to be sent; Kuvert tries at once, the worker
--                   takes over after run_after if that attempt did not finish.
--   phase 'remove': the widget is to be removed at run_after: the call's expiry, or now when
--                   it was ended. state 'done' once it is gone.

CREATE TABLE calls (
  id              text PRIMARY KEY,
  organisation_id text NOT NULL REFERENCES organisations (id),
  room_id         text NOT NULL,
  -- The state key of the im.vector.modular.widgets event.
  widget_id       text NOT NULL UNIQUE,
  conference_id   text NOT NULL,
  -- The widget's data.roomName (the room's name when the call started).
  room_name       text NOT NULL,
  -- 'openidtoken-jwt' when Jitsi checks room membership (Element's widget data.auth), else null.
  auth            text CHECK (auth IN ('openidtoken-jwt')),
  started_by      text NOT NULL,
  started_at      timestamptz NOT NULL DEFAULT now(),
  expires_at      timestamptz NOT NULL,
  ended_at        timestamptz,
  ended_by        text,
  end_reason      text CHECK (end_reason IN ('ended', 'expired')),
  widget_event_id text,
  phase           text NOT NULL DEFAULT 'post' CHECK (phase IN ('post', 'remove')),
  state           text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'done', 'failed')),
  attempts        integer NOT NULL DEFAULT 0,
  run_after       timestamptz NOT NULL DEFAULT now(),
  lease_until     timestamptz,
  leased_by       text,
  last_error      text,
  CHECK ((ended_at IS NULL) = (end_reason IS NULL))
);
-- At most one open call per organisation: a second !video reuses it.
CREATE UNIQUE INDEX calls_one_open ON calls (organisation_id) WHERE ended_at IS NULL;
CREATE INDEX calls_due ON calls (run_after) WHERE state = 'pending';
CREATE INDEX calls_started ON calls (started_at);

-- Guest links: one per invited guest. The id is the guest token's jti; the token itself is
-- not stored (it is signed, and checked against this row before the guest page joins).
CREATE TABLE guest_links (
  id          text PRIMARY KEY,
  call_id     text NOT NULL REFERENCES calls (id),
  guest_name  text NOT NULL,
  email       text NOT NULL,
  created_by  text NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now(),
  expires_at  timestamptz NOT NULL,
  revoked_at  timestamptz,
  revoked_by  text
);
CREATE INDEX guest_links_call ON guest_links (call_id);

-- The e-mail that carries a guest link to the guest.
ALTER TABLE mail_outbox DROP CONSTRAINT mail_outbox_kind_check;
ALTER TABLE mail_outbox ADD CONSTRAINT mail_outbox_kind_check CHECK (kind IN ('document', 'circular', 'inbound-file', 'alert', 'guest-link'));
