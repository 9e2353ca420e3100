-- Document versions: a corrected document names the one it replaces. Each version is a document
-- of its own (scanned, delivered, kept and erased like any other); the columns only link them.

-- The version this document replaces (same organisation, outbound, delivered when it was named).
-- A version that retention deleted leaves the link empty; the audit log keeps it.
ALTER TABLE documents ADD COLUMN supersedes text REFERENCES documents (id) ON DELETE SET NULL;
-- The version that replaces this one: set when the replacement is accepted, cleared again when
-- the replacement is rejected by the scanner, so a second correction can follow.
ALTER TABLE documents ADD COLUMN superseded_by text REFERENCES documents (id) ON DELETE SET NULL;
-- 1 for a first version, one more than the replaced version's number for each correction.
ALTER TABLE documents ADD COLUMN version integer NOT NULL DEFAULT 1;
-- The room event of the short text posted with the file: the one edited when a new version replaces it.
ALTER TABLE documents ADD COLUMN announcement_event_id text;

-- A document is replaced by at most one version that is not rejected.
CREATE UNIQUE INDEX documents_supersedes_once ON documents (supersedes) WHERE supersedes IS NOT NULL AND state <> 'rejected';
-- "The current version with this reference" (supersedes by organisation + reference).
CREATE INDEX documents_reference ON documents (organisation_id, reference) WHERE reference IS NOT NULL;

-- A batch manifest may name, per entry, the version the document replaces.
ALTER TABLE batch_entries ADD COLUMN supersedes text;
ALTER TABLE batch_entries ADD COLUMN supersedes_reference text;
