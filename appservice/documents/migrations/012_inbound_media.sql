-- Every media reference of an inbound event (its file, thumbnail, an edit's new file, an
-- encrypted attachment with its key, images in its HTML), as appservice/matrix/references.ts
-- finds them: all are scanned before the event counts as checked, all are quarantined when
-- one is not clean. source_mxc stays the first of them. NULL on rows from before: their
-- source_mxc was their only reference. Keys of encrypted attachments are dropped from this
-- column once the document is finished.
ALTER TABLE documents ADD COLUMN media jsonb;
