-- Rooms that are end-to-end encrypted get a circular's attachment as an encrypted file (CS API
-- §"Sending encrypted attachments"): one encrypted copy per attachment for all of them, its key and
-- IV (48 bytes) recorded before its upload, so that a retried upload makes the same ciphertext;
-- the SHA-256 of the ciphertext once uploaded.
ALTER TABLE circular_attachments ADD COLUMN encrypted_mxc text;
ALTER TABLE circular_attachments ADD COLUMN encrypted_uploaded boolean NOT NULL DEFAULT false;
ALTER TABLE circular_attachments ADD COLUMN media_key bytea;
ALTER TABLE circular_attachments ADD COLUMN media_sha256 text;

-- A file staff posted in an encrypted staff room is an encrypted attachment on the homeserver: the
-- key, IV and hash of its `file` object (CS API §"Sending encrypted attachments"), kept with it, to
-- download, decrypt and check it before it is scanned and sent on.
ALTER TABLE circular_staff_files ADD COLUMN file jsonb;
ALTER TABLE circular_attachments ADD COLUMN source_file jsonb;
