-- What Kuvert needs to work with every homeserver version it supports (README, "Homeserver versions").

-- An mxc in mxc_uri is either reserved (POST /_matrix/media/v1/create, content still to be PUT)
-- or already holds the file (a plain POST /_matrix/media/v3/upload, or a PUT that succeeded).
-- Only the first may be uploaded again after a crash: homeservers without async upload
-- (Synapse < 1.111) refuse any PUT, and the file is there already.
ALTER TABLE documents ADD COLUMN media_uploaded boolean NOT NULL DEFAULT false;
ALTER TABLE circular_attachments ADD COLUMN media_uploaded boolean NOT NULL DEFAULT false;
UPDATE documents SET media_uploaded = true WHERE mxc_uri IS NOT NULL AND event_id IS NOT NULL;
UPDATE circular_attachments a SET media_uploaded = true
  WHERE mxc_uri IS NOT NULL AND EXISTS (SELECT 1 FROM circulars c WHERE c.id = a.circular_id AND c.state IN ('sending', 'sent'));

-- A document whose work failed for good (the homeserver refused it in a way no retry cures, or
-- it ran out of attempts): the reason says why, staff were alerted.
ALTER TABLE documents DROP CONSTRAINT documents_state_check;
ALTER TABLE documents ADD CONSTRAINT documents_state_check
  CHECK (state IN ('received', 'scanning', 'held', 'rejected', 'delivered', 'checked', 'removed', 'failed'));

-- Power levels Kuvert could not set back (e.g. a hand edit left another user at Kuvert's own
-- level): the room otherwise works; staff see this beside room_problem until it is resolved.
ALTER TABLE organisations ADD COLUMN power_levels_problem text;
