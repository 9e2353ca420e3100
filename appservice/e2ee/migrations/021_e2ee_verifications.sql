-- Interactive verifications of the bot's device (SAS by to-device messages) that staff started in
-- Element: where each stands, the emoji to compare, and what the person who compared them decided
-- (through the API, the command line or the console), for the process that owns the device.
-- Element verifies another user in a direct message room: its verification events (decrypted) go
-- to the device in order with the rest of what it hears.
ALTER TABLE e2ee_device_inbox ADD COLUMN room_event jsonb;

CREATE TABLE e2ee_verifications (
  flow_id     text PRIMARY KEY,
  user_id     text NOT NULL,
  device_id   text,
  state       text NOT NULL CHECK (state IN ('requested', 'comparing', 'verified', 'cancelled')),
  emoji       jsonb,
  reason      text,
  -- match: the emoji are the same on both sides; mismatch: they are not (the verification is cancelled).
  decision    text CHECK (decision IN ('match', 'mismatch')),
  decided_by  text,
  created_at  timestamptz NOT NULL DEFAULT now(),
  updated_at  timestamptz NOT NULL DEFAULT now()
);
