-- A document for an end-to-end-encrypted room goes up encrypted (CS API §"Sending encrypted
-- attachments"): its key and IV are recorded before the first byte is uploaded, so that a retried
-- upload makes the same ciphertext, and the ciphertext's SHA-256 once it is known.
ALTER TABLE documents ADD COLUMN media_key bytea;
ALTER TABLE documents ADD COLUMN media_sha256 text;
