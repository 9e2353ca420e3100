-- Rooms that are end-to-end encrypted get a circular's attachment as an encrypted file (CS API
-- §"Sending encrypted attachments"): one encrypted copy per attachment for all of them, its key and
-- IV (48 bytes) recorded before its upload, so that a retried upload makes the same ciphertext;
-- the SHA-256 of the ciphertext once uploaded.
ALTER TABLE circular_attachments ADD COLUMN encrypted_mxc text;
ALTER TABLE circular_attachments ADD COLUMN encrypted_uploaded boolean NOT NULL DEFAULT false;
ALTER TABLE circular_attachments ADD COLUMN media_key bytea;
ALTER TABLE circular_attachments ADD COLUMN media_sha256 text;
