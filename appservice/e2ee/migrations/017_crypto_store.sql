-- The end-to-end-encryption state of Kuvert's own devices (appservice/e2ee/crypto-store.ts): the
-- records of the IndexedDB databases matrix-sdk-crypto keeps, one row each, sealed with a key from
-- the environment. A row's id is a keyed hash, so the table shows how many records there are and
-- their sizes, nothing else.
CREATE TABLE crypto_stores (
  name   text PRIMARY KEY,
  -- The process that restored the store last: only it may save, so that a process that was taken
  -- over cannot overwrite the newer state.
  owner  text NOT NULL
);

CREATE TABLE crypto_store_records (
  store   text NOT NULL REFERENCES crypto_stores (name) ON DELETE CASCADE,
  id      bytea NOT NULL,
  -- AES-256-GCM: nonce, ciphertext, tag; the store's name and the id are its associated data.
  sealed  bytea NOT NULL,
  PRIMARY KEY (store, id)
);
