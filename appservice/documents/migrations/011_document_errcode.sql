-- Why a document was refused, as a stable code beside the sentence in `reason`:
-- KUVERT_INFECTED, KUVERT_TOO_LARGE or KUVERT_UNSCANNABLE (what cannot be scanned whole).
ALTER TABLE documents ADD COLUMN errcode text;
