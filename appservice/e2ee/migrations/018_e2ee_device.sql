-- The bot's device in encrypted rooms (appservice/e2ee/).

-- Whether a room is end-to-end encrypted, as Kuvert last learned it (its m.room.encryption state,
-- read once, then from the room's events). Encryption is never switched off in a room.
CREATE TABLE e2ee_rooms (
  room_id     text PRIMARY KEY,
  encrypted   boolean NOT NULL,
  algorithm   text,
  learned_at  timestamptz NOT NULL DEFAULT now()
);

-- What the homeserver's transactions carry for the bot's device (MSC2409 to-device messages,
-- MSC3202 device lists, one-time-key counts and unused fallback key types), stored before the
-- transaction is answered, in order, and handed to the device by the process that owns it.
CREATE TABLE e2ee_device_inbox (
  seq          bigserial PRIMARY KEY,
  txn_id       text NOT NULL,
  to_device    jsonb NOT NULL,
  changed      jsonb NOT NULL,
  "left"       jsonb NOT NULL,
  key_counts   jsonb,
  fallback     jsonb,
  received_at  timestamptz NOT NULL DEFAULT now()
);

-- Events for encrypted rooms, from any Kuvert process, encrypted and sent by the one that owns the
-- device. The key is the send's work key: a retry of the same send is the same row and the same event.
CREATE TABLE e2ee_sends (
  work_key     text PRIMARY KEY,
  room_id      text NOT NULL,
  event_type   text NOT NULL,
  content      jsonb NOT NULL,
  event_id     text,
  state        text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'done', 'failed')),
  attempts     integer NOT NULL DEFAULT 0,
  run_after    timestamptz NOT NULL DEFAULT now(),
  lease_until  timestamptz,
  leased_by    text,
  last_error   text,
  created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX e2ee_sends_pending ON e2ee_sends (created_at) WHERE state = 'pending';
