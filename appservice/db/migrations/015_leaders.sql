-- Singleton jobs (the drop folder's intake) belong to one Kuvert process at a time: the holder
-- of a lease row, renewed while it runs. A process that dies stops renewing; another takes the
-- row once lease_until has passed.
CREATE TABLE leaders (
  name         text PRIMARY KEY,
  holder       text NOT NULL,
  lease_until  timestamptz NOT NULL
);
